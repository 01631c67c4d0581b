"""Bad requests, auth, body limits, unknown routes and bad startup input: exact statuses and bodies."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests

from loadgate.mock.__main__ import main as mock_main
from loadgate.mock.config import MockConfigError, parse_config
from loadgate.mock.process import MockProcess, MockStartError

from .conftest import chat_body, fast_config

pytestmark = pytest.mark.timeout(60)


def post_chat(url: str, body, **kwargs) -> requests.Response:
    return requests.post(f"{url}/v1/chat/completions", json=body, timeout=5, **kwargs)


def assert_error(
    response: requests.Response, status: int, param: str | None, code: str | None = None
) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    if param:
        assert param in error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        (chat_body(messages=[]), "messages"),
        (chat_body(messages="hello"), "messages"),
        (chat_body(messages=[{"role": "robot", "content": "hi"}]), "messages[0].role"),
        (chat_body(messages=[{"role": "user"}]), "messages[0].content"),
        (chat_body(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (chat_body(max_tokens=-1), "max_tokens"),
        (chat_body(max_tokens=0), "max_tokens"),
        (chat_body(max_tokens="10"), "max_tokens"),
        (chat_body(max_completion_tokens=1.5), "max_completion_tokens"),
        (chat_body(temperature=3), "temperature"),
        (chat_body(temperature="hot"), "temperature"),
        (chat_body(top_p=-0.1), "top_p"),
        (chat_body(stream="yes"), "stream"),
        (chat_body(n=2), "n"),
        (chat_body(stop=["a", "b", "c", "d", "e"]), "stop"),
        (chat_body(stream_options={"include_usage": True}), "stream_options"),
        (chat_body(stream=True, stream_options={"include_usage": "yes"}), "stream_options.include_usage"),
        ([chat_body()], "body"),
    ],
)
def test_invalid_fields_answer_400_naming_the_field(fast_mock, body, param):
    error = assert_error(post_chat(fast_mock.url, body), 400, param)
    assert error["type"] == "invalid_request_error"


def test_accepts_sampling_options_and_unknown_fields(fast_mock):
    body = chat_body(
        temperature=0.7,
        top_p=0.9,
        presence_penalty=0.5,
        frequency_penalty=-1,
        seed=3,
        stop="\n",
        n=1,
        user="u1",
        logprobs=False,
        ignore_eos=True,
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hello"}]},
        ],
    )
    assert post_chat(fast_mock.url, body).status_code == 200


def test_malformed_json_is_400(fast_mock):
    r = requests.post(
        f"{fast_mock.url}/v1/chat/completions",
        data=b'{"model": ',
        timeout=5,
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 400, None, "invalid_json")


def test_absurdly_nested_json_is_400_not_a_crash(fast_mock):
    r = requests.post(f"{fast_mock.url}/v1/chat/completions", data=b"[" * 200_000 + b"]" * 200_000, timeout=5)
    assert_error(r, 400, None, "invalid_json")


def test_unknown_model_is_404(fast_mock):
    error = assert_error(post_chat(fast_mock.url, chat_body(model="gpt-9")), 404, "model", "model_not_found")
    assert "gpt-9" in error["message"]


def test_unknown_route_and_wrong_method_are_openai_404(fast_mock):
    error = assert_error(requests.get(f"{fast_mock.url}/v1/nothing", timeout=5), 404, None)
    assert error["message"] == "Invalid URL (GET /v1/nothing)"
    error = assert_error(requests.get(f"{fast_mock.url}/v1/chat/completions", timeout=5), 404, None)
    assert error["message"] == "Invalid URL (GET /v1/chat/completions)"


def test_oversized_body_is_refused_with_413(mock_server):
    mock = mock_server(config=fast_config(max_body_bytes=2048))
    big = chat_body(messages=[{"role": "user", "content": "x" * 5000}])
    assert_error(post_chat(mock.url, big), 413, None, "request_too_large")

    def chunked():  # no Content-Length: the limit still holds while reading
        yield b'{"model": "loadgate-small", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 1000
        yield b'"}]}'

    r = requests.post(
        f"{mock.url}/v1/chat/completions",
        data=chunked(),
        timeout=5,
        headers={"Content-Type": "application/json"},
    )
    assert_error(r, 413, None, "request_too_large")
    assert post_chat(mock.url, chat_body()).status_code == 200


def test_auth_keys_from_config_and_env(mock_server):
    mock = mock_server(
        config=fast_config(auth={"keys": ["sk-config-key-1"], "keys_env": "MOCK_TEST_KEYS"}),
        env={"MOCK_TEST_KEYS": "sk-env-key-2, sk-env-key-3"},
    )
    missing = assert_error(post_chat(mock.url, chat_body()), 401, None)
    assert "didn't provide an API key" in missing["message"]
    wrong = assert_error(
        post_chat(mock.url, chat_body(), headers={"Authorization": "Bearer sk-wrong-key-0000"}),
        401,
        None,
        "invalid_api_key",
    )
    assert "sk-wrong-key-0000" not in wrong["message"]  # never echo a secret in full
    for key in ("sk-config-key-1", "sk-env-key-3"):
        ok = post_chat(mock.url, chat_body(), headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
    assert requests.get(f"{mock.url}/v1/models", timeout=5).status_code == 401
    assert requests.get(f"{mock.url}/health", timeout=5).status_code == 200  # health stays open


def test_no_keys_configured_accepts_any_request(fast_mock):
    assert (
        post_chat(fast_mock.url, chat_body(), headers={"Authorization": "Bearer whatever"}).status_code == 200
    )
    assert post_chat(fast_mock.url, chat_body()).status_code == 200


def test_disabled_endpoints_answer_404_as_absent(mock_server):
    mock = mock_server(config=fast_config(endpoints={"models": False, "async": False, "batch": False}))
    assert post_chat(mock.url, chat_body()).status_code == 200
    for method, path in (
        ("GET", "/v1/models"),
        ("GET", "/v1/models/loadgate-small"),
        ("POST", "/v1/chat/completions/async"),
        ("GET", "/v1/chat/completions/async/x"),
        ("POST", "/v1/files"),
        ("POST", "/v1/batches"),
        ("GET", "/v1/batches/x"),
    ):
        r = requests.request(method, f"{mock.url}{path}", json={}, timeout=5)
        assert_error(r, 404, None)
        assert r.json()["error"]["message"] == f"Invalid URL ({method} {path})"


def test_chat_endpoint_can_be_disabled(mock_server):
    mock = mock_server(config=fast_config(endpoints={"chat": False}))
    assert_error(post_chat(mock.url, chat_body()), 404, None)
    assert requests.get(f"{mock.url}/v1/models", timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"capacity": {"slotz": 3}}, "capacity.slotz: unknown key"),
        ({"models": {}}, "models: must map at least one model id"),
        ({"models": {"m": {"output_tokens": 0}}}, "models.m.output_tokens: must be >= 1"),
        ({"auth": {"keys": "sk-1"}}, "auth.keys: must be a list of non-empty strings"),
        ({"seed": "x"}, "seed: must be an integer or null"),
        ({"capacity": {"slots": 0}}, "capacity.slots: must be an integer (got 0)"),
        (
            {"capacity": {"overload_status": 500}},
            "capacity.overload_status: must be 429 or 503 (got 500); use 429 or 503",
        ),
        (
            {"faults": {"cut": 0.7, "stall": 0.6}},
            "faults.error_5xx: request fault rates must sum to at most 1",
        ),
        (
            {"models": {"m": {"ttft": {"distribution": "gamma"}}}},
            "models.m.ttft.distribution: unknown distribution",
        ),
        ({"models": {"m": {"tokens_per_s": "fast"}}}, "models.m.tokens_per_s: must be a number"),
        ({"usage": "no"}, "usage: must be true or false"),
        ({"endpoints": {"async": 1}}, "endpoints.async: must be true or false"),
        ({"tokens_per_chunk": 0}, "tokens_per_chunk: must be an integer (got 0); use an integer >= 1"),
        ({"chars_per_chunk": -1}, "chars_per_chunk: must be an integer (got -1); use an integer >= 0"),
        (
            {"chars_per_chunk": 1, "tokens_per_chunk": 2},
            "chars_per_chunk: cannot be combined with tokens_per_chunk (got 1); set one of chars_per_chunk "
            "and tokens_per_chunk",
        ),
    ],
)
def test_bad_config_is_one_error_naming_the_key(config, expected):
    with pytest.raises(MockConfigError) as excinfo:
        parse_config(config, "mock.yaml")
    assert str(excinfo.value).startswith(f"mock.yaml: {expected}")
    assert "\n" not in str(excinfo.value)


def test_bad_config_exits_2_with_the_message_on_stderr():
    with pytest.raises(MockStartError) as excinfo:
        MockProcess(config={"capacity": {"slotz": 3}}).start()
    message = str(excinfo.value)
    assert "exited with code 2 before it was ready: loadgate mock: error: " in message
    assert "capacity.slotz: unknown key (got 'slotz'); known keys here: " in message
    assert "Traceback" not in message


def test_cli_errors_for_missing_config_file_and_busy_port(tmp_path, capsys, fast_mock):
    assert mock_main(["--port", "0", "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"loadgate mock: error: {tmp_path / 'missing.yaml'}: cannot read config (No such file or "
        "directory); pass an existing YAML file\n"
    )
    (tmp_path / "bad.yaml").write_text("models: [\n")
    assert mock_main(["--port", "0", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "bad.yaml:2: invalid YAML" in capsys.readouterr().err
    assert mock_main(["--port", "0", "--truth-log", str(tmp_path / "no" / "dir" / "t.jsonl")]) == 2
    assert "--truth-log" in capsys.readouterr().err
    port = fast_mock.url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "loadgate.mock", "--port", port], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 3
    assert done.stderr == (
        f"loadgate mock: error: cannot listen on 127.0.0.1:{port} (Address already in use); "
        "pick another --port (0 = any free port)\n"
    )
