"""Every script in bench/ runs from the repository with the command its docstring gives, in its --tiny
mode: exit 0 and the lines that carry its figures. Scripts that compare with an outside tool (wrk,
fakellm from PyPI) either run the comparison or print why they skipped it; their loadgate-only parts
always run. Nothing here asserts a figure's size (the machines are shared and noisy), only that the
figures are there and that every request was counted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from child_env import child_env

REPO = Path(__file__).resolve().parents[2]
NUMBER = r"[-+]?\d+(?:\.\d+)?"


def run_tiny(script: str, timeout: float) -> str:
    """`python bench/SCRIPT --tiny` from the repository root; its stdout (exit 0 asserted)."""
    done = subprocess.run(
        [sys.executable, f"bench/{script}", "--tiny"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stdout


def lines_matching(pattern: str, text: str) -> list[re.Match[str]]:
    return list(re.finditer(pattern, text, re.M))


@pytest.mark.timeout(150)
def test_bench_accuracy_tiny_prints_every_metric_and_the_storage_ratio():
    out = run_tiny("bench_accuracy.py", timeout=140)
    for metric in ("TTFT", "ITL", "TPOT", "E2E"):
        for pct in ("50%", "90%", "95%", "99%"):
            assert lines_matching(rf"^{metric}\s+{pct}\s+\d+\s+{NUMBER}\s+{NUMBER}\s", out), (
                metric,
                pct,
                out,
            )
    assert lines_matching(
        rf"^worst storage error: loadgate {NUMBER}%  vs  Locust {NUMBER}%  \(ratio ", out
    ), out
    assert lines_matching(rf"^worst harness-vs-truth error \(loadgate CSV\): {NUMBER}%$", out), out


@pytest.mark.timeout(120)
def test_bench_gate_tiny_times_the_gate_beyond_startup():
    out = run_tiny("bench_gate.py", timeout=110)
    assert lines_matching(r"^synthetic run: 0\.01 h, \d+ history rows", out), out
    assert lines_matching(r"^check_sla\.py \(whole gate\)\s+[\d.]+ s   \(exit [01]\)$", out), out
    assert lines_matching(
        r"^gate beyond start-up\s+-?[\d.]+ s   target < 1\.000 s   ratio -?[\d.]+x of target$", out
    )


@pytest.mark.timeout(240)
def test_bench_mock_tiny_checks_both_servers_and_holds_every_stream():
    out = run_tiny("bench_mock.py", timeout=230)
    assert "  loadgate mock serves http://127.0.0.1:" in out, out
    # fakellm comes from PyPI: installed on first use, or the reason it could not be is printed
    fakellm = lines_matching(
        r"^  fakellm \S+ serves http://127\.0\.0\.1:\d+/v1/chat/completions and answers", out
    )
    assert fakellm or lines_matching(r"^  fakellm comparison skipped: `.+` failed \(exit \d+\): .+", out), out
    if lines_matching(
        r"^  throughput rounds skipped: `wrk` not found on PATH \(Debian: apt-get install wrk\)$", out
    ):
        assert "round 1" not in out
    else:
        assert lines_matching(r"^  round 1 loadgate mock\s+\d+ req/s wall", out), out
        assert lines_matching(r"^  loadgate mock\s+median\s+\d+ req/s wall", out), out
        if fakellm:
            assert lines_matching(r"^  ratio loadgate/fakellm: [\d.]+x per server CPU-second", out), out
    assert "  opened 50, completed 50 with every token and [DONE], peak active" in out, out
    assert lines_matching(r"^  wall time [\d.]+ s, mock RSS idle \d+ MiB, peak \d+ MiB", out), out


@pytest.mark.timeout(180)
def test_bench_overhead_tiny_prints_both_ratios_with_their_targets():
    out = run_tiny("bench_overhead.py", timeout=170)
    for mode, target in (("non-stream", "0.85"), ("stream", "0.70")):
        assert lines_matching(rf"^{mode}\s+[\d.]+\s+[\d.]+\s+[\d.]+   \(target >= {target}x\)$", out), (
            mode,
            out,
        )


@pytest.mark.timeout(150)
def test_bench_streaming_tiny_compares_ttft_and_itl_with_the_truth_log():
    out = run_tiny("bench_streaming.py", timeout=140)
    assert lines_matching(r"^machine: \d+ CPUs", out), out
    head = lines_matching(
        rf"^streams 4: {NUMBER} tokens/s \(ideal \d+\), client CPU {NUMBER} s per 1k tokens .*"
        r"loadgen lag p99 [\d.]+ ms \(max [\d.]+ ms, longest GC pause [\d.]+ ms\), (\d+) requests, 0 failures, "
        r"Locust exit 0; mock [\d.]+ cores$",
        out,
    )
    assert head and int(head[0].group(1)) > 0, out
    if Path("/proc/self/schedstat").exists():  # how long each event loop waited for its CPU (noise)
        cpus = ", ".join(rf"CPU {n} \d+ ms" for n in range(os.cpu_count() or 1))  # and the hypervisor's steal
        steal = rf"; the hypervisor held back {cpus} \(steal: other virtual machines\)"
        assert lines_matching(
            rf"^  waited for a CPU .*: Locust's loop \d+ ms, the mock's \d+ ms{steal}$", out
        ), out
    assert lines_matching(r"^setup: .*spawn rate N/2\.08 s \(spread\)", out), out
    for metric in ("TTFT", "ITL "):
        for pct in ("p50", "p99"):
            assert lines_matching(
                rf"^  {metric} {pct}  truth\s+{NUMBER} ms  loadgate\s+{NUMBER} ms  error\s+{NUMBER} ms", out
            ), (metric, pct, out)
        # every streamed request (TTFT) and every gap between chunks (ITL) the mock sent was counted once
        counts = lines_matching(rf"^  {metric} p50 .*\((\d+) truth samples, (\d+) loadgate\)$", out)
        assert counts and counts[0].group(1) == counts[0].group(2) != "0", out
    assert lines_matching(r"^  within targets \(.*\): (?:yes|no)$", out), out
    assert lines_matching(r"^largest stream count within the targets: (?:4|none) \(of 4\)$", out), out
