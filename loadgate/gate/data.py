"""Loading a Locust run (``--csv PREFIX``) into rows the evaluator can gate, with pandas.

Locust quirks handled here: the Aggregated row's empty Type, "N/A" figures on rows without requests,
names with commas, quotes or non-ASCII (read as strings, never as NaN/None), custom request types,
history percentiles that are windowed only with ``--csv-full-history``, and a final ``_stats.csv``
that disagrees with the history's last totals (reported; the newer figures win).

Fails closed: every file must be a regular file of a sane size before it is read, every figure finite
and >= 0 with whole counts, and loadgate's JSON files pass the contract's checks (exit 2 otherwise).
Per-second figures (rps, fail_rps, the summary's tokens/s and goodput) are computed over the measured
window recorded in ``PREFIX_loadgate.json``, not Locust's time to the last request.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loadgate import contract
from loadgate.gate.errors import GateInputError, input_file, show_number

AGGREGATED = "Aggregated"
LLM_ROW = contract.LLM_ROW  # pseudo-row holding the scalars of PREFIX_llm_summary.json
SUMMARY_FIELDS = contract.LLM_SUMMARY_METRICS  # metric -> key in PREFIX_llm_summary.json
UNITLESS_TYPES = (contract.TOKENS_PER_S,)  # LLM rows whose "response times" are tokens per second, not ms

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
COUNT_COLUMNS = (
    "Request Count",
    "Failure Count",
    "Total Request Count",
    "Total Failure Count",
    "Timestamp",
    "User Count",
    "Occurrences",
)
COUNT_PAIRS = (("Request Count", "Failure Count"), ("Total Request Count", "Total Failure Count"))


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
    absent: set[str] = field(default_factory=set)  # metrics whose source field is missing (LLM row)
    token_based: set[str] = field(default_factory=set)  # LLM-row metrics that depend on token counting

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
    window_s: float | None = None  # the measured window rps/fail_rps are computed over (None: Locust's)
    rate_note: str | None = None  # why rps/fail_rps are Locust's columns, when they are
    token_source: str | None = None  # how output tokens were counted ("server", "estimate", ...)
    stats_source: str = ""  # PREFIX_stats.csv
    lost_capacity: str | None = None  # lost workers the run did not accept (--allow-lost-workers)
    lost_workers: int = 0
    server_metrics: pd.DataFrame | None = None  # PREFIX_server_metrics.csv, read when a SERVER row asks
    server_prefix: str | None = None  # where that file is, when not under ``prefix`` (the live check)

    @property
    def server_source(self) -> str:
        return contract.path(self.server_prefix or self.prefix, contract.SERVER_METRICS_CSV)

    def server_series(self) -> pd.DataFrame | None:
        """PREFIX_server_metrics.csv (None when the run has none), read on first use."""
        if self.server_metrics is None and _present(self.server_source):
            self.server_metrics = load_server_metrics(self.server_source)
        return self.server_metrics

    def measured_window(self) -> tuple[float, float] | None:
        """(start, end) epoch seconds of the measured window from PREFIX_loadgate.json, or None."""
        meta = self.meta or {}
        start = (
            meta.get("stats_reset_at") if meta.get("stats_reset_at") is not None else meta.get("started_at")
        )
        end = meta.get("stopped_at")
        return (float(start), float(end)) if start is not None and end is not None else None

    @property
    def total_requests(self) -> int:
        """Requests of the whole run: the Aggregated row of _stats.csv, or the sum of its rows."""
        if AGGREGATED in self.rows and self.rows[AGGREGATED].kind == "http":
            return self.rows[AGGREGATED].requests
        return sum(row.requests for row in self.rows.values() if row.kind == "http" and row.key != LLM_ROW)

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
            self.histories[row.kind] = _load_history(path, self.reset_at) if _present(path) else None
        return row.kind, self.histories[row.kind]


def load_run(prefix: str, warmup_s: float = 0.0, role: str = "run") -> RunData:
    """Everything ``--csv PREFIX`` wrote. ``warmup_s`` > 0 requires the harness' warm-up reset record.
    Every file is checked before it is read (a regular file of a sane size) and every figure after
    (finite, not negative, whole counts): a bad one is exit 2, never a verdict."""
    stats_path = contract.path(prefix, contract.STATS_CSV)
    if not _present(stats_path):
        raise GateInputError(stats_path, None, f"{role} CSV not found", stats_path, _prefix_fix(prefix))
    meta_source = contract.path(prefix, contract.LOADGATE_JSON)
    meta = _load_meta(meta_source, warmup_s, role)
    if meta is not None and meta.target_died is not None:
        raise GateInputError(
            meta_source,
            "target_died",
            f"no valid {role}: the target died during it",
            meta.target_died.describe(),
            "fix or restart the target and re-run the load",
        )
    reset_at = meta.stats_reset_at if meta else None
    rows = _rows_from_stats(stats_path)
    llm_path = contract.path(prefix, contract.LLM_STATS_CSV)
    llm_present = _present(llm_path)
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
                    f"LLM rows must use the LLM types {'/'.join(contract.METRIC_TYPES)}",
                )
            rows[row.key] = row
    window, rate_note = _window(meta, meta_source)
    summary_path = contract.path(prefix, contract.LLM_SUMMARY_JSON)
    summary = _load_summary(summary_path) if _present(summary_path, json_file=True) else None
    if summary is not None and LLM_ROW not in rows:
        rows[LLM_ROW] = _summary_row(summary, summary_path, window)
    run = RunData(
        prefix,
        rows,
        meta.to_dict() if meta else None,
        meta_source,
        {},
        {
            "http": contract.path(prefix, contract.STATS_HISTORY_CSV),
            "llm": contract.path(prefix, contract.LLM_STATS_HISTORY_CSV),
        },
        None,
        llm_stats_present=llm_present,
        reset_at=reset_at,
        window_s=window,
        rate_note=rate_note,
        token_source=_token_source(summary, meta),
        stats_source=stats_path,
        lost_capacity=meta.lost_capacity() if meta else None,
        lost_workers=len(meta.lost_workers) if meta else 0,
    )
    for kind, path in run.history_sources.items():
        if _present(path):
            _reconcile(run, path, reset_at, llm_path if kind == "llm" else stats_path)
    if window is not None:
        for row in rows.values():
            if row.source != summary_path:  # the summary's rates were recomputed by _summary_row
                apply_window(row.figures, window)
    failures_path = contract.path(prefix, contract.FAILURES_CSV)
    if _present(failures_path):
        run.failures = _read_csv(failures_path, FAILURE_COLUMNS, numeric=False)
    if meta and meta.final_stats_written is False:
        run.notes.append(f"{meta_source}: final_stats_written is false: the run's last second may be missing")
    return run


CORRUPT_FIX = "re-run the load to rewrite the file (was it truncated or hand-edited?)"


def _present(path: str, json_file: bool = False) -> bool:
    """Whether a run file exists; exit 2 when it exists but is no regular, readable file of sane size."""
    limit = contract.MAX_JSON_BYTES if json_file else contract.MAX_CSV_BYTES
    fix = "delete or replace it with the file the run wrote" if json_file else "re-run Locust to rewrite it"
    return input_file(path, "run file", limit, fix)


def _prefix_fix(prefix: str) -> str:
    """How to name the run when PREFIX_stats.csv is not there: a file or a folder given instead, or a typo."""
    for suffix in (
        contract.STATS_CSV,
        contract.STATS_HISTORY_CSV,
        contract.LLM_STATS_CSV,
        contract.LOADGATE_JSON,
        ".csv",
    ):
        if prefix.endswith(suffix) and Path(prefix).is_file():
            return f"pass the prefix, not a file: {prefix.removesuffix(suffix)}"
    folder = Path(prefix)
    if folder.parent.is_file():
        return (
            f"{folder.parent} is a file, not a folder: pass the --csv prefix of the run, e.g. {folder.parent}"
        )
    if folder.is_dir():
        try:
            found = sorted(
                str(folder / p.name.removesuffix(contract.STATS_CSV))
                for p in folder.glob("*" + contract.STATS_CSV)
                if not p.name.endswith(contract.LLM_STATS_CSV)
            )
        except OSError:
            found = []
        if found:
            return f"pass the --csv prefix of the files in the folder, e.g. {found[0]}"
        return f"the folder has no *{contract.STATS_CSV}: pass the --csv prefix of the run, e.g. {folder}/loadgate"
    return f"run Locust headless with --csv {prefix} (and --csv-full-history), or fix the prefix"


def _read_json(path: str, what: str) -> object:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise GateInputError(
            path, None, f"cannot read {what}", error.strerror or str(error), CORRUPT_FIX
        ) from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise GateInputError(path, None, f"{what} is not UTF-8", str(error), CORRUPT_FIX) from None
    except json.JSONDecodeError as error:
        where = f"{error.msg}: line {error.lineno} column {error.colno}"
        raise GateInputError(path, None, f"unreadable {what}", where, CORRUPT_FIX) from None
    except RecursionError:
        raise GateInputError(path, None, f"unreadable {what}", "nested too deeply", CORRUPT_FIX) from None
    except ValueError as error:  # e.g. an integer of more than 4300 digits
        raise GateInputError(path, None, f"unreadable {what}", str(error), CORRUPT_FIX) from None


def _load_meta(path: str, warmup_s: float, role: str) -> contract.RunMeta | None:
    fix = (
        "run the load with loadgate's --warmup (env LOADGATE_WARMUP) and --csv PREFIX, which write this file"
    )
    if not _present(path, json_file=True):
        if warmup_s > 0:
            raise GateInputError(
                path,
                None,
                f"the thresholds require a {_secs(warmup_s)} warm-up but the {role} has no warm-up record",
                "no file",
                fix,
            )
        return None
    raw = _read_json(path, "run metadata")
    try:
        meta = contract.RunMeta.from_dict(raw)
    except contract.ContractError as error:
        raise GateInputError(path, error.key or None, error.what, error.got, CORRUPT_FIX) from None
    warm, reset_at = meta.warmup_s, meta.stats_reset_at
    if warmup_s > 0 and warm < warmup_s:
        raise GateInputError(
            path,
            "warmup_s",
            f"the {role} warmed up less than the thresholds' warmup ({_secs(warmup_s)})",
            raw.get("warmup_s", 0) if isinstance(raw, dict) else warm,  # as written: 10 or 10.0
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


def _window(meta: contract.RunMeta | None, source: str) -> tuple[float | None, str | None]:
    """The measured window in seconds (warm-up end, or start, to stop), or None and why it is unknown."""
    if meta is None:
        return None, f"{source} does not exist (plain Locust, without loadgate)"
    if meta.window() is not None:
        start, end = meta.window()  # type: ignore[misc]
        return end - start, None
    if meta.window_start is None:
        return None, f"{source} records neither started_at nor stats_reset_at"
    if meta.stopped_at is None:
        return None, f"{source} records no stopped_at (the run did not end cleanly?)"
    return None, f"{source} records an empty window (stopped_at equals its start)"


def apply_window(figures: dict[str, float | None], window_s: float) -> None:
    """rps and fail_rps over the measured window, not Locust's time to the last request."""
    requests = figures.get("requests")
    if not requests:
        return
    figures["rps"] = requests / window_s
    figures["fail_rps"] = (figures.get("failures") or 0) / window_s


