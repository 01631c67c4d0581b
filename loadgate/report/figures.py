"""The report's charts, drawn with Plotly (no plotting code of our own: traces, subplots, shapes).

Time axes show the time since the run started (h:mm:ss): values are milliseconds on a Plotly date axis
whose zero is 2000-01-01 00:00:00 (``ZERO_MS``). Long histories are downsampled to at most ``max_points`` points per
trace: each point is one time bucket, rates averaged, latency percentiles the bucket's maximum (a short
spike stays visible). A run and its baseline share the axes; the baseline is dotted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from loadgate import contract
from loadgate.report.data import AGGREGATED, Capacity, Run
from loadgate.report.verdict import Limit

DEFAULT_MAX_POINTS = 2000
GL_FROM_POINTS = 5000  # WebGL traces only beyond this many points (a context per chart costs more below)
LLM_CHART_TYPES = (contract.TTFT, contract.ITL, contract.TPOT, contract.E2E, contract.TTFB)
RATE_COLUMNS = ("Requests/s", "Failures/s", "User Count")
LIMIT_COLOR = {"FAIL": "#d62728", "PASS": "#2ca02c", "SKIP": "#7f7f7f", None: "#d62728"}
PALETTE = qualitative.Plotly + qualitative.D3 + qualitative.Dark24
TIME_METRICS = ("median", "avg", "min", "max")
CHART_HEIGHT = 380
# The date axis shows the time since the start as h:mm:ss: t = 0 is 2000-01-01 00:00:00 UTC (a base far
# from numbers Plotly could read as years, which small millisecond values would be).
ZERO_MS = 946_684_800_000.0
LEGEND_WIDTH = 380  # px right of every time chart


@dataclass
class Chart:
    id: str
    title: str
    figure: go.Figure
    note: str = ""


@dataclass
class Series:
    """A run's histories, downsampled once for every chart."""

    run: Run
    http: pd.DataFrame | None
    llm: pd.DataFrame | None
    bucket_s: float  # 0 when no downsampling was needed
    end_t: float


def prepare(run: Run, max_points: int = DEFAULT_MAX_POINTS, bucket_s: float | None = None) -> Series:
    frames = [f for f in (run.history, run.llm_history) if f is not None and not f.empty]
    end_t = max((float(f["t"].max()) for f in frames), default=0.0)
    if bucket_s is None:
        bucket_s = bucket_for(frames, max_points)
    return Series(
        run,
        downsample(run.history, bucket_s) if run.history is not None else None,
        downsample(run.llm_history, bucket_s) if run.llm_history is not None else None,
        bucket_s,
        end_t,
    )


def bucket_for(frames: list[pd.DataFrame], max_points: int) -> float:
    """The bucket width (seconds) that leaves at most ``max_points`` points in the longest series."""
    worst = 0
    span = 0.0
    for frame in frames:
        counts = frame.groupby(["Type", "Name"], sort=False).size()
        worst = max(worst, int(counts.max()) if len(counts) else 0)
        span = max(span, float(frame["t"].max() - frame["t"].min()))
    if worst <= max_points or span <= 0:
        return 0.0
    return float(math.ceil(span / max(max_points - 1, 1)))


