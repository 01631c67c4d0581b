"""The threshold language: "p(95) < 3s", "fail_ratio < 1%", "rps >= baseline - 5%", "... for 30s".

Parsing only; a rule does not know which row it applies to (``evaluate`` does). Errors raise
``RuleSyntaxError`` carrying the bad text and the fix; the YAML layer adds the file and line.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from loadgate import durations

# How each metric is read: TIME figures are milliseconds (tokens/s on LLM TOKENS/S rows), RATE figures
# requests per second, RATIO a fraction of 1, COUNT a number of requests.
TIME, RATE, RATIO, COUNT, TOKEN_RATE = "time", "rate", "ratio", "count", "token_rate"
SERVER_VALUE = "server"  # a server metric's value, in its own unit (row SERVER)

PLAIN_METRICS: dict[str, str] = {
    "median": TIME,
    "avg": TIME,
    "min": TIME,
    "max": TIME,
    "rps": RATE,
    "fail_rps": RATE,
    "fail_ratio": RATIO,
    "requests": COUNT,
    "failures": COUNT,
}
# Scalars of PREFIX_llm_summary.json, gated on the pseudo-row "LLM" (keys: contract.LLM_SUMMARY_METRICS).
SUMMARY_METRICS: dict[str, str] = {
    "goodput": RATE,
    "tokens_per_s": TOKEN_RATE,
    "output_tokens": COUNT,
    "lost_jobs": COUNT,
    "cancelled": COUNT,  # requests cut by the run stopping
    "loadgen_lag_p99": TIME,  # ms
    "achieved_rate": RATE,  # req/s
    "schedule_lag_p99": TIME,  # ms
}
METRIC_HELP = (
    "p(N) (N a percentile Locust writes: 50 66 75 80 90 95 98 99 99.9 99.99 100), "
    + ", ".join(PLAIN_METRICS)
    + "; on row LLM: "
    + ", ".join(SUMMARY_METRICS)
)

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}

_TIME_UNITS_MS = {"ms": 1.0, "s": 1000.0, "m": 60_000.0}
_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_RULE = re.compile(
    r"^\s*(?P<metric>p\s*\(\s*[^)]*\)|[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op><=|>=|==|<|>|=|!=)\s*(?P<rhs>.*?)"
    r"(?:\s+for\s+(?P<window>\S.*?))?\s*$"
)
_VALUE = re.compile(rf"^(?P<num>{_NUMBER})\s*(?P<unit>[A-Za-z%]*)$")
_BASELINE = re.compile(rf"^baseline(?:\s*(?P<sign>[+-])\s*(?P<num>{_NUMBER})\s*(?P<unit>[A-Za-z%]*))?$")


class RuleSyntaxError(ValueError):
    """A threshold expression, value or duration is malformed; ``fix`` says how to write it."""

    def __init__(self, what: str, got: str, fix: str) -> None:
        super().__init__(what)
        self.what, self.got, self.fix = what, got, fix


@dataclass(frozen=True)
class Metric:
    name: str  # as written canonically: "p(95)", "avg", "fail_ratio"
    kind: str  # TIME, RATE, RATIO or COUNT
    percentile: float | None = None  # 95.0 for p(95)

    @property
    def column_label(self) -> str | None:
        """The column Locust writes for this percentile ("95%", "99.9%")."""
        return None if self.percentile is None else percentile_label(self.percentile)


@dataclass(frozen=True)
class BaselineRef:
    """``baseline [+|- amount[%|unit]]``: the limit is derived from the baseline run's figure."""

    delta: float = 0.0  # signed, in the metric's unit, or a signed fraction when ``relative``
    relative: bool = False

    def limit(self, base: float) -> float:
        return base * (1.0 + self.delta) if self.relative else base + self.delta

    def text(self) -> str:
        if not self.delta:
            return "baseline"
        sign = "+" if self.delta > 0 else "-"
        amount = f"{_fmt(abs(self.delta) * 100)}%" if self.relative else _fmt(abs(self.delta))
        return f"baseline {sign} {amount}"


@dataclass(frozen=True)
class Series:
    """``max(vllm:num_requests_running{model_name="x"})``: an aggregate over the measured window of the
    series of PREFIX_server_metrics.csv named ``metric`` whose labels include ``labels``."""

    aggregate: str  # one of SERVER_AGGREGATES
    metric: str
    labels: tuple[tuple[str, str], ...] = ()  # (name, value) pairs every matching series carries

    def selects(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.labels)


@dataclass(frozen=True)
class Rule:
    text: str
    metric: Metric
    op: str
    limit: float | None  # absolute limit in the metric's unit; None when ``baseline`` is set
    baseline: BaselineRef | None
    window_s: float | None  # "for 30s" -> 30.0
    time_unit_given: bool  # "3s"/"250ms" was written: only valid on a millisecond row
    series: Series | None = None  # row SERVER: the server metric's series and aggregate

    def holds(self, observed: float, limit: float) -> bool:
        return OPERATORS[self.op](observed, limit)


