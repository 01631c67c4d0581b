"""Real browser (Debian chromium via Playwright) against the web UI that `locust` with no arguments serves.

`locust` runs from the repo root with no arguments, so locust.conf picks the locustfile, the web UI
and the embedded target; only the ports move, through Locust's own env vars (LOCUST_WEB_PORT,
LOCUST_HOST, LOCUST_WEB_HOST), which leave the no-argument behaviour as it is.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from loadgate.harness.embedded import LoopbackEndpoint, port_is_free

from .support import REPO, clean_env, free_port, stop, wait_for_log

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path("/tmp")
STARTUP_TIMEOUT_S = 30
UI_TIMEOUT_MS = 20_000


def _require_browser():
    """Skip without chromium/playwright, unless LOADGATE_REQUIRE_BROWSER=1 makes that a failure."""
    required = os.environ.get("LOADGATE_REQUIRE_BROWSER") == "1"
    missing = None
    if not os.path.exists(CHROMIUM):
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing (pip install -r requirements-test.txt)"
    if missing:
        if required:
            pytest.fail(f"LOADGATE_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)


@pytest.fixture
def locust_no_args(tmp_path):
    _require_browser()
    web_port, target_port = free_port(), free_port()
    env = clean_env(
        LOCUST_WEB_PORT=str(web_port),
        LOCUST_WEB_HOST="127.0.0.1",
        LOCUST_HOST=f"http://127.0.0.1:{target_port}",
        LOADGATE_EMBEDDED_TARGET="on",  # auto starts it only for locust.conf's own port, 8000 (may be busy)
    )
    log = tmp_path / "locust.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "locust"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process, log, web_port, target_port
    finally:
        stop(process)


@pytest.fixture
def locust_with_sla(tmp_path):
    """`locust` from the repository root (locust.conf) with a live SLA file, as a user would add it."""
    _require_browser()
    web_port, target_port = free_port(), free_port()
    sla = tmp_path / "sla.yaml"
    sla.write_text(LIVE_SLA)
    env = clean_env(
        LOCUST_WEB_PORT=str(web_port),
        LOCUST_WEB_HOST="127.0.0.1",
        LOCUST_HOST=f"http://127.0.0.1:{target_port}",
        LOADGATE_EMBEDDED_TARGET="on",  # auto starts it only for locust.conf's own port, 8000 (may be busy)
    )
    log = tmp_path / "locust.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "locust", "--sla", str(sla), "--sla-interval", "1s", "--warmup", "1s"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process, log, web_port, sla
    finally:
        stop(process)


LIVE_SLA = """\
warmup: 1s
min_requests: 1
thresholds:
  Aggregated:
    - "fail_ratio < 50%"
    - "rps > 0"
  "TTFT /v1/chat/completions [stream]":
    - "p(95) < 30s"
    - "p(95) < 30s for 2s"
  LLM:
    - "tokens_per_s > 0"
"""
LIVE_SLA_RULES = [
    ("Aggregated", "fail_ratio < 50%"),
    ("Aggregated", "rps > 0"),
    ("TTFT /v1/chat/completions [stream]", "p(95) < 30s"),
    ("TTFT /v1/chat/completions [stream]", "p(95) < 30s for 2s"),
    ("LLM", "tokens_per_s > 0"),
]
TAB_ORDER = [
    "Statistics",
    "Charts",
    "Failures",
    "LLM metrics",
    "LLM charts",
    "SLA",
    "LLM summary",
    "Exceptions",
    "Current Ratio",
    "Download Data",
    "Logs",
]
# The longest series of each chart (TTFT, ITL, E2E, tokens/s), read from Plotly's own data in the page.
CHART_POINTS = """() => ['ttft', 'itl', 'e2e', 'tokens'].map((id) => {
    const plot = document.getElementById(id);  // null until the page has loaded
    return ((plot && plot.data) || []).reduce((most, trace) => Math.max(most, trace.x.length), 0);
})"""


def wait_for_page(url: str, process: subprocess.Popen, timeout_s: float) -> None:
    """Locust logs "Starting web interface" before its init listeners (the start-up probe) have run;
    the page answers once they have."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            pytest.fail(f"locust exited with {process.returncode} before serving {url}")
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout_s}s")


def sla_rows(page) -> list[list[str]]:
    rows = page.get_by_role("row").all()
    return [row.get_by_role("cell").all_inner_texts() for row in rows[1:]]  # without the header


