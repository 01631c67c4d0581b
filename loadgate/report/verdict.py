"""The gate's verdict for the report: read from the gate's JSON (``check_sla --json``, the job's
``results/verdict.json``) or judged now from ``--thresholds FILE`` with the gate's own evaluator; and the
threshold limits drawn on the charts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgate.gate import report as gate_report
from loadgate.gate.config import load_config
from loadgate.gate.data import load_run as gate_load_run
from loadgate.gate.errors import GateInputError
from loadgate.gate.evaluate import evaluate
from loadgate.report.data import ReportInputError, number, read_json_object

VERDICT_FIELDS = ("status", "row", "metric", "op", "observed_text", "limit_text")
STATUSES = ("PASS", "FAIL", "SKIP")


@dataclass(frozen=True)
class Limit:
    """One threshold's limit, in the metric's unit (ms, req/s, tok/s, a fraction for fail_ratio)."""

    row: str
    metric: str
    op: str
    value: float
    rule: str
    status: str | None = None  # PASS/FAIL/SKIP when a verdict is known
    window_s: float | None = None

    @property
    def label(self) -> str:
        state = f" [{self.status}]" if self.status else ""
        return f"limit {self.row}: {self.rule}{state}"


@dataclass
class VerdictView:
    source: str  # the file the verdict came from, or "--thresholds FILE"
    result: str | None  # "pass" | "fail"; None when it could not be judged
    summary: str
    verdicts: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    error: str = ""  # the gate's one-line error when the run could not be judged
    limit_rows: list[dict[str, Any]] = field(default_factory=list)  # limits of a run not judged

    def limits(self) -> list[Limit]:
        out = []
        for v in self.verdicts or self.limit_rows:
            value = number(v.get("limit"))
            if value is None or v.get("op") not in ("<", "<=", ">", ">=", "=="):
                continue  # e.g. a regression rule judged without a baseline: no limit to draw
            rule = v.get("rule") or f"{v['metric']} {v['op']} {v.get('limit_text', '')}"
            status = str(v["status"]) if v.get("status") else None
            out.append(
                Limit(
                    str(v["row"]),
                    str(v["metric"]),
                    str(v["op"]),
                    value,
                    str(rule),
                    status,
                    number(v.get("window_s")),
                )
            )
        return out


def load_verdict_json(path: str, flag: str) -> VerdictView:
    if not Path(path).is_file():
        raise ReportInputError(flag, "verdict file not found", path, "pass the gate's --json output")
    document = read_json_object(path)
    verdicts = document.get("verdicts")
    if not isinstance(verdicts, list):
        raise ReportInputError(
            f"{path}: verdicts",
            "not a gate verdict (no 'verdicts' list)",
            verdicts,
            "pass the file written by check_sla --json (the job's results/verdict.json)",
        )
    for index, verdict in enumerate(verdicts):
        missing = [k for k in VERDICT_FIELDS if not isinstance(verdict, dict) or k not in verdict]
        if missing or verdict["status"] not in STATUSES:
            key = missing[0] if missing else "status"
            got = verdict.get(key) if isinstance(verdict, dict) else verdict
            raise ReportInputError(
                f"{path}: verdicts[{index}].{key}",
                "missing or invalid",
                got,
                "pass the file written by check_sla --json (the job's results/verdict.json)",
            )
    failed = any(v["status"] == "FAIL" for v in verdicts)
    result = document.get("result") if document.get("result") in ("pass", "fail") else None
    if result is None or (result == "pass" and failed):
        result = "fail" if failed or not verdicts else "pass"
    notes = [str(n) for n in document.get("notes") or [] if isinstance(n, str)]
    return VerdictView(path, result, str(document.get("summary") or ""), verdicts, notes)


def judge(prefix: str, thresholds: str, baseline: str | None) -> VerdictView:
    """The gate's verdict on the run, now (same code as ``loadgate gate``). A bad threshold file is bad
    input (exit 2); a run the gate cannot judge is shown as not judged, with the gate's error."""
    try:
        config = load_config(thresholds)
    except GateInputError as error:
        raise ReportInputError(
            f"--thresholds {error.file}" + (f":{error.where}" if error.where else ""),
            error.what,
            error.got,
            error.fix,
        ) from None
    source = f"--thresholds {thresholds}"
    try:
        run = gate_load_run(prefix, config.warmup_s)
        base = gate_load_run(baseline, config.warmup_s, role="baseline run") if baseline else None
        evaluation = evaluate(config, run, base)
    except GateInputError as error:
        limits = [
            {
                "status": None,
                "row": spec.key,
                "metric": rs.rule.metric.name,
                "op": rs.rule.op,
                "limit": rs.rule.limit,
                "rule": rs.rule.text,
                "window_s": rs.rule.window_s,
                "observed_text": "not judged",
                "limit_text": "",
            }
            for spec in config.all_rows()
            for rs in spec.rules
        ]
        return VerdictView(
            source,
            None,
            "NOT JUDGED: the gate cannot judge this run",
            [],
            error=error.line(),
            limit_rows=limits,
        )
    document = json.loads(gate_report.to_json(evaluation, prefix, thresholds, baseline))
    return VerdictView(
        source, document["result"], document["summary"], document["verdicts"], document["notes"]
    )


def default_verdict_path(prefix: str) -> str:
    """The job writes results/verdict.json beside results/loadgate_*."""
    return str(Path(prefix).parent / "verdict.json")


def same_run(view: VerdictView, prefix: str) -> bool:
    """A verdict.json found by default belongs to this prefix (its "prefix" field names the same run)."""
    try:
        document = json.loads(Path(view.source).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    judged = document.get("prefix")
    return not isinstance(judged, str) or Path(judged).name == Path(prefix).name
