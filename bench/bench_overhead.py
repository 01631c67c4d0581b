#!/usr/bin/env python3
"""What loadgate's ChatUser costs in throughput against a plain Locust FastHttpUser.

Both run headless for the same time and users against the zero-latency mock
(loadgate/mock/profiles/zero-latency.yaml: 16-token answers, no delay), so the client is the
bottleneck. The mock is pinned to CPU 0 and Locust to CPU 1 where `taskset` exists and the machine has
2+ CPUs. Two pairs, one per mode:
  non-stream  plain: client.post(...) + len(content)   vs  loadgate ChatUser, --stream-ratio 0
  stream      plain: post(stream=True) + iter_content() vs  loadgate ChatUser, --stream-ratio 1
              (loadgate also parses every SSE event, validates JSON, times tokens, records 6 metrics)
loadgate runs single-turn, think time 0, no warm-up, max_tokens 16, the plain user's prompt.

--method side-by-side (the default): each pair runs at the same time, both on one CPU, so both get half
of it (the kernel shares a CPU evenly between two busy processes) and the machine's noise hits both
alike; the requests each one got through are counted in the mock's truth log over the seconds both were
running (loadgate's carry an X-Request-Id, the plain user's none), and their ratio is the ratio of
requests/s each would reach alone (both are CPU-bound: the ratio of CPU per request). The mock's own CPU
use is printed: near 100% it would be the bottleneck and the ratio would read high.
--method interleaved: plain, loadgate, plain, ... one at a time, each with the CPU to itself; each one's
requests/s from its --csv. Far noisier on a shared machine (the bare user's requests/s moved by 25%
between runs minutes apart).
Prints per repeat and the median: requests/s of each and the ratio loadgate / plain (issue 10's targets:
0.85x non-stream, 0.70x stream).

    python bench/bench_overhead.py [--duration 10] [--users 10] [--repeat 3] [--method interleaved]
    python bench/bench_overhead.py --tiny       # 6 s runs, once each (the test's mode)

Needs only loadgate installed (pip install -e . in a clone).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_streaming import can_pin, clean_env, pin_process, process_cpu_s

import loadgate
from loadgate.mock.config import PROFILES_DIR
from loadgate.mock.process import MockProcess
from loadgate.mock.truthlog import FLUSH_INTERVAL_S
from loadgate.target import PROBE_ID_PREFIX

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(loadgate.__file__).parent / "harness" / "locustfile.py"
ZERO_LATENCY = PROFILES_DIR / "zero-latency.yaml"
TARGETS = {"non-stream": 0.85, "stream": 0.70}  # issue 10: loadgate / plain requests/s
PIN = can_pin()
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


def locust_command(
    locustfile: Path, host: str, prefix: Path, duration: int, users: int, *extra: str
) -> list[str]:
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
    return ["taskset", "-c", "1", *cmd] if PIN else cmd


def locust(locustfile: Path, host: str, prefix: Path, duration: int, users: int, *extra: str) -> float:
    cmd = locust_command(locustfile, host, prefix, duration, users, *extra)
    done = subprocess.run(
        cmd, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=duration + 60
    )
    return requests_per_s(prefix, done.stderr)


def side_by_side(
    plain_cmd: list[str], our_cmd: list[str], truth_log: Path, mock_pid: int, duration: int
) -> tuple[float, float, str]:
    """Run both at once on one CPU. Over the seconds both were sending (the mock's truth log): each one's
    requests per CPU-second it used (its requests/s with the CPU to itself: both are CPU-bound), and a
    note with each one's share of the CPU and the mock's."""
    seen = truth_log.stat().st_size if truth_log.exists() else 0
    procs = [
        subprocess.Popen(
            cmd, cwd=REPO, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for cmd in (plain_cmd, our_cmd)
    ]
    samples = []  # (epoch s, plain CPU s, loadgate CPU s, mock CPU s), every 0.2 s
    while any(proc.poll() is None for proc in procs):
        samples.append(
            (time.time(), *(process_cpu_s(pid) or 0.0 for pid in (procs[0].pid, procs[1].pid, mock_pid)))
        )
        time.sleep(0.2)
    for proc in procs:
        _, err = proc.communicate(timeout=duration + 60)
        if proc.returncode != 0:
            last = (err.strip().splitlines() or ["(no stderr)"])[-1]
            raise SystemExit(f"bench: error: a Locust run exited {proc.returncode}: {last}")
    time.sleep(FLUSH_INTERVAL_S + 0.3)  # the mock writes its truth log out every FLUSH_INTERVAL_S
    with open(truth_log, "rb") as f:
        f.seek(seen)
        rows = f.read().rsplit(b"\n", 1)[0].splitlines()  # whole lines only
    times: dict[bool, list[float]] = {True: [], False: []}  # loadgate's (X-Request-Id) or not
    for line in rows:
        row = json.loads(line)
        if row["path"] == "/v1/chat/completions" and not (row["x_request_id"] or "").startswith(
            PROBE_ID_PREFIX
        ):
            times[row["x_request_id"] is not None].append(row["t_received"])
    if not times[True] or not times[False]:
        raise SystemExit("bench: error: the truth log holds no requests of one side: see the Locust runs")
    start = max(min(times[True]), min(times[False])) + 0.5  # both users' first requests are out
    end = min(max(times[True]), max(times[False])) - 0.3
    inside = [s for s in samples if start <= s[0] <= end]
    if len(inside) < 3:
        raise SystemExit(
            f"bench: error: the two runs overlapped for only {end - start:.1f} s; use a longer --duration"
        )
    first, last = inside[0], inside[-1]
    wall = last[0] - first[0]
    cpu = [last[k] - first[k] for k in (1, 2, 3)]
    count = {side: sum(first[0] <= t <= last[0] for t in ts) for side, ts in times.items()}
    note = (
        f"over {wall:.1f} s: plain {count[False]} requests in {cpu[0]:.2f} CPU-s ({cpu[0] / wall:.0%}), loadgate "
        f"{count[True]} in {cpu[1]:.2f} CPU-s ({cpu[1] / wall:.0%}); mock CPU {cpu[2] / wall:.0%}"
    )
    return count[False] / max(cpu[0], 1e-9), count[True] / max(cpu[1], 1e-9), note


def loadgate_args(stream: bool, prompt: Path) -> list[str]:
    return [
        "--chat-weight", "1", "--batch-weight", "0", "--models-weight", "0",
        "--stream-ratio", "1" if stream else "0", "--multi-turn-ratio", "0", "--warmup", "0s",
        "--think-time", "0", "--max-tokens", "16", "--models", "loadgate-small", "--prompt-file", str(prompt),
        "ChatUser",
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--method", choices=("side-by-side", "interleaved"), default="side-by-side")
    parser.add_argument("--tiny", action="store_true", help="6 s runs with 2 users, once each (smoke test)")
    args = parser.parse_args()
    if args.tiny:
        args.duration, args.users, args.repeat = 6, 2, 1
    together = args.method == "side-by-side"
    pinning = "mock on CPU 0, Locust on CPU 1 (taskset)" if PIN else "unpinned (no taskset or 1 CPU)"
    print(
        f"zero-latency mock, {args.users} users per side, {args.duration} s per run, {args.repeat} runs per "
        f"side, {args.method}; {pinning}"
        + (
            "\nrequests/s: per CPU-second each used while both ran (what each reaches with the CPU to itself)"
            if together
            else ""
        )
    )
    print(f"{'mode':11} {'plain req/s':>12} {'loadgate req/s':>15} {'ratio':>7}")
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        work = Path(tmp)
        truth_log = work / "truth.jsonl"
        with MockProcess(ZERO_LATENCY, truth_log=truth_log if together else None) as mock:
            assert mock.proc is not None and mock.url is not None
            if PIN:
                pin_process(mock.proc.pid, "0")
            prompt = work / "prompt.jsonl"  # the plain user's exact prompt, so both send the same body size
            prompt.write_text('{"prompt": "Say hello."}\n')
            for mode, stream in (("non-stream", False), ("stream", True)):
                plain_file = work / f"plain_{mode.replace('-', '_')}.py"
                plain_file.write_text(PLAIN_LOCUSTFILE.replace("STREAM", str(stream)))
                plain_runs, our_runs, ratios = [], [], []
                for i in range(args.repeat):
                    plain_at, ours_at = work / f"plain-{mode}-{i}", work / f"loadgate-{mode}-{i}"
                    ours_extra = loadgate_args(stream, prompt)
                    if together:
                        plain, ours, note = side_by_side(
                            locust_command(plain_file, mock.url, plain_at, args.duration, args.users),
                            locust_command(
                                LOCUSTFILE, mock.url, ours_at, args.duration, args.users, *ours_extra
                            ),
                            truth_log,
                            mock.proc.pid,
                            args.duration,
                        )
                    else:
                        plain = locust(plain_file, mock.url, plain_at, args.duration, args.users)
                        ours = locust(LOCUSTFILE, mock.url, ours_at, args.duration, args.users, *ours_extra)
                        note = ""
                    plain_runs.append(plain)
                    our_runs.append(ours)
                    ratios.append(ours / plain if plain else 0.0)
                    if args.repeat > 1:
                        print(
                            f"  {mode} run {i + 1}: {plain:.1f} / {ours:.1f} req/s  {ratios[-1]:.2f}  {note}".rstrip(),
                            flush=True,
                        )
                plain, ours = statistics.median(plain_runs), statistics.median(our_runs)
                spread = f"; ratios {min(ratios):.2f}-{max(ratios):.2f}" if len(ratios) > 1 else ""
                print(
                    f"{mode:11} {plain:12.1f} {ours:15.1f} {statistics.median(ratios):7.2f}   "
                    f"(target >= {TARGETS[mode]:.2f}x){spread}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
