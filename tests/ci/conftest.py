"""Fixtures of the ci tests: the tiny target, and running Locust / the job as real subprocesses."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from child_env import child_env

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def repo_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: the repo importable, no stray loadgate/locust settings."""
    return child_env(**extra)


def run_locust(args: list[str], cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "locust", *args],
        cwd=cwd,
        env=repo_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def tiny_target() -> Iterator:
    """Factory: tiny_target(max_inflight=K, delay_ms=D) -> URL of a started tests/ci/target.py."""
    procs: list[subprocess.Popen] = []

    def start(max_inflight: int = 1000, delay_ms: float = 20) -> str:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "target.py"),
                "--max-inflight",
                str(max_inflight),
                "--delay-ms",
                str(delay_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line
        return line.split()[-1]

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
