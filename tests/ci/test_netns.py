"""A distributed run across separate hosts: the target, the master and two workers each in a network
namespace of their own, joined through veth pairs to a bridge in a fifth namespace, on addresses this test
assigns (10.200.N.0/24, inside these namespaces only). One worker is killed mid-run: the run is not a
pass, the lost worker is named, and the merged counts equal the target's truth log for the surviving
traffic (plus exactly what the lost worker reported before it died).

Skipped, with the reason, where network namespaces cannot be created (no root, no `ip`, a container
without CAP_SYS_ADMIN). Namespaces and processes are removed by the fixture, also when the test fails.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import HERE, ROOT, repo_env

PORT_TARGET, PORT_MASTER = 8000, 5557


@dataclass
class Lab:
    """The namespaces of one test: name -> (namespace, address)."""

    tag: str
    subnet: str
    hosts: dict[str, tuple[str, str]] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def address(self, host: str) -> str:
        return self.hosts[host][1]

    def start(self, host: str, args: list[str], log: Path) -> subprocess.Popen:
        """A process on `host` (inside its namespace), output to `log`."""
        with log.open("w") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.hosts[host][0], *args],
                cwd=ROOT,
                env=repo_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.procs.append(proc)
        return proc


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


@pytest.fixture
def lab() -> Iterator[Lab]:
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2): network namespaces cannot be made here")
    tag = f"{os.getpid() % 10000}{random.randrange(100, 999)}"  # unique names: parallel runs never collide
    net = Lab(tag, f"10.200.{random.randrange(1, 254)}")
    switch = f"lg{tag}sw"
    made: list[str] = []
    try:
        try:
            _ip("netns", "add", switch)
        except subprocess.CalledProcessError as error:
            pytest.skip(f"`ip netns add` is not permitted here: {error.stderr.strip()}")
        made.append(switch)
        _ip("-n", switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", switch, "link", "set", "br0", "up")
        for number, host in enumerate(("target", "master", "worker1", "worker2"), start=1):
            namespace, address = f"lg{tag}{host[0]}{host[-1]}", f"{net.subnet}.{number}"
            _ip("netns", "add", namespace)
            made.append(namespace)
            _ip(
                "-n",
                namespace,
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                f"p{number}",
                "netns",
                switch,
            )
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            _ip("-n", switch, "link", "set", f"p{number}", "master", "br0")
            _ip("-n", switch, "link", "set", f"p{number}", "up")
            net.hosts[host] = (namespace, address)
        yield net
    finally:
        for proc in net.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
        for namespace in reversed(made):  # deleting a namespace deletes its veth ends too
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=20)
        leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"lg{tag}" not in leftover


def wait_for(log: Path, pattern: str, proc: subprocess.Popen, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if re.search(pattern, log.read_text(errors="replace")):
            return
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode} before {pattern!r}: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    pytest.fail(f"no {pattern!r} within {timeout_s}s: {log.read_text()[-2000:]}")


@pytest.mark.timeout(120)
def test_a_worker_host_lost_mid_run_fails_the_run_and_the_survivors_traffic_is_counted_exactly(tmp_path, lab):
    truth_log = tmp_path / "truth.jsonl"
    target = lab.start(
        "target",
        [sys.executable, "-m", "loadgate.mock", "--host", lab.address("target"), "--port", str(PORT_TARGET)]
        + ["--truth-log", str(truth_log)],
        tmp_path / "target.log",
    )
    wait_for(tmp_path / "target.log", "loadgate mock listening on", target)
    host = f"http://{lab.address('target')}:{PORT_TARGET}"
    prefix = tmp_path / "run"
    locust = [sys.executable, "-m", "locust", "-f", str(HERE / "worker_locustfile.py")]
    master = lab.start(
        "master",
        [
            *locust,
            "--master",
            "--master-bind-host",
            lab.address("master"),
            "--master-bind-port",
            str(PORT_MASTER),
        ]
        + ["--expect-workers", "2", "--headless", "-u", "4", "-r", "4", "-t", "10s", "--host", host]
        + ["--csv", str(prefix), "--warmup", "0s", "--stop-timeout", "3", "--only-summary"],
        tmp_path / "master.log",
    )
    workers = {
        name: lab.start(
            name,
            [*locust, "--worker", "--master-host", lab.address("master"), "--master-port", str(PORT_MASTER)],
            tmp_path / f"{name}.log",
        )
        for name in ("worker1", "worker2")
    }
    wait_for(tmp_path / "master.log", r"All users spawned", master)
    time.sleep(3)
    workers["worker2"].send_signal(signal.SIGKILL)  # the host is gone: no goodbye, no last report
    assert master.wait(timeout=60) == 1, (tmp_path / "master.log").read_text()[-3000:]
    assert workers["worker1"].wait(timeout=20) == 0
    target.send_signal(signal.SIGTERM)  # graceful: the truth log is flushed
    assert target.wait(timeout=20) == 0

    log = (tmp_path / "master.log").read_text()
    meta = json.loads(Path(f"{prefix}_loadgate.json").read_text())
    (lost,) = meta["lost_workers"]
    assert lost["reason"] == "no heartbeat" and lost["users"] == 2
    survivor = next(w for w in meta["workers_reported"] if w != lost["id"])
    assert re.search(
        rf"loadgate: worker {lost['id']} \(index \d\) lost mid-run \(no heartbeat\) [0-9.]+ s into the run with 2 "
        r"users; its requests since its last report are missing; rebalancing its users onto the remaining workers",
        log,
    )
    share = meta["missing_user_seconds_share"]
    assert 0 < share < 0.8  # rebalanced: the survivor ran all 4 users after the loss was noticed
    assert (
        f"loadgate: lost 1 worker(s): {lost['id']} (no heartbeat); {share * 100:.1f}% of the planned "
        "user-seconds missing; the run fails (exit 1; --allow-lost-workers accepts it)"
    ) in log

    rows = [json.loads(line) for line in truth_log.read_text().splitlines() if line.strip()]
    sent = Counter(r["x_request_id"].split("-")[0] for r in rows if r["path"] == "/v1/models")
    survivor_pid, lost_pid = str(workers["worker1"].pid), str(workers["worker2"].pid)
    assert set(sent) == {survivor_pid, lost_pid}
    with open(f"{prefix}_stats.csv", newline="") as f:
        merged = {r["Name"]: int(r["Request Count"]) for r in csv.DictReader(f)}
    # the surviving traffic, exactly: every request worker1 sent is counted, and nothing else but what
    # the lost worker had reported before it died
    assert meta["workers_reported"][survivor]["requests"] == sent[survivor_pid]
    assert merged["Aggregated"] == merged["/v1/models"] == sent[survivor_pid] + lost["reported_requests"]
    assert lost["reported_requests"] < sent[lost_pid]  # its last seconds are in no file

    verdict = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgate",
            "gate",
            str(prefix),
            "--thresholds",
            str(HERE / "pass_thresholds.yaml"),
        ],
        capture_output=True,
        text=True,
        env=repo_env(),
        timeout=60,
    )
    assert verdict.returncode == 1, verdict.stdout + verdict.stderr
    assert "SLA BREACHED: 1 failed" in verdict.stdout and "lost_workers" in verdict.stdout
