"""Live SLA: the gate's threshold file evaluated during a Locust run, on the live stats.

    locust -f locustfile.py --sla sla/thresholds.yaml [--sla-abort] [--sla-interval 5s]

Every second it samples the sliding-window figures of every row (the same ~10 s window Locust's
``--csv-full-history`` writes); every ``--sla-interval`` it evaluates the file with the gate's own
evaluator, logging each rule that starts or stops failing. ``--sla-abort`` stops the run on the first
breach that has data (like k6's abortOnFail). When Locust quits, a final fail-closed evaluation (plus any
"for" breach seen during the run) sets the exit code to 1 on breach; a bad threshold file exits 2 at
start-up. Runs only on the master or a local runner. The gate on the run's CSVs stays the authority: it
also checks the warm-up record and compares with a baseline.

Imported only when a run is given ``--sla`` (by :mod:`loadgate.harness.lifecycle`): it brings pandas and
the whole gate, which every other Locust process (workers included) need not load.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import defaultdict, deque
from itertools import chain
from typing import Any

import gevent
import pandas as pd
from locust.stats import PERCENTILES_TO_REPORT, RequestStats, StatsEntry, get_readable_percentiles

from loadgate.contract import EXIT_BAD_INPUT
from loadgate.gate.config import SlaConfig, load_config
from loadgate.gate.data import LLM_ROW, SUMMARY_FIELDS, History, Row, RunData, derive_figures, row_key
from loadgate.gate.errors import GateInputError
from loadgate.gate.evaluate import FAIL, Evaluation, Verdict, evaluate
from loadgate.gate.report import table
from loadgate.harness import outputs, precision
from loadgate.harness.state import has_state, state
from loadgate.options import SettingError, parse_value

logger = logging.getLogger("loadgate.live_sla")

HTTP, LLM = "live stats", "live LLM stats"
LABELS = get_readable_percentiles(PERCENTILES_TO_REPORT)
SAMPLE_INTERVAL_S = 1.0


class LiveSla:
    """Samples, evaluates and latches "for" breaches for one environment."""

    def __init__(self, environment: Any, config: SlaConfig, abort: bool, interval_s: float) -> None:
        self.environment = environment
        self.config = config
        self.abort = abort
        self.interval_s = interval_s
        keep = max([rs.rule.window_s or 0 for spec in config.all_rows() for rs in spec.rules] + [0])
        self.keep_s = keep + 2 * interval_s + 15  # a "for" breach is seen while it lasts, then latched
        self.samples: dict[tuple[str, str], deque[dict[str, float]]] = defaultdict(deque)
        self.latched: dict[tuple[str, str, int], Verdict] = {}
        self.failing: set[tuple[str, str, int]] = set()
        self.started_at: float | None = None
        self.aborted = False
        self.greenlets: list[Any] = []

    # -- the run's figures, as gate rows -------------------------------------------------------------

    def stats_sources(self) -> list[tuple[str, RequestStats, bool]]:
        """(source, stats, has an Aggregated row): Locust's stats, and loadgate's LLM stats when loaded."""
        sources = [(HTTP, self.environment.stats, True)]
        llm = _llm_state(self.environment)
        if llm is not None:
            sources.append((LLM, llm.stats, False))
        return sources

    def rows(self) -> dict[str, Row]:
        rows: dict[str, Row] = {}
        for source, stats, with_total in self.stats_sources():
            for entry in _entries(stats, with_total):
                figures: dict[str, float | None] = {
                    "requests": entry.num_requests,
                    "failures": entry.num_failures,
                    "median": entry.median_response_time,
                    "avg": entry.avg_response_time,
                    "min": entry.min_response_time or 0,
                    "max": entry.max_response_time,
                    "rps": entry.total_rps,
                    "fail_rps": entry.total_fail_per_sec,
                    **dict(
                        zip(
                            LABELS,
                            _numbers(precision.percentile_fields(entry, PERCENTILES_TO_REPORT)),
                            strict=True,
                        )
                    ),
                }
                derive_figures(figures)
                row = Row(
                    entry.method or "", entry.name, source, 0, figures, "llm" if source == LLM else "http"
                )
                rows[row.key] = row
        llm = _llm_state(self.environment)
        if llm is not None:
            summary = outputs.summary(state(self.environment))
            rows[LLM_ROW] = Row(
                "",
                LLM_ROW,
                "live LLM summary",
                0,
                {metric: _float(summary.get(key)) for metric, key in SUMMARY_FIELDS.items()},
            )
        return rows

    def sample(self, now: float) -> None:
        """One second of window figures per row, as Locust's full history would write them."""
        stamp = float(int(now))
        for source, stats, with_total in self.stats_sources():
            for entry in _entries(stats, with_total):
                current = precision.percentile_fields(entry, PERCENTILES_TO_REPORT, use_current=True)
                values = {
                    "Timestamp": stamp,
                    "Requests/s": entry.current_rps,
                    "Failures/s": entry.current_fail_per_sec,
                    **dict(zip(LABELS, _numbers(current), strict=True)),
                }
                series = self.samples[(source, row_key(entry.method or "", entry.name))]
                series.append(values)
                while series and series[0]["Timestamp"] < stamp - self.keep_s:
                    series.popleft()

    def run_data(self) -> RunData:
        histories: dict[str, History | None] = {}
        for kind, source in (("http", HTTP), ("llm", LLM)):
            frames = {
                key: pd.DataFrame(list(series))
                for (src, key), series in self.samples.items()
                if src == source and series
            }
            histories[kind] = History(source + " history", True, frames)
        return RunData(
            "live",
            self.rows(),
            None,
            "",
            histories,
            {"http": HTTP + " history", "llm": LLM + " history"},
            None,
            llm_stats_present=True,
        )

    # -- evaluation ------------------------------------------------------------------------------------

    def evaluate(self, final: bool = False) -> Evaluation:
        evaluation = evaluate(self.config, self.run_data())
        for verdict in evaluation.verdicts:
            ident = (verdict.row, verdict.rule, verdict.config_line)
            if verdict.window_s and verdict.status == FAIL and not verdict.reason.startswith("no data"):
                self.latched.setdefault(ident, verdict)
        if final:
            merged = [
                self.latched.get((v.row, v.rule, v.config_line), v) if v.status != FAIL else v
                for v in evaluation.verdicts
            ]
            evaluation.verdicts = sorted(merged, key=lambda v: v.status != FAIL)
        return evaluation

    def tick(self) -> None:
        evaluation = self.evaluate()
        breaches = {
            (v.row, v.rule, v.config_line): v
            for v in evaluation.verdicts
            if v.status == FAIL and not v.reason.startswith("no data")
        }
        for ident, verdict in breaches.items():
            if ident not in self.failing:
                logger.warning("SLA breach: %s", verdict.line())
        for ident in self.failing - set(breaches):
            logger.info('SLA rule holds again: %s of "%s": %s', ident[1].split()[0], ident[0], ident[1])
        self.failing = set(breaches)
        if breaches and self.abort and not self.aborted:
            self.aborted = True
            logger.error("SLA breached; stopping the run (--sla-abort)")
            self.environment.process_exit_code = 1
            runner = self.environment.runner
            options = self.environment.parsed_options
            gevent.spawn(runner.quit if options is None or options.headless else runner.stop)

    def in_warmup(self) -> bool:
        """Figures before the warm-up are not judged (loadgate's --warmup resets the stats when it ends)."""
        if self.started_at is None:
            return True
        if time.time() - self.started_at < self.config.warmup_s:
            self.samples.clear()
            return True
        return False

    def loop(self) -> None:
        next_eval = time.time() + self.interval_s
        while True:
            gevent.sleep(SAMPLE_INTERVAL_S)
            now = time.time()
            if self.in_warmup():
                continue
            self.sample(now)
            if now >= next_eval:
                next_eval = now + self.interval_s
                try:
                    self.tick()
                except GateInputError as error:  # e.g. an ambiguous row name, known only once rows exist
                    logger.error("%s", error.line())
                    self.environment.process_exit_code = 2
                    return

    def finish(self) -> None:
        for greenlet in self.greenlets:
            greenlet.kill(block=False)
        try:
            evaluation = self.evaluate(final=True)
        except GateInputError as error:
            logger.error("%s", error.line())
            self.environment.process_exit_code = 2
            return
        sys.stderr.write("loadgate live SLA (final):\n" + table(evaluation))
        if evaluation.failed:
            self.environment.process_exit_code = max(self.environment.process_exit_code or 0, 1)


