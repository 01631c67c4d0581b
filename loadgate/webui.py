"""The LLM-metrics web UI tab (placeholder until helper "webui" lands it)."""
