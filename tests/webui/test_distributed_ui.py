"""The LLM tabs in a distributed run: the web UI of `locust --processes 2` shows the master's merge, and
the master evaluates the live SLA file and draws the LLM charts from it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest

from .support import REPO, clean_env, free_port, processes_args, stop, wait_for_log


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


SLA = """\
warmup: 0s
min_requests: 1
thresholds:
  "TTFT /v1/chat/completions [stream]": ["p(95) < 30s"]
  LLM: ["tokens_per_s > 0"]
"""


@pytest.mark.timeout(60)
def test_processes_web_ui_shows_llm_rows_merged_from_the_workers(tmp_path):
    web_port, target_port = free_port(), free_port()
    sla = tmp_path / "sla.yaml"
    sla.write_text(SLA)
    log = tmp_path / "locust.log"
    env = clean_env(
        LOCUST_WEB_PORT=str(web_port),
        LOCUST_WEB_HOST="127.0.0.1",
        LOCUST_HOST=f"http://127.0.0.1:{target_port}",
        LOADGATE_EMBEDDED_TARGET="on",  # auto starts it only for locust.conf's own port, 8000 (may be busy)
    )
    with log.open("w") as out:  # locust.conf from the repo root, plus fork mode and a run started at once
        process = subprocess.Popen(
            [sys.executable, "-m", "locust", *processes_args(2), "--autostart", "-u", "6", "-r", "6"]
            + ["--sla", str(sla), "--sla-interval", "1s"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_log(log, r"Sending spawn jobs", process, 30)
        ttft = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not ttft:
            stats = get_json(f"http://127.0.0.1:{web_port}/stats/requests")
            (metrics,) = [tab["data"] for tab in stats["extended_stats"] if tab["key"] == "llm_metrics"]
            ttft = [
                row
                for row in metrics
                if (row["type"], row["name"]) == ("TTFT", "/v1/chat/completions [stream]")
            ]
            time.sleep(0.5)
        assert ttft and ttft[0]["count"] > 0, log.read_text()[-3000:]
        assert stats["worker_count"] == 2
        (summary,) = [tab["data"] for tab in stats["extended_stats"] if tab["key"] == "llm_summary"]
        figures = {row["figure"]: row["value"] for row in summary}
        assert int(figures["Completed LLM responses"].replace(",", "")) > 0

        # the SLA tab: the master judges the merged figures (the workers have no live SLA)
        states: list[str] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and states != ["pass", "pass"]:
            stats = get_json(f"http://127.0.0.1:{web_port}/stats/requests")
            (rows,) = [tab["data"] for tab in stats["extended_stats"] if tab["key"] == "sla"]
            states = [row["state"] for row in rows]
            time.sleep(0.5)
        assert states == ["pass", "pass"], rows
        charts = get_json(f"http://127.0.0.1:{web_port}/loadgate/llm-charts.json")
        stream = [p["endpoints"].get("/v1/chat/completions [stream]") for p in charts["points"]]
        assert [values for values in stream if values and values[1] is not None]  # TTFT p95 points
    finally:
        stop(process)
    text = log.read_text()
    assert text.count("embedded target started at") == 1  # the master's, none from the 2 workers
    assert f"embedded target at http://127.0.0.1:{target_port} stopped" in text
