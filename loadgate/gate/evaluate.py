"""Judging rules against a run: one ``Verdict`` per rule, failing closed on missing data."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from loadgate import contract
from loadgate.gate.config import RowSpec, RuleSpec, SlaConfig
from loadgate.gate.data import AGGREGATED, LLM_ROW, SUMMARY_FIELDS, History, Row, RunData
from loadgate.gate.errors import GateInputError
from loadgate.gate.language import COUNT, RATE, RATIO, TIME, TOKEN_RATE, Metric, Rule
from loadgate.servermetrics import value_text

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
_ORDER = {FAIL: 0, SKIP: 1, PASS: 2}


@dataclass
class Verdict:
    status: str
    section: str  # "thresholds" | "regression"
    row: str  # the row key as written in the threshold file
    rule: str
    metric: str
    op: str
    limit: float | None
    limit_text: str
    observed: float | None
    observed_text: str
    reason: str  # why it failed or was skipped ("no data: ..."); details of "for" windows
    config_line: int
    source: str  # the CSV the figure came from
    window_s: float | None = None
    violation_s: float | None = None  # longest continuous violation ("for" rules)
    token_source: str | None = None  # how tokens were counted, for token-based figures not from the server

    def line(self) -> str:
        """The one-line verdict used in the table, JUnit failures and logs."""
        window = f" for {_seconds(self.window_s)}" if self.window_s else ""
        text = (
            f'{self.status} {self.metric} of "{self.row}": observed {self.observed_text}, required {self.op} '
            f"{self.limit_text}{window}"
        )
        text = f"{text} ({self.reason})" if self.reason else text
        return f"{text} ({self.tokens_text})" if self.tokens_text else text

    @property
    def tokens_text(self) -> str:
        """ "tokens: estimate" when the figure depends on token counts not reported by the server."""
        return f"tokens: {self.token_source}" if self.token_source else ""


@dataclass
class Evaluation:
    verdicts: list[Verdict]
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status == FAIL]

    @property
    def passed(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class Violation:
    """The longest stretch of consecutive samples that break a rule (unknown samples do not interrupt it)."""

    start: float
    end: float
    worst: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def longest_violation(
    samples: Iterable[tuple[float, float | None]], rule: Rule, limit: float
) -> Violation | None:
    """Samples are (timestamp, value) in time order; value None means no figure for that second."""
    best: Violation | None = None
    start: float | None = None
    worst = 0.0
    worse = max if rule.op in ("<", "<=", "==") else min
    for stamp, value in samples:
        if value is None:
            continue
        if rule.holds(value, limit):
            start = None
            continue
        if start is None:
            start, worst = stamp, value
        end, worst = stamp, worse(worst, value)
        if best is None or end - start > best.seconds:
            best = Violation(start, end, worst)
    return best


def evaluate(config: SlaConfig, run: RunData, baseline: RunData | None = None) -> Evaluation:
    evaluation = Evaluation([], list(run.notes))
    if baseline is not None:
        evaluation.notes += [f"baseline: {note}" for note in baseline.notes]
    for spec in config.thresholds:
        evaluation.verdicts += _judge_row(config, spec, run, None)
    for spec in config.regression:
        evaluation.verdicts += _judge_row(config, spec, run, baseline)
    if run.total_requests == 0:
        evaluation.verdicts.append(_no_requests(run))
    if run.lost_capacity:
        evaluation.verdicts.append(_lost_capacity(run))
    if config.regression and baseline is None:
        evaluation.notes.append("regression rules were skipped: no --baseline BASE_PREFIX given")
    for who, data in (("", run), ("baseline: ", baseline)):
        if data is not None and data.window_s is None and data.rate_note and _uses_rates(evaluation, who):
            evaluation.notes.append(
                f'{who}rps and fail_rps are Locust\'s "Requests/s" and "Failures/s" columns, which divide by '
                f"the time to the last request, not the run's length: {data.rate_note}"
            )
    evaluation.verdicts.sort(key=lambda v: _ORDER[v.status])
    return evaluation


def _uses_rates(evaluation: Evaluation, who: str) -> bool:
    """A judged rps/fail_rps figure of the run (or, for "baseline: ", a regression rule's baseline)."""
    rates = [v for v in evaluation.verdicts if v.metric in RATE_METRICS and v.status != SKIP]
    return any(v.section == "regression" for v in rates) if who else bool(rates)


RATE_METRICS = ("rps", "fail_rps")


def _no_requests(run: RunData) -> Verdict:
    """A run without a single request is never a pass, whatever its rows say (all optional, min 0...)."""
    return Verdict(
        status=FAIL,
        section="thresholds",
        row=AGGREGATED,
        rule="requests > 0",
        metric="requests",
        op=">",
        limit=0.0,
        limit_text="0",
        observed=0.0,
        observed_text="0",
        reason=f"no data: the run made no requests ({run.stats_source or run.prefix} counts 0); a run "
        "without requests is never a pass, whatever rows are optional",
        config_line=0,
        source=run.stats_source or run.prefix,
    )


def _lost_capacity(run: RunData) -> Verdict:
    """A run that lost a worker is never a pass: part of the planned load never ran and the worker's last
    requests are in no file; --allow-lost-workers (recorded in PREFIX_loadgate.json) accepts it."""
    lost = run.lost_workers
    return Verdict(
        status=FAIL,
        section="thresholds",
        row="run",
        rule="lost_workers == 0",
        metric="lost_workers",
        op="==",
        limit=0.0,
        limit_text="0",
        observed=float(lost),
        observed_text=str(lost),
        reason=f"{run.lost_capacity}; re-run, or accept it with --allow-lost-workers",
        config_line=0,
        source=run.meta_source,
    )


def _judge_row(config: SlaConfig, spec: RowSpec, run: RunData, baseline: RunData | None) -> list[Verdict]:
    if spec.key == contract.SERVER_ROW:
        return [_judge_server(spec, rs, run) for rs in spec.rules]
    if spec.rules[0].section == "regression" and baseline is None:
        return [_verdict(SKIP, rs, spec, None, None, "no --baseline given", run.prefix) for rs in spec.rules]
    row = run.find(spec.key, config.path, spec.line)
    missing = _no_data_reason(spec, row, run, "")
    if missing:
        status = SKIP if spec.optional and row is None else FAIL
        return [_verdict(status, rs, spec, None, None, missing, run.prefix) for rs in spec.rules]
    assert row is not None  # _no_data_reason said so
    base_row = None
    if baseline is not None:
        base_row = baseline.find(spec.key, config.path, spec.line)
        missing = _no_data_reason(spec, base_row, baseline, "baseline ")
        if missing:
            return [_verdict(FAIL, rs, spec, row, None, missing, row.source) for rs in spec.rules]
    return [_judge_rule(config, spec, rs, row, run, base_row) for rs in spec.rules]


def _judge_server(spec: RowSpec, rs: RuleSpec, run: RunData) -> Verdict:
    """A SERVER rule: the matching series of PREFIX_server_metrics.csv inside the measured window, summed
    per scrape when several match, then their max, min, avg or last. No file, no such series, no sample
    in the window or a non-finite value: no data (FAIL; SKIP for an optional row's absent series)."""
    series, source = rs.rule.series, run.server_source
    assert series is not None and rs.rule.limit is not None  # config: SERVER rules have both
    frame = run.server_series()
    absent = SKIP if spec.optional else FAIL
    if frame is None:
        reason = f"no data: no {source} (run the load with --server-metrics URL or auto)"
        return _verdict(absent, rs, spec, None, None, reason, source)
    picked = frame[(frame["metric"] == series.metric) & frame["label_map"].map(series.selects)]
    if picked.empty:
        names = sorted(set(frame["metric"]))
        present = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "") or "none"
        reason = f"no data: no series {rs.rule.metric.name[len(series.aggregate) + 1 : -1]} in {source}; series present: {present}"
        return _verdict(absent, rs, spec, None, None, reason, source)
    window = run.measured_window()
    if window is not None:
        inside = picked[(picked["timestamp"] >= window[0]) & (picked["timestamp"] <= window[1])]
        if inside.empty:
            reason = f"no data: none of its {len(picked)} samples is inside the measured window"
            return _verdict(FAIL, rs, spec, None, None, reason, source)
        picked = inside
    bad = picked[~np.isfinite(picked["value"].to_numpy(dtype=float))]
    if not bad.empty:
        first = bad.iloc[0]
        shown = value_text(float(first["value"]))
        reason = f"no data: a non-finite value ({shown}) at {_clock(float(first['timestamp']))}"
        return _verdict(FAIL, rs, spec, None, None, reason, source)
    per_scrape = picked.groupby("timestamp", sort=True)["value"].sum()
    observed = float(
        {"max": per_scrape.max, "min": per_scrape.min, "avg": per_scrape.mean}.get(
            series.aggregate, lambda: per_scrape.iloc[-1]
        )()
    )
    status = PASS if rs.rule.holds(observed, rs.rule.limit) else FAIL
    count = picked["labels"].nunique()
    summed = f", the sum of {count} series" if count > 1 else ""
    scope = "in the measured window" if window is not None else "(no measured window recorded: all samples)"
    reason = f"{len(per_scrape)} scrapes {scope}{summed}"
    return _verdict(status, rs, spec, None, None, reason, source, observed)


