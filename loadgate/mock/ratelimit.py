"""Per-API-key rate limits (requests/min, tokens/min) as continuously refilled token buckets."""

from __future__ import annotations

import math
import time

from .config import RateLimitConfig
from .errors import APIError


class Bucket:
    __slots__ = ("capacity", "rate", "level", "stamp")

    def __init__(self, per_minute: int, now: float):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available (0 if it is now; inf if it never fits)."""
        if amount <= self.level:
            return 0.0
        if amount > self.capacity:
            return math.inf
        return (amount - self.level) / self.rate

    def reset_in(self) -> float:
        return (self.capacity - self.level) / self.rate


def duration(seconds: float) -> str:
    """OpenAI's reset format: 20ms, 1.5s, 6m0s."""
    if seconds < 1:
        return f"{max(seconds * 1000, 0):.0f}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes:.0f}m{rest:.0f}s"


class RateLimiter:
    def __init__(self, config: RateLimitConfig):
        self.config = config
        self._buckets: dict[str, tuple[Bucket | None, Bucket | None]] = {}

    def _for(self, key: str, now: float) -> tuple[Bucket | None, Bucket | None]:
        pair = self._buckets.get(key)
        if pair is None:
            rpm, tpm = self.config.requests_per_minute, self.config.tokens_per_minute
            pair = (Bucket(rpm, now) if rpm else None, Bucket(tpm, now) if tpm else None)
            self._buckets[key] = pair
        for bucket in pair:
            if bucket:
                bucket.refill(now)
        return pair

    def check(self, key: str, tokens: int) -> dict[str, str]:
        """Take one request and `tokens` tokens for `key`; return the x-ratelimit-* headers.

        Raises a 429 APIError (with Retry-After and the same headers) when either bucket is short.
        """
        requests, token_bucket = self._for(key, time.monotonic())
        wait_requests = requests.wait_for(1) if requests else 0.0
        wait_tokens = token_bucket.wait_for(tokens) if token_bucket else 0.0
        if wait_requests == 0 and wait_tokens == 0:
            if requests:
                requests.level -= 1
            if token_bucket:
                token_bucket.level -= tokens
        headers = self._headers(requests, token_bucket)
        if wait_requests or wait_tokens:
            kind = "requests" if wait_requests >= wait_tokens else "tokens"
            wait = max(wait_requests, wait_tokens)
            if math.isinf(wait):
                raise APIError(
                    429,
                    f"Request too large: {tokens} tokens exceed the limit of "
                    f"{self.config.tokens_per_minute} tokens per minute.",
                    type="tokens",
                    code="rate_limit_exceeded",
                    headers=headers,
                )
            headers["retry-after"] = str(max(1, math.ceil(wait)))
            headers["retry-after-ms"] = str(math.ceil(wait * 1000))
            limit = self.config.requests_per_minute if kind == "requests" else self.config.tokens_per_minute
            raise APIError(
                429,
                f"Rate limit reached for {kind} per minute (limit {limit}). "
                f"Please try again in {duration(wait)}.",
                type=kind,
                code="rate_limit_exceeded",
                headers=headers,
            )
        return headers

    @staticmethod
    def _headers(requests: Bucket | None, tokens: Bucket | None) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, bucket in (("requests", requests), ("tokens", tokens)):
            if bucket:
                headers[f"x-ratelimit-limit-{name}"] = str(int(bucket.capacity))
                headers[f"x-ratelimit-remaining-{name}"] = str(max(int(bucket.level), 0))
                headers[f"x-ratelimit-reset-{name}"] = duration(bucket.reset_in())
        return headers
