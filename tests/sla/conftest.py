"""Fixtures for the gate's tests: real short Locust runs against a stdlib target, started in parallel."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .target import Target

HERE = Path(__file__).parent
REPO = HERE.parent.parent
LOCUSTFILE = HERE / "plain_locustfile.py"
FIXTURES = HERE / "fixtures"
PHASE_SWITCH_S = 4.0  # the phase run's /phase latency goes from 0 to PHASE_SLOW_MS after this many seconds
PHASE_SLOW_MS = 150.0


@dataclass
class LocustRun:
    prefix: str
    returncode: int
    stderr: str


def _start_locust(prefix: Path, host: str, users: str, run_time: str, full_history: bool) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        "5",
        "-r",
        "5",
        "-t",
        run_time,
        "--host",
        host,
        "--csv",
        str(prefix),
        "--only-summary",
        "--stop-timeout",
        "2",
        "--loglevel",
        "WARNING",
    ]
    if full_history:
        command.append("--csv-full-history")
    env = {**os.environ, "SLA_TEST_USERS": users}
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LocustRun]:
    """Four real runs at once: mixed (full history), mixed without full history, phase (for windows), idle."""
    base = tmp_path_factory.mktemp("runs")
    targets = {name: Target().start() for name in ("mixed", "plain", "phase", "idle")}
    plan = {
        "mixed": ("mixed", "8s", True),
        "plain": ("mixed", "8s", False),
        "phase": ("phase", "12s", True),
        "idle": ("idle", "2s", True),
    }
    switch = threading.Timer(PHASE_SWITCH_S, lambda: setattr(targets["phase"], "phase_ms", PHASE_SLOW_MS))
    try:
        procs = {name: _start_locust(base / name, targets[name].url, *spec) for name, spec in plan.items()}
        switch.start()
        results = {}
        for name, proc in procs.items():
            _, stderr = proc.communicate(timeout=60)
            results[name] = LocustRun(str(base / name), proc.returncode, stderr)
    finally:
        switch.cancel()
        for target in targets.values():
            target.stop()
    for name, result in results.items():
        assert Path(result.prefix + "_stats.csv").is_file(), (
            f"{name} run wrote no CSV: {result.stderr[-2000:]}"
        )
        if (
            name != "idle"
        ):  # a starved machine can leave Locust's 1 s CSV writer behind: fail loudly, not oddly
            with open(result.prefix + "_stats.csv", encoding="utf-8") as handle:
                assert len(handle.readlines()) > 2, (
                    f"{name} run wrote no request rows: {result.stderr[-2000:]}"
                )
    return results


@pytest.fixture
def gate(capsys: pytest.CaptureFixture[str]):
    """Run check_sla in-process: returns (exit code, stdout, stderr)."""
    from loadgate.gate import main

    def run(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        old = {k: os.environ.get(k) for k in (env or {})}
        os.environ.update(env or {})
        try:
            code = main([str(a) for a in argv])
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def write_yaml(tmp_path: Path):
    counter = iter(range(10_000))

    def write(text: str) -> Path:
        path = tmp_path / f"thresholds_{next(counter)}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