def _no_data_reason(spec: RowSpec, row: Row | None, run: RunData, who: str) -> str:
    if row is None:
        present = ", ".join(f'"{key}"' for key in run.rows) or "none"
        llm_csv = contract.path(run.prefix, contract.LLM_STATS_CSV)
        hint = "" if run.llm_stats_present else f"; no {llm_csv} (run the load with loadgate's users)"
        optional = "optional row absent" if spec.optional and not who else f"no data: {who}row absent"
        return f"{optional}; rows present: {present}{hint}"
    if row.requests < max(spec.min_requests, 1):
        return f"no data: {who}row has {row.requests} requests, min_requests is {max(spec.min_requests, 1)}"
    return ""


def _judge_rule(
    config: SlaConfig, spec: RowSpec, rs: RuleSpec, row: Row, run: RunData, base_row: Row | None
) -> Verdict:
    rule = rs.rule
    key = _figure_key(config, rs, row)
    if rule.time_unit_given and row.unit != "ms":
        raise GateInputError(
            config.path,
            rs.line,
            f'a time unit on row "{row.key}", whose figures are {row.unit}',
            rule.text,
            "write the limit as a plain number",
        )
    if rule.window_s is not None:
        verdict = _judge_window(spec, rs, row, run, key)
        verdict.token_source = _token_source(run, row, rule.metric)
        return verdict
    limit = rule.limit
    limit_text = None
    if rule.baseline is not None:
        base = base_row.figures.get(key) if base_row else None
        if base is None:
            return _verdict(
                FAIL, rs, spec, row, None, f"no data: baseline {rule.metric.name} is N/A", row.source
            )
        limit = rule.baseline.limit(base)
        limit_text = f"{_show(rule.metric, row, limit)} ({rule.baseline.text()}, baseline {_show(rule.metric, row, base)})"
    observed = row.figures.get(key)
    if observed is None:
        if rule.metric.name in row.absent:
            hint = (
                f" ({row.source} has no {SUMMARY_FIELDS[rule.metric.name]!r}: written by an older loadgate?)"
            )
        elif rule.metric.name == "goodput":
            hint = " (no --goodput targets were set)"
        else:
            hint = ""
        verdict = _verdict(
            FAIL, rs, spec, row, limit, f"no data: {rule.metric.name} is N/A{hint}", row.source
        )
        verdict.token_source = _token_source(run, row, rule.metric)
        return verdict
    assert limit is not None  # an absolute limit, or one derived from the baseline above
    status = PASS if rule.holds(observed, limit) else FAIL
    verdict = _verdict(status, rs, spec, row, limit, "", row.source, observed)
    verdict.token_source = _token_source(run, row, rule.metric)
    if limit_text:
        verdict.limit_text = limit_text
    if status == FAIL and rule.metric.name in ("fail_ratio", "failures", "fail_rps"):
        verdict.reason = _top_failure(run, row)
    return verdict


