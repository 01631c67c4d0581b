"""OpenAI-compatible requests on a FastHttpUser's client, with validation and LLM timing.

Every function here sends real HTTP requests through Locust's client with ``catch_response=True`` and
settles each one exactly once: success, or failure with a reason that names what went wrong
(status, missing field, malformed chunk, timeout...). LLM figures of successful chat responses go to
:class:`loadgate.llm_stats.LlmStats`; they never add rows to Locust's HTTP stats.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import gevent
from gevent import GreenletExit
from geventhttpclient.response import HTTPConnectionClosed
from locust.exception import CatchResponseError

from loadgate.llm_stats import NAME_ASYNC, NAME_BATCH, NAME_NON_STREAM, NAME_STREAM, LlmStats
from loadgate.metrics import RequestTiming
from loadgate.settings import Settings, api_key
from loadgate.sse import SSEParser

logger = logging.getLogger("loadgate")

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
_RESPONSE_MODULE = os.path.join("geventhttpclient", "response.py")


class ResponseInvalid(Exception):
    """A response that arrived but breaks the protocol; str() is the failure reason."""


@contextmanager
def settled_request(client: Any, method: str, url: str, name: str, **kwargs: Any) -> Iterator[Any]:
    """``client.request(..., stream=True, catch_response=True)`` as a with-block that also settles a
    request cut off by the run stopping. Locust kills users mid-request when the run ends (no
    --stop-timeout, or Stop in the web UI) and never reports that request although the server got it;
    here it counts once, as a failure with the reason CANCELLED. One killed while still connecting
    never reached the server and is not counted."""
    t_send = time.perf_counter()
    try:
        resp = client.request(method, url, name=name, stream=True, catch_response=True, **kwargs)
    except GreenletExit as stop:
        if _reached_the_wire(stop):  # else it never left this process: nothing to count
            client.request_event.fire(
                request_type=method,
                name=name,
                response_time=(time.perf_counter() - t_send) * 1000,
                response_length=0,
                response=None,
                context={},
                exception=CatchResponseError(CANCELLED),
                url=url,
            )
        raise
    with resp:
        try:
            yield resp
        except GreenletExit:  # killed while reading the body: no result was marked yet (that needs no IO)
            resp.failure(CANCELLED)
            raise


def _reached_the_wire(stop: BaseException) -> bool:
    """Whether a request killed before its response headers had reached the server: true when the kill
    landed while geventhttpclient was waiting for the response, false while it was still connecting."""
    tb = stop.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(_RESPONSE_MODULE):
            return True
        tb = tb.tb_next
    return False


# -- headers and failure reasons -------------------------------------------------------------------


def request_headers(request_id: str | None = None) -> dict[str, str]:
    """Authorization from OPENAI_API_KEY (none when unset) and an X-Request-Id to match truth logs."""
    headers = {"X-Request-Id": request_id or uuid.uuid4().hex}
    key = api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


_absent_logged: set[str] = set()


def _note_absent(method: str, name: str) -> None:
    """Log once per process that the target lacks an endpoint (every request still counts as failed)."""
    key = f"{method} {name}"
    if key not in _absent_logged:
        _absent_logged.add(key)
        logger.warning(
            "loadgate: %s answered 404: the target does not offer this endpoint; its requests are reported as "
            "failures '%s' (set the user class weight to 0 or exclude its tag to skip them)",
            key,
            ENDPOINT_ABSENT,
        )


RESOURCE_NOT_FOUND = frozenset({"model_not_found"})  # 404 codes about a resource, not a missing route


def status_failure(
    resp: Any, method: str, name: str, timeout_s: float, endpoint_route: bool = True
) -> str | None:
    """The failure reason for a response that is not a 2xx, or None when it is one. An error body is
    read (so the connection stays reusable) for its OpenAI error code. endpoint_route=False for URLs
    naming a resource (a job, a file), whose 404 means the resource, not the endpoint, is missing."""
    status = resp.status_code or 0
    if 200 <= status < 300:
        return None
    if status == 0:
        return transport_failure(getattr(resp, "error", None), timeout_s, "waiting for the response headers")
    code = _error_code(_drain(resp, timeout_s))
    if status == 404 and endpoint_route and code not in RESOURCE_NOT_FOUND:
        _note_absent(method, name)
        return ENDPOINT_ABSENT
    if status == 429:
        return "HTTP 429 rate limited"
    if status >= 500:
        return f"HTTP {status} server error"
    return f"HTTP {status} {code or 'client error'}"


def transport_failure(error: BaseException | None, timeout_s: float, during: str) -> str:
    error = getattr(error, "original", None) or error  # geventhttpclient's RetriesExceeded wraps the cause
    if isinstance(error, TimeoutError | socket.timeout | gevent.Timeout):
        return f"timeout: no data for {timeout_s:g}s {during}"
    if error is None:
        return f"connection error {during}"
    return f"connection error: {type(error).__name__} {during}"


def _error_code(body: bytes) -> str | None:
    """The OpenAI error code (or type) of an error body, to tell e.g. 401s and 400s apart."""
    try:
        err = json.loads(body or b"{}").get("error") or {}
        return str(err.get("code") or err.get("type") or "") or None
    except (ValueError, AttributeError):
        return None


def _drain(resp: Any, timeout_s: float) -> bytes:
    try:
        return read_all(resp, timeout_s)
    except ResponseInvalid:
        return b""  # the connection was discarded; the status alone names the failure


# -- reading bodies incrementally ------------------------------------------------------------------


def iter_body(resp: Any) -> Iterator[bytes]:
    """Yield body bytes as they arrive (geventhttpclient's read(n) would wait for n bytes, batching
    SSE events and distorting their timing). Raises HTTPConnectionClosed if the peer closes early."""
    raw = resp._response
    if raw is None:
        return
    while True:
        if raw._body_buffer:
            chunk = bytes(raw._body_buffer)
            del raw._body_buffer[:]
            yield chunk
            continue
        if raw.message_complete or raw._sock is None:
            return
        data = raw._sock.recv(raw.block_size)
        if not data:
            raise HTTPConnectionClosed("connection closed mid-body")
        raw.feed(data)


def discard_connection(resp: Any) -> None:
    """Close a connection whose body was not read to the end, so the pool never reuses it."""
    raw = getattr(resp, "_response", None)
    pool, sock = getattr(raw, "_pool", None), getattr(raw, "_sock", None)
    if raw is not None and sock is not None:
        if pool is not None:
            pool.release_socket(sock)
        else:
            sock.close()
        raw._sock, raw._pool = None, None


def read_all(resp: Any, timeout_s: float) -> bytes:
    cached = getattr(resp, "_cached_content", None)
    if isinstance(cached, bytes):  # geventhttpclient already read an error status's body
        return cached
    try:
        return b"".join(iter_body(resp))
    except (HTTPConnectionClosed, OSError) as e:
        discard_connection(resp)
        raise ResponseInvalid(transport_failure(e, timeout_s, "reading the body")) from None


def parse_json_body(body: bytes, what: str = "response body") -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise ResponseInvalid(f"malformed JSON in {what}") from None


def finish_meta(resp: Any, t_send: float, t_end: float, length: int) -> None:
    """Make the HTTP row hold the whole exchange (headers + body), not just time to headers."""
    resp.request_meta["response_time"] = (t_end - t_send) * 1000
    resp.request_meta["response_length"] = length


# -- chat completions --------------------------------------------------------------------------------


def content_of(delta: dict[str, Any]) -> str:
    """Text a chunk's delta carries: content, reasoning or tool-call arguments ('' for role-only)."""
    text = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning") or ""
    if not text and delta.get("tool_calls"):
        text = "".join(str((c.get("function") or {}).get("arguments") or "") for c in delta["tool_calls"])
    return text if isinstance(text, str) else str(text)