def _token_source(summary: contract.LlmSummary | None, meta: contract.RunMeta | None) -> str | None:
    label = summary.token_source_label() if summary is not None else None
    if label is None and meta is not None:
        label = meta.token_source or meta.usage_source
    return label


def _load_summary(path: str) -> contract.LlmSummary:
    try:
        return contract.LlmSummary.from_dict(_read_json(path, "LLM summary"))
    except contract.ContractError as error:
        raise GateInputError(path, error.key or None, error.what, error.got, CORRUPT_FIX) from None


def _summary_row(summary: contract.LlmSummary, path: str, window_s: float | None) -> Row:
    """The LLM pseudo-row: one figure per LLM_SUMMARY_METRICS key (None when absent or null). Per-second
    figures are recomputed over the run's measured window when it is recorded with their counts."""
    figures: dict[str, float | None] = {}
    for metric, key in SUMMARY_FIELDS.items():
        value = getattr(summary, key, None)
        figures[metric] = None if value is None else float(value)
    if window_s is not None:
        if summary.total_output_tokens is not None and summary.output_tokens_per_s is not None:
            figures["tokens_per_s"] = summary.total_output_tokens / window_s
        if summary.good_requests is not None and summary.goodput_req_per_s is not None:
            figures["goodput"] = summary.good_requests / window_s
    row = Row("", LLM_ROW, path, 0, figures)
    row.absent = {m for m, key in SUMMARY_FIELDS.items() if key not in summary.present}
    row.token_based = set(contract.LLM_TOKEN_METRICS)
    if (summary.goodput_targets or {}).get("tpot_ms") is not None:
        row.token_based.add("goodput")  # a TPOT target: whether a request is good depends on its tokens
    return row