def downsample(frame: pd.DataFrame, bucket_s: float) -> pd.DataFrame:
    """Percentile columns with 0 (Locust: no sample in the window yet) become gaps; then one row per
    (Type, Name, bucket): rates and users averaged, percentiles the maximum, t the bucket's mean time."""
    percentiles = [c for c in frame.columns if c.endswith("%")]
    values = frame[["t", "Type", "Name", *RATE_COLUMNS, *percentiles]].copy()
    values[percentiles] = values[percentiles].where(values[percentiles] > 0)
    values["t"] = values["t"].clip(lower=0)
    if not bucket_s:
        return values
    values["bucket"] = (values["t"] // bucket_s).astype(np.int64)
    agg = {"t": "mean", **dict.fromkeys(RATE_COLUMNS, "mean"), **dict.fromkeys(percentiles, "max")}
    return values.groupby(["Type", "Name", "bucket"], sort=False).agg(agg).reset_index()


def series_of(frame: pd.DataFrame | None, type_: str, name: str) -> pd.DataFrame | None:
    if frame is None:
        return None
    part = frame[(frame["Type"] == type_) & (frame["Name"] == name)]
    return None if part.empty else part.sort_values("t", kind="stable")


# -- building blocks -----------------------------------------------------------------------------------


class Colors:
    """One colour per endpoint, the same in every chart."""

    def __init__(self) -> None:
        self.assigned: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        if key not in self.assigned:
            self.assigned[key] = PALETTE[len(self.assigned) % len(PALETTE)]
        return self.assigned[key]


def _ms(t: pd.Series | np.ndarray) -> np.ndarray:
    """Seconds since the start -> x on the date axis (milliseconds after ZERO_MS)."""
    return np.asarray(t, dtype=float) * 1000.0 + ZERO_MS


def _x(seconds: float) -> float:
    return seconds * 1000.0 + ZERO_MS


def _line(
    x: Iterable[float] | np.ndarray,
    y: Iterable[float] | np.ndarray,
    name: str,
    color: str,
    dash: str = "solid",
    group: str | None = None,
    width: float = 1.6,
    opacity: float = 1.0,
    show: bool | str = True,
) -> go.Scatter | go.Scattergl:
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    kind = go.Scattergl if len(xs) > GL_FROM_POINTS else go.Scatter
    return kind(
        x=xs,
        y=ys,
        name=name,
        mode="lines",
        line={"color": color, "dash": dash, "width": width},
        legendgroup=group or name,
        opacity=opacity,
        visible=show,
        connectgaps=False,
    )


def _layout(fig: go.Figure, title: str, y_title: str, rows: int = 1, height: int = CHART_HEIGHT) -> None:
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        height=height,
        # a fixed right margin for the legend: every time chart has the same plot width, so times line up
        margin={"l": 70, "r": LEGEND_WIDTH, "t": 50, "b": 40, "autoexpand": False},
        hovermode="x unified",
        legend={"orientation": "v", "x": 1.01, "y": 1, "font": {"size": 11}},
    )
    fig.update_xaxes(type="date", tickformat="%H:%M:%S", hoverformat="%H:%M:%S")
    fig.update_xaxes(title_text="time since start (h:mm:ss)", row=rows, col=1)
    if rows == 1:
        fig.update_yaxes(title_text=y_title, rangemode="tozero")


def _shade_warmup(fig: go.Figure, run: Run, rows: int = 1) -> None:
    if run.warmup is None:
        return
    start, end = run.warmup
    label = "warm-up (excluded)" if not run.warmup_note else "warm-up (stats never reset)"
    for row in range(1, rows + 1):
        text = {"annotation_text": label, "annotation_position": "top left", "annotation_font_size": 10}
        fig.add_vrect(
            x0=_x(start),
            x1=_x(max(end, start)),
            fillcolor="#888",
            opacity=0.12,
            line_width=0,
            layer="below",
            row=row,
            col=1,
            **(text if row == 1 else {}),
        )


def _limit_trace(limit: Limit, end_t: float, scale: float = 1.0, group: str = "limits") -> go.Scatter:
    y = limit.value * scale
    return go.Scatter(
        x=[_x(0.0), _x(max(end_t, 1.0))],
        y=[y, y],
        name=limit.label,
        mode="lines",
        line={"color": LIMIT_COLOR.get(limit.status, "#d62728"), "dash": "dash", "width": 2},
        legendgroup=group,
        hoverinfo="name+y",
    )


def _end(runs: list[Series]) -> float:
    return max((s.end_t for s in runs), default=1.0)


def _runs(main: Series, baseline: Series | None) -> list[tuple[Series, bool]]:
    return [(main, False)] + ([(baseline, True)] if baseline is not None else [])


def _name(text: str, is_baseline: bool) -> str:
    return f"baseline · {text}" if is_baseline else text


def _downsample_note(series: Series) -> str:
    if not series.bucket_s:
        return ""
    return (
        f"Downsampled for the browser: each point is {series.bucket_s:g} s "
        "(rates: mean, latency percentiles: maximum within the bucket)."
    )


# -- server metrics (--server-metrics): one chart per series name, one line per label set ---------------

SERVER_LIMIT = re.compile(r"^[a-z]+\((?P<name>[^{)]+)")  # "max(vllm:num_requests_waiting{...})" -> its name
MAX_SERVER_CHARTS = 24


