"""Routes, request building, answer validation and failure reasons of OpenAI-compatible APIs."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from loadgate.options import api_key

CHAT_PATH = "/v1/chat/completions"
ASYNC_PATH = "/v1/chat/completions/async"
ASYNC_POLL_NAME = "/v1/chat/completions/async/{id}"
FILES_PATH = "/v1/files"
BATCHES_PATH = "/v1/batches"
BATCH_POLL_NAME = "/v1/batches/{id}"
FILE_CONTENT_NAME = "/v1/files/{id}/content"
MODELS_PATH = "/v1/models"
MODEL_NAME = "/v1/models/{id}"
HEALTH_PATH = "/health"

JOB_DONE = frozenset({"completed", "succeeded", "success", "done"})
JOB_FAILED = frozenset({"failed", "error", "cancelled", "canceled", "expired"})
ENDPOINT_ABSENT = "endpoint not available (404)"
CANCELLED = "cancelled: the run stopped before the response completed"
RESOURCE_NOT_FOUND = frozenset({"model_not_found"})  # 404 codes about a resource, not a missing route


class ResponseInvalid(Exception):
    """A response that arrived but breaks the protocol; str() is the failure reason."""


def request_headers(request_id: str | None = None) -> dict[str, str]:
    """Authorization from OPENAI_API_KEY (none when unset) and an X-Request-Id to match truth logs."""
    headers = {"X-Request-Id": request_id or uuid.uuid4().hex}
    key = api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


# -- errors -------------------------------------------------------------------------------------------


def error_code(body: bytes) -> str | None:
    """The OpenAI error code (or type) of an error body, to tell e.g. 401s and 400s apart."""
    try:
        err = json.loads(body or b"{}").get("error") or {}
        return str(err.get("code") or err.get("type") or "") or None
    except (ValueError, AttributeError):
        return None


def describe_error(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("code") or error.get("type") or error.get("message") or "unknown")[:80]
    return str(error)[:80]


def status_reason(status: int, body: bytes) -> str:
    """The failure reason of a non-2xx answer that is not a missing route."""
    if status == 429:
        return "HTTP 429 rate limited"
    if status >= 500:
        return f"HTTP {status} server error"
    return f"HTTP {status} {error_code(body) or 'client error'}"


_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S+)")


def scrub(text: str) -> str:
    """Remove API-key-like strings (and the current key) from a server's message."""
    key = api_key()
    if key:
        text = text.replace(key, "***")
    return _SECRET.sub("***", text)


# -- chat completions ---------------------------------------------------------------------------------


def parse_json_body(body: bytes, what: str = "response body") -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ResponseInvalid(f"malformed JSON in {what}") from None


def content_of(delta: dict[str, Any]) -> str:
    """Text a chunk's delta carries: content, reasoning or tool-call arguments ('' for role-only)."""
    text = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""
    if not text and delta.get("tool_calls"):
        text = "".join(str((c.get("function") or {}).get("arguments") or "") for c in delta["tool_calls"])
    return text if isinstance(text, str) else str(text)


def completion_text(data: Any) -> str:
    """The assistant text of a chat.completion object; ResponseInvalid when it has no choices."""
    if not isinstance(data, dict):
        raise ResponseInvalid("response body is not a JSON object")
    if "error" in data and "choices" not in data:
        raise ResponseInvalid(f"error in 200 response: {describe_error(data['error'])}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ResponseInvalid("200 response without choices")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        raise ResponseInvalid("choices[0] without a message")
    return content_of(message)


def usage_tokens(data: dict[str, Any]) -> int | None:
    usage = data.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        return usage["completion_tokens"]
    return None


def stream_chunk(data: str) -> tuple[str, int | None]:
    """One SSE data payload of a streamed chat: (text it carries, usage tokens if it reports them)."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise ResponseInvalid("malformed JSON in stream chunk") from None
    if not isinstance(chunk, dict):
        raise ResponseInvalid("stream chunk is not a JSON object")
    if "error" in chunk:
        raise ResponseInvalid(f"error event in stream: {describe_error(chunk['error'])}")
    tokens = usage_tokens(chunk)
    choices = chunk.get("choices") or []
    if not choices:
        return "", tokens
    delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
    return (content_of(delta) if isinstance(delta, dict) else ""), tokens


# -- models ---------------------------------------------------------------------------------------------


def expect_object_list(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ResponseInvalid("model list without a 'data' array")


def model_ids(data: dict[str, Any]) -> list[str]:
    return [str(m["id"]) for m in data["data"] if isinstance(m, dict) and m.get("id")]


def expect_model(data: Any) -> None:
    if not isinstance(data, dict) or not data.get("id"):
        raise ResponseInvalid("model object without 'id'")


# -- async jobs and the Batch API -------------------------------------------------------------------------


def job_status(data: Any) -> str:
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        raise ResponseInvalid("job object without 'status'")
    return data["status"].lower()


def job_id(data: Any) -> str:
    if isinstance(data, dict):
        for key in ("id", "request_id", "job_id"):
            if data.get(key):
                return str(data[key])
    raise ResponseInvalid("submitted job without an id")


def job_result(data: dict[str, Any]) -> Any:
    return data.get("result") or data.get("response") or data.get("completion") or {}


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = f"loadgate-{uuid.uuid4().hex}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: application/jsonl\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def batch_input(bodies: list[dict[str, Any]]) -> tuple[list[str], bytes]:
    """(custom ids, JSONL input file) of a Batch API job."""
    custom_ids = [f"req-{i}-{uuid.uuid4().hex[:8]}" for i in range(len(bodies))]
    lines = [
        json.dumps({"custom_id": cid, "method": "POST", "url": CHAT_PATH, "body": {**b, "stream": False}})
        for cid, b in zip(custom_ids, bodies, strict=True)
    ]
    return custom_ids, ("\n".join(lines) + "\n").encode()


def expect_batch_output_file(data: dict[str, Any]) -> None:
    if not data.get("output_file_id"):
        counts = data.get("request_counts") or {}
        failed = (
            f" ({counts.get('failed')} of {counts.get('total')} lines failed)" if counts.get("failed") else ""
        )
        raise ResponseInvalid(f"batch completed without output_file_id{failed}")


def check_batch_output(body: bytes, custom_ids: list[str]) -> list[tuple[int | None, str]]:
    """Every custom_id must have a 200 line with choices; returns (usage completion tokens or None, the
    answer's text) per line."""
    seen: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(body.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        row = parse_json_body(line.encode(), f"batch output line {number}")
        if isinstance(row, dict) and row.get("custom_id"):
            seen[str(row["custom_id"])] = row
    missing = [cid for cid in custom_ids if cid not in seen]
    if missing:
        raise ResponseInvalid(f"batch output missing {len(missing)} of {len(custom_ids)} lines")
    tokens: list[tuple[int | None, str]] = []
    for cid in custom_ids:
        response = seen[cid].get("response") or {}
        if seen[cid].get("error") or response.get("status_code") != 200:
            raise ResponseInvalid(f"batch output line failed (status {response.get('status_code')})")
        answer = response.get("body") or {}
        tokens.append((usage_tokens(answer), completion_text(answer)))
    return tokens
