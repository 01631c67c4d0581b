"""loadgate.live_sla: the threshold file evaluated during real Locust runs (tests/sla/live_locustfile.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from .conftest import HERE, REPO
from .target import Target

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def target():
    server = Target().start()
    yield server
    server.stop()


def live_run(
    target: Target, users: str, run_time: str, *extra: str
) -> tuple[subprocess.CompletedProcess, float]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(HERE / "live_locustfile.py"),
        "--headless",
        "-u",
        "3",
        "-r",
        "3",
        "-t",
        run_time,
        "--host",
        target.url,
        "--only-summary",
        "--stop-timeout",
        "2",
        "--sla-interval",
        "1s",
        *extra,
    ]
    env = {**os.environ, "SLA_TEST_USERS": users}
    start = time.monotonic()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=80)
    return done, time.monotonic() - start


def test_abort_stops_the_run_at_the_first_breach_with_exit_1(target, write_yaml):
    sla = write_yaml("thresholds:\n  Aggregated: ['fail_ratio < 1%']\n")
    done, took = live_run(target, "mixed", "40s", "--sla", str(sla), "--sla-abort")
    assert done.returncode == 1
    assert took < 25  # stopped long before its 40 s run time
    assert 'SLA breach: FAIL fail_ratio of "Aggregated": observed ' in done.stderr
    assert "SLA breached; stopping the run (--sla-abort)" in done.stderr
    assert "SLA BREACHED: 1 failed, 0 passed, 0 skipped" in done.stderr


def test_thresholds_that_hold_leave_exit_0(target, write_yaml):
    sla = write_yaml(
        "thresholds:\n  'GET /fast': ['p(95) < 5s', 'fail_ratio == 0', 'rps > 1', 'p(95) < 5s for 1s']\n"
        "  'GET /other': {rules: ['avg < 1'], optional: true}\n"
    )
    done, _ = live_run(target, "fast", "5s", "--sla", str(sla))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SLA MET: 0 failed, 4 passed, 1 skipped" in done.stderr
    assert "SLA breach" not in done.stderr


def test_breach_without_abort_runs_to_the_end_and_exits_1(target, write_yaml):
    sla = write_yaml("thresholds:\n  'GET /fast': ['p(50) > 5s', 'requests > 0']\n")
    done, took = live_run(target, "fast", "4s", "--sla", str(sla))
    assert done.returncode == 1
    assert took >= 4
    assert 'SLA breach: FAIL p(50) of "GET /fast": observed ' in done.stderr
    assert "stopping the run" not in done.stderr
    assert "SLA BREACHED: 1 failed, 1 passed, 0 skipped" in done.stderr


def test_for_rule_breach_is_judged_on_live_window_figures(target, write_yaml):
    target.phase_ms = 120.0
    sla = write_yaml("thresholds:\n  'GET /phase': ['p(95) < 50 for 2s']\n")
    done, _ = live_run(target, "phase", "7s", "--sla", str(sla))
    assert done.returncode == 1, done.stderr[-3000:]
    final = done.stderr.split("loadgate live SLA (final):", 1)[1]
    assert "FAIL    GET /phase  p(95)   violated for " in final


def test_bad_threshold_file_exits_2_before_the_run(target, tmp_path):
    missing = tmp_path / "nope.yaml"
    done, took = live_run(target, "fast", "30s", "--sla", str(missing))
    assert done.returncode == 2
    assert (
        f'loadgate live SLA: error: {missing}: threshold file not found (got "{missing}"); pass --sla FILE'
    ) in done.stderr
    assert took < 20
