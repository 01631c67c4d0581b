#!/usr/bin/env python3
"""What loadgate's ChatUser costs in throughput against a plain Locust FastHttpUser.

Both run headless for the same time and users against the zero-latency mock
(loadgate/mock/profiles/zero-latency.yaml: 16-token answers, no delay), so the client is the
bottleneck. The mock is pinned to CPU 0 and Locust to CPU 1 where `taskset` exists and the machine has
2+ CPUs. Two pairs, one per mode:
  non-stream  plain: client.post(...) + len(content)   vs  loadgate ChatUser, --stream-ratio 0
  stream      plain: post(stream=True) + iter_content() vs  loadgate ChatUser, --stream-ratio 1
              (loadgate also parses every SSE event, validates JSON, times tokens, records 6 metrics)
loadgate runs single-turn, think time 0, no warm-up, max_tokens 16, the plain user's prompt. Each pair
runs --repeat times, interleaved (plain, loadgate, plain, ...) so machine noise hits both alike; prints
the median requests/s of each and the ratio loadgate / plain (issue 10's targets: 0.85x non-stream,
0.70x stream).

    python bench/bench_overhead.py [--duration 10] [--users 10] [--repeat 3]
    python bench/bench_overhead.py --tiny       # 2 s runs, once each (the test's mode)

Needs only loadgate installed (pip install -e . in a clone).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import loadgate
from loadgate.mock.config import PROFILES_DIR
from loadgate.mock.process import MockProcess

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(loadgate.__file__).parent / "harness" / "locustfile.py"
ZERO_LATENCY = PROFILES_DIR / "zero-latency.yaml"
TARGETS = {"non-stream": 0.85, "stream": 0.70}  # issue 10: loadgate / plain requests/s
PIN = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
PLAIN_LOCUSTFILE = """
from locust import FastHttpUser, task

BODY = {"model": "loadgate-small", "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 16, "stream": STREAM}


class PlainUser(FastHttpUser):
    @task
    def chat(self):
        if BODY["stream"]:
            r = self.client.post("/v1/chat/completions", json=BODY, stream=True)
            for _ in r.iter_content(4096):
                pass
        else:
            self.client.post("/v1/chat/completions", json=BODY)
"""


def requests_per_s(prefix: Path, stderr: str) -> float:
    try:
        with open(f"{prefix}_stats.csv", newline="") as f:
            row = next(r for r in csv.DictReader(f) if r["Name"] == "/v1/chat/completions")
    except (OSError, StopIteration):
        last = (stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise SystemExit(f"bench: error: no /v1/chat/completions row in {prefix}_stats.csv: {last}") from None
    return float(row["Requests/s"])


def locust(locustfile: Path, host: str, prefix: Path, duration: int, users: int, *extra: str) -> float:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{duration}s",
        "--host",
        host,
        "--csv",
        str(prefix),
        "--only-summary",
        *extra,
    ]
    if PIN:
        cmd = ["taskset", "-c", "1", *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGATE_", "LOCUST_"))}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=duration + 60)
    return requests_per_s(prefix, done.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="2 s runs with 2 users, once each (smoke test)")
    args = parser.parse_args()
    if args.tiny:
        args.duration, args.users, args.repeat = 2, 2, 1
    print(
        f"zero-latency mock, {args.users} users, {args.duration} s per run, {args.repeat} interleaved runs per "
        f"side; {'mock on CPU 0, Locust on CPU 1 (taskset)' if PIN else 'unpinned (no taskset or 1 CPU)'}"
    )
    print(f"{'mode':11} {'plain req/s':>12} {'loadgate req/s':>15} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, MockProcess(ZERO_LATENCY) as mock:
        if PIN:
            subprocess.run(
                ["taskset", "-a", "-p", "-c", "0", str(mock.proc.pid)], check=True, capture_output=True
            )
        work = Path(tmp)
        prompt = work / "prompt.jsonl"  # the plain user's exact prompt, so both send the same body size
        prompt.write_text('{"prompt": "Say hello."}\n')
        for mode, stream in (("non-stream", False), ("stream", True)):
            plain_file = work / f"plain_{mode.replace('-', '_')}.py"
            plain_file.write_text(PLAIN_LOCUSTFILE.replace("STREAM", str(stream)))
            plain_runs, our_runs = [], []
            for i in range(args.repeat):
                plain_runs.append(
                    locust(plain_file, mock.url, work / f"plain-{mode}-{i}", args.duration, args.users)
                )
                our_runs.append(
                    locust(
                        LOCUSTFILE,
                        mock.url,
                        work / f"loadgate-{mode}-{i}",
                        args.duration,
                        args.users,
                        "--chat-weight",
                        "1",
                        "--batch-weight",
                        "0",
                        "--models-weight",
                        "0",
                        "--stream-ratio",
                        "1" if stream else "0",
                        "--multi-turn-ratio",
                        "0",
                        "--warmup",
                        "0s",
                        "--think-time",
                        "0",
                        "--max-tokens",
                        "16",
                        "--models",
                        "loadgate-small",
                        "--prompt-file",
                        str(prompt),
                        "ChatUser",
                    )
                )
            plain, ours = statistics.median(plain_runs), statistics.median(our_runs)
            print(
                f"{mode:11} {plain:12.1f} {ours:15.1f} {ours / plain if plain else 0:7.2f}   "
                f"(target >= {TARGETS[mode]:.2f}x)",
                flush=True,
            )


if __name__ == "__main__":
    main()