def server_metrics_charts(
    main: Series, baseline: Series | None, limits: list[Limit], colors: Colors
) -> list[Chart]:
    """The target's own series on the run's time axis, with the SERVER thresholds' limits."""
    frames = [
        (s, b, s.run.server_metrics) for s, b in _runs(main, baseline) if s.run.server_metrics is not None
    ]
    names = list(dict.fromkeys(n for _, _, f in frames for n in f["metric"]))[:MAX_SERVER_CHARTS]
    end = max(
        [_end([main, baseline] if baseline else [main])]
        + [float(f["t"].max()) for _, _, f in frames if len(f)]
    )
    charts = []
    for index, name in enumerate(names):
        fig = make_subplots()  # (the shared layout addresses row 1)
        for series, is_base, frame in frames:
            part = frame[frame["metric"] == name]
            for labels, lines in part.groupby("labels", sort=True):
                lines = _bucketed(lines.sort_values("t", kind="stable"), series.bucket_s)
                text = f"{{{labels}}}" if labels else name
                fig.add_trace(
                    _line(_ms(lines["t"]), lines["value"], _name(text, is_base), colors(f"{name}{labels}"),
                          "dot" if is_base else "solid")
                )  # fmt: skip
        for lim in limits:
            match = SERVER_LIMIT.match(lim.metric) if lim.row == contract.SERVER_ROW else None
            if match and match.group("name") == name:
                fig.add_trace(_limit_trace(lim, end))
        _layout(fig, name, "value", height=300)
        _shade_warmup(fig, main.run)
        charts.append(Chart(f"chart-server-{index}", name, fig, _downsample_note(main)))
    return charts


def _bucketed(frame: pd.DataFrame, bucket_s: float) -> pd.DataFrame:
    """One point per bucket (its maximum: a short queue spike stays visible), as the other charts."""
    if not bucket_s:
        return frame
    buckets = (frame["t"].clip(lower=0) // bucket_s).astype(np.int64)
    return frame.assign(bucket=buckets).groupby("bucket").agg({"t": "mean", "value": "max"})


# -- the charts ---------------------------------------------------------------------------------------


def throughput_chart(
    main: Series, baseline: Series | None, limits: list[Limit], colors: Colors
) -> Chart | None:
    if main.http is None:
        return None
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        row_heights=[0.68, 0.32],
        vertical_spacing=0.08,
        subplot_titles=("requests/s and failures/s", "failure ratio (%)"),
    )
    rate_rows = {lim.row for lim in limits if lim.metric in ("rps", "fail_rps", "fail_ratio")}
    keys = [("", AGGREGATED)] + [_split_http(row) for row in sorted(rate_rows - {AGGREGATED})]
    for series, is_base in _runs(main, baseline):
        for type_, name in keys:
            part = series_of(series.http, type_, name)
            if part is None:
                continue
            label = "all requests" if name == AGGREGATED else f"{type_} {name}".strip()
            dash = "dot" if is_base else "solid"
            x = _ms(part["t"])
            rps, fails = part["Requests/s"].to_numpy(float), part["Failures/s"].to_numpy(float)
            if name == AGGREGATED:
                fig.add_trace(_line(x, rps, _name(f"requests/s ({label})", is_base), "#1f77b4", dash), 1, 1)
                fig.add_trace(_line(x, fails, _name(f"failures/s ({label})", is_base), "#d62728", dash), 1, 1)
            color = "#ff7f0e" if name == AGGREGATED else colors(name)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(rps > 0, fails / np.where(rps > 0, rps, 1) * 100, np.nan)
            fig.add_trace(_line(x, ratio, _name(f"failure % ({label})", is_base), color, dash), 2, 1)
    end = _end([main, baseline] if baseline else [main])
    for lim in limits:
        if lim.metric in ("rps", "fail_rps"):
            fig.add_trace(_limit_trace(lim, end), 1, 1)
        elif lim.metric == "fail_ratio":
            fig.add_trace(_limit_trace(lim, end, scale=100), 2, 1)
    _layout(fig, "Throughput and failures", "", rows=2, height=480)
    fig.update_yaxes(title_text="per second", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="%", rangemode="tozero", row=2, col=1)
    _shade_warmup(fig, main.run, rows=2)
    return Chart("chart-throughput", "Throughput and failures", fig, _downsample_note(main))


