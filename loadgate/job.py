"""The CI job behind `ci/run_load_gate.sh`: target up, headless Locust, the SLA gate, one results folder.

Steps: start the embedded mock (unless a target host is given) and wait for its /health; run headless
Locust (locally, as a master with N local workers, as a master waiting for N remote workers, or with
Locust's --processes); run the gate (`loadgate gate`) on the master's CSVs, then `loadgate report`; stop
everything it started, also on SIGINT/SIGTERM; exit with the gate's code. Exit 2 when the job cannot
produce a valid measurement (bad input, unhealthy target, Locust failing to start or crashing): never a
pass.

One run's files, never a mix: the run writes into a fresh hidden folder inside the results folder
(``.partial-*``, locked while the job lives) and, when it ends (passed, failed, broke or was
interrupted), replaces the previous run's files with its own. A job killed outright leaves the previous
run's files as they were, beside its partial folder, which the next run removes.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import urlsplit

from loadgate import options as opts
from loadgate import request_log, workload
from loadgate.capacity_search import MAX_DOUBLINGS
from loadgate.contract import (
    CAPACITY_JSON,
    EXIT_BAD_INPUT,
    EXIT_BREACH,
    EXIT_PASS,
    LOADGATE_JSON,
    REQUEST_LOG,
    STATS_CSV,
    RunMeta,
)
from loadgate.mock.process import MockProcess, MockStartError, resolve_profile, start_mock
from loadgate.prompts import PromptFileError
from loadgate.stages import StagesError, load_scenario, load_stages, resolve
from loadgate.target import MODELS, ProbeResult, TargetError, probe, require, role_routes, wait_healthy
from loadgate.urls import basic_auth_header, normalize_host, public_url, target_host

PROBE_HANDOFF_ENV = "LOADGATE_PROBE_RESULT"  # as loadgate.harness.lifecycle reads it (no Locust import here)
HOST_AUTH_ENV = "LOADGATE_HOST_BASIC_AUTH"  # the host URL's credentials, off Locust's command line

PROG = "run_load_gate"
PREFIX_NAME = "loadgate"  # CSV prefix inside the results folder: results/loadgate_stats.csv, ...
SHIPPED_LOCUSTFILE = Path(__file__).parent / "harness" / "locustfile.py"
SHIPPED_THRESHOLDS = Path(__file__).parent / "data" / "thresholds.yaml"
# Files the job writes into the results folder besides PREFIX_*; a run's files replace the previous run's.
REPORT_FILES = (
    "report.html",
    "locust_report.html",
    "junit.xml",
    "verdict.json",
    "verdict.md",
    "verdict.txt",
    "locust.log",
    "mock_truth.jsonl",
    "job.json",
    REQUEST_LOG,
)
STAGING_PREFIX = ".partial-"  # the run's own folder inside the results folder until it ends
STAGING_LOCK = ".lock"
# Appended to verdict.md (the CI step summary): where the charts are.
REPORT_LINK = (
    "\nCharts, LLM metrics and every threshold over time: `report.html` in the results folder (in CI: the "
    "run's results artifact).\n"
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
    warmup: float
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
    locust_args: list[str] = field(default_factory=list)  # loadgate's Locust-side settings given to the job
    models: tuple[str, ...] = ()
    max_tokens: int = 1  # what the probe's chat request asks for (options.probe_max_tokens)
    extra_body: dict[str, Any] | None = None  # --extra-body: the probe's chat request carries it too
    routes: set[str] | None = None  # routes the shipped classes call (weights > 0); None: custom locustfile
    find_capacity: bool = False
    capacity_bound_s: float = 0.0  # the longest a capacity search may take (a hang guard)
    request_rate: float | None = None
    stages: str = ""
    staging: Path | None = None  # where this run writes until it ends (inside `results`)
    # --server-metrics with credentials: to Locust by env, never on its command line
    server_metrics_url: str = ""

    @property
    def out(self) -> Path:
        """The folder the run writes into: its staging folder while it runs."""
        return self.staging or self.results

    @property
    def prefix(self) -> Path:
        return self.out / PREFIX_NAME

    @property
    def run_mode(self) -> str:
        if self.processes:
            return "processes"
        return "master" if self.workers or self.expect_workers else "local"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, no usage dump
        raise JobError(f"{message}; see --help")


def build_parser() -> argparse.ArgumentParser:
    """Every option of loadgate.options: the job's own and the Locust-side settings it passes down."""
    parser = _Parser(
        prog="loadgate run",
        description="Load test an OpenAI-compatible target with Locust, gate it against SLA thresholds and "
        "exit 0 (pass), 1 (SLA breached or no data) or 2 (bad input, or the run could not be made). "
        "Every option also reads the environment variable shown; the flag wins.",
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=36, width=110),
    )
    job = parser.add_argument_group("the job")
    locust_side = parser.add_argument_group("traffic and measurement (passed to Locust)")
    for option in opts.OPTIONS:
        if not option.in_job:
            continue
        group = job if option.scope == opts.JOB else locust_side
        names = ["-f", option.flag] if option.flag == "--locustfile" else [option.flag]
        help_text = f"{option.help} [env {option.env}; default: {option.default or 'empty'}]".replace(
            "%", "%%"
        )
        if option.switch:
            group.add_argument(*names, action="store_true", default=None, help=help_text)
        else:
            group.add_argument(*names, default=None, metavar=option.dest.upper(), help=help_text)
    return parser