@dataclass
class ChatResult:
    ok: bool
    text: str = ""
    timing: RequestTiming | None = None


def chat_completion(
    client: Any, llm: LlmStats, body: dict[str, Any], timeout_s: float, request_id: str | None = None
) -> ChatResult:
    """POST /v1/chat/completions (streamed when body["stream"]) and record its LLM figures.
    request_id is sent as X-Request-Id (a random one when None) to match server-side logs."""
    stream = bool(body.get("stream"))
    if stream:
        body = {**body, "stream_options": {"include_usage": True}}
    timing = RequestTiming(t_send=time.perf_counter())
    with settled_request(
        client, "POST", CHAT_PATH, CHAT_PATH, json=body, headers=request_headers(request_id)
    ) as resp:
        timing.first_byte(time.perf_counter())
        reason = status_failure(resp, "POST", CHAT_PATH, timeout_s)
        if reason is None:
            try:
                text, length = (_read_stream if stream else _read_completion)(resp, timing, timeout_s)
            except ResponseInvalid as e:
                reason = str(e)
                discard_connection(resp)
                finish_meta(resp, timing.t_send, time.perf_counter(), 0)
        else:
            discard_connection(resp)
        if reason is not None:
            resp.failure(reason)
            return ChatResult(False)
        finish_meta(resp, timing.t_send, timing.t_end or time.perf_counter(), length)
        resp.success()
    llm.record(NAME_STREAM if stream else NAME_NON_STREAM, timing)
    return ChatResult(True, text, timing)


