#!/usr/bin/env python3
"""How long the SLA gate takes on a two-hour full-history run, beyond Python + pandas start-up.

Synthesizes what `locust --csv PREFIX --csv-full-history` plus loadgate's plugin write for a 2 h run:
one history row per second for each of 10 HTTP rows + Aggregated, and for 6 LLM rows; then times
  1. `python -c "import pandas, yaml"`                        (start-up the gate cannot avoid)
  2. `python sla/check_sla.py PREFIX --thresholds T --baseline PREFIX --json ...` (whole gate)
and prints both, their difference and its ratio to the 1 s target (median of --repeat runs).

    python bench/bench_gate.py [--hours 2] [--repeat 5] [--keep DIR]
    python bench/bench_gate.py --tiny       # 36 s of history, one run each (the test's mode)

Needs only loadgate installed (pip install -e . in a clone).
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
STATS_HEADER = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    *PERCENTILES,
]
HISTORY_HEADER = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    *PERCENTILES,
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
]
HTTP_ROWS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/chat/completions/async"),
    ("GET", "/v1/chat/completions/async/{id}"),
    ("POST", "/v1/files"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/batches/{id}"),
    ("GET", "/v1/files/{id}/content"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{id}"),
    ("GET", "/health"),
]
LLM_ROWS = [(t, "/v1/chat/completions [stream]") for t in ("TTFT", "TTFB", "ITL", "TPOT", "E2E", "TOKENS/S")]
THRESHOLDS = """\
min_requests: 50
thresholds:
  Aggregated: ["fail_ratio < 1%", "rps >= 5", "p(95) < 3000 for 30s", "fail_ratio < 5% for 1m"]
  "POST /v1/chat/completions": ["p(95) < 3000", "p(99) < 8s", "avg < 1500", "p(95) < 4000 for 30s"]
  "GET /v1/models": ["p(99) < 1s", "rps > 0.1 for 1m"]
  "TTFT /v1/chat/completions [stream]": ["p(95) < 800", "p(95) < 1200 for 30s"]
  "ITL /v1/chat/completions [stream]": ["p(95) < 100 for 30s"]
regression:
  "POST /v1/chat/completions": ["p(95) <= baseline + 10%", "rps >= baseline - 5%"]
"""


def _percentiles(base: float, rng: random.Random) -> list[str]:
    spread = [1.0, 1.2, 1.35, 1.45, 1.8, 2.2, 2.8, 3.3, 4.5, 5.0, 5.2]
    jitter = rng.uniform(0.9, 1.1)
    return [f"{base * s * jitter:.3g}" for s in spread]


def synthesize(prefix: Path, hours: float, rng: random.Random) -> int:
    seconds = int(hours * 3600)
    t0 = int(time.time()) - seconds
    rows = 0
    for suffix, keys, aggregated in (("_stats", HTTP_ROWS, True), ("_llm_stats", LLM_ROWS, False)):
        keys = [*keys, ("", "Aggregated")] if aggregated else keys
        bases = {key: rng.uniform(5, 900) for key in keys}
        with open(f"{prefix}{suffix}_history.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HISTORY_HEADER)
            for second in range(seconds):
                for key in keys:
                    total = (second + 1) * 10
                    writer.writerow(
                        [
                            t0 + second,
                            20,
                            key[0],
                            key[1],
                            f"{rng.uniform(8, 12):2f}",
                            "0.000000",
                            *_percentiles(bases[key], rng),
                            total,
                            total // 500,
                            f"{bases[key]:.3g}",
                            bases[key] * 1.1,
                            1.0,
                            bases[key] * 6,
                            512,
                        ]
                    )
                    rows += 1
        with open(f"{prefix}{suffix}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(STATS_HEADER)
            total = seconds * 10
            for key in keys:
                writer.writerow(
                    [
                        key[0],
                        key[1],
                        total,
                        total // 500,
                        f"{bases[key]:.3g}",
                        bases[key] * 1.1,
                        1.0,
                        bases[key] * 6,
                        512,
                        10.0,
                        0.02,
                        *_percentiles(bases[key], rng),
                    ]
                )
    return rows


def timed(command: list[str], repeat: int) -> tuple[float, subprocess.CompletedProcess]:
    times, done = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        times.append(time.perf_counter() - start)
    return statistics.median(times), done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", help="write the synthetic run here and keep it")
    parser.add_argument("--tiny", action="store_true", help="36 s of history, one run each (smoke test)")
    args = parser.parse_args()
    if args.tiny:
        args.hours, args.repeat = 0.01, 1
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        prefix = folder / "twohours"
        rows = synthesize(prefix, args.hours, random.Random(7))
        thresholds = folder / "bench_thresholds.yaml"
        thresholds.write_text(THRESHOLDS, encoding="utf-8")
        startup, _ = timed([sys.executable, "-c", "import pandas, yaml"], args.repeat)
        gate_cmd = [
            sys.executable,
            "sla/check_sla.py",
            str(prefix),
            "--thresholds",
            str(thresholds),
            "--baseline",
            str(prefix),
            "--json",
            str(folder / "verdict.json"),
            "--quiet",
        ]
        whole, done = timed(gate_cmd, args.repeat)
        if done.returncode not in (0, 1):
            last = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
            print(f"bench: error: the gate exited {done.returncode}: {last}", file=sys.stderr)
            return 2
        size_mb = sum(p.stat().st_size for p in folder.glob("twohours*")) / 1e6
        beyond = whole - startup
        print(f"synthetic run: {args.hours:g} h, {rows} history rows, {size_mb:.1f} MB of CSV")
        print(f"{'python + import pandas, yaml':<34}{startup:8.3f} s")
        print(f"{'check_sla.py (whole gate)':<34}{whole:8.3f} s   (exit {done.returncode})")
        print(
            f"{'gate beyond start-up':<34}{beyond:8.3f} s   target < 1.000 s   ratio {beyond / 1.0:.2f}x of target"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
