"""Reading a run's files (``--csv PREFIX``) for the report: tables, histories, metadata, capacity search.

Only files are read (no Locust, no gevent). Every file but ``PREFIX_stats.csv`` is optional: a section
whose file is absent is left out. A file that is present but unreadable is bad input (exit 2, one line).
"""

from __future__ import annotations

import base64
import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loadgate import contract

AGGREGATED = "Aggregated"
TEXT_COLUMNS = ("Type", "Name", "Method", "Error", "First Seen", "Last Seen")
STATS_REQUIRED = ["Type", "Name", "Request Count", "Failure Count", "Average Response Time", "Requests/s"]
HISTORY_REQUIRED = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s"]
FAILURES_REQUIRED = ["Method", "Name", "Error", "Occurrences"]
# Rate mode (issue 11): the requested and achieved request rate, in _loadgate.json or _llm_summary.json.
RATE_REQUESTED, RATE_ACHIEVED = "request_rate", "achieved_rate"


class ReportInputError(Exception):
    """Bad input: one line naming the file or flag, what is wrong, the value and the fix (exit 2)."""

    def __init__(self, where: str, what: str, got: object, fix: str) -> None:
        self.where, self.what, self.got, self.fix = where, what, got, fix
        super().__init__(self.line())

    def line(self) -> str:
        if isinstance(self.got, str):
            text = self.got if len(self.got) <= 120 else self.got[:117] + "..."
            got = '"' + text.replace('"', '\\"') + '"'
        else:
            got = "nothing" if self.got is None else repr(self.got)
        return f"loadgate report: error: {self.where}: {self.what} (got {got}); {self.fix}"


@dataclass
class Run:
    """One run's files. Histories carry a column ``t``: seconds since the run started (``origin``)."""

    prefix: str
    stats: pd.DataFrame
    llm_stats: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    history: pd.DataFrame | None = None
    llm_history: pd.DataFrame | None = None
    llm_summary: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    server_metrics: pd.DataFrame | None = None  # PREFIX_server_metrics.csv (--server-metrics), with ``t``
    origin: float = 0.0  # epoch seconds of t = 0
    warmup: tuple[float, float] | None = None  # (start, end) in t seconds
    warmup_note: str = ""
    files: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return Path(self.prefix).name or self.prefix

    @property
    def history_windowed(self) -> bool:
        """Per-row history (--csv-full-history): percentiles are Locust's ~10 s window, not cumulative."""
        return self.history is not None and bool((self.history["Name"] != AGGREGATED).any())

    @property
    def duration_s(self) -> float | None:
        meta = self.meta or {}
        start, stop = number(meta.get("started_at")), number(meta.get("stopped_at"))
        if start is not None and stop is not None:
            return stop - start
        frames = [f for f in (self.history, self.llm_history) if f is not None and not f.empty]
        return max(float(f["t"].max()) for f in frames) if frames else None

    def rate_fields(self) -> tuple[float | None, float | None]:
        """(requested, achieved) request rate when the run was driven at a rate (issue 11's rate mode)."""
        requested: float | None = None
        achieved: float | None = None
        for source in (self.meta or {}, self.llm_summary or {}):
            requested = requested if requested is not None else number(source.get(RATE_REQUESTED))
            achieved = achieved if achieved is not None else number(source.get(RATE_ACHIEVED))
        return requested, achieved


