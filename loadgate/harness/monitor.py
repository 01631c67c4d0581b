"""The generator watches itself: event-loop lag, garbage-collector pauses and CPU, in every Locust process.

A load generator that is late stamps its requests late and reads latencies high. A gevent timer that
asks to wake every :data:`TICK_S` measures how late it woke (the event-loop lag): every greenlet waits
that long too. Samples go into a Locust ``StatsEntry`` (same 3-significant-digit histogram as every
figure), travel to the master with the worker reports and merge there. The summary (``loadgen_lag_p50``,
``loadgen_lag_p99``, ``loadgen_lag_max`` in ms, ``loadgen_cpu_s``, ``loadgen_gc_pause_max`` in ms) goes
into ``PREFIX_llm_summary.json`` and ``PREFIX_loadgate.json``; the gate can threshold on
``LLM: loadgen_lag_p99``. While the run goes on, a lag p99 over ``--lag-limit`` (last ~10 s) logs a
warning naming the fix.

At test start each process also collects once, freezes what start-up allocated out of the collector's
view (``gc.freeze()``) and raises the first generation's threshold, so collections stay short and rare
as the heap of in-flight requests grows (the pauses that inflated ITL/TTFT tails under 150 streams).
Once the users are spawned it freezes again, taking the users' own objects out of the collector's view
too; at the stop it unfreezes, so what the stopped users leave behind can be collected.
It also warms the cache of ``inspect.stack()``: Locust's ``runner.stop()`` calls it, and its first call
resolves the path of every loaded module (~70 ms here) with the loop blocked, at the moment the run stops
with every stream still in flight: measured as +60-96 ms on the TTFT of the requests it caught.
"""

from __future__ import annotations

import gc
import inspect
import logging
import resource
import time
from typing import Any

import gevent
from locust.stats import RequestStats, StatsEntry

logger = logging.getLogger("loadgate")

TICK_S = 0.05  # one lag sample every 50 ms
WARN_EVERY_S = 5.0
GC_THRESHOLD = (50_000, 20, 100)  # gen0 threshold raised from 700: fewer, still short, young collections
NAME, METHOD = "event loop", "LAG"


class LoadgenMonitor:
    """Lag samples and CPU of this process (or, on a master, merged from the workers)."""

    def __init__(self) -> None:
        self.stats = RequestStats(use_response_times_cache=True)
        self.cpu_s = 0.0  # CPU seconds since the window started (summed across processes on a master)
        self.gc_pause_max_ms = 0.0
        self._cpu_mark = _cpu_seconds()
        self._gc_started: float | None = None
        self._greenlet: Any = None

    @property
    def lag(self) -> StatsEntry:
        return self.stats.get(NAME, METHOD)

    # -- sampling (every process that runs users) ----------------------------------------------------

    def start(self) -> None:
        self.stop()
        inspect.stack()  # fills inspect's module-file cache now, not in runner.stop() (see the module doc)
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLD)
        if self._gc_callback not in gc.callbacks:
            gc.callbacks.append(self._gc_callback)
        self._greenlet = gevent.spawn(self._sample)

    def settle(self) -> None:
        """Users spawned: freeze them too (no collection, O(1)). Left young, their sessions, pools and
        greenlets are walked by the next gen0 collection with the loop blocked (60 ms at 300 streams here)
        and by every later gen1/gen2 one again."""
        if self._greenlet is not None:
            gc.freeze()

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
            gc.unfreeze()  # the stopped users' cycles become collectable again (the web UI runs test after test)

    def _sample(self) -> None:
        expected = time.perf_counter() + TICK_S
        while True:
            gevent.sleep(max(0.0, expected - time.perf_counter()))
            now = time.perf_counter()
            self.lag.log(max(0.0, (now - expected) * 1000), 0)  # type: ignore[arg-type]  # float ms: see precision
            expected = max(expected + TICK_S, now + TICK_S / 2)  # re-anchor after a long stall

    def _gc_callback(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            self.gc_pause_max_ms = max(self.gc_pause_max_ms, (time.perf_counter() - self._gc_started) * 1000)
            self._gc_started = None

    def take_cpu(self) -> float:
        """CPU seconds since the last call (or the reset)."""
        now = _cpu_seconds()
        used, self._cpu_mark = now - self._cpu_mark, now
        return used

    def reset(self) -> None:
        self.stats.reset_all()
        self.cpu_s, self.gc_pause_max_ms, self._cpu_mark = 0.0, 0.0, _cpu_seconds()

    # -- worker -> master ------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Worker side: what accumulated since the last report (then cleared)."""
        data = {
            "stats": self.stats.serialize_stats(),
            "cpu_s": self.take_cpu(),
            "gc_max": self.gc_pause_max_ms,
        }
        self.stats.reset_all()
        return data

    def merge(self, data: dict[str, Any]) -> None:
        for entry_data in data["stats"]:
            entry = StatsEntry.unserialize(entry_data, self.stats)
            self.stats.get(entry.name, entry.method).extend(entry)
        self.cpu_s += float(data["cpu_s"])
        self.gc_pause_max_ms = max(self.gc_pause_max_ms, float(data["gc_max"]))

    # -- figures ---------------------------------------------------------------------------------------

    def summary(self, local: bool) -> dict[str, Any]:
        """loadgen_* figures; ``local`` adds this process's own CPU (a local run, not a master)."""
        if local:
            self.cpu_s += self.take_cpu()
        lag = self.lag
        has = lag.num_requests > 0
        return {
            "loadgen_lag_p50": round(lag.get_response_time_percentile(0.5), 3) if has else None,
            "loadgen_lag_p99": round(lag.get_response_time_percentile(0.99), 3) if has else None,
            "loadgen_lag_max": round(lag.max_response_time, 3) if has else None,
            "loadgen_lag_samples": lag.num_requests,
            "loadgen_cpu_s": round(self.cpu_s, 3),
            "loadgen_gc_pause_max": round(self.gc_pause_max_ms, 3),
        }

    def check(self, limit_ms: float) -> None:
        """Warn while the run goes on when the recent lag p99 is over the limit."""
        lag = self.lag
        if not lag.num_requests or not lag.use_response_times_cache:
            return
        recent = lag.get_current_response_time_percentile(0.99)
        if recent is not None and recent > limit_ms:
            logger.warning(
                "loadgate: the load generator is late: event-loop lag p99 %.1f ms over the last 10 s (limit "
                "%g ms); its latency figures read high. Add processes (--processes N) or workers, or run "
                "fewer users per process",
                recent,
                limit_ms,
            )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def watch(monitor: LoadgenMonitor, limit_ms: float) -> Any:
    """The master's/local runner's periodic lag check."""

    def loop() -> None:
        while True:
            gevent.sleep(WARN_EVERY_S)
            monitor.check(limit_ms)

    return gevent.spawn(loop)
