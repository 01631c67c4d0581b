#!/usr/bin/env python3
"""What loadgate's ChatUser costs in throughput against a plain Locust FastHttpUser.

Both run headless for the same time and users against the zero-latency mock
(loadgate/mock/profiles/zero-latency.yaml: 16-token answers, no delay), so the client is the
bottleneck. Two pairs, one per mode:
  non-stream  plain: client.post(...) + len(content)   vs  loadgate ChatUser --tags non-stream
  stream      plain: post(stream=True) + iter_content() vs  loadgate ChatUser --tags stream
              (loadgate also parses every SSE event, validates JSON, times tokens, records 6 metrics)
Each pair runs --repeat times, interleaved (plain, loadgate, plain, ...) so machine noise hits both
alike; prints the median requests/s of each and the ratio loadgate / plain.

    python bench/bench_overhead.py [--duration 10] [--users 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from loadgate.mock.process import MockProcess  # noqa: E402

ZERO_LATENCY = REPO / "loadgate" / "mock" / "profiles" / "zero-latency.yaml"
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


def requests_per_s(prefix: Path) -> float:
    with open(f"{prefix}_stats.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "/v1/chat/completions")
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
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGATE_", "LOCUST_"))}
    subprocess.run(cmd, cwd=REPO, env=env, check=False, capture_output=True, timeout=duration + 60)
    return requests_per_s(prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'mode':11} {'plain req/s':>12} {'loadgate req/s':>15} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp, MockProcess(ZERO_LATENCY) as mock:
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
                        REPO / "locustfiles" / "chat.py",
                        mock.url,
                        work / f"loadgate-{mode}-{i}",
                        args.duration,
                        args.users,
                        "--tags",
                        mode,
                        "--think-time",
                        "0",
                        "--max-tokens",
                        "16",
                        "--models",
                        "loadgate-small",
                        "--prompt-file",
                        str(prompt),
                    )
                )
            plain, ours = statistics.median(plain_runs), statistics.median(our_runs)
            print(f"{mode:11} {plain:12.1f} {ours:15.1f} {ours / plain if plain else 0:7.2f}")


if __name__ == "__main__":
    main()
