"""loadgate's tabs in Locust's web UI: LLM metrics, LLM charts, SLA and LLM summary.

Locust 2.47's React UI renders extra tabs from `template_args["extended_tabs"]`, their table layouts
from `template_args["extended_tables"]`, and their rows from the `extended_stats` list of the
`/stats/requests` JSON it polls every couple of seconds (so the tabs refresh exactly like the stats
tab). `template_args["extended_csv_files"]` adds download links to the Download Data tab.
See locust's examples/extend_web_ui.py. Rows come from loadgate.llm_stats (the second RequestStats) and,
for the SLA tab, from the live SLA check (loadgate.harness.live_sla).

What those extension points cannot do, a small script of ours does (static/ui.js, linked into Locust's
index page): an extended tab can only hold a table, so the script shows the LLM charts page
(static/llm-charts.html, Plotly, served from the plotly package: nothing from the internet) in the LLM
charts tab; extended tabs always come after Locust's own, so it orders the tabs (CSS `order`, the DOM
and React's state untouched) to put loadgate's before Locust's secondary ones; and ui.css keeps the
labels of empty start-form fields above the field instead of cut off inside it.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, make_response, request
from locust import events
from locust.env import Environment
from locust.stats import RequestStats, StatsEntry

from loadgate.harness import llm_stats, outputs
from loadgate.harness.llm_charts import LlmCharts
from loadgate.harness.locust_compat import is_worker
from loadgate.harness.state import has_state, state

METRICS_TAB = "llm_metrics"
CHARTS_TAB = "llm_charts"
SLA_TAB = "sla"
SUMMARY_TAB = "llm_summary"
# In this order, after Locust's Statistics, Charts and Failures and before its secondary tabs (ui.js).
TABS = (
    (METRICS_TAB, "LLM metrics"),
    (CHARTS_TAB, "LLM charts"),
    (SLA_TAB, "SLA"),
    (SUMMARY_TAB, "LLM summary"),
)
CSV_ROUTE = "/stats/llm/csv"
SUMMARY_ROUTE = "/stats/llm/summary"
STATIC_ROUTE = "/loadgate/<path:name>"  # ui.js, ui.css, llm-charts.html
CHARTS_DATA_ROUTE = "/loadgate/llm-charts.json"
PLOTLY_ROUTE = "/loadgate/plotly.min.js"
STATIC = Path(__file__).parent / "static"
STATIC_FILES = {"ui.js": "text/javascript", "ui.css": "text/css", "llm-charts.html": "text/html"}
LOCUST_STATS_ENDPOINT = "locust.request_stats"  # Flask endpoint of Locust's /stats/requests
LOCUST_INDEX_ENDPOINT = "locust.index"  # Flask endpoint of Locust's page (the React app)
UI_TAGS = '<link rel="stylesheet" href="./loadgate/ui.css"><script defer src="./loadgate/ui.js"></script>'

MAX_ROWS = 500  # as Locust truncates its own stats table: large tables render slowly

PERCENTILES = ((0.5, "p50"), (0.9, "p90"), (0.95, "p95"), (0.99, "p99"))
UNITS = {"TOKENS/S": "tok/s"}  # every other LLM metric is in milliseconds
_METRIC_RANK = {
    metric: rank for rank, metric in enumerate(("TTFB", "TTFT", "ITL", "TPOT", "E2E", "TOKENS/S"))
}

# Labels for the figures of PREFIX_llm_summary.json; a key not listed here is shown humanized.
SUMMARY_LABELS = {
    "duration_s": "Measured for (s)",
    "completed_requests": "Completed LLM responses",
    "total_output_tokens": "Output tokens (total)",
    "output_tokens_per_s": "Output tokens/s (all users)",
    "goodput_req_per_s": "Goodput (req/s meeting every target)",
    "good_requests": "Responses meeting every goodput target",
    "goodput_targets": "Goodput target",
    "token_source": "Token source (how output tokens were counted)",
    "token_source_shares": "Token source share",
    "responses_with_server_usage": "Responses with server usage",
    "responses_with_counted_tokens": "Responses with tokens counted by loadgate",
    "cancelled": "Requests cancelled by the stop (not failures)",
    "cancelled_by_name": "Cancelled",
    "jobs_completed": "Async/batch jobs completed",
    "jobs_failed": "Async/batch jobs failed",
    "lost_jobs": "Async/batch jobs lost (not terminal in time, or at the stop)",
    "lost_jobs_at_stop": "Async/batch jobs still pending when the run stopped",
    "requested_rate": "Requested rate (req/s, rate mode)",
    "achieved_rate": "Achieved rate (req/s started)",
    "schedule_lag_p50": "Schedule lag p50 (ms)",
    "schedule_lag_p99": "Schedule lag p99 (ms)",
    "schedule_lag_max": "Schedule lag max (ms)",
    "arrivals_waiting_at_stop": "Arrivals still waiting at the stop",
    "schedule_lag_cause": "Schedule lag mostly from",
    "max_concurrency": "Max concurrency (cap on requests in flight)",
    "ttft_ms": "TTFT (ms)",
    "tpot_ms": "TPOT (ms)",
    "e2e_ms": "E2E (ms)",
    "input_lengths": "Input tokens per request (server usage)",
    "output_lengths": "Output tokens per answer",
    "input_length_warning": "Input length warning",
}

METRICS_TABLE = [
    {"key": "type", "title": "Type"},
    {"key": "name", "title": "Name"},
    {"key": "unit", "title": "Unit"},
    {"key": "count", "title": "# Samples"},
    *({"key": key, "title": key} for _, key in PERCENTILES),
    {"key": "avg", "title": "Average"},
    {"key": "min", "title": "Min"},
    {"key": "max", "title": "Max"},
]  # no "round" option: the UI would turn an empty (None) cell into 0; rows come rounded instead
# Not "name": Locust's table sorts rows by their "name" field, and the figures have a deliberate order.
SUMMARY_TABLE = [{"key": "figure", "title": "Figure"}, {"key": "value", "title": "Value"}]
# One row per threshold, in the file's order (again no "name" key).
SLA_TABLE = [
    {"key": "row", "title": "Row"},
    {"key": "rule", "title": "Rule"},
    {"key": "value", "title": "Live value"},
    {"key": "limit", "title": "Limit"},
    {"key": "state", "title": "State"},
    {"key": "breach", "title": "In breach for"},
]
NO_SLA_FILE = {
    "row": "no SLA file",
    "rule": "",
    "value": "start with --sla FILE, or name the file in the start form's Sla field",
    "limit": "",
    "state": "",
    "breach": "",
}


def metric_rows(stats: RequestStats | None) -> list[dict[str, Any]]:
    """One row per LLM metric entry (Type, Name, unit, count, percentiles, avg, min, max); no total row.

    Ordered by Name, then in the order a response unfolds (TTFB, TTFT, ITL, TPOT, E2E, TOKENS/S).
    """
    if stats is None:
        return []
    entries = sorted(stats.entries.values(), key=lambda e: (e.name, _METRIC_RANK.get(e.method, 99), e.method))
    return [_metric_row(entry) for entry in entries[:MAX_ROWS]]


def _metric_row(entry: StatsEntry) -> dict[str, Any]:
    has_samples = entry.num_requests > 0
    row: dict[str, Any] = {
        "type": entry.method,
        "name": entry.name,
        "unit": UNITS.get(entry.method or "", "ms"),
        "count": entry.num_requests,
    }
    if not has_samples:  # e.g. just after a reset: empty cells, not zeros
        return row | dict.fromkeys([key for _, key in PERCENTILES] + ["avg", "min", "max"])
    for fraction, key in PERCENTILES:
        row[key] = _for_display(_percentile(entry, fraction))
    row["avg"] = _for_display(entry.avg_response_time)
    row["min"] = _for_display(entry.min_response_time)
    row["max"] = _for_display(entry.max_response_time)
    return row


def _for_display(value: float | None) -> float | None:
    """Two decimals below 10 (sub-millisecond ITL on a fast target), one above."""
    return None if value is None else round(value, 2 if abs(value) < 10 else 1)


def _percentile(entry: StatsEntry, fraction: float) -> float:
    """The stored (bucketed) percentile, kept within the exact min/max the entry also records.

    A bucket's value can overshoot the extremes by the bucketing error (e.g. p99 237 with max 236.5);
    the true percentile never does, so clamping only removes error.
    """
    value = entry.get_response_time_percentile(fraction)
    return min(max(value, entry.min_response_time or 0), entry.max_response_time)


# Shown through another row: the token source row names the counter; usage_source is the older key.
SUMMARY_HIDDEN = ("token_counter", "usage_source")
# Rate mode's keys: shown only when they have a value (a closed-loop run has none of them).
RATE_KEYS = frozenset(
    ("requested_rate", "achieved_rate", "schedule_lag_p50", "schedule_lag_p99", "schedule_lag_max",
     "arrivals_waiting_at_stop", "schedule_lag_cause", "max_concurrency")
)  # fmt: skip


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """The llm summary figures as Figure/Value rows, nested mappings flattened as "outer: inner". The
    token source reads as on the console: "tokenizer (tiktoken cl100k_base (offline))"."""
    shown = {
        k: v for k, v in summary.items() if k not in SUMMARY_HIDDEN and not (k in RATE_KEYS and v is None)
    }
    if "token_source" in shown:
        shown["token_source"] = llm_stats.token_source_text(dict(summary))
    return [{"figure": label, "value": _format_value(value)} for label, value in _flatten(shown)]


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in mapping.items():
        label = prefix + SUMMARY_LABELS.get(str(key), str(key).replace("_", " "))
        if isinstance(value, Mapping) and value:
            yield from _flatten(value, f"{label}: ")
        else:
            yield label, value


def _format_value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if math.isfinite(value) else "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value) if value else "none"
    return str(value)


def sla_rows(environment: Environment) -> list[dict[str, str]]:
    """The SLA tab: one row per threshold of the live SLA file, or one row saying why there is none."""
    if not has_state(environment):
        return [NO_SLA_FILE]
    st = state(environment)
    if st.live_sla is not None:
        return st.live_sla.ui_rows()
    if st.live_sla_error:
        return [{**NO_SLA_FILE, "row": "SLA file", "value": st.live_sla_error, "state": "error"}]
    return [NO_SLA_FILE]


def extended_stats(environment: Environment) -> list[dict[str, Any]]:
    """The `extended_stats` payload Locust's UI reads: rows per extended tab key."""
    return [
        {"key": METRICS_TAB, "data": metric_rows(llm_request_stats(environment))},
        {"key": SLA_TAB, "data": sla_rows(environment)},
        {"key": SUMMARY_TAB, "data": summary_rows(llm_summary(environment))},
    ]


