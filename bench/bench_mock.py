"""Benchmark the loadgate mock: non-streaming req/s vs fakellm under wrk, and 2,000 concurrent streams.

    python bench/bench_mock.py [--duration 6] [--rounds 5] [--connections 64] [--streams 2000] [--skip-fakellm]

1. Throughput: the same non-streaming chat request, zero-latency config, each server pinned to CPU 0
   (`taskset`), `wrk` pinned to CPU 1, in alternating rounds. fakellm (PyPI) is installed into a
   throwaway venv under /tmp and run under uvicorn with its access log off (its fastest setting).
   Prints wall requests/s and requests per server CPU-second (user + system time from /proc: what one
   dedicated core would serve, robust to other jobs sharing the machine) and both ratios (target >= 2x).
2. Streams: the mock (pinned to CPU 0) holds N concurrent SSE streams from an aiohttp client (CPU 1);
   prints how many completed with every token and [DONE], the peak concurrency the mock reported on
   /health, and the mock's peak RSS.
Needs Linux, `wrk` and `taskset` on PATH.
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
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadgate.job import free_port  # noqa: E402
from loadgate.mock.config import PROFILES_DIR  # noqa: E402
from loadgate.mock.process import MockProcess  # noqa: E402

FAKELLM_VENV = Path(tempfile.gettempdir()) / "loadgate-bench-fakellm"
REQUEST = {"model": "loadgate-small", "messages": [{"role": "user", "content": "Benchmark request, please."}]}
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""
SERVER_CPU, CLIENT_CPU = "0", "1"


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"bench: nothing listening on port {port} after {timeout:g}s")


def ensure_fakellm() -> Path:
    python = FAKELLM_VENV / "bin" / "python"
    if not (FAKELLM_VENV / "bin" / "fakellm").exists():
        print(f"installing fakellm into {FAKELLM_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(FAKELLM_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "fakellm"], check=True)
    return python


def wrk(url: str, duration: int, connections: int, workdir: Path) -> dict:
    script = workdir / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(REQUEST)))
    done = subprocess.run(
        [
            "taskset",
            "-c",
            CLIENT_CPU,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    p99 = re.search(r"^\s*99%\s+(\S+)\s*$", out, re.M)  # the --latency distribution line
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "bad": int(bad.group(1)) if bad else 0,
        "p99": p99.group(1) if p99 else "?",
    }


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check_answer(url: str) -> None:
    """Both servers must really answer the request (a fast 4xx would be a meaningless benchmark)."""
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(REQUEST).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    assert body["choices"][0]["message"]["content"], body


def start_loadgate(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            SERVER_CPU,
            sys.executable,
            "-m",
            "loadgate.mock",
            "--port",
            str(port),
            "--config",
            str(PROFILES_DIR / "zero-latency.yaml"),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_fakellm(port: int, workdir: Path) -> subprocess.Popen:
    python = ensure_fakellm()
    config = workdir / "fakellm.yaml"
    config.write_text(
        yaml.safe_dump({"version": 1, "defaults": {"fallback": "deterministic_echo"}, "rules": []})
    )
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            SERVER_CPU,
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
        ],
        cwd=workdir,
        env={**os.environ, "FAKELLM_CONFIG": str(config)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bench_throughput(args: argparse.Namespace, workdir: Path) -> None:
    """Alternate wrk rounds between the servers so machine noise hits both alike; report best and median."""
    servers = {"loadgate mock": start_loadgate}
    if not args.skip_fakellm:
        servers[f"fakellm {_fakellm_version()}"] = lambda port: start_fakellm(port, workdir)
    procs, urls = [], {}
    try:
        for name, start in servers.items():
            port = free_port()
            procs.append(start(port))
            wait_port(port)
            urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
            check_answer(urls[name])
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
    tokens = 50
    config = {
        "models": {"loadgate-small": {"ttft": 0.5, "tokens_per_s": 5, "output_tokens": tokens}},
        "capacity": {"slots": args.streams + 100, "queue": 0, "batching_slowdown": 0},
    }
    with MockProcess(config=config) as mock:
        subprocess.run(["taskset", "-pc", SERVER_CPU, str(mock.proc.pid)], check=True, capture_output=True)
        idle = peak_rss_mib(mock.proc.pid)
        started = time.monotonic()
        client = (
            f"import asyncio, sys; sys.path.insert(0, {str(ROOT)!r}); from bench.bench_mock import hold_streams; "
            f"print(*asyncio.run(hold_streams({mock.url!r}, {args.streams}, {tokens})))"
        )
        done = subprocess.run(
            ["taskset", "-c", CLIENT_CPU, sys.executable, "-c", client],
            capture_output=True,
            text=True,
            check=True,
        )
        completed, peak = map(int, done.stdout.split())
        elapsed = time.monotonic() - started
        rss = peak_rss_mib(mock.proc.pid)
    print(
        f"\nconcurrent streams ({tokens} tokens at 5 tokens/s each, ttft 0.5 s; ideal {0.5 + (tokens - 1) / 5:.1f} s)"
    )
    print(f"  opened {args.streams}, completed {completed} with every token and [DONE], peak active {peak}")
    print(
        f"  wall time {elapsed:.1f} s, mock RSS idle {idle:.0f} MiB, peak {rss:.0f} MiB "
        f"({(rss - idle) * 1024 / max(args.streams, 1):.0f} KiB per stream)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=6, help="wrk seconds per round (default 6)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating wrk rounds per server (default 5)")
    parser.add_argument("--streams", type=int, default=2000, help="concurrent streams to hold (default 2000)")
    parser.add_argument("--skip-fakellm", action="store_true", help="only measure loadgate's mock")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(
                f"bench: error: `{tool}` not found on PATH; install it (Debian: apt-get install {tool})",
                file=sys.stderr,
            )
            return 2
    with tempfile.TemporaryDirectory(prefix="bench-mock-") as tmp:
        print(
            f"non-streaming chat completion, zero latency, server on CPU {SERVER_CPU}, wrk -t1 "
            f"-c{args.connections} -d{args.duration}s on CPU {CLIENT_CPU}, {args.rounds} alternating rounds"
        )
        bench_throughput(args, Path(tmp))
    bench_streams(args)
    return 0


def _fakellm_version() -> str:
    done = subprocess.run(
        [
            str(FAKELLM_VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('fakellm'))",
        ],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "?"


if __name__ == "__main__":
    sys.exit(main())