def load_server_metrics(path: str) -> pd.DataFrame:
    """PREFIX_server_metrics.csv: timestamp (finite, >= 0), metric, labels (parsed into ``label_map``),
    value (NaN and infinities allowed: Prometheus writes them; a rule on them fails closed). A bad line is
    exit 2 naming it."""
    from loadgate.servermetrics import parse_label_text

    columns = list(contract.SERVER_METRICS_COLUMNS)
    header = _header(path)
    if header != columns:
        raise GateInputError(path, 1, "not the server metrics header", ",".join(header)[:200], CSV_FIX)
    stamps: list[float] = []
    values: list[float] = []
    metrics: list[str] = []
    labels: list[str] = []
    label_maps: list[dict[str, str]] = []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            for line, fields in enumerate(reader, start=2):
                if len(fields) != len(columns):
                    raise GateInputError(
                        path,
                        line,
                        f"{len(fields)} fields, not {len(columns)}",
                        ",".join(fields)[:200],
                        CSV_FIX,
                    )
                stamp, value = _float(fields[0]), _float(fields[3])
                if stamp is None or not math.isfinite(stamp) or stamp < 0:
                    raise GateInputError(
                        path, line, "timestamp is not a finite number >= 0", fields[0], CSV_FIX
                    )
                if value is None:
                    raise GateInputError(path, line, "value is not a number", fields[3], CSV_FIX)
                try:
                    label_maps.append(parse_label_text(fields[2]))
                except ValueError as error:
                    raise GateInputError(path, line, str(error), fields[2], CSV_FIX) from None
                stamps.append(stamp)
                metrics.append(fields[1])
                labels.append(fields[2])
                values.append(value)
    except UnicodeDecodeError as error:
        raise GateInputError(path, None, "CSV is not UTF-8", str(error), CSV_FIX) from None
    except csv.Error as error:
        raise GateInputError(path, None, "malformed CSV", str(error), CSV_FIX) from None
    return pd.DataFrame(
        {"timestamp": stamps, "metric": metrics, "labels": labels, "label_map": label_maps, "value": values}
    )


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


