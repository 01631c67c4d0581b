#!/usr/bin/env python3
"""How close loadgate's LLM figures are to the mock's ground truth, beside plain Locust bucketing.

1. Starts the mock (lognormal TTFT, 40 tok/s, varied lengths) with a truth log and runs loadgate's shipped
   ChatUser (streaming only, single-turn) headless against it for --duration seconds; the stats reset
   after --warmup seconds (so each user's first request, which also opens its connection, is left out).
2. From the truth log (the mock's own send times) computes exact TTFT/ITL/TPOT/E2E per request, for the
   requests that finished after the reset.
3. Prints, per metric and percentile:
   - truth           exact percentile of the mock's values
   - loadgate CSV    what `PREFIX_llm_stats.csv` says (client-measured, 3-significant-digit buckets)
   - harness err     loadgate CSV vs truth (measurement + storage; TTFT/E2E include the loopback wait)
   - storage err     the truth values stored with loadgate's bucketing vs exact (storage alone)
   - locust err      the same values stored with Locust's own bucketing vs exact

    python bench/bench_accuracy.py [--duration 20] [--users 8] [--warmup 2] [--keep DIR]
    python bench/bench_accuracy.py --tiny      # a few seconds (the test's mode)

Needs only loadgate installed (pip install -e . in a clone).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import locust.stats
from bench_streaming import clean_env
from locust.stats import RequestStats

import loadgate
from loadgate.harness import precision
from loadgate.mock.process import MockProcess

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(loadgate.__file__).parent / "harness" / "locustfile.py"

PERCENTILES = (("50%", 0.5), ("90%", 0.9), ("95%", 0.95), ("99%", 0.99))
METRICS = ("TTFT", "ITL", "TPOT", "E2E")
MOCK = {
    "seed": 7,
    "models": {
        "loadgate-small": {
            "ttft": {"median": 0.3, "p95": 0.9},
            "tokens_per_s": 40,
            "output_tokens": {"median": 40, "p95": 120, "max": 300},
        }
    },
    "capacity": {"slots": 1000, "queue": 1000, "batching_slowdown": 0},
}


def exact_percentile(values: list[float], fraction: float) -> float:
    """Locust's rank rule (the value below which `fraction` of the samples fall) on exact values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def locust_bucketing() -> Callable[[float], float]:
    """Locust's own bucketing (importing loadgate.harness swapped in loadgate's)."""
    precision.uninstall()
    try:
        return locust.stats.bucket_response_time
    finally:
        precision.install()


def stored_percentile(values: list[float], fraction: float, bucketing: Callable[[float], float]) -> float:
    stats = RequestStats()
    original = locust.stats.bucket_response_time
    locust.stats.bucket_response_time = bucketing
    try:
        for v in values:
            stats.log_request("X", "x", v, 0)
    finally:
        locust.stats.bucket_response_time = original
    return stats.get("x", "X").get_response_time_percentile(fraction)


def truth_values(path: Path, since: float | None) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for line in path.read_text().splitlines():
        t = json.loads(line)
        if t["path"] != "/v1/chat/completions" or t["status"] != 200 or t["error"] or not t["t_chunks"]:
            continue
        if since is not None and t["t_done"] < since:
            continue
        chunks = t["t_chunks"]
        out["TTFT"].append((chunks[0] - t["t_received"]) * 1000)
        out["E2E"].append((chunks[-1] - t["t_received"]) * 1000)
        if len(chunks) > 1:
            out["TPOT"].append((chunks[-1] - chunks[0]) * 1000 / (len(chunks) - 1))
            out["ITL"] += [(b - a) * 1000 for a, b in zip(chunks, chunks[1:], strict=False)]
    return out


def run(
    workdir: Path, duration: int, users: int, warmup: float
) -> tuple[dict[str, list[float]], dict[str, dict[str, str]]]:
    truth_log = workdir / "truth.jsonl"
    prefix = workdir / "run"
    with MockProcess(MOCK, truth_log=truth_log) as mock:
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{duration}s",
            "--host",
            mock.url,
            "--csv",
            str(prefix),
            "--models",
            "loadgate-small",
            "--chat-weight",
            "1",
            "--batch-weight",
            "0",
            "--models-weight",
            "0",
            "--stream-ratio",
            "1",
            "--multi-turn-ratio",
            "0",
            "--think-time",
            "0.1",
            "--warmup",
            f"{warmup:g}s",
            "--stop-timeout",
            "30",
            "--only-summary",
            "ChatUser",
        ]
        done = subprocess.run(
            cmd, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=duration + 90
        )
    llm_csv = Path(f"{prefix}_llm_stats.csv")
    if not llm_csv.exists():
        last = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise SystemExit(f"bench: error: Locust (exit {done.returncode}) wrote no {llm_csv.name}: {last}")
    if done.returncode != 0:
        print(f"note: Locust exited {done.returncode} (failed requests?); the figures below still compare")
    with open(llm_csv, newline="") as f:
        rows = {r["Type"]: r for r in csv.DictReader(f) if r["Name"] == "/v1/chat/completions [stream]"}
    reset_at = (
        json.loads(Path(f"{prefix}_loadgate.json").read_text()).get("stats_reset_at") if warmup else None
    )
    truth = truth_values(truth_log, reset_at)
    missing = [m for m in METRICS if m not in rows or not truth[m]]
    if missing:
        raise SystemExit(
            f"bench: error: no {'/'.join(missing)} samples; run longer (--duration) or with more users"
        )
    return truth, rows


def pct(a: float, b: float) -> str:
    return f"{(a - b) / b * 100:+7.2f}%" if b else "    n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds before the stats reset (default 2)"
    )
    parser.add_argument("--keep", type=Path, help="keep the run's files in this folder")
    parser.add_argument("--tiny", action="store_true", help="4 users for 4 s (smoke test)")
    args = parser.parse_args()
    if args.tiny:
        args.duration, args.users, args.warmup = 4, 4, 1.0
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        truth, rows = run(workdir, args.duration, args.users, args.warmup)

    print(
        f"{'metric':6} {'pct':>4} {'n':>6} {'truth ms':>10} {'loadgate':>10} {'harness err':>12} "
        f"{'storage err':>12} {'locust err':>11}"
    )
    worst = {"harness": 0.0, "storage": 0.0, "locust": 0.0}
    for metric in METRICS:
        values = truth[metric]
        for column, fraction in PERCENTILES:
            exact = exact_percentile(values, fraction)
            ours = stored_percentile(values, fraction, precision.bucket_3_sig_digits)
            theirs = stored_percentile(values, fraction, locust_bucketing())
            measured = float(rows[metric][column])
            for key, v in (("harness", measured), ("storage", ours), ("locust", theirs)):
                worst[key] = max(worst[key], abs(v - exact) / exact if exact else 0.0)
            print(
                f"{metric:6} {column:>4} {len(values):6d} {exact:10.2f} {measured:10.2f} {pct(measured, exact):>12} "
                f"{pct(ours, exact):>12} {pct(theirs, exact):>11}"
            )
    print()
    print(
        f"worst storage error: loadgate {worst['storage'] * 100:.2f}%  vs  Locust {worst['locust'] * 100:.2f}%  "
        f"(ratio {worst['locust'] / worst['storage'] if worst['storage'] else math.inf:.1f}x)"
    )
    print(f"worst harness-vs-truth error (loadgate CSV): {worst['harness'] * 100:.2f}%")


if __name__ == "__main__":
    main()
