"""Shared helpers of the load-shape runs: headless Locust (or the job) against the mock, and the files they
leave (run them under the shared lock: flock /tmp/loadgate-load.lock pytest tests/loadshapes)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from child_env import child_env

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = str(REPO / "loadgate" / "harness" / "locustfile.py")

# No latency: what a rate run sends is what the truth log counts.
ZERO_LATENCY = {
    "models": {"loadgate-small": {"ttft": 0, "tokens_per_s": 0, "output_tokens": 16}},
    "capacity": {"slots": 10000, "queue": 10000, "batching_slowdown": 0},
}
# A known capacity: 4 slots; every answer 16 tokens, the first at once, then 16 tokens/s, so a request holds
# its slot 15/16 s and the mock sustains 4 / (15/16) = 4.27 requests/s (the prompts ask for >= 16 tokens).
CAPACITY_RPS = 4 / (15 / 16)
KNOWN_CAPACITY = {
    "models": {
        "loadgate-small": {"ttft": 0, "prefill_tokens_per_s": 0, "tokens_per_s": 16, "output_tokens": 16}
    },
    "capacity": {"slots": 4, "queue": 100000, "batching_slowdown": 0},
}
CHAT_ONLY = ("--batch-weight", "0", "--models-weight", "0")


def run_locust(
    tmp: Path, host: str, *args: str, users: int = 10, timeout: float = 120, prefix_name: str = "run"
) -> tuple[subprocess.CompletedProcess, str]:
    prefix = str(tmp / prefix_name)
    cmd = [
        sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--headless", "--host", host,
        "-u", str(users), "-r", str(users), "--csv", prefix, "--csv-full-history", "--only-summary",
        "--models", "loadgate-small", "--embedded-target", "off", "--stop-timeout", "5", *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=tmp, env=child_env(), capture_output=True, text=True, timeout=timeout)
    return done, prefix


def run_job(tmp: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "loadgate", "run", "--results", str(tmp / "results"), *args]
    return subprocess.run(cmd, cwd=tmp, env=child_env(), capture_output=True, text=True, timeout=timeout)


def read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def read_truth(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def chat_requests(truth: list[dict], start: float, end: float) -> list[float]:
    """Receive times of the chat requests the mock got within [start, end] (each is one arrival)."""
    return sorted(
        t["t_received"]
        for t in truth
        if t["path"] == "/v1/chat/completions" and start <= t["t_received"] <= end
    )


def history(prefix: str) -> list[dict[str, str]]:
    """The Aggregated rows of PREFIX_stats_history.csv, in time order."""
    with open(f"{prefix}_stats_history.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