def join_dashed_values(argv: list[str]) -> list[str]:
    """``--run-time -5s`` as ``--run-time=-5s``: argparse would take a value starting with "-" for a flag
    and say "expected one argument"; joined, the value reaches its check, which names what is wrong."""
    valued = {o.flag for o in opts.OPTIONS if o.in_job and not o.switch}
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if (
            token in valued
            and i + 1 < len(argv)
            and argv[i + 1].startswith("-")
            and argv[i + 1] not in opts.BY_FLAG
        ):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def results_problem(results: Path) -> str | None:
    """Why ``results`` cannot be the results folder (a file, not writable), checked before anything runs."""
    shown = str(results)
    if results.exists() and not results.is_dir():
        return f"--results: not a folder (got {shown!r}, an existing file); give a folder path, e.g. results"
    existing = results
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"--results: {str(existing)!r} is a file, so {shown!r} cannot be created; give a folder path"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"--results: {str(existing)!r} is not writable (got {shown!r}); give a folder you can write to"
    return None


def parse_config(argv: list[str], environ: dict[str, str]) -> JobConfig:
    """Flags, then env vars, then defaults; every value checked. Raises JobError (one line) when bad."""
    flags = vars(build_parser().parse_args(join_dashed_values(argv)))
    try:
        values = {o.dest: opts.parse_value(o.flag, opts.raw_value(o, flags, environ)) for o in opts.OPTIONS}
    except opts.SettingError as e:
        raise JobError(str(e)) from None
    locust_args: list[str] = []
    secret_metrics_url = ""
    for o in opts.OPTIONS:  # the Locust-side settings the user gave (by flag or env) go down as flags
        given = flags.get(o.dest) is not None or bool(environ.get(o.env))
        if o.scope == opts.LOCUST and o.flag != "--warmup" and given:
            raw = opts.raw_value(o, flags, environ)
            if o.flag == "--server-metrics" and basic_auth_header(raw):
                secret_metrics_url = raw  # credentials: not on a command line (ps, job.json)
                continue
            locust_args += [o.flag] if o.switch else [o.flag, raw]
    host = values["host"]
    if host:
        parts = urlsplit(host)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise JobError(
                f"--host: not an http(s) URL (got {public_url(host)!r}); use e.g. https://gateway:8443"
            )
        host = normalize_host(host)
    workers, expect, processes = values["workers"], values["expect_workers"], values["processes"]
    if processes == "auto":
        processes = auto_processes(embedded=not host)
    if sum(bool(n) for n in (workers, expect, processes)) > 1:
        raise JobError("--workers, --expect-workers and --processes exclude each other; pick one")
    run_time, warmup = int(values["run_time"]), values["warmup"]
    if warmup >= run_time:
        raise JobError(f"--warmup: must be shorter than --run-time (got {warmup:g}s >= {run_time}s)")
    find_capacity, stages = values["find_capacity"], values["stages"]
    profile_given = flags.get("profile") is not None or bool(environ.get(BY_ENV["--profile"]))
    if stages and profile_given and values["profile"] != "none":
        raise JobError(f"--stages: replaces --profile; give one of them (got --profile {values['profile']})")
    if find_capacity and (stages or profile_given):
        raise JobError("--find-capacity: drives the rate itself; drop --stages / --profile")
    if find_capacity and (flags.get("sla") is not None or environ.get(BY_ENV["--sla"])):
        raise JobError("--sla: not with --find-capacity (the search judges each step against --thresholds)")
    if not find_capacity:
        try:
            spec = load_stages(stages) if stages else None
            if spec is None and values["profile"] != "none":
                spec = load_scenario(values["profile"])
            if spec is not None:
                resolve(
                    spec, users=values["users"], spawn_rate=values["spawn_rate"], run_time_s=run_time,
                    request_rate=values["request_rate"], time_scale=values["time_scale"],
                )  # fmt: skip
        except StagesError as e:
            raise JobError(str(e)) from None
    try:  # the prompt source (file, dataset or synthetic), before anything starts; Locust loads it again
        workload.load_prompts(
            values["prompt_file"], values["dataset"], values["input_tokens"], values["shared_prefix_tokens"],
            lambda _text: 1,  # (the answers' lengths are Locust's business: no tokenizer needed here)
        )  # fmt: skip
    except PromptFileError as e:
        raise JobError(str(e)) from None
    thresholds = Path(values["thresholds"]) if values["thresholds"] else SHIPPED_THRESHOLDS
    if not thresholds.is_file():
        raise JobError(
            f"--thresholds: file not found (got {values['thresholds']!r}); give an existing YAML file"
        )
    if problem := threshold_problem(thresholds, warmup):
        raise JobError(problem)
    if values["find_capacity"] and (problem := capacity_problem(thresholds, values["capacity_step_time"])):
        raise JobError(problem)
    baseline = values["baseline"] or None
    if baseline and not Path(f"{baseline}_stats.csv").is_file():
        raise JobError(
            f"--baseline: {baseline}_stats.csv not found (got {baseline!r}); give the CSV prefix of "
            "a saved run, e.g. baseline/loadgate"
        )
    results = Path(values["results"] or "results")
    if problem := results_problem(results):
        raise JobError(problem)
    if baseline and Path(baseline).resolve().parent == results.resolve():
        raise JobError(
            f"--baseline: {baseline!r} is inside the results folder, which each run empties; copy it "
            "elsewhere first, e.g. baseline/loadgate"
        )
    locustfile = Path(values["locustfile"]) if values["locustfile"] else SHIPPED_LOCUSTFILE
    if not locustfile.is_file():
        raise JobError(f"--locustfile: file not found (got {values['locustfile']!r})")
    try:
        mock_config = resolve_profile(values["mock_config"] or None)
    except MockStartError as e:
        raise JobError(f"--mock-config: {e}") from None
    bind_host = values["master_bind_host"] or ("0.0.0.0" if expect else "127.0.0.1")
    master_port = values["master_port"] or (5557 if expect else 0)
    health_path = values["health_path"]
    step_s = values["capacity_step_time"]
    bound = (MAX_DOUBLINGS + 8) * (step_s + values["request_timeout"] + 10) + 120 if find_capacity else 0.0
    routes = None
    if locustfile.resolve() == SHIPPED_LOCUSTFILE.resolve():
        weights = {
            "chat": values["chat_weight"],
            "batch": values["batch_weight"],
            "models": values["models_weight"],
        }
        routes = set().union(*(role_routes(r, values["batch_mode"]) for r, w in weights.items() if w > 0))
        if not routes:
            raise JobError(
                "--chat-weight, --batch-weight, --models-weight: all 0, so no user would run; give one a weight"
            )
    return JobConfig(
        host=host or None,
        profile=None if values["profile"] == "none" or stages or find_capacity else values["profile"],
        users=values["users"],
        spawn_rate=values["spawn_rate"],
        run_time=run_time,
        warmup=warmup,
        thresholds=thresholds.resolve(),
        baseline=str(Path(baseline).resolve()) if baseline else None,
        results=results.resolve(),
        workers=workers,
        expect_workers=expect,
        processes=processes,
        mock_config=mock_config,
        locustfile=locustfile.resolve(),
        master_bind_host=bind_host,
        master_port=master_port,
        expect_workers_max_wait=values["expect_workers_max_wait"],
        stop_timeout=values["stop_timeout"],
        health_path="" if health_path.lower() == "none" else "/" + health_path.lstrip("/"),
        health_timeout=values["health_timeout"],
        locust_args=locust_args,
        find_capacity=find_capacity,
        capacity_bound_s=bound,
        request_rate=values["request_rate"],
        stages=stages,
        models=values["models"],
        max_tokens=opts.probe_max_tokens(values["max_tokens"], values["output_tokens"]),
        extra_body=values["extra_body"],
        routes=routes,
        server_metrics_url=secret_metrics_url,
    )


