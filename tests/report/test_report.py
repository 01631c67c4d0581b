"""``loadgate report``: the HTML report rendered from real run files, parsed back and checked."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from child_env import child_env

from loadgate import report
from loadgate.report import figures
from loadgate.report.data import load_run

from .support import CAPACITY, REPO, RUN, SLA_JOB, copy_run, external_urls, parse, trace, values

TIME_CHARTS = [
    "chart-throughput",
    "chart-load",
    "chart-http-latency",
    "chart-ttft",
    "chart-itl",
    "chart-tpot",
    "chart-e2e",
    "chart-ttfb",
    "chart-tokens",
]
ONE_PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadgate", "report", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=child_env(),
        timeout=120,
    )


def test_report_of_a_real_job_run(tmp_path, capsys):
    prefix = copy_run(RUN, tmp_path / "results")
    assert report.main([prefix]) == 0
    out = tmp_path / "results" / "report.html"
    assert capsys.readouterr().out.startswith(f"loadgate report: wrote {out} (")
    page = parse(out)

    assert page.sections == ["verdict", "summary", "charts", "llm-tables", "http-table", "run-info"]
    charts = [i for i in page.ids if i.startswith("chart-")]
    assert charts == TIME_CHARTS

    # the verdict: every threshold of the job's verdict.json, in its order, with observed and limit
    verdict = json.loads((RUN / "verdict.json").read_text())["verdicts"]
    rows = page.tables["verdict-table"][1:]
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in rows] == [
        (
            v["status"],
            v["row"],
            v["metric"],
            v["observed_text"],
            v["limit_text"] + (" for 10 s" if v["window_s"] else ""),
        )
        for v in verdict
    ]
    assert "SLA MET" in page.all_text() and "0 failed, 16 passed, 0 skipped" in page.all_text()

    # tables: the HTTP rows of _stats.csv and the LLM rows (per endpoint) with samples
    stats = pd.read_csv(f"{prefix}_stats.csv", keep_default_na=False)
    http = {(r[0], r[1]): r for r in page.tables["http-stats"][1:]}
    assert len(http) == len(stats)
    assert http[("POST", "/v1/chat/completions")][2] == "166"
    assert http[("", "Aggregated")][2] == "225"
    llm = page.tables["llm-table"]
    assert ["/v1/chat/completions [stream]"] in llm
    assert ["", "TTFT", "ms", "133", "0", "173", "541", "726", "1,020", "246.3", "1,558"] in llm
    assert "ITL" in {r[1] for r in llm if len(r) > 1}
    assert ["total_output_tokens", "10279"] in page.tables["llm-summary"]

    # throughput: the history's own per-second figures, on a time axis that starts at the run's start
    history = pd.read_csv(f"{prefix}_stats_history.csv", keep_default_na=False, na_values=["N/A"])
    total = history[history["Name"] == "Aggregated"]
    meta = json.loads(Path(f"{prefix}_loadgate.json").read_text())
    data, layout = page.figure("chart-throughput")
    rps = trace(data, "requests/s (all requests)")
    assert values(rps["y"]) == total["Requests/s"].tolist()
    expected_x = ((total["Timestamp"] - meta["started_at"]).clip(lower=0) * 1000 + figures.ZERO_MS).tolist()
    assert values(rps["x"]) == pytest.approx(expected_x)
    # the warm-up is shaded from the start to the stats reset, on both panels
    warmup = [s for s in layout["shapes"] if s["type"] == "rect"]
    assert len(warmup) == 2
    reset_ms = (meta["stats_reset_at"] - meta["started_at"]) * 1000
    assert {(s["x0"], round(s["x1"] - figures.ZERO_MS)) for s in warmup} == {
        (figures.ZERO_MS, round(reset_ms))
    }
    # each threshold's limit is drawn on its chart
    assert values(trace(data, "limit Aggregated: rps >= 2 [PASS]")["y"]) == [2, 2]
    assert values(trace(data, "limit Aggregated: fail_ratio < 1% [PASS]")["y"]) == [1, 1]  # percent panel
    ttft, _ = page.figure("chart-ttft")
    assert values(trace(ttft, "limit TTFT /v1/chat/completions [stream]: p(95) < 2500 [PASS]")["y"]) == [
        2500,
        2500,
    ]
    assert (
        values(trace(ttft, "limit TTFT /v1/chat/completions [stream]: p(95) < 4s for 10s [PASS]")["y"])
        == [4000] * 2
    )
    llm_history = pd.read_csv(f"{prefix}_llm_stats_history.csv", keep_default_na=False, na_values=["N/A"])
    stream = llm_history[
        (llm_history["Type"] == "TTFT") & (llm_history["Name"] == "/v1/chat/completions [stream]")
    ]
    p95 = [None if v == 0 or v != v else v for v in stream["95%"]]  # 0 or N/A: no sample in the window: a gap
    drawn = values(trace(ttft, "p95 /v1/chat/completions [stream]")["y"])
    assert [None if v != v else v for v in drawn] == p95
    http_latency, _ = page.figure("chart-http-latency")
    assert (
        values(trace(http_latency, "limit POST /v1/chat/completions: p(95) < 12s [PASS]")["y"]) == [12000] * 2
    )
    tokens, _ = page.figure("chart-tokens")
    assert values(trace(tokens, "limit LLM: tokens_per_s > 50 [PASS]")["y"]) == [50, 50]
    assert trace(tokens, "all requests, whole run: 381.307 tok/s")
    itl, _ = page.figure("chart-itl")
    assert values(trace(itl, "limit ITL /v1/chat/completions [stream]: p(95) < 250ms [PASS]")["y"]) == [
        250,
        250,
    ]


def test_report_is_self_contained(tmp_path):
    prefix = copy_run(RUN, tmp_path / "results")
    out = tmp_path / "r.html"
    assert report.main([prefix, "--out", str(out)]) == 0
    page = parse(out)
    assert external_urls(page) == []  # no src/href/url() outside the file
    assert not [v for attr, v in page.links if attr == "src"]  # every script and image is inline
    bundles = [s for s in page.scripts if "plotly.js v" in s[:200]]
    assert len(bundles) == 1  # Plotly's JS inlined exactly once
    html = out.read_text(encoding="utf-8").replace(bundles[0], "")
    # outside Plotly's bundle (whose strings name map-tile servers it never calls here), the only URL
    # is the run's target, written as text
    assert set(re.findall(r"https?://[^\s\"'<)]+", html)) == {"http://127.0.0.1:42363"}


def test_report_without_a_verdict_and_judged_with_thresholds(tmp_path):
    """The older job fixture has no verdict.json: the report says so; --thresholds judges it with the gate."""
    prefix = copy_run(SLA_JOB, tmp_path / "job", name="job", source_name="job")
    assert report.main([prefix, "--out", str(tmp_path / "a.html")]) == 0
    page = parse(tmp_path / "a.html")
    assert "NO VERDICT" in page.all_text()
    assert f"no {tmp_path / 'job' / 'verdict.json'} beside the run" in page.all_text()
    assert "verdict-table" not in page.tables

    thresholds = tmp_path / "sla.yaml"
    thresholds.write_text(
        'thresholds:\n  "TTFT /v1/chat/completions [stream]":\n    - "p(95) < 100"\n  Aggregated:\n    - "rps >= 2"\n'
    )
    assert report.main([prefix, "--out", str(tmp_path / "b.html"), "--thresholds", str(thresholds)]) == 0
    page = parse(tmp_path / "b.html")
    assert "SLA BREACHED" in page.all_text()
    assert page.tables["verdict-table"][1:] == [
        ["FAIL", "TTFT /v1/chat/completions [stream]", "p(95)", "622 ms", "<", "100 ms", ""],
        ["PASS", "Aggregated", "rps", "8.669 req/s", ">=", "2 req/s", ""],  # as loadgate gate prints it
    ]
    ttft, _ = page.figure("chart-ttft")
    assert values(trace(ttft, "limit TTFT /v1/chat/completions [stream]: p(95) < 100 [FAIL]")["y"]) == [
        100,
        100,
    ]


def test_verdict_of_another_run_is_not_shown(tmp_path):
    prefix = copy_run(RUN, tmp_path / "results")
    verdict = json.loads((RUN / "verdict.json").read_text())
    verdict["prefix"] = "results/other"
    (tmp_path / "results" / "verdict.json").write_text(json.dumps(verdict))
    assert report.main([prefix]) == 0
    page = parse(tmp_path / "results" / "report.html")
    assert "NO VERDICT" in page.all_text() and "judged another run" in page.all_text()


def test_report_with_a_baseline(tmp_path):
    prefix = copy_run(RUN, tmp_path / "results")
    base = copy_run(SLA_JOB, tmp_path / "baseline", name="job", source_name="job")
    out = tmp_path / "r.html"
    assert report.main([prefix, "--baseline", base, "--out", str(out)]) == 0
    page = parse(out)
    assert page.sections == [
        "verdict",
        "summary",
        "charts",
        "llm-tables",
        "http-table",
        "baseline",
        "run-info",
    ]
    now = pd.read_csv(f"{prefix}_stats.csv", keep_default_na=False).set_index("Name")
    then = pd.read_csv(f"{base}_stats.csv", keep_default_na=False).set_index("Name")
    deltas = {(r[0], r[1]): r[2:] for r in page.tables["deltas-http"][1:]}
    assert set(deltas) == {(t, n) for t, n in zip(now["Type"], now.index, strict=True)}
    b, n = then.loc["Aggregated", "Requests/s"], now.loc["Aggregated", "Requests/s"]
    assert deltas[("", "Aggregated")][0] == f"{b:.2f} → {n:.2f} ({(n - b) / b * 100:+.1f}%)"
    b, n = then.loc["/v1/chat/completions", "95%"], now.loc["/v1/chat/completions", "95%"]
    assert deltas[("POST", "/v1/chat/completions")][3] == f"{b:,.0f} → {n:,.0f} ({(n - b) / b * 100:+.1f}%)"
    llm = {(r[0], r[1]) for r in page.tables["deltas-llm"][1:]}
    assert ("TTFT", "/v1/chat/completions [stream]") in llm
    assert page.tables["deltas-summary"][1] == ["output tokens/s", "440.3 → 381.3 (-13.4%)"]
    # both runs on the same axes: the baseline's traces are in the same figures
    data, _ = page.figure("chart-throughput")
    assert trace(data, "baseline · requests/s (all requests)")
    assert trace(data, "requests/s (all requests)")
    ttft, _ = page.figure("chart-ttft")
    assert trace(ttft, "baseline · p95 /v1/chat/completions [stream]")


def test_report_with_a_capacity_search(tmp_path):
    prefix = copy_run(RUN, tmp_path / "results")
    shutil.copy(CAPACITY / "loadgate_capacity.json", f"{prefix}_capacity.json")
    Path(f"{prefix}_capacity.png").write_bytes(ONE_PIXEL_PNG)
    assert report.main([prefix]) == 0
    page = parse(tmp_path / "results" / "report.html")
    assert page.sections[-2:] == ["capacity", "run-info"]
    assert {"chart-capacity", "chart-capacity-thresholds"} <= set(page.ids)
    text = page.all_text()
    assert "6.00 req/s capacity (highest passing rate)" in text
    assert (
        "Limiting threshold: TTFT /v1/chat/completions [stream]: p(95) < 2500 , observed 3410 ms at 7.00 req/s"
        in text
    )
    steps = page.tables["capacity-steps"]
    assert steps[0] == [
        "Step",
        "Offered req/s",
        "Achieved req/s",
        "Result",
        "TTFT /v1/chat/completions [stream]: p(95) < 2500",
        "Aggregated: fail_ratio < 1%",
    ]
    assert [r[1:5] for r in steps[1:]] == [
        ["1.00", "0.99", "PASS", "412 ms"],
        ["2.00", "1.98", "PASS", "455 ms"],
        ["4.00", "3.97", "PASS", "780 ms"],
        ["8.00", "7.21", "FAIL", "9120 ms"],
        ["6.00", "5.94", "PASS", "1630 ms"],
        ["7.00", "6.71", "FAIL", "3410 ms"],
    ]
    data, layout = page.figure("chart-capacity")
    achieved = trace(data, "achieved rate")
    assert values(achieved["x"]) == [1, 2, 4, 6, 7, 8]
    assert [s["x0"] for s in layout["shapes"]] == [6.0]  # the capacity marked
    per_step, _ = page.figure("chart-capacity-thresholds")
    assert values(trace(per_step, "limit TTFT")["y"]) == [2500, 2500]
    images = [v for attr, v in page.links if attr == "src"]
    assert images == ["data:image/png;base64," + base64.b64encode(ONE_PIXEL_PNG).decode()]
    assert external_urls(page) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["{tmp}/nope"],
            'loadgate report: error: PREFIX: no run found: file missing (got "{tmp}/nope_stats.csv"); ',
        ),
        (["{run}_stats.csv"], "pass the prefix, not a file: {run}"),
        (["{run}", "--verdict", "{tmp}/v.json"], "loadgate report: error: --verdict: verdict file not found"),
        (
            ["{run}", "--thresholds", "{tmp}/t.yaml"],
            "loadgate report: error: --thresholds {tmp}/t.yaml: threshold",
        ),
        (["{run}", "--baseline", "{tmp}/base"], "loadgate report: error: --baseline: no run found"),
        (["{run}", "--max-points", "3"], "loadgate report: error: --max-points: must be at least 10 (got 3)"),
        (
            ["{run}", "--bogus"],
            'loadgate report: error: arguments: unrecognized arguments: --bogus (got "{run} --bogus")',
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, expected):
    run = copy_run(RUN, tmp_path / "results")
    fill = {"tmp": str(tmp_path), "run": run}
    result = run_cli(*[a.format(**fill) for a in args])
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and expected.format(**fill) in lines[0], result.stderr
    assert not (tmp_path / "results" / "report.html").exists()


def test_malformed_files_exit_2_naming_them(tmp_path):
    prefix = copy_run(RUN, tmp_path / "results")
    history = Path(f"{prefix}_stats_history.csv")
    lines = history.read_text().splitlines()
    lines[5] = lines[5].replace(",POST,", ",POST,").replace("0.000000", "fast", 1)
    history.write_text("\n".join(lines) + "\n")
    result = run_cli(prefix)
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"loadgate report: error: {history}:6: column 'Requests/s' is not a number (got \"fast\")"
    )
    history.write_text("")  # an empty history is no history: the report is still written
    Path(f"{prefix}_capacity.json").write_text('{"steps": "no"}')
    result = run_cli(prefix)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f'loadgate report: error: {prefix}_capacity.json: steps: must be a list of steps (got "no"); '
        "re-run the capacity search (--find-capacity)"
    ]


def test_downsampling_keeps_at_most_max_points_and_the_spikes():
    seconds = 7200
    t = list(range(seconds))
    frame = pd.DataFrame(
        {
            "Timestamp": t,
            "t": [float(s) for s in t],
            "User Count": 20,
            "Type": "TTFT",
            "Name": "/x",
            "Requests/s": 5.0,
            "Failures/s": 0.0,
            "50%": 100.0,
            "95%": [9000.0 if s == 4321 else 0.0 if s < 3 else 200.0 for s in t],
        }
    )
    run = load_run(str(RUN / "loadgate"))
    run.llm_history, run.history = frame, None
    series = figures.prepare(run, max_points=2000)
    assert series.bucket_s == 4.0
    part = figures.series_of(series.llm, "TTFT", "/x")
    assert len(part) == 1800
    assert part["95%"].max() == 9000.0  # a one-second spike survives as the bucket's maximum
    assert part["95%"].isna().sum() == 0 and part["95%"].iloc[0] == 200.0  # the 0s (no window yet) are gaps
    assert part["Requests/s"].tolist() == [5.0] * 1800
    assert figures.prepare(run, max_points=8000).bucket_s == 0  # short enough: untouched


def test_report_imports_neither_locust_nor_gevent():
    code = (
        "import sys, loadgate.report, loadgate.report.html, loadgate.report.figures; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), cwd=REPO
    )
    assert result.stdout.strip() == "[]", result.stderr


def test_rate_mode_draws_offered_and_achieved_rate(tmp_path):
    """A run driven at a request rate (issue 11) has request_rate/achieved_rate in _loadgate.json."""
    prefix = copy_run(RUN, tmp_path / "results")
    meta_path = Path(f"{prefix}_loadgate.json")
    meta = json.loads(meta_path.read_text())
    meta.update(request_rate=8.0, achieved_rate=7.9)
    meta_path.write_text(json.dumps(meta))
    assert report.main([prefix]) == 0
    page = parse(tmp_path / "results" / "report.html")
    data, layout = page.figure("chart-load")
    assert layout["title"]["text"] == "Load: users, offered and achieved rate"
    assert values(trace(data, "requested rate: 8 req/s")["y"]) == [8, 8]
    assert values(trace(data, "achieved rate (run): 7.9 req/s")["y"]) == [7.9, 7.9]
    history = pd.read_csv(f"{prefix}_stats_history.csv", keep_default_na=False, na_values=["N/A"])
    total = history[history["Name"] == "Aggregated"]
    assert values(trace(data, "achieved req/s")["y"]) == total["Requests/s"].tolist()
    assert "8.00 req/s requested rate" in page.all_text()


def test_a_run_the_gate_cannot_judge_is_not_judged_but_its_limits_are_drawn(tmp_path):
    prefix = copy_run(RUN, tmp_path / "results")
    thresholds = tmp_path / "sla.yaml"
    thresholds.write_text('warmup: 60s\nthresholds:\n  "ITL /v1/chat/completions [stream]": ["p(95) < 40"]\n')
    assert report.main([prefix, "--thresholds", str(thresholds)]) == 0
    page = parse(tmp_path / "results" / "report.html")
    text = page.all_text()
    assert "NOT JUDGED" in text and "SLA MET" not in text
    assert "check_sla: error: " in text and "warmed up less than the thresholds' warmup (60s)" in text
    assert "verdict-table" not in page.tables
    itl, _ = page.figure("chart-itl")
    limit = trace(itl, "limit ITL /v1/chat/completions [stream]: p(95) < 40")
    assert limit["name"].endswith("< 40") and values(limit["y"]) == [40, 40]  # no state: not judged


def test_request_names_are_shown_verbatim_and_cannot_break_the_page(tmp_path):
    """Locust names can hold commas, quotes, non-ASCII and markup; they are text, never HTML."""
    prefix = copy_run(RUN, tmp_path / "results")
    odd = '/v1/mödels/{id},"x"</script><b>'
    for suffix in ("_stats.csv", "_stats_history.csv"):
        frame = pd.read_csv(f"{prefix}{suffix}", keep_default_na=False, dtype=str)
        frame["Name"] = frame["Name"].replace("/v1/models/{id}", odd)
        frame.to_csv(f"{prefix}{suffix}", index=False)
    assert report.main([prefix]) == 0
    page = parse(tmp_path / "results" / "report.html")
    assert ["GET", odd] == page.tables["http-stats"][10][:2]
    data, _ = page.figure("chart-http-latency")
    assert trace(data, f"p95 GET {odd}")
    assert (
        "<b>" not in (tmp_path / "results" / "report.html").read_text()
    )  # escaped everywhere, also in the JSON


def test_a_run_without_full_history_has_fewer_charts_and_says_why(tmp_path):
    """Without --csv-full-history Locust writes only the Aggregated history (cumulative percentiles) and
    loadgate no LLM history: those charts are left out, the others say what they show."""
    prefix = copy_run(RUN, tmp_path / "results")
    Path(f"{prefix}_llm_stats_history.csv").unlink()
    history = pd.read_csv(f"{prefix}_stats_history.csv", keep_default_na=False, dtype=str)
    history[history["Name"] == "Aggregated"].to_csv(f"{prefix}_stats_history.csv", index=False)
    assert report.main([prefix]) == 0
    page = parse(tmp_path / "results" / "report.html")
    assert [i for i in page.ids if i.startswith("chart-")] == [
        "chart-throughput",
        "chart-load",
        "chart-http-latency",
        "chart-tokens",
    ]
    assert "percentiles are cumulative since the start" in page.all_text()
    tokens, _ = page.figure("chart-tokens")
    assert [t["name"] for t in tokens] == [
        "all requests, whole run: 381.307 tok/s",
        "limit LLM: tokens_per_s > 50 [PASS]",
    ]
    assert page.sections == ["verdict", "summary", "charts", "llm-tables", "http-table", "run-info"]
