"""The CI job behind `ci/run_load_gate.sh`: target up, headless Locust, the SLA gate, one results folder.

Steps: start the embedded mock (unless a target host is given) and wait for its /health; run headless
Locust (locally, as a master with N local workers, as a master waiting for N remote workers, or with
Locust's --processes); run `sla/check_sla.py` on the master's CSVs; stop everything it started, also on
SIGINT/SIGTERM; exit with the gate's code. Exit 2 when the job cannot produce a valid measurement (bad
input, unhealthy target, Locust failing to start or crashing): never a pass.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from loadgate.durations import parse_duration

ROOT = Path(__file__).resolve().parents[1]
PROG = "run_load_gate"
EXIT_PASS, EXIT_BREACH, EXIT_BAD_INPUT = 0, 1, 2
PROFILES = ("smoke", "load", "stress", "spike", "soak", "breakpoint")  # loadgate.profiles (imports Locust)
PREFIX_NAME = "loadgate"  # CSV prefix inside the results folder: results/loadgate_stats.csv, ...
# Files the job writes into the results folder besides PREFIX_*; removed before each run so nothing stale
# is ever gated or uploaded.
REPORT_FILES = (
    "report.html",
    "junit.xml",
    "verdict.json",
    "verdict.md",
    "verdict.txt",
    "locust.log",
    "mock_truth.jsonl",
    "job.json",
)
MISSING_WORKER = re.compile(r"Worker (\S+) failed to send heartbeat, setting state to missing")
SHAPE_STARTED = "Shape test starting"  # Locust's log line when a LoadTestShape drives the run


class JobError(Exception):
    """Why the job cannot go on; printed as one line, exit 2."""


class Interrupted(Exception):
    """SIGINT/SIGTERM: stop what was started, exit 2."""


# -- inputs -------------------------------------------------------------------------------------------
@dataclass
class JobConfig:
    host: str | None
    profile: str | None
    users: int
    spawn_rate: float
    run_time: int
    warmup: int
    thresholds: Path
    baseline: str | None
    results: Path
    workers: int
    expect_workers: int
    processes: int
    mock_config: str | None
    locustfile: Path
    master_bind_host: str
    master_port: int
    expect_workers_max_wait: int
    stop_timeout: int
    health_path: str
    health_timeout: int

    @property
    def prefix(self) -> Path:
        return self.results / PREFIX_NAME

    @property
    def run_mode(self) -> str:
        if self.processes:
            return "processes"
        return "master" if self.workers or self.expect_workers else "local"


# (flag, env var, default, help). Flags win over env vars, env vars over defaults.
OPTIONS: list[tuple[str, str | None, str | None, str]] = [
    (
        "--host",
        "LOADGATE_HOST",
        None,
        "target base URL (http[s]://host[:port]); default: start the embedded "
        "mock on a free loopback port. API key: env OPENAI_API_KEY only",
    ),
    (
        "--profile",
        "LOADGATE_PROFILE",
        "load",
        f"load profile: {', '.join(PROFILES)}, or 'none' for a plain constant run (-u/-r/-t)",
    ),
    ("--run-time", "LOADGATE_RUN_TIME", "40s", "test duration, e.g. 40s, 5m, 1h30m (warm-up included)"),
    ("--users", "LOADGATE_USERS", "20", "peak concurrent users (the profile scales from it)"),
    ("--spawn-rate", "LOADGATE_SPAWN_RATE", "10", "users started per second"),
    ("--warmup", "LOADGATE_WARMUP", "10s", "warm-up excluded from the figures (stats reset when it ends)"),
    ("--thresholds", "LOADGATE_THRESHOLDS", "sla/thresholds.yaml", "SLA thresholds file for the gate"),
    (
        "--baseline",
        "LOADGATE_BASELINE",
        None,
        "CSV prefix of a baseline run to gate regressions against, e.g. baseline/loadgate",
    ),
    ("--results", "LOADGATE_RESULTS", "results", "results folder (CSVs, HTML report, gate reports, logs)"),
    ("--workers", "LOADGATE_WORKERS", "0", "run a master and N local worker processes on loopback"),
    (
        "--expect-workers",
        "LOADGATE_EXPECT_WORKERS",
        "0",
        "run only the master and wait for N workers started elsewhere (docker compose, Kubernetes)",
    ),
    (
        "--processes",
        "LOADGATE_PROCESSES",
        "0",
        "Locust's own fork mode: N worker processes (-1: one per core); Linux/macOS only",
    ),
    (
        "--mock-config",
        "LOADGATE_MOCK_CONFIG",
        None,
        "embedded mock config: a YAML file or a shipped "
        "profile name (loadgate/mock/profiles/NAME.yaml); default: the mock's default profile",
    ),
    ("--locustfile", "LOADGATE_LOCUSTFILE", "locustfiles/locustfile.py", "Locust file with the user classes"),
    (
        "--master-bind-host",
        "LOADGATE_MASTER_BIND_HOST",
        None,
        "master's bind address; default 127.0.0.1 with --workers, 0.0.0.0 with --expect-workers",
    ),
    (
        "--master-port",
        "LOADGATE_MASTER_PORT",
        None,
        "master's port; default a free port with --workers, 5557 with --expect-workers",
    ),
    (
        "--expect-workers-max-wait",
        "LOADGATE_EXPECT_WORKERS_MAX_WAIT",
        "60",
        "seconds the master waits for its workers before giving up (exit 2)",
    ),
    (
        "--stop-timeout",
        "LOADGATE_STOP_TIMEOUT",
        "10",
        "seconds in-flight requests may finish after the run time, so none is lost",
    ),
    (
        "--health-path",
        "LOADGATE_HEALTH_PATH",
        "/health",
        "path polled until 200 before the test; 'none' skips the check",
    ),
    ("--health-timeout", "LOADGATE_HEALTH_TIMEOUT", "30", "seconds to wait for the target's health"),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise JobError(f"{message}; see --help")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ci/run_load_gate.sh",
        description="Load test an OpenAI-compatible target with Locust, gate it against SLA thresholds and "
        "exit 0 (pass), 1 (SLA breached or no data) or 2 (bad input, or the run could not be made). "
        "Every option also reads the environment variable shown; the flag wins.",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=36, width=110),
    )
    for flag, env, default, text in OPTIONS:
        parser.add_argument(
            flag,
            default=None,
            metavar=flag[2:].replace("-", "_").upper(),
            help=f"{text} [env {env}; default: {default or 'none'}]",
        )
    return parser


def _timespan(name: str, value: str) -> int:
    """Whole seconds: Locust's own --run-time takes no fractions."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise JobError(
            f"{name}: not a duration (got {value!r}); use e.g. 40s, 5m, 1h30m or seconds"
        ) from None
    if not seconds.is_integer():
        raise JobError(f"{name}: whole seconds only (got {value!r}); use e.g. 40s, 5m, 1h30m or seconds")
    return int(seconds)


