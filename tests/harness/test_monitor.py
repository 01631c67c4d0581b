"""The generator watches itself: a blocked event loop shows as lag, a warning while the run goes on, and
a gate row that fails; an idle one does not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from child_env import child_env

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
WARNING = "the load generator is late: event-loop lag p99"
LIMIT_MS = 25  # far above a quiet loop's lag on a busy shared CI host (9 ms seen), far below a 100 ms stall


def run_locustfile(
    tmp_path: Path, locustfile: str, env: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess, dict]:
    """A short headless run of one of this folder's locustfiles, no warm-up; its LLM summary."""
    prefix = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(HERE / locustfile), "--headless", "--csv", str(prefix),
         "--warmup", "0s", "--only-summary", *args],
        cwd=tmp_path, env=child_env(**env), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done, json.loads(Path(f"{prefix}_llm_summary.json").read_text())


def run(tmp_path: Path, busy_ms: int) -> tuple[subprocess.CompletedProcess, dict]:
    return run_locustfile(
        tmp_path, "busy_locustfile.py", {"BUSY_MS": str(busy_ms)}, "-u", "2", "-r", "2", "-t", "7s",
        "--lag-limit", f"{LIMIT_MS}ms",
    )  # fmt: skip


def gate(tmp_path: Path) -> int:
    thresholds = tmp_path / "lag.yaml"
    thresholds.write_text(f'thresholds:\n  LLM: ["loadgen_lag_p99 < {LIMIT_MS}ms"]\n')
    return subprocess.run(
        [sys.executable, "-m", "loadgate", "gate", str(tmp_path / "run"), "--thresholds", str(thresholds)],
        capture_output=True, text=True, timeout=60,
    ).returncode  # fmt: skip


@pytest.mark.parametrize("busy_ms, late", [(0, False), (100, True)])
def test_lag_monitor_sees_a_blocked_loop_and_only_then(tmp_path, busy_ms, late):
    done, summary = run(tmp_path, busy_ms)
    if not late and (summary["loadgen_lag_p99"] or 0) >= LIMIT_MS:
        # once more: the hypervisor of this shared machine held back its CPUs for up to 11% of a 30 s run
        # (steal, measured by bench/bench_streaming.py), so a quiet loop can read late once; a monitor
        # that reads every loop late fails both runs
        done, summary = run(tmp_path, busy_ms)
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary["loadgen_lag_samples"] > 25  # ~20 a second; 100 ms stalls stretch the gaps (35 seen)
    if late:
        assert summary["loadgen_lag_p99"] > 2 * LIMIT_MS  # p99 a 3-digit bucket: within 0.5% of the max
        assert summary["loadgen_lag_max"] >= summary["loadgen_lag_p99"] * 0.995
        assert WARNING in done.stderr  # logged while the run went on (the check runs every 5 s)
        assert gate(tmp_path) == 1
    else:
        assert summary["loadgen_lag_p99"] < LIMIT_MS
        assert WARNING not in done.stderr
        assert gate(tmp_path) == 0
    meta = json.loads((tmp_path / "run_loadgate.json").read_text())
    assert meta["loadgen_lag_p99"] == summary["loadgen_lag_p99"]
    assert "load generator: event-loop lag p50" in done.stderr


def test_start_warms_the_module_cache_that_locusts_stop_reads():
    """runner.stop() calls inspect.stack(); the monitor's start has already resolved every loaded module's
    file, so that call does not block the loop at the stop with streams in flight."""
    import gc
    import inspect
    import os

    import locust.runners

    from loadgate.harness.monitor import LoadgenMonitor

    thresholds, monitor = gc.get_threshold(), LoadgenMonitor()
    inspect.modulesbyfile.clear()  # (and the index it is rebuilt from: earlier tests may have filled both)
    inspect._filesbymodname.clear()  # type: ignore[attr-defined]
    try:
        monitor.start()
        assert inspect.modulesbyfile[os.path.realpath(locust.runners.__file__)] == "locust.runners"
    finally:
        monitor.stop()
        gc.callbacks.remove(monitor._gc_callback)
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_users_own_objects_are_frozen_once_spawned_so_no_collection_walks_them(tmp_path):
    """2 users hold 40,000 objects once built and add 5,000 a second each. Frozen at the test's start
    only, the young generation reaches its 50,000 threshold a second or two into the run and the collector
    walks every user's objects with the loop blocked (~60 ms at 300 streams); frozen again once spawned,
    the run's 3 s add 30,000 at most and no collection runs."""
    done, summary = run_locustfile(
        tmp_path, "heap_locustfile.py", {"HEAP_AT_START": "20000", "HEAP_PER_TASK": "500"},
        "-u", "2", "-r", "4", "-t", "3s",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary["loadgen_gc_pause_max"] == 0  # no collection at all in the run


def test_settle_freezes_what_the_users_hold_and_the_stop_unfreezes_it():
    import gc

    from loadgate.harness.monitor import LoadgenMonitor

    thresholds, monitor = gc.get_threshold(), LoadgenMonitor()
    try:
        before = gc.get_freeze_count()
        monitor.settle()
        assert gc.get_freeze_count() == before  # not started: nothing to do
        monitor.start()
        frozen = gc.get_freeze_count()
        held = [[] for _ in range(1000)]
        monitor.settle()
        assert gc.get_freeze_count() >= frozen + len(held)
        assert gc.get_count()[0] < 100
        monitor.stop()
        assert gc.get_freeze_count() == 0
    finally:
        monitor.stop()
        gc.callbacks.remove(monitor._gc_callback)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