def _read_completion(resp: Any, timing: RequestTiming, timeout_s: float) -> tuple[str, int]:
    body = read_all(resp, timeout_s)
    timing.t_end = time.perf_counter()
    data = parse_json_body(body)
    text = completion_text(data)
    timing.usage_tokens = usage_tokens(data)
    if timing.usage_tokens is None:
        timing.counted_tokens = len(text.split())  # no usage: words are the closest count a client can make
    return text, len(body)


def completion_text(data: Any) -> str:
    """The assistant text of a chat.completion object; ResponseInvalid when it has no choices."""
    if not isinstance(data, dict):
        raise ResponseInvalid("response body is not a JSON object")
    if "error" in data and "choices" not in data:
        raise ResponseInvalid(f"error in 200 response: {_describe_error(data['error'])}")
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


def _describe_error(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("code") or error.get("type") or error.get("message") or "unknown")[:80]
    return str(error)[:80]


def _read_stream(resp: Any, timing: RequestTiming, timeout_s: float) -> tuple[str, int]:
    parser, parts, length, done = SSEParser(), [], 0, False
    try:
        for chunk in iter_body(resp):
            now = time.perf_counter()
            length += len(chunk)
            for event in parser.feed(chunk):
                if event.data.strip() == "[DONE]":
                    done = True
                    continue
                text = _stream_event(event.data, timing)
                if text:
                    timing.content_event(now)
                    parts.append(text)
    except (HTTPConnectionClosed, OSError) as e:
        raise ResponseInvalid(
            transport_failure(e, timeout_s, f"mid-stream after {len(timing.t_tokens)} tokens")
        ) from None
    timing.t_end = time.perf_counter()
    if not done:
        raise ResponseInvalid(f"stream ended without [DONE] after {len(timing.t_tokens)} tokens")
    return "".join(parts), length


def _stream_event(data: str, timing: RequestTiming) -> str:
    try:
        chunk = json.loads(data)
    except ValueError:
        raise ResponseInvalid("malformed JSON in stream chunk") from None
    if not isinstance(chunk, dict):
        raise ResponseInvalid("stream chunk is not a JSON object")
    if "error" in chunk:
        raise ResponseInvalid(f"error event in stream: {_describe_error(chunk['error'])}")
    tokens = usage_tokens(chunk)
    if tokens is not None:
        timing.usage_tokens = tokens
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
    return content_of(delta) if isinstance(delta, dict) else ""


# -- JSON requests (models, health, jobs) ------------------------------------------------------------


def http_call(
    client: Any,
    method: str,
    url: str,
    name: str,
    timeout_s: float,
    handle: Callable[[bytes], Any],
    *,
    endpoint_route: bool = True,
    **kwargs: Any,
) -> tuple[Any | None, str | None]:
    """One request settled exactly once. ``handle(body)`` turns a 2xx body into the result or raises
    ResponseInvalid to fail it. Returns (result, None) on success, (None, reason) on failure."""
    t_send = time.perf_counter()
    headers = {**request_headers(), **kwargs.pop("headers", {})}
    with settled_request(client, method, url, name, headers=headers, **kwargs) as resp:
        reason = status_failure(resp, method, name, timeout_s, endpoint_route)
        result = None
        if reason is None:
            try:
                body = read_all(resp, timeout_s)
                finish_meta(resp, t_send, time.perf_counter(), len(body))
                result = handle(body)
            except ResponseInvalid as e:
                reason = str(e)
        else:
            discard_connection(resp)
        if reason is not None:
            resp.failure(reason)
            return None, reason
        resp.success()
        return result, None


