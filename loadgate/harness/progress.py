"""Headless progress: one status line on stderr every ``--progress-interval`` (default 10 s; 0: off).

    loadgate: 0:20/0:40 | 20 users | last 10s: 14.2 req/s, 0.0% failed, TTFT p95 412 ms, ITL p95 31.2 ms,
    850 tok/s out | SLA 0 of 12 breached

Printed by the process that holds the run's totals (a local runner or the master, merged from every
worker), from the test start until it stops; a worker or a web-UI run prints none. Requests/s, failures,
the TTFT and ITL p95 (every endpoint together) and output tokens/s are those of the last interval only
(:mod:`loadgate.harness.windows`), so a slowdown shows at once instead of being averaged away. In rate
mode (a ``requested_rate`` in the LLM summary) the users are replaced by the offered and achieved rate.
With ``--sla`` the count of thresholds breached at the last live evaluation closes the line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from typing import IO, Any

import gevent

from loadgate.contract import ITL, TTFT
from loadgate.harness import outputs
from loadgate.harness.locust_compat import is_worker
from loadgate.harness.state import state
from loadgate.harness.windows import Span, Window, snapshot

PREFIX = "loadgate:"


def interval_s(options: Any) -> float:
    """The progress interval of a run's options (validated at init); 0 when off or not headless."""
    from loadgate.options import parse_value

    if options is None or not getattr(options, "headless", False):
        return 0.0
    return float(parse_value("--progress-interval", getattr(options, "progress_interval", "10s")))


class Progress:
    """The status line of one environment."""

    def __init__(self, environment: Any, every_s: float, out: IO[str] | None = None) -> None:
        self.environment = environment
        self.every_s = every_s
        self.out = out
        self.started_at = time.time()
        self.http = Window(every_s)
        self.llm = Window(every_s)
        self.greenlet: Any = None

    # -- measuring ------------------------------------------------------------------------------------

    def sample(self, now: float) -> None:
        stats = self.environment.stats
        total = stats.total
        self.http.add(
            snapshot(now, counters={"requests": total.num_requests, "failures": total.num_failures}),
            epoch=total.start_time,
            epoch_at=total.start_time,
        )
        llm = state(self.environment).llm
        self.llm.add(
            snapshot(now, llm.stats, {"tokens": llm.counters.output_tokens}),
            epoch=llm.window_start,
            epoch_at=llm.window_start,
        )

    def line(self, now: float) -> str:
        """The status line from the figures of the last interval (call :meth:`sample` first)."""
        http, llm = self.http.last_step(), self.llm.last_step()
        options = self.environment.parsed_options
        planned = getattr(options, "run_time", None) if options is not None else None
        clock = _clock(now - self.started_at) + (f"/{_clock(planned)}" if planned else "")
        parts = [clock, self.load_text(http)]
        if http is None or http.seconds < 1:  # the warm-up (or a reset) ended just now: nothing to show yet
            return f"{PREFIX} " + " | ".join([*parts, "statistics reset just now"])
        requests = http.counters.get("requests", 0.0)
        failures = http.counters.get("failures", 0.0)
        window = f"last {_seconds(http.seconds)}:"
        figures = [
            f"{_number(http.rate('requests'))} req/s",
            f"{_percent(failures, requests)} failed",
            f"TTFT p95 {_ms(llm.percentile(TTFT, 0.95) if llm else None)}",
            f"ITL p95 {_ms(llm.percentile(ITL, 0.95) if llm else None)}",
            f"{_number(llm.rate('tokens') if llm else None)} tok/s out",
        ]
        parts.append(f"{window} {', '.join(figures)}")
        sla = self.sla_text()
        if sla:
            parts.append(sla)
        return f"{PREFIX} " + " | ".join(parts)

    def load_text(self, http: Span | None) -> str:
        """Users, or in rate mode the offered and achieved request rate."""
        summary: Mapping[str, Any] = outputs.summary(state(self.environment))
        requested = summary.get("requested_rate")
        if isinstance(requested, int | float) and not isinstance(requested, bool):
            achieved = summary.get("achieved_rate")
            if not isinstance(achieved, int | float) or isinstance(achieved, bool):
                achieved = http.rate("requests") if http else None
            return f"rate {_number(float(requested))}/s offered, {_number(achieved)}/s achieved"
        runner = self.environment.runner
        users = runner.user_count if runner is not None else 0
        return f"{users} user" + ("" if users == 1 else "s")

    def sla_text(self) -> str:
        live = state(self.environment).live_sla
        if live is None:
            return ""
        breached, total, evaluated = live.breach_count()
        if not evaluated:
            return f"SLA {total} thresholds, not evaluated yet"
        return f"SLA {breached} of {total} breached"

    # -- running --------------------------------------------------------------------------------------

    def print_line(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.sample(now)
        out = self.out or sys.stderr
        out.write(self.line(now) + "\n")
        out.flush()

    def loop(self) -> None:
        self.sample(time.time())
        while True:
            gevent.sleep(self.every_s)
            self.print_line()

    def start(self) -> None:
        self.stop()
        self.started_at = time.time()
        self.greenlet = gevent.spawn(self.loop)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None


def install(environment: Any) -> Progress | None:
    """At init: the status line for a headless local runner or master with a progress interval."""
    if is_worker(environment):
        return None
    every_s = interval_s(environment.parsed_options)
    if every_s <= 0:
        return None
    progress = Progress(environment, every_s)
    environment.events.test_start.add_listener(lambda **_kw: progress.start())
    environment.events.test_stop.add_listener(lambda **_kw: progress.stop())
    return progress


# -- formatting ---------------------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _seconds(seconds: float) -> str:
    return f"{seconds:.0f}s"


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f}%" if whole > 0 else "-"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"