def _token_source(run: RunData, row: Row, metric: Metric) -> str | None:
    """The run's token source when this figure is counted in tokens and the server did not count them."""
    source = run.token_source
    if not source or source == contract.TOKEN_SERVER:
        return None
    if row.key == LLM_ROW:
        return source if metric.name in row.token_based else None
    return source if row.kind == "llm" and row.type in contract.TOKEN_BASED else None


def _figure_key(config: SlaConfig, rs: RuleSpec, row: Row) -> str:
    label = rs.rule.metric.column_label
    if label is None and rs.rule.metric.name not in row.figures:
        have = ", ".join(m for m in row.figures if not m.endswith("%"))
        raise GateInputError(
            config.path,
            rs.line,
            f'{rs.rule.metric.name} does not apply to row "{row.key}"',
            rs.rule.text,
            f"use one of {have}" + ("" if row.key == LLM_ROW else f", or gate it on row {LLM_ROW}"),
        )
    if label is None:
        return rs.rule.metric.name
    if label not in row.figures:
        have = " ".join(f"p({c[:-1]})" for c in row.percentile_columns())
        raise GateInputError(
            config.path,
            rs.line,
            f"{rs.rule.metric.name} is not a percentile {row.source} has",
            rs.rule.text,
            f"use one of {have}",
        )
    return label