@pytest.mark.timeout(120)
def test_web_ui_sla_tab_and_llm_charts_fill_live(locust_with_sla):
    from playwright.sync_api import expect, sync_playwright

    process, log, web_port, sla = locust_with_sla
    wait_for_log(log, r"embedded target started at ", process, STARTUP_TIMEOUT_S)
    wait_for_log(log, r"Starting web interface", process, STARTUP_TIMEOUT_S)
    wait_for_page(f"http://127.0.0.1:{web_port}/", process, STARTUP_TIMEOUT_S)  # after loadgate's init

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{web_port}/", timeout=UI_TIMEOUT_MS)

            # The start form: the SLA file is a field (filled from --sla); an empty field's label sits
            # where a filled field's does (on the box's top edge), whole, not cut off inside the box.
            page.get_by_text("Custom parameters").click()
            expect(page.locator("input[name=sla]")).to_have_value(str(sla))
            expect(page.locator("input[name=goodput]")).to_have_value("")
            page.wait_for_timeout(800)  # the accordion's and the labels' animations

            def label_offset(field: str, title: str) -> float:
                label = page.locator("label", has_text=title)
                assert label.evaluate("(e) => e.scrollWidth <= e.clientWidth + 1"), title  # nothing cut off
                box, field_box = label.bounding_box(), page.locator(f"input[name={field}]").bounding_box()
                return box["y"] + box["height"] / 2 - field_box["y"]

            filled = label_offset("thinkTime", "Think Time")
            for field, title in (
                ("goodput", "Goodput"),
                ("models", "Models ("),
                ("promptFile", "Prompt File"),
            ):
                assert abs(label_offset(field, title) - filled) < 2, (
                    field,
                    label_offset(field, title),
                    filled,
                )
            page.locator("input[name=userCount]").fill("6")
            page.locator("input[name=spawnRate]").fill("6")
            page.get_by_role("button", name="Start").click()

            # loadgate's tabs come after Failures and before Locust's secondary tabs
            expect(page.get_by_role("tab", name="SLA")).to_be_visible(timeout=UI_TIMEOUT_MS)
            lefts = [
                page.get_by_role("tab", name=title, exact=True).bounding_box()["x"] for title in TAB_ORDER
            ]
            assert lefts == sorted(lefts), dict(zip(TAB_ORDER, lefts, strict=True))

            # SLA tab: every threshold, each with a live value and a state, as the file has them
            page.get_by_role("tab", name="SLA").click()
            expect(page).to_have_url(re.compile(r"[?&]tab=sla"))
            header = page.get_by_role("columnheader").all_inner_texts()
            assert header == ["Row", "Rule", "Live value", "Limit", "State", "In breach for"]
            expect(page.get_by_role("row").filter(has_text="never violated")).to_have_count(
                1, timeout=UI_TIMEOUT_MS
            )  # the "for" rule judged its first window: every rule has figures now
            rows = sla_rows(page)
            assert [(row[0], row[1]) for row in rows] == LIVE_SLA_RULES
            for row in rows:
                assert row[2] not in ("", "-"), row  # a live value
                assert row[4] in ("pass", "breach"), row
            by_rule = {(row[0], row[1]): row for row in rows}
            assert by_rule[("Aggregated", "rps > 0")][3] == "> 0 req/s"
            assert by_rule[("TTFT /v1/chat/completions [stream]", "p(95) < 30s for 2s")][3].endswith(
                "for 2 s"
            )
            page.wait_for_timeout(500)  # let the tab indicator finish its animation for the screenshot
            page.screenshot(path=str(SCREENSHOTS / "loadgate-webui-sla.png"), full_page=True)

            # LLM charts tab: the charts page draws series that grow as the run goes on
            page.get_by_role("tab", name="LLM charts").click()
            expect(page).to_have_url(re.compile(r"[?&]tab=llm_charts"))
            frame_element = page.locator("#loadgate-llm-charts")
            expect(frame_element).to_be_visible(timeout=UI_TIMEOUT_MS)
            charts = frame_element.element_handle().content_frame()
            charts.wait_for_function(f"({CHART_POINTS})().every((n) => n >= 2)", timeout=UI_TIMEOUT_MS)
            before = charts.evaluate(CHART_POINTS)
            page.wait_for_timeout(4000)
            after = charts.evaluate(CHART_POINTS)
            assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
            names = charts.evaluate("() => document.getElementById('ttft').data.map((t) => t.name)")
            assert names == ["/v1/chat/completions [stream] p50", "/v1/chat/completions [stream] p95"]
            page.screenshot(path=str(SCREENSHOTS / "loadgate-webui-llm-charts.png"), full_page=True)

            # back to another tab: the charts page is hidden, not left over Locust's tables
            page.get_by_role("tab", name="Statistics").click()
            expect(frame_element).to_be_hidden()
        finally:
            browser.close()

    assert stop(process) in (0, 1), log.read_text(errors="replace")[-3000:]  # 1: the live SLA's verdict
    print(
        f"screenshots: {SCREENSHOTS / 'loadgate-webui-sla.png'}, {SCREENSHOTS / 'loadgate-webui-llm-charts.png'}"
    )