BY_ENV = {o.flag: o.env for o in opts.OPTIONS}


def auto_processes(embedded: bool, cores: int | None = None) -> int:
    """--processes auto: one Locust process per core, leaving one core to the embedded target; 0 (a plain
    local run) when that leaves a single process, which a master would only slow down."""
    n = (cores or os.cpu_count() or 1) - (1 if embedded else 0)
    return n if n >= 2 else 0


def threshold_problem(path: Path, warmup_s: float) -> str | None:
    """The gate's own error for a broken thresholds file, or a warm-up shorter than the file demands:
    checked before minutes of load are spent."""
    from loadgate.gate.config import load_config
    from loadgate.gate.errors import GateInputError

    try:
        config = load_config(path)
    except GateInputError as e:
        return e.line().removeprefix("check_sla: error: ")
    if warmup_s < config.warmup_s:
        return (
            f"--warmup: shorter than the thresholds file's warmup (got {warmup_s:g}s, {path} demands "
            f"{config.warmup_s:g}s); use --warmup {config.warmup_s:g}s or longer"
        )
    return None


def capacity_problem(path: Path, step_s: float) -> str | None:
    """A thresholds file of which no rule can be judged on one capacity step."""
    from loadgate.capacity_search import WARMUP_SHARE, step_config
    from loadgate.gate.config import load_config

    config, skipped = step_config(load_config(path), step_s * (1 - WARMUP_SHARE))
    if config.thresholds:
        return None
    named = "; ".join(f"{k.row}: {k.rule} ({k.reason})" for k in skipped[:2]) or "no thresholds: section"
    return f"--find-capacity: no rule of {path} can be judged on one step: {named}; add latency or failure thresholds"


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
        *([] if cfg.find_capacity else ["--run-time", f"{cfg.run_time}s"]),
        "--stop-timeout",
        f"{cfg.stop_timeout}s",
        "--csv",
        str(cfg.prefix),
        "--csv-full-history",
        "--html",
        str(cfg.out / "locust_report.html"),
        "--only-summary",
    ]
    cmd += ["--warmup", f"{cfg.warmup:g}s", "--request-log", str(cfg.out / REQUEST_LOG), *cfg.locust_args]
    if cfg.find_capacity:  # the search judges each step against the job's thresholds file
        cmd += ["--sla", str(cfg.thresholds)]
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
    """Run in the run's folder (paths relative to it), so the verdict names the run `loadgate` wherever the
    folder ends up."""
    cmd = [
        sys.executable,
        "-m",
        "loadgate",
        "gate",
        PREFIX_NAME,
        "--thresholds",
        str(cfg.thresholds),
        "--junit",
        "junit.xml",
        "--json",
        "verdict.json",
        "--markdown",
        "verdict.md",
    ]
    if cfg.baseline:
        cmd += ["--baseline", cfg.baseline]
    return cmd