def _window_history(rule: Rule, row: Row, run: RunData) -> tuple[str, History]:
    """The history a "for" rule reads, or exit 2 saying how to make Locust write it."""
    kind, history = run.history_for(row)
    source = run.history_sources[kind]
    fix = f"run Locust with --csv {run.prefix} --csv-full-history"
    if history is None:
        raise GateInputError(source, None, "history file not found; 'for' rules need it", rule.text, fix)
    if row.key != AGGREGATED and not history.windowed:
        raise GateInputError(
            source, None, f'no per-row history for "{row.key}" (only Aggregated was written)', rule.text, fix
        )
    if not history.windowed and (rule.metric.percentile is not None or rule.metric.name == "median"):
        raise GateInputError(
            source,
            None,
            "history percentiles are cumulative, not windowed, without --csv-full-history",
            rule.text,
            fix,
        )
    return source, history


def _judge_window(spec: RowSpec, rs: RuleSpec, row: Row, run: RunData, key: str) -> Verdict:
    rule = rs.rule
    window_s, limit = rule.window_s, rule.limit
    assert window_s is not None and limit is not None  # config: "for" rules have absolute limits
    source, history = _window_history(rule, row, run)
    frame = history.frames.get(row.key)
    if frame is None or frame.empty:
        return _verdict(
            FAIL, rs, spec, row, rule.limit, "no data: no history samples after the warm-up", source
        )
    stamps = frame["Timestamp"].to_numpy(dtype=float)
    values = _window_values(frame, rule.metric, key)
    covered = float(stamps[-1] - stamps[0])
    if covered < window_s:
        return _verdict(
            FAIL,
            rs,
            spec,
            row,
            rule.limit,
            f"no data: history after the warm-up covers {_seconds(covered)}"
            f", shorter than the {_seconds(window_s)} window",
            source,
        )
    violation = longest_violation(zip(stamps, values, strict=True), rule, limit)
    known = [v for v in values if v is not None]
    if not known:
        return _verdict(
            FAIL,
            rs,
            spec,
            row,
            rule.limit,
            f"no data: {rule.metric.name} has no figure in the history",
            source,
        )
    if violation is None:
        worst = (max if rule.op in ("<", "<=", "==") else min)(known)
        verdict = _verdict(PASS, rs, spec, row, rule.limit, "", source, worst)
        verdict.observed_text = f"never violated (worst sample {_show(rule.metric, row, worst)})"
        verdict.violation_s = 0.0
        return verdict
    status = FAIL if violation.seconds >= window_s else PASS
    verdict = _verdict(status, rs, spec, row, rule.limit, "", source, violation.worst)
    verdict.violation_s = violation.seconds
    verdict.observed_text = (
        f"violated for {_seconds(violation.seconds)} ({_clock(violation.start)}-"
        f"{_clock(violation.end)}, worst {_show(rule.metric, row, violation.worst)})"
    )
    return verdict


