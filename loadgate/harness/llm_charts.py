"""The history behind the web UI's "LLM charts" tab: TTFT, ITL and E2E p50/p95 and output tokens/s per
endpoint, one point a second from the test start.

Each point holds the figures of the last :data:`WINDOW_S` seconds (a sliding window, as Locust's own
"current" percentiles: :mod:`loadgate.harness.windows`), read on the process that holds the run's totals
(a local runner, or the master with every worker's reports merged). The page polls
:meth:`LlmCharts.payload` with the points it already has and gets only the new ones; a new test or
Locust's **Reset stats** starts a new history (a new ``run`` id), which the page takes as "start over".
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import gevent

from loadgate.contract import E2E, ITL, TTFT, is_model_row
from loadgate.harness.state import has_state, state
from loadgate.harness.windows import Window, snapshot

WINDOW_S = 10.0
STEP_S = 1.0
MAX_POINTS = 3600  # then every other point of the older half goes: a long run keeps its whole shape
# per endpoint, in this order: TTFT p50, p95, ITL p50, p95, E2E p50, p95, output tokens/s
SERIES = (
    "ttft_p50",
    "ttft_p95",
    "itl_p50",
    "itl_p95",
    "e2e_p50",
    "e2e_p95",
    "tokens_per_s",
)
_TOKENS = "tokens\0"  # counter name prefix: output tokens of one endpoint


class LlmCharts:
    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.run = uuid.uuid4().hex[:12]
        self.version = 0  # bumped when old points are thinned: the page then reloads them all
        self.points: list[dict[str, Any]] = []
        self.window = Window(WINDOW_S)
        self.greenlet: Any = None

    def start(self) -> None:
        """A test starts: a new history, sampled every second until it stops."""
        self.stop()
        self.clear()
        self.greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None

    def clear(self) -> None:
        """Start the history over (a new test, or Locust's Reset stats)."""
        self.run = uuid.uuid4().hex[:12]
        self.version = 0
        self.points = []
        self.window = Window(WINDOW_S)

    def _loop(self) -> None:
        while True:
            gevent.sleep(STEP_S)
            self.sample(time.time())

    def sample(self, now: float) -> dict[str, Any] | None:
        """Add one point: the figures of the last WINDOW_S seconds per endpoint."""
        if not has_state(self.environment):
            return None
        llm = state(self.environment).llm
        counters = {_TOKENS + name: float(n) for name, n in llm.tokens_by_name.items()}
        self.window.add(snapshot(now, llm.stats, counters), epoch=llm.window_start, epoch_at=llm.window_start)
        span = self.window.span()
        if span is None:
            return None
        names = sorted(  # per endpoint: the per-model rows are in the LLM metrics table, not charted
            {
                name
                for name, method in span.histograms
                if method in (TTFT, ITL, E2E) and not is_model_row(name)
            }
            | {key.removeprefix(_TOKENS) for key in span.counters}
        )
        endpoints = {}
        for name in names:
            values = [
                span.percentile(method, fraction, name)
                for method in (TTFT, ITL, E2E)
                for fraction in (0.5, 0.95)
            ]
            values.append((span.rate(_TOKENS + name) or 0.0) if _TOKENS + name in span.counters else None)
            if any(v is not None for v in values):
                endpoints[name] = [None if v is None else round(v, 2) for v in values]
        point = {"at": round(now, 3), "endpoints": endpoints}
        self.points.append(point)
        if len(self.points) > MAX_POINTS:
            half = len(self.points) // 2
            self.points = self.points[:half:2] + self.points[half:]
            self.version += 1
        return point

    def payload(self, run: str = "", version: int = -1, have: int = 0) -> dict[str, Any]:
        """The points a page holding ``have`` points of (run, version) is missing; all of them (with
        ``"full": true``) when it holds another history."""
        full = run != self.run or version != self.version or not 0 <= have <= len(self.points)
        meta = state(self.environment).meta if has_state(self.environment) else {}
        return {
            "run": self.run,
            "version": self.version,
            "full": full,
            "points": self.points if full else self.points[have:],
            "series": list(SERIES),
            "window_s": WINDOW_S,
            "warmup_end": meta.get("stats_reset_at"),
            "running": self.greenlet is not None,
        }