def _entries(stats: RequestStats, with_total: bool) -> list[StatsEntry]:
    return list(chain(stats.entries.values(), [stats.total] if with_total else []))


def _numbers(values: list[Any]) -> list[float | None]:
    return [None if v == "N/A" else float(v) for v in values]


def _float(value: Any) -> float | None:
    return (
        None
        if value is None or isinstance(value, bool) or (isinstance(value, float) and math.isnan(value))
        else float(value)
    )


def _llm_state(environment: Any) -> Any:
    """loadgate's LLM stats when loadgate's harness runs this environment, else None."""
    return state(environment).llm if has_state(environment) else None


def start(environment: Any, options: Any) -> None:
    """Load the --sla file (exit 2 on a bad one) and evaluate it through the run."""
    try:
        interval_s = parse_value("--sla-interval", options.sla_interval or "5s")
        config = load_config(options.sla, option="--sla")
    except SettingError as error:
        sys.stderr.write(f"loadgate live SLA: error: {error}\n")
        raise SystemExit(EXIT_BAD_INPUT) from None
    except GateInputError as error:
        sys.stderr.write(error.line().replace("check_sla: error:", "loadgate live SLA: error:", 1) + "\n")
        raise SystemExit(EXIT_BAD_INPUT) from None
    if not config.thresholds:
        logger.warning(
            "--sla %s has only regression rules: nothing to evaluate live (no baseline)", options.sla
        )
    live = LiveSla(environment, config, options.sla_abort, interval_s)
    state(environment).live_sla = live

    @environment.events.test_start.add_listener
    def _start(**_kw: Any) -> None:
        live.started_at = time.time()
        live.samples.clear()
        live.latched.clear()
        live.greenlets.append(gevent.spawn(live.loop))

    @environment.events.quitting.add_listener
    def _quit(**_kw: Any) -> None:
        if live.started_at is not None:
            live.finish()