def windowable(metric: Metric) -> bool:
    """Metrics Locust's history has per second (sliding window), so "for <duration>" can apply."""
    return metric.percentile is not None or metric.name in ("median", "rps", "fail_rps", "fail_ratio")


def percentile_label(percent: float) -> str:
    """Locust's column name for a percentile given in percent (95 -> "95%", 99.9 -> "99.9%")."""
    return f"{int(percent) if float(percent).is_integer() else round(percent, 6)}%"


def parse_metric(text: str) -> Metric:
    name = text.strip()
    match = re.fullmatch(r"p\s*\(\s*(.*?)\s*\)", name)
    if match:
        try:
            percent = float(match.group(1))
        except ValueError:
            percent = float("nan")
        if not 0 < percent <= 100:
            raise RuleSyntaxError(
                "bad percentile", text, "write p(N) with 0 < N <= 100, e.g. p(95) or p(99.9)"
            )
        return Metric(f"p({_fmt(percent)})", TIME, percent)
    kind = PLAIN_METRICS.get(name) or SUMMARY_METRICS.get(name)
    if kind is None:
        raise RuleSyntaxError(f"unknown metric {name!r}", text, f"use one of {METRIC_HELP}")
    return Metric(name, kind)


def parse_rule(text: object) -> Rule:
    try:
        return _parse_rule(text)
    except RuleSyntaxError as error:
        error.got = text if isinstance(text, str) else repr(text)  # the whole rule reads best in errors
        raise


def _parse_rule(text: object) -> Rule:
    if not isinstance(text, str) or not text.strip():
        raise RuleSyntaxError(
            "a threshold must be a non-empty string", repr(text), 'write e.g. "p(95) < 3000"'
        )
    match = _RULE.match(text)
    if not match:
        raise RuleSyntaxError(
            "cannot parse threshold",
            text,
            'write "<metric> <op> <value> [for <duration>]", e.g. "p(95) < 3s"',
        )
    op = match.group("op")
    if op in ("=", "!="):
        raise RuleSyntaxError(f"unknown operator {op!r}", text, "use one of < <= > >= ==")
    metric = parse_metric(match.group("metric"))
    rhs = match.group("rhs").strip()
    window = match.group("window")
    window_s = parse_duration(window, allow_zero=False) if window is not None else None
    base = _BASELINE.match(rhs)
    if base:
        ref = _parse_baseline_delta(base, metric, text)
        unit_given = (base.group("unit") or "") in _TIME_UNITS_MS
        return Rule(text, metric, op, None, ref, window_s, unit_given)
    limit, time_unit_given = parse_value(rhs, metric, text)
    return Rule(text, metric, op, limit, None, window_s, time_unit_given)


def parse_value(rhs: str, metric: Metric, text: str) -> tuple[float, bool]:
    """A limit in the metric's unit: "3000", "3s", "250ms" (time), "1%" or "0.01" (fail_ratio)."""
    match = _VALUE.match(rhs)
    if not match:
        raise RuleSyntaxError(f"bad value {rhs!r}", text, _unit_fix(metric))
    number, unit = float(match.group("num")), match.group("unit")
    limit, unit_given = _apply_unit(number, unit, metric, text)
    _finite(limit, rhs, metric, text)
    return limit, unit_given


def _finite(number: float, rhs: str, metric: Metric, text: str) -> None:
    """A limit of 400 digits reads as infinity, which every figure is below: refused."""
    if not math.isfinite(number):
        raise RuleSyntaxError(f"value {rhs[:40]!r} is out of range", text, _unit_fix(metric))


def _parse_baseline_delta(match: re.Match[str], metric: Metric, text: str) -> BaselineRef:
    if match.group("sign") is None:
        return BaselineRef()
    sign = 1.0 if match.group("sign") == "+" else -1.0
    number, unit = float(match.group("num")), match.group("unit")
    _finite(number, match.group("num"), metric, text)
    if unit == "%":
        return BaselineRef(sign * number / 100.0, relative=True)
    amount, _ = _apply_unit(number, unit, metric, text)
    _finite(amount, match.group("num"), metric, text)
    return BaselineRef(sign * amount)


def _apply_unit(number: float, unit: str, metric: Metric, text: str) -> tuple[float, bool]:
    if not unit:
        return number, False
    if metric.kind == TIME and unit in _TIME_UNITS_MS:
        return number * _TIME_UNITS_MS[unit], True
    if metric.kind == RATIO and unit == "%":
        return number / 100.0, False
    raise RuleSyntaxError(f"unit {unit!r} does not apply to {metric.name}", text, _unit_fix(metric))


