"""Routes, request building, answer validation and failure reasons of OpenAI-compatible APIs."""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

from loadgate.options import api_key

try:  # measured (docs/benchmarks.md): parsing every stream chunk is the client's largest own cost per token
    import orjson

    loads: Callable[[bytes | str], Any] = orjson.loads
    dumps: Callable[[Any], bytes] = orjson.dumps
except ImportError:  # pragma: no cover - optional speed-up, same results with the stdlib
    loads = json.loads

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()


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


def request_headers(key: str | None, request_id: str | None = None) -> dict[str, str]:
    """Authorization from ``key`` (OPENAI_API_KEY, read once per user; none when unset) and an
    X-Request-Id to match truth logs."""
    # 128 random bits as uuid4().hex has, without its os.urandom call per request (the random module
    # reseeds in a forked child, so --processes children never repeat each other's ids)
    headers = {"X-Request-Id": request_id or f"{random.getrandbits(128):032x}"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


# -- errors -------------------------------------------------------------------------------------------

MESSAGE_CHARS = 200  # of a server's error message in a failure reason
DISTINCT_MESSAGES = 8  # per status and code: beyond this, digits are masked so varying messages group


def error_code(body: bytes) -> str | None:
    """The OpenAI error code (or type) of an error body, to tell e.g. 401s and 400s apart."""
    return server_error(body)[0]


def _informative(value: Any) -> str | None:
    """An error code or type worth showing: not empty, not "None", not a bare number (LiteLLM's "400")."""
    text = str(value).strip() if value is not None else ""
    return text if text and text.lower() not in ("none", "null") and not text.isdigit() else None


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text[:MESSAGE_CHARS] + ("..." if len(text) > MESSAGE_CHARS else "")


def server_error(body: bytes | str | None) -> tuple[str | None, str]:
    """(code or type, message) of an error body: OpenAI's {"error": {...}}, {"error": "text"}, FastAPI's
    {"detail": ...}, {"message": ...}, or plain text. The message is one line of at most MESSAGE_CHARS
    characters with secrets scrubbed; either part may be empty."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body or ""
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    label, message = None, ""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            label = _informative(err.get("code")) or _informative(err.get("type"))
            message = str(err.get("message") or "")
        elif err:
            message = str(err)
        detail = data.get("detail")
        if not message and isinstance(detail, str):
            message = detail
        elif not message and isinstance(detail, list) and detail and isinstance(detail[0], dict):
            first = detail[0]
            where = ".".join(str(x) for x in first.get("loc") or [])
            message = f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))
        if not message and isinstance(data.get("message"), str):
            message = data["message"]
        if label is None:
            label = _informative(data.get("code")) or _informative(data.get("type"))
    elif data is None and text.strip() and not text.lstrip().startswith("<"):
        message = text
    elif data is None and text.strip():  # an HTML error page: its title is the message
        match = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        message = match.group(1) if match else ""
    return label, _one_line(scrub(message))


_seen_messages: dict[tuple[int, str | None], set[str]] = {}


def status_reason(status: int, body: bytes) -> str:
    """The failure reason of a non-2xx answer that is not a missing route: the status, the server's
    error code (or type) and message, e.g. ``HTTP 500 server_error: files_settings is not set``.

    Locust keeps one failure row per distinct reason, so a message that varies per request (counts,
    retry times) would flood the table: after DISTINCT_MESSAGES different messages for one status and
    code, digits in further ones are masked (``#``)."""
    label, message = server_error(body)
    head = f"HTTP {status} {label}" if label else f"HTTP {status}"
    if not message:
        if label:
            return head
        return (
            f"{head} rate limited" if status == 429 else (f"{head} server error" if status >= 500 else head)
        )
    seen = _seen_messages.setdefault((status, label), set())
    if message not in seen and len(seen) >= DISTINCT_MESSAGES:
        message = re.sub(r"\d+(\.\d+)?", "#", message)
    else:
        seen.add(message)
    return f"{head}: {message}"


def describe_error(error: Any) -> str:
    """A job's or an event's error object as "code: message" (one line, scrubbed)."""
    if isinstance(error, dict):
        label = _informative(error.get("code")) or _informative(error.get("type"))
        message = _one_line(scrub(str(error.get("message") or "")))
        if label and message:
            return f"{label}: {message}"
        return label or message or "unknown"
    if isinstance(error, list) and error:
        return describe_error(error[0] if len(error) == 1 else {"message": str(error)})
    if isinstance(error, dict | list):
        return "unknown"
    return _one_line(scrub(str(error)))


AUTH_ERRORS = frozenset(
    {
        "invalid_api_key",
        "authentication_error",
        "auth_error",
        "unauthorized",
        "permission_denied",
        "permission_error",
        "invalid_authentication",
        "insufficient_permissions",
        "forbidden",
    }
)


def is_auth_failure(status: int, body: bytes) -> bool:
    """401/403, or an error body whose code/type says the key was refused (invalid_api_key, ...)."""
    if status in (401, 403):
        return True
    if 200 <= status < 300:
        return False
    try:
        err = json.loads(body or b"{}").get("error") or {}
    except (ValueError, AttributeError):
        return False
    if not isinstance(err, dict):
        return False
    labels = {str(err.get(k) or "").lower() for k in ("code", "type")}
    return bool(labels & AUTH_ERRORS)


def is_route_absent(status: int, body: bytes, resource_in_path: bool = False) -> bool:
    """Whether a 404/405 says the route does not exist (rather than the resource it names).

    405: the path exists for other methods only. 404 on a route without a resource (POST /v1/files): absent
    unless its code names a missing resource (model_not_found: the body named an unknown model). 404 on a
    URL naming a resource (a job id): absent only when the answer is a framework's generic "Not Found"
    (plain text, HTML, {"detail": "Not Found"}, OpenAI's "Invalid URL"), not an error about the resource."""
    if status == 405:
        return True
    if status != 404:
        return False
    label, message = server_error(body)
    if not resource_in_path:
        return label not in RESOURCE_NOT_FOUND
    generic = message.lower().rstrip(".") in ("", "not found", "404: not found", "404 not found")
    return generic or message.startswith("Invalid URL")


_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S+|(?<=://)[^/\s:@]+:[^/\s@]+(?=@))")


def scrub(text: str) -> str:
    """Remove API-key-like strings (and the current key), bearer tokens and URL passwords from a text."""
    key = api_key()
    if key:
        text = text.replace(key, "***")
    return _SECRET.sub("***", text)


# -- chat completions ---------------------------------------------------------------------------------


def parse_json_body(body: bytes, what: str = "response body") -> Any:
    try:
        return loads(body)
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


def prompt_tokens(data: dict[str, Any]) -> int | None:
    """usage.prompt_tokens of an answer or a stream's usage chunk, when the server counted them."""
    usage = data.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        return usage["prompt_tokens"]
    return None


def response_id(data: Any) -> str | None:
    """The server's id of an answer (chat.completion / chunk "id"), for the request log."""
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and value else None


def completion(body: bytes) -> tuple[str, int | None, int | None, str | None]:
    """A chat.completion body: (its text, usage.completion_tokens, usage.prompt_tokens, id), what
    completion_text, usage_tokens, prompt_tokens and response_id give; ResponseInvalid as they raise it.
    One parse; the usual answer (text, both usage counts, an id) is read at once."""
    data = parse_json_body(body)
    try:
        text, usage, answer_id = data["choices"][0]["message"]["content"], data["usage"], data["id"]
        out, prompt = usage["completion_tokens"], usage["prompt_tokens"]
        if type(text) is type(answer_id) is str and text and answer_id and type(out) is type(prompt) is int:
            return text, out, prompt, answer_id
    except (KeyError, IndexError, TypeError):
        pass
    return completion_text(data), usage_tokens(data), prompt_tokens(data), response_id(data)


def stream_chunk(data: bytes | str) -> tuple[str, int | None]:
    """One SSE data payload of a streamed chat: (text it carries, usage tokens if it reports them)."""
    text, chunk = stream_chunk_data(data)
    return text, usage_tokens(chunk) if chunk.get("usage") else None


def stream_chunk_data(data: bytes | str) -> tuple[str, dict[str, Any]]:
    """One SSE data payload of a streamed chat: (text it carries, the chunk object).
    Runs once per token: one parse, then only the keys the metrics need."""
    try:
        chunk = loads(data)
    except ValueError:
        raise ResponseInvalid("malformed JSON in stream chunk") from None
    try:  # the common chunk, looked up at once: plain content
        text = chunk["choices"][0]["delta"]["content"]
        if type(text) is str and text and "error" not in chunk:
            return text, chunk
    except (KeyError, IndexError, TypeError):
        pass
    if not isinstance(chunk, dict):
        raise ResponseInvalid("stream chunk is not a JSON object")
    if "error" in chunk:
        raise ResponseInvalid(f"error event in stream: {describe_error(chunk['error'])}")
    choices = chunk.get("choices")
    if not choices or not isinstance(choices, list):
        return "", chunk
    delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
    if not isinstance(delta, dict):
        return "", chunk
    text = delta.get("content")
    if text and isinstance(text, str):  # the common chunk: plain content
        return text, chunk
    return content_of(delta), chunk


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
            answer_body = response.get("body")
            error = seen[cid].get("error") or (
                answer_body.get("error") if isinstance(answer_body, dict) else None
            )
            detail = f": {describe_error(error)}" if error else ""
            raise ResponseInvalid(f"batch output line failed (status {response.get('status_code')}){detail}")
        answer = response.get("body") or {}
        tokens.append((usage_tokens(answer), completion_text(answer)))
    return tokens
