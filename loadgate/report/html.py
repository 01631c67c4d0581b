"""The report page: one self-contained HTML file (Plotly's JS, the styles and the images inlined; no
external URL), built from the run, its verdict, an optional baseline and an optional capacity search."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any

import pandas as pd
from plotly.offline import get_plotlyjs

import loadgate
from loadgate import contract
from loadgate.report import figures as fg
from loadgate.report.data import AGGREGATED, Capacity, Run, is_number, number
from loadgate.report.verdict import VerdictView

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["sendDataToCloud"]}
LLM_TYPE_ORDER = {
    t: i
    for i, t in enumerate(
        (contract.TTFB, contract.TTFT, contract.ITL, contract.TPOT, contract.E2E, contract.TOKENS_PER_S)
    )
}

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1d2330;margin:0;background:#f4f6f9}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:20px;font-weight:600}
header .sub{color:#c3cad6;font-size:13px;margin-top:4px}
nav{background:#fff;border-bottom:1px solid #dde2ea;padding:8px 28px;position:sticky;top:0;z-index:10}
nav a{color:#2a5db0;text-decoration:none;margin-right:16px;font-size:13px}
main{padding:18px 28px;max-width:1500px}
section{background:#fff;border:1px solid #dde2ea;border-radius:6px;padding:16px 20px;margin-bottom:18px}
section h2{margin:0 0 12px;font-size:17px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #edf0f4;text-align:right;white-space:nowrap}
th{background:#f7f8fa;font-weight:600;position:sticky;top:36px}
td.l,th.l{text-align:left}
td.wrap{white-space:normal;text-align:left}
tr.total td{font-weight:600;border-top:2px solid #c9d0db}
tr.group td{background:#fafbfc;font-weight:600;text-align:left}
.badge{display:inline-block;border-radius:4px;padding:1px 8px;font-weight:700;font-size:12px;color:#fff}
.PASS{background:#2e8b57}.FAIL{background:#c62828}.SKIP{background:#8a8f98}.NONE{background:#b26a00}
.verdict-head{display:flex;align-items:center;gap:14px;margin-bottom:10px}
.verdict-head .big{font-size:18px;padding:4px 14px}
.muted{color:#6b7483;font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:6px}
.card{border:1px solid #dde2ea;border-radius:6px;padding:8px 14px;min-width:150px}
.card .v{font-size:20px;font-weight:600}
.card .k{color:#6b7483;font-size:12px}
.chart{margin:0 0 14px}
.chart .note{color:#6b7483;font-size:12px;margin:2px 0 0 4px}
.worse{color:#c62828}.better{color:#2e8b57}
.error{color:#c62828;font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap}
ul.notes{margin:8px 0 0;padding-left:18px;color:#6b7483;font-size:12px}
img.capacity{max-width:100%;border:1px solid #dde2ea;margin-top:10px}
footer{color:#6b7483;font-size:12px;padding:0 28px 24px}
"""


@dataclass
class Page:
    run: Run
    verdict: VerdictView | None
    verdict_hint: str = ""
    baseline: Run | None = None
    capacity: Capacity | None = None
    title: str = ""
    max_points: int = fg.DEFAULT_MAX_POINTS
    notes: list[str] = field(default_factory=list)