def report_command(cfg: JobConfig) -> list[str]:
    """loadgate's HTML report of the run (beside the gate's verdict.json), also run in the run's folder."""
    cmd = [sys.executable, "-m", "loadgate", "report", PREFIX_NAME, "--out", "report.html"]
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
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
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


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["LOADGATE_EMBEDDED_TARGET"] = "off"  # the job manages the target itself
    for name in (
        "LOADGATE_PROFILE",
        "LOADGATE_WARMUP",
        HOST_AUTH_ENV,
        PROBE_HANDOFF_ENV,
    ):  # flags, or set here
        env.pop(name, None)
    return env


# -- the job -------------------------------------------------------------------------------------------
@dataclass
class Manifest:
    """results/job.json: what ran, for the CI log and for post-mortems (no secrets)."""

    run_id: str
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
    report_command: list[str] = field(default_factory=list)
    report_exit_code: int | None = None
    exit_code: int | None = None
    stopped_at: float | None = None

    def save(self, results: Path) -> None:
        (results / "job.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def run_files(folder: Path) -> list[Path]:
    """The files a run leaves in a results folder (other files there are not the job's and stay)."""
    paths = [
        *folder.glob(f"{PREFIX_NAME}_*"),
        *folder.glob("worker-*.log"),
        *(folder / name for name in REPORT_FILES),
    ]
    return [p for p in paths if p.is_file()]


@dataclass
class Staging:
    """This run's folder inside the results folder, locked (flock) while the job lives."""

    path: Path
    lock: IO[str]

    @classmethod
    def create(cls, results: Path) -> Staging:
        """Remove what killed runs left, refuse a results folder another live job is writing to, and make a
        fresh locked folder."""
        try:
            results.mkdir(parents=True, exist_ok=True)
            for old in results.glob(f"{STAGING_PREFIX}*"):
                if old.is_dir():
                    if _locked(old / STAGING_LOCK):
                        raise JobError(
                            f"--results: another run is writing into {results} ({old.name}); wait for it to "
                            "end or give another --results"
                        )
                    shutil.rmtree(old, ignore_errors=True)
            path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=results))
            lock = open(path / STAGING_LOCK, "w")  # noqa: SIM115 (held until the run is published)
        except OSError as e:
            raise JobError(
                f"--results: cannot write into {results} ({e.strerror or e}); give a writable folder"
            ) from None
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return cls(path, lock)

    def publish(self, results: Path) -> None:
        """Replace the previous run's files in ``results`` by this run's. SIGINT/SIGTERM wait until it is
        done; a kill in the middle leaves only this run's files (some still in the staging folder)."""
        blocked = {signal.SIGINT, signal.SIGTERM}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            for path in run_files(results):
                path.unlink()
            for entry in sorted(self.path.iterdir()):
                if entry.name != STAGING_LOCK:
                    os.replace(entry, results / entry.name)
            self.discard()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def discard(self) -> None:
        self.lock.close()
        shutil.rmtree(self.path, ignore_errors=True)


