#!/usr/bin/env python3
"""Streaming capacity: how many concurrent streams loadgate measures truthfully, against the mock's truth log.

For each stream count N (--counts) it starts the mock (TTFT 100 ms, 100-token answers at 50 tokens/s, no
batching slowdown, truth log on) pinned to CPU 0, and headless Locust with loadgate's shipped ChatUser
(streaming only, single-turn, think time 0, max_tokens 100, no warm-up, --csv) pinned to the other CPUs,
`-u N` for --duration seconds. The N streams start spread over one answer's time, so they run out of
phase as independent users do: Locust spawns users in batches of floor(-r) once a second, so each
user's first request also waits a random moment within one answer time (a two-line subclass of the
shipped ChatUser, written next to the run's files); with `--burst` (`-r N`) they start at once and, the answer
times being fixed, stay in phase: the mock then receives N requests in the same millisecond every
2.08 s and stamps each arrival only when its one-core event loop reaches it, so the truth log's TTFT
misses that queueing while the client rightly sees it (measured in docs/benchmarks.md: the judge's
error, not loadgate's). Per count it prints:
  - output tokens/s (loadgate's summary) beside the ideal N x 100 / 2.08 s
  - client CPU seconds per 1,000 output tokens: the Locust process's user + system time (os.wait4
    rusage, forked --processes children included), start-up included (beside it the CPU loadgate's own
    monitor counted during the test, when the run files carry it)
  - the load generator's own event-loop lag p99 and max and its longest GC pause, when the run files
    carry them (PREFIX_llm_summary.json / PREFIX_loadgate.json; else n/a)
  - the mock's CPU over the run in cores (its arrival stamp comes after its event loop reads the request:
    a mock near one full core stamps late, and that lateness shows as client TTFT error)
  - the machine's noise: how long each one's event loop waited for its CPU behind other processes, and
    how long the hypervisor held back each virtual CPU (steal in /proc/stat)
  - TTFT and ITL p50/p99: exact from the truth log (the mock's send time of every chunk) vs loadgate's
    PREFIX_llm_stats.csv, and the error (loadgate - truth) in ms
then the largest count within the targets of issue 10 (|ITL p99 error| < 2 ms, |TTFT p99 error| < 5 ms,
no failures).

    python bench/bench_streaming.py [--counts 50,150,300,500] [--duration 25] [--warmup 5] [--processes 2] [--keep DIR]
    python bench/bench_streaming.py --tiny        # one small count for a few seconds (the test's mode)

Pinning uses `taskset` where it exists and the machine has 2+ CPUs; otherwise the run is unpinned (said
in the header). Needs only loadgate installed (pip install -e . in a clone).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import loadgate
from loadgate.contract import LLM_SUMMARY_METRICS
from loadgate.mock.process import MockProcess, MockStartError

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = Path(loadgate.__file__).parent / "harness" / "locustfile.py"
ROW = "/v1/chat/completions [stream]"
TTFT_S, TOKENS, TOKENS_PER_S = 0.1, 100, 50
IDEAL_REQUEST_S = TTFT_S + (TOKENS - 1) / TOKENS_PER_S
TARGET_ITL_P99_MS, TARGET_TTFT_P99_MS = 2.0, 5.0
LAG_P99_KEY = LLM_SUMMARY_METRICS["loadgen_lag_p99"]  # ms, in the LLM summary and _loadgate.json
LAG_MAX_KEY, GC_PAUSE_KEY = "loadgen_lag_max", "loadgen_gc_pause_max"  # ms, when the monitor wrote them
MONITOR_CPU_KEY = "loadgen_cpu_s"  # the monitor's own CPU figure (test time only, start-up excluded)
MOCK_CPUS, LOCUST_CPUS = "0", "1-{last}"
PROMPT = '{"prompt": "Tell me a long story about a lighthouse keeper."}\n'
# The shipped ChatUser, its first request at a random moment within one answer time: without it the users
# of one spawn batch (Locust spawns floor(-r) users at once, once a second) stay in phase for the whole
# run against the fixed-latency mock, and their tokens arrive in packs of dozens.
SPREAD_LOCUSTFILE = f"""
import random

import gevent