def _window_values(frame, metric: Metric, key: str) -> list[float | None]:
    """Per-second figures; a 0 percentile means Locust had no window yet (first seconds), so unknown."""
    if metric.name == "fail_ratio":
        rps, fails = frame["Requests/s"].to_numpy(float), frame["Failures/s"].to_numpy(float)
        return [f / r if r > 0 else None for r, f in zip(rps, fails, strict=True)]
    column = {"rps": "Requests/s", "fail_rps": "Failures/s", "median": "50%"}.get(metric.name, key)
    raw = frame[column].to_numpy(dtype=float)
    latency = metric.kind == TIME
    return [None if np.isnan(v) or (latency and v == 0) else float(v) for v in raw]


def _top_failure(run: RunData, row: Row) -> str:
    frame = run.failures
    if frame is None or frame.empty:
        return ""
    if row.key != AGGREGATED:
        frame = frame[(frame["Method"] == row.type) & (frame["Name"] == row.name)]
    if frame.empty:
        return ""
    counts = frame.assign(n=frame["Occurrences"].map(_to_int)).sort_values("n", ascending=False)
    top = counts.iloc[0]
    return f"top error: {top['Error']} x{int(top['n'])}"


def _to_int(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


def _verdict(
    status: str,
    rs: RuleSpec,
    spec: RowSpec,
    row: Row | None,
    limit: float | None,
    reason: str,
    source: str,
    observed: float | None = None,
) -> Verdict:
    rule = rs.rule
    if rule.baseline is not None and limit is None:
        limit_text = rule.baseline.text()
    else:
        limit_text = _show(rule.metric, row, limit if limit is not None else rule.limit)
    return Verdict(
        status=status,
        section=rs.section,
        row=spec.key,
        rule=rule.text,
        metric=rule.metric.name,
        op=rule.op,
        limit=limit if limit is not None else rule.limit,
        limit_text=limit_text,
        observed=observed,
        observed_text=_show(rule.metric, row, observed) if observed is not None else "no data",
        reason=reason,
        config_line=rs.line,
        source=source,
        window_s=rule.window_s,
    )


def _show(metric: Metric, row: Row | None, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.kind == TIME:
        return f"{_num(value)} {row.unit if row else 'ms'}"
    if metric.kind == RATE:
        return f"{_num(value)} req/s"
    if metric.kind == TOKEN_RATE:
        return f"{_num(value)} tok/s"
    if metric.kind == RATIO:
        return f"{_num(value * 100)}%"
    if metric.kind == COUNT:
        return str(int(value))
    return _num(value)


def _num(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 100 else f"{value:.1f}"


def _seconds(value: float | None) -> str:
    return f"{_num(value or 0)} s"


def _clock(stamp: float) -> str:
    try:
        return time.strftime("%H:%M:%S", time.gmtime(stamp))
    except (OverflowError, OSError, ValueError):  # a timestamp past the platform's calendar
        return f"epoch {int(stamp)}"
