"""Process lifecycle: ready line, --port 0, SIGTERM with work in flight, MockProcess errors."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from loadgate.mock.process import MockProcess, MockStartError

from .conftest import chat_body, read_truth

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_ready_line_port_zero_and_clean_stop(tmp_path, stop_signal):
    truth = tmp_path / "truth.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loadgate.mock",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--truth-log",
            str(truth),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert re.fullmatch(r"loadgate mock listening on http://127\.0\.0\.1:(\d+)\n", line)
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        proc.send_signal(stop_signal)
        assert proc.wait(10) == 0
    assert proc.stdout.read() == ""  # exactly one line on stdout
    assert proc.stderr.read() == ""
    assert [row["path"] for row in read_truth(truth)] == ["/health"]  # flushed on stop


def test_sigterm_with_work_in_flight_logs_every_request(tmp_path):
    truth = tmp_path / "truth.jsonl"
    config = {"models": {"m": {"ttft": 0.01, "tokens_per_s": 20, "output_tokens": 200}}}
    mock = MockProcess(config=config, truth_log=truth).start()
    outcome = {}

    def stream() -> None:
        try:
            r = requests.post(f"{mock.url}/v1/chat/completions", json=chat_body("m", stream=True), timeout=30)
            outcome["error"] = None if r.text.endswith("[DONE]\n\n") else "incomplete"
        except requests.RequestException as exc:
            outcome["error"] = type(exc).__name__

    client = threading.Thread(target=stream)
    client.start()
    job = requests.post(f"{mock.url}/v1/chat/completions/async", json=chat_body("m"), timeout=5).json()
    time.sleep(0.3)
    started = time.monotonic()
    assert mock.stop() == 0
    assert time.monotonic() - started < 5
    client.join(10)
    assert outcome["error"] == "ChunkedEncodingError"  # the stream ended without [DONE]
    rows = {row["path"]: row for row in read_truth(truth)}
    streamed = rows["/v1/chat/completions"]
    assert streamed["status"] == 200 and streamed["error"] == "cancelled: server stopping"
    assert 0 < streamed["completion_tokens"] == len(streamed["t_chunks"]) < 200
    assert rows["job:async"]["request_id"] == job["request_id"]
    assert rows["job:async"]["status"] == "failed" and rows["job:async"]["prompt_tokens"] == 7


def test_mock_process_dict_config_context_manager_and_env():
    with MockProcess(config={"auth": {"keys_env": "LG_TEST_KEY"}}, env={"LG_TEST_KEY": "sk-abc"}) as mock:
        assert mock.url.startswith("http://127.0.0.1:")
        r = requests.get(f"{mock.url}/v1/models", headers={"Authorization": "Bearer sk-abc"}, timeout=5)
        assert [m["id"] for m in r.json()["data"]] == ["loadgate-small", "loadgate-large"]
        assert mock.returncode is None
    assert mock.returncode == 0


def test_mock_process_start_error_carries_stderr(tmp_path):
    with pytest.raises(
        MockStartError,
        match=r"exited with code 2 before it was ready: loadgate mock: error: "
        r".*missing\.yaml: cannot read config",
    ):
        MockProcess(config=tmp_path / "missing.yaml").start()
