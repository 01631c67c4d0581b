"""Benchmark the loadgate mock: non-streaming req/s vs fakellm under wrk, and 2,000 concurrent streams.

    python bench/bench_mock.py [--duration 6] [--rounds 5] [--connections 64] [--streams 2000] [--skip-fakellm]
    python bench/bench_mock.py --tiny     # seconds: one 1 s round, 50 short streams (the test's mode)

1. Throughput: the same non-streaming chat request, zero-latency config, each server pinned to CPU 0,
   `wrk` pinned to CPU 1, in alternating rounds. fakellm (PyPI) is installed on first use into a
   throwaway venv, /tmp/loadgate-bench-fakellm (python -m venv + pip install fakellm), and run under
   uvicorn with its access log off (its fastest setting). Prints wall requests/s and requests per server
   CPU-second (user + system time from /proc: what one dedicated core would serve, robust to other jobs
   sharing the machine) and both ratios (target >= 2x).
2. Streams: the mock (pinned to CPU 0) holds N concurrent SSE streams from an aiohttp client (CPU 1, this
   script run again with --hold-streams); prints how many completed with every token and [DONE], the peak
   concurrency the mock reported on /health, and the mock's peak RSS.

Needs Linux, loadgate installed (pip install -e . in a clone) and, for part 1, `wrk` on PATH (Debian:
apt-get install wrk); a full run without wrk, or whose fakellm install fails, exits 2 with one line naming
the fix. --tiny instead skips what it cannot run (the wrk rounds, or fakellm) with the reason printed,
after starting both servers and checking that each answers. Pinning uses `taskset` where it exists and
the machine has 2+ CPUs; otherwise everything runs unpinned (said in the output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import yaml
from bench_streaming import can_pin, pin_process, process_cpu_s

from loadgate.job import free_port
from loadgate.mock.config import PROFILES_DIR
from loadgate.mock.process import MockProcess

ROOT = Path(__file__).resolve().parents[1]
FAKELLM_VENV = Path(tempfile.gettempdir()) / "loadgate-bench-fakellm"
REQUEST = {"model": "loadgate-small", "messages": [{"role": "user", "content": "Benchmark request, please."}]}
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""
SERVER_CPU, CLIENT_CPU = "0", "1"
PIN = can_pin()


class Unavailable(Exception):
    """A comparison that cannot run on this machine; str() is the reason and the fix."""


def pinned(cmd: list[str], cpu: str) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if PIN else cmd


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench: nothing listening on port {port} after {timeout:g}s")


def ensure_fakellm() -> tuple[Path, str]:
    """fakellm's venv python and fakellm's version, installing it first when the venv lacks it;
    Unavailable (one line) when the venv or the install fails."""
    python = FAKELLM_VENV / "bin" / "python"
    if not (FAKELLM_VENV / "bin" / "fakellm").exists():
        print(
            f"installing fakellm into {FAKELLM_VENV} (python -m venv + pip install fakellm) ...", flush=True
        )
        for label, step in (
            ("python -m venv", [sys.executable, "-m", "venv", "--clear", str(FAKELLM_VENV)]),
            (
                "pip install fakellm",
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "fakellm"],
            ),
        ):
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                errors = [
                    line for line in done.stderr.splitlines() if "ERROR" in line
                ] or done.stderr.splitlines()
                raise Unavailable(
                    f"`{label}` failed (exit {done.returncode}): "
                    f"{errors[-1].strip() if errors else '(no stderr)'}; check the network access to PyPI, "
                    "or pass --skip-fakellm"
                )
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('fakellm'))"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise Unavailable(f"fakellm is not importable in {FAKELLM_VENV}; delete that folder to reinstall it")
    return python, done.stdout.strip()


def wrk(url: str, duration: int, connections: int, workdir: Path) -> dict:
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(REQUEST)))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    done = subprocess.run(pinned(cmd, CLIENT_CPU), capture_output=True, text=True)
    out = done.stdout
    if done.returncode != 0 or "Requests/sec:" not in out:
        last = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise SystemExit(f"bench: error: wrk exited {done.returncode} against {url}: {last}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"^\s*99%\s+(\S+)\s*$", out, re.M)  # the --latency distribution line
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "bad": int(bad.group(1)) if bad else 0,
        "p99": p99.group(1) if p99 else "?",
    }


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a running server (its threads included); a clear stop if it has exited."""
    cpu = process_cpu_s(pid)
    if cpu is None:
        raise SystemExit(f"bench: error: no CPU time for server PID {pid} (/proc/{pid}/stat): has it exited?")
    return cpu


