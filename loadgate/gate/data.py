"""Loading a Locust run (``--csv PREFIX``) into rows the evaluator can gate, with pandas.

Locust quirks handled here: the Aggregated row's empty Type, "N/A" figures on rows without requests,
names with commas, quotes or non-ASCII (read as strings, never as NaN/None), custom request types,
history percentiles that are windowed only with ``--csv-full-history``, and a final ``_stats.csv``
that disagrees with the history's last totals (reported; the newer figures win).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from loadgate.gate.errors import GateInputError

AGGREGATED = "Aggregated"
LLM_ROW = "LLM"  # pseudo-row holding the scalars of PREFIX_llm_summary.json
SUMMARY_FIELDS = {  # metric -> key in PREFIX_llm_summary.json
    "requests": "completed_requests",
    "goodput": "goodput_req_per_s",
    "tokens_per_s": "output_tokens_per_s",
    "output_tokens": "total_output_tokens",
    "lost_jobs": "lost_jobs",
}
UNITLESS_TYPES = ("TOKENS/S",)  # LLM rows whose "response times" are tokens per second, not milliseconds

STATS_COLUMNS = {
    "requests": "Request Count",
    "failures": "Failure Count",
    "median": "Median Response Time",
    "avg": "Average Response Time",
    "min": "Min Response Time",
    "max": "Max Response Time",
    "rps": "Requests/s",
    "fail_rps": "Failures/s",
}
HISTORY_TOTALS = {
    "requests": "Total Request Count",
    "failures": "Total Failure Count",
    "median": "Total Median Response Time",
    "avg": "Total Average Response Time",
    "min": "Total Min Response Time",
    "max": "Total Max Response Time",
}
HISTORY_COLUMNS = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *HISTORY_TOTALS.values(),
]
FAILURE_COLUMNS = ["Method", "Name", "Error", "Occurrences"]
COUNT_COLUMNS = ("Request Count", "Failure Count", "Total Request Count", "Total Failure Count", "Timestamp")


def row_key(type_: str, name: str) -> str:
    """How a threshold file names a row: "Type Name", or the Name alone for a row without Type (Aggregated)."""
    return name if not type_ else f"{type_} {name}"


@dataclass
class Row:
    """One gated row: whole-run figures keyed by metric name ("avg", "rps", "95%"...); None means N/A."""

    type: str
    name: str
    source: str
    line: int
    figures: dict[str, float | None]
    kind: str = "http"  # which history holds its per-second samples: "http" or "llm"

    @property
    def key(self) -> str:
        return row_key(self.type, self.name)

    @property
    def unit(self) -> str:
        return "tok/s" if self.type in UNITLESS_TYPES else "ms"

    @property
    def requests(self) -> int:
        return int(self.figures.get("requests") or 0)

    def percentile_columns(self) -> list[str]:
        return [k for k in self.figures if k.endswith("%")]


@dataclass
class History:
    """Per-second samples of one CSV history file, split per row key, after the warm-up reset."""

    source: str
    windowed: bool  # True when percentiles are Locust's ~10 s sliding window (--csv-full-history)
    frames: dict[str, pd.DataFrame]


@dataclass
class RunData:
    prefix: str
    rows: dict[str, Row]
    meta: dict | None
    meta_source: str
    histories: dict[str, History | None]  # loaded on first use: "http" and "llm" (see history_sources)
    history_sources: dict[
        str, str
    ]  # "http" -> PREFIX_stats_history.csv, "llm" -> PREFIX_llm_stats_history.csv
    failures: pd.DataFrame | None
    notes: list[str] = field(default_factory=list)
    llm_stats_present: bool = False
    reset_at: float | None = None

    def find(self, key: str, config_file: str = "", line: int | None = None) -> Row | None:
        """The row named by "Aggregated", "Type Name" or a Name that is unique across the run's files."""
        if key in self.rows:
            return self.rows[key]
        matches = [row for row in self.rows.values() if row.name == key]
        if len(matches) > 1:
            options = ", ".join(f'"{row.key}"' for row in matches)
            raise GateInputError(
                config_file,
                line,
                f"row name {key!r} is ambiguous",
                key,
                f'write it as "Type Name", one of {options}',
            )
        return matches[0] if matches else None

    def history_for(self, row: Row) -> tuple[str, History | None]:
        """The full per-second history of the row's kind, read only when a "for" rule needs it."""
        if row.kind not in self.histories:
            path = self.history_sources[row.kind]
            self.histories[row.kind] = _load_history(path, self.reset_at) if Path(path).is_file() else None
        return row.kind, self.histories[row.kind]