def _locked(lock_file: Path) -> bool:
    """Whether a live job holds this staging folder's lock."""
    try:
        with open(lock_file) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return False


def start_embedded(cfg: JobConfig) -> MockProcess:
    try:
        return start_mock(cfg.mock_config, truth_log=cfg.out / "mock_truth.jsonl")
    except MockStartError as e:
        raise JobError(f"embedded target did not start: {e}") from None


def check_target(cfg: JobConfig, host: str) -> ProbeResult | None:
    """Health (a missing route falls back to the probe at once), then the start-up probe: exit 2 within
    seconds when nothing listens, the key is refused, or (shipped locustfile) there is no model to use.
    Returns the probe to hand to Locust (shipped locustfile only: other classes are probed by Locust)."""
    shown = public_url(host) or host
    if cfg.health_path:
        say(f"waiting for {shown}{cfg.health_path}")
        health = wait_healthy(host, cfg.health_path, cfg.health_timeout)
        if health == "absent":
            say(
                f"{shown}{cfg.health_path} is not served (404/405): the start-up probe checks the target instead"
            )
    routes = cfg.routes if cfg.routes is not None else {MODELS}
    found = probe(
        host, models=cfg.models, routes=routes, max_tokens=cfg.max_tokens, extra_body=cfg.extra_body
    )
    if cfg.routes is None:
        return None
    require(found, cfg.routes, bool(cfg.models))
    return found