def render(page: Page) -> str:
    run = page.run
    limits = page.verdict.limits() if page.verdict else []
    main_series = fg.prepare(run, page.max_points)
    base_series = None
    if page.baseline is not None:
        base_series = fg.prepare(page.baseline, page.max_points, bucket_s=main_series.bucket_s or None)
    colors = fg.Colors()
    charts = [
        fg.throughput_chart(main_series, base_series, limits, colors),
        fg.load_chart(main_series, base_series, limits),
        fg.http_latency_chart(main_series, base_series, limits, colors),
        *fg.llm_latency_charts(main_series, base_series, limits, colors),
        fg.tokens_chart(main_series, base_series, limits, colors),
    ]
    time_charts = [c for c in charts if c is not None]
    sections: list[tuple[str, str, str]] = [("verdict", "SLA verdict", verdict_section(page))]
    sections.append(("summary", "Summary", summary_section(run)))
    if time_charts:
        sections.append(("charts", "Over time", "".join(chart_html(c) for c in time_charts)))
    if run.server_metrics is not None:
        server_charts = fg.server_metrics_charts(main_series, base_series, limits, colors)
        sections.append(("server-metrics", "Server metrics", server_section(run, server_charts)))
    if run.llm_stats is not None or run.llm_summary is not None:
        sections.append(("llm-tables", "LLM metrics", llm_section(run)))
    sections.append(("http-table", "HTTP requests", http_table(run.stats)))
    if run.failures is not None and not run.failures.empty:
        sections.append(("failures", "Failures", failures_table(run.failures)))
    if page.baseline is not None:
        sections.append(
            (
                "baseline",
                f"Compared with the baseline {page.baseline.name}",
                baseline_section(run, page.baseline),
            )
        )
    if page.capacity is not None:
        sections.append(("capacity", "Capacity search", capacity_section(page.capacity)))
    sections.append(("run-info", "Run", run_info(run, page)))
    title = page.title or f"loadgate report: {run.name}"
    nav = "".join(
        f'<a href="#{sid}">{escape(text.split(" ")[0] if sid == "baseline" else text)}</a>'
        for sid, text, _ in sections
    )
    body = "".join(
        f'<section id="{sid}"><h2>{escape(text)}</h2>{content}</section>' for sid, text, content in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head><body>'
        f'<header><h1>{escape(title)}</h1><div class="sub">{escape(header_line(run))}</div></header>'
        f"<nav>{nav}</nav><main>{body}</main>"
        f"<footer>Written by loadgate {escape(loadgate.__version__)} on "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} from the files listed under Run. "
        "Charts: Plotly (inlined; the file opens offline).</footer>"
        "</body></html>\n"
    )


def chart_html(chart: fg.Chart) -> str:
    height = int(chart.figure.layout.height or fg.CHART_HEIGHT)
    div = chart.figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=chart.id,
        config=PLOTLY_CONFIG,
        default_height=f"{height}px",
    )
    note = f'<div class="note">{escape(chart.note)}</div>' if chart.note else ""
    return f'<div class="chart" data-chart="{escape(chart.id)}">{div}{note}</div>'


# -- sections -----------------------------------------------------------------------------------------


def header_line(run: Run) -> str:
    meta = run.meta or {}
    parts = [run.prefix]
    if meta.get("host"):
        parts.append(f"target {meta['host']}")
    if meta.get("profile"):
        parts.append(f"profile {meta['profile']}")
    if is_number(meta.get("started_at")):
        parts.append(_utc(float(meta["started_at"])))
    if run.duration_s is not None:
        parts.append(f"{_duration(run.duration_s)} run")
    return " · ".join(parts)


def verdict_section(page: Page) -> str:
    view = page.verdict
    if view is None:
        return (
            '<div class="verdict-head"><span class="badge NONE big">NO VERDICT</span>'
            f"<span>{escape(page.verdict_hint)}</span></div>"
        )
    state = {"pass": ("PASS", "SLA MET"), "fail": ("FAIL", "SLA BREACHED")}.get(
        view.result or "", ("NONE", "NOT JUDGED")
    )
    head = (
        f'<div class="verdict-head"><span class="badge {state[0]} big">{state[1]}</span>'
        f'<span>{escape(view.summary)}</span><span class="muted">from {escape(view.source)}</span></div>'
    )
    if view.error:
        head += f'<div class="error">{escape(view.error)}</div>'
    rows = []
    for v in view.verdicts:
        window = f" for {v['window_s']:g} s" if is_number(v.get("window_s")) else ""
        rows.append(
            "<tr>"
            f'<td class="l"><span class="badge {escape(v["status"])}">{escape(v["status"])}</span></td>'
            f'<td class="l">{escape(str(v["row"]))}</td><td class="l">{escape(str(v["metric"]))}</td>'
            f'<td>{escape(str(v["observed_text"]))}</td><td class="l">{escape(str(v["op"]))}</td>'
            f'<td class="l">{escape(str(v["limit_text"]) + window)}</td>'
            f'<td class="wrap">{escape(str(v.get("reason") or ""))}</td></tr>'
        )
    table = ""
    if rows:
        table = (
            '<table id="verdict-table"><tr><th class="l">Result</th><th class="l">Row</th><th class="l">Metric</th>'
            '<th>Observed</th><th class="l">Op</th><th class="l">Limit</th><th class="l">Detail</th></tr>'
            + "".join(rows)
            + "</table>"
        )
    notes = view.notes + page.notes
    note_html = (
        '<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>" if notes else ""
    )
    return head + table + note_html


