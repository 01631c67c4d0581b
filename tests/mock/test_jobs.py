"""Async chat jobs and the Batch API: lifecycle, validation, failures, and nothing lost."""

from __future__ import annotations

import json
import time

import pytest
import requests

from .conftest import chat_body, fast_config, read_truth

pytestmark = pytest.mark.timeout(60)

ASYNC = "/v1/chat/completions/async"


def wait_for(get, done, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = get()
        if done(value):
            return value
        time.sleep(0.03)
    raise AssertionError(f"not done after {timeout}s: {value}")


def poll_job(url: str, job_id: str) -> dict:
    return wait_for(
        lambda: requests.get(f"{url}{ASYNC}/{job_id}", timeout=5).json(),
        lambda job: job["status"] in ("completed", "failed"),
    )


def upload(url: str, lines: list, purpose: str = "batch") -> requests.Response:
    data = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    return requests.post(
        f"{url}/v1/files",
        data={"purpose": purpose},
        files={"file": ("input.jsonl", data.encode())},
        timeout=5,
    )


def batch_line(i: int, **body) -> dict:
    return {
        "custom_id": f"c{i}",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {**chat_body(max_tokens=3), **body},
    }


def run_batch(url: str, lines: list) -> dict:
    file_id = upload(url, lines).json()["id"]
    created = requests.post(
        f"{url}/v1/batches",
        timeout=5,
        json={"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
    )
    assert created.status_code == 200, created.text
    return wait_for(
        lambda: requests.get(f"{url}/v1/batches/{created.json()['id']}", timeout=5).json(),
        lambda b: b["status"] in ("completed", "failed", "cancelled"),
    )


def file_rows(url: str, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    text = requests.get(f"{url}/v1/files/{file_id}/content", timeout=5).text
    return [json.loads(line) for line in text.splitlines()]


def test_async_job_lifecycle(mock_server):
    mock = mock_server(
        config=fast_config(
            models={"slow": {"ttft": 0.3, "tokens_per_s": 0, "output_tokens": 4}}, jobs={"workers": 1}
        )
    )
    submit = [requests.post(f"{mock.url}{ASYNC}", json=chat_body("slow"), timeout=5) for _ in range(2)]
    assert [s.status_code for s in submit] == [202, 202]
    first, second = (s.json() for s in submit)
    assert first["status"] == "queued" and first["request_id"] != second["request_id"]
    time.sleep(0.1)
    statuses = [
        requests.get(f"{mock.url}{ASYNC}/{j['request_id']}", timeout=5).json()["status"]
        for j in (first, second)
    ]
    assert statuses == ["processing", "queued"]  # one worker: the second job waits its turn
    done = poll_job(mock.url, second["request_id"])
    assert done["status"] == "completed"
    assert done["result"]["object"] == "chat.completion" and done["result"]["usage"]["completion_tokens"] == 4
    missing = requests.get(f"{mock.url}{ASYNC}/req_nope", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
    bad = requests.post(f"{mock.url}{ASYNC}", json=chat_body(messages=[]), timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"


def test_many_async_jobs_none_lost_with_failures(mock_server, tmp_path):
    truth = tmp_path / "truth.jsonl"
    mock = mock_server(config=fast_config(jobs={"workers": 4}, faults={"job_failure": 0.3}), truth_log=truth)
    ids = [
        requests.post(
            f"{mock.url}{ASYNC}", json=chat_body(), timeout=5, headers={"X-Request-Id": f"t{i}"}
        ).json()["request_id"]
        for i in range(40)
    ]
    final = [poll_job(mock.url, job_id) for job_id in ids]
    failed = [job for job in final if job["status"] == "failed"]
    assert len(final) == 40 and 3 <= len(failed) <= 25
    assert all(job["error"]["type"] == "server_error" and "result" not in job for job in failed)
    assert all(
        job["result"]["usage"]["completion_tokens"] == 8 for job in final if job["status"] == "completed"
    )
    mock.stop()
    jobs = {row["request_id"]: row for row in read_truth(truth) if row["path"] == "job:async"}
    assert set(jobs) == set(ids)
    assert sorted(row["status"] for row in jobs.values()) == sorted(job["status"] for job in final)
    assert {row["x_request_id"] for row in jobs.values()} == {f"t{i}" for i in range(40)}


def test_async_queue_limit(mock_server):
    mock = mock_server(
        config=fast_config(
            models={"slow": {"ttft": 2, "tokens_per_s": 0, "output_tokens": 1}},
            jobs={"workers": 1, "queue": 2},
        )
    )
    codes = [
        requests.post(f"{mock.url}{ASYNC}", json=chat_body("slow"), timeout=5).status_code for _ in range(3)
    ]
    assert codes == [202, 202, 429]


def test_batch_with_per_line_failures_loses_nothing(mock_server, tmp_path):
    truth = tmp_path / "truth.jsonl"
    mock = mock_server(config=fast_config(faults={"job_failure": 0.25}), truth_log=truth)
    lines = [batch_line(i) for i in range(30)] + [batch_line(30, model="nope"), batch_line(31, messages=[])]
    batch = run_batch(mock.url, lines)
    assert batch["status"] == "completed"
    counts = batch["request_counts"]
    assert counts["total"] == 32 and counts["completed"] + counts["failed"] == 32 and counts["failed"] >= 2
    output, errors = file_rows(mock.url, batch["output_file_id"]), file_rows(mock.url, batch["error_file_id"])
    assert len(output) == counts["completed"] and len(errors) == counts["failed"]
    assert sorted(r["custom_id"] for r in output + errors) == sorted(f"c{i}" for i in range(32))
    by_id = {r["custom_id"]: r["response"] for r in errors}
    assert by_id["c30"]["status_code"] == 404 and by_id["c30"]["body"]["error"]["code"] == "model_not_found"
    assert by_id["c31"]["status_code"] == 400 and by_id["c31"]["body"]["error"]["param"] == "messages"
    mock.stop()
    row = next(r for r in read_truth(truth) if r["path"] == "job:batch")
    assert row["request_id"] == batch["id"] and row["status"] == "completed"
    assert row["completion_tokens"] == 3 * counts["completed"]


def test_batch_validation_failure(fast_mock):
    batch = run_batch(
        fast_mock.url, [batch_line(0), "not json", {**batch_line(2), "url": "/v1/embeddings"}, batch_line(0)]
    )
    assert batch["status"] == "failed" and batch["failed_at"] is not None
    problems = {(e["line"], e["message"].split(" ")[0]) for e in batch["errors"]["data"]}
    assert problems == {(2, "The"), (3, "url"), (4, "custom_id")}
    assert batch["output_file_id"] is None


def test_batch_cancel(mock_server):
    mock = mock_server(
        config=fast_config(
            models={"slow": {"ttft": 0.2, "tokens_per_s": 0, "output_tokens": 1}}, jobs={"workers": 1}
        )
    )
    file_id = upload(mock.url, [batch_line(i, model="slow") for i in range(10)]).json()["id"]
    batch = requests.post(
        f"{mock.url}/v1/batches",
        timeout=5,
        json={"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"},
    ).json()
    time.sleep(0.3)
    cancelling = requests.post(f"{mock.url}/v1/batches/{batch['id']}/cancel", timeout=5).json()
    assert cancelling["status"] == "cancelling"
    final = wait_for(
        lambda: requests.get(f"{mock.url}/v1/batches/{batch['id']}", timeout=5).json(),
        lambda b: b["status"] == "cancelled",
    )
    counts = final["request_counts"]
    assert (
        counts["total"] == 10
        and 1 <= counts["completed"] <= 3
        and counts["completed"] + counts["failed"] == 10
    )
    again = requests.post(f"{mock.url}/v1/batches/{batch['id']}/cancel", timeout=5)
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"endpoint": "/v1/chat/completions", "completion_window": "24h"}, 400, "input_file_id"),
        (
            {"input_file_id": "file-missing", "endpoint": "/v1/chat/completions", "completion_window": "24h"},
            404,
            "input_file_id",
        ),
        (
            {"input_file_id": "UPLOADED", "endpoint": "/v1/embeddings", "completion_window": "24h"},
            400,
            "endpoint",
        ),
        (
            {"input_file_id": "UPLOADED", "endpoint": "/v1/chat/completions", "completion_window": "1h"},
            400,
            "completion_window",
        ),
    ],
)
def test_batch_create_errors(fast_mock, body, status, param):
    uploaded = upload(fast_mock.url, [batch_line(0)]).json()["id"]
    if body.get("input_file_id") == "UPLOADED":
        body = {**body, "input_file_id": uploaded}
    r = requests.post(f"{fast_mock.url}/v1/batches", json=body, timeout=5)
    assert r.status_code == status and r.json()["error"]["param"] == param


def test_file_upload_errors_and_lookup(fast_mock):
    wrong = upload(fast_mock.url, [batch_line(0)], purpose="fine-tune")
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "purpose"
    no_file = requests.post(
        f"{fast_mock.url}/v1/files", data={"purpose": "batch"}, files={"x": ("a", b"b")}, timeout=5
    )
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    not_multipart = requests.post(f"{fast_mock.url}/v1/files", json={"purpose": "batch"}, timeout=5)
    assert not_multipart.status_code == 400
    missing = requests.get(f"{fast_mock.url}/v1/files/file-nope/content", timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "file_not_found"
    uploaded = upload(fast_mock.url, [batch_line(0)]).json()
    meta = requests.get(f"{fast_mock.url}/v1/files/{uploaded['id']}", timeout=5).json()
    assert meta == uploaded and meta["object"] == "file"
    listed = requests.get(f"{fast_mock.url}/v1/batches", timeout=5).json()
    assert listed["object"] == "list"
