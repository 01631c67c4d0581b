"""Each injected fault, streaming and not, as the client sees it and as the truth log records it."""

from __future__ import annotations

import json
import time

import pytest
import requests

from .conftest import chat_body, fast_config, read_truth

pytestmark = pytest.mark.timeout(60)

STREAM = chat_body(stream=True)


def faulty(mock_server, tmp_path, **faults):
    truth = tmp_path / "truth.jsonl"
    return mock_server(config=fast_config(faults=faults), truth_log=truth), truth


def post(url: str, body: dict, **kwargs) -> requests.Response:
    return requests.post(f"{url}/v1/chat/completions", json=body, timeout=10, **kwargs)


def test_stall_pauses_mid_stream_then_finishes(mock_server, tmp_path):
    mock, truth = faulty(mock_server, tmp_path, stall=1.0, stall_seconds=0.4)
    r = post(mock.url, STREAM)
    assert r.text.endswith("data: [DONE]\n\n")
    started = time.monotonic()
    assert post(mock.url, chat_body()).status_code == 200
    assert time.monotonic() - started >= 0.4
    mock.stop()
    stream_row = read_truth(truth)[0]
    gaps = [b - a for a, b in zip(stream_row["t_chunks"], stream_row["t_chunks"][1:], strict=False)]
    assert stream_row["fault"] == "stall" and stream_row["completion_tokens"] == 8
    assert max(gaps) >= 0.4 and gaps.index(max(gaps)) == 3  # the stall sits before token 8 // 2


def test_cut_drops_the_connection_before_done(mock_server, tmp_path):
    mock, truth = faulty(mock_server, tmp_path, cut=1.0)
    r = post(mock.url, STREAM, stream=True)
    received = b""
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for piece in r.iter_content(None):
            received += piece
    assert b"[DONE]" not in received
    assert received.count(b'"content":"') == 1 + 4  # role chunk + the 4 tokens before the cut
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        post(mock.url, chat_body())
    mock.stop()
    stream_row, plain_row = read_truth(truth)
    assert stream_row["fault"] == "cut" and stream_row["completion_tokens"] == 4
    assert stream_row["error"] == "fault: stream cut after 4 tokens" and stream_row["status"] == 200
    assert plain_row["fault"] == "cut" and plain_row["error"] == "fault: connection cut mid-body"


def test_malformed_chunk_is_one_invalid_event(mock_server, tmp_path):
    mock, truth = faulty(mock_server, tmp_path, malformed_chunk=1.0)
    events = [line[6:] for line in post(mock.url, STREAM).text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    bad = []
    for event in events[:-1]:
        try:
            json.loads(event)
        except ValueError:
            bad.append(event)
    assert len(bad) == 1
    plain = post(mock.url, chat_body())
    assert plain.status_code == 200
    with pytest.raises(ValueError):
        plain.json()
    mock.stop()
    assert [row["fault"] for row in read_truth(truth)] == ["malformed_chunk"] * 2
    assert read_truth(truth)[0]["completion_tokens"] == 8


def test_slow_header_delays_the_response_headers(mock_server, tmp_path):
    mock, truth = faulty(mock_server, tmp_path, slow_header=1.0, slow_header_seconds=0.4)
    started = time.monotonic()
    r = post(mock.url, STREAM, stream=True)
    assert time.monotonic() - started >= 0.4
    assert r.status_code == 200 and r.content.endswith(b"data: [DONE]\n\n")
    mock.stop()
    row = read_truth(truth)[0]
    assert row["fault"] == "slow_header" and row["t_first_token"] - row["t_received"] >= 0.4


def test_error_5xx_at_its_rate(mock_server, tmp_path):
    mock, truth = faulty(mock_server, tmp_path, error_5xx=0.3, error_5xx_status=502)
    with requests.Session() as session:
        answers = [
            session.post(
                f"{mock.url}/v1/chat/completions", json=chat_body(max_tokens=1, stream=i % 2 == 0), timeout=5
            )
            for i in range(200)
        ]
    failures = [a for a in answers if a.status_code == 502]
    assert len(failures) + sum(a.status_code == 200 for a in answers) == 200
    assert 35 <= len(failures) <= 85  # 60 expected; binomial sd 6.5
    assert all(a.json()["error"]["type"] == "server_error" for a in failures)
    assert any("event-stream" in a.headers["Content-Type"] for a in answers if a.status_code == 200)
    mock.stop()
    rows = read_truth(truth)
    assert sorted((row["status"], row["fault"]) for row in rows) == sorted(
        (502, "error_5xx") if a.status_code == 502 else (200, None) for a in answers
    )