def run(cfg: JobConfig) -> int:
    """The target checked (a target of the user's: before anything in the results folder is touched),
    then the run in a staging folder, whose files then replace the previous run's (whatever the outcome)."""
    probed: ProbeResult | None = None
    if cfg.host:
        try:
            probed = check_target(cfg, cfg.host)
        except TargetError as e:
            say(f"error: {e}")
            return EXIT_BAD_INPUT
        except Interrupted:
            say("interrupted; stopped everything it started")
            return EXIT_BAD_INPUT
    try:
        staging = Staging.create(cfg.results)
    except JobError as e:
        say(f"error: {e}")
        return EXIT_BAD_INPUT
    cfg.staging = staging.path
    try:
        code = measure(cfg, probed)
    finally:
        staging.publish(cfg.results)
        cfg.staging = None
    if code in (EXIT_PASS, EXIT_BREACH) and not cfg.find_capacity:  # (a search said its own result)
        verdict = "PASS" if code == EXIT_PASS else "FAIL (SLA breached or no data)"
        say(f"{verdict}, exit {code}; results in {cfg.results}")
    return code


def measure(cfg: JobConfig, probed: ProbeResult | None) -> int:
    """Target (the embedded one started and probed here), Locust, gate and report, writing into
    ``cfg.out``; the job's exit code."""
    mock, children = None, []
    manifest = Manifest(uuid.uuid4().hex[:12], cfg.run_mode, "", cfg.profile, time.time())
    try:
        if cfg.host:
            host = cfg.host
        else:
            mock = start_embedded(cfg)
            host = str(mock.url)
            manifest.processes["mock"] = mock.proc.pid if mock.proc else 0
            probed = check_target(cfg, host)
        shown = public_url(host) or host
        manifest.host = shown
        env = child_env()
        if probed is not None:
            env[PROBE_HANDOFF_ENV] = probed.to_json()
        basic = basic_auth_header(host)
        if basic:  # Locust gets the URL without credentials (command line, report, logs): they go by env
            env[HOST_AUTH_ENV] = basic
        if cfg.server_metrics_url:
            env[BY_ENV["--server-metrics"]] = cfg.server_metrics_url
        port = cfg.master_port or (free_port() if cfg.workers or cfg.processes else 0)
        manifest.locust_command = locust_command(cfg, shown, port or None)
        say(f"{cfg.run_mode} run of {shown}: {describe_load(cfg)}; results in {cfg.results}")
        master = spawn(
            "locust",
            locust_command(cfg, target_host(host), port or None),
            cfg.out / "locust.log",
            env,
            echo=True,
        )
        children.append(master)
        manifest.processes["locust"] = master.proc.pid
        for i in range(cfg.workers):
            worker = spawn(
                f"worker-{i + 1}",
                worker_command(cfg, "127.0.0.1", port),
                cfg.out / f"worker-{i + 1}.log",
                env,
                echo=False,
            )
            children.append(worker)
            manifest.processes[worker.name] = worker.proc.pid
        manifest.save(cfg.out)
        code = wait_locust(cfg, master, children[1:], manifest, mock)
        capacity_verdict = cfg.find_capacity and Path(f"{cfg.prefix}{CAPACITY_JSON}").is_file()
        if (code not in (0, 1) and not capacity_verdict) or not Path(f"{cfg.prefix}{STATS_CSV}").is_file():
            said = [
                line
                for line in master.log.read_text(errors="replace").splitlines()
                if "loadgate: error: " in line
            ]
            if code == EXIT_BAD_INPUT and said:  # Locust's own start-up check (settings, probe) named it
                raise JobError("locust stopped before the load: " + said[-1].split("loadgate: error: ", 1)[1])
            raise JobError(
                f"locust exited with code {code} without results; see {cfg.results / 'locust.log'}"
            )
    except (JobError, TargetError, Interrupted) as e:
        _stop_all(children, mock)
        manifest.exit_code = EXIT_BAD_INPUT
        manifest.stopped_at = time.time()
        manifest.save(cfg.out)
        say("interrupted; stopped everything it started" if isinstance(e, Interrupted) else f"error: {e}")
        return EXIT_BAD_INPUT
    except BaseException:  # a bug must not leave a mock or Locust running behind the CI job
        _stop_all(children, mock)
        raise
    _stop_all(children, mock)
    merge_request_log(cfg)
    if cfg.find_capacity:
        return finish_capacity(cfg, manifest, code)
    manifest.gate_command = gate_command(cfg)
    manifest.save(cfg.out)
    code = run_gate(cfg)
    if code in (EXIT_PASS, EXIT_BREACH):
        manifest.report_command = report_command(cfg)
        manifest.report_exit_code = run_report(cfg)
    else:
        say(f"ERROR (bad input), exit {code}; results in {cfg.results}")
    manifest.exit_code, manifest.stopped_at = code, time.time()
    manifest.save(cfg.out)
    return code


