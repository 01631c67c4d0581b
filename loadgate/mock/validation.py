"""Validation of chat completion request bodies, field by field, OpenAI-style.

Unknown fields are accepted and ignored (as vLLM and most gateways do), so harness extensions such as
`ignore_eos` never break a run; known fields are type- and range-checked and a bad one is a 400 naming it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import APIError, invalid, not_found

try:  # measured: request parsing is the mock's largest own cost per request; orjson cuts it
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - optional speed-up, same behaviour with the stdlib
    _loads = json.loads

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

# numeric sampling fields and their allowed ranges
_NUMBERS: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
_BOOLS = ("stream", "logprobs", "parallel_tool_calls", "store")
_OBJECTS = ("response_format", "logit_bias", "metadata", "stream_options")


@dataclass(slots=True)
class ChatRequest:
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    prompt_tokens: int
    # the fewest tokens to generate: vLLM's min_tokens, or every max_tokens with ignore_eos
    min_tokens: int = 0


def parse_json(raw: bytes) -> Any:
    try:
        return _loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; absurd nesting recurses
        raise APIError(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload.)",
            code="invalid_json",
        ) from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text_length(content: Any, param: str) -> int:
    if content is None or isinstance(content, str):
        return len(content or "")
    if isinstance(content, list):
        total = 0
        for i, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise invalid(f"{param}[{i}]", "each content part must be an object with a string 'type'")
            text = part.get("text")
            if part["type"] == "text" and not isinstance(text, str):
                raise invalid(f"{param}[{i}].text", "a text part needs a string 'text'")
            total += len(text) if isinstance(text, str) else 0
        return total
    raise invalid(param, f"expected a string or an array of content parts, got {type(content).__name__}")


def _prompt_chars(messages: Any) -> int:
    if not isinstance(messages, list):
        raise invalid("messages", f"expected an array of messages, got {type(messages).__name__}")
    if not messages:
        raise invalid("messages", "must contain at least one message")
    chars = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise invalid(f"messages[{i}]", "each message must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ROLES:
            raise invalid(f"messages[{i}].role", f"{role!r} is not one of {sorted(ROLES)}")
        if "content" not in message and role != "assistant":
            raise invalid(f"messages[{i}].content", "is required")
        chars += _text_length(message.get("content"), f"messages[{i}].content")
    return chars


def _max_tokens(body: dict) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if not _is_int(value):
            raise invalid(name, f"expected an integer, got {type(value).__name__}")
        if value < 1:
            raise invalid(name, f"must be at least 1, got {value}")
        return value
    return None


def _min_tokens(body: dict, max_tokens: int | None) -> int:
    """vLLM's sampling extensions, honoured as vLLM does: ``min_tokens`` (at most max_tokens) and
    ``ignore_eos`` (generate until max_tokens)."""
    ignore_eos, min_tokens = body.get("ignore_eos", False), body.get("min_tokens", 0)
    if not isinstance(ignore_eos, bool):
        raise invalid("ignore_eos", f"expected a boolean, got {ignore_eos!r}")
    if not _is_int(min_tokens) or min_tokens < 0:
        raise invalid("min_tokens", f"expected an integer >= 0, got {min_tokens!r}")
    if max_tokens is not None and min_tokens > max_tokens:
        raise invalid(
            "min_tokens", f"must be less than or equal to max_tokens={max_tokens}, got {min_tokens}"
        )
    return max_tokens if ignore_eos and max_tokens is not None else min_tokens


def _check_number(name: str, value: Any) -> None:
    low, high = _NUMBERS[name]
    if not _is_number(value) or not low <= value <= high:
        raise invalid(name, f"expected a number in [{low:g}, {high:g}], got {value!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise invalid(name, f"expected a boolean, got {value!r}")


def _check_object(name: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise invalid(name, f"expected an object, got {type(value).__name__}")


def _check_integer(name: str, value: Any) -> None:
    if not _is_int(value):
        raise invalid(name, f"expected an integer, got {value!r}")


def _check_n(name: str, value: Any) -> None:
    if not _is_int(value) or value != 1:
        raise invalid(name, f"only n=1 is supported, got {value!r}")


def _check_stop(name: str, value: Any) -> None:
    if not isinstance(value, str) and not (
        isinstance(value, list) and len(value) <= 4 and all(isinstance(s, str) for s in value)
    ):
        raise invalid(name, "expected a string or an array of at most 4 strings")


def _check_string(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise invalid(name, "expected a string")


def _check_array(name: str, value: Any) -> None:
    if not isinstance(value, list):
        raise invalid(name, "expected an array")


# optional fields -> their check; only the fields present in a body are looked at (hot path)
_CHECKS = {
    **dict.fromkeys(_NUMBERS, _check_number),
    **dict.fromkeys(_BOOLS, _check_bool),
    **dict.fromkeys(_OBJECTS, _check_object),
    "seed": _check_integer,
    "top_logprobs": _check_integer,
    "n": _check_n,
    "stop": _check_stop,
    "user": _check_string,
    "tools": _check_array,
}


def _check_options(body: dict) -> None:
    for name, value in body.items():
        check = _CHECKS.get(name)
        if check is not None and value is not None:
            check(name, value)


def validate_chat(body: Any, models: dict) -> ChatRequest:
    """Check a decoded chat completion body; raise APIError (400/404) naming the bad field."""
    if not isinstance(body, dict):
        raise invalid("body", f"expected a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "is required and must be a non-empty string")
    chars = _prompt_chars(body.get("messages"))
    _check_options(body)
    stream = body.get("stream") is True
    options = body.get("stream_options")
    if options is not None and not stream:
        raise invalid("stream_options", "is only allowed when 'stream' is true")
    include_usage = False
    if options is not None:
        include_usage = options.get("include_usage", False)
        if not isinstance(include_usage, bool):
            raise invalid("stream_options.include_usage", f"expected a boolean, got {include_usage!r}")
    max_tokens = _max_tokens(body)
    if model not in models:
        raise not_found(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    return ChatRequest(
        model, stream, include_usage, max_tokens, -(-chars // 4), _min_tokens(body, max_tokens)
    )
