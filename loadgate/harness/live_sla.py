"""Live SLA: the gate's threshold file evaluated during a Locust run, on the live stats.

    locust -f locustfile.py --sla sla/thresholds.yaml [--sla-abort] [--sla-interval 5s]

The web UI shows every threshold with its live value, limit and state in its SLA tab
(:func:`ui_rows`); there the file can also be named in the start form (the Sla field), read when the test
starts.

Every second it samples the sliding-window figures of every row (the same ~10 s window Locust's
``--csv-full-history`` writes); every ``--sla-interval`` it evaluates the file with the gate's own
evaluator, logging each rule that starts or stops failing. ``--sla-abort`` stops the run on the first
breach that has data (like k6's abortOnFail). When Locust quits, a final fail-closed evaluation (plus any
"for" breach seen during the run) sets the exit code to 1 on breach; a bad threshold file exits 2 at
start-up. Runs only on the master or a local runner. The gate on the run's CSVs stays the authority: it
also checks the warm-up record and compares with a baseline.

Imported only when a run is given ``--sla`` (by :mod:`loadgate.harness.lifecycle`, at init or, for a file
named in the web UI's form, at test start): it brings pandas and the whole gate, which every other Locust
process (workers included) need not load.
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
from loadgate.gate.evaluate import FAIL, SKIP, Evaluation, Verdict, evaluate
from loadgate.gate.report import table
from loadgate.harness import outputs, precision
from loadgate.harness.state import has_state, state
from loadgate.options import SettingError, parse_value

logger = logging.getLogger("loadgate.live_sla")

HTTP, LLM = "live stats", "live LLM stats"
Ident = tuple[str, str, int]  # (row, rule, config line): one threshold of the file
LABELS = get_readable_percentiles(PERCENTILES_TO_REPORT)
SAMPLE_INTERVAL_S = 1.0


class LiveSla:
    """Samples, evaluates and latches "for" breaches for one environment."""

    def __init__(
        self, environment: Any, config: SlaConfig, abort: bool, interval_s: float, path: str = ""
    ) -> None:
        self.environment = environment
        self.config = config
        self.path = path or config.path
        self.abort = abort
        self.interval_s = interval_s
        keep = max([rs.rule.window_s or 0 for spec in config.all_rows() for rs in spec.rules] + [0])
        self.keep_s = keep + 2 * interval_s + 15  # a "for" breach is seen while it lasts, then latched
        self.samples: dict[tuple[str, str], deque[dict[str, float]]] = defaultdict(deque)
        self.latched: dict[Ident, Verdict] = {}
        self.failing: set[Ident] = set()
        self.failing_since: dict[Ident, float] = {}  # when each breach in progress was first seen
        self.breaches: dict[Ident, tuple[float, float]] = {}  # the last breach that ended: (start, end)
        self.last: dict[Ident, Verdict] = {}  # the latest live evaluation, for the web UI's SLA tab
        self.evaluated_at: float | None = None
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
            server_prefix=state(self.environment).csv_prefix,  # SERVER rows: the scraped file as it grows
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

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        evaluation = self.evaluate()
        self.last = {(v.row, v.rule, v.config_line): v for v in evaluation.verdicts}
        self.evaluated_at = now
        breaches = {ident: v for ident, v in self.last.items() if _breached(v)}
        for ident, verdict in breaches.items():
            if ident not in self.failing:
                logger.warning("SLA breach: %s", verdict.line())
                self.failing_since[ident] = now
        for ident in self.failing - set(breaches):
            logger.info('SLA rule holds again: %s of "%s": %s', ident[1].split()[0], ident[0], ident[1])
            self.breaches[ident] = (self.failing_since.pop(ident, now), now)
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

    # -- what the progress line and the web UI show ----------------------------------------------------

    def breach_count(self) -> tuple[int, int, bool]:
        """(thresholds breached at the last evaluation, thresholds evaluated live, evaluated yet)."""
        total = sum(len(spec.rules) for spec in self.config.thresholds)
        return len(self.failing), total, self.evaluated_at is not None

    def ui_rows(self, now: float | None = None) -> list[dict[str, str]]:
        """One row per threshold of the file: row, rule, live value, limit, state, how long in breach."""
        now = time.time() if now is None else now
        warming_up = self.started_at is not None and now - self.started_at < self.config.warmup_s
        rows = []
        seen: set[Ident] = set()
        for spec in self.config.all_rows():
            for rs in spec.rules:
                ident = (spec.key, rs.rule.text, rs.line)
                seen.add(ident)
                rows.append(self._ui_row(ident, rs.rule.window_s, self.last.get(ident), now, warming_up))
        for ident, verdict in self.last.items():  # e.g. "the run has no requests at all"
            if ident not in seen:
                rows.append(self._ui_row(ident, verdict.window_s, verdict, now, warming_up))
        return rows

    def _ui_row(
        self, ident: Ident, window_s: float | None, verdict: Verdict | None, now: float, warming_up: bool
    ) -> dict[str, str]:
        row, rule, _line = ident
        window = f" for {window_s:g} s" if window_s else ""
        limit = f"{verdict.op} {verdict.limit_text}{window}" if verdict else _limit_of(rule)
        if verdict is None or (verdict.status == FAIL and not _breached(verdict)):
            state = "no data yet (warm-up)" if warming_up else "no data yet"
            value = verdict.reason.removeprefix("no data: ") if verdict is not None else "-"
            return _sla_row(row, rule, value, limit, state, "")
        value = verdict.observed_text
        if verdict.status == SKIP:
            reason = verdict.reason.split(";")[0]  # "optional row absent" (not the list of rows present)
            return _sla_row(row, rule, value or "-", limit, f"skip: {reason}", "")
        if verdict.status == FAIL:
            since = self.failing_since.get(ident, now)
            return _sla_row(
                row, rule, value, limit, "breach", f"{_duration(now - since)} (since {self._clock(since)})"
            )
        ended = self.breaches.get(ident)
        note = f"{_duration(ended[1] - ended[0])}, ended {self._clock(ended[1])}" if ended else ""
        if ident in self.latched:  # a "for" window breached earlier: the final verdict fails on it
            return _sla_row(row, rule, value, limit, "breach (earlier window: fails the run)", note)
        return _sla_row(row, rule, value, limit, "pass", f"earlier: {note}" if note else "")

    def _clock(self, at: float) -> str:
        """Time since the test started, as m:ss."""
        elapsed = max(0, int(at - (self.started_at or at)))
        return f"{elapsed // 60}:{elapsed % 60:02d}"

    # -- running ---------------------------------------------------------------------------------------

    def begin(self) -> None:
        """A test starts: fresh samples and verdicts, one evaluation loop."""
        self.end()
        self.started_at = time.time()
        self.samples.clear()
        self.latched.clear()
        self.failing.clear()
        self.failing_since.clear()
        self.breaches.clear()
        self.last = {}
        self.evaluated_at = None
        self.greenlets.append(gevent.spawn(self.loop))

    def end(self) -> None:
        for greenlet in self.greenlets:
            greenlet.kill(block=False)
        self.greenlets = []

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
        self.end()
        try:
            evaluation = self.evaluate(final=True)
        except GateInputError as error:
            logger.error("%s", error.line())
            self.environment.process_exit_code = 2
            return
        sys.stderr.write("loadgate live SLA (final):\n" + table(evaluation))
        if evaluation.failed:
            self.environment.process_exit_code = max(self.environment.process_exit_code or 0, 1)


def _breached(verdict: Verdict) -> bool:
    return verdict.status == FAIL and not verdict.reason.startswith("no data")


def _limit_of(rule: str) -> str:
    """The limit as written in the rule ("p(95) < 2500 for 10s" -> "< 2500 for 10s")."""
    for op in ("<=", ">=", "==", "!=", "<", ">"):
        if op in rule:
            return op + rule.split(op, 1)[1]
    return rule


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _sla_row(row: str, rule: str, value: str, limit: str, state: str, breach: str) -> dict[str, str]:
    return {"row": row, "rule": rule, "value": value, "limit": limit, "state": state, "breach": breach}


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


def load(environment: Any, options: Any) -> LiveSla:
    """The --sla file and settings of ``options`` as a LiveSla; GateInputError / SettingError when bad."""
    interval_s = parse_value("--sla-interval", options.sla_interval or "5s")
    config = load_config(options.sla, option="--sla")
    if not config.thresholds:
        logger.warning(
            "--sla %s has only regression rules: nothing to evaluate live (no baseline)", options.sla
        )
    return LiveSla(environment, config, bool(options.sla_abort), interval_s, str(options.sla))


def error_line(error: GateInputError | SettingError) -> str:
    if isinstance(error, GateInputError):
        return error.line().replace("check_sla: error:", "loadgate live SLA: error:", 1)
    return f"loadgate live SLA: error: {error}"


def start(environment: Any, options: Any) -> None:
    """At init, for a run given --sla: load the file (exit 2 on a bad one); the listeners that
    :mod:`loadgate.harness.lifecycle` installs evaluate it through each test."""
    try:
        state(environment).live_sla = load(environment, options)
    except (GateInputError, SettingError) as error:
        sys.stderr.write(error_line(error) + "\n")
        raise SystemExit(EXIT_BAD_INPUT) from None


def follow_form(environment: Any) -> None:
    """At test start in the web UI: (re)load the file the start form names (edits included), or drop it
    when the field was emptied.

    A bad file cannot stop a web UI: its one-line error is logged and shown in the SLA tab instead."""
    st = state(environment)
    path = str(getattr(environment.parsed_options, "sla", "") or "")
    if st.live_sla is not None:
        st.live_sla.end()
    st.live_sla, st.live_sla_error = None, ""
    if not path:
        return
    try:
        st.live_sla = load(environment, environment.parsed_options)
    except (GateInputError, SettingError) as error:
        st.live_sla_error = error_line(error)
        logger.error("%s", st.live_sla_error)
        return
