"""Verdict reports: a console table, JUnit XML, Markdown and JSON, all from the same verdict lines."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict

from loadgate.gate.evaluate import FAIL, PASS, SKIP, Evaluation, Verdict

COLUMNS = ("RESULT", "ROW", "METRIC", "OBSERVED", "OP", "LIMIT", "DETAIL")


def summary(evaluation: Evaluation) -> str:
    counts = {s: sum(v.status == s for v in evaluation.verdicts) for s in (FAIL, PASS, SKIP)}
    result = "SLA BREACHED" if counts[FAIL] else "SLA MET"
    return f"{result}: {counts[FAIL]} failed, {counts[PASS]} passed, {counts[SKIP]} skipped"


def _cells(verdict: Verdict) -> tuple[str, ...]:
    window = f" for {verdict.window_s:g} s" if verdict.window_s else ""
    return (
        verdict.status,
        verdict.row,
        verdict.metric,
        verdict.observed_text,
        verdict.op,
        verdict.limit_text + window,
        "; ".join(part for part in (verdict.reason, verdict.tokens_text) if part),
    )


def table(evaluation: Evaluation, quiet: bool = False) -> str:
    """Aligned console table, breaches first; ``quiet`` keeps only the breaches and the summary."""
    verdicts = [v for v in evaluation.verdicts if not quiet or v.status == FAIL]
    rows = [COLUMNS, *(_cells(v) for v in verdicts)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in rows
    ]
    lines = [line.rstrip() for line in lines]
    if quiet and not verdicts:
        lines = []
    notes = [] if quiet else [f"note: {n}" for n in evaluation.notes]
    return "\n".join([*lines, *notes, summary(evaluation)]) + "\n"


def junit(evaluation: Evaluation, name: str = "check_sla") -> str:
    verdicts = evaluation.verdicts
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(verdicts)),
        failures=str(len(evaluation.failed)),
        errors="0",
        skipped=str(sum(v.status == SKIP for v in verdicts)),
    )
    for verdict in verdicts:
        case = ET.SubElement(
            suite, "testcase", classname=f"{name}.{verdict.section}.{verdict.row}", name=verdict.rule
        )
        if verdict.status == FAIL:
            ET.SubElement(case, "failure", message=verdict.line(), type="SLABreach").text = verdict.line()
        elif verdict.status == SKIP:
            ET.SubElement(case, "skipped", message=verdict.line())
    if evaluation.notes:
        ET.SubElement(suite, "system-out").text = "\n".join(evaluation.notes)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def to_json(evaluation: Evaluation, prefix: str, thresholds: str, baseline: str | None) -> str:
    document = {
        "result": "fail" if evaluation.failed else "pass",
        "exit_code": 1 if evaluation.failed else 0,
        "prefix": prefix,
        "thresholds": thresholds,
        "baseline": baseline,
        "summary": summary(evaluation),
        "verdicts": [{**asdict(v), "line": v.line()} for v in evaluation.verdicts],
        "notes": evaluation.notes,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def markdown(evaluation: Evaluation, prefix: str) -> str:
    icon = {FAIL: "❌ FAIL", PASS: "✅ PASS", SKIP: "⏭️ SKIP"}
    lines = [
        f"### loadgate SLA gate: {summary(evaluation)}",
        "",
        f"Run: `{_md(prefix)}`",
        "",
        "| Result | Row | Metric | Observed | Op | Limit | Detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for verdict in evaluation.verdicts:
        cells = list(_cells(verdict))
        cells[0] = icon[verdict.status]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    if evaluation.notes:
        lines += ["", *[f"- {_md(n)}" for n in evaluation.notes]]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