def merge_request_log(cfg: JobConfig) -> None:
    """The workers' request logs (requests.N.jsonl) into results/requests.jsonl, sorted by start time
    (workers started elsewhere, --expect-workers, write theirs on their own machines)."""
    try:
        request_log.merge(cfg.out / REQUEST_LOG)
    except OSError as e:
        say(f"warning: could not merge the workers' request logs into {REQUEST_LOG}: {e}")


def describe_load(cfg: JobConfig) -> str:
    if cfg.find_capacity:
        return f"capacity search with {cfg.users} users (executors), judged by {cfg.thresholds.name}"
    shape = f"stages {cfg.stages}" if cfg.stages else f"profile {cfg.profile or 'none'}"
    load = f"{cfg.request_rate:g} req/s on {cfg.users} users" if cfg.request_rate else f"{cfg.users} users"
    return f"{shape}, {load} at {cfg.spawn_rate:g}/s for {cfg.run_time}s (warm-up {cfg.warmup}s)"


def finish_capacity(cfg: JobConfig, manifest: Manifest, locust_code: int) -> int:
    """The capacity search's own verdict: Locust's exit code (0 found, 1 none, 2 bad input), provided it
    left PREFIX_capacity.json saying the same."""
    path = Path(f"{cfg.prefix}{CAPACITY_JSON}")
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        document = None
    code = (
        locust_code
        if isinstance(document, dict) and document.get("exit_code") == locust_code
        else EXIT_BAD_INPUT
    )
    manifest.report_command = report_command(cfg)
    manifest.report_exit_code = run_report(cfg)
    manifest.exit_code, manifest.stopped_at = code, time.time()
    manifest.save(cfg.out)
    found = (document or {}).get("capacity") if isinstance(document, dict) else None
    if code == EXIT_PASS and isinstance(found, dict):
        say(
            f"CAPACITY {found.get('rate_rps')} req/s ({document.get('result')}), exit 0; results in {cfg.results}"
        )
    elif code == EXIT_BREACH:
        say(f"NO CAPACITY: even the first step failed the thresholds, exit 1; results in {cfg.results}")
    else:
        say(f"ERROR: the capacity search did not complete, exit 2; see {cfg.results / 'locust.log'}")
    return code


def target_died(mock: MockProcess, started: float) -> str:
    """The job's embedded target died: its exit code and last stderr line, one clause."""
    last = (mock.stderr().strip().splitlines() or ["(no stderr)"])[-1].strip()
    pid = mock.proc.pid if mock.proc else "?"
    return (
        f"the embedded target (pid {pid}) died {time.time() - started:.0f}s into the run with exit code "
        f"{mock.returncode}: {last[:300]}; no valid run"
    )