TEXT_COLUMNS = ("Type", "Name", "Method", "Error", "First Seen", "Last Seen")


def _read_csv(
    path: str, required: list[str], numeric: bool = True, body: bytes | None = None, stats: bool = False
) -> pd.DataFrame:
    """A Locust CSV: text columns as exact strings (a name "NaN" stays "NaN"), the others as floats, with
    "N/A" (no figure) allowed only in percentile columns; every figure checked by ``_check_values``.
    ``numeric`` False: only the count columns are numbers (_failures.csv). ``stats``: a totals file, where
    only rows without requests may lack a percentile. ``body``: data lines of the file without its header
    (a tail read by ``_history_tail``)."""
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
    duplicate = next((c for i, c in enumerate(header) if c in header[:i]), None)
    if duplicate is not None:
        raise GateInputError(path, 1, f"duplicate column {duplicate!r}", ",".join(header)[:200], CSV_FIX)
    numbers = [c for c in header if (c not in TEXT_COLUMNS if numeric else c in COUNT_COLUMNS)]
    try:
        # Numbers parsed natively (fast), text as the exact text written, "N/A" missing only in percentile
        # columns; one spare column catches a row with more fields than the header (pandas would shift the
        # columns or drop the field). A field a row lacks reads as missing: "not a number" outside
        # percentiles, and the last column of every Locust CSV but _stats.csv is no percentile.
        frame = pd.read_csv(
            path if body is None else io.BytesIO(body),
            encoding="utf-8",
            header=None,
            skiprows=1 if body is None else 0,
            names=[*header, _SPARE],
            keep_default_na=False,
            na_values={c: ["N/A"] for c in numbers if c.endswith("%")},
            dtype={c: str for c in [*header, _SPARE] if c not in numbers},
            index_col=False,
        )
    except UnicodeDecodeError as error:
        raise GateInputError(
            path, None, "CSV is not UTF-8", str(error), "re-run Locust with a UTF-8 locale"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError, csv.Error) as error:
        raise GateInputError(
            path, None, "malformed CSV", str(error).strip(), "re-run Locust to rewrite it"
        ) from None
    spare = frame.pop(_SPARE).to_numpy(dtype=object)
    extra = spare != ""
    if extra.any():
        index = int(extra.argmax())
        raise GateInputError(
            path, index + 2, f"more fields than the {len(header)} columns", str(spare[index]), CSV_FIX
        )
    _check_values(frame, path, numbers, stats)
    return frame


