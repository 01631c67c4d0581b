"""--server-metrics end to end through the job: real mock (its /metrics), real Locust, the scraper, the gate.

The mock has 2 slots and 10 users send back to back (think time 0, one request in flight each), so the
mock's queue holds at most 10 - 2 = 8 requests: the scraped peak of mock_requests_waiting is 8 and of
mock_requests_running 2 (each request holds a slot 50 ms; 10 requests share 2 slots, so a request
waits ~200 ms and nearly every scrape sees the queue full).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from loadgate.job import free_port

from .test_job import job, rules

pytestmark = pytest.mark.timeout(120)

SLOTS, USERS = 2, 10
MOCK = f"""\
models:
  m: {{ttft: 0.05, tokens_per_s: 0, output_tokens: 4}}
capacity: {{slots: {SLOTS}, queue: 100}}
"""
LOAD = [
    "--users", str(USERS), "--spawn-rate", "100", "--think-time", "0", "--profile", "none",
    "--chat-weight", "1", "--batch-weight", "0", "--models-weight", "0",
    "--run-time", "4s", "--warmup", "1s", "--server-metrics-interval", "200ms",
]  # fmt: skip


REFUSED_TIMES = ["--run-time", "3s", "--warmup", "1s", "--server-metrics-interval", "1s"]


def series(path: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["timestamp", "metric", "labels", "value"]
    for _stamp, metric, labels, value in rows[1:]:
        out.setdefault(f"{metric}{{{labels}}}" if labels else metric, []).append(float(value))
    return out


def test_auto_scrapes_the_mock_and_the_gate_judges_its_queue(tmp_path):
    mock = tmp_path / "mock.yaml"
    mock.write_text(MOCK)
    thresholds = rules(
        tmp_path,
        "thresholds:\n  Aggregated: ['fail_ratio < 1%']\n  SERVER:\n"
        f"    - max(mock_requests_waiting) == {USERS - SLOTS}\n"
        f"    - max(mock_requests_running) <= {SLOTS}\n"
        "    - 'max(mock_slots_in_use{pool=\"chat\"}) == 2'\n",
    )
    done = job(
        ["--mock-config", str(mock), "--server-metrics", "auto", "--thresholds", thresholds, *LOAD], tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = tmp_path / "results"
    found = series(results / "loadgate_server_metrics.csv")
    assert max(found["mock_requests_waiting"]) == USERS - SLOTS  # the queue the config implies, exactly
    assert max(found["mock_requests_running"]) == SLOTS
    assert found['mock_slots{pool="chat"}'][0] == SLOTS
    assert found["mock_tokens_generated_total"] == sorted(found["mock_tokens_generated_total"])
    meta = json.loads((results / "loadgate_loadgate.json").read_text())
    assert meta["server_metrics_url"].endswith("/metrics") and meta["server_metrics_failures"] == 0
    assert meta["server_metrics_scrapes"] == len(found["mock_requests_waiting"]) >= 10
    summary = json.loads((results / "loadgate_llm_summary.json").read_text())
    assert (summary["server_metrics_scrapes"], summary["server_metrics_failures"]) == (
        meta["server_metrics_scrapes"],
        0,
    )
    verdict = json.loads((results / "verdict.json").read_text())
    assert [(v["row"], v["metric"], v["status"]) for v in verdict["verdicts"] if v["row"] == "SERVER"] == [
        ("SERVER", "max(mock_requests_waiting)", "PASS"),
        ("SERVER", "max(mock_requests_running)", "PASS"),
        ("SERVER", 'max(mock_slots_in_use{pool="chat"})', "PASS"),
    ]
    truth = [json.loads(line)["path"] for line in (results / "mock_truth.jsonl").read_text().splitlines()]
    assert "/metrics" not in truth  # the scrapes are not load
    report = (results / "report.html").read_text()
    assert "Server metrics" in report and "mock_requests_waiting" in report


def test_a_refused_scrape_is_logged_once_counted_and_the_run_goes_on(tmp_path):
    secret = "s3cret-metrics-pass"
    url = f"http://scraper:{secret}@127.0.0.1:{free_port()}/metrics"  # nothing listens there
    thresholds = rules(tmp_path, "thresholds:\n  SERVER: ['max(mock_requests_waiting) < 100']\n")
    done = job(["--server-metrics", url, "--thresholds", thresholds, *LOAD[:-6], *REFUSED_TIMES], tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]  # no series: the SERVER row fails closed
    said = [line for line in done.stderr.splitlines() if "server metrics: scraping" in line]
    assert len(said) == 1
    assert said[0].endswith(
        f"loadgate: server metrics: scraping http://127.0.0.1:{url.rsplit(':', 1)[1].split('/')[0]}/metrics "
        "failed (connection refused); further failures are only counted, the run goes on"
    )
    results = tmp_path / "results"
    meta = json.loads((results / "loadgate_loadgate.json").read_text())
    assert (
        meta["server_metrics_scrapes"] == 0 and meta["server_metrics_failures"] >= 3
    )  # every second, and at the stop
    stats = (results / "loadgate_stats.csv").read_text().splitlines()
    assert int(stats[-1].split(",")[2]) > 0  # the load ran: the Aggregated row's request count
    assert (results / "loadgate_server_metrics.csv").read_text() == "timestamp,metric,labels,value\n"
    verdict = json.loads((results / "verdict.json").read_text())
    assert [v["reason"] for v in verdict["verdicts"] if v["row"] == "SERVER"] == [
        "no data: no series mock_requests_waiting in loadgate_server_metrics.csv; series present: none"
    ]
    for path in [*results.iterdir(), *tmp_path.glob("*.log")]:
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), path
    assert secret not in done.stderr + done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--server-metrics", "vllm:8000/metrics"],
            "--server-metrics: not an http(s) URL (got 'vllm:8000/metrics'); use auto, off or an http(s) URL, "
            "e.g. http://vllm:8000/metrics",
        ),
        (
            ["--server-metrics-filter", "vllm:(num"],
            "--server-metrics-filter: not a regular expression (missing ), unterminated subpattern at "
            "position 5) (got 'vllm:(num'); use e.g. default,vllm:.*_total",
        ),
        (
            ["--server-metrics-interval", "0s"],
            "--server-metrics-interval: must be > 0 (got '0s'); use e.g. 40s, 5m, 1h30m or seconds",
        ),
    ],
)
def test_bad_settings_exit_2_before_any_load(tmp_path, args, message):
    done = job(args, tmp_path, timeout=30)
    assert (done.returncode, done.stderr) == (2, f"run_load_gate: error: {message}\n")
    assert not (tmp_path / "results").exists()


def test_a_bad_server_rule_stops_the_job_before_any_load(tmp_path):
    thresholds = rules(tmp_path, "thresholds:\n  SERVER:\n    - max(mock_requests_waiting) < 10 for 5s\n")
    done = job(["--thresholds", thresholds], tmp_path, timeout=30)
    assert done.returncode == 2
    assert done.stderr == (
        f"run_load_gate: error: {thresholds}:3: row SERVER: bad value '10 for 5s' (got "
        "\"max(mock_requests_waiting) < 10 for 5s\"); SERVER rules take a plain number: no baseline, no 'for'\n"
    )
    assert not (tmp_path / "results").exists()