def load_chart(main: Series, baseline: Series | None, limits: list[Limit]) -> Chart | None:
    if main.http is None:
        return None
    requested, achieved = main.run.rate_fields()
    rate_mode = requested is not None
    fig = make_subplots(specs=[[{"secondary_y": rate_mode}]])
    for series, is_base in _runs(main, baseline):
        part = series_of(series.http, "", AGGREGATED)
        if part is None:
            continue
        dash = "dot" if is_base else "solid"
        fig.add_trace(_line(_ms(part["t"]), part["User Count"], _name("users", is_base), "#9467bd", dash))
        if rate_mode:
            fig.add_trace(
                _line(_ms(part["t"]), part["Requests/s"], _name("achieved req/s", is_base), "#1f77b4", dash),
                secondary_y=True,
            )
    end = _end([main, baseline] if baseline else [main])
    if rate_mode:
        for value, text, color in (
            (requested, "requested rate", "#ff7f0e"),
            (achieved, "achieved rate (run)", "#17becf"),
        ):
            if value is not None:
                fig.add_trace(
                    go.Scatter(
                        x=[_x(0.0), _x(end)],
                        y=[value, value],
                        name=f"{text}: {value:g} req/s",
                        mode="lines",
                        line={"color": color, "dash": "dash"},
                    ),
                    secondary_y=True,
                )
        for lim in limits:
            if lim.metric in ("achieved_rate",):
                fig.add_trace(_limit_trace(lim, end), secondary_y=True)
    title = "Load: users, offered and achieved rate" if rate_mode else "Load: users"
    _layout(fig, title, "users", height=320)
    if rate_mode:
        fig.update_yaxes(title_text="req/s", rangemode="tozero", secondary_y=True)
    _shade_warmup(fig, main.run)
    return Chart("chart-load", title, fig, _downsample_note(main))


def http_latency_chart(
    main: Series, baseline: Series | None, limits: list[Limit], colors: Colors
) -> Chart | None:
    if main.http is None:
        return None
    windowed = main.run.history_windowed
    fig = make_subplots(rows=1, cols=1)
    names = _keys(main.http, exclude_aggregated=True) if windowed else []
    for series, is_base in _runs(main, baseline):
        dash = "dot" if is_base else "solid"
        agg = series_of(series.http, "", AGGREGATED)
        if agg is not None:
            for column, width, text in (("50%", 1.2, "p50"), ("95%", 2.4, "p95")):
                if column in agg:
                    fig.add_trace(
                        _line(
                            _ms(agg["t"]),
                            agg[column],
                            _name(f"{text} all requests", is_base),
                            "#444",
                            "dot" if is_base else ("dash" if text == "p50" else "solid"),
                            width=width,
                        )
                    )
        for type_, name in names:
            part = series_of(series.http, type_, name)
            if part is not None and "95%" in part:
                fig.add_trace(
                    _line(
                        _ms(part["t"]),
                        part["95%"],
                        _name(f"p95 {type_} {name}", is_base),
                        colors(name),
                        dash,
                        show=True if not is_base else "legendonly",
                    )
                )
    end = _end([main, baseline] if baseline else [main])
    for lim in limits:
        if _is_llm_row(lim.row) or lim.row == contract.LLM_ROW:
            continue
        if lim.metric.startswith("p(") or lim.metric in TIME_METRICS:
            fig.add_trace(_limit_trace(lim, end))
    _layout(fig, "HTTP response times", "ms (log scale)", height=460)
    fig.update_yaxes(type="log", rangemode="normal")
    _shade_warmup(fig, main.run)
    note = (
        ""
        if windowed
        else (
            "Only the all-requests row is in the history and its percentiles are cumulative since the start "
            "(or the warm-up reset); run Locust with --csv-full-history for per-request, windowed percentiles."
        )
    )
    return Chart(
        "chart-http-latency",
        "HTTP response times",
        fig,
        " ".join(t for t in (note, _downsample_note(main)) if t),
    )


