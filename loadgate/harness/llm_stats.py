"""LLM metrics in a second Locust ``RequestStats``, kept apart from the HTTP rows.

Locust's own stats count HTTP requests; putting TTFT or ITL samples there would inflate the
Aggregated request count and requests/s. So each LLM figure is a row of its own collection, keyed
(Name, Type) with Type in :data:`METRIC_TYPES`, using Locust's StatsEntry (histogram, percentiles,
min/max/avg) and Locust's CSV row writer. Workers ship their rows and counters to the master through
``report_to_master`` / ``worker_report`` exactly like Locust ships its own stats.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from itertools import chain
from typing import TYPE_CHECKING, Any

import locust.stats
from locust.stats import RequestStats, StatsCSV, StatsEntry, sort_stats

from loadgate import contract
from loadgate.client.timing import GoodputTargets, RequestTiming
from loadgate.contract import (
    E2E,
    ITL,
    TOKEN_ESTIMATE,
    TOKEN_MIXED,
    TOKEN_SERVER,
    TOKEN_TOKENIZER,
    TOKENS_PER_S,
    TPOT,
    TTFB,
    TTFT,
)
from loadgate.harness import locust_compat, precision
from loadgate.workload import LengthTally

if TYPE_CHECKING:
    from locust.env import Environment
    from locust.stats import CSVWriter

    from loadgate.harness.api import JobResult

REPORT_KEY = "loadgate_llm"  # key of our payload in the worker -> master report
FIGURES = (TTFB, TTFT, E2E, TPOT, TOKENS_PER_S)  # the metrics of RequestTiming.figures(), in its order
# Pending figures and ITL gaps that trigger a fold. In a run a fold costs about 3 times what it does in a
# micro-benchmark, most likely as it runs cold (its code and rows out of the CPU's caches), and fewer,
# larger ones cost less per answer: 1,024 values instead of 256 gave +2% requests per CPU-second. One
# takes about 1 ms: a stall that delays reads but not their kernel receive stamps (a TLS read, stamped
# when made, by at most that).
FOLD_VALUES = 1024


@dataclass
class LlmCounters:
    """Scalar figures summed across workers (all since the last reset)."""

    completed: int = 0  # chat responses measured (stream, non-stream, async results)
    output_tokens: int = 0
    good: int = 0  # completed responses meeting every goodput target
    usage_from_server: int = 0  # answers whose output tokens the server's usage gave
    counted_tokenizer: int = 0  # answers without usage: their text counted by a tokenizer
    counted_estimate: int = 0  # answers without usage: their text estimated (loadgate.client.tokens)
    jobs_completed: int = 0
    jobs_failed: int = 0
    jobs_lost: int = 0  # async/batch jobs not terminal within the job timeout, or when the run stopped
    jobs_lost_at_stop: int = 0  # of those, the ones still being polled when the run stopped the user
    cancelled: int = 0  # requests cut off by the run stopping: not failures, not in Locust's stats

    def add(self, other: dict[str, int]) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + int(other.get(f.name, 0)))

    @property
    def usage_counted(self) -> int:
        """Answers without usage, however their tokens were counted."""
        return self.counted_tokenizer + self.counted_estimate

    def count_source(self, source: str, answers: int = 1) -> None:
        if source == TOKEN_SERVER:
            self.usage_from_server += answers
        elif source == TOKEN_TOKENIZER:
            self.counted_tokenizer += answers
        else:
            self.counted_estimate += answers


LAG_WARN_MS = 100.0  # schedule lag p99 above this: a warning naming the cause
LAG_CAUSES = ("cap", "executors", "late")  # where an arrival's lag was spent (see ArrivalCounters)


@dataclass
class ArrivalCounters:
    """Rate mode's scalar figures, summed across workers. Lag (ms) is split by what the arrival waited
    for: the --max-concurrency cap being full when it was due ("cap"), no free user of its class
    ("executors"), or the generator dispatching it late ("late")."""

    due: int = 0  # arrivals the scheduler put in the queues
    started: int = 0
    waiting_at_stop: int = 0
    lag_cap_ms: float = 0.0
    lag_executors_ms: float = 0.0
    lag_late_ms: float = 0.0

    def add(self, other: dict[str, Any]) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + type(getattr(self, f.name))(other.get(f.name, 0)))


class ArrivalStats:
    """Rate mode (open loop) of one process: arrivals started, schedule lag (ms) and its causes."""

    def __init__(self) -> None:
        self._stats = RequestStats(use_response_times_cache=False)
        self.lag = StatsEntry(self._stats, "schedule lag", "LAG")
        self.counters = ArrivalCounters()
        self.active = False  # a rate-mode run (set by the rate controller, or by a worker's first arrival)
        self.max_concurrency: int | None = None
        # mean offered rate over a wall-clock window (set by the rate controller on the local or master runner)
        self.requested: Callable[[float, float], float | None] | None = None

    def record(self, lag_ms: float, parts: dict[str, float]) -> None:
        """One arrival started ``lag_ms`` after its due time; ``parts``: that lag by cause (LAG_CAUSES)."""
        self.active = True
        self.counters.started += 1
        self.lag.log(max(0.0, lag_ms), 0)  # type: ignore[arg-type]
        for cause, ms in parts.items():
            if cause in LAG_CAUSES and ms > 0:
                attr = f"lag_{cause}_ms"
                setattr(self.counters, attr, getattr(self.counters, attr) + ms)

    def reset(self) -> None:
        self.lag.reset()
        self.counters = ArrivalCounters()

    def report(self) -> dict[str, Any]:
        data = {
            "lag": self.lag.get_stripped_report(),
            "counters": asdict(self.counters),
            "active": self.active,
        }
        self.counters = ArrivalCounters()
        return data

    def merge(self, data: dict[str, Any]) -> None:
        self.lag.extend(StatsEntry.unserialize(data["lag"], self._stats))
        self.counters.add(data["counters"])
        self.active = self.active or bool(data.get("active"))

    def cause(self) -> str | None:
        """ "cap", "executors" or "late": where most of the lag went (None without lag)."""
        c = self.counters
        spent = {"cap": c.lag_cap_ms, "executors": c.lag_executors_ms, "late": c.lag_late_ms}
        top = max(spent, key=lambda k: spent[k])
        return top if spent[top] > 0 else None

    def percentile(self, fraction: float) -> float | None:
        if not self.lag.num_requests:
            return None
        value = self.lag.get_response_time_percentile(fraction)
        return round(min(max(value or 0.0, self.lag.min_response_time or 0.0), self.lag.max_response_time), 3)

    def summary(self, window: tuple[float, float] | None, duration_s: float, stopped: bool) -> dict[str, Any]:
        """The rate keys of PREFIX_llm_summary.json; all null in a closed-loop run."""
        keys = ("requested_rate", "achieved_rate", "schedule_lag_p50", "schedule_lag_p99", "schedule_lag_max",
                "arrivals_waiting_at_stop", "schedule_lag_cause", "max_concurrency")  # fmt: skip
        if not self.active:
            return dict.fromkeys(keys)
        requested = self.requested(*window) if self.requested is not None and window is not None else None
        p99 = self.percentile(0.99)
        return {
            "requested_rate": None if requested is None else round(requested, 4),
            "achieved_rate": round(self.counters.started / duration_s, 4) if duration_s > 0 else None,
            "schedule_lag_p50": self.percentile(0.5),
            "schedule_lag_p99": p99,
            "schedule_lag_max": round(self.lag.max_response_time, 3) if self.lag.num_requests else None,
            "arrivals_waiting_at_stop": self.counters.waiting_at_stop if stopped else None,
            "schedule_lag_cause": self.cause() if p99 is not None and p99 > LAG_WARN_MS else None,
            "max_concurrency": self.max_concurrency,
        }


class LlmStats:
    """The LLM metrics of one process (local, worker or master)."""

    def __init__(self, goodput: GoodputTargets | None = None) -> None:
        self._stats = RequestStats(use_response_times_cache=True)
        # Answers of the current second not yet recorded: (name, model, timing, requested lengths or None).
        # Recorded in bulk (_fold): once per second, every FOLD_VALUES values, and before any read.
        self._answers: list[tuple[str, str | None, RequestTiming, tuple[int | None, int | None] | None]] = []
        self._pending_values = 0
        self._pending_last = 0.0  # epoch time of the newest answer recorded (its second: the pending one's)
        self._counters = LlmCounters()
        self.arrivals = ArrivalStats()
        self._tokens_by_name: dict[str, int] = {}  # output tokens per endpoint (the LLM charts' tokens/s)
        self.cancelled_by_name: dict[str, int] = {}  # "POST /v1/chat/completions" -> cancelled requests
        self.goodput = goodput or GoodputTargets()
        self.token_counter: str | None = None  # how text is counted without usage (a worker reports it)
        self.window_start: float | None = None  # test start or warm-up end (epoch s)
        self._lengths = LengthTally()  # input/output lengths of the answers (--input-tokens' check)
        self.window_end: float | None = None  # test stop; None while running

    # Every read folds the pending answers first, so that what it sees includes every answer recorded.

    @property
    def stats(self) -> RequestStats:
        """The rows (Locust's RequestStats), every answer recorded so far in them."""
        if self._answers:
            self._fold()
        return self._stats

    @property
    def counters(self) -> LlmCounters:
        if self._answers:
            self._fold()
        return self._counters

    @property
    def tokens_by_name(self) -> dict[str, int]:
        if self._answers:
            self._fold()
        return self._tokens_by_name

    @tokens_by_name.setter
    def tokens_by_name(self, value: dict[str, int]) -> None:
        self._tokens_by_name = value

    @property
    def lengths(self) -> LengthTally:
        if self._answers:
            self._fold()
        return self._lengths

    def log(self, metric: str, name: str, value: float) -> None:
        self.stats.entries[(name, metric)].log(value, 0)  # type: ignore[arg-type]
        self._touch_total(time.time())

    def _touch_total(self, now: float) -> None:
        # The total row is never written (a mix of TTFT and ITL samples means nothing), but each row's
        # requests/s reads the collection's start and last-sample times from it.
        self._stats.total.last_request_timestamp = now

    def record(
        self,
        name: str,
        timing: RequestTiming,
        model: str | None = None,
        requested: tuple[int | None, int | None] | None = None,
    ) -> None:
        """Record one successful chat response: every figure it yields in the endpoint's rows and, with a
        model, in that model's rows too ("<name> @<model>", contract.model_row); the counters once;
        with ``requested`` (the input tokens asked for, or None; the max_tokens sent), its lengths. The
        answers wait in a list and are recorded in bulk (far cheaper per answer than one by one), in
        batches of about a millisecond's work (FOLD_VALUES)."""
        now = time.time()
        if int(now) != int(self._pending_last) or self._pending_values >= FOLD_VALUES:
            self._fold()
        self._answers.append((name, model, timing, requested))
        self._pending_values += len(timing.t_tokens) + len(FIGURES)
        self._pending_last = now

    def _fold(self) -> None:
        """Record the pending answers (all from one second): counters, token tallies, lengths, rows."""
        answers, self._answers, self._pending_values = self._answers, [], 0
        if not answers:
            return
        c, goodput, lengths, tokens = self._counters, self.goodput, self._lengths, self._tokens_by_name
        by_row: dict[tuple[str, str | None], list[tuple[tuple[float | None, ...], Sequence[float]]]] = {}
        for name, model, timing, requested in answers:
            by_row.setdefault((name, model), []).append(
                (timing.figures(), timing.itl_ms if len(timing.t_tokens) > 1 else ())
            )
            n = timing.output_tokens
            c.completed += 1
            c.output_tokens += n
            if n:
                tokens[name] = tokens.get(name, 0) + n
            c.count_source(timing.token_source)
            if goodput.enabled and goodput.met_by(timing):
                c.good += 1
            if requested is not None:
                lengths.record(timing.prompt_tokens, n, *requested)
        entries = self._stats.entries
        samples: list[tuple[list[StatsEntry], Sequence[float]]] = []
        for (name, model), rows_answers in by_row.items():
            rows = (name, contract.model_row(name, model)) if model else (name,)
            for i, metric in enumerate(FIGURES):
                values = [v for figures, _ in rows_answers if (v := figures[i]) is not None]
                if values:  # (indexing creates the row: only figures that apply get one)
                    samples.append(([entries[(row, metric)] for row in rows], values))
            gaps = [gap for _, answer_gaps in rows_answers for gap in answer_gaps]
            if gaps:
                samples.append(([entries[(row, ITL)] for row in rows], gaps))
        locust_compat.log_samples(samples, self._pending_last)
        self._touch_total(self._pending_last)

    def record_job(self, job: JobResult) -> None:
        """Record the end of one async or batch job (a rejected submit counts nowhere: its HTTP row failed)."""
        c = self._counters
        if job.outcome == "completed":
            c.jobs_completed += 1
            c.output_tokens += job.tokens
            self._add_tokens(job.name, job.tokens)
            for source, answers in job.token_sources.items():
                c.count_source(source, answers)
            self.log(E2E, job.name, job.e2e_ms)
        elif job.outcome == "failed":
            c.jobs_failed += 1
        elif job.outcome == "lost":
            c.jobs_lost += 1

    def _add_tokens(self, name: str, tokens: int) -> None:
        if tokens:
            self._tokens_by_name[name] = self._tokens_by_name.get(name, 0) + tokens

    def record_lost_at_stop(self, name: str) -> None:
        """A job still being polled when the run stopped its user."""
        self._counters.jobs_lost += 1
        self._counters.jobs_lost_at_stop += 1

    def record_cancelled(self, method: str, name: str) -> None:
        """A request cut off by the run stopping (the server got it; it never completed)."""
        self._counters.cancelled += 1
        key = f"{method} {name}"
        self.cancelled_by_name[key] = self.cancelled_by_name.get(key, 0) + 1

    def reset(self, now: float | None = None) -> None:
        """The warm-up reset: every figure restarts, and the measured window starts at ``now``."""
        self._stats.reset_all()
        self._restart(now)

    def clear(self, now: float | None = None) -> None:
        """A new test: drop every row, as Locust clears its own stats at test start."""
        self._stats.clear_all()
        self._restart(now)

    def _restart(self, now: float | None) -> None:
        self._answers, self._pending_values = [], 0  # answers before the reset or clear: dropped
        self._zero_tallies()
        self.arrivals.reset()
        self.window_start, self.window_end = now or time.time(), None

    def _zero_tallies(self) -> None:
        self._counters = LlmCounters()
        self._lengths = LengthTally()
        self._tokens_by_name = {}
        self.cancelled_by_name = {}

    # -- worker -> master ------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Worker side: serialize and clear what accumulated since the last report."""
        data = {
            "stats": self.stats.serialize_stats(),
            "stats_total": self.stats.total.get_stripped_report(),
            "counters": asdict(self.counters),
            "arrivals": self.arrivals.report(),
            "tokens_by_name": self.tokens_by_name,
            "cancelled_by_name": self.cancelled_by_name,
            "token_counter": self.token_counter,
            "lengths": self.lengths.report(),
        }
        self._zero_tallies()
        return data

    def merge(self, data: dict[str, Any]) -> None:
        """Master side: add one worker report."""
        for entry_data in data["stats"]:
            entry = StatsEntry.unserialize(entry_data, self.stats)
            self.stats.get(entry.name, entry.method).extend(entry)
        self.stats.total.extend(StatsEntry.unserialize(data["stats_total"], self.stats))
        self.counters.add(data["counters"])
        if "arrivals" in data:
            self.arrivals.merge(data["arrivals"])
        for name, tokens in data.get("tokens_by_name", {}).items():
            self._add_tokens(str(name), int(tokens))
        for key, n in (data.get("cancelled_by_name") or {}).items():
            self.cancelled_by_name[key] = self.cancelled_by_name.get(key, 0) + int(n)
        self.lengths.merge(data.get("lengths"))
        if data.get("token_counter") and not self.token_counter:
            self.token_counter = data["token_counter"]

    # -- figures ---------------------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        """Length of the measurement window (since test start or the warm-up reset)."""
        if self.window_start is None:
            return 0.0
        return max(0.0, (self.window_end or time.time()) - self.window_start)

    def token_source(self) -> tuple[str | None, dict[str, float] | None]:
        """How output tokens were counted: one source, or "mixed (server 60%, estimate 40%)" with the
        shares of answers per source (fractions of 1); (None, None) before any answer."""
        c = self.counters
        counts = {
            TOKEN_SERVER: c.usage_from_server,
            TOKEN_TOKENIZER: c.counted_tokenizer,
            TOKEN_ESTIMATE: c.counted_estimate,
        }
        total = sum(counts.values())
        if not total:
            return None, None
        shares = {source: round(n / total, 4) for source, n in counts.items() if n}
        if len(shares) == 1:
            return next(iter(shares)), shares
        label = ", ".join(
            f"{source} {round(share * 100):d}%"
            for source, share in sorted(shares.items(), key=lambda kv: -kv[1])
        )
        return f"{TOKEN_MIXED} ({label})", shares

    def summary(self) -> dict[str, Any]:
        c, duration_s = self.counters, self.duration_s
        if c.usage_counted and not c.usage_from_server:
            usage_source = "counted"
        elif c.usage_counted:
            usage_source = "mixed"
        else:
            usage_source = "server"
        rate = (lambda n: round(n / duration_s, 4)) if duration_s > 0 else (lambda n: 0.0)
        token_source, shares = self.token_source()
        return {
            "duration_s": round(duration_s, 3),
            "completed_requests": c.completed,
            "total_output_tokens": c.output_tokens,
            "output_tokens_per_s": rate(c.output_tokens),
            "goodput_req_per_s": rate(c.good) if self.goodput.enabled else None,
            "good_requests": c.good if self.goodput.enabled else None,
            "goodput_targets": self.goodput.as_dict(),
            "token_source": token_source,
            "token_source_shares": shares,
            "token_counter": self.token_counter if c.usage_counted else None,
            "usage_source": usage_source,  # older readers: "server", "counted" or "mixed"
            "responses_with_server_usage": c.usage_from_server,
            "responses_with_counted_tokens": c.usage_counted,
            "jobs_completed": c.jobs_completed,
            "jobs_failed": c.jobs_failed,
            "lost_jobs": c.jobs_lost,
            "lost_jobs_at_stop": c.jobs_lost_at_stop,
            "cancelled": c.cancelled,
            "cancelled_by_name": dict(sorted(self.cancelled_by_name.items())),
            **self.arrivals.summary(self.window(), duration_s, self.window_end is not None),
            **self.lengths.summary(),
        }

    def window(self) -> tuple[float, float] | None:
        """The measurement window (epoch seconds), up to now while running."""
        if self.window_start is None:
            return None
        return self.window_start, self.window_end or time.time()


def token_source_text(summary: dict[str, Any]) -> str:
    """The token source as the console and the web UI show it, e.g. "tokenizer (tiktoken cl100k_base
    (offline))"; the same value as token_source in PREFIX_llm_summary.json, plus the counter's name."""
    source = summary.get("token_source") or "none (no answers)"
    counter = summary.get("token_counter")
    return f"{source} ({counter})" if counter else source


def summary_lines(llm: LlmStats) -> list[str]:
    """The LLM rows as a console table (printed at the end of a run, beside Locust's own tables)."""
    header = f"{'Type':9} {'Name':36} {'# samples':>9} {'p50':>9} {'p90':>9} {'p95':>9} {'p99':>9} {'avg':>9}"
    lines = ["LLM metrics (ms; TOKENS/S in tokens/s)", header, "-" * len(header)]
    for entry in sort_stats(llm.stats.entries):
        if not entry.num_requests:
            continue
        p = precision.percentiles_of(entry.response_times, entry.num_requests, (0.5, 0.9, 0.95, 0.99))
        lines.append(
            f"{entry.method:9} {entry.name:36} {entry.num_requests:9d} "
            + " ".join(f"{v:9.4g}" for v in (*p, entry.avg_response_time))
        )
    s = llm.summary()
    goodput = f", goodput {s['goodput_req_per_s']} req/s" if s["goodput_req_per_s"] is not None else ""
    lines.append(
        f"output tokens {s['total_output_tokens']} ({s['output_tokens_per_s']} tok/s){goodput}; "
        f"token source: {token_source_text(s)}"
    )
    lines.append(
        f"jobs completed {s['jobs_completed']}, failed {s['jobs_failed']}, lost {s['lost_jobs']} "
        f"({s['lost_jobs_at_stop']} at the stop); cancelled {s['cancelled']} (cut off by the stop: not "
        "failures, not in Locust's tables)"
    )
    if llm.arrivals.active:
        lines.append(rate_line(s))
    lines += llm.lengths.lines()
    return lines


def rate_line(s: dict[str, Any]) -> str:
    """Rate mode's figures in one console line."""

    def num(value: Any, unit: str = "") -> str:
        return "n/a" if value is None else f"{value:.4g}{unit}"

    waiting = s.get("arrivals_waiting_at_stop")
    cap = f", cap {s['max_concurrency']} in flight" if s.get("max_concurrency") else ""
    return (
        f"rate mode: requested {num(s.get('requested_rate'))} req/s, achieved {num(s.get('achieved_rate'))} "
        f"req/s{cap}; schedule lag p50 {num(s.get('schedule_lag_p50'), ' ms')}, p99 "
        f"{num(s.get('schedule_lag_p99'), ' ms')}, max {num(s.get('schedule_lag_max'), ' ms')}; "
        f"{'n/a' if waiting is None else waiting} arrivals waiting at the stop"
    )


class _WithoutAggregated:
    """CSV writer proxy dropping Locust's Aggregated row (a mix of TTFT and ITL means nothing)."""

    def __init__(self, writer: CSVWriter, type_column: int = 0) -> None:
        self._writer = writer
        self._type = type_column  # 0 in _stats.csv rows, 2 in history rows (after Timestamp, User Count)

    def writerow(self, columns) -> None:
        row = list(columns)
        if row[self._type : self._type + 2] != ["", "Aggregated"]:
            self._writer.writerow(row)


class _LlmView:
    """What Locust's StatsCSV reads of its Environment: here the LLM rows (each read folds the pending
    answers in: never a stale reference) and the runner."""

    def __init__(self, environment: Environment, llm: LlmStats) -> None:
        self._environment, self._llm = environment, llm

    @property
    def stats(self) -> RequestStats:
        return self._llm.stats

    @property
    def runner(self) -> Any:
        return self._environment.runner


class LlmStatsCSV(StatsCSV):
    """Writes ``PREFIX_llm_stats.csv`` (and ``_llm_stats_history.csv``) with Locust's own row code."""

    def __init__(self, environment: Environment, llm: LlmStats, prefix: str, full_history: bool) -> None:
        super().__init__(_LlmView(environment, llm), locust.stats.PERCENTILES_TO_REPORT)  # type: ignore[arg-type]
        self.path = contract.path(prefix, contract.LLM_STATS_CSV)
        self.history_path = contract.path(prefix, contract.LLM_STATS_HISTORY_CSV) if full_history else None
        self.full_history = True  # read by Locust's history row code: one row per entry
        self._history_header_written = False
        # the history columns are Locust's; borrow them without opening Locust's files
        self.stats_history_csv_columns = _history_columns(self.percentiles_to_report)

    def _percentile_fields(self, stats_entry: StatsEntry, use_current: bool = False) -> list:
        return precision.percentile_fields(stats_entry, self.percentiles_to_report, use_current)

    def write_totals(self) -> None:
        """Rewrite the totals file atomically (readers never see half a file)."""
        tmp = f"{self.path}.tmp{os.getpid()}"
        with open(tmp, "w", newline="") as f:
            self.requests_csv(_WithoutAggregated(csv.writer(f)))
        os.replace(tmp, self.path)

    def append_history(self, now: float | None = None) -> None:
        if self.history_path is None:
            return
        with open(self.history_path, "a", newline="") as f:
            writer = csv.writer(f)
            if not self._history_header_written:
                writer.writerow(self.stats_history_csv_columns)
                self._history_header_written = True
            locust_compat.write_history_rows(self, _WithoutAggregated(writer, 2), now or time.time())

    def start_history(self) -> None:
        """Truncate the history file from an earlier run with the same prefix."""
        if self.history_path is not None:
            open(self.history_path, "w").close()
            self._history_header_written = False


def _history_columns(percentiles: list[float]) -> list[str]:
    return list(
        chain(
            ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s"],
            locust.stats.get_readable_percentiles(percentiles),
            [
                "Total Request Count",
                "Total Failure Count",
                "Total Median Response Time",
                "Total Average Response Time",
                "Total Min Response Time",
                "Total Max Response Time",
                "Total Average Content Size",
            ],
        )
    )


def write_llm_stats_csv(environment: Environment, llm: LlmStats, writer: CSVWriter) -> None:
    """The ``_llm_stats.csv`` content (header + rows, no Aggregated) to any csv writer."""
    LlmStatsCSV(environment, llm, prefix="", full_history=False).requests_csv(_WithoutAggregated(writer))