def load_run(prefix: str, flag: str = "PREFIX") -> Run:
    """Everything a run left under PREFIX; PREFIX_stats.csv is required (the gate's own rule)."""
    stats_path = contract.path(prefix, contract.STATS_CSV)
    if not Path(stats_path).is_file():
        raise ReportInputError(flag, "no run found: file missing", stats_path, _prefix_fix(prefix))
    run = Run(prefix, read_csv(stats_path, STATS_REQUIRED))
    run.files.append(stats_path)
    optional = {
        "llm_stats": (contract.LLM_STATS_CSV, STATS_REQUIRED),
        "failures": (contract.FAILURES_CSV, FAILURES_REQUIRED),
        "history": (contract.STATS_HISTORY_CSV, HISTORY_REQUIRED),
        "llm_history": (contract.LLM_STATS_HISTORY_CSV, HISTORY_REQUIRED),
    }
    for attribute, (suffix, required) in optional.items():
        path = contract.path(prefix, suffix)
        if Path(path).is_file() and Path(path).stat().st_size > 0:
            setattr(run, attribute, read_csv(path, required, numeric=attribute != "failures"))
            run.files.append(path)
    for attribute, suffix in (("llm_summary", contract.LLM_SUMMARY_JSON), ("meta", contract.LOADGATE_JSON)):
        path = contract.path(prefix, suffix)
        if Path(path).is_file():
            setattr(run, attribute, read_json_object(path))
            run.files.append(path)
    server_path = contract.path(prefix, contract.SERVER_METRICS_CSV)
    if Path(server_path).is_file():
        run.server_metrics = read_server_metrics(server_path)
        run.files.append(server_path)
    _place_in_time(run)
    return run


def _prefix_fix(prefix: str) -> str:
    for suffix in (contract.STATS_CSV, contract.STATS_HISTORY_CSV, contract.LLM_STATS_CSV, ".csv", ".json"):
        if prefix.endswith(suffix) and Path(prefix).is_file():
            return f"pass the prefix, not a file: {prefix.removesuffix(suffix).removesuffix('_loadgate')}"
    return "pass the --csv PREFIX of a run (e.g. results/loadgate for results/loadgate_stats.csv)"


def _place_in_time(run: Run) -> None:
    """t = 0 at the run's start (_loadgate.json started_at, else the first history second); the warm-up
    spans the start to the stats reset."""
    meta = run.meta or {}
    frames = [f for f in (run.history, run.llm_history) if f is not None and not f.empty]
    first = min((float(f["Timestamp"].min()) for f in frames), default=None)
    started = number(meta.get("started_at"))
    run.origin = started if started is not None else (first if first is not None else 0.0)
    for frame in frames:
        frame["t"] = frame["Timestamp"].astype(float) - run.origin
    if run.server_metrics is not None:
        run.server_metrics["t"] = run.server_metrics["timestamp"] - run.origin
    warm = number(meta.get("warmup_s")) or 0.0
    reset = number(meta.get("stats_reset_at"))
    if reset is not None and warm > 0:
        run.warmup = (0.0, reset - run.origin)
    elif warm > 0:
        run.warmup = (0.0, warm)
        run.warmup_note = "the stats were never reset: the run ended before its warm-up did"


def read_csv(path: str, required: list[str], numeric: bool = True) -> pd.DataFrame:
    """A Locust CSV: names as exact strings, "N/A" as missing, every other column a number."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError) as error:
        raise ReportInputError(path, "cannot read CSV", str(error), "re-run the load to rewrite it") from None
    if not header:
        raise ReportInputError(path, "empty CSV (no header)", "0 bytes", "re-run the load to rewrite it")
    missing = [c for c in required if c not in header]
    if missing:
        raise ReportInputError(
            path, f"missing column {missing[0]!r}", ",".join(header)[:200], "pass a Locust --csv PREFIX"
        )
    numbers = [c for c in header if c not in TEXT_COLUMNS] if numeric else []
    try:
        frame = pd.read_csv(
            path,
            encoding="utf-8",
            keep_default_na=False,
            na_values={c: ["N/A", ""] for c in numbers},
            dtype={c: str for c in header if c not in numbers},
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as error:
        raise ReportInputError(
            path, "malformed CSV", str(error).strip().splitlines()[0], "re-run the load to rewrite it"
        ) from None
    for column in numbers:
        if frame[column].dtype.kind not in "if":
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = values.isna() & frame[column].notna()
            index = int(bad.to_numpy().argmax())
            raise ReportInputError(
                f"{path}:{index + 2}",
                f"column {column!r} is not a number",
                str(frame[column].iat[index]),
                "re-run the load to rewrite the file (was it truncated or hand-edited?)",
            )
    return frame


def read_server_metrics(path: str) -> pd.DataFrame:
    """PREFIX_server_metrics.csv with the gate's own reader (the same checks, the same one-line errors)."""
    from loadgate.gate.data import load_server_metrics
    from loadgate.gate.errors import GateInputError

    try:
        return load_server_metrics(path)
    except GateInputError as error:
        where = error.file + (f":{error.where}" if error.where else "")
        raise ReportInputError(where, error.what, error.got, error.fix) from None