def llm_latency_charts(
    main: Series, baseline: Series | None, limits: list[Limit], colors: Colors
) -> list[Chart]:
    if main.llm is None:
        return []
    charts = []
    present = set(main.llm["Type"])
    end = _end([main, baseline] if baseline else [main])
    for type_ in LLM_CHART_TYPES:
        if type_ not in present:
            continue
        fig = make_subplots(rows=1, cols=1)
        endpoints = [name for t, name in _keys(main.llm) if t == type_]
        for series, is_base in _runs(main, baseline):
            for name in endpoints:
                part = series_of(series.llm, type_, name)
                if part is None or part["95%"].isna().all():
                    continue
                x = _ms(part["t"])
                if not is_base:
                    fig.add_trace(
                        _line(x, part["50%"], f"p50 {name}", colors(name), "dash", group=name, width=1.2)
                    )
                fig.add_trace(
                    _line(
                        x,
                        part["95%"],
                        _name(f"p95 {name}", is_base),
                        colors(name),
                        "dot" if is_base else "solid",
                        group=name,
                        width=2.2,
                    )
                )
        for lim in limits:
            if lim.row.startswith(f"{type_} ") and (
                lim.metric.startswith("p(") or lim.metric in TIME_METRICS
            ):
                fig.add_trace(_limit_trace(lim, end))
        title = f"{type_} p50 / p95 per endpoint"
        _layout(fig, title, contract.UNITS[type_])
        _shade_warmup(fig, main.run)
        charts.append(Chart(f"chart-{type_.lower()}", title, fig, _downsample_note(main)))
    return charts


def tokens_chart(main: Series, baseline: Series | None, limits: list[Limit], colors: Colors) -> Chart | None:
    """Output tokens/s: each request's own rate over time (the TOKENS/S rows), with the run's aggregate
    throughput (from _llm_summary.json) and the LLM tokens_per_s limit as lines."""
    has_rows = main.llm is not None and (main.llm["Type"] == contract.TOKENS_PER_S).any()
    summary = main.run.llm_summary or {}
    total = summary.get("output_tokens_per_s")
    if not has_rows and not isinstance(total, int | float):
        return None
    fig = make_subplots(rows=1, cols=1)
    end = _end([main, baseline] if baseline else [main])
    for series, is_base in _runs(main, baseline):
        if series.llm is None:
            continue
        for t, name in _keys(series.llm):
            if t != contract.TOKENS_PER_S:
                continue
            part = series_of(series.llm, t, name)
            if part is None:
                continue
            fig.add_trace(
                _line(
                    _ms(part["t"]),
                    part["50%"],
                    _name(f"per request p50 {name}", is_base),
                    colors(name),
                    "dot" if is_base else "solid",
                    group=name,
                )
            )
    for series, is_base in _runs(main, baseline):
        value = (series.run.llm_summary or {}).get("output_tokens_per_s")
        if isinstance(value, int | float) and not isinstance(value, bool):
            fig.add_trace(
                go.Scatter(
                    x=[_x(0.0), _x(end)],
                    y=[value, value],
                    name=_name(f"all requests, whole run: {value:g} tok/s", is_base),
                    mode="lines",
                    line={"color": "#111", "dash": "dot" if is_base else "longdash", "width": 2},
                )
            )
    for lim in limits:
        if lim.row == contract.LLM_ROW and lim.metric == "tokens_per_s":
            fig.add_trace(_limit_trace(lim, end))
    _layout(fig, "Output tokens/s", "tokens/s")
    _shade_warmup(fig, main.run)
    note = (
        "Lines per endpoint: the median of each request's own output rate (tokens/s) over time. The "
        "whole-run line is all output tokens divided by the measured time; the LLM tokens_per_s threshold "
        "applies to it."
    )
    return Chart(
        "chart-tokens", "Output tokens/s", fig, " ".join(t for t in (note, _downsample_note(main)) if t)
    )