def check_answer(url: str) -> None:
    """Both servers must really answer the request (a fast 4xx would be a meaningless benchmark)."""
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(REQUEST).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
        content = body["choices"][0]["message"]["content"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise SystemExit(f"bench: error: {url} did not answer a chat completion: {e}") from None
    if not content:
        raise SystemExit(f"bench: error: {url} answered an empty completion: {body}")


def start_loadgate(port: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "loadgate.mock",
        "--port",
        str(port),
        "--config",
        str(PROFILES_DIR / "zero-latency.yaml"),
    ]
    return subprocess.Popen(
        pinned(cmd, SERVER_CPU),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_fakellm(python: Path, port: int, workdir: Path) -> subprocess.Popen:
    config = workdir / "fakellm.yaml"
    config.write_text(
        yaml.safe_dump({"version": 1, "defaults": {"fallback": "deterministic_echo"}, "rules": []})
    )
    cmd = [
        str(python),
        "-m",
        "uvicorn",
        "fakellm.server:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(
        pinned(cmd, SERVER_CPU),
        cwd=workdir,
        env={**os.environ, "FAKELLM_CONFIG": str(config)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bench_throughput(args: argparse.Namespace, workdir: Path) -> None:
    """Alternate wrk rounds between the servers so machine noise hits both alike; report best and median."""
    servers: dict[str, Callable[[int], subprocess.Popen]] = {"loadgate mock": start_loadgate}
    if args.skip_fakellm:
        print("  fakellm: skipped (--skip-fakellm)")
    else:
        try:
            python, version = ensure_fakellm()
        except Unavailable as e:
            if not args.tiny:
                raise SystemExit(f"bench: error: fakellm: {e}") from None
            print(f"  fakellm comparison skipped: {e}")
        else:
            servers[f"fakellm {version}"] = lambda port: start_fakellm(python, port, workdir)
    procs, urls = [], {}
    try:
        for name, start in servers.items():
            port = free_port()
            procs.append(start(port))
            wait_port(port)
            urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
            check_answer(urls[name])
            print(f"  {name} serves {urls[name]} and answers the request")
        if shutil.which("wrk") is None:
            print("  throughput rounds skipped: `wrk` not found on PATH (Debian: apt-get install wrk)")
            return
        pids = dict(zip(urls, (proc.pid for proc in procs), strict=True))
        rates: dict[str, list[float]] = {name: [] for name in urls}
        per_cpu: dict[str, list[float]] = {name: [] for name in urls}
        for round_no in range(1, args.rounds + 1):
            for name, url in urls.items():
                cpu_before = cpu_seconds(pids[name])
                result = wrk(url, args.duration, args.connections, workdir)
                cpu = cpu_seconds(pids[name]) - cpu_before
                rates[name].append(result["rate"])
                per_cpu[name].append(result["requests"] / cpu)
                print(
                    f"  round {round_no} {name:<16} {result['rate']:>8.0f} req/s wall, "
                    f"{per_cpu[name][-1]:>8.0f} req per server CPU-second  "
                    f"(non-2xx {result['bad']}, p99 {result['p99']})",
                    flush=True,
                )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    for name in urls:
        print(
            f"  {name:<16} median {statistics.median(rates[name]):>8.0f} req/s wall (best {max(rates[name]):.0f}), "
            f"median {statistics.median(per_cpu[name]):>8.0f} req per CPU-second"
        )
    if len(urls) == 2:
        ours, theirs = urls
        wall = statistics.median(rates[ours]) / statistics.median(rates[theirs])
        cpu = statistics.median(per_cpu[ours]) / statistics.median(per_cpu[theirs])
        print(
            f"  ratio loadgate/fakellm: {cpu:.2f}x per server CPU-second (= one dedicated core), "
            f"{wall:.2f}x wall req/s (target >= 2x)"
        )


# ---------------------------------------------------------------- concurrent streams


async def hold_streams(url: str, count: int, tokens: int) -> tuple[int, int]:
    """Open `count` streams at once; return (completed with all tokens + [DONE], peak active on /health)."""
    body = {**REQUEST, "stream": True}
    peak = 0

    async def one(session: aiohttp.ClientSession) -> bool:
        try:
            async with session.post(f"{url}/v1/chat/completions", json=body) as response:
                if response.status != 200:
                    return False
                seen, done = 0, False
                async for line in response.content:
                    if line.startswith(b"data: [DONE]"):
                        done = True
                    elif b'"content":"' in line and b'"role"' not in line:
                        seen += 1
                return done and seen == tokens
        except aiohttp.ClientError:
            return False

    async def watch(session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            async with session.get(f"{url}/health") as response:
                peak = max(peak, (await response.json())["active"])
            await asyncio.sleep(0.25)

    timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(session, stop))
        results = await asyncio.gather(*(one(session) for _ in range(count)))
        stop.set()
        await watcher
    return sum(results), peak


def peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def bench_streams(args: argparse.Namespace) -> None:
    tokens, speed, ttft = (10, 20, 0.1) if args.tiny else (50, 5, 0.5)
    config = {
        "models": {"loadgate-small": {"ttft": ttft, "tokens_per_s": speed, "output_tokens": tokens}},
        "capacity": {"slots": args.streams + 100, "queue": 0, "batching_slowdown": 0},
    }
    with MockProcess(config=config) as mock:
        if PIN:
            pin_process(mock.proc.pid, SERVER_CPU)
        idle = peak_rss_mib(mock.proc.pid)
        started = time.monotonic()
        client = [sys.executable, __file__, "--hold-streams", str(mock.url), "--streams", str(args.streams)]
        done = subprocess.run(
            pinned([*client, "--stream-tokens", str(tokens)], CLIENT_CPU), capture_output=True, text=True
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no stderr)"])[-1]
            raise SystemExit(f"bench: error: the stream client exited {done.returncode}: {last}")
        completed, peak = map(int, done.stdout.split())
        elapsed = time.monotonic() - started
        rss = peak_rss_mib(mock.proc.pid)
    print(
        f"\nconcurrent streams ({tokens} tokens at {speed} tokens/s each, ttft {ttft:g} s; "
        f"ideal {ttft + (tokens - 1) / speed:.1f} s)"
    )
    print(f"  opened {args.streams}, completed {completed} with every token and [DONE], peak active {peak}")
    print(
        f"  wall time {elapsed:.1f} s, mock RSS idle {idle:.0f} MiB, peak {rss:.0f} MiB "
        f"({(rss - idle) * 1024 / max(args.streams, 1):.0f} KiB per stream)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=6, help="wrk seconds per round (default 6)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating wrk rounds per server (default 5)")
    parser.add_argument("--streams", type=int, default=2000, help="concurrent streams to hold (default 2000)")
    parser.add_argument("--skip-fakellm", action="store_true", help="only measure loadgate's mock")
    parser.add_argument("--tiny", action="store_true", help="one 1 s round, 50 short streams (smoke test)")
    parser.add_argument("--hold-streams", metavar="URL", help=argparse.SUPPRESS)  # the stream client (part 2)
    parser.add_argument("--stream-tokens", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hold_streams:
        print(*asyncio.run(hold_streams(args.hold_streams, args.streams, args.stream_tokens)))
        return 0
    if args.tiny:
        args.duration, args.rounds, args.connections, args.streams = 1, 1, 8, 50
    elif shutil.which("wrk") is None:
        print(
            "bench: error: `wrk` not found on PATH; install it (Debian: apt-get install wrk)", file=sys.stderr
        )
        return 2
    pinning = (
        f"server on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}" if PIN else "unpinned (no taskset or 1 CPU)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-mock-") as tmp:
        print(
            f"non-streaming chat completion, zero latency, wrk -t1 -c{args.connections} -d{args.duration}s, "
            f"{args.rounds} alternating rounds; {pinning}"
        )
        bench_throughput(args, Path(tmp))
    bench_streams(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