@pytest.mark.timeout(90)
def test_web_ui_runs_from_the_form_and_fills_request_rows_and_llm_tabs(locust_no_args):
    from playwright.sync_api import expect, sync_playwright

    process, log, web_port, target_port = locust_no_args
    target = f"http://127.0.0.1:{target_port}"
    wait_for_log(log, rf"embedded target started at {re.escape(target)}\b", process, STARTUP_TIMEOUT_S)
    wait_for_log(log, r"Starting web interface", process, STARTUP_TIMEOUT_S)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{web_port}/", timeout=UI_TIMEOUT_MS)

            # The start form, pre-filled from locust.conf (users, spawn rate) and the host.
            expect(page.locator("input[name=host]")).to_have_value(target)
            expect(page.locator("input[name=userCount]")).to_have_value("10")
            page.locator("input[name=userCount]").fill("6")
            page.locator("input[name=spawnRate]").fill("6")
            page.get_by_role("button", name="Start").click()

            # Statistics tab: Locust's own HTTP rows for the chat endpoint.
            expect(page.get_by_role("cell", name="/v1/chat/completions", exact=True).first).to_be_visible(
                timeout=UI_TIMEOUT_MS
            )
            page.screenshot(path=str(SCREENSHOTS / "loadgate-webui-stats.png"))

            page.get_by_role("tab", name="LLM metrics").click()
            expect(page).to_have_url(re.compile(r"[?&]tab=llm_metrics"))
            ttft_rows = page.get_by_role("row").filter(has_text="TTFT")
            endpoint = page.get_by_role("cell", name="/v1/chat/completions [stream]", exact=True)
            ttft_stream = ttft_rows.filter(has=endpoint)
            expect(ttft_stream).to_have_count(1, timeout=UI_TIMEOUT_MS)
            # and the endpoint's per-model rows ("... @<model>"), after it
            expect(ttft_rows.filter(has_text="/v1/chat/completions [stream] @")).not_to_have_count(0)
            cells = ttft_stream.get_by_role("cell").all_inner_texts()
            assert cells[:3] == ["TTFT", "/v1/chat/completions [stream]", "ms"]
            assert int(cells[3]) > 0  # samples
            p50, p99, low, high = float(cells[4]), float(cells[7]), float(cells[9]), float(cells[10])
            assert 0 < low <= p50 <= p99 <= high
            header = page.get_by_role("columnheader").all_inner_texts()
            assert header == [
                "Type",
                "Name",
                "Unit",
                "# Samples",
                "p50",
                "p90",
                "p95",
                "p99",
                "Average",
                "Min",
                "Max",
            ]
            page.wait_for_timeout(500)  # let the tab indicator finish its animation for the screenshot
            page.screenshot(path=str(SCREENSHOTS / "loadgate-webui-llm-metrics.png"))

            page.get_by_role("tab", name="LLM summary").click()
            tokens = page.get_by_role("row").filter(has_text="Output tokens (total)")
            expect(tokens).to_have_count(1, timeout=UI_TIMEOUT_MS)
            assert int(tokens.get_by_role("cell").nth(1).inner_text().replace(",", "")) > 0
            figures = [row.split("\t")[0] for row in page.get_by_role("row").all_inner_texts()]
            assert figures[:2] == ["Figure", "Measured for (s)"]  # the summary's own order, not sorted
            page.wait_for_timeout(500)
            page.screenshot(path=str(SCREENSHOTS / "loadgate-webui-llm-summary.png"))

            # All three user classes run (Locust's Current Ratio data).
            classes = page.request.get(f"http://127.0.0.1:{web_port}/tasks").json()["total"]
            assert set(classes) == {"ChatUser", "BatchUser", "ModelsUser"}

            page.get_by_role("tab", name="Download Data").click()
            link = page.get_by_role("link", name="Download LLM metrics CSV")
            expect(link).to_have_attribute("href", "./stats/llm/csv")
            download = page.request.get(f"http://127.0.0.1:{web_port}/stats/llm/csv")
            rows = list(csv.reader(io.StringIO(download.text())))
            assert rows[0][:3] == ["Type", "Name", "Request Count"]
            assert ("TTFT", "/v1/chat/completions [stream]") in {(row[0], row[1]) for row in rows[1:]}
        finally:
            browser.close()

    assert stop(process) == 0, log.read_text(errors="replace")[-3000:]
    assert "embedded target at " + target + " stopped" in log.read_text()
    assert port_is_free(LoopbackEndpoint("127.0.0.1", target_port))  # the mock went with locust


def test_missing_browser_skips_unless_required(monkeypatch):
    from . import test_browser

    monkeypatch.setattr(test_browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.delenv("LOADGATE_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="/nonexistent/chromium is missing"):
        test_browser._require_browser()
    monkeypatch.setenv("LOADGATE_REQUIRE_BROWSER", "1")
    with pytest.raises(
        pytest.fail.Exception, match="LOADGATE_REQUIRE_BROWSER=1 but /nonexistent/chromium is missing"
    ):
        test_browser._require_browser()
