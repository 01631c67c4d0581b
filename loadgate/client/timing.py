"""Per-request LLM timing and the figures derived from it, as vLLM's benchmark client defines them.

All instants are ``time.perf_counter()`` seconds; every figure returned is in milliseconds except
tokens/s. Definitions (vLLM ``benchmarks/backend_request_func.py`` / ``benchmark_serving.py``):

- TTFB: send -> first response byte (the HTTP headers), a network/queueing figure.
- TTFT: send -> first event carrying non-empty content (text, reasoning or tool-call arguments).
- ITL:  gaps between consecutive content-bearing events (one value per gap).
- E2E:  send -> last content-bearing event (a trailing usage-only chunk is excluded); for a
  non-streamed response, send -> body fully read.
- TPOT: (E2E - TTFT) / (output_tokens - 1), only when output_tokens > 1.
- TOKENS/S: output_tokens / E2E for one request.

output_tokens is the server's ``usage.completion_tokens`` when it sent one, else the answer's text counted
by :mod:`loadgate.client.tokens` (a tokenizer, or the documented estimate): never the number of chunks,
which says nothing about tokens (a server may send one character, or many tokens, per chunk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestTiming:
    """What one chat request observed; fill it while reading the response."""

    t_send: float
    t_first_byte: float | None = None
    t_tokens: list[float] = field(default_factory=list)  # arrival of each content-bearing event
    t_end: float | None = None  # body fully read (non-stream) / stream finished
    usage_tokens: int | None = None  # usage.completion_tokens when the server sent it
    counted_tokens: int | None = None  # without usage: the answer's text counted by loadgate
    counted_by: str | None = None  # how counted_tokens was counted: "tokenizer" or "estimate"
    prompt_tokens: int | None = None  # usage.prompt_tokens when the server sent it (the input length)
    response_id: str | None = None  # the answer's "id" (the request log)

    def first_byte(self, t: float) -> None:
        if self.t_first_byte is None:
            self.t_first_byte = t

    def content_event(self, t: float) -> None:
        self.t_tokens.append(t)

    @property
    def streamed(self) -> bool:
        return bool(self.t_tokens)

    @property
    def output_tokens(self) -> int:
        """Tokens generated: the server's usage when given, else the text counted by loadgate."""
        if self.usage_tokens is not None:
            return self.usage_tokens
        return self.counted_tokens or 0

    @property
    def token_source(self) -> str:
        """ "server" when the server's usage counted the tokens, else how loadgate counted them."""
        if self.usage_tokens is not None:
            return "server"
        return self.counted_by or "estimate"

    @property
    def ttfb_ms(self) -> float | None:
        return None if self.t_first_byte is None else (self.t_first_byte - self.t_send) * 1000

    @property
    def ttft_ms(self) -> float | None:
        return (self.t_tokens[0] - self.t_send) * 1000 if self.t_tokens else None

    @property
    def e2e_ms(self) -> float | None:
        if self.t_tokens:
            return (self.t_tokens[-1] - self.t_send) * 1000
        return None if self.t_end is None else (self.t_end - self.t_send) * 1000

    @property
    def itl_ms(self) -> list[float]:
        ts = self.t_tokens
        return [(b - a) * 1000 for a, b in zip(ts, ts[1:], strict=False)]

    @property
    def tpot_ms(self) -> float | None:
        return self.figures()[3]

    @property
    def tokens_per_s(self) -> float | None:
        return self.figures()[4]

    def figures(self) -> tuple[float | None, float | None, float | None, float | None, float | None]:
        """(TTFB, TTFT, E2E, TPOT ms, tokens/s), each derived once; None where it does not apply."""
        ttft, e2e, n = self.ttft_ms, self.e2e_ms, self.output_tokens
        tpot = None if ttft is None or e2e is None or n < 2 else (e2e - ttft) / (n - 1)
        tokens_per_s = n / (e2e / 1000) if e2e and n > 0 else None
        return self.ttfb_ms, ttft, e2e, tpot, tokens_per_s


@dataclass(frozen=True, slots=True)
class GoodputTargets:
    """Service-level objectives in ms; a request is "good" when it meets every target that is set
    (vLLM ``--goodput ttft:X tpot:Y e2el:Z``). None means not checked."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    enabled: bool = field(init=False)  # any target set (read on every answer: worked out once)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "enabled", any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2e_ms))
        )

    def met_by(self, timing: RequestTiming) -> bool:
        _, ttft, e2e, tpot, _ = timing.figures()  # (tpot_ms alone would derive TTFT and E2E once more)
        checks = ((self.ttft_ms, ttft), (self.tpot_ms, tpot), (self.e2e_ms, e2e))
        for target, value in checks:
            # vLLM counts a missing TPOT (single-token output) as meeting it: TPOT = 0 there.
            if target is not None and value is not None and value > target:
                return False
        return True

    def as_dict(self) -> dict[str, float | None]:
        return {"ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms, "e2e_ms": self.e2e_ms}


def parse_goodput(spec: str) -> GoodputTargets:
    """Parse "ttft:500,tpot:50,e2e:10000" (ms; also vLLM's "e2el"); ValueError naming the bad target."""
    values: dict[str, float] = {}
    aliases = {"ttft": "ttft_ms", "tpot": "tpot_ms", "e2e": "e2e_ms", "e2el": "e2e_ms"}
    for part in filter(None, (p.strip() for p in spec.replace(" ", ",").split(","))):
        key, sep, raw = part.partition(":")
        if not sep or key.lower() not in aliases:
            raise ValueError(f"target {part!r} is not NAME:MS")
        try:
            ms = float(raw)
        except ValueError:
            raise ValueError(f"target {part!r} needs a finite number of ms > 0") from None
        if not math.isfinite(ms) or ms <= 0:
            raise ValueError(f"target {part!r} needs a finite number of ms > 0")
        values[aliases[key.lower()]] = ms
    return GoodputTargets(**values)