def _unit_fix(metric: Metric) -> str:
    return {
        TIME: "write milliseconds as a number (3000) or with a unit: 250ms, 3s, 1m",
        RATE: "write requests per second as a plain number, e.g. 5 or 0.5",
        TOKEN_RATE: "write tokens per second as a plain number, e.g. 200",
        RATIO: "write a fraction (0.01) or a percentage (1%)",
        COUNT: "write a whole number of requests, e.g. 100",
    }[metric.kind]


# -- row SERVER: "max(mock_requests_waiting) < 10", "avg(vllm:gpu_cache_usage_perc{model_name="m"}) <= 0.9"
SERVER_AGGREGATES = ("max", "min", "avg", "last")
SERVER_FIX = (
    'write "AGGREGATE(SERIES) OP NUMBER" with AGGREGATE one of max, min, avg, last, e.g. '
    '"max(vllm:num_requests_waiting) < 10" or "avg(vllm:gpu_cache_usage_perc{model_name="m"}) < 0.9"'
)
_SERVER_RULE = re.compile(
    r"^\s*(?P<agg>[A-Za-z_]+)\s*\(\s*(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(?P<labels>.*)\})?\s*\)"
    r"\s*(?P<op><=|>=|==|<|>|=|!=)\s*(?P<rhs>\S.*?)\s*$"
)
_LABEL = re.compile(r'\s*(?P<k>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*"(?P<v>(?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_server_rule(text: object) -> Rule:
    """A rule of row SERVER; RuleSyntaxError (with the fix) when malformed."""
    if not isinstance(text, str) or not text.strip():
        raise RuleSyntaxError("a threshold must be a non-empty string", repr(text), SERVER_FIX)
    match = _SERVER_RULE.match(text)
    if not match:
        raise RuleSyntaxError("cannot parse SERVER threshold", text, SERVER_FIX)
    aggregate, op = match.group("agg"), match.group("op")
    if aggregate not in SERVER_AGGREGATES:
        raise RuleSyntaxError(f"unknown aggregate {aggregate!r}", text, SERVER_FIX)
    if op in ("=", "!="):
        raise RuleSyntaxError(f"unknown operator {op!r}", text, "use one of < <= > >= ==")
    labels = _parse_labels(match.group("labels"), text)
    rhs = match.group("rhs")
    value = _VALUE.match(rhs)
    if not value or value.group("unit"):
        if re.match(r"^baseline\b", rhs) or re.search(r"\sfor\s", f" {rhs}"):
            raise RuleSyntaxError(
                f"bad value {rhs!r}", text, "SERVER rules take a plain number: no baseline, no 'for'"
            )
        raise RuleSyntaxError(f"bad value {rhs!r}", text, "write the limit as a plain number, e.g. 10 or 0.9")
    limit = float(value.group("num"))
    if not math.isfinite(limit):
        raise RuleSyntaxError(f"value {rhs[:40]!r} is out of range", text, "write a finite number")
    series = Series(aggregate, match.group("name"), labels)
    shown = (
        f"{aggregate}({series.metric}"
        + ("{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}" if labels else "")
        + ")"
    )
    return Rule(text, Metric(shown, SERVER_VALUE), op, limit, None, None, False, series)


def _parse_labels(raw: str | None, text: str) -> tuple[tuple[str, str], ...]:
    if raw is None or not raw.strip():
        return ()
    pairs: list[tuple[str, str]] = []
    at = 0
    while at < len(raw):
        match = _LABEL.match(raw, at)
        if not match or match.end() == at:
            raise RuleSyntaxError(
                f"bad label selector {{{raw}}}", text, 'write labels as {name="value",other="value"}'
            )
        pairs.append((match.group("k"), re.sub(r"\\(.)", r"\1", match.group("v"))))
        at = match.end()
    return tuple(sorted(pairs))


def parse_duration(value: object, allow_zero: bool = True) -> float:
    """Seconds from 30, "30s", "1m30s", "500ms", "2h" (loadgate.durations), as a rule's error."""
    if isinstance(value, bool):
        raise RuleSyntaxError("bad duration", repr(value), 'write e.g. "30s", "1m30s" or a number of seconds')
    try:
        seconds = durations.parse_duration(value)
    except (ValueError, OverflowError):
        raise RuleSyntaxError(
            "bad duration",
            str(value).strip()[:40],
            'write e.g. "30s", "1m30s", "500ms" or a number of seconds',
        ) from None
    if not math.isfinite(seconds):
        raise RuleSyntaxError(
            "duration must be a finite number of seconds",
            str(value)[:40],
            'write e.g. "30s", "1m30s" or a number of seconds',
        )
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise RuleSyntaxError(
            "duration must be positive" if not allow_zero else "duration must not be negative",
            str(value),
            'write e.g. "30s", "1m30s" or a number of seconds',
        )
    return seconds


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"