def capacity_charts(capacity: Capacity) -> list[Chart]:
    steps = sorted(capacity.steps, key=lambda s: s.rate)
    if not steps:
        return []
    found = capacity.found.get("rate_rps")
    rates = [s.rate for s in steps]
    marker_colors = ["#2ca02c" if s.passed else "#d62728" if s.passed is False else "#7f7f7f" for s in steps]
    fig = make_subplots(rows=1, cols=1)
    top = max(rates + [s.achieved or 0 for s in steps]) * 1.05
    fig.add_trace(
        go.Scatter(
            x=[0, top],
            y=[0, top],
            name="achieved = offered",
            mode="lines",
            line={"color": "#bbb", "dash": "dot"},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=rates,
            y=[s.achieved for s in steps],
            name="achieved rate (green: step passed, red: failed)",
            mode="lines+markers",
            marker={"color": marker_colors, "size": 10},
            line={"color": "#1f77b4"},
        )
    )
    if isinstance(found, int | float):
        fig.add_vline(
            x=found, line_color="#2ca02c", line_dash="dash", annotation_text=f"capacity {found:g} req/s"
        )
    fig.update_layout(
        template="plotly_white",
        title={"text": "Capacity search: achieved vs offered rate", "x": 0, "font": {"size": 15}},
        height=CHART_HEIGHT,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.2},
    )
    fig.update_xaxes(title_text="offered rate (req/s)", rangemode="tozero")
    fig.update_yaxes(title_text="achieved rate (req/s)", rangemode="tozero")
    charts = [Chart("chart-capacity", "Capacity search: achieved vs offered rate", fig)]
    keys: list[str] = []
    for step in steps:
        for value in step.values:
            key = _threshold_key(value)
            if key not in keys:
                keys.append(key)
    if keys:
        shown = keys[:8]
        titles = [f"{key} (%)" if key.split(": ", 1)[-1].startswith("fail_ratio") else key for key in shown]
        per = make_subplots(
            rows=len(shown),
            cols=1,
            shared_xaxes=True,
            subplot_titles=titles,
            vertical_spacing=70 / (190 * len(shown) + 90),
        )
        for row, key in enumerate(shown, start=1):
            xs, ys, cs, limit = [], [], [], None
            for step in steps:
                for value in step.values:
                    if _threshold_key(value) == key and isinstance(value.get("observed"), int | float):
                        scale = 100.0 if value.get("metric") == "fail_ratio" else 1.0  # a fraction: in %
                        xs.append(step.rate)
                        ys.append(float(value["observed"]) * scale)
                        status = str(value.get("status", "")).upper()
                        cs.append(
                            "#d62728" if status == "FAIL" else "#2ca02c" if status == "PASS" else "#7f7f7f"
                        )
                        if isinstance(value.get("limit"), int | float):
                            limit = float(value["limit"]) * scale
            per.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    name=key,
                    mode="lines+markers",
                    marker={"color": cs, "size": 8},
                    line={"color": "#1f77b4"},
                    showlegend=False,
                ),
                row,
                1,
            )
            if limit is not None and xs:
                per.add_trace(
                    go.Scatter(
                        x=[0, top],
                        y=[limit, limit],
                        name=f"limit {key}",
                        mode="lines",
                        line={"color": "#d62728", "dash": "dash"},
                        showlegend=False,
                    ),
                    row,
                    1,
                )
            if isinstance(found, int | float):
                per.add_vline(x=found, line_color="#2ca02c", line_dash="dash", row=row, col=1)
        per.update_layout(
            template="plotly_white",
            title={
                "text": "Capacity search: each threshold per step (limit dashed)",
                "x": 0,
                "font": {"size": 15},
            },
            height=190 * len(shown) + 90,
            margin={"l": 60, "r": 20, "t": 70, "b": 40},
        )
        per.update_xaxes(title_text="offered rate (req/s)", row=len(shown), col=1)
        note = (
            f"{len(keys) - len(shown)} more thresholds are in the table below."
            if len(keys) > len(shown)
            else ""
        )
        charts.append(Chart("chart-capacity-thresholds", "Capacity search: thresholds per step", per, note))
    return charts


def _threshold_key(value: dict) -> str:
    row, metric, rule = value.get("row"), value.get("metric"), value.get("rule")
    if row and rule:
        return f"{row}: {rule}"
    if row and metric:
        return f"{row}: {metric}"
    return str(rule or metric or row or "?")


def _keys(frame: pd.DataFrame, exclude_aggregated: bool = False) -> list[tuple[str, str]]:
    pairs = frame[["Type", "Name"]].drop_duplicates()
    keys = sorted((str(t), str(n)) for t, n in zip(pairs["Type"], pairs["Name"], strict=True))
    return [k for k in keys if not (exclude_aggregated and k[1] == AGGREGATED and not k[0])]


def _split_http(row: str) -> tuple[str, str]:
    type_, _, name = row.partition(" ")
    return (type_, name) if name and type_.isupper() else ("", row)


def _is_llm_row(row: str) -> bool:
    return row.split(" ", 1)[0] in contract.METRIC_TYPES
