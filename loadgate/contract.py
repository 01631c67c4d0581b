"""The file contract between the Locust side (writers) and the gate, report and job (readers).

One source of truth for: the exit codes, the files a run leaves under its CSV prefix, the LLM metric
type names and units, and the fields of ``PREFIX_loadgate.json`` (run metadata) and
``PREFIX_llm_summary.json`` (LLM scalars). Writers and readers import these names; a round-trip test
writes with the harness and reads with the gate. Imports neither Locust nor gevent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

# -- exit codes (the job, the gate, the Locust plugin's setting errors) -------------------------------
EXIT_PASS = 0  # every threshold holds
EXIT_BREACH = 1  # a threshold is breached, or has no data, or the run lost capacity
EXIT_BAD_INPUT = 2  # bad input, or no valid run could be made: never a pass

# -- files under the CSV prefix: PREFIX + suffix ------------------------------------------------------
STATS_CSV = "_stats.csv"  # Locust's, rewritten from the final totals at the end
STATS_HISTORY_CSV = "_stats_history.csv"  # Locust's (--csv-full-history for per-name windows)
FAILURES_CSV = "_failures.csv"  # Locust's
EXCEPTIONS_CSV = "_exceptions.csv"  # Locust's
LLM_STATS_CSV = "_llm_stats.csv"  # loadgate: TTFT/ITL/... per endpoint, same columns as _stats.csv
LLM_STATS_HISTORY_CSV = "_llm_stats_history.csv"  # loadgate: same columns as _stats_history.csv
LLM_SUMMARY_JSON = "_llm_summary.json"  # loadgate: LLM scalars (tokens/s, goodput, jobs, ...)
LOADGATE_JSON = "_loadgate.json"  # loadgate: run metadata (versions, host, warm-up, window, ...)
CAPACITY_JSON = "_capacity.json"  # capacity search: steps and the rate found
CAPACITY_CSV = "_capacity.csv"
CAPACITY_PNG = "_capacity.png"
# --server-metrics: the target's Prometheus series, one line per sample: timestamp (epoch s), metric (the
# sample's name), labels (k="v" pairs sorted by key, comma-separated), value (NaN/+Inf/-Inf as Prometheus)
SERVER_METRICS_CSV = "_server_metrics.csv"
SERVER_METRICS_COLUMNS = ("timestamp", "metric", "labels", "value")

# -- LLM metric types (the "Type" column of _llm_stats.csv) and their units --------------------------
TTFT, TTFB, ITL, TPOT, E2E, TOKENS_PER_S = "TTFT", "TTFB", "ITL", "TPOT", "E2E", "TOKENS/S"
METRIC_TYPES = (TTFT, TTFB, ITL, TPOT, E2E, TOKENS_PER_S)
UNITS = {TTFT: "ms", TTFB: "ms", ITL: "ms", TPOT: "ms", E2E: "ms", TOKENS_PER_S: "tokens/s"}
TOKEN_BASED = (ITL, TPOT, TOKENS_PER_S)  # figures whose value depends on how tokens were counted

# -- LLM endpoint row names ---------------------------------------------------------------------------
NAME_STREAM = "/v1/chat/completions [stream]"
NAME_NON_STREAM = "/v1/chat/completions [non-stream]"
NAME_ASYNC = "/v1/chat/completions/async"
NAME_BATCH = "/v1/batches"
# Per-model rows: "<endpoint row> @<model>" beside the endpoint row (which keeps every model's samples)
MODEL_ROW_SEP = " @"


def model_row(name: str, model: str) -> str:
    """The per-model row of an LLM endpoint row: model_row(NAME_STREAM, "gpt-4o") ->
    "/v1/chat/completions [stream] @gpt-4o"."""
    return f"{name}{MODEL_ROW_SEP}{model}"


def is_model_row(name: str) -> bool:
    """Whether an LLM row name is a per-model row (figures over every endpoint must skip these: their
    samples are already in the endpoint row)."""
    return MODEL_ROW_SEP in name


# -- the request log (--request-log FILE; the job: results/requests.jsonl) ----------------------------
REQUEST_LOG = "requests.jsonl"  # the job's merged request log in the results folder

# -- the gate's LLM pseudo-row ------------------------------------------------------------------------
LLM_ROW = "LLM"  # threshold rows named "LLM" read the scalars of PREFIX_llm_summary.json
SERVER_ROW = "SERVER"  # threshold rows named "SERVER" read PREFIX_server_metrics.csv: "max(SERIES) < N"


def path(prefix: str, suffix: str) -> str:
    """The file of a run: path("results/loadgate", STATS_CSV) -> "results/loadgate_stats.csv"."""
    return f"{prefix}{suffix}"


# -- reading limits: an input larger than this is not a run's output (exit 2 before reading it) -------
MAX_CSV_BYTES = 512 * 1024 * 1024  # a two-hour --csv-full-history of hundreds of rows stays far below
MAX_JSON_BYTES = 1024 * 1024  # _loadgate.json and _llm_summary.json are a few hundred bytes

# -- how output tokens were counted (PREFIX_llm_summary.json "token_source") --------------------------
TOKEN_SERVER, TOKEN_TOKENIZER, TOKEN_ESTIMATE, TOKEN_MIXED = "server", "tokenizer", "estimate", "mixed"
TOKEN_SOURCES = (TOKEN_SERVER, TOKEN_TOKENIZER, TOKEN_ESTIMATE, TOKEN_MIXED)
# "mixed" may be written with its shares: "mixed (server 60%, estimate 40%)"; token_source_shares holds
# them as fractions of 1: {"server": 0.6, "estimate": 0.4}. The older key usage_source ("server",
# "counted", "mixed") is read when token_source is absent.

# -- LLM pseudo-row metrics: threshold metric name -> key in PREFIX_llm_summary.json ------------------
LLM_SUMMARY_METRICS: dict[str, str] = {
    "requests": "completed_requests",
    "goodput": "goodput_req_per_s",  # req/s
    "tokens_per_s": "output_tokens_per_s",  # tokens/s
    "output_tokens": "total_output_tokens",
    "lost_jobs": "lost_jobs",
    "cancelled": "cancelled",  # requests cut by the run stopping (not failures)
    "loadgen_lag_p99": "loadgen_lag_p99",  # ms: the load generator's event-loop lag, p99
    "achieved_rate": "achieved_rate",  # req/s actually started (rate mode)
    "schedule_lag_p99": "schedule_lag_p99",  # ms: how late scheduled requests started, p99
}
LLM_TOKEN_METRICS = ("tokens_per_s", "output_tokens")  # LLM-row metrics that depend on token counting


# -- validation shared by writers and readers ---------------------------------------------------------


class ContractError(ValueError):
    """A field of a contract file holds a value the contract does not allow (``key``, ``what``, ``got``)."""

    def __init__(self, name: str, what: str, got: object) -> None:
        super().__init__(f"{name}: {what} (got {got!r})")
        self.key, self.what, self.got = name, what, got


def finite_number(value: object, name: str, minimum: float | None = 0.0) -> float | None:
    """A finite number (>= ``minimum`` unless None), or None for null. NaN, infinities (also 1e400, read
    as inf), booleans, strings and negatives (by default) are refused."""
    if value is None:
        return None
    bound = f" >= {minimum:g}" if minimum is not None else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ContractError(name, f"{name} must be a finite number{bound}", value)
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        raise ContractError(name, f"{name} must be a finite number{bound}", value) from None
    if not math.isfinite(number) or (minimum is not None and number < minimum):
        raise ContractError(name, f"{name} must be a finite number{bound}", value)
    return number


def whole_count(value: object, name: str) -> int | None:
    """A whole number >= 0 (10 or 10.0), or None for null; 10.5, -1, NaN and booleans are refused."""
    if value is None:
        return None
    try:
        number = finite_number(value, name)
    except ContractError:
        number = None
    if number is None or not number.is_integer():
        raise ContractError(name, f"{name} must be a whole number >= 0", value)
    return int(value) if isinstance(value, int) else int(number)


def text(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ContractError(name, f"{name} must be a string or null", value)


def flag(value: object, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ContractError(name, f"{name} must be true, false or null", value)


def _texts(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ContractError(name, f"{name} must be a list of strings", value)
    return tuple(value)


def _numbers(value: object, name: str, maximum: float | None = None) -> dict[str, float | None] | None:
    """A JSON object of finite numbers >= 0 (or null values), e.g. goodput_targets, token_source_shares."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ContractError(name, f"{name} must be an object of numbers", value)
    out: dict[str, float | None] = {}
    for key, item in value.items():
        number = finite_number(item, f"{name}.{key}")
        if number is not None and maximum is not None and number > maximum:
            raise ContractError(f"{name}.{key}", f"{name}.{key} must be between 0 and {maximum:g}", item)
        out[str(key)] = number
    return out


