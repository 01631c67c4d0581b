"""The capacity search's logic and its files (no Locust): which rate to try next, what a step may judge,
and PREFIX_capacity.json / .csv / .png.

The search (``--find-capacity``) runs steps at a constant offered rate: from ``--capacity-start``, the rate
doubles until a step fails, then bisects between the last pass and the first fail until the gap is under
``--capacity-resolution`` of the last pass. A step passes when the thresholds file passes on the step's
window, judged by the gate's own evaluator (:func:`loadgate.gate.evaluate.evaluate`), and the target
sustained the rate (at least 90% of the offered arrivals started; see :func:`sustain_dict`). Rules that cannot be judged on
one step are skipped and named: regression rules (no baseline), ``for`` windows longer than the step's
measured part, and volume floors (``rps``, ``requests``, ``tokens_per_s``, ``output_tokens``, ``goodput``,
``achieved_rate`` with ``>``/``>=``), which measure the offered rate rather than the target at it.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any

from loadgate.gate.config import RowSpec, RuleSpec, SlaConfig
from loadgate.gate.evaluate import FAIL, PASS, Evaluation, Verdict

PASSED, FAILED, NO_DATA = "pass", "fail", "no data"
SUSTAINED_SHARE = 0.9  # a step sustains its rate when >= 90% of the arrivals it offered started...
SUSTAIN_SLACK = 2  # ...give or take two at the window's edges (due just before its end, started after it)
SUSTAIN_SIGMAS = 3  # ...and three standard deviations of a random (poisson, gamma) arrival count
MAX_DOUBLINGS = 12  # from --capacity-start, at most 2**12 times it: then the search reports a lower bound
WARMUP_SHARE = 1 / 3  # the first third of each step is its warm-up
SUSTAIN_ROW = "loadgate"  # the row name of the implicit "the rate was sustained" check in the outputs
VOLUME_METRICS = ("rps", "requests", "tokens_per_s", "output_tokens", "goodput", "achieved_rate")


# -- which rate next --------------------------------------------------------------------------------------


@dataclass
class Search:
    start: float
    resolution: float
    max_doublings: int = MAX_DOUBLINGS
    low: float | None = None  # highest passing rate so far
    high: float | None = None  # lowest failing rate so far
    doublings: int = 0
    tried: list[tuple[float, str]] = field(default_factory=list)

    def next_rate(self) -> float | None:
        """The next step's rate; None when the search is over."""
        if not self.tried:
            return self.start
        rate, result = self.tried[-1]
        if self.high is None:  # still doubling
            if self.doublings >= self.max_doublings:
                return None
            self.doublings += 1
            return _round(rate * 2)
        if self.low is None:
            return None  # even the first step with data failed
        if (self.high - self.low) / self.low < self.resolution:
            return None
        return _round((self.low + self.high) / 2)

    def record(self, rate: float, result: str) -> None:
        self.tried.append((rate, result))
        if result == PASSED:
            self.low = rate if self.low is None else max(self.low, rate)
        elif result == FAILED or (result == NO_DATA and self.low is not None):
            # no data above a pass is not a pass (fail closed); below the first pass the search goes on up
            self.high = rate if self.high is None else min(self.high, rate)

    @property
    def bounded(self) -> bool:
        """A failing step above the capacity was found (else the capacity is only a lower bound)."""
        return self.high is not None


def _round(rate: float) -> float:
    return float(f"{rate:.4g}")


# -- what a step judges -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    row: str
    rule: str
    line: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "rule": self.rule, "line": self.line, "reason": self.reason}


def step_config(config: SlaConfig, measured_s: float) -> tuple[SlaConfig, list[Skipped]]:
    """The thresholds a single step can judge, and the ones it cannot (named, with the reason)."""
    skipped: list[Skipped] = []
    rows: list[RowSpec] = []
    for spec in config.regression:
        skipped += [
            Skipped(spec.key, rs.rule.text, rs.line, "a regression rule needs a baseline run")
            for rs in spec.rules
        ]
    for spec in config.thresholds:
        kept: list[RuleSpec] = []
        for rs in spec.rules:
            rule = rs.rule
            if rule.series is not None:
                reason = "a SERVER rule reads the server metrics of the whole run, not of one step"
                skipped.append(Skipped(spec.key, rule.text, rs.line, reason))
            elif rule.window_s is not None and rule.window_s > measured_s:
                reason = (
                    f"its 'for {rule.window_s:g}s' window is longer than a step's measured {measured_s:g}s"
                )
                skipped.append(Skipped(spec.key, rule.text, rs.line, reason))
            elif rule.metric.name in VOLUME_METRICS and rule.op in (">", ">="):
                reason = "a volume floor measures the offered rate, not the target at that rate"
                skipped.append(Skipped(spec.key, rule.text, rs.line, reason))
            else:
                kept.append(rs)
        if kept:
            rows.append(replace(spec, rules=tuple(kept)))
    return SlaConfig(config.path, 0.0, config.min_requests, rows, []), skipped