def _integer(name: str, value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise JobError(f"{name}: not an integer (got {value!r}); use a whole number >= {minimum}") from None
    if number < minimum:
        raise JobError(f"{name}: must be >= {minimum} (got {number})")
    return number


def _positive(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise JobError(f"{name}: not a number (got {value!r}); use a number > 0") from None
    if not number > 0:
        raise JobError(f"{name}: must be > 0 (got {value})")
    return number


def parse_config(argv: list[str], environ: dict[str, str]) -> JobConfig:
    """Flags, then env vars, then defaults; every value checked. Raises JobError (one line) when bad."""
    flags = vars(build_parser().parse_args(argv))
    raw: dict[str, str | None] = {}
    for flag, env, default, _ in OPTIONS:
        key = flag[2:].replace("-", "_")
        value = flags[key] if flags[key] is not None else environ.get(env) or default
        raw[key] = value
    users = _integer("--users", raw["users"], 1)
    spawn_rate = _positive("--spawn-rate", raw["spawn_rate"])
    profile = (raw["profile"] or "none").strip().lower()
    if profile not in (*PROFILES, "none"):
        raise JobError(
            f"--profile: unknown load profile (got {raw['profile']!r}); choose one of "
            f"{', '.join(PROFILES)} or none"
        )
    host = raw["host"]
    if host:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise JobError(
                f"--host: not an http(s) URL (got {redact(host)!r}); use e.g. https://gateway:8443"
            )
        host = host.rstrip("/")
    workers = _integer("--workers", raw["workers"], 0)
    expect = _integer("--expect-workers", raw["expect_workers"], 0)
    processes = _integer("--processes", raw["processes"], -1)
    if sum(bool(n) for n in (workers, expect, processes)) > 1:
        raise JobError("--workers, --expect-workers and --processes exclude each other; pick one")
    run_time = _timespan("--run-time", raw["run_time"])
    warmup = _timespan("--warmup", raw["warmup"])
    if run_time < 1:
        raise JobError(f"--run-time: must be at least 1s (got {raw['run_time']!r})")
    if warmup >= run_time:
        raise JobError(f"--warmup: must be shorter than --run-time (got {warmup}s >= {run_time}s)")
    thresholds = Path(raw["thresholds"])
    if not thresholds.is_file():
        thresholds = ROOT / thresholds if (ROOT / thresholds).is_file() else thresholds
    if not thresholds.is_file():
        raise JobError(
            f"--thresholds: file not found (got {raw['thresholds']!r}); give an existing YAML file"
        )
    if problem := threshold_problem(thresholds):
        raise JobError(problem)
    baseline = raw["baseline"]
    if baseline and not Path(f"{baseline}_stats.csv").is_file():
        raise JobError(
            f"--baseline: {baseline}_stats.csv not found (got {baseline!r}); give the CSV prefix of "
            "a saved run, e.g. baseline/loadgate"
        )
    if baseline and Path(baseline).resolve().parent == Path(raw["results"]).resolve():
        raise JobError(
            f"--baseline: {baseline!r} is inside the results folder, which each run empties; copy it "
            "elsewhere first, e.g. baseline/loadgate"
        )
    locustfile = Path(raw["locustfile"])
    if not locustfile.is_file() and (ROOT / locustfile).is_file():
        locustfile = ROOT / locustfile
    if not locustfile.is_file():
        raise JobError(f"--locustfile: file not found (got {raw['locustfile']!r})")
    if expect and not raw["master_bind_host"]:
        raw["master_bind_host"] = "0.0.0.0"
    if expect and not raw["master_port"]:
        raw["master_port"] = "5557"
    return JobConfig(
        host=host,
        profile=None if profile == "none" else profile,
        users=users,
        spawn_rate=spawn_rate,
        run_time=run_time,
        warmup=warmup,
        thresholds=thresholds.resolve(),
        baseline=str(Path(baseline).resolve()) if baseline else None,
        results=Path(raw["results"]).resolve(),
        workers=workers,
        expect_workers=expect,
        processes=processes,
        mock_config=raw["mock_config"],
        locustfile=locustfile.resolve(),
        master_bind_host=raw["master_bind_host"] or "127.0.0.1",
        master_port=_integer("--master-port", raw["master_port"], 0) if raw["master_port"] else 0,
        expect_workers_max_wait=_integer("--expect-workers-max-wait", raw["expect_workers_max_wait"], 1),
        stop_timeout=_integer("--stop-timeout", raw["stop_timeout"], 0),
        health_path="" if raw["health_path"].lower() == "none" else "/" + raw["health_path"].lstrip("/"),
        health_timeout=_integer("--health-timeout", raw["health_timeout"], 1),
    )


def threshold_problem(path: Path) -> str | None:
    """The gate's own error for a broken thresholds file, checked before minutes of load are spent."""
    from loadgate.gate.config import load_config
    from loadgate.gate.errors import GateInputError

    try:
        load_config(path)
    except GateInputError as e:
        return e.line().removeprefix("check_sla: error: ")
    return None


def redact(url: str) -> str:
    """The URL without user:password, for logs and reports."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# -- commands (also what ci/docker-compose.yml and ci/k8s/ mirror; tests compare them) -------------------
def locust_command(cfg: JobConfig, host: str, master_port: int | None = None) -> list[str]:
    """The headless Locust command of the local run or the master: CSVs, HTML report, profile, warm-up."""
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(cfg.locustfile),
        "--headless",
        "--host",
        host,
        "--users",
        str(cfg.users),
        "--spawn-rate",
        f"{cfg.spawn_rate:g}",
        "--run-time",
        f"{cfg.run_time}s",
        "--stop-timeout",
        f"{cfg.stop_timeout}s",
        "--csv",
        str(cfg.prefix),
        "--csv-full-history",
        "--html",
        str(cfg.results / "report.html"),
        "--only-summary",
    ]
    if cfg.warmup:
        cmd += ["--warmup", f"{cfg.warmup}s"]
    if cfg.profile:
        cmd += ["--profile", cfg.profile]
    if cfg.processes:  # the forked workers connect to --master-port; never Locust's shared default 5557
        cmd += [
            "--processes",
            str(cfg.processes),
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
            "--master-port",
            str(master_port),
        ]
    expected = cfg.workers or cfg.expect_workers
    if expected:
        cmd += [
            "--master",
            "--master-bind-host",
            cfg.master_bind_host,
            "--master-bind-port",
            str(master_port),
            "--expect-workers",
            str(expected),
            "--expect-workers-max-wait",
            str(cfg.expect_workers_max_wait),
        ]
    return cmd


def worker_command(cfg: JobConfig, master_host: str, master_port: int) -> list[str]:
    """A worker: no --csv/--html (a worker's files would hold only its own share), settings come from the
    master."""
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(cfg.locustfile),
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
    ]


def gate_command(cfg: JobConfig) -> list[str]:
    cmd = [
        sys.executable,
        str(ROOT / "sla" / "check_sla.py"),
        str(cfg.prefix),
        "--thresholds",
        str(cfg.thresholds),
        "--junit",
        str(cfg.results / "junit.xml"),
        "--json",
        str(cfg.results / "verdict.json"),
        "--markdown",
        str(cfg.results / "verdict.md"),
    ]
    if cfg.baseline:
        cmd += ["--baseline", cfg.baseline]
    return cmd


# -- processes -----------------------------------------------------------------------------------------
@dataclass
class Child:
    """A started subprocess whose output goes to a log file (and, if asked, the console)."""

    name: str
    proc: subprocess.Popen
    log: Path
    pump: threading.Thread | None = None

    def stop(self, grace: float = 10) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.pump:
            self.pump.join(5)


def _pump(source: IO[str], log: IO[str], echo: IO[str] | None) -> None:
    with log:
        for line in source:
            log.write(line)
            log.flush()
            if echo:
                echo.write(line)
                echo.flush()


def spawn(name: str, cmd: list[str], log: Path, env: dict[str, str], echo: bool) -> Child:
    log_file = open(log, "a")  # noqa: SIM115 (closed by the pump thread)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    pump = threading.Thread(
        target=_pump, args=(proc.stdout, log_file, sys.stderr if echo else None), daemon=True
    )
    pump.start()
    return Child(name, proc, log, pump)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float) -> None:
    deadline, last = time.monotonic() + timeout, "no answer"
    key = os.environ.get("OPENAI_API_KEY")  # gateways that guard /health too
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
                last = f"HTTP {answer.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (OSError, urllib.error.URLError) as e:
            last = str(getattr(e, "reason", e))
        time.sleep(0.2)
    raise JobError(
        f"target not healthy: {redact(url)} did not answer 200 within {timeout:g}s (last: {last}); "
        "check --host, or --health-path none if it has no health route"
    )


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["LOADGATE_EMBEDDED_TARGET"] = "off"  # the job manages the target itself
    for name in ("LOADGATE_PROFILE", "LOADGATE_WARMUP"):  # the job passes these as flags
        env.pop(name, None)
    return env


# -- the job -------------------------------------------------------------------------------------------
@dataclass
class Manifest:
    """results/job.json: what ran, for the CI log and for post-mortems (no secrets)."""

    run_mode: str
    host: str
    profile: str | None
    started_at: float
    processes: dict[str, int] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    missing_workers: list[str] = field(default_factory=list)
    profile_applied: bool = False
    locust_command: list[str] = field(default_factory=list)
    gate_command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    stopped_at: float | None = None

    def save(self, results: Path) -> None:
        (results / "job.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def clean_results(results: Path) -> None:
    results.mkdir(parents=True, exist_ok=True)
    for path in [
        *results.glob(f"{PREFIX_NAME}_*"),
        *results.glob("worker-*.log"),
        *(results / name for name in REPORT_FILES),
    ]:
        if path.is_file():
            path.unlink()


def start_mock(cfg: JobConfig) -> tuple[object, str]:
    try:
        from loadgate.mock.process import MockProcess
    except ImportError as e:
        raise JobError(f"embedded target unavailable ({e}); give --host URL of a running target") from None
    mock = MockProcess(config=_mock_config(cfg.mock_config), truth_log=cfg.results / "mock_truth.jsonl")
    try:
        mock.start()
    except Exception as e:  # MockProcess reports the child's stderr in its message
        mock.stop()
        raise JobError(
            f"embedded target did not start: {str(e).splitlines()[0] if str(e) else e!r}"
        ) from None
    return mock, mock.url


def _mock_config(value: str | None) -> str | None:
    if not value:
        return None
    if Path(value).is_file():
        return str(Path(value).resolve())
    shipped = ROOT / "loadgate" / "mock" / "profiles" / f"{value}.yaml"
    if shipped.is_file():
        return str(shipped)
    raise JobError(
        f"--mock-config: no such file or shipped profile (got {value!r}); give a YAML file or a name "
        "from loadgate/mock/profiles/"
    )


def run(cfg: JobConfig) -> int:
    clean_results(cfg.results)
    mock, children = None, []
    manifest = Manifest(cfg.run_mode, "", cfg.profile, time.time())
    try:
        if cfg.host:
            host = cfg.host
        else:
            mock, host = start_mock(cfg)
            manifest.processes["mock"] = mock.proc.pid
        manifest.host = redact(host)
        if cfg.health_path:
            say(f"waiting for {redact(host)}{cfg.health_path}")
            wait_healthy(host + cfg.health_path, cfg.health_timeout)
        env = child_env()
        port = cfg.master_port or (free_port() if cfg.workers or cfg.processes else 0)
        manifest.locust_command = locust_command(cfg, redact(host), port or None)
        say(
            f"{cfg.run_mode} run of {redact(host)}: profile {cfg.profile or 'none'}, {cfg.users} users at "
            f"{cfg.spawn_rate:g}/s for {cfg.run_time}s (warm-up {cfg.warmup}s); results in {cfg.results}"
        )
        master = spawn(
            "locust", locust_command(cfg, host, port or None), cfg.results / "locust.log", env, echo=True
        )
        children.append(master)
        manifest.processes["locust"] = master.proc.pid
        for i in range(cfg.workers):
            worker = spawn(
                f"worker-{i + 1}",
                worker_command(cfg, "127.0.0.1", port),
                cfg.results / f"worker-{i + 1}.log",
                env,
                echo=False,
            )
            children.append(worker)
            manifest.processes[worker.name] = worker.proc.pid
        manifest.save(cfg.results)
        code = wait_locust(cfg, master, children[1:], manifest)
        if code not in (0, 1) or not Path(f"{cfg.prefix}_stats.csv").is_file():
            raise JobError(
                f"locust exited with code {code} without results; see {cfg.results / 'locust.log'}"
            )
    except (JobError, Interrupted) as e:
        _stop_all(children, mock)
        manifest.exit_code = EXIT_BAD_INPUT
        manifest.stopped_at = time.time()
        manifest.save(cfg.results)
        say(f"error: {e}" if isinstance(e, JobError) else "interrupted; stopped everything it started")
        return EXIT_BAD_INPUT
    except BaseException:  # a bug must not leave a mock or Locust running behind the CI job
        _stop_all(children, mock)
        raise
    _stop_all(children, mock)
    manifest.gate_command = gate_command(cfg)
    code = run_gate(cfg)
    manifest.exit_code, manifest.stopped_at = code, time.time()
    manifest.save(cfg.results)
    verdict = {EXIT_PASS: "PASS", EXIT_BREACH: "FAIL (SLA breached or no data)"}.get(
        code, "ERROR (bad input)"
    )
    say(f"{verdict}, exit {code}; results in {cfg.results}")
    return code


def wait_locust(cfg: JobConfig, master: Child, workers: list[Child], manifest: Manifest) -> int:
    """Wait for the local/master Locust within a hard bound; report workers that died or went missing."""
    bound = (
        cfg.run_time
        + cfg.stop_timeout
        + 60
        + (cfg.expect_workers_max_wait if cfg.run_mode == "master" else 0)
    )
    try:
        code = master.proc.wait(bound)
    except subprocess.TimeoutExpired:
        raise JobError(f"locust did not stop within {bound}s; see {cfg.results / 'locust.log'}") from None
    master.pump.join(10)
    for worker in workers:  # the master tells them to quit; give them a moment
        try:
            worker.proc.wait(10)
        except subprocess.TimeoutExpired:
            worker.stop()
        manifest.exit_codes[worker.name] = worker.proc.returncode
        if worker.proc.returncode not in (0, None):
            say(
                f"warning: {worker.name} (pid {worker.proc.pid}) exited with code {worker.proc.returncode}; "
                f"see {worker.log}"
            )
    manifest.exit_codes["locust"] = code
    log = master.log.read_text(errors="replace")
    manifest.missing_workers = MISSING_WORKER.findall(log)
    for worker_id in manifest.missing_workers:
        say(
            f"warning: worker {worker_id} went missing during the run (no heartbeat); the master carried on "
            "without it and its last unreported requests are not in the figures"
        )
    manifest.profile_applied = bool(cfg.profile) and SHAPE_STARTED in log
    if cfg.profile and not manifest.profile_applied:
        say(
            f"warning: profile {cfg.profile} was not applied: {cfg.locustfile.name} does not import "
            "loadgate.profiles.LoadProfileShape, so Locust ran a plain constant load (--users/--spawn-rate)"
        )
    return code


def run_gate(cfg: JobConfig) -> int:
    if not (ROOT / "sla" / "check_sla.py").is_file():
        say("error: sla/check_sla.py not found; the gate cannot run")
        return EXIT_BAD_INPUT
    with open(cfg.results / "verdict.txt", "w") as out:
        gate = subprocess.Popen(
            gate_command(cfg), cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, text=True
        )
        for line in gate.stdout:
            out.write(line)
            sys.stdout.write(line)
        sys.stdout.flush()
        code = gate.wait()
    return code if code in (EXIT_PASS, EXIT_BREACH, EXIT_BAD_INPUT) else EXIT_BAD_INPUT


def _stop_all(children: list[Child], mock: object | None) -> None:
    for child in children:
        child.stop()
    if mock is not None:
        mock.stop()


def _interrupt(signum: int, _frame: object) -> None:
    # Once: a second Ctrl-C must not cut short the clean-up the first one started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_config(sys.argv[1:] if argv is None else argv, dict(os.environ))
    except JobError as e:
        say(f"error: {e}")
        return EXIT_BAD_INPUT
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        return run(cfg)
    except Interrupted:  # during the gate: nothing of ours is left running
        say("interrupted")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
