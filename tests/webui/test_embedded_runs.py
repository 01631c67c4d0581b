"""The embedded target in real processes: the real mock via EmbeddedTargets, and real Locust runs."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadgate.harness.embedded import EXIT_EMBEDDED_TARGET, EmbeddedTargets, LoopbackEndpoint, port_is_free

from .support import clean_env, free_port, pids_with_args, processes_args, stop

LOCUSTFILE = Path(__file__).with_name("health_locustfile.py")


def health_status(url: str) -> int:
    import urllib.request

    with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
        return response.status


def run_locust(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 40):
    """A headless Locust run from an empty folder (no locust.conf), loadgate importable.

    Output goes to files, not pipes: a leftover child holding a pipe open must not hang the test.
    """
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--json", *args]
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=clean_env(**(env or {})),
            stdout=stdout,
            stderr=stderr,
        )
    try:
        process.wait(timeout=timeout)
    finally:
        stop(process)
    return subprocess.CompletedProcess(command, process.returncode, out.read_text(), err.read_text())


def totals(result: subprocess.CompletedProcess) -> tuple[int, int]:
    """(requests, failures) of the run's final stats, from Locust's --json output on stdout.

    With --processes every worker prints its own (empty) list first: the master's comes last.
    """
    decoder, text, documents = json.JSONDecoder(), result.stdout.strip(), []
    while text:
        document, end = decoder.raw_decode(text)
        documents.append(document)
        text = text[end:].strip()
    entries = documents[-1]
    return sum(e["num_requests"] for e in entries), sum(e["num_failures"] for e in entries)


@pytest.mark.timeout(30)
def test_ensure_starts_the_real_mock_once_and_stop_all_frees_the_port(caplog):
    port = free_port()
    targets = EmbeddedTargets()
    caplog.set_level(logging.INFO, logger="loadgate.harness.embedded")
    try:
        url = targets.ensure(f"http://localhost:{port}", "on", "zero-latency")
        assert url == f"http://127.0.0.1:{port}"
        assert health_status(url) == 200
        assert targets.ensure(f"http://127.0.0.1:{port}/", "on", None) == url  # already ours: no 2nd start
        started = [r.getMessage() for r in caplog.records if "embedded target started" in r.getMessage()]
        assert len(started) == 1
        assert started[0].startswith(f"loadgate: embedded target started at {url} (config: ")
        assert "zero-latency.yaml" in started[0]
    finally:
        targets.stop_all()
    assert port_is_free(LoopbackEndpoint("127.0.0.1", port))


@pytest.mark.timeout(30)
def test_a_target_that_dies_is_reported_at_once_and_started_again_at_the_next_test_start(caplog):
    port = free_port()
    targets = EmbeddedTargets()
    caplog.set_level(logging.INFO, logger="loadgate.harness.embedded")
    try:
        url = targets.ensure(f"http://127.0.0.1:{port}", "on", None)
        (mock,) = targets._started.values()
        mock.proc.kill()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(r.levelname == "ERROR" for r in caplog.records):
            time.sleep(0.1)  # gevent-patched: lets the watchdog greenlet run
        (error,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert error.startswith(f"loadgate: embedded target at {url} exited unexpectedly (code -9): ")
        assert error.endswith("; requests to it now fail")
        assert targets.ensure(url, "on", None) == url
        assert health_status(url) == 200
    finally:
        targets.stop_all()
    assert [r.levelname for r in caplog.records].count("ERROR") == 1  # a deliberate stop is not an error


@pytest.mark.timeout(40)
def test_headless_run_starts_the_target_loads_it_and_stops_it(tmp_path):
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    result = run_locust(
        tmp_path, "--host", host, "-u", "4", "-r", "4", "-t", "2s", env={"LOADGATE_EMBEDDED_TARGET": "on"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("embedded target started at") == 1
    assert f"loadgate: embedded target started at {host} (config: default profile, pid " in result.stderr
    assert f"loadgate: embedded target at {host} stopped" in result.stderr
    requests, failures = totals(result)
    assert requests > 0
    assert failures == 0
    assert port_is_free(LoopbackEndpoint("127.0.0.1", port))
    # (--processes: test_distributed_ui checks that only the master starts one.)


@pytest.mark.timeout(60)
def test_the_embedded_target_dying_mid_run_ends_it_with_exit_2_and_no_verdict(tmp_path):
    """Plain Locust: the target it started died (killed here) while the test ran. The run stops at once
    (not after its 30 s), exits 2, and records target_died, so the gate gives no verdict either."""
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host]
    command += ["-u", "2", "-r", "2", "-t", "30s", "--csv", str(tmp_path / "run"), "--warmup", "0s"]
    command += ["--embedded-target", "on"]
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(command, cwd=tmp_path, env=clean_env(), stdout=stdout, stderr=stderr)
    try:
        deadline = time.monotonic() + 20
        mocks: list[int] = []
        while time.monotonic() < deadline and not (mocks and (tmp_path / "run_loadgate.json").is_file()):
            mocks = pids_with_args("loadgate.mock", "--host", "127.0.0.1", "--port", str(port))
            time.sleep(0.1)
        (mock_pid,) = mocks
        time.sleep(1)
        os.kill(mock_pid, signal.SIGKILL)
        killed = time.monotonic()
        process.wait(timeout=30)
    finally:
        stop(process)
    assert process.returncode == 2, err.read_text()[-3000:]
    assert time.monotonic() - killed < 15
    log = err.read_text()
    assert f"loadgate: error: no valid run: the embedded target at {host} died (exit code -9: " in log
    meta = json.loads((tmp_path / "run_loadgate.json").read_text())
    assert (meta["target_died"]["url"], meta["target_died"]["exit_code"]) == (host, -9)
    rules = tmp_path / "t.yaml"
    rules.write_text("thresholds:\n  Aggregated: ['requests > 0']\n")
    gate = subprocess.run(
        [sys.executable, "-m", "loadgate", "gate", str(tmp_path / "run"), "--thresholds", str(rules)],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert gate.returncode == 2, gate.stdout + gate.stderr
    assert gate.stdout == "" and gate.stderr.startswith(
        f"check_sla: error: {tmp_path / 'run'}_loadgate.json:target_died: no valid run: the target died during it "
        f'(got "the target at {host} exited with code -9 '
    )
    assert gate.stderr.endswith('"); fix or restart the target and re-run the load\n')


@pytest.mark.timeout(30)
def test_on_with_a_remote_host_exits_3_with_one_clear_line(tmp_path):
    result = run_locust(
        tmp_path, "--host", "http://10.1.2.3:8000", "-t", "1s", env={"LOADGATE_EMBEDDED_TARGET": "on"}
    )
    assert result.returncode == EXIT_EMBEDDED_TARGET == 3
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    assert errors[0].endswith(
        "loadgate: error: --embedded-target on: host 'http://10.1.2.3:8000' is not a plain-HTTP loopback URL; "
        "use e.g. --host http://127.0.0.1:8000, or --embedded-target auto/off"
    )
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(40)
def test_exit_3_with_processes_leaves_no_worker_behind(tmp_path):
    args = processes_args(2)
    marker = args[-2:]  # "--master-port N": unique to this run's master and its forked workers
    result = run_locust(
        tmp_path, "--host", "http://10.1.2.3:8000", *args, "-t", "1s", env={"LOADGATE_EMBEDDED_TARGET": "on"}
    )
    assert result.returncode == 3
    deadline = time.monotonic() + 10
    while (left := pids_with_args(*marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:  # clean up before failing: they are this test's own children
        os.kill(pid, signal.SIGKILL)
    assert left == [], "forked workers outlived their master"


@pytest.mark.timeout(40)
def test_auto_loads_the_server_at_a_host_the_user_gave(tmp_path, mock_server):
    existing = mock_server()
    result = run_locust(tmp_path, "--host", existing.url, "-u", "2", "-r", "2", "-t", "2s")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "embedded target" not in result.stderr  # auto starts one only for locust.conf's host
    requests, failures = totals(result)
    assert requests > 0
    assert failures == 0
    assert existing.returncode is None  # not ours: still running after Locust quit
    assert health_status(existing.url) == 200


@pytest.mark.timeout(30)
def test_off_starts_nothing_so_requests_fail(tmp_path):
    port = free_port()
    result = run_locust(
        tmp_path,
        "--host",
        f"http://127.0.0.1:{port}",
        "-u",
        "1",
        "-r",
        "1",
        "-t",
        "1s",
        env={"LOADGATE_EMBEDDED_TARGET": "off"},
    )
    assert result.returncode == 1  # Locust's exit code on request failures
    assert "embedded target" not in result.stderr
    requests, failures = totals(result)
    assert failures == requests > 0