def json_request(
    client: Any,
    method: str,
    url: str,
    name: str,
    timeout_s: float,
    *,
    validate: Callable[[Any], Any] | None = None,
    endpoint_route: bool = True,
    **kwargs: Any,
) -> tuple[Any | None, str | None]:
    """:func:`http_call` for a JSON body; ``validate(data)`` may raise ResponseInvalid."""

    def handle(body: bytes) -> Any:
        data = parse_json_body(body) if body.strip() else {}
        if validate is not None:
            validate(data)
        return data

    return http_call(client, method, url, name, timeout_s, handle, endpoint_route=endpoint_route, **kwargs)


def expect_object_list(data: Any) -> None:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ResponseInvalid("model list without a 'data' array")


def expect_model(data: Any) -> None:
    if not isinstance(data, dict) or not data.get("id"):
        raise ResponseInvalid("model object without 'id'")


def list_models(client: Any, timeout_s: float) -> list[str] | None:
    data, _ = json_request(client, "GET", MODELS_PATH, MODELS_PATH, timeout_s, validate=expect_object_list)
    if data is None:
        return None
    return [str(m["id"]) for m in data["data"] if isinstance(m, dict) and m.get("id")]


# -- async jobs and the Batch API ---------------------------------------------------------------------


@dataclass
class Poller:
    """Backoff schedule for job polling, bounded by the job timeout."""

    settings: Settings
    started: float

    def waits(self) -> Iterator[float]:
        wait = self.settings.poll_interval_s
        while True:
            left = self.started + self.settings.job_timeout_s - time.perf_counter()
            if left <= 0:
                return
            yield min(wait, left)
            wait = min(wait * self.settings.poll_backoff, self.settings.poll_max_interval_s)


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


def poll_job(
    client: Any,
    llm: LlmStats,
    settings: Settings,
    url: str,
    name: str,
    started: float,
    kind: str,
    done_check: Callable[[dict[str, Any]], None] | None = None,
) -> Any | None:
    """Poll with backoff until a terminal state. The poll that sees the job failed, or still pending
    at --job-timeout (a lost job), is the one marked failed: nothing extra is counted. A job still being
    polled when the run stops the user (past --stop-timeout) is counted lost too, so none vanishes."""
    try:
        return _poll_until_terminal(client, llm, settings, url, name, started, kind, done_check)
    except GreenletExit:
        llm.counters.jobs_lost += 1
        llm.counters.jobs_lost_at_stop += 1
        logger.warning(
            "loadgate: %s job %s was still pending when the run stopped; counted as lost "
            "(raise --stop-timeout to let jobs finish)",
            kind,
            url.rsplit("/", 1)[-1],
        )
        raise


def _poll_until_terminal(
    client: Any,
    llm: LlmStats,
    settings: Settings,
    url: str,
    name: str,
    started: float,
    kind: str,
    done_check: Callable[[dict[str, Any]], None] | None,
) -> Any | None:
    deadline = started + settings.job_timeout_s
    wait = settings.poll_interval_s
    while True:
        gevent.sleep(max(0.0, min(wait, deadline - time.perf_counter())))
        final = time.perf_counter() >= deadline
        seen: dict[str, str] = {}

        def check(data: Any, final: bool = final, seen: dict[str, str] = seen) -> None:
            status = seen["status"] = job_status(data)
            if status in JOB_FAILED:
                detail = _describe_error(data.get("error") or data.get("errors") or status)
                raise ResponseInvalid(f"{kind} job {status}: {detail}")
            if status in JOB_DONE and done_check is not None:
                done_check(data)
            elif final and status not in JOB_DONE:
                raise ResponseInvalid(
                    f"{kind} job lost: still '{status}' after --job-timeout {settings.job_timeout_s:g}s"
                )

        data, reason = json_request(
            client, "GET", url, name, settings.request_timeout_s, validate=check, endpoint_route=False
        )
        status = seen.get("status", "")
        if data is not None and status in JOB_DONE:
            return data
        if status in JOB_FAILED or (status in JOB_DONE and reason):
            llm.counters.jobs_failed += 1
            return None
        if final or (reason or "").startswith("HTTP 404"):  # past the deadline, or the job is gone
            llm.counters.jobs_lost += 1
            return None
        # pending, or a transient poll failure (already counted once): keep polling, spaced by the backoff
        wait = min(wait * settings.poll_backoff, settings.poll_max_interval_s)