def load_run(prefix: str, warmup_s: float = 0.0, role: str = "run") -> RunData:
    """Everything ``--csv PREFIX`` wrote. ``warmup_s`` > 0 requires the harness' warm-up reset record."""
    meta_source = f"{prefix}_loadgate.json"
    meta = _load_meta(meta_source, warmup_s, role)
    reset_at = meta.get("stats_reset_at") if meta else None
    stats_path = f"{prefix}_stats.csv"
    if not Path(stats_path).is_file():
        fix = f"run Locust headless with --csv {prefix} (and --csv-full-history), or fix the prefix"
        for suffix in ("_stats.csv", "_stats_history.csv", "_llm_stats.csv", "_loadgate.json", ".csv"):
            if prefix.endswith(suffix) and Path(prefix).is_file():
                fix = f"pass the prefix, not a file: {prefix.removesuffix(suffix)}"
                break
        raise GateInputError(stats_path, None, f"{role} CSV not found", stats_path, fix)
    rows = _rows_from_stats(stats_path)
    llm_path = f"{prefix}_llm_stats.csv"
    llm_present = Path(llm_path).is_file()
    if llm_present:
        for row in _rows_from_stats(llm_path).values():
            row.kind = "llm"
            if row.key == AGGREGATED:
                continue  # a total over TTFT, ITL and tokens/s would mean nothing; the contract writes none
            if row.key in rows:
                raise GateInputError(
                    llm_path,
                    row.line,
                    "row also present in _stats.csv",
                    row.key,
                    "LLM rows must use the LLM types TTFT/TTFB/ITL/TPOT/E2E/TOKENS/S",
                )
            rows[row.key] = row
    summary_path = f"{prefix}_llm_summary.json"
    if Path(summary_path).is_file() and LLM_ROW not in rows:
        rows[LLM_ROW] = _summary_row(summary_path)
    run = RunData(
        prefix,
        rows,
        meta,
        meta_source,
        {},
        {"http": f"{prefix}_stats_history.csv", "llm": f"{prefix}_llm_stats_history.csv"},
        None,
        llm_stats_present=llm_present,
        reset_at=reset_at,
    )
    for kind, path in run.history_sources.items():
        if Path(path).is_file():
            _reconcile(run, path, reset_at, llm_path if kind == "llm" else stats_path)
    failures_path = f"{prefix}_failures.csv"
    if Path(failures_path).is_file():
        run.failures = _read_csv(failures_path, FAILURE_COLUMNS, numeric=False)
    if meta and meta.get("final_stats_written") is False:
        run.notes.append(f"{meta_source}: final_stats_written is false: the run's last second may be missing")
    return run


def _load_meta(path: str, warmup_s: float, role: str) -> dict | None:
    fix = (
        "run the load with loadgate's --warmup (env LOADGATE_WARMUP) and --csv PREFIX, which write this file"
    )
    if not Path(path).is_file():
        if warmup_s > 0:
            raise GateInputError(
                path,
                None,
                f"the thresholds require a {_secs(warmup_s)} warm-up but the {role} has no warm-up record",
                "no file",
                fix,
            )
        return None
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GateInputError(
            path, None, "unreadable run metadata", str(error), "re-run the load or delete the file"
        ) from None
    if not isinstance(meta, dict):
        raise GateInputError(path, None, "run metadata must be a JSON object", type(meta).__name__, fix)
    warm = meta.get("warmup_s", 0)
    reset_at = meta.get("stats_reset_at")
    if isinstance(warm, bool) or not isinstance(warm, int | float):
        raise GateInputError(path, "warmup_s", "warmup_s must be a number of seconds", warm, fix)
    if reset_at is not None and (isinstance(reset_at, bool) or not isinstance(reset_at, int | float)):
        raise GateInputError(
            path, "stats_reset_at", "stats_reset_at must be epoch seconds or null", reset_at, fix
        )
    if warmup_s > 0 and warm < warmup_s:
        raise GateInputError(
            path,
            "warmup_s",
            f"the {role} warmed up less than the thresholds' warmup ({_secs(warmup_s)})",
            warm,
            f"re-run with --warmup {_secs(warmup_s)} or longer",
        )
    if warmup_s > 0 and reset_at is None:
        raise GateInputError(
            path,
            "stats_reset_at",
            f"the {role}'s stats were never reset after the warm-up (the run ended before the warm-up did?)",
            None,
            f"re-run with a run time longer than the {_secs(warm)} warm-up",
        )
    return meta