def verdict_dict(v: Verdict) -> dict[str, Any]:
    return {
        "row": v.row,
        "metric": v.metric,
        "rule": v.rule,
        "limit": v.limit,
        "observed": v.observed,
        "observed_text": v.observed_text,
        "status": v.status,
        "reason": v.reason,
        "line": v.config_line,
    }


def sustain_dict(
    offered: float, started: int, kind: str = "constant", burstiness: float = 1.0, cause: str | None = None
) -> dict[str, Any]:
    """Did the step start the arrivals it offered? ``offered``: the rate times the window (arrivals
    expected); ``started``: those that started. A Poisson count spreads by sqrt(offered), a gamma one by
    sqrt(offered / burstiness); a constant one not at all. Short: the target (or the cap, or the
    generator: ``cause``) did not keep up, and the arrivals piled up or went out late."""
    spread = 0.0 if kind == "constant" else math.sqrt(offered / (burstiness if kind == "gamma" else 1.0))
    need = SUSTAINED_SHARE * offered - SUSTAIN_SIGMAS * spread - SUSTAIN_SLACK
    share = started / offered if offered > 0 else None
    ok = share is not None and started >= need
    why = {"cap": "the cap was full", "executors": "every user was busy (raise --users)",
           "late": "the load generator sent them late (CPU-bound?)"}.get(cause or "", "")  # fmt: skip
    return {
        "row": SUSTAIN_ROW,
        "metric": "sustained",
        "rule": f"arrivals started >= {SUSTAINED_SHARE:.0%} of those offered",
        "limit": SUSTAINED_SHARE,
        "observed": None if share is None else round(share, 4),
        "observed_text": "no arrivals offered"
        if share is None
        else f"{share:.1%} ({started} of {offered:.0f})",
        "status": PASS if ok else FAIL,
        "reason": "" if ok else "the offered rate was not sustained" + (f": {why}" if why else ""),
        "line": 0,
        "cause": cause,
    }


def step_result(evaluation: Evaluation, sustained: dict[str, Any]) -> str:
    """pass; fail (a threshold breached with data, or the rate not sustained); no data (only rows without
    enough data failed: the step is too short or too slow to judge them)."""
    failed = evaluation.failed
    if sustained["status"] == FAIL or any(not v.reason.startswith("no data") for v in failed):
        return FAILED
    return NO_DATA if failed else PASSED


def limiting(steps: list[dict[str, Any]], capacity: float | None) -> dict[str, Any] | None:
    """The threshold that failed first above the capacity: on the lowest failing step above it, the
    failed threshold furthest past its limit; with that step's rate and the others that failed there."""
    above = [s for s in steps if s["result"] != PASSED and (capacity is None or s["rate_rps"] > capacity)]
    if not above:
        return None
    step = min(above, key=lambda s: s["rate_rps"])
    failed = [t for t in step["thresholds"] if t["status"] == FAIL]
    if not failed:
        return None
    worst = max(failed, key=_overshoot)
    return {
        **{
            k: worst.get(k) for k in ("row", "metric", "rule", "limit", "observed", "observed_text", "reason")
        },
        "rate_rps": step["rate_rps"],
        "also_failed": [f"{t['row']}: {t['rule']}" for t in failed if t is not worst],
    }


def _overshoot(t: dict[str, Any]) -> float:
    observed, limit = t.get("observed"), t.get("limit")
    if not isinstance(observed, int | float) or not isinstance(limit, int | float):
        return -1.0  # no data: the weakest reason
    op = t["rule"].split(" for ")[0]
    if ">" in op:
        return (limit / observed) if observed > 0 else math.inf
    return (observed / limit) if limit > 0 else math.inf


# -- the files ----------------------------------------------------------------------------------------------


