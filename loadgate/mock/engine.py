"""The simulated inference server: slots + bounded queue, latency draws, continuous-batching pacing.

Timing model of one generation (documented in docs/mock.md, "Latency and capacity model"):
  queue wait (FIFO, until one of capacity.slots frees)
  + (ttft draw + prompt_tokens / prefill_tokens_per_s) x (1 + prefill_slowdown x (active - 1))
  + per token: (1 / tokens_per_s) x (1 + batching_slowdown x (active - 1))
where `active` is the number of generations holding a slot at that moment, so latency rises with load
the way a continuous-batching server's does.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from .config import CapacityConfig, ModelConfig

# non-streaming generations are paced in segments of this many tokens (one timer per segment)
SEGMENT_TOKENS = 16
# lateness absorbed by the token schedule (uvloop timers tick in milliseconds); beyond it, re-anchor
LATE_SLACK_S = 0.002


class Slots:
    """A FIFO slot pool with a bounded waiting queue (asyncio, single thread)."""

    def __init__(self, slots: int, queue: int):
        self.slots = slots
        self.queue_limit = queue
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    def try_enter(self) -> asyncio.Future[None] | Literal[True] | None:
        """True: slot taken now; a future: queued (await it); None: full, reject."""
        if self.active < self.slots and not self._waiters:
            self.active += 1
            return True
        if len(self._waiters) >= self.queue_limit:
            return None
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def leave(self, entry: asyncio.Future[None] | Literal[True]) -> None:
        """Give back what try_enter() returned: the slot, or the queue place if never served."""
        if entry is True:
            self.release()
        else:
            self.abandon(entry)

    def abandon(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done() and not waiter.cancelled():
            self.release()
        elif waiter in self._waiters:
            self._waiters.remove(waiter)
            waiter.cancel()

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next waiter
                return
        self.active -= 1


@dataclass(slots=True)
class Plan:
    """What one generation will produce, drawn when the request is admitted."""

    model: ModelConfig
    tokens: int
    finish_reason: str
    ttft: float


class Engine:
    """Draws plans and paces generations against the shared slot pool."""

    def __init__(self, capacity: CapacityConfig, rng: random.Random, slots: Slots | None = None):
        self.capacity = capacity
        self.rng = rng
        self.slots = slots or Slots(capacity.slots, capacity.queue)

    def plan(
        self, model: ModelConfig, max_tokens: int | None, prompt_tokens: int = 0, min_tokens: int = 0
    ) -> Plan:
        """Draw the completion length (at least min_tokens, capped by max_tokens) and the unloaded time to
        first token."""
        drawn = max(1, min_tokens, round(model.output_tokens.draw(self.rng)))
        ttft = model.ttft.draw(self.rng)
        if model.prefill_tokens_per_s > 0:
            ttft += prompt_tokens / model.prefill_tokens_per_s
        if max_tokens is not None and (drawn > max_tokens or min_tokens >= max_tokens):
            return Plan(model, max_tokens, "length", ttft)
        return Plan(model, drawn, "stop", ttft)

    def _factor(self, slowdown: float) -> float:
        return 1.0 + slowdown * max(self.slots.active - 1, 0)

    def first_token_delay(self, plan: Plan) -> float:
        return plan.ttft * self._factor(self.capacity.prefill_slowdown)

    def token_delay(self, plan: Plan, tokens: int = 1) -> float:
        if plan.model.tokens_per_s <= 0:
            return 0.0
        return tokens / plan.model.tokens_per_s * self._factor(self.capacity.batching_slowdown)

    async def stream_tokens(self, plan: Plan) -> AsyncIterator[int]:
        """Yield token indexes at their due times.

        Deadlines are absolute, so timer granularity never makes the stream drift slower; but when the
        process falls more than LATE_SLACK_S behind (a scheduling hiccup), the schedule restarts from
        now instead of bursting tokens to catch up, as a real server's next decode step would.
        """
        loop = asyncio.get_running_loop()
        due = loop.time() + self.first_token_delay(plan)
        for index in range(plan.tokens):
            if index:
                due += self.token_delay(plan)
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -LATE_SLACK_S:
                due -= delay
            yield index

    async def generate(self, plan: Plan) -> None:
        """Spend the whole generation time (non-streaming), re-reading the load every segment."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.first_token_delay(plan)
        left = plan.tokens
        while True:
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if left <= 1:
                return
            step = min(SEGMENT_TOKENS, left - 1)
            due += self.token_delay(plan, step)
            left -= step