def wait_locust(
    cfg: JobConfig, master: Child, workers: list[Child], manifest: Manifest, mock: MockProcess | None = None
) -> int:
    """Wait for the local/master Locust within a hard bound; report workers that died or went missing. The
    job's embedded target dying ends the run at once: no valid run (JobError, exit 2)."""
    bound = (
        (cfg.capacity_bound_s if cfg.find_capacity else cfg.run_time)
        + cfg.stop_timeout
        + 60
        + (cfg.expect_workers_max_wait if cfg.run_mode == "master" else 0)
    )
    started = time.monotonic()
    wall_start = time.time()
    while True:
        try:
            code = master.proc.wait(0.5)
            break
        except subprocess.TimeoutExpired:
            pass
        if mock is not None and mock.returncode is not None:
            manifest.exit_codes["mock"] = mock.returncode
            raise JobError(target_died(mock, wall_start))
        if time.monotonic() - started > bound:
            raise JobError(f"locust did not stop within {bound}s; see {cfg.results / 'locust.log'}")
    if mock is not None and mock.returncode is not None:  # died as Locust finished: the end is suspect too
        manifest.exit_codes["mock"] = mock.returncode
        raise JobError(target_died(mock, wall_start))
    if master.pump is not None:
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
    report_lost_workers(cfg, manifest)
    manifest.profile_applied = bool(cfg.profile) and SHAPE_STARTED in log
    if cfg.profile and not manifest.profile_applied:
        say(
            f"warning: profile {cfg.profile} was not applied: {cfg.locustfile.name} does not import "
            "loadgate.harness.profiles.LoadProfileShape, so Locust ran a plain constant load (--users/--spawn-rate)"
        )
    return code


def report_lost_workers(cfg: JobConfig, manifest: Manifest) -> None:
    """Name the workers the master lost (from PREFIX_loadgate.json), and what follows for the verdict."""
    try:
        meta = RunMeta.from_dict(json.loads(Path(f"{cfg.prefix}{LOADGATE_JSON}").read_text()))
    except (OSError, ValueError):
        meta = None  # no file (plain locustfile) or a broken one: the gate says so
    lost = meta.lost_workers if meta else ()
    for worker in lost:
        say(f"lost capacity: {worker.describe()}; its requests since its last report are in no file")
    if lost and meta is not None:
        share = meta.missing_user_seconds_share
        missing = f"{share * 100:.1f}% of the planned user-seconds missing" if share is not None else ""
        outcome = (
            "accepted by --allow-lost-workers"
            if meta.allow_lost_workers
            else "the gate fails the run (--allow-lost-workers accepts it)"
        )
        say(f"lost capacity: {missing}; {outcome}")
    elif manifest.missing_workers and not lost:
        for worker_id in manifest.missing_workers:
            say(
                f"warning: worker {worker_id} went missing for a while during the run (no heartbeat) and "
                "came back"
            )


def run_gate(cfg: JobConfig) -> int:
    env = child_env()
    # The job's verdict.md is what CI shows (the workflow appends it to the step summary, with the link to
    # the report): the gate must not append its own copy too.
    env.pop("GITHUB_STEP_SUMMARY", None)
    with open(cfg.out / "verdict.txt", "w") as out:
        gate = subprocess.Popen(gate_command(cfg), cwd=cfg.out, env=env, stdout=subprocess.PIPE, text=True)
        for line in gate.stdout or ():
            out.write(line)
            sys.stdout.write(line)
        sys.stdout.flush()
        code = gate.wait()
    return code if code in (EXIT_PASS, EXIT_BREACH, EXIT_BAD_INPUT) else EXIT_BAD_INPUT


def run_report(cfg: JobConfig) -> int | None:
    """report.html from the run's files and the verdict; a failure is a warning (the verdict stands).
    None when this install has no `loadgate report`."""
    if importlib.util.find_spec("loadgate.report") is None:
        say("warning: this loadgate has no `loadgate report`; no report.html")
        return None
    done = subprocess.run(
        report_command(cfg), cwd=cfg.out, env=child_env(), capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        problem = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        say(f"warning: no report.html: {problem}")
        return done.returncode
    with contextlib.suppress(OSError), open(cfg.out / "verdict.md", "a", encoding="utf-8") as md:
        md.write(REPORT_LINK)
    return 0


def _stop_all(children: list[Child], mock: MockProcess | None) -> None:
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
