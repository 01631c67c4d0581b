"""Helpers shared by the web UI tests: free ports, a clean environment, Locust subprocess handling."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from child_env import child_env

from loadgate.job import free_port  # noqa: F401  (re-exported for the web UI tests)

REPO = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Locust/loadgate settings or an API key, plus `extra`."""
    return child_env(PYTHONUNBUFFERED="1", **extra)


def wait_for_log(log: Path, pattern: str, process: subprocess.Popen, timeout_s: float) -> re.Match:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if match := re.search(pattern, text):
            return match
        if process.poll() is not None:
            pytest.fail(f"locust exited with {process.returncode} before {pattern!r}:\n{text[-3000:]}")
        time.sleep(0.1)
    pytest.fail(
        f"no {pattern!r} in locust's log within {timeout_s}s:\n{log.read_text(errors='replace')[-3000:]}"
    )


def stop(process: subprocess.Popen) -> int:
    """Locust's graceful shutdown (SIGTERM fires `quitting` and `quit`), killed if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    return process.returncode


def processes_args(count: int = 2) -> list[str]:
    """`--processes N` on a free master port: the default 5557 would collide with parallel runs."""
    port = str(free_port())
    return ["--processes", str(count), "--master-bind-port", port, "--master-port", port]


def pids_with_args(*args: str) -> list[int]:
    """Pids of live processes whose command line contains all of `args` consecutively (our own runs)."""
    wanted = "\0".join(args).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        if wanted in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found
