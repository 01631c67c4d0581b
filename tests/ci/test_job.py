"""ci/run_load_gate.sh (loadgate/job.py) end to end: real mock, real Locust, real gate, real files."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from loadgate import job as job_module
from loadgate.job import free_port

from .conftest import HERE, ROOT, repo_env

SECRET = "sk-loadgate-test-secret-0042"
PASS = str(HERE / "pass_thresholds.yaml")
BREACH_RULES = "thresholds:\n  Aggregated:\n    - requests > 1000000000\n"  # no short run gets there


def job(args: list[str], cwd: Path, timeout: float = 90, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadgate.job", *args],
        cwd=cwd,
        env=repo_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rules(tmp_path: Path, text: str) -> str:
    path = tmp_path / "thresholds.yaml"
    path.write_text(text)
    return str(path)


def stats_rows(prefix: Path) -> dict[str, dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {f"{r['Type']} {r['Name']}".strip(): r for r in csv.DictReader(f)}


SHORT = ["--run-time", "5s", "--warmup", "2s", "--users", "4", "--spawn-rate", "4"]


# -- bad input: one line, exit 2, before any load ---------------------------------------------------
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--bogus"], {}, "run_load_gate: error: unrecognized arguments: --bogus; see --help"),
        (["--users", "0"], {}, "run_load_gate: error: --users: must be >= 1 (got 0)"),
        (
            [],
            {"LOADGATE_USERS": "many"},
            "run_load_gate: error: --users: not an integer (got 'many'); use a whole number >= 1",
        ),
        (["--spawn-rate", "-1"], {}, "run_load_gate: error: --spawn-rate: must be > 0 (got -1)"),
        (
            ["--run-time", "5x"],
            {},
            "run_load_gate: error: --run-time: not a duration (got '5x'); use e.g. 40s, 5m, 1h30m or seconds",
        ),
        (
            ["--run-time", "1.5s"],
            {},
            "run_load_gate: error: --run-time: whole seconds only (got '1.5s'); use e.g. 40s, 5m, 1h30m or seconds",
        ),
        (
            ["--run-time", "1m", "--warmup", "60000ms"],
            {},
            "run_load_gate: error: --warmup: must be shorter than --run-time (got 60s >= 60s)",
        ),
        (
            ["--run-time", "5s", "--warmup", "5s"],
            {},
            "run_load_gate: error: --warmup: must be shorter than --run-time (got 5s >= 5s)",
        ),
        (
            ["--profile", "ramp"],
            {},
            "run_load_gate: error: --profile: unknown value (got 'ramp'); choose one of smoke, load, stress, spike, soak, breakpoint, normal-day, black-friday, maintenance-window, none",
        ),
        (
            ["--workers", "2", "--processes", "2"],
            {},
            "run_load_gate: error: --workers, --expect-workers and --processes exclude each other; pick one",
        ),
        (
            ["--host", "ftp://x"],
            {},
            "run_load_gate: error: --host: not an http(s) URL (got 'ftp://x'); use e.g. https://gateway:8443",
        ),
        (
            ["--thresholds", "nope.yaml"],
            {},
            "run_load_gate: error: --thresholds: file not found (got 'nope.yaml'); give an existing YAML file",
        ),
        (
            ["--baseline", "nowhere/run", "--thresholds", str(HERE / "pass_thresholds.yaml")],
            {},
            "run_load_gate: error: --baseline: nowhere/run_stats.csv not found (got 'nowhere/run'); give the CSV prefix of a saved run, e.g. baseline/loadgate",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, env, message):
    done = job(args, tmp_path, timeout=30, **env)
    assert done.returncode == 2
    assert done.stderr == message + "\n"
    assert not (tmp_path / "results").exists()


def test_flags_win_over_env(tmp_path):
    done = job(["--users", "0"], tmp_path, timeout=30, LOADGATE_USERS="3")
    assert done.stderr == "run_load_gate: error: --users: must be >= 1 (got 0)\n"


@pytest.mark.timeout(60)
def test_shell_entry_point_checks_its_input(tmp_path):
    done = subprocess.run(
        ["bash", str(ROOT / "ci" / "run_load_gate.sh"), "--users", "x"],
        cwd=tmp_path,
        env=repo_env(),
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "run_load_gate: error: --users: not an integer (got 'x'); use a whole number >= 1"
    )
    help_text = subprocess.run(
        ["bash", str(ROOT / "ci" / "run_load_gate.sh"), "--help"],
        cwd=tmp_path,
        env=repo_env(),
        capture_output=True,
        text=True,
        timeout=50,
    ).stdout
    for documented in (
        "[env LOADGATE_HOST; default: empty]",
        "[env LOADGATE_USERS; default: 20]",
        "[env LOADGATE_RUN_TIME; default: 40s]",
        "[env LOADGATE_WARMUP; default: 10s]",
        "[env LOADGATE_SPAWN_RATE; default: 10]",
        "[env LOADGATE_PROFILE; default: load]",
        "[env LOADGATE_RESULTS; default: results]",
        "OPENAI_API_KEY only",
    ):
        assert documented in " ".join(help_text.split()), documented


def test_broken_thresholds_exit_2_before_any_load(tmp_path):
    broken = rules(tmp_path, "thresholds:\n  Aggregated:\n    - p(95) < lots\n")
    started = time.monotonic()
    done = job(["--thresholds", broken], tmp_path, timeout=30)
    assert done.returncode == 2
    assert done.stderr == (
        f"run_load_gate: error: {broken}:3: bad value 'lots' (got \"p(95) < lots\"); write "
        "milliseconds as a number (3000) or with a unit: 250ms, 3s, 1m\n"
    )
    assert time.monotonic() - started < 15


@pytest.mark.timeout(30)
def test_unhealthy_target_exits_2(tmp_path):
    port = free_port()  # nothing listens here
    done = job(
        ["--host", f"http://user:pw@127.0.0.1:{port}", "--health-timeout", "1", "--thresholds", PASS],
        tmp_path,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"run_load_gate: error: nothing listens at http://127.0.0.1:{port}: connection refused for 1s; start "
        "the target or fix --host"
    )
    assert "pw" not in done.stderr


# -- the job against the embedded target ------------------------------------------------------------
@pytest.mark.timeout(90)
def test_job_passes_and_leaves_one_results_folder(tmp_path):
    results = tmp_path / "out"
    results.mkdir()
    (results / "loadgate_stale_stats.csv").write_text("left over by an older run\n")
    (results / "notes.txt").write_text("not the job's: kept\n")
    summary = tmp_path / "step_summary.md"  # as on GitHub Actions
    done = job(
        [*SHORT, "--results", str(results), "--thresholds", PASS],
        tmp_path,
        OPENAI_API_KEY=SECRET,
        GITHUB_STEP_SUMMARY=str(summary),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = {p.name for p in results.iterdir()}
    assert {
        "loadgate_stats.csv",
        "loadgate_stats_history.csv",
        "loadgate_failures.csv",
        "loadgate_llm_stats.csv",
        "loadgate_loadgate.json",
        "report.html",
        "locust_report.html",
        "notes.txt",
        "junit.xml",
        "verdict.json",
        "verdict.md",
        "verdict.txt",
        "locust.log",
        "job.json",
        "mock_truth.jsonl",
        "requests.jsonl",
    } <= names
    assert "loadgate_stale_stats.csv" not in names
    assert not [n for n in names if n.startswith(job_module.STAGING_PREFIX)]  # published and removed
    assert "SLA MET" in done.stdout and "run_load_gate: PASS, exit 0" in done.stderr
    # loadgate's report and Locust's are different files
    assert "<title>loadgate report" in (results / "report.html").read_text()
    assert "locust" in (results / "locust_report.html").read_text()[:3000].lower()
    # the verdict table once: in verdict.md, which the workflow appends; the gate writes no copy of its own
    verdict_md = (results / "verdict.md").read_text()
    assert verdict_md.count("| Result | Row |") == 1 and verdict_md.count("`report.html`") == 1
    assert verdict_md.startswith("### loadgate SLA gate: SLA MET") and "Run: `loadgate`" in verdict_md
    assert not summary.exists()
    meta = json.loads((results / "loadgate_loadgate.json").read_text())
    assert meta["profile"] == "load" and meta["warmup_s"] == 2 and meta["run_mode"] == "local"
    manifest = json.loads((results / "job.json").read_text())
    assert manifest["exit_code"] == 0 and manifest["exit_codes"]["locust"] in (0, 1)
    assert manifest["report_exit_code"] == 0 and len(manifest["run_id"]) == 12
    aggregated = stats_rows(results / "loadgate")["Aggregated"]
    assert int(aggregated["Request Count"]) > 0
    for path in results.iterdir():
        assert SECRET not in path.read_text(errors="replace"), path.name


@pytest.mark.timeout(90)
def test_job_exits_1_when_the_sla_is_breached(tmp_path):
    done = job(
        [
            "--run-time",
            "4s",
            "--warmup",
            "1s",
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--mock-config",
            "zero-latency",
            "--results",
            str(tmp_path / "r"),
            "--thresholds",
            rules(tmp_path, BREACH_RULES),
        ],
        tmp_path,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "SLA BREACHED" in done.stdout
    assert "<failure" in (tmp_path / "r" / "junit.xml").read_text()
    assert "run_load_gate: FAIL (SLA breached or no data), exit 1" in done.stderr


# -- distributed ------------------------------------------------------------------------------------
def truth_by_worker(truth_log: Path) -> Counter:
    rows = [json.loads(line) for line in truth_log.read_text().splitlines() if line.strip()]
    probe = "loadgate-probe-"  # the job's start-up probe (not counted in Locust's stats, by design)
    return Counter(
        r["x_request_id"].split("-")[0]
        for r in rows
        if r["path"] == "/v1/models" and not r["x_request_id"].startswith(probe)
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("mode", "run_mode"), [("--workers", "master"), ("--processes", "processes")])
def test_master_and_two_workers_merge_every_request(tmp_path, mode, run_mode):
    results = tmp_path / "r"
    done = job(
        [
            mode,
            "2",
            "--profile",
            "none",
            "--run-time",
            "5s",
            "--warmup",
            "0",
            "--users",
            "4",
            "--locustfile",
            str(HERE / "worker_locustfile.py"),
            "--results",
            str(results),
            "--thresholds",
            PASS,
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    manifest = json.loads((results / "job.json").read_text())
    sent = truth_by_worker(results / "mock_truth.jsonl")
    assert len(sent) == 2 and all(n > 0 for n in sent.values()), sent
    assert str(manifest["processes"]["locust"]) not in sent  # the master sends nothing itself
    if mode == "--workers":
        assert set(sent) == {str(manifest["processes"]["worker-1"]), str(manifest["processes"]["worker-2"])}
        assert manifest["exit_codes"]["worker-1"] == manifest["exit_codes"]["worker-2"] == 0
    merged = stats_rows(results / "loadgate")
    assert int(merged["GET /v1/models"]["Request Count"]) == sum(sent.values())
    assert int(merged["Aggregated"]["Request Count"]) == sum(sent.values())
    assert sorted(p.name for p in results.glob("*_stats.csv")) == [
        "loadgate_llm_stats.csv",
        "loadgate_stats.csv",
    ]
    meta = json.loads((results / "loadgate_loadgate.json").read_text())
    assert (meta["run_mode"], meta["workers"]) == (run_mode, 2)
    # each worker's request log merged into one, every request once, by start time
    lines = [json.loads(line) for line in (results / "requests.jsonl").read_text().splitlines()]
    assert len(lines) == sum(sent.values()) and {line["worker"] for line in lines} == {0, 1}
    assert [line["start"] for line in lines] == sorted(line["start"] for line in lines)
    assert not list(results.glob("requests.*.jsonl"))


LOST_VERDICT = (
    r'FAIL lost_workers of "run": observed 1, required == 0 \(worker (?P<id>\S+) \(index \d\) lost '
    r"[0-9.]+ s into the run \(no heartbeat\) with 2 users; (?P<share>[0-9.]+)% of the planned user-seconds "
    r"missing; re-run, or accept it with --allow-lost-workers\)"
)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("allow", [False, True])
def test_a_killed_worker_fails_the_run_unless_accepted(tmp_path, allow):
    """A worker SIGKILLed mid-run: named, its missing share given, exit 1 (never SLA MET); its users move
    to the other worker; the merged counts are the survivor's traffic plus what the lost one reported."""
    results = tmp_path / "r"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadgate.job",
            "--workers",
            "2",
            "--profile",
            "none",
            "--run-time",
            "8s",
            "--warmup",
            "0",
            "--users",
            "4",
            "--locustfile",
            str(HERE / "worker_locustfile.py"),
            "--results",
            str(results),
            "--thresholds",
            PASS,
            *(["--allow-lost-workers"] if allow else []),
        ],
        cwd=tmp_path,
        env=repo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = time.monotonic()
    try:
        staging = staging_folder(results)  # the run's own folder until it ends
        for _ in range(200):  # the job writes its manifest once every process is started
            if (staging / "job.json").is_file() and (staging / "loadgate_stats_history.csv").is_file():
                break
            time.sleep(0.1)
        time.sleep(3)
        victim = json.loads((staging / "job.json").read_text())["processes"]["worker-2"]
        os.kill(victim, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - started
    assert elapsed < 8 + 20, f"the run took {elapsed:.0f}s"
    assert f"run_load_gate: warning: worker-2 (pid {victim}) exited with code -9" in stderr
    manifest = json.loads((results / "job.json").read_text())
    assert len(manifest["missing_workers"]) == 1 and manifest["exit_codes"]["worker-2"] == -9
    meta = json.loads((results / "loadgate_loadgate.json").read_text())
    (lost,) = meta["lost_workers"]
    assert (lost["id"], lost["reason"], lost["users"]) == (manifest["missing_workers"][0], "no heartbeat", 2)
    assert 0 < meta["missing_user_seconds_share"] < 1 and meta["allow_lost_workers"] is allow
    share = f"{meta['missing_user_seconds_share'] * 100:.1f}%"
    assert "rebalancing its users onto the remaining workers" in stderr
    # every request of the surviving worker is counted; of the lost one, what it reported before it died
    sent = truth_by_worker(results / "mock_truth.jsonl")
    survivor = manifest["processes"]["worker-1"]
    merged = int(stats_rows(results / "loadgate")["Aggregated"]["Request Count"])
    assert merged == sent[str(survivor)] + lost["reported_requests"]
    assert lost["reported_requests"] <= sent[str(victim)]
    lines = [v["line"] for v in json.loads((results / "verdict.json").read_text())["verdicts"]]
    lost_line = [line for line in lines if line.startswith("FAIL lost_workers")]
    if allow:
        assert proc.returncode == 0, stdout + stderr[-3000:]
        assert lost_line == [] and "SLA MET" in stdout
        assert (
            f"run_load_gate: lost capacity: {share} of the planned user-seconds missing; accepted by --allow-lost-workers"
            in stderr
        )
        return
    assert proc.returncode == 1, stdout + stderr[-3000:]
    assert len(lost_line) == 1 and re.fullmatch(LOST_VERDICT, lost_line[0]), lines
    match = re.fullmatch(LOST_VERDICT, lost_line[0])
    assert match is not None and (match["id"], f"{match['share']}%") == (lost["id"], share)
    assert "SLA BREACHED" in stdout and "run_load_gate: FAIL (SLA breached or no data), exit 1" in stderr
    assert (
        f"run_load_gate: lost capacity: {share} of the planned user-seconds missing; the gate fails the run "
        "(--allow-lost-workers accepts it)"
    ) in stderr
    assert re.search(
        rf"run_load_gate: lost capacity: worker {lost['id']} \(index \d\) lost [0-9.]+ s into the run \(no "
        r"heartbeat\) with 2 users; its requests since its last report are in no file",
        stderr,
    )


@pytest.mark.timeout(90)
def test_the_embedded_target_dying_mid_run_is_exit_2_at_once(tmp_path):
    """No valid run: the job stops at once (not after the 30 s run time), naming the exit code and the
    target's last stderr line; no verdict is given."""
    results = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgate.job", "--profile", "none", "--run-time", "30s", "--warmup", "0"]
        + ["--users", "2", "--results", str(results), "--thresholds", PASS],
        cwd=tmp_path,
        env=repo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        staging = None  # the run writes into results/.partial-* until it ends
        for _ in range(300):
            staging = next(iter(sorted(results.glob(".partial-*"))), None)
            if (
                staging
                and (staging / "job.json").is_file()
                and (staging / "loadgate_stats_history.csv").is_file()
            ):
                break
            time.sleep(0.1)
        time.sleep(2)
        assert staging is not None
        mock_pid = json.loads((staging / "job.json").read_text())["processes"]["mock"]
        os.kill(mock_pid, signal.SIGKILL)
        killed = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, stdout + stderr[-3000:]
    assert time.monotonic() - killed < 15  # at once, not after the run time
    lines = [line for line in stderr.splitlines() if line.startswith("run_load_gate: error:")]
    assert len(lines) == 1 and re.fullmatch(
        rf"run_load_gate: error: the embedded target \(pid {mock_pid}\) died \d+s into the run with exit code "
        r"-9: .+; no valid run",
        lines[0],
    ), lines
    manifest = json.loads((results / "job.json").read_text())
    assert (manifest["exit_code"], manifest["exit_codes"]["mock"]) == (2, -9)
    assert not (results / "verdict.json").exists() and "SLA" not in stdout


def test_target_died_names_the_exit_code_and_the_last_stderr_line():
    class Dead:
        returncode = 1
        proc = type("P", (), {"pid": 4242})()

        @staticmethod
        def stderr() -> str:
            return "loadgate mock listening\nTraceback (most recent call last):\n  ...\nMemoryError: out of memory\n"

    line = job_module.target_died(Dead(), time.time() - 12.4)  # type: ignore[arg-type]
    assert line == (
        "the embedded target (pid 4242) died 12s into the run with exit code 1: MemoryError: out of memory; "
        "no valid run"
    )


@pytest.mark.timeout(90)
def test_master_waits_for_workers_started_elsewhere(tmp_path):
    """The compose/Kubernetes mode: the job runs only the master; workers come from worker_command."""
    port = free_port()
    args = [
        "--expect-workers",
        "2",
        "--master-bind-host",
        "127.0.0.1",
        "--master-port",
        str(port),
        "--profile",
        "none",
        "--run-time",
        "4s",
        "--warmup",
        "0",
        "--users",
        "2",
        "--locustfile",
        str(HERE / "worker_locustfile.py"),
        "--results",
        str(tmp_path / "r"),
        "--thresholds",
        PASS,
    ]
    cfg = job_module.parse_config(args, {})
    master = subprocess.Popen(
        [sys.executable, "-m", "loadgate.job", *args],
        cwd=tmp_path,
        env=repo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers = [
        subprocess.Popen(
            job_module.worker_command(cfg, "127.0.0.1", port),
            cwd=tmp_path,
            env=repo_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        stdout, stderr = master.communicate(timeout=60)
        for worker in workers:
            assert worker.wait(15) == 0  # the master told them to quit
    finally:
        for proc in (master, *workers):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert master.returncode == 0, stdout + stderr[-3000:]
    sent = truth_by_worker(tmp_path / "r" / "mock_truth.jsonl")
    assert set(sent) == {str(w.pid) for w in workers}
    assert int(stats_rows(tmp_path / "r" / "loadgate")["Aggregated"]["Request Count"]) == sum(sent.values())


def job_process(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "loadgate.job", *args],
        cwd=cwd,
        env=repo_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def staging_folder(results: Path, timeout_s: float = 20) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [p for p in results.glob(f"{job_module.STAGING_PREFIX}*") if p.is_dir()]
        if found:
            return found[0]
        time.sleep(0.05)
    pytest.fail(f"no staging folder in {results}")


@pytest.mark.timeout(60)
def test_progress_lines_arrive_while_the_run_goes_on(tmp_path):
    proc = job_process(
        ["--run-time", "8s", *SHORT[2:], "--progress-interval", "1s", "--results", str(tmp_path / "r")]
        + ["--thresholds", PASS],
        tmp_path,
    )
    try:
        seen = []
        for line in proc.stderr:  # read as the job writes: a line is seen when it is printed
            if line.startswith("loadgate: 0:"):
                seen.append((line, proc.poll()))
                # past the warm-up reset, an interval with requests (4 users may finish none in a second)
                if len(seen) >= 2 and "| last " in line and "% failed" in line:
                    break
        _, rest = proc.communicate(timeout=50)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest[-3000:]
    assert len(seen) >= 2 and {running for _, running in seen} == {None}  # all before the job ended
    line = seen[-1][0]
    assert line.startswith("loadgate: 0:0") and "/0:08 | 4 users | " in line
    for part in ("req/s", "% failed", "TTFT p95 ", "ITL p95 ", "tok/s out"):
        assert part in line, line


@pytest.mark.timeout(60)
def test_an_interrupted_run_replaces_the_last_run_and_stops_everything_it_started(tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    old_run = {"loadgate_stats.csv": "old", "verdict.md": "OLD PASS", "report.html": "old", "junit.xml": "x"}
    for name, text in old_run.items():
        (results / name).write_text(text)
    proc = job_process(
        ["--run-time", "60s", "--warmup", "0", "--users", "2", "--results", str(results)]
        + ["--thresholds", PASS],
        tmp_path,
    )
    try:
        staging = staging_folder(results)
        for _ in range(200):
            if (staging / "loadgate_stats_history.csv").is_file():
                break
            time.sleep(0.1)
        # while the run goes on, the last run's files are untouched beside it
        assert {name: (results / name).read_text() for name in old_run} == old_run
        started = json.loads((staging / "job.json").read_text())["processes"]
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2
    assert stderr.splitlines()[-1] == "run_load_gate: interrupted; stopped everything it started"
    assert set(started) == {"mock", "locust"}
    for pid in started.values():  # every process the job started is gone
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # one run's files: the interrupted run's (no verdict: it never got one), nothing of the old run
    names = {p.name for p in results.iterdir()}
    assert not names & {"verdict.md", "report.html", "junit.xml"}
    assert "loadgate_stats.csv" not in names or (results / "loadgate_stats.csv").read_text() != "old"
    assert {"job.json", "locust.log", "loadgate_stats_history.csv"} <= names
    assert not [n for n in names if n.startswith(job_module.STAGING_PREFIX)]
    assert json.loads((results / "job.json").read_text())["exit_code"] == 2


def test_a_killed_runs_leftovers_are_removed_and_a_live_run_is_not_disturbed(tmp_path):
    results = tmp_path / "r"
    left = results / f"{job_module.STAGING_PREFIX}killed"
    left.mkdir(parents=True)
    (left / "loadgate_stats.csv").write_text("half a run\n")
    (left / job_module.STAGING_LOCK).write_text("")  # nobody holds it: the job that made it is gone
    (results / "verdict.md").write_text("the last complete run\n")
    staging = job_module.Staging.create(results)
    try:
        assert not left.exists() and (results / "verdict.md").is_file()
        # a second job on the same folder while the first lives: refused, one line, before any load
        done = job(["--results", str(results), "--thresholds", PASS], tmp_path, timeout=30)
        assert done.returncode == 2
        assert done.stderr == (
            f"run_load_gate: error: --results: another run is writing into {results} ({staging.path.name}); "
            "wait for it to end or give another --results\n"
        )
        (staging.path / "verdict.md").write_text("this run\n")
    finally:
        staging.publish(results)
    assert (results / "verdict.md").read_text() == "this run\n"
    assert sorted(p.name for p in results.iterdir()) == ["verdict.md"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("locustfile", "applied"), [("profile_locustfile.py", True), ("worker_locustfile.py", False)]
)
def test_a_profile_the_locustfile_cannot_apply_is_reported(tmp_path, tiny_target, locustfile, applied):
    done = job(
        [
            "--host",
            tiny_target(),
            "--profile",
            "smoke",
            "--run-time",
            "2s",
            "--warmup",
            "0",
            "--locustfile",
            str(HERE / locustfile),
            "--results",
            str(tmp_path / "r"),
            "--thresholds",
            PASS,
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert json.loads((tmp_path / "r" / "job.json").read_text())["profile_applied"] is applied
    warning = (
        "run_load_gate: warning: profile smoke was not applied: worker_locustfile.py does not import "
        "loadgate.harness.profiles.LoadProfileShape"
    )
    assert (warning in done.stderr) is not applied


def test_a_baseline_inside_the_results_folder_is_refused(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "loadgate_stats.csv").write_text("Type,Name\n")
    done = job(["--baseline", "results/loadgate", "--thresholds", PASS], tmp_path, timeout=30)
    assert done.returncode == 2
    assert done.stderr == (
        "run_load_gate: error: --baseline: 'results/loadgate' is inside the results folder, "
        "which each run empties; copy it elsewhere first, e.g. baseline/loadgate\n"
    )
    assert (tmp_path / "results" / "loadgate_stats.csv").is_file()


@pytest.mark.parametrize(
    "cores, embedded, expected", [(2, True, 0), (2, False, 2), (4, True, 3), (8, False, 8), (1, False, 0)]
)
def test_processes_auto_is_one_per_core_minus_the_embedded_target(cores, embedded, expected):
    assert job_module.auto_processes(embedded, cores) == expected


def test_processes_auto_is_accepted_and_resolved_before_load(tmp_path):
    cfg = job_module.parse_config(["--processes", "auto", "--host", "http://127.0.0.1:9"], {})
    assert cfg.processes == job_module.auto_processes(embedded=False)
    with pytest.raises(job_module.JobError) as info:
        job_module.parse_config(["--processes", "many"], {})
    assert str(info.value) == "--processes: not an integer (got 'many'); use a whole number >= -1, or auto"