def write_json(path: str, document: dict[str, Any]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(document, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def threshold_key(t: dict[str, Any]) -> str:
    return f"{t['row']}: {t['rule']}"


CSV_COLUMNS = [
    "step",
    "rate_rps",
    "achieved_rps",
    "result",
    "arrivals_offered",
    "arrivals_due",
    "arrivals_started",
    "concurrency_p95",
    "schedule_lag_p99_ms",
    "output_tokens_per_s",
    "goodput_req_per_s",
    "failed",
]


def write_csv(path: str, steps: list[dict[str, Any]]) -> None:
    """One row per step in search order; then each threshold's observed value (empty: no data)."""
    keys: list[str] = []
    for step in steps:
        for t in step["thresholds"]:
            if threshold_key(t) not in keys:
                keys.append(threshold_key(t))
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*CSV_COLUMNS, *keys])
        for step in steps:
            by_key = {threshold_key(t): t for t in step["thresholds"]}
            failed = "; ".join(k for k, t in by_key.items() if t["status"] == FAIL)
            base = [step.get(c, "") if c != "failed" else failed for c in CSV_COLUMNS]
            values = [
                by_key[k]["observed"] if k in by_key and by_key[k]["observed"] is not None else ""
                for k in keys
            ]
            writer.writerow(["" if v is None else v for v in base] + values)


LATENCY_METRICS = ("median", "avg", "min", "max")


def write_png(path: str, document: dict[str, Any]) -> None:
    """Latency thresholds and throughput against the offered rate; limits dashed, the capacity marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted(document["steps"], key=lambda s: s["rate_rps"])
    found = (document.get("capacity") or {}).get("rate_rps")
    rates = [s["rate_rps"] for s in steps]
    latency_keys: list[str] = []
    for step in steps:
        for t in step["thresholds"]:
            latency = t["metric"].startswith("p(") or t["metric"] in LATENCY_METRICS
            if (
                latency
                and t["row"] != "LLM"
                and not t["row"].startswith("TOKENS/S")
                and threshold_key(t) not in latency_keys
            ):
                latency_keys.append(threshold_key(t))
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, key in enumerate(latency_keys[:8]):
        color = colors[i % len(colors)]
        points = [
            (s["rate_rps"], t["observed"], t["status"], t["limit"])
            for s in steps
            for t in s["thresholds"]
            if threshold_key(t) == key and isinstance(t["observed"], int | float)
        ]
        if not points:
            continue
        top.plot([p[0] for p in points], [p[1] for p in points], "-", color=color, label=key, linewidth=1.5)
        for x, y, status, _limit in points:
            top.plot(x, y, "o" if status == PASS else "X", color=color, markersize=7 if status == PASS else 9)
        limit = points[-1][3]
        if isinstance(limit, int | float):
            top.axhline(limit, color=color, linestyle="--", linewidth=1, alpha=0.8)
            top.annotate(f"limit {limit:g} ms", (rates[-1], limit), textcoords="offset points", xytext=(-4, 3),
                         ha="right", fontsize=8, color=color)  # fmt: skip
    top.set_ylabel("latency (ms): observed per step")
    top.set_title("Capacity search: thresholds and throughput against the offered rate")
    if latency_keys:
        top.legend(fontsize=8, loc="upper left")
        top.set_yscale("log")
    else:
        top.text(0.5, 0.5, "no latency thresholds in the file", transform=top.transAxes, ha="center")
    achieved = [s.get("achieved_rps") for s in steps]
    bottom.plot(rates, rates, ":", color="#999999", label="achieved = offered")
    bottom.plot(
        rates,
        [a if a is not None else float("nan") for a in achieved],
        "o-",
        color="#1f77b4",
        label="achieved req/s",
    )
    for s in steps:
        if s["result"] != PASSED and s.get("achieved_rps") is not None:
            bottom.plot(s["rate_rps"], s["achieved_rps"], "X", color="#d62728", markersize=9)
    bottom.set_ylabel("requests/s started")
    bottom.set_xlabel("offered rate (req/s); X = step failed")
    tokens = [s.get("output_tokens_per_s") for s in steps]
    if any(isinstance(t, int | float) and t > 0 for t in tokens):
        right = bottom.twinx()
        right.plot(
            rates,
            [t if t is not None else float("nan") for t in tokens],
            "s--",
            color="#2ca02c",
            label="output tokens/s",
        )
        right.set_ylabel("output tokens/s", color="#2ca02c")
        right.legend(fontsize=8, loc="lower right")
    bottom.legend(fontsize=8, loc="upper left")
    for axis in (top, bottom):
        if isinstance(found, int | float):
            axis.axvline(found, color="#2ca02c", linewidth=2, alpha=0.7)
        axis.grid(True, alpha=0.3)
    if isinstance(found, int | float):
        top.annotate(f"capacity {found:g} req/s", (found, 1), xycoords=("data", "axes fraction"),
                     xytext=(4, -14), textcoords="offset points", color="#2ca02c", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