def _counts(value: object, name: str) -> dict[str, int | None] | None:
    """A JSON object of whole counts >= 0, e.g. cancelled_by_name."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ContractError(name, f"{name} must be an object of counts", value)
    return {str(key): whole_count(item, f"{name}.{key}") for key, item in value.items()}


def token_source(value: object, name: str) -> str | None:
    """One of TOKEN_SOURCES, "mixed" optionally followed by its shares: "mixed (server 60%, estimate 40%)"."""
    source = text(value, name)
    if source is not None and source.split(" ", 1)[0] not in TOKEN_SOURCES:
        raise ContractError(name, f"{name} must be one of {', '.join(TOKEN_SOURCES)}", value)
    if source is not None and source != source.strip():
        raise ContractError(name, f"{name} must be one of {', '.join(TOKEN_SOURCES)}", value)
    return source


def capabilities(value: object, name: str) -> dict[str, dict[str, Any]] | None:
    """The start-up probe's routes: {route: {"served": bool, "detail": str}}, or None (not probed)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("served"), bool) and isinstance(v.get("detail", ""), str)
        for v in value.values()
    ):
        raise ContractError(
            name, f'{name} must map routes to {{"served": true|false, "detail": text}}', value
        )
    return {str(k): dict(v) for k, v in value.items()}


