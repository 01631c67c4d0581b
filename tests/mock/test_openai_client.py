"""The official `openai` client talks to the mock unmodified, streaming and errors included."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest

from .conftest import fast_config

pytestmark = pytest.mark.timeout(60)

MESSAGES = [{"role": "user", "content": "Count to five."}]


def client_for(url: str, key: str = "sk-anything") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=10)


def test_models_and_completion(fast_mock):
    client = client_for(fast_mock.url)
    assert [m.id for m in client.models.list()] == ["loadgate-small", "loadgate-large"]
    assert client.models.retrieve("loadgate-large").owned_by == "loadgate"
    completion = client.chat.completions.create(model="loadgate-small", messages=MESSAGES, max_tokens=5)
    assert completion.object == "chat.completion"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 5
    assert completion.choices[0].message.content == "The quick brown fox jumps"


def test_streaming_with_usage(fast_mock):
    client = client_for(fast_mock.url)
    stream = client.chat.completions.create(
        model="loadgate-small", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 8
    assert chunks[-1].usage.completion_tokens == 8 and chunks[-1].choices == []
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_errors_map_to_openai_exceptions(mock_server):
    mock = mock_server(config=fast_config(auth={"keys": ["sk-good-key-123"]}))
    with pytest.raises(openai.AuthenticationError) as auth:
        client_for(mock.url, "sk-bad").chat.completions.create(model="loadgate-small", messages=MESSAGES)
    assert auth.value.status_code == 401
    client = client_for(mock.url, "sk-good-key-123")
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-none", messages=MESSAGES)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="loadgate-small", messages=MESSAGES, max_tokens=-3)
    assert bad.value.param == "max_tokens"


def test_batch_api_round_trip(fast_mock):
    client = client_for(fast_mock.url)
    lines = [
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "loadgate-small", "messages": MESSAGES, "max_tokens": 4},
        }
        for i in range(5)
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    uploaded = client.files.create(file=("requests.jsonl", io.BytesIO(data)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(data)
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "validating"
    deadline = time.monotonic() + 10
    while batch.status not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        5,
        5,
        0,
    )
    assert batch.error_file_id is None
    output = [json.loads(row) for row in client.files.content(batch.output_file_id).text.splitlines()]
    assert sorted(row["custom_id"] for row in output) == [f"req-{i}" for i in range(5)]
    assert all(row["response"]["status_code"] == 200 for row in output)
    assert all(row["response"]["body"]["usage"]["completion_tokens"] == 4 for row in output)
