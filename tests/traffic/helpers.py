"""Shared helpers of the traffic tests: run real Locust headless, read its CSVs and the truth log."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from child_env import child_env

from loadgate.job import free_port

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = str(REPO / "locustfiles" / "locustfile.py")
TEST_KEY = "sk-loadgate-test-7f3c9e1d-NEVER-WRITE-ME"

# Deterministic model: 250 ms to first token, 25 ms between tokens, 12 tokens.
STEADY_MODEL = {"ttft": 0.25, "tokens_per_s": 40, "output_tokens": 12}


def mock_config(**overrides) -> dict:
    config = {
        "seed": 1,
        "models": {"loadgate-small": dict(STEADY_MODEL)},
        "capacity": {"slots": 1000, "queue": 1000, "batching_slowdown": 0},
    }
    config.update(overrides)
    return config


def run_locust(
    tmp: Path,
    host: str,
    *args: str,
    users: int = 4,
    run_time: str = "4s",
    env: dict | None = None,
    timeout: float = 60,
    user_classes: tuple[str, ...] = (),
    locustfile: str = LOCUSTFILE,
) -> tuple[subprocess.CompletedProcess, str]:
    """Headless Locust against host; returns (process, csv prefix). Later options override earlier ones
    (a second --think-time wins)."""
    prefix = str(tmp / "run")
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        locustfile,
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        run_time,
        "--host",
        host,
        "--csv",
        prefix,
        "--think-time",
        "0.05-0.1",
        "--poll-interval",
        "0.1s",
        "--stop-timeout",
        "10",
        "--only-summary",
        *args,
        *user_classes,
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=locust_env(env), capture_output=True, text=True, timeout=timeout)
    return proc, prefix


def read_rows(path: str) -> dict[str, dict[str, str]]:
    """CSV rows keyed "Type Name" ("Aggregated" for the total)."""
    with open(path, newline="") as f:
        return {(f"{r['Type']} {r['Name']}" if r["Type"] else r["Name"]): r for r in csv.DictReader(f)}


def read_failures(prefix: str) -> dict[tuple[str, str], int]:
    """{(Name, Error): occurrences} from PREFIX_failures.csv."""
    with open(f"{prefix}_failures.csv", newline="") as f:
        return {(r["Name"], r["Error"]): int(r["Occurrences"]) for r in csv.DictReader(f)}


def read_truth(path: Path) -> list[dict]:
    """The mock's truth log without the start-up probe's requests (X-Request-Id loadgate-probe-...), which
    loadgate sends before the run and, by design, does not count in Locust's stats."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if not str(r.get("x_request_id") or "").startswith("loadgate-probe-")]


def http_truth(rows: list[dict]) -> list[dict]:
    """Truth rows of real HTTP requests (job rows are summaries, not requests)."""
    return [r for r in rows if not str(r["path"]).startswith("job:")]


def locust_env(extra: dict | None = None) -> dict:
    return child_env(**(extra or {}))


def run_distributed(
    tmp: Path, host: str, workers: int, *args: str, users: int = 4, run_time: str = "5s", timeout: float = 90
) -> tuple[subprocess.CompletedProcess, list[str], str]:
    """A headless master plus `workers` worker processes on a free loopback port."""
    port = free_port()
    prefix = str(tmp / "run")
    common = [sys.executable, "-m", "locust", "-f", LOCUSTFILE]
    worker_procs = [
        subprocess.Popen(
            [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
            cwd=REPO,
            env=locust_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        master = subprocess.run(
            [
                *common,
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(port),
                "--expect-workers",
                str(workers),
                "--headless",
                "-u",
                str(users),
                "-r",
                str(users),
                "-t",
                run_time,
                "--host",
                host,
                "--csv",
                prefix,
                "--think-time",
                "0.05-0.1",
                "--poll-interval",
                "0.1s",
                "--stop-timeout",
                "3",
                "--only-summary",
                *args,
            ],
            cwd=REPO,
            env=locust_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        worker_errors = [w.communicate(timeout=30)[1] for w in worker_procs]
    finally:
        for w in worker_procs:
            if w.poll() is None:
                w.kill()
                w.wait()
    return master, worker_errors, prefix


def two_processes() -> tuple[str, ...]:
    """Locust's fork mode with two workers, its master bound to a free loopback port (never the
    default 5557, which a parallel run may hold)."""
    port = str(free_port())
    return (
        "--processes",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        port,
        "--master-port",
        port,
    )