def _summary_row(path: str) -> Row:
    try:
        summary = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GateInputError(
            path, None, "unreadable LLM summary", str(error), "re-run the load or delete the file"
        ) from None
    if not isinstance(summary, dict):
        raise GateInputError(
            path, None, "LLM summary must be a JSON object", type(summary).__name__, "re-run the load"
        )
    figures: dict[str, float | None] = {}
    for metric, key in SUMMARY_FIELDS.items():
        value = summary.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise GateInputError(path, key, f"{key} must be a number or null", value, "re-run the load")
        figures[metric] = None if value is None else float(value)
    return Row("", LLM_ROW, path, 0, figures)


TEXT_COLUMNS = ("Type", "Name", "Method", "Error", "First Seen", "Last Seen")


def _read_csv(
    path: str, required: list[str], numeric: bool = True, body: bytes | None = None
) -> pd.DataFrame:
    """A Locust CSV: text columns as exact strings (a name "NaN" stays "NaN"), the others parsed as numbers
    natively, with only "N/A" as missing; a column that does not parse is reported by ``_check_numbers``.
    ``body``: data lines of the file without its header (a tail read by ``_history_tail``)."""
    header = _header(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise GateInputError(
            path,
            1,
            f"missing column {missing[0]!r}",
            ",".join(header)[:200],
            "pass the PREFIX of Locust's --csv output (files PREFIX_stats.csv etc.)",
        )
    numbers = [c for c in header if c not in TEXT_COLUMNS] if numeric else []
    try:
        source = path if body is None else io.BytesIO(body)
        frame = pd.read_csv(
            source,
            encoding="utf-8",
            keep_default_na=False,
            na_values={c: ["N/A"] for c in numbers},
            dtype={c: str for c in header if c not in numbers},
            **({} if body is None else {"header": None, "names": header}),
        )
    except UnicodeDecodeError as error:
        raise GateInputError(
            path, None, "CSV is not UTF-8", str(error), "re-run Locust with a UTF-8 locale"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as error:
        raise GateInputError(
            path, None, "malformed CSV", str(error).strip(), "re-run Locust to rewrite it"
        ) from None
    _check_numbers(frame, path, numbers)
    return frame


def _header(path: str) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as error:
        raise GateInputError(
            path, None, "CSV is not UTF-8", str(error), "re-run Locust with a UTF-8 locale"
        ) from None
    except OSError as error:
        raise GateInputError(
            path, None, "cannot read CSV", error.strerror or str(error), "check the path"
        ) from None
    if not header:
        raise GateInputError(
            path,
            None,
            "empty CSV file (no header)",
            "0 bytes",
            "re-run Locust; the run was probably killed before writing stats",
        )
    return header


def _check_numbers(frame: pd.DataFrame, path: str, columns: list[str]) -> None:
    """Fail on any non-number (exit 2); "N/A" is allowed except in counts. Slow path only on a bad column."""
    for column in columns:
        values = frame[column]
        is_count = column in COUNT_COLUMNS
        if values.dtype.kind in "if":
            if not (is_count and values.isna().any()):
                continue
            bad = values.isna()  # "N/A" or a missing field in a count
        else:
            bad = pd.to_numeric(values, errors="coerce").isna() & (values.astype(str).ne("N/A") | is_count)
            if not bad.any():
                continue
        index = int(bad.to_numpy().argmax())
        got = values.iat[index]
        raise GateInputError(
            path,
            index + 2,
            f"column {column!r} is not a number",
            "" if got is None or got != got else str(got),
            "re-run Locust to rewrite the file (was it truncated or hand-edited?)",
        )


def _percentile_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.endswith("%")]


def _rows_from_stats(path: str) -> dict[str, Row]:
    numbers = _read_csv(path, ["Type", "Name", *STATS_COLUMNS.values()])
    frame = numbers
    percentiles = _percentile_columns(frame)
    rows: dict[str, Row] = {}
    for index, (type_, name) in enumerate(zip(frame["Type"], frame["Name"], strict=True)):
        figures: dict[str, float | None] = {}
        for metric, column in STATS_COLUMNS.items():
            figures[metric] = _value(numbers[column].iat[index])
        for column in percentiles:
            figures[column] = _value(numbers[column].iat[index])
        derive_figures(figures)
        row = Row(type_, name, path, index + 2, figures)
        if row.key in rows:
            raise GateInputError(
                path, index + 2, "duplicate row", row.key, "re-run Locust to rewrite the file"
            )
        rows[row.key] = row
    return rows


def derive_figures(figures: dict[str, float | None]) -> None:
    """fail_ratio from the counts; a row without requests has no latency or rate figures at all."""
    requests, failures = figures.get("requests") or 0, figures.get("failures") or 0
    figures["fail_ratio"] = failures / requests if requests else None
    if not requests:
        for metric in figures:
            if metric not in ("requests", "failures", "fail_ratio"):
                figures[metric] = None


def _value(number: float) -> float | None:
    return None if number is None or math.isnan(number) else float(number)


def _load_history(path: str, reset_at: float | None) -> History:
    numbers = _read_csv(path, HISTORY_COLUMNS)
    if reset_at is not None:
        # Timestamps are whole seconds; a row stamped floor(reset_at) may predate the reset.
        numbers = numbers[numbers["Timestamp"] > math.floor(reset_at)]
    frames: dict[str, pd.DataFrame] = {}
    for (type_, name), group in numbers.groupby(["Type", "Name"], sort=False):
        frames[row_key(type_, name)] = group.sort_values("Timestamp", kind="stable")
    # Locust writes per-row history, with windowed percentiles for every row, only with --csv-full-history;
    # without it only Aggregated rows exist and their percentiles are cumulative since the (re)start.
    windowed = any(key != AGGREGATED for key in frames) or path.endswith("_llm_stats_history.csv")
    return History(path, windowed, frames)


def _history_tail(path: str, reset_at: float | None) -> pd.DataFrame:
    """The history's last write (every row key, one line each), read from the end of the file: a two-hour
    history need not be parsed to compare its last totals. Falls back to a full read if the tail is odd."""
    size, chunk = os.path.getsize(path), 64 * 1024
    try:
        while True:
            start = max(0, size - chunk)
            with open(path, "rb") as handle:
                handle.seek(start)
                data = handle.read()
            data = data[data.find(b"\n") + 1 :]  # drop a partial first line (or the header)
            frame = _read_csv(path, HISTORY_COLUMNS, body=data)
            if start == 0 or frame["Timestamp"].nunique() >= 2:
                break
            chunk *= 8
    except GateInputError:
        frame = _read_csv(path, HISTORY_COLUMNS)  # a name with a line break cut by the seek; or a real error
    if reset_at is not None:
        frame = frame[frame["Timestamp"] > math.floor(reset_at)]
    last = frame[frame["Timestamp"] == frame["Timestamp"].max()]
    return last.groupby(["Type", "Name"], sort=False).tail(1)


def _reconcile(run: RunData, path: str, reset_at: float | None, stats_path: str) -> None:
    """Say when the final CSV and the history's last totals disagree; counts only grow, so more is newer."""
    tail = _history_tail(path, reset_at)
    # With --csv-full-history every row is in each write and percentiles are windowed; without it only
    # Aggregated is, with cumulative percentiles (comparable with the CSV's).
    windowed = bool((tail["Name"] != AGGREGATED).any() or (tail["Type"] != "").any()) or path.endswith(
        "_llm_stats_history.csv"
    )
    for _, last in tail.iterrows():
        key = row_key(last["Type"], last["Name"])
        row = run.rows.get(key)
        if row is None or row.source != stats_path:
            continue  # e.g. the LLM history's own total row, which the LLM CSV does not carry
        hist_requests, hist_failures = int(last["Total Request Count"]), int(last["Total Failure Count"])
        csv_requests, csv_failures = row.requests, int(row.figures.get("failures") or 0)
        if (hist_requests, hist_failures) == (csv_requests, csv_failures):
            continue
        stamp = _utc(last["Timestamp"])
        said = (
            f'{row.source}: "{key}" disagrees with {path} (its last row, {stamp}, has '
            f"{hist_requests} requests, the CSV {csv_requests})"
        )
        if (hist_requests, hist_failures) > (csv_requests, csv_failures):
            for metric, column in HISTORY_TOTALS.items():
                row.figures[metric] = _value(last[column])
            if not windowed:
                for column in row.percentile_columns():
                    row.figures[column] = _value(last.get(column, float("nan")))
            derive_figures(row.figures)
            kept = "rps, fail_rps" + ("" if not windowed else " and percentiles")
            run.notes.append(f"{said}; using the history's newer totals; {kept} stay from the CSV")
        else:
            run.notes.append(f"{said}; using the CSV's newer figures")


def _utc(timestamp: float) -> str:
    return pd.Timestamp(int(timestamp), unit="s", tz="UTC").strftime("%H:%M:%S UTC")


def _secs(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:g}s"