def summary_section(run: Run) -> str:
    cards: list[tuple[str, str]] = []
    agg = _stats_row(run.stats, "", AGGREGATED)
    if agg is not None:
        requests, failures = _num(agg.get("Request Count")), _num(agg.get("Failure Count"))
        cards.append(("requests", _fmt(requests, 0)))
        cards.append(("failures", f"{_fmt(failures, 0)} ({_pct(failures, requests)})"))
        cards.append(("requests/s", _fmt(_num(agg.get("Requests/s")))))
        cards.append(("p95 all requests", _ms(_num(agg.get("95%")))))
    if run.llm_stats is not None:
        for type_, label in (
            (contract.TTFT, "TTFT p95"),
            (contract.ITL, "ITL p95"),
            (contract.E2E, "E2E p95"),
        ):
            row = _best_llm_row(run.llm_stats, type_)
            if row is not None:
                cards.append((f"{label} · {row['Name']}", _ms(_num(row.get("95%")))))
    summary = run.llm_summary or {}
    if is_number(summary.get("output_tokens_per_s")):
        cards.append(("output tokens/s (whole run)", _fmt(float(summary["output_tokens_per_s"]))))
    if is_number(summary.get("goodput_req_per_s")):
        cards.append(("goodput req/s", _fmt(float(summary["goodput_req_per_s"]))))
    requested, achieved = run.rate_fields()
    if requested is not None:
        cards.append(("requested rate", f"{_fmt(requested)} req/s"))
    if achieved is not None:
        cards.append(("achieved rate", f"{_fmt(achieved)} req/s"))
    if run.duration_s is not None:
        cards.append(("duration", _duration(run.duration_s)))
    html = _cards(cards)
    if run.warmup is not None:
        html += (
            f'<div class="muted">Figures are measured after the {_duration(run.warmup[1] - run.warmup[0])} warm-up '
            f"(shaded in the charts){'; ' + escape(run.warmup_note) if run.warmup_note else ''}.</div>"
        )
    return html


def server_section(run: Run, charts: list[fg.Chart]) -> str:
    """The target's own series (--server-metrics) on the same time axis as the charts above."""
    meta = run.meta or {}
    url = meta.get("server_metrics_url")
    counts = (
        f"{meta.get('server_metrics_scrapes')} scrapes of {url}, {meta.get('server_metrics_failures')} failed. "
        if url
        else ""
    )
    intro = (
        f'<p class="note">{escape(counts)}Scraped from the target while the load ran; the same time axis as '
        "the charts above (the shaded warm-up is not judged by SERVER thresholds).</p>"
    )
    if not charts:
        return intro + '<p class="note">No samples: every scrape failed or no series matched the filter.</p>'
    return intro + "".join(chart_html(c) for c in charts)


def llm_section(run: Run) -> str:
    html = ""
    if run.llm_stats is not None:
        frame = run.llm_stats[run.llm_stats["Request Count"] > 0]
        frame = frame.assign(_order=frame["Type"].map(LLM_TYPE_ORDER).fillna(99)).sort_values(
            ["Name", "_order"], kind="stable"
        )
        head = (
            '<table id="llm-table"><tr><th class="l">Endpoint</th><th class="l">Metric</th><th class="l">Unit</th>'
            "<th>Samples</th><th>Failures</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>avg</th><th>max</th></tr>"
        )
        rows, last = [], None
        for _, r in frame.iterrows():
            if r["Name"] != last:
                rows.append(f'<tr class="group"><td colspan="11">{escape(str(r["Name"]))}</td></tr>')
                last = r["Name"]
            unit = contract.UNITS.get(str(r["Type"]), "ms")
            rows.append(
                f'<tr><td class="l"></td><td class="l">{escape(str(r["Type"]))}</td><td class="l">{unit}</td>'
                f"<td>{_fmt(_num(r['Request Count']), 0)}</td><td>{_fmt(_num(r['Failure Count']), 0)}</td>"
                + "".join(
                    f"<td>{_fmt(_num(r.get(c)))}</td>"
                    for c in ("50%", "90%", "95%", "99%", "Average Response Time", "Max Response Time")
                )
                + "</tr>"
            )
        html += '<h3 class="muted">Per endpoint (after the warm-up)</h3>' + head + "".join(rows) + "</table>"
    if run.llm_summary:
        items = _flatten(run.llm_summary)
        html += (
            '<h3 class="muted">Whole run (_llm_summary.json)</h3><table id="llm-summary" style="width:auto">'
            + "".join(
                f'<tr><td class="l">{escape(k)}</td><td>{escape(_value(v))}</td></tr>' for k, v in items
            )
            + "</table>"
        )
    return html


