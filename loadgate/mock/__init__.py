"""The embedded mock target: an OpenAI-compatible LLM gateway simulator (aiohttp on uvloop).

Run it with `python -m loadgate.mock`; start/stop it from Python with loadgate.mock.process.MockProcess.
"""

from .config import MockConfig, MockConfigError, load_config, parse_config

__all__ = ["MockConfig", "MockConfigError", "load_config", "parse_config"]
