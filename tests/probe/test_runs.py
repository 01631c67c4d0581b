"""The probe in real runs: plain Locust (local and distributed) and the job, against the mock.

Each test asserts the exit code and the exact line loadgate prints. Run under the load lock."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from traffic.helpers import REPO, mock_config, read_failures, read_rows, run_distributed, run_locust

from loadgate.job import free_port

KEY = "sk-probe-right-key-0001"
CHAT = "POST /v1/chat/completions"


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "loadgate: error: " in line]


def warning_about(stderr: str, needle: str) -> list[str]:
    return [line.split("WARNING/loadgate: ", 1)[1] for line in stderr.splitlines() if needle in line]


# -- item 1: auth and models fail fast -----------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_refused_key_exits_2_at_once_naming_status_message_and_variable(tmp_path, mock_server):
    mock = mock_server(config=mock_config(auth={"keys": [KEY]}))
    started = time.monotonic()
    proc, _ = run_locust(tmp_path, mock.url, env={"OPENAI_API_KEY": "sk-wrong-key-0000000"})
    assert time.monotonic() - started < 10
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert error_lines(proc.stderr) == [
        "loadgate: error: the target refused the API key: GET /v1/models answered HTTP 401 invalid_api_key: "
        "Incorrect API key provided: sk-****0000.; set OPENAI_API_KEY to a key the target accepts"
    ]
    assert "Traceback" not in proc.stderr


@pytest.mark.timeout(60)
def test_no_model_list_and_no_models_exits_2_naming_the_flag(tmp_path, mock_server):
    mock = mock_server(config=mock_config(endpoints={"models": False}))
    proc, _ = run_locust(tmp_path, mock.url, user_classes=("ChatUser",))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert error_lines(proc.stderr) == [
        "loadgate: error: no model to use: GET /v1/models answered 404: the target has no model list; "
        "set --models (LOADGATE_MODELS) to the model ids the target serves"
    ]


# -- item 11: never the wrong server ------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_loopback_host_where_nothing_listens_is_named_not_replaced_by_the_mock(tmp_path):
    port = free_port()
    proc, _ = run_locust(tmp_path, f"http://127.0.0.1:{port}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert error_lines(proc.stderr) == [
        f"loadgate: error: nothing listens at http://127.0.0.1:{port}: connection refused; start the target "
        "or fix --host"
    ]
    assert "embedded target started" not in proc.stderr


# -- items 2 and 13: what the target does not serve is not run ---------------------------------------


@pytest.mark.timeout(60)
def test_absent_routes_are_not_run_said_in_one_line_and_recorded(tmp_path, mock_server):
    mock = mock_server(config=mock_config(endpoints={"models": False, "async": False, "batch": False}))
    proc, prefix = run_locust(
        tmp_path,
        mock.url,
        "--models",
        "loadgate-small",
        "--chat-weight",
        "1",
        "--batch-weight",
        "1",
        "--models-weight",
        "1",
        users=6,
        run_time="3s",
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert warning_about(proc.stderr, "does not serve") == [
        f"loadgate: {mock.url} does not serve models (GET /v1/models: HTTP 404, absent), model "
        "(GET /v1/models/{id}: HTTP 404, absent), async (POST /v1/chat/completions/async: HTTP 404, absent), "
        "batch (POST /v1/files: HTTP 404, absent): not running BatchUser; skipping ModelsUser.get_model, "
        "ModelsUser.list_models"
    ]
    rows = read_rows(f"{prefix}_stats.csv")
    assert int(rows[CHAT]["Request Count"]) > 0 and int(rows["GET /health"]["Request Count"]) > 0
    assert not {k for k in rows if "/v1/models" in k or "/v1/files" in k or "async" in k}
    assert {error for _, error in read_failures(prefix)} <= {
        "CatchResponseError('cancelled: the run stopped before the response completed')"
    }
    meta = json.loads(Path(f"{prefix}_loadgate.json").read_text())
    assert {k: v["served"] for k, v in meta["capabilities"].items()} == {
        "models": False,
        "model": False,
        "chat": True,
        "async": False,
        "batch": False,
        "health": True,
    }


@pytest.mark.timeout(60)
def test_a_route_absent_on_its_own_drops_only_its_task(tmp_path, mock_server):
    mock = mock_server(config=mock_config(endpoints={"model_by_id": False}))
    proc, prefix = run_locust(tmp_path, mock.url, users=2, run_time="3s", user_classes=("ModelsUser",))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert warning_about(proc.stderr, "does not serve") == [
        f"loadgate: {mock.url} does not serve model (GET /v1/models/{{id}}: HTTP 404, absent): skipping "
        "ModelsUser.get_model"
    ]
    rows = read_rows(f"{prefix}_stats.csv")
    assert int(rows["GET /v1/models"]["Request Count"]) > 0
    assert "GET /v1/models/{id}" not in rows and rows["Aggregated"]["Failure Count"] == "0"


@pytest.mark.timeout(90)
def test_workers_get_the_masters_probe(tmp_path, mock_server):
    mock = mock_server(config=mock_config(endpoints={"model_by_id": False}))
    master, worker_errors, prefix = run_distributed(
        tmp_path, mock.url, 2, "ModelsUser", users=2, run_time="3s"
    )
    assert master.returncode == 0, master.stderr[-2000:] + "".join(worker_errors)[-2000:]
    rows = read_rows(f"{prefix}_stats.csv")
    assert int(rows["GET /v1/models"]["Request Count"]) > 0
    assert "GET /v1/models/{id}" not in rows


# -- item 4: host URLs ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("suffix", ["/", "/v1", "/v1/"])
def test_a_trailing_slash_or_v1_suffix_is_normalised(tmp_path, mock_server, suffix):
    mock = mock_server(config=mock_config())
    proc, prefix = run_locust(
        tmp_path,
        mock.url + suffix,
        "--models",
        "loadgate-small",
        users=2,
        run_time="2s",
        user_classes=("ChatUser",),
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    rows = read_rows(f"{prefix}_stats.csv")
    assert int(rows[CHAT]["Request Count"]) > 0
    assert {error for _, error in read_failures(prefix)} <= {
        "CatchResponseError('cancelled: the run stopped before the response completed')"
    }
    assert json.loads(Path(f"{prefix}_loadgate.json").read_text())["host"] == mock.url


@pytest.mark.timeout(120)
def test_a_password_in_the_host_url_is_in_no_file_of_the_results(tmp_path, mock_server):
    mock = mock_server(config=mock_config())
    host = mock.url.replace("http://", "http://probe-user:pw-NEVER-WRITE-42@") + "/v1/"
    results = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgate.job",
            "--host",
            host,
            "--profile",
            "none",
            "--users",
            "2",
            "--spawn-rate",
            "2",
            "--run-time",
            "3s",
            "--warmup",
            "0",
            "--results",
            str(results),
            "--thresholds",
            str(REPO / "tests" / "ci" / "pass_thresholds.yaml"),
        ],
        cwd=tmp_path,
        env=__import__("child_env").child_env(),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "report.html" in {p.name for p in results.iterdir()}
    for path in results.iterdir():
        text = path.read_text(errors="replace")
        assert "pw-NEVER-WRITE-42" not in text and "probe-user" not in text, path.name
    assert "pw-NEVER-WRITE-42" not in done.stdout + done.stderr
    assert mock.url in (results / "report.html").read_text()


@pytest.mark.timeout(120)
def test_the_job_probes_once_and_hands_the_result_to_locust(tmp_path):
    results = tmp_path / "results"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadgate.job",
            "--profile",
            "none",
            "--users",
            "2",
            "--spawn-rate",
            "2",
            "--run-time",
            "3s",
            "--warmup",
            "0",
            "--results",
            str(results),
            "--thresholds",
            str(REPO / "tests" / "ci" / "pass_thresholds.yaml"),
        ],
        cwd=tmp_path,
        env=__import__("child_env").child_env(),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    truth = [json.loads(line) for line in (results / "mock_truth.jsonl").read_text().splitlines() if line]
    probes = [t for t in truth if str(t.get("x_request_id") or "").startswith("loadgate-probe-")]
    assert [t["path"] for t in probes if t["path"] == "/v1/models"] == ["/v1/models"]  # one probe, not two
    meta = json.loads((results / "loadgate_loadgate.json").read_text())
    assert all(route["served"] for route in meta["capabilities"].values())