_SPARE = "\x00spare"  # a column name no Locust header has


CSV_FIX = "re-run Locust to rewrite the file (was it truncated or hand-edited?)"


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
    except csv.Error as error:  # e.g. a header line longer than the csv module's field limit
        raise GateInputError(path, 1, "malformed CSV", str(error), CSV_FIX) from None
    if not header:
        raise GateInputError(
            path,
            None,
            "empty CSV file (no header)",
            "0 bytes",
            "re-run Locust; the run was probably killed before writing stats",
        )
    return header


def _check_values(frame: pd.DataFrame, path: str, columns: list[str], stats: bool) -> None:
    """Every figure a finite number >= 0, counts whole, failures no more than requests, "N/A" only in a
    percentile (and in a totals file only on a row without requests). The first bad line is exit 2, with
    its column and value; the numeric columns are left as floats."""
    problems: list[tuple[int, int, str, str]] = []  # (row index, column order, what, got)

    def first(mask: np.ndarray, order: int, what: str, got) -> None:
        if mask.any():
            index = int(mask.argmax())
            problems.append((index, order, what, got(index)))

    floats: dict[str, np.ndarray] = {}
    for order, column in enumerate(columns):
        raw = frame[column]
        parsed = raw if raw.dtype.kind in "iuf" else pd.to_numeric(raw, errors="coerce")  # slow: bad cells
        values = parsed.to_numpy(dtype=float, na_value=np.nan)
        floats[column] = values
        missing = np.isnan(values)
        allowed = raw.isna().to_numpy(dtype=bool) if column.endswith("%") else np.zeros(len(values), bool)
        first(
            missing & ~allowed,
            order,
            f"column {column!r} is not a number",
            lambda i, raw=raw: "" if pd.isna(raw.iat[i]) else str(raw.iat[i]),
        )
        known = values[~missing]
        if known.size and (not np.isfinite(known).all() or (known < 0).any()):
            with np.errstate(invalid="ignore"):
                first(
                    ~missing & (~np.isfinite(values) | (values < 0)),
                    order,
                    f"column {column!r} must be a finite number >= 0",
                    lambda i, v=values: show_number(v[i]),
                )
        if column in COUNT_COLUMNS and known.size and (np.isfinite(known) & (known != np.floor(known))).any():
            with np.errstate(invalid="ignore"):
                fractional = ~missing & np.isfinite(values) & (values != np.floor(values))
            first(
                fractional,
                order,
                f"column {column!r} must be a whole number >= 0",
                lambda i, v=values: show_number(v[i]),
            )
    for requests_column, failures_column in COUNT_PAIRS:
        if requests_column in floats and failures_column in floats:
            requests, failures = floats[requests_column], floats[failures_column]
            with np.errstate(invalid="ignore"):
                more = failures > requests
            first(
                more,
                columns.index(failures_column),
                f"column {failures_column!r} is larger than {requests_column!r}",
                lambda i, f=failures, r=requests: f"{show_number(f[i])} > {show_number(r[i])}",
            )
    if stats and "Request Count" in floats:
        with np.errstate(invalid="ignore"):
            has_requests = floats["Request Count"] > 0
        for order, column in enumerate(columns):
            if column.endswith("%"):
                first(
                    has_requests & np.isnan(floats[column]),
                    order,
                    f"column {column!r} is N/A on a row with requests",
                    lambda i: "N/A",
                )
    if problems:
        index, _, what, got = min(problems, key=lambda p: (p[0], p[1]))
        raise GateInputError(path, index + 2, what, got, CSV_FIX)
    for column, values in floats.items():
        frame[column] = values