import loadgate.harness.locustfile as shipped


class ChatUser(shipped.ChatUser):
    def on_start(self):
        super().on_start()
        gevent.sleep(random.uniform(0, {IDEAL_REQUEST_S!r}))
"""


def mock_config(streams: int) -> dict[str, Any]:
    return {
        "seed": 1,
        "models": {"loadgate-small": {"ttft": TTFT_S, "tokens_per_s": TOKENS_PER_S, "output_tokens": TOKENS}},
        "capacity": {"slots": streams + 100, "queue": streams + 100, "batching_slowdown": 0},
    }


# ---------------------------------------------------------------- pinning


def can_pin() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def locust_cpus() -> str:
    last = (os.cpu_count() or 2) - 1
    return "1" if last == 1 else LOCUST_CPUS.format(last=last)


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a running process (its threads included); None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_delay_s(pid: int) -> float | None:
    """Seconds the process's main thread (Locust's event loop; the mock's) has waited on a run queue for a
    CPU: other processes on its core, not its own work. None without /proc/PID/schedstat."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def cpu_steal_s() -> dict[str, float] | None:
    """Seconds the hypervisor has run something else on each virtual CPU ("steal" in /proc/stat, by CPU
    number): time in which neither the mock nor Locust could run, which no run queue shows. None without
    /proc/stat."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    steal = {}
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and len(values) >= 8:
            steal[name[3:]] = int(values[7]) / tick
    return steal or None


def clean_env() -> dict[str, str]:
    """The environment for a benchmark's Locust: none of the caller's LOADGATE_ / LOCUST_ settings (the run
    is the benchmark's own) and no API key (none reaches the mock)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGATE_", "LOCUST_"))}
    env.pop("OPENAI_API_KEY", None)
    return env


def pin_process(pid: int, cpus: str) -> None:
    """Pin every thread of a running process (the mock) to `cpus`."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True)


# ---------------------------------------------------------------- truth and loadgate figures


def exact_percentile(values: list[float], fraction: float) -> float:
    """Locust's rank rule (the value below which `fraction` of the samples fall) on exact values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def truth_metrics(path: Path, since: float | None) -> dict[str, list[float]]:
    """Exact TTFT (first chunk - arrival) and ITL (every gap between chunks) in ms from the truth log, for
    successful streamed chat requests (finished after `since`, the stats reset, when given)."""
    out: dict[str, list[float]] = {"TTFT": [], "ITL": []}
    for line in path.read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        if t["path"] != "/v1/chat/completions" or not t["stream"] or t["status"] != 200 or t["error"]:
            continue
        chunks = t["t_chunks"] or []
        if not chunks or (since is not None and t["t_done"] < since):
            continue
        out["TTFT"].append((chunks[0] - t["t_received"]) * 1000)
        out["ITL"] += [(b - a) * 1000 for a, b in zip(chunks, chunks[1:], strict=False)]
    return out


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def find_key(data: Any, key: str) -> Any:
    """The first value under `key` anywhere in a JSON document (None when absent)."""
    if isinstance(data, dict):
        if key in data:
            return data[key]
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            found = find_key(item, key)
            if found is not None:
                return found
    return None


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------- one run


@dataclass
class Result:
    streams: int
    exit_code: int
    failures: int
    requests: int
    tokens: int
    tokens_per_s: float
    cpu_s: float
    wall_s: float
    lag_p99_ms: float | None
    lag_max_ms: float | None
    gc_pause_max_ms: float | None
    monitor_cpu_s: float | None
    mock_cores: (
        float | None
    )  # the mock's CPU over the Locust run: near 1 on its one core, the truth runs late
    locust_waited_s: float | None  # Locust's event loop waiting for its CPU (other processes): noise
    mock_waited_s: float | None  # the same for the mock's event loop (the judge's stamps run late)
    steal_s: dict[str, float] | None  # per CPU: the hypervisor running other machines meanwhile: noise
    truth: dict[str, tuple[float, float]]  # metric -> (p50, p99)
    measured: dict[str, tuple[float, float]]
    samples: dict[str, tuple[int, int]]  # metric -> (truth count, loadgate count)

    def error(self, metric: str, index: int) -> float:
        return self.measured[metric][index] - self.truth[metric][index]

    @property
    def within_targets(self) -> bool:
        return (
            self.failures == 0
            and abs(self.error("ITL", 1)) < TARGET_ITL_P99_MS
            and abs(self.error("TTFT", 1)) < TARGET_TTFT_P99_MS
        )


def locust_command(
    args: argparse.Namespace, streams: int, url: str, prefix: Path, prompt: Path, locustfile: Path
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-u",
        str(streams),
        "-r",
        f"{spawn_rate(args, streams):g}",
        "-t",
        f"{args.duration}s",
        "--host",
        url,
        "--csv",
        str(prefix),
        "--only-summary",
        "--stream-ratio",
        "1",
        "--multi-turn-ratio",
        "0",
        "--think-time",
        "0",
        "--chat-weight",
        "1",
        "--batch-weight",
        "0",
        "--models-weight",
        "0",
        "--max-tokens",
        str(TOKENS),
        "--warmup",
        f"{args.warmup:g}s",
        "--models",
        "loadgate-small",
        "--prompt-file",
        str(prompt),
        "--stop-timeout",
        "10",
    ]
    if args.processes:
        cmd += ["--processes", str(args.processes)]
    cmd.append("ChatUser")
    if args.pin:
        cmd = ["taskset", "-c", locust_cpus(), *cmd]
    return cmd


def spawn_rate(args: argparse.Namespace, streams: int) -> float:
    """Locust -r: --spawn-rate when given; N with --burst; else N spread over one ideal answer time."""
    if args.spawn_rate:
        return float(args.spawn_rate)
    return float(streams) if args.burst else round(streams / IDEAL_REQUEST_S, 2)


def run_locust(cmd: list[str], workdir: Path, timeout: float) -> tuple[int, float, float, float | None]:
    """Run Locust to the end; (exit code, CPU seconds of it and its reaped children, wall seconds, seconds
    its main thread waited for a CPU, last read before it exited)."""
    env = clean_env()
    started = time.monotonic()
    with open(workdir / "locust.out", "wb") as out, open(workdir / "locust.err", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    deadline = started + timeout
    waited = None
    while True:
        waited = run_delay_s(proc.pid) or waited  # (readable until reaped, a zombie's too)
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    return proc.returncode, usage.ru_utime + usage.ru_stime, time.monotonic() - started, waited


def run_count(args: argparse.Namespace, streams: int, workdir: Path) -> Result:
    truth_log = workdir / "truth.jsonl"
    prefix = workdir / "run"
    prompt = workdir / "prompt.jsonl"  # one prompt without its own max_tokens: --max-tokens holds for all
    prompt.write_text(PROMPT, encoding="utf-8")
    with MockProcess(mock_config(streams), truth_log=truth_log) as mock:
        if args.pin:
            pin_process(mock.proc.pid, MOCK_CPUS)
        locustfile = LOCUSTFILE
        if not args.burst:
            locustfile = workdir / "spread_locustfile.py"
            locustfile.write_text(SPREAD_LOCUSTFILE, encoding="utf-8")
        cmd = locust_command(args, streams, str(mock.url), prefix, prompt, locustfile)
        mock_before, mock_waited_before = process_cpu_s(mock.proc.pid), run_delay_s(mock.proc.pid)
        steal_before = cpu_steal_s()
        code, cpu_s, wall_s, locust_waited = run_locust(cmd, workdir, timeout=args.duration + 120)
        mock_after, mock_waited_after = process_cpu_s(mock.proc.pid), run_delay_s(mock.proc.pid)
        steal_after = cpu_steal_s()
    mock_cores = (
        (mock_after - mock_before) / wall_s if mock_before is not None and mock_after is not None else None
    )
    llm_csv = Path(f"{prefix}_llm_stats.csv")
    if not llm_csv.exists():
        err = (workdir / "locust.err").read_text(errors="replace").strip().splitlines()
        raise SystemExit(
            f"bench: error: Locust (exit {code}) wrote no {llm_csv.name} at {streams} streams: "
            f"{err[-1] if err else '(no stderr)'}"
        )
    rows = {r["Type"]: r for r in read_csv(llm_csv) if r["Name"] == ROW}
    stats = {r["Name"]: r for r in read_csv(Path(f"{prefix}_stats.csv"))}
    summary = read_json(Path(f"{prefix}_llm_summary.json"))
    meta = read_json(Path(f"{prefix}_loadgate.json"))
    since = meta.get("stats_reset_at") if args.warmup else None
    truth = truth_metrics(truth_log, since)
    if not truth["TTFT"] or "TTFT" not in rows or "ITL" not in rows:
        raise SystemExit(
            f"bench: error: no streamed request completed at {streams} streams (Locust exit {code})"
        )

    def loadgen(key: str) -> float | None:
        for document in (summary, meta):
            for name in (key, f"{key}_ms"):
                value = find_key(document, name)
                if isinstance(value, int | float):
                    return float(value)
        return None

    aggregated = stats.get("Aggregated", {})
    return Result(
        streams=streams,
        exit_code=code,
        failures=int(aggregated.get("Failure Count", 0) or 0),
        requests=int(aggregated.get("Request Count", 0) or 0),
        tokens=int(summary.get("total_output_tokens") or 0),
        tokens_per_s=float(summary.get("output_tokens_per_s") or 0.0),
        cpu_s=cpu_s,
        wall_s=wall_s,
        lag_p99_ms=loadgen(LAG_P99_KEY),
        lag_max_ms=loadgen(LAG_MAX_KEY),
        gc_pause_max_ms=loadgen(GC_PAUSE_KEY),
        monitor_cpu_s=loadgen(MONITOR_CPU_KEY),
        mock_cores=mock_cores,
        locust_waited_s=locust_waited,
        mock_waited_s=(
            mock_waited_after - mock_waited_before
            if mock_waited_before is not None and mock_waited_after is not None
            else None
        ),
        steal_s=(
            {cpu: steal_after[cpu] - stolen for cpu, stolen in steal_before.items() if cpu in steal_after}
            if steal_before and steal_after
            else None
        ),
        truth={m: (exact_percentile(v, 0.5), exact_percentile(v, 0.99)) for m, v in truth.items()},
        measured={m: (float(rows[m]["50%"]), float(rows[m]["99%"])) for m in ("TTFT", "ITL")},
        samples={m: (len(truth[m]), int(rows[m]["Request Count"])) for m in ("TTFT", "ITL")},
    )


# ---------------------------------------------------------------- output


def machine_line() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"machine: {os.cpu_count()} CPUs ({model}), {platform.system()}, Python {platform.python_version()}, "
        f"locust {metadata.version('locust')}, loadgate {loadgate.__version__}"
        + (f" at {commit}" if commit else "")
    )


def report(result: Result) -> None:
    ideal = result.streams * TOKENS / IDEAL_REQUEST_S
    per_1k = result.cpu_s / (result.tokens / 1000) if result.tokens else float("nan")
    lag = f"{result.lag_p99_ms:.2f} ms" if result.lag_p99_ms is not None else "n/a"
    if result.lag_max_ms is not None:
        lag += f" (max {result.lag_max_ms:.1f} ms"
        lag += (
            f", longest GC pause {result.gc_pause_max_ms:.1f} ms)"
            if result.gc_pause_max_ms is not None
            else ")"
        )
    print(
        f"streams {result.streams}: {result.tokens_per_s:.0f} tokens/s (ideal {ideal:.0f}), "
        f"client CPU {per_1k:.3f} s per 1k tokens ({result.cpu_s:.1f} CPU-s over {result.wall_s:.1f} s, "
        f"{result.cpu_s / result.wall_s:.2f} cores"
        + (
            f"; {result.monitor_cpu_s:.1f} CPU-s during the test by loadgate's monitor"
            if result.monitor_cpu_s
            else ""
        )
        + f"), loadgen lag p99 {lag}, "
        f"{result.requests} requests, {result.failures} failures, Locust exit {result.exit_code}"
        + (f"; mock {result.mock_cores:.2f} cores" if result.mock_cores is not None else "")
    )
    if result.locust_waited_s is not None and result.mock_waited_s is not None:
        stolen = ", ".join(f"CPU {cpu} {s * 1000:.0f} ms" for cpu, s in (result.steal_s or {}).items())
        print(
            f"  waited for a CPU (run queue: other processes on the core): Locust's loop "
            f"{result.locust_waited_s * 1000:.0f} ms, the mock's {result.mock_waited_s * 1000:.0f} ms"
            + (f"; the hypervisor held back {stolen} (steal: other virtual machines)" if stolen else "")
        )
    for metric in ("TTFT", "ITL"):
        truth_n, ours_n = result.samples[metric]
        for index, name in ((0, "p50"), (1, "p99")):
            print(
                f"  {metric:<4} {name}  truth {result.truth[metric][index]:8.2f} ms  "
                f"loadgate {result.measured[metric][index]:8.2f} ms  error {result.error(metric, index):+7.2f} ms"
                + (f"   ({truth_n} truth samples, {ours_n} loadgate)" if index == 0 else "")
            )
    verdict = "yes" if result.within_targets else "no"
    print(
        f"  within targets (|ITL p99 error| < {TARGET_ITL_P99_MS:g} ms, |TTFT p99 error| < "
        f"{TARGET_TTFT_P99_MS:g} ms, no failures): {verdict}",
        flush=True,
    )


def parse_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers, e.g. 50,150 (got {text!r})"
        )
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--counts", type=parse_counts, default=[50, 150, 300, 500], help="stream counts (50,150,300,500)"
    )
    parser.add_argument(
        "--duration", type=int, default=25, help="seconds of load per count, warm-up included (default 25)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=5,
        help="Locust --warmup seconds, within --duration; truth cut at the reset (default 5: drops each "
        "user's first request, whose TTFT holds its connect, which the mock's stamp cannot see; 0: keep)",
    )
    parser.add_argument(
        "--processes", type=int, default=0, help="Locust --processes N (fork mode); 0: one process"
    )
    parser.add_argument(
        "--spawn-rate",
        type=float,
        default=0,
        help="Locust -r (users/s); 0 (default): N/2.08, the streams start spread over one answer's time",
    )
    parser.add_argument(
        "--burst",
        action="store_true",
        help="-r N: all streams start at once and, the answer times being fixed, go on arriving in bursts "
        "(the mock's arrival stamp then runs late: see the module doc)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the mock and Locust to CPUs")
    parser.add_argument("--keep", type=Path, help="keep each count's files in DIR/streams-N")
    parser.add_argument("--tiny", action="store_true", help="one small count for a few seconds (smoke test)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.counts, args.duration, args.warmup = [4], 3, 0
    if args.duration < 1:
        parser.error(f"--duration must be at least 1 (got {args.duration})")
    if not 0 <= args.warmup < args.duration:
        parser.error(
            f"--warmup must be 0 or more and less than --duration {args.duration} (got {args.warmup:g})"
        )
    args.pin = can_pin() and not args.no_pin
    print(machine_line())
    pinning = (
        f"mock on CPU {MOCK_CPUS}, Locust on CPU {locust_cpus()} (taskset)"
        if args.pin
        else "unpinned (" + ("--no-pin" if args.no_pin else "no taskset or fewer than 2 CPUs") + ")"
    )
    print(
        f"setup: {pinning}; ChatUser streaming only, think time 0, "
        f"{'--processes ' + str(args.processes) if args.processes else '1 Locust process'}, "
        f"spawn rate {f'{args.spawn_rate:g}/s' if args.spawn_rate else ('N/s (burst)' if args.burst else 'N/2.08 s (spread)')}, "
        f"warm-up {args.warmup:g} s; "
        f"mock TTFT {TTFT_S * 1000:.0f} ms, {TOKENS} tokens at {TOKENS_PER_S} tokens/s; {args.duration} s per count"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        for streams in args.counts:
            workdir = (args.keep or Path(tmp)) / f"streams-{streams}"
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                result = run_count(args, streams, workdir)
            except MockStartError as e:
                print(f"bench: error: {e}", file=sys.stderr)
                return 2
            report(result)
            results.append(result)
    held = [r.streams for r in results if r.within_targets]
    tried = ",".join(str(c) for c in args.counts)
    print(f"largest stream count within the targets: {max(held) if held else 'none'} (of {tried})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