def template_extensions() -> dict[str, Any]:
    """The template_args that declare the tabs, their tables and the LLM downloads. The LLM charts tab
    has no table: ui.js fills it."""
    return {
        "extended_tabs": [{"key": key, "title": title} for key, title in TABS],
        "extended_tables": [
            {"key": METRICS_TAB, "structure": METRICS_TABLE},
            {"key": SLA_TAB, "structure": SLA_TABLE},
            {"key": SUMMARY_TAB, "structure": SUMMARY_TABLE},
        ],
        # Relative like Locust's own links, so it works behind --web-base-path too.
        "extended_csv_files": [
            {"href": f".{CSV_ROUTE}", "title": "Download LLM metrics CSV"},
            {"href": f".{SUMMARY_ROUTE}", "title": "Download LLM summary JSON"},
        ],
    }


def install(environment: Environment) -> None:
    """Add the tabs, the live rows and the download routes to `environment.web_ui` (no-op without one)."""
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None:
        return
    app = web_ui.app
    options = environment.parsed_options
    base_path = (getattr(options, "web_base_path", "") or "") if options else ""
    web_ui.template_args.update(template_extensions())

    blueprint = Blueprint("loadgate_llm", __name__, url_prefix=base_path or None)

    @blueprint.route(CSV_ROUTE)
    @web_ui.auth_required_if_enabled
    def llm_stats_csv() -> Response:
        buffer = io.StringIO()
        write_llm_csv(environment, csv.writer(buffer))
        response = make_response(buffer.getvalue())
        response.headers["Content-type"] = "text/csv"
        response.headers["Content-disposition"] = "attachment;filename=loadgate_llm_stats.csv"
        return response

    @blueprint.route(SUMMARY_ROUTE)
    @web_ui.auth_required_if_enabled
    def llm_summary_json() -> Response:
        response = make_response(json.dumps(llm_summary(environment), indent=2))
        response.headers["Content-type"] = "application/json"
        response.headers["Content-disposition"] = "attachment;filename=loadgate_llm_summary.json"
        return response

    charts = LlmCharts(environment)
    if has_state(environment):
        state(environment).charts = charts

    @blueprint.route(CHARTS_DATA_ROUTE)
    @web_ui.auth_required_if_enabled
    def llm_charts_data() -> Response:
        args = request.args
        payload = charts.payload(
            args.get("run", ""), _int(args.get("version"), -1), _int(args.get("have"), 0)
        )
        response = make_response(json.dumps(payload, allow_nan=False))
        response.headers["Content-type"] = "application/json"
        response.headers["Cache-Control"] = "no-store"
        return response

    @blueprint.route(PLOTLY_ROUTE)
    @web_ui.auth_required_if_enabled
    def plotly_js() -> Response:
        response = make_response(_plotly_js())
        response.headers["Content-type"] = "text/javascript"
        response.headers["Cache-Control"] = "max-age=86400"
        return response

    @blueprint.route(STATIC_ROUTE)
    @web_ui.auth_required_if_enabled
    def loadgate_static(name: str) -> Response:
        if name not in STATIC_FILES:
            return make_response("not found", 404)
        response = make_response((STATIC / name).read_bytes())
        response.headers["Content-type"] = f"{STATIC_FILES[name]}; charset=utf-8"
        return response

    app.register_blueprint(blueprint)

    # The UI's "Reset stats" clears Locust's rows; the LLM tabs and charts must restart with them. (The
    # event carries no environment, hence the closure.) On a master this resets the merged totals, as for
    # Locust's own rows: workers only ever send what accumulated since their last report.
    def reset_llm_stats(**_kwargs: Any) -> None:
        reset_llm(environment)
        charts.clear()

    environment.events.reset_stats.add_listener(reset_llm_stats)
    if not is_worker(environment):
        environment.events.test_start.add_listener(lambda **_kw: charts.start())
        environment.events.test_stop.add_listener(lambda **_kw: charts.stop())

    @app.after_request
    def add_ui_script(response: Response) -> Response:
        if request.endpoint != LOCUST_INDEX_ENDPOINT or response.status_code != 200:
            return response
        page = response.get_data(as_text=True)
        if "</head>" in page and UI_TAGS not in page:
            response.set_data(page.replace("</head>", UI_TAGS + "</head>", 1))
        return response

    @app.after_request
    def add_llm_rows(response: Response) -> Response:
        if request.endpoint != LOCUST_STATS_ENDPOINT or response.status_code != 200 or not response.is_json:
            return response
        # Locust memoizes this response for a moment; overwriting the key keeps it idempotent.
        payload = response.get_json()
        payload["extended_stats"] = extended_stats(environment)
        response.set_data(json.dumps(payload))
        return response


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


@cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs  # the JS the plotly package ships (no CDN)

    return get_plotlyjs()


# --- the run's LLM stats (none when loadgate's harness does not run this environment) ---


def llm_request_stats(environment: Environment) -> RequestStats | None:
    """The LLM RequestStats holding this runner's totals (merged from workers on a master)."""
    return state(environment).llm.stats if has_state(environment) else None


def llm_summary(environment: Environment) -> Mapping[str, Any]:
    """The scalar LLM figures, as written to PREFIX_llm_summary.json."""
    return outputs.summary(state(environment)) if has_state(environment) else {}


def reset_llm(environment: Environment) -> None:
    """Restart the LLM figures (rows, counters and the measurement window) from now."""
    if has_state(environment):
        state(environment).llm.reset()


def write_llm_csv(environment: Environment, writer: Any) -> None:
    """The LLM rows in PREFIX_llm_stats.csv's layout (Locust's _stats.csv columns, no Aggregated row)."""
    if has_state(environment):
        llm_stats.write_llm_stats_csv(environment, state(environment).llm, writer)


@events.init.add_listener
def on_init(environment: Environment, **_kwargs: Any) -> None:
    install(environment)