def _object(data: object, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ContractError("", f"{what} must be a JSON object", type(data).__name__)
    return data


# -- PREFIX_loadgate.json: run metadata ---------------------------------------------------------------


def _integer(value: object, name: str) -> int | None:
    """A whole number, negative allowed (an exit code: -9 for SIGKILL), or None for null."""
    number = finite_number(value, name, minimum=None)
    if number is not None and not number.is_integer():
        raise ContractError(name, f"{name} must be a whole number", value)
    return None if number is None else int(number)


@dataclass(frozen=True)
class LostWorker:
    """One entry of ``lost_workers``: a worker the master lost while the test ran (see
    loadgate.harness.capacity). ``reason``: "no heartbeat", "left the run" or "no final report"."""

    id: str
    reason: str = ""
    index: int | None = None
    users: int = 0  # users it ran when lost
    lost_at: float | None = None  # epoch s: its last sign of life
    lost_after_s: float | None = None  # seconds into the run
    reported_requests: int = 0  # its requests in the merged figures (the rest of its traffic is missing)
    reported_failures: int = 0
    reported_cancelled: int = 0

    @classmethod
    def from_dict(cls, data: object, name: str) -> LostWorker:
        if not isinstance(data, dict):
            raise ContractError(name, f"{name} must be a JSON object", data)
        worker_id = text(data.get("id"), f"{name}.id")
        if not worker_id:
            raise ContractError(f"{name}.id", f"{name}.id must be a non-empty string", data.get("id"))
        return cls(
            id=worker_id,
            reason=text(data.get("reason"), f"{name}.reason") or "",
            index=whole_count(data.get("index"), f"{name}.index"),
            users=whole_count(data.get("users"), f"{name}.users") or 0,
            lost_at=finite_number(data.get("lost_at"), f"{name}.lost_at"),
            lost_after_s=finite_number(data.get("lost_after_s"), f"{name}.lost_after_s"),
            reported_requests=whole_count(data.get("reported_requests"), f"{name}.reported_requests") or 0,
            reported_failures=whole_count(data.get("reported_failures"), f"{name}.reported_failures") or 0,
            reported_cancelled=whole_count(data.get("reported_cancelled"), f"{name}.reported_cancelled") or 0,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        """ "worker host_1a2b (index 1) lost 4.2 s into the run (no heartbeat) with 4 users" """
        index = f" (index {self.index})" if self.index is not None else ""
        when = f" {self.lost_after_s:g} s into the run" if self.lost_after_s is not None else ""
        reason = f" ({self.reason})" if self.reason else ""
        return f"worker {self.id}{index} lost{when}{reason} with {self.users} users"


@dataclass(frozen=True)
class TargetDied:
    """``target_died``: the embedded target loadgate started exited while the test ran."""

    url: str | None = None
    exit_code: int | None = None
    last_stderr: str | None = None
    after_s: float | None = None  # seconds into the run

    @classmethod
    def from_dict(cls, data: object, name: str = "target_died") -> TargetDied:
        if not isinstance(data, dict):
            raise ContractError(name, f"{name} must be a JSON object or null", data)
        return cls(
            url=text(data.get("url"), f"{name}.url"),
            exit_code=_integer(data.get("exit_code"), f"{name}.exit_code"),
            last_stderr=text(data.get("last_stderr"), f"{name}.last_stderr"),
            after_s=finite_number(data.get("after_s"), f"{name}.after_s"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        """ "the target at URL exited with code 1 4.2 s into the run: LAST STDERR LINE" """
        when = f" {self.after_s:g} s into the run" if self.after_s is not None else ""
        return (
            f"the target at {self.url or '?'} exited with code {self.exit_code}{when}: "
            f"{self.last_stderr or '(no stderr)'}"
        )


def _lost_workers(value: object, name: str) -> tuple[LostWorker, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ContractError(name, f"{name} must be a list of objects", value)
    return tuple(LostWorker.from_dict(item, f"{name}[{i}]") for i, item in enumerate(value))


@dataclass(frozen=True)
class RunMeta:
    """``PREFIX_loadgate.json``. Times are epoch seconds; the measured window is the warm-up end
    (``stats_reset_at``) or, without a warm-up, ``started_at``, to ``stopped_at``. Lost capacity:
    ``lost_workers`` (a run that lost one fails unless ``allow_lost_workers``), with the planned and
    missing user-seconds; ``target_died`` (no valid run)."""

    loadgate_version: str | None = None
    locust_version: str | None = None
    host: str | None = None
    warmup_s: float = 0.0
    stats_reset_at: float | None = None
    started_at: float | None = None
    stopped_at: float | None = None
    run_mode: str | None = None
    workers: int | None = None
    user_classes: tuple[str, ...] = ()
    profile: str | None = None
    usage_source: str | None = None
    final_stats_written: bool | None = None
    token_source: str | None = None  # new: as in the summary
    allow_lost_workers: bool | None = None  # new: --allow-lost-workers
    lost_workers: tuple[LostWorker, ...] = ()  # new
    planned_user_seconds: float | None = None  # new: target users integrated over the measured window
    missing_user_seconds: float | None = None  # new: of those, the ones lost workers did not run
    missing_user_seconds_share: float | None = None  # new: missing / planned, 0..1
    target_died: TargetDied | None = None  # new
    loadgen_lag_p50: float | None = None  # new: ms, the load generator's event-loop lag
    loadgen_lag_p99: float | None = None
    loadgen_lag_max: float | None = None
    # new: what the start-up probe found per route (models, model, chat, async, batch, health):
    # {"served": bool, "detail": "GET /v1/models: HTTP 404, absent" ...}; None when the run was not probed
    capabilities: Mapping[str, Mapping[str, Any]] | None = None
    server_metrics_url: str | None = None  # new: --server-metrics as scraped (no credentials); None: off
    server_metrics_scrapes: int | None = None  # new: scrapes that answered Prometheus text
    server_metrics_failures: int | None = None  # new: scrapes that failed (logged once, then counted)
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as is
    present: frozenset[str] = frozenset()  # the keys the file had

    _NEW_KEYS: ClassVar[tuple[str, ...]] = (  # written only when set
        "server_metrics_url",
        "server_metrics_scrapes",
        "server_metrics_failures",
        "token_source",
        "loadgen_lag_p50",
        "loadgen_lag_p99",
        "loadgen_lag_max",
        "capabilities",
        "allow_lost_workers",
        "lost_workers",
        "planned_user_seconds",
        "missing_user_seconds",
        "missing_user_seconds_share",
        "target_died",
    )

    @classmethod
    def from_dict(cls, data: object) -> RunMeta:
        d = _object(data, "run metadata")
        known = {f.name for f in fields(cls)} - {"extra", "present"}
        warmup = finite_number(d.get("warmup_s", 0.0), "warmup_s")
        share = finite_number(d.get("missing_user_seconds_share"), "missing_user_seconds_share")
        if share is not None and share > 1:
            raise ContractError(
                "missing_user_seconds_share", "missing_user_seconds_share must be between 0 and 1", share
            )
        died = d.get("target_died")
        meta = cls(
            loadgate_version=text(d.get("loadgate_version"), "loadgate_version"),
            locust_version=text(d.get("locust_version"), "locust_version"),
            host=text(d.get("host"), "host"),
            warmup_s=0.0 if warmup is None else warmup,
            stats_reset_at=finite_number(d.get("stats_reset_at"), "stats_reset_at"),
            started_at=finite_number(d.get("started_at"), "started_at"),
            stopped_at=finite_number(d.get("stopped_at"), "stopped_at"),
            run_mode=text(d.get("run_mode"), "run_mode"),
            workers=whole_count(d.get("workers"), "workers"),
            user_classes=_texts(d.get("user_classes"), "user_classes"),
            profile=text(d.get("profile"), "profile"),
            usage_source=text(d.get("usage_source"), "usage_source"),
            final_stats_written=flag(d.get("final_stats_written"), "final_stats_written"),
            token_source=token_source(d.get("token_source"), "token_source"),
            allow_lost_workers=flag(d.get("allow_lost_workers"), "allow_lost_workers"),
            lost_workers=_lost_workers(d.get("lost_workers"), "lost_workers"),
            planned_user_seconds=finite_number(d.get("planned_user_seconds"), "planned_user_seconds"),
            missing_user_seconds=finite_number(d.get("missing_user_seconds"), "missing_user_seconds"),
            missing_user_seconds_share=share,
            target_died=None if died is None else TargetDied.from_dict(died),
            loadgen_lag_p50=finite_number(d.get("loadgen_lag_p50"), "loadgen_lag_p50"),
            loadgen_lag_p99=finite_number(d.get("loadgen_lag_p99"), "loadgen_lag_p99"),
            loadgen_lag_max=finite_number(d.get("loadgen_lag_max"), "loadgen_lag_max"),
            capabilities=capabilities(d.get("capabilities"), "capabilities"),
            server_metrics_url=text(d.get("server_metrics_url"), "server_metrics_url"),
            server_metrics_scrapes=whole_count(d.get("server_metrics_scrapes"), "server_metrics_scrapes"),
            server_metrics_failures=whole_count(d.get("server_metrics_failures"), "server_metrics_failures"),
            extra={k: v for k, v in d.items() if k not in known},
            present=frozenset(d),
        )
        meta.check_times()
        return meta

    def check_times(self) -> None:
        """The window's ends in order: started_at <= stats_reset_at <= stopped_at."""
        reset, started = self.stats_reset_at, self.started_at
        if reset is not None and started is not None and reset < started:
            raise ContractError("stats_reset_at", "stats_reset_at is before started_at", reset)
        start = self.window_start
        if start is not None and self.stopped_at is not None and self.stopped_at < start:
            which = "stats_reset_at" if self.stats_reset_at is not None else "started_at"
            raise ContractError("stopped_at", f"stopped_at is before {which}", self.stopped_at)

    @property
    def window_start(self) -> float | None:
        return self.stats_reset_at if self.stats_reset_at is not None else self.started_at

    def window(self) -> tuple[float, float] | None:
        """(start, end) of the measured window, or None when the file does not record one."""
        start, end = self.window_start, self.stopped_at
        if start is None or end is None or end <= start:
            return None
        return start, end

    def lost_capacity(self) -> str | None:
        """Why the run lost capacity that the user did not accept, as one clause; None when it did not."""
        if not self.lost_workers or self.allow_lost_workers:
            return None
        share = self.missing_user_seconds_share
        missing = f"; {share * 100:.1f}% of the planned user-seconds missing" if share is not None else ""
        return "; ".join(w.describe() for w in self.lost_workers) + missing

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("extra", "present"):
                continue
            value = getattr(self, f.name)
            absent = value is None or (f.name == "lost_workers" and not value)
            # read from a file: its keys again; built by a writer: the new keys only when set
            if absent and f.name not in self.present and (self.present or f.name in self._NEW_KEYS):
                continue
            if f.name == "lost_workers":
                value = [w.to_dict() for w in value]
            elif isinstance(value, TargetDied):
                value = value.to_dict()
            elif isinstance(value, Mapping):
                value = {k: dict(v) for k, v in value.items()}
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return {**out, **self.extra}


# -- PREFIX_llm_summary.json: LLM scalars --------------------------------------------------------------


@dataclass(frozen=True)
class LlmSummary:
    """``PREFIX_llm_summary.json``: every field may be absent (older loadgate) or null (not measured)."""

    duration_s: float | None = None
    completed_requests: int | None = None
    total_output_tokens: int | None = None
    output_tokens_per_s: float | None = None
    goodput_req_per_s: float | None = None
    good_requests: int | None = None
    goodput_targets: Mapping[str, float | None] | None = None
    usage_source: str | None = None  # older: "server" | "counted" | "mixed"
    responses_with_server_usage: int | None = None
    responses_with_counted_tokens: int | None = None
    jobs_completed: int | None = None
    jobs_failed: int | None = None
    lost_jobs: int | None = None
    lost_jobs_at_stop: int | None = None
    cancelled: int | None = None  # new: requests cut by the run stopping
    token_source: str | None = None  # new: see TOKEN_SOURCES
    token_source_shares: Mapping[str, float | None] | None = None  # new: fractions of 1 per source
    token_counter: str | None = None  # new: what counted tokens without usage ("tiktoken cl100k_base ...")
    cancelled_by_name: Mapping[str, int | None] | None = None  # new: "POST /v1/chat/completions" -> count
    loadgen_lag_p50: float | None = None  # new: ms, the load generator's event-loop lag
    loadgen_lag_p99: float | None = None  # new: ms
    loadgen_lag_max: float | None = None  # new: ms
    loadgen_lag_samples: int | None = None  # new
    loadgen_cpu_s: float | None = None  # new: CPU seconds of every Locust process in the window
    loadgen_gc_pause_max: float | None = None  # new: ms, the longest garbage-collector pause
    achieved_rate: float | None = None  # new: req/s
    schedule_lag_p99: float | None = None  # new: ms
    # new (workloads): {answers, mean, p50, p99, min, max, requested_mean, achieved_mean_of_requested} of
    # the server's usage.prompt_tokens; output_lengths the same of the output tokens, with max_tokens_mean
    input_lengths: Mapping[str, float | None] | None = None
    output_lengths: Mapping[str, float | None] | None = None
    input_length_warning: str | None = None  # new: the achieved input mean >10% off the requested one
    server_metrics_scrapes: int | None = None  # new: --server-metrics scrapes that answered
    server_metrics_failures: int | None = None  # new: --server-metrics scrapes that failed
    extra: Mapping[str, Any] = field(default_factory=dict)
    present: frozenset[str] = frozenset()  # the keys the file had (absent and null differ in messages)

    _COUNTS: ClassVar[tuple[str, ...]] = (
        "completed_requests",
        "total_output_tokens",
        "good_requests",
        "responses_with_server_usage",
        "responses_with_counted_tokens",
        "jobs_completed",
        "jobs_failed",
        "lost_jobs",
        "lost_jobs_at_stop",
        "cancelled",
        "loadgen_lag_samples",
        "server_metrics_scrapes",
        "server_metrics_failures",
    )
    _FIGURES: ClassVar[tuple[str, ...]] = (
        "duration_s",
        "output_tokens_per_s",
        "goodput_req_per_s",
        "loadgen_lag_p50",
        "loadgen_lag_p99",
        "loadgen_lag_max",
        "loadgen_cpu_s",
        "loadgen_gc_pause_max",
        "achieved_rate",
        "schedule_lag_p99",
    )
    _NEW_KEYS: ClassVar[tuple[str, ...]] = (
        "cancelled",
        "cancelled_by_name",
        "token_source",
        "token_source_shares",
        "token_counter",
        "loadgen_lag_p50",
        "loadgen_lag_p99",
        "loadgen_lag_max",
        "loadgen_lag_samples",
        "loadgen_cpu_s",
        "loadgen_gc_pause_max",
        "achieved_rate",
        "schedule_lag_p99",
        "input_lengths",
        "output_lengths",
        "input_length_warning",
        "server_metrics_scrapes",
        "server_metrics_failures",
    )

    @classmethod
    def from_dict(cls, data: object) -> LlmSummary:
        d = _object(data, "LLM summary")
        known = {f.name for f in fields(cls)} - {"extra", "present"}
        values: dict[str, Any] = {name: whole_count(d.get(name), name) for name in cls._COUNTS}
        values.update({name: finite_number(d.get(name), name) for name in cls._FIGURES})
        return cls(
            **values,
            goodput_targets=_numbers(d.get("goodput_targets"), "goodput_targets"),
            usage_source=text(d.get("usage_source"), "usage_source"),
            token_source=token_source(d.get("token_source"), "token_source"),
            token_source_shares=_numbers(d.get("token_source_shares"), "token_source_shares", maximum=1.0),
            token_counter=text(d.get("token_counter"), "token_counter"),
            cancelled_by_name=_counts(d.get("cancelled_by_name"), "cancelled_by_name"),
            input_lengths=_numbers(d.get("input_lengths"), "input_lengths"),
            output_lengths=_numbers(d.get("output_lengths"), "output_lengths"),
            input_length_warning=text(d.get("input_length_warning"), "input_length_warning"),
            extra={k: v for k, v in d.items() if k not in known},
            present=frozenset(d),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("extra", "present"):
                continue
            value = getattr(self, f.name)
            # read from a file: its keys again; built by a writer: today's keys, the new ones when set
            if value is None and f.name not in self.present and (self.present or f.name in self._NEW_KEYS):
                continue
            out[f.name] = dict(value) if isinstance(value, Mapping) else value
        return {**out, **self.extra}

    def token_source_label(self) -> str | None:
        """How output tokens were counted, for verdict lines: "estimate", "mixed (server 60%, estimate
        40%)", or the older usage_source ("counted"); None when the file does not say."""
        source = self.token_source or self.usage_source
        if source == TOKEN_MIXED and self.token_source_shares:
            shares = sorted(self.token_source_shares.items(), key=lambda kv: -(kv[1] or 0))
            return f"{TOKEN_MIXED} (" + ", ".join(f"{k} {round((v or 0) * 100):d}%" for k, v in shares) + ")"
        return source
