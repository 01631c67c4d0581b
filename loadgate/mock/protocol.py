"""OpenAI wire format of chat completions: ids, bodies and pre-encoded SSE chunks."""

from __future__ import annotations

import itertools
import json
import os
from functools import lru_cache

from .engine import Plan

# The generated text: one vocabulary word per token, JSON-encoded once at import.
_WORDS = [
    "The",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "a",
    "load",
    "test",
    "measures",
    "every",
    "token",
    "it",
    "sends",
    "so",
    "that",
    "the",
    "gateway",
    "proves",
    "its",
    "latency",
    "and",
    "error",
    "budget",
    "before",
    "each",
    "deploy",
]
_TOKEN_JSON = tuple(json.dumps(" " + w).encode() for w in _WORDS)
_FIRST_TOKEN_JSON = json.dumps(_WORDS[0]).encode()

_RUN = os.urandom(4).hex()
_COUNTER = itertools.count(1)
FINGERPRINT = "fp_loadgate"

SSE_DONE = b"data: [DONE]\n\n"
MALFORMED_CHUNK = b'data: {"id": "broken", "choices": [{"delta": {"content": \n\n'


def new_id(prefix: str) -> str:
    """Unique within a run and across runs (random run prefix + counter), cheap on the hot path."""
    return f"{prefix}{_RUN}{next(_COUNTER):08x}"


def token_json(index: int) -> bytes:
    return _FIRST_TOKEN_JSON if index == 0 else _TOKEN_JSON[index % len(_TOKEN_JSON)]


def token_text(index: int) -> str:
    """The text of token `index` (the streamed delta: a word, with a leading space after the first)."""
    return _WORDS[0] if index == 0 else " " + _WORDS[index % len(_WORDS)]


@lru_cache(maxsize=4096)
def content(tokens: int) -> str:
    """The text of a `tokens`-token answer (exactly the concatenation of the streamed deltas)."""
    words = [_WORDS[i % len(_WORDS)] for i in range(tokens)]
    return " ".join(words)


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(request_id: str, created: int, plan: Plan, prompt_tokens: int, with_usage: bool) -> dict:
    body = {
        "id": request_id,
        "object": "chat.completion",
        "created": created,
        "model": plan.model.id,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content(plan.tokens), "refusal": None},
                "logprobs": None,
                "finish_reason": plan.finish_reason,
            }
        ],
    }
    if with_usage:
        body["usage"] = usage(prompt_tokens, plan.tokens)
    return body


@lru_cache(maxsize=4096)
def _json_string(text: str) -> str:
    return json.dumps(text)


def completion_bytes(
    request_id: str, created: int, plan: Plan, prompt_tokens: int, with_usage: bool
) -> bytes:
    """`completion()` encoded from a template (the non-streaming hot path); same JSON, no dict round-trip."""
    usage_part = ""
    if with_usage:
        usage_part = (
            f',"usage":{{"prompt_tokens":{prompt_tokens},"completion_tokens":{plan.tokens},'
            f'"total_tokens":{prompt_tokens + plan.tokens}}}'
        )
    return (
        f'{{"id":"{request_id}","object":"chat.completion","created":{created},"model":{_json_string(plan.model.id)},'
        f'"system_fingerprint":"{FINGERPRINT}","choices":[{{"index":0,"message":{{"role":"assistant",'
        f'"content":{_json_string(content(plan.tokens))},"refusal":null}},"logprobs":null,'
        f'"finish_reason":"{plan.finish_reason}"}}]{usage_part}}}'
    ).encode()


class ChunkEncoder:
    """Pre-encodes the invariant part of one stream's chunks; each token is a byte concatenation."""

    __slots__ = ("_head", "_request_id", "_created", "_model")

    _TAIL = b',"logprobs":null,"finish_reason":null}]}\n\n'

    def __init__(self, request_id: str, created: int, model: str):
        self._request_id, self._created, self._model = request_id, created, model
        self._head = (
            f'data: {{"id":"{request_id}","object":"chat.completion.chunk","created":{created},'
            f'"model":{json.dumps(model)},"system_fingerprint":"{FINGERPRINT}","choices":[{{"index":0,"delta":'
        ).encode()

    def role(self) -> bytes:
        return self._head + b'{"role":"assistant","content":""}' + self._TAIL

    def token(self, index: int) -> bytes:
        return self._head + b'{"content":' + token_json(index) + b"}" + self._TAIL

    def text(self, text: str) -> bytes:
        """A content chunk carrying any text (several tokens, or a few characters of one)."""
        return self._head + b'{"content":' + json.dumps(text).encode() + b"}" + self._TAIL

    def finish(self, reason: str) -> bytes:
        return self._head + b'{},"logprobs":null,"finish_reason":"' + reason.encode() + b'"}]}\n\n'

    def usage(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        chunk = {
            "id": self._request_id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": FINGERPRINT,
            "choices": [],
            "usage": usage(prompt_tokens, completion_tokens),
        }
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"