def _percentile_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.endswith("%")]


def _rows_from_stats(path: str) -> dict[str, Row]:
    numbers = _read_csv(path, ["Type", "Name", *STATS_COLUMNS.values()], stats=True)
    frame = numbers
    percentiles = _percentile_columns(frame)
    rows: dict[str, Row] = {}
    arrays = {c: numbers[c].to_numpy(dtype=float) for c in [*STATS_COLUMNS.values(), *percentiles]}
    for index, (type_, name) in enumerate(zip(frame["Type"], frame["Name"], strict=True)):
        figures: dict[str, float | None] = {}
        for metric, column in STATS_COLUMNS.items():
            figures[metric] = _value(float(arrays[column][index]))
        for column in percentiles:
            figures[column] = _value(float(arrays[column][index]))
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
        frames[row_key(str(type_), str(name))] = group.sort_values("Timestamp", kind="stable")
    # Locust writes per-row history, with windowed percentiles for every row, only with --csv-full-history;
    # without it only Aggregated rows exist and their percentiles are cumulative since the (re)start.
    windowed = any(key != AGGREGATED for key in frames) or path.endswith(contract.LLM_STATS_HISTORY_CSV)
    return History(path, windowed, frames)


def _history_tail(path: str, reset_at: float | None) -> pd.DataFrame:
    """The history's last write (every row key, one line each), read from the end of the file: a two-hour
    history need not be parsed to compare its last totals. Falls back to a full read if the tail is odd."""
    chunk = 64 * 1024
    try:
        while True:
            with open(path, "rb") as handle:
                size = handle.seek(0, io.SEEK_END)
                start = max(0, size - chunk)
                handle.seek(start)
                data = handle.read()
            data = data[data.find(b"\n") + 1 :]  # drop a partial first line (or the header)
            frame = _read_csv(path, HISTORY_COLUMNS, body=data)
            if start == 0 or frame["Timestamp"].nunique() >= 2:
                break
            chunk *= 8
    except OSError as error:
        raise GateInputError(
            path, None, "cannot read CSV", error.strerror or str(error), "check the path"
        ) from None
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
        contract.LLM_STATS_HISTORY_CSV
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
                row.figures[metric] = _value(float(last[column]))
            if not windowed:
                for column in row.percentile_columns():
                    row.figures[column] = _value(float(last.get(column, float("nan"))))
            derive_figures(row.figures)
            if run.window_s is None:
                kept = "; rps, fail_rps" + ("" if not windowed else " and percentiles") + " stay from the CSV"
            else:
                kept = "; percentiles stay from the CSV" if windowed else ""
            run.notes.append(f"{said}; using the history's newer totals{kept}")
        else:
            run.notes.append(f"{said}; using the CSV's newer figures")


def _utc(timestamp: float) -> str:
    try:
        return time.strftime("%H:%M:%S UTC", time.gmtime(int(timestamp)))
    except (OverflowError, OSError, ValueError):  # a timestamp past the platform's calendar
        return f"epoch {int(timestamp)}"


def _secs(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:g}s"