def http_table(stats: pd.DataFrame) -> str:
    head = (
        '<table id="http-stats"><tr><th class="l">Type</th><th class="l">Name</th><th>Requests</th><th>Failures</th>'
        "<th>Fail %</th><th>Req/s</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>avg ms</th><th>max ms</th></tr>"
    )
    rows = []
    for _, r in stats.iterrows():
        total = r["Name"] == AGGREGATED and not r["Type"]
        requests, failures = _num(r["Request Count"]), _num(r["Failure Count"])
        rows.append(
            f'<tr{" class=total" if total else ""}><td class="l">{escape(str(r["Type"]))}</td>'
            f'<td class="l">{escape(str(r["Name"]))}</td><td>{_fmt(requests, 0)}</td><td>{_fmt(failures, 0)}</td>'
            f"<td>{_pct(failures, requests)}</td><td>{_fmt(_num(r['Requests/s']))}</td>"
            + "".join(
                f"<td>{_fmt(_num(r.get(c)))}</td>"
                for c in ("50%", "95%", "99%", "Average Response Time", "Max Response Time")
            )
            + "</tr>"
        )
    return head + "".join(rows) + "</table>"


def failures_table(failures: pd.DataFrame) -> str:
    frame = failures.assign(_n=pd.to_numeric(failures["Occurrences"], errors="coerce").fillna(0)).sort_values(
        "_n", ascending=False
    )
    rows = "".join(
        f'<tr><td class="l">{escape(str(r["Method"]))}</td><td class="l">{escape(str(r["Name"]))}</td>'
        f'<td class="wrap">{escape(str(r["Error"]))}</td><td>{_fmt(r["_n"], 0)}</td></tr>'
        for _, r in frame.head(200).iterrows()
    )
    more = f'<div class="muted">{len(frame) - 200} more rows in the CSV.</div>' if len(frame) > 200 else ""
    return (
        '<table id="failures-table"><tr><th class="l">Method</th><th class="l">Name</th><th class="l">Error</th>'
        f"<th>Occurrences</th></tr>{rows}</table>{more}"
    )


@dataclass(frozen=True)
class _Delta:
    label: str
    column: str
    lower_is_better: bool
    percent: bool = False


HTTP_DELTAS = (
    _Delta("req/s", "Requests/s", False),
    _Delta("fail %", "fail%", True, percent=True),
    _Delta("p50", "50%", True),
    _Delta("p95", "95%", True),
    _Delta("p99", "99%", True),
    _Delta("avg", "Average Response Time", True),
)


