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

from .conftest import REPO

WARMUP_S = 3


@pytest.fixture(scope="module")
def harness_run(tmp_path_factory: pytest.TempPathFactory) -> str:
    from loadgate.mock.process import MockProcess

    prefix = str(tmp_path_factory.mktemp("harness") / "run")
    with MockProcess(config=str(REPO / "loadgate/mock/profiles/zero-latency.yaml")) as mock:
        done = subprocess.run(
            [sys.executable, "-m", "locust", "-f", "locustfiles/locustfile.py", "--headless", "-u", "4", "-r", "4",
             "-t", "9s", "--host", mock.url, "--csv", prefix, "--csv-full-history", "--warmup", f"{WARMUP_S}s",
             "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING"],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=90)
    assert Path(prefix + "_loadgate.json").is_file(), done.stderr[-3000:]
    return prefix


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
    assert err == (f"check_sla: error: {harness_run}_loadgate.json:warmup_s: the run warmed up less than the "
                   f"thresholds' warmup (60s) (got {float(WARMUP_S)}); re-run with --warmup 60s or longer\n")
