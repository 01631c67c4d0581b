"""The job (loadgate run): every setting as a flag (item 5), validation before any load with the previous
results untouched (item 10), and the probe before the load (item 1)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from child_env import child_env
from traffic.helpers import mock_config

from loadgate import options as opts
from loadgate.job import PROBE_HANDOFF_ENV, parse_config

KEY = "sk-probe-right-key-0001"
SHIPPED = Path(__file__).resolve().parents[2] / "loadgate" / "data"


def job(args: list[str], cwd: Path, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadgate.job", *args],
        cwd=cwd,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- item 5: every Locust-side setting is a flag of the job and is passed down ------------------------

OVERRIDES = {  # a valid, non-default value per Locust-scope option (others: their default, given explicitly)
    "--chat-weight": "7",
    "--batch-weight": "3",
    "--models-weight": "2",
    "--think-time": "0.1-0.2",
    "--stream-ratio": "0.5",
    "--multi-turn-ratio": "0.3",
    "--turns": "2-3",
    "--models": "m1,m2",
    "--prompt-file": str(SHIPPED / "prompts.jsonl"),  # the job checks the prompt source before any load
    "--max-tokens": "16-32",
    "--batch-mode": "async",
    "--batch-size": "3",
    "--poll-interval": "1s",
    "--poll-backoff": "2",
    "--poll-max-interval": "4s",
    "--job-timeout": "30s",
    "--request-timeout": "20s",
    "--goodput": "ttft:500",
    "--warmup": "12s",
    "--breakpoint-fail-ratio": "0.1",
    "--breakpoint-p95-ms": "5000",
    "--sla": "sla.yaml",
    "--sla-abort": None,
    "--sla-interval": "2s",
    "--request-rate": "5",
    "--max-concurrency": "4",
    "--stages": "spike",  # a shipped scenario's name (a path works too)
    "--input-tokens": "200:40",
    "--output-tokens": "64",
    "--ignore-eos": None,
    "--min-tokens": "8",
    "--seed": "7",
    "--dataset": f"sharegpt:{SHIPPED / 'sharegpt_sample.json'}",
    "--extra-body": '{"temperature": 0}',
    "--server-metrics": "auto",
    "--server-metrics-filter": "default,vllm:.*_total",
}


LOCUST_SIDE = [o for o in opts.OPTIONS if o.scope == opts.LOCUST and o.in_job]
SAMPLE = {o.flag: OVERRIDES.get(o.flag, None if o.switch else o.default) for o in LOCUST_SIDE}


def test_every_locust_side_option_has_a_sample():
    assert set(OVERRIDES) <= set(SAMPLE)
    assert all(value != "" for value in SAMPLE.values())  # an empty default needs an override


@pytest.mark.parametrize("flag", sorted(SAMPLE))
def test_the_job_accepts_each_locust_side_flag_and_passes_it_down(flag):
    value = SAMPLE[flag]
    argv = [flag] if value is None else [flag, value]
    cfg = parse_config([*argv, "--run-time", "60s"], {})
    if flag == "--warmup":  # the job always passes --warmup itself (it also checks it against the file)
        assert cfg.warmup == 12.0 and cfg.locust_args == []
    else:
        assert cfg.locust_args == argv


def test_env_vars_are_passed_down_as_flags_too():
    cfg = parse_config([], {"LOADGATE_MODELS": "m1", "LOADGATE_BATCH_WEIGHT": "0"})
    assert cfg.locust_args == ["--batch-weight", "0", "--models", "m1"]
    assert cfg.models == ("m1",)


def test_the_embedded_target_options_are_not_the_jobs():
    help_text = job(["--help"], Path.cwd()).stdout
    assert "--embedded-target" not in help_text and "--models MODELS" in help_text


# -- item 10: validation before any load, previous results untouched ---------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--spawn-rate", "inf"],
            "--spawn-rate: not a finite number (got 'inf'); use a number > 0",
        ),
        (["--spawn-rate", "nan"], "--spawn-rate: not a finite number (got 'nan'); use a number > 0"),
        (
            ["--run-time", "-5s"],
            "--run-time: not a duration (got '-5s'); use e.g. 40s, 5m, 1h30m or seconds",
        ),
        (["--users", "-3"], "--users: must be >= 1 (got -3)"),
        (
            ["--think-time", "nan"],
            "--think-time: not a finite number of seconds (got 'nan'); use seconds S or MIN-MAX, e.g. 0.5-2",
        ),
        (
            ["--warmup", "inf"],
            "--warmup: not a duration (got 'inf'); use e.g. 40s, 5m, 1h30m or seconds",
        ),
        (
            ["--profile", ""],
            "--profile: unknown value (got ''); choose one of smoke, load, stress, spike, soak, breakpoint, normal-day, black-friday, maintenance-window, none",
        ),
        (
            ["--goodput", "ttft:nan"],
            "--goodput: target 'ttft:nan' needs a finite number of ms > 0 (got 'ttft:nan'); use e.g. "
            "ttft:500,tpot:50,e2e:10000 (milliseconds)",
        ),
        (
            ["--warmup", "5s"],
            "--warmup: shorter than the thresholds file's warmup (got 5s, {thresholds} demands 10s); use "
            "--warmup 10s or longer",
        ),
        (
            ["--results", "{file}"],
            "--results: not a folder (got '{file}', an existing file); give a folder path, e.g. results",
        ),
        (
            ["--results", "{file}/sub"],
            "--results: '{file}' is a file, so '{file}/sub' cannot be created; give a folder path",
        ),
    ],
)
def test_bad_settings_exit_2_before_any_load_and_leave_the_results(tmp_path, args, message):
    results = tmp_path / "results"
    results.mkdir()
    earlier = results / "loadgate_stats.csv"
    earlier.write_text("Type,Name\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    thresholds = Path(__file__).resolve().parents[2] / "loadgate" / "data" / "thresholds.yaml"
    args = [a.replace("{file}", str(a_file)) for a in args]
    if "--results" not in args:
        args += ["--results", str(results)]
    done = job(args, tmp_path)
    assert done.returncode == 2, done.stderr
    expected = "run_load_gate: error: " + message.format(file=a_file, thresholds=thresholds)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0] == expected
    assert earlier.read_text() == "Type,Name\n"  # the previous run's results are untouched


# -- item 1: the probe before the load ----------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_refused_key_fails_the_job_in_seconds_and_keeps_the_results(tmp_path, mock_server):
    mock = mock_server(config=mock_config(auth={"keys": [KEY]}))
    results = tmp_path / "results"
    results.mkdir()
    (results / "verdict.txt").write_text("earlier verdict\n")
    started = time.monotonic()
    done = job(
        ["--host", mock.url, "--results", str(results)], tmp_path, OPENAI_API_KEY="sk-wrong-0000000000"
    )
    assert time.monotonic() - started < 10
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"run_load_gate: waiting for {mock.url}/health",
        "run_load_gate: error: the target refused the API key: GET /v1/models answered HTTP 401 "
        "invalid_api_key: Incorrect API key provided: sk-****0000.; set OPENAI_API_KEY to a key the target "
        "accepts",
    ]
    assert (results / "verdict.txt").read_text() == "earlier verdict\n"


@pytest.mark.timeout(60)
def test_no_model_list_fails_the_job_naming_models_without_waiting_for_health(tmp_path, mock_server):
    mock = mock_server(config=mock_config(endpoints={"models": False}))
    started = time.monotonic()
    done = job(["--host", mock.url, "--health-path", "/nope", "--results", str(tmp_path / "r")], tmp_path)
    assert time.monotonic() - started < 10
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"run_load_gate: waiting for {mock.url}/nope",
        f"run_load_gate: {mock.url}/nope is not served (404/405): the start-up probe checks the target instead",
        "run_load_gate: error: no model to use: GET /v1/models answered 404: the target has no model list; set "
        "--models (LOADGATE_MODELS) to the model ids the target serves",
    ]


def test_the_handoff_variable_is_the_one_the_harness_reads():
    lifecycle = Path(__file__).resolve().parents[2] / "loadgate" / "harness" / "lifecycle.py"
    assert f'PROBE_HANDOFF_ENV = "{PROBE_HANDOFF_ENV}"' in lifecycle.read_text()  # no Locust import here