def baseline_section(run: Run, base: Run) -> str:
    html = (
        f'<div class="muted">Baseline: {escape(base.prefix)}'
        + (f" ({escape(header_line(base))})" if base.meta else "")
        + ". In the charts the baseline is dotted, on the same time axis (time since each run's start). "
        "Cells: baseline → this run (change); red is worse, green better.</div>"
    )
    tables: list[tuple[str, pd.DataFrame, pd.DataFrame, tuple[_Delta, ...]]] = [
        ("HTTP", run.stats, base.stats, HTTP_DELTAS)
    ]
    if run.llm_stats is not None and base.llm_stats is not None:
        tables.append(("LLM", run.llm_stats, base.llm_stats, HTTP_DELTAS[2:]))
    for label, now, then, deltas in tables:
        rows = []
        for _, r in now.iterrows():
            b = _stats_row(then, r["Type"], r["Name"])
            if b is None or not _num(r["Request Count"]):
                continue
            higher_better_row = r["Type"] == contract.TOKENS_PER_S
            cells = []
            for d in deltas:
                cells.append(
                    _delta_cell(
                        _figure(b, d.column),
                        _figure(r, d.column),
                        d.lower_is_better != higher_better_row,
                        d.percent,
                    )
                )
            total = r["Name"] == AGGREGATED and not r["Type"]
            rows.append(
                f'<tr{" class=total" if total else ""}><td class="l">{escape(str(r["Type"]))}</td>'
                f'<td class="l">{escape(str(r["Name"]))}</td>' + "".join(cells) + "</tr>"
            )
        if rows:
            html += (
                f'<h3 class="muted">{label}</h3><table class="deltas" id="deltas-{label.lower()}"><tr><th class="l">Type</th><th class="l">Name</th>'
                + "".join(f"<th>{escape(d.label)}</th>" for d in deltas)
                + "</tr>"
                + "".join(rows)
                + "</table>"
            )
    now_s, then_s = run.llm_summary or {}, base.llm_summary or {}
    scalars = [
        ("output_tokens_per_s", "output tokens/s", False),
        ("goodput_req_per_s", "goodput req/s", False),
        ("completed_requests", "completed requests", False),
        ("lost_jobs", "lost jobs", True),
    ]
    rows = [
        f'<tr><td class="l">{label}</td>{_delta_cell(_num(then_s.get(key)), _num(now_s.get(key)), lower, False)}</tr>'
        for key, label, lower in scalars
        if is_number(now_s.get(key)) and is_number(then_s.get(key))
    ]
    if rows:
        html += (
            '<h3 class="muted">LLM whole run</h3><table class="deltas" id="deltas-summary" style="width:auto"><tr><th class="l">Figure</th><th>baseline → run</th></tr>'
            + "".join(rows)
            + "</table>"
        )
    return html


def capacity_section(capacity: Capacity) -> str:
    found = capacity.found
    cards = [
        ("capacity (highest passing rate)", number(found.get("rate_rps")), "req/s"),
        ("achieved rate there", number(found.get("achieved_rps")), "req/s"),
        ("output tokens/s there", number(found.get("output_tokens_per_s")), "tok/s"),
        ("requests in flight p95", number(found.get("concurrency_p95")), ""),
    ]
    html = _cards([(k, f"{_fmt(v)} {u}".strip()) for k, v, u in cards if v is not None])
    if number(found.get("rate_rps")) is None:
        html += '<div class="error">No capacity found: even the first step failed.</div>'
    lim = capacity.limiting
    if lim:
        what = lim.get("rule") or lim.get("metric") or "?"
        observed = lim.get("observed_text") or _fmt(number(lim.get("observed")))
        rate = number(lim.get("rate_rps"))
        at = f" at {_fmt(rate)} req/s" if rate is not None else ""
        html += f"<p>Limiting threshold: <b>{escape(str(lim.get('row', '')))}: {escape(str(what))}</b>, observed {escape(str(observed))}{escape(at)}.</p>"
    html += "".join(chart_html(c) for c in fg.capacity_charts(capacity))
    keys: list[str] = []
    for step in capacity.steps:
        for value in step.values:
            key = fg._threshold_key(value)
            if key not in keys:
                keys.append(key)
    rows = []
    for i, step in enumerate(capacity.steps, start=1):  # in the search's order: doubling, then bisecting
        result = {True: "PASS", False: "FAIL"}.get(step.passed, "SKIP") if step.passed is not None else "SKIP"
        by_key = {fg._threshold_key(v): v for v in step.values}
        cells = []
        for key in keys:
            v = by_key.get(key)
            if v is None:
                cells.append("<td>–</td>")
                continue
            status = str(v.get("status", "")).upper()
            text = v.get("observed_text") or (
                _fmt(float(v["observed"])) if is_number(v.get("observed")) else "no data"
            )
            css = ' class="worse"' if status == "FAIL" else ""
            cells.append(f"<td{css}>{escape(str(text))}</td>")
        rows.append(
            f"<tr><td>{i}</td><td>{_fmt(step.rate)}</td><td>{_fmt(step.achieved)}</td>"
            f'<td class="l"><span class="badge {result}">{"n/a" if step.passed is None else result}</span></td>'
            + "".join(cells)
            + "</tr>"
        )
    html += (
        '<table id="capacity-steps"><tr><th>Step</th><th>Offered req/s</th><th>Achieved req/s</th><th class="l">Result</th>'
        + "".join(f"<th>{escape(k)}</th>" for k in keys)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )
    if capacity.png:
        html += f'<img class="capacity" alt="capacity search chart ({escape(contract.CAPACITY_PNG)})" src="data:image/png;base64,{capacity.png}">'
    return html


