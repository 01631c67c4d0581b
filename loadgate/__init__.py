"""loadgate: a Locust-based performance harness and SLA gate for OpenAI-compatible LLM APIs."""

__version__ = "0.1.0"