def read_json_object(path: str, flag: str | None = None) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportInputError(flag or path, "file not found", path, "fix the path") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportInputError(
            path, "unreadable JSON", str(error), "re-run the step that writes it"
        ) from None
    if not isinstance(document, dict):
        raise ReportInputError(
            path, "must be a JSON object", type(document).__name__, "re-run the step that writes it"
        )
    return document


# -- capacity search (issue 11): PREFIX_capacity.json, its CSV and PNG ---------------------------------


@dataclass
class CapacityStep:
    rate: float
    achieved: float | None
    passed: bool | None
    values: list[dict[str, Any]]  # each threshold: row, metric, rule, observed, limit, status


@dataclass
class Capacity:
    source: str
    found: dict[str, Any]  # capacity.{rate_rps, achieved_rps, output_tokens_per_s, concurrency_p95}
    limiting: dict[str, Any] | None
    steps: list[CapacityStep]
    png: str | None = None  # base64 of PREFIX_capacity.png


def load_capacity(prefix: str) -> Capacity | None:
    path = contract.path(prefix, contract.CAPACITY_JSON)
    if not Path(path).is_file():
        return None
    document = read_json_object(path)
    found = document.get("capacity")
    if found is not None and not isinstance(found, dict):
        raise ReportInputError(
            f"{path}: capacity", "must be an object", found, "re-run the capacity search (--find-capacity)"
        )
    limiting = document.get("limiting")
    steps_raw = document.get("steps")
    if not isinstance(steps_raw, list):
        raise ReportInputError(
            f"{path}: steps",
            "must be a list of steps",
            steps_raw,
            "re-run the capacity search (--find-capacity)",
        )
    steps = [_capacity_step(path, i, raw) for i, raw in enumerate(steps_raw)]
    capacity = Capacity(path, found or {}, limiting if isinstance(limiting, dict) else None, steps)
    png = contract.path(prefix, contract.CAPACITY_PNG)
    if Path(png).is_file():
        capacity.png = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return capacity


def _capacity_step(path: str, index: int, raw: object) -> CapacityStep:
    where = f"{path}: steps[{index}]"
    if not isinstance(raw, dict):
        raise ReportInputError(where, "must be an object", raw, "re-run the capacity search")
    rate = number(_first(raw, "rate_rps", "rate"))
    if rate is None:
        got = _first(raw, "rate_rps", "rate")
        raise ReportInputError(f"{where}.rate_rps", "must be a number", got, "re-run the capacity search")
    achieved = number(_first(raw, "achieved_rps", "achieved_rate"))
    result = _first(raw, "passed", "result", "status")
    passed = result if isinstance(result, bool) else None
    if isinstance(result, str):
        passed = {"pass": True, "fail": False}.get(result.lower())
    values = raw.get("thresholds", raw.get("verdicts", []))
    if isinstance(values, dict):  # {"TTFT ... p(95)": 812.0, ...}
        values = [{"rule": key, "observed": value} for key, value in values.items()]
    if not isinstance(values, list):
        raise ReportInputError(f"{where}.thresholds", "must be a list", values, "re-run the capacity search")
    return CapacityStep(
        rate,
        achieved,
        passed,
        [v for v in values if isinstance(v, dict)],
    )


def _first(raw: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in raw:
            return raw[key]
    return None


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def number(value: object) -> float | None:
    """A JSON number as a float; None for null, booleans, strings, NaN and infinities."""
    return float(value) if isinstance(value, int | float) and is_number(value) else None