def _cards(cards: list[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
            for k, v in cards
        )
        + "</div>"
    )


def run_info(run: Run, page: Page) -> str:
    meta = dict(run.meta or {})
    for key in ("started_at", "stopped_at", "stats_reset_at"):
        if is_number(meta.get(key)):
            meta[key] = _utc(float(meta[key]))
    rows = "".join(
        f'<tr><td class="l">{escape(k)}</td><td class="wrap">{escape(_value(v))}</td></tr>'
        for k, v in _flatten(meta)
    )
    files = "".join(
        f"<li>{escape(f)}</li>" for f in run.files + (page.baseline.files if page.baseline else [])
    )
    if page.capacity:
        files += f"<li>{escape(page.capacity.source)}</li>"
    if page.verdict and not page.verdict.source.startswith("--"):
        files += f"<li>{escape(page.verdict.source)}</li>"
    table = (
        f'<table id="run-meta" style="width:auto">{rows}</table>'
        if rows
        else '<div class="muted">No _loadgate.json: run metadata unknown.</div>'
    )
    return table + f'<h3 class="muted">Files read</h3><ul class="notes">{files}</ul>'


# -- formatting ---------------------------------------------------------------------------------------


def _stats_row(frame: pd.DataFrame, type_: str, name: str) -> dict[str, Any] | None:
    part = frame[(frame["Type"] == type_) & (frame["Name"] == name)]
    return None if part.empty else {str(k): v for k, v in part.iloc[0].items()}


def _best_llm_row(frame: pd.DataFrame, type_: str) -> dict[str, Any] | None:
    """The endpoint row (not a per-model row) of this type with the most samples (the main stream endpoint)."""
    endpoint = ~frame["Name"].astype(str).str.contains(contract.MODEL_ROW_SEP, regex=False)
    part = frame[(frame["Type"] == type_) & (frame["Request Count"] > 0) & endpoint]
    if part.empty:
        return None
    return {str(k): v for k, v in part.sort_values("Request Count", ascending=False).iloc[0].items()}


def _figure(row: dict[str, Any] | pd.Series, column: str) -> float | None:
    if column == "fail%":
        requests, failures = _num(row.get("Request Count")), _num(row.get("Failure Count"))
        return failures / requests * 100 if requests and failures is not None else None
    return _num(row.get(column))


def _delta_cell(base: float | None, now: float | None, lower_is_better: bool, percent: bool) -> str:
    if base is None or now is None:
        return "<td>–</td>"
    unit = " pp" if percent else ""
    text = f"{_fmt(base)} → {_fmt(now)}"
    if percent:
        change, shown = now - base, f"{now - base:+.2f}{unit}"
    elif base:
        change, shown = (now - base) / abs(base), f"{(now - base) / abs(base) * 100:+.1f}%"
    else:
        change, shown = now - base, "new" if now else "±0"
    threshold = 0.05 if percent else 0.02
    css = ""
    if abs(change) > threshold:
        css = "worse" if (change > 0) == lower_is_better else "better"
    return f'<td class="{css}">{escape(text)} ({escape(shown)})</td>'


def _num(value: object) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _fmt(value: float | None, decimals: int | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if decimals == 0:
        return f"{value:,.0f}"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}".removesuffix(".0")
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{_fmt(value)} ms"


def _pct(part: float | None, whole: float | None) -> str:
    if not whole or part is None:
        return "–"
    return f"{part / whole * 100:.2f}%"


def _value(value: object) -> str:
    if isinstance(value, float):
        return _fmt(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "–" if value is None else str(value)


def _flatten(document: dict[str, Any], prefix: str = "") -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    for key, value in document.items():
        if isinstance(value, dict):
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _utc(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"