def async_chat(client: Any, llm: LlmStats, settings: Settings, body: dict[str, Any]) -> bool:
    """Submit to the proxy's async endpoint, poll with backoff, check the result. The submit is its
    own HTTP row; time to completion is the E2E row of /v1/chat/completions/async."""
    started = time.perf_counter()
    submitted, _ = json_request(
        client,
        "POST",
        ASYNC_PATH,
        ASYNC_PATH,
        settings.request_timeout_s,
        json={**body, "stream": False},
        validate=job_id,
    )
    if submitted is None:
        return False

    def check_result(data: dict[str, Any]) -> None:
        completion_text(_job_result(data))

    url = f"{ASYNC_PATH}/{job_id(submitted)}"
    data = poll_job(client, llm, settings, url, ASYNC_POLL_NAME, started, "async", check_result)
    if data is None:
        return False
    _record_job(llm, NAME_ASYNC, started, usage_tokens(_job_result(data)) or 0)
    return True


def _job_result(data: dict[str, Any]) -> Any:
    return data.get("result") or data.get("response") or data.get("completion") or {}


def _record_job(llm: LlmStats, name: str, started: float, tokens: int) -> None:
    llm.counters.jobs_completed += 1
    llm.counters.output_tokens += tokens
    llm.log("E2E", name, (time.perf_counter() - started) * 1000)


def _multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
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


def batch_job(client: Any, llm: LlmStats, settings: Settings, bodies: list[dict[str, Any]]) -> bool:
    """OpenAI Batch API: upload JSONL, create the batch, poll, download and check every output line.
    Time from upload to a checked output is the E2E row of /v1/batches."""
    timeout_s = settings.request_timeout_s
    started = time.perf_counter()
    custom_ids = [f"req-{i}-{uuid.uuid4().hex[:8]}" for i in range(len(bodies))]
    lines = [
        json.dumps({"custom_id": cid, "method": "POST", "url": CHAT_PATH, "body": {**b, "stream": False}})
        for cid, b in zip(custom_ids, bodies, strict=True)
    ]
    payload, content_type = _multipart(
        {"purpose": "batch"}, "loadgate-batch.jsonl", ("\n".join(lines) + "\n").encode()
    )
    uploaded, _ = json_request(
        client,
        "POST",
        FILES_PATH,
        FILES_PATH,
        timeout_s,
        data=payload,
        headers={"Content-Type": content_type},
        validate=job_id,
    )
    if uploaded is None:
        return False
    created, _ = json_request(
        client,
        "POST",
        BATCHES_PATH,
        BATCHES_PATH,
        timeout_s,
        validate=job_id,
        json={"input_file_id": job_id(uploaded), "endpoint": CHAT_PATH, "completion_window": "24h"},
    )
    if created is None:
        return False

    def has_output(data: dict[str, Any]) -> None:
        if not data.get("output_file_id"):
            counts = data.get("request_counts") or {}
            failed = (
                f" ({counts.get('failed')} of {counts.get('total')} lines failed)"
                if counts.get("failed")
                else ""
            )
            raise ResponseInvalid(f"batch completed without output_file_id{failed}")

    url = f"{BATCHES_PATH}/{job_id(created)}"
    batch = poll_job(client, llm, settings, url, BATCH_POLL_NAME, started, "batch", has_output)
    if batch is None:
        return False
    tokens = _download_output(client, timeout_s, str(batch["output_file_id"]), custom_ids)
    if tokens is None:
        llm.counters.jobs_failed += 1
        return False
    _record_job(llm, NAME_BATCH, started, sum(tokens))
    return True


def _download_output(client: Any, timeout_s: float, file_id: str, custom_ids: list[str]) -> list[int] | None:
    """GET the output file; the download fails when a line is missing or is not a 200 with choices."""
    url = f"{FILES_PATH}/{file_id}/content"
    tokens, _ = http_call(
        client,
        "GET",
        url,
        FILE_CONTENT_NAME,
        timeout_s,
        lambda body: check_batch_output(body, custom_ids),
        endpoint_route=False,
    )
    return tokens


def check_batch_output(body: bytes, custom_ids: list[str]) -> list[int]:
    """Every custom_id must have a 200 line with choices; returns completion tokens per line."""
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
    tokens = []
    for cid in custom_ids:
        response = seen[cid].get("response") or {}
        if seen[cid].get("error") or response.get("status_code") != 200:
            raise ResponseInvalid(f"batch output line failed (status {response.get('status_code')})")
        body = response.get("body") or {}
        completion_text(body)
        tokens.append(usage_tokens(body) or 0)
    return tokens
