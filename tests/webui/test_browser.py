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
            ttft_stream = (
                page.get_by_role("row")
                .filter(has_text="TTFT")
                .filter(has_text="/v1/chat/completions [stream]")
            )
            expect(ttft_stream).to_have_count(1, timeout=UI_TIMEOUT_MS)
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
