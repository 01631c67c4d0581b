"""End to end with the real harness: locustfiles/locustfile.py (loadgate.plugin) against the embedded mock,
with --warmup, then the gate on what it wrote (warm-up record, LLM CSVs and summary)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import HERE, REPO

WARMUP_S = 3
LIVE_SLA = f"""\
warmup: {WARMUP_S}s
min_requests: 1
thresholds:
  Aggregated: ["fail_ratio < 1%", "fail_ratio < 50% for 2s"]
  "POST /v1/chat/completions": ["p(95) < 1m"]
  "TTFT /v1/chat/completions [stream]": ["p(95) < 30s", "p(95) < 30s for 2s"]
  "TOKENS/S /v1/chat/completions [stream]": ["p(50) > 0"]
  LLM: ["tokens_per_s > 0", "lost_jobs == 0"]
"""


@pytest.fixture(scope="module")
def harness_live(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, subprocess.CompletedProcess]:
    """One real run: loadgate's users + plugin + live SLA against the mock, 9 s with a 3 s warm-up."""
    from loadgate.mock.process import MockProcess

    folder = tmp_path_factory.mktemp("harness")
    prefix = str(folder / "run")
    (folder / "live.yaml").write_text(LIVE_SLA, encoding="utf-8")
    with MockProcess(config=str(REPO / "loadgate/mock/profiles/zero-latency.yaml")) as mock:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(HERE / "harness_locustfile.py"),
                "--headless",
                "-u",
                "4",
                "-r",
                "4",
                "-t",
                "9s",
                "--host",
                mock.url,
                "--csv",
                prefix,
                "--csv-full-history",
                "--warmup",
                f"{WARMUP_S}s",
                "--only-summary",
                "--stop-timeout",
                "5",
                "--loglevel",
                "WARNING",
                "--sla",
                str(folder / "live.yaml"),
                "--sla-interval",
                "1s",
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO / "locustfiles")},
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert Path(prefix + "_loadgate.json").is_file(), done.stderr[-3000:]
    return prefix, done


@pytest.fixture(scope="module")
def harness_run(harness_live) -> str:
    return harness_live[0]


def test_live_sla_on_the_real_harness_judges_http_and_llm_rows(harness_live):
    _, done = harness_live
    assert done.returncode == 0, done.stderr[-3000:]
    final = done.stderr.split("loadgate live SLA (final):", 1)[1]
    assert "SLA MET: 0 failed, 8 passed, 0 skipped" in final
    assert "PASS    LLM" in final and "TOKENS/S /v1/chat/completions [stream]" in final


@pytest.mark.timeout(120)
def test_gate_on_a_real_warmed_up_harness_run(harness_run, gate, write_yaml, tmp_path):
    meta = json.loads(Path(harness_run + "_loadgate.json").read_text(encoding="utf-8"))
    assert meta["warmup_s"] == WARMUP_S and meta["stats_reset_at"] is not None
    thresholds = write_yaml(
        f"warmup: {WARMUP_S}s\n"
        "thresholds:\n"
        "  Aggregated: ['fail_ratio < 1%', 'fail_ratio < 50% for 2s', 'requests >= 10']\n"
        "  'POST /v1/chat/completions': ['p(95) < 1m']\n"
        "  'TTFT /v1/chat/completions [stream]': ['p(95) < 30s', 'p(95) < 30s for 2s']\n"
        "  LLM: ['tokens_per_s > 0', 'lost_jobs == 0']\n"
    )
    code, out, err = gate(harness_run, "--thresholds", thresholds, "--json", tmp_path / "v.json")
    assert (code, err) == (0, ""), out
    assert "note:" not in out  # the plugin rewrote the final CSVs: nothing stale, nothing disagrees
    with open(harness_run + "_stats_history.csv", newline="", encoding="utf-8") as handle:
        stamps = [int(r["Timestamp"]) for r in csv.DictReader(handle)]
    assert min(stamps) < meta["stats_reset_at"]  # the file holds warm-up rows, which the gate left out
    verdicts = json.loads((tmp_path / "v.json").read_text(encoding="utf-8"))["verdicts"]
    assert {v["status"] for v in verdicts} == {"PASS"} and len(verdicts) == 8


def test_gate_refuses_a_run_warmed_up_less_than_the_thresholds_say(harness_run, gate, write_yaml):
    thresholds = write_yaml("warmup: 1m\nthresholds:\n  Aggregated: ['fail_ratio < 1%']\n")
    code, _, err = gate(harness_run, "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f"check_sla: error: {harness_run}_loadgate.json:warmup_s: the run warmed up less than the "
        f"thresholds' warmup (60s) (got {float(WARMUP_S)}); re-run with --warmup 60s or longer\n"
    )
