"""Chat completions, models and health against a real mock process over loopback."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest
import requests

from .conftest import chat_body, fast_config, read_truth

pytestmark = pytest.mark.timeout(60)

TEN_WORDS = "The quick brown fox jumps over the lazy dog while"  # the mock's 10-token answer


def sse_events(response: requests.Response) -> list[str]:
    return [line[len("data: ") :] for line in response.iter_lines(decode_unicode=True) if line]


def test_health_and_models(fast_mock):
    health = requests.get(f"{fast_mock.url}/health", timeout=5)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    models = requests.get(f"{fast_mock.url}/v1/models", timeout=5).json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["loadgate-small", "loadgate-large"]
    one = requests.get(f"{fast_mock.url}/v1/models/loadgate-large", timeout=5)
    assert one.json() == {**models["data"][1]}
    missing = requests.get(f"{fast_mock.url}/v1/models/gpt-nope", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_non_streaming_completion_shape(fast_mock):
    r = requests.post(f"{fast_mock.url}/v1/chat/completions", json=chat_body(), timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-") and r.headers["x-request-id"] == body["id"]
    assert body["model"] == "loadgate-small"
    choice = body["choices"][0]
    assert choice["index"] == 0 and choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    assert len(choice["message"]["content"].split()) == 8
    # "Say hello to the load test." is 27 characters -> ceil(27 / 4) = 7 prompt tokens
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 8, "total_tokens": 15}


def test_max_tokens_caps_output_with_finish_reason_length(fast_mock):
    body = requests.post(
        f"{fast_mock.url}/v1/chat/completions", json=chat_body(max_tokens=3), timeout=5
    ).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    body = requests.post(
        f"{fast_mock.url}/v1/chat/completions", json=chat_body(max_completion_tokens=8), timeout=5
    ).json()
    assert body["choices"][0]["finish_reason"] == "stop"


def test_ignore_eos_and_min_tokens_lengthen_the_answer_as_vllm_does(fast_mock):
    """The fast mock answers 8 tokens; vLLM's min_tokens and ignore_eos make it generate more, up to
    max_tokens; min_tokens above max_tokens is refused (400), as vLLM refuses it."""

    def answer(**fields) -> dict:
        return requests.post(
            f"{fast_mock.url}/v1/chat/completions", json=chat_body(**fields), timeout=5
        ).json()

    body = answer(max_tokens=20, ignore_eos=True)
    assert (body["usage"]["completion_tokens"], body["choices"][0]["finish_reason"]) == (20, "length")
    body = answer(max_tokens=20, min_tokens=12)
    assert (body["usage"]["completion_tokens"], body["choices"][0]["finish_reason"]) == (12, "stop")
    assert answer(max_tokens=20, min_tokens=4)["usage"]["completion_tokens"] == 8
    refused = requests.post(
        f"{fast_mock.url}/v1/chat/completions", json=chat_body(max_tokens=5, min_tokens=6), timeout=5
    )
    assert refused.status_code == 400
    assert (
        refused.json()["error"]["message"] == "min_tokens: must be less than or equal to max_tokens=5, got 6"
    )


def test_streaming_chunks_one_token_each_then_usage_and_done(fast_mock):
    r = requests.post(
        f"{fast_mock.url}/v1/chat/completions",
        timeout=5,
        stream=True,
        json=chat_body(stream=True, stream_options={"include_usage": True}),
        headers={"X-Request-Id": "trace-42"},
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers.get("Transfer-Encoding") == "chunked"
    events = sse_events(r)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) == 8
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 8
    text = "".join(c["choices"][0]["delta"]["content"] for c in content)
    plain = requests.post(f"{fast_mock.url}/v1/chat/completions", json=chat_body(), timeout=5).json()
    assert text == plain["choices"][0]["message"]["content"]


def test_streaming_without_include_usage_sends_no_usage(fast_mock):
    r = requests.post(
        f"{fast_mock.url}/v1/chat/completions", json=chat_body(stream=True), timeout=5, stream=True
    )
    events = sse_events(r)
    assert events[-1] == "[DONE]"
    assert not any("usage" in json.loads(e) for e in events[:-1])


def test_usage_false_never_sends_usage(mock_server):
    mock = mock_server(config=fast_config(usage=False))
    plain = requests.post(f"{mock.url}/v1/chat/completions", json=chat_body(), timeout=5).json()
    assert "usage" not in plain
    r = requests.post(
        f"{mock.url}/v1/chat/completions",
        timeout=5,
        stream=True,
        json=chat_body(stream=True, stream_options={"include_usage": True}),
    )
    events = sse_events(r)
    assert events[-1] == "[DONE]" and not any("usage" in json.loads(e) for e in events[:-1])


@pytest.mark.parametrize(
    ("chunking", "expected_chunks"),
    [
        ({"tokens_per_chunk": 3}, ["The quick brown", " fox jumps over", " the lazy dog", " while"]),
        ({"chars_per_chunk": 1}, list(TEN_WORDS)),
        ({"chars_per_chunk": 7}, [TEN_WORDS[i : i + 7] for i in range(0, len(TEN_WORDS), 7)]),
    ],
)
def test_chunking_splits_the_same_text_and_the_truth_counts_tokens(
    mock_server, tmp_path, chunking, expected_chunks
):
    truth = tmp_path / "truth.jsonl"
    models = {"loadgate-small": {"ttft": 0.005, "tokens_per_s": 500, "output_tokens": 10}}
    mock = mock_server(config=fast_config(models=models, usage=False, **chunking), truth_log=truth)
    r = requests.post(
        f"{mock.url}/v1/chat/completions",
        timeout=5,
        stream=True,
        json=chat_body(stream=True, stream_options={"include_usage": True}),
    )
    events = [json.loads(e) for e in sse_events(r)[:-1]]
    deltas = [e["choices"][0]["delta"].get("content") for e in events if e["choices"]]
    content = [d for d in deltas if d]  # the role delta ("") and the finish chunk (no content) aside
    assert content == expected_chunks and "".join(content) == TEN_WORDS
    assert not any("usage" in e for e in events)
    plain = requests.post(f"{mock.url}/v1/chat/completions", json=chat_body(), timeout=5).json()
    assert plain["choices"][0]["message"]["content"] == TEN_WORDS  # the same answer, not streamed
    assert mock.stop() == 0
    streamed, _ = read_truth(truth)
    assert streamed["completion_tokens"] == 10 and len(streamed["t_chunks"]) == len(expected_chunks)


def test_a_request_arrives_when_its_head_reaches_the_mock_not_when_its_handler_starts(mock_server, tmp_path):
    """Two requests pipelined in one packet: the second's handler starts only once the first (TTFT 0.3 s)
    is answered, but it reached the mock with the first, and its truth-log arrival says so."""
    truth = tmp_path / "truth.jsonl"
    models = {"loadgate-small": {"ttft": 0.3, "tokens_per_s": 0, "output_tokens": 2}}
    mock = mock_server(config=fast_config(models=models), truth_log=truth)
    body = json.dumps(chat_body()).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    pipelined = b"".join((head + f"X-Request-Id: r{i}\r\n\r\n").encode() + body for i in (1, 2))
    address = urlsplit(mock.url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(pipelined)
        received = b""
        while received.count(b"HTTP/1.1 200") < 2 or not received.endswith(b"}"):
            received += sock.recv(65536)
    assert mock.stop() == 0
    first, second = sorted(read_truth(truth), key=lambda row: row["x_request_id"])
    assert second["t_done"] - first["t_done"] >= 0.29  # the second was answered after the first
    assert abs(second["t_received"] - first["t_received"]) < 0.05  # yet both arrived together


def test_truth_log_rows(mock_server, tmp_path):
    truth = tmp_path / "truth.jsonl"
    models = {"loadgate-small": {"ttft": 0.005, "tokens_per_s": 200, "output_tokens": 8}}
    mock = mock_server(config=fast_config(models=models), truth_log=truth)
    streamed = requests.post(
        f"{mock.url}/v1/chat/completions",
        json=chat_body(stream=True),
        timeout=5,
        headers={"X-Request-Id": "trace-1"},
    )
    assert streamed.text.endswith("data: [DONE]\n\n")
    requests.post(f"{mock.url}/v1/chat/completions", json=chat_body(), timeout=5)
    requests.post(f"{mock.url}/v1/chat/completions", json=chat_body(model="nope"), timeout=5)
    assert mock.stop() == 0  # graceful: SIGTERM flushes the log
    stream, plain, bad = read_truth(truth)
    assert set(stream) == {
        "request_id",
        "method",
        "path",
        "model",
        "stream",
        "status",
        "error",
        "fault",
        "t_received",
        "t_first_token",
        "t_chunks",
        "t_last_token",
        "t_done",
        "prompt_tokens",
        "completion_tokens",
        "x_request_id",
    }
    assert stream["request_id"].startswith("chatcmpl-") and stream["x_request_id"] == "trace-1"
    assert (stream["method"], stream["path"], stream["model"], stream["stream"]) == (
        "POST",
        "/v1/chat/completions",
        "loadgate-small",
        True,
    )
    assert stream["status"] == 200 and stream["error"] is None and stream["fault"] is None
    assert len(stream["t_chunks"]) == stream["completion_tokens"] == 8
    assert (
        stream["t_chunks"][0] == stream["t_first_token"] and stream["t_chunks"][-1] == stream["t_last_token"]
    )
    assert stream["t_chunks"] == sorted(stream["t_chunks"])
    assert stream["t_received"] < stream["t_first_token"] <= stream["t_last_token"] <= stream["t_done"]
    # 8 tokens at 200 tokens/s alone: 7 intervals of 5 ms after the first token; never a catch-up burst
    # (2 ms timer slack, plus a little for a busy machine between the schedule check and the send)
    assert stream["t_last_token"] - stream["t_first_token"] >= 0.035 - 0.005
    gaps = [b - a for a, b in zip(stream["t_chunks"], stream["t_chunks"][1:], strict=False)]
    assert min(gaps) >= 0.001
    assert stream["prompt_tokens"] == 7
    assert plain["stream"] is False and plain["t_first_token"] is None and plain["t_chunks"] is None
    assert plain["t_received"] < plain["t_last_token"] <= plain["t_done"] and plain["completion_tokens"] == 8
    assert bad["status"] == 404 and bad["error"].startswith("model_not_found")


def test_fast_completion_encoding_matches_the_dict_form():
    import random

    from loadgate.mock import protocol
    from loadgate.mock.config import parse_config
    from loadgate.mock.engine import Engine

    config = parse_config({"models": {'odd "model"': {"output_tokens": 40}}})
    plan = Engine(config.capacity, random.Random(3)).plan(config.models['odd "model"'], 33)
    for with_usage in (True, False):
        fast = json.loads(protocol.completion_bytes("chatcmpl-x", 123, plan, 9, with_usage))
        assert fast == protocol.completion("chatcmpl-x", 123, plan, 9, with_usage)
    assert fast["choices"][0]["finish_reason"] == "length"
