"""The per-user API client: OpenAI-compatible requests on a FastHttpUser's session.

Each request is sent through Locust's session with ``catch_response=True`` and settled exactly once:
success, or failure with a reason that names what went wrong (status, missing field, malformed chunk,
timeout...). The protocol itself (bodies, validation, SSE, timing) is :mod:`loadgate.client`; this module
does the I/O and returns results (:class:`ChatResult`, :class:`JobResult`): the user classes record
them. Nothing here adds LLM rows to Locust's HTTP stats.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent import GreenletExit

from loadgate.client import protocol as p
from loadgate.client import tokens as tokens_mod
from loadgate.client.sse import SSEParser
from loadgate.client.timing import RequestTiming
from loadgate.contract import NAME_ASYNC, NAME_BATCH, NAME_NON_STREAM, NAME_STREAM
from loadgate.harness import locust_compat
from loadgate.harness.locust_compat import HTTPConnectionClosed
from loadgate.options import Settings, api_key

logger = logging.getLogger("loadgate")


@dataclass
class ChatResult:
    ok: bool
    name: str  # LLM row name: the stream or non-stream chat endpoint
    text: str = ""
    timing: RequestTiming | None = None


NOTE_KEY = "loadgate_note"  # the RequestNote's key in a request's Locust context


@dataclass(slots=True)
class RequestNote:
    """What loadgate knows of one request beyond Locust's request event, for the request log: it rides in
    the request's context (NOTE_KEY) and is filled while the answer is read."""

    method: str
    name: str
    x_request_id: str | None = None
    started: float = 0.0  # epoch s (the request log takes Locust's start_time when the event has one)
    model: str | None = None
    stream: bool | None = None
    timing: RequestTiming | None = None
    arrival: tuple[float, float] | None = None  # rate mode: (intended start, epoch s; schedule lag, ms)


@dataclass
class JobResult:
    """The end of one async or batch job. outcome: completed, failed, lost, or rejected (not submitted)."""

    name: str  # NAME_ASYNC or NAME_BATCH
    outcome: str
    started: float
    finished: float = 0.0
    tokens: int = 0
    token_sources: dict[str, int] = field(default_factory=dict)  # answers per token source

    def add_answer(self, usage: int | None, text: str, count: Callable[[str], tuple[int, str]]) -> None:
        """One answer of the job: the server's usage, else its text counted."""
        if usage is not None:
            counted, source = usage, tokens_mod.TOKEN_SERVER
        else:
            counted, source = count(text)
        self.tokens += counted
        self.token_sources[source] = self.token_sources.get(source, 0) + 1

    @property
    def e2e_ms(self) -> float:
        return (self.finished - self.started) * 1000


def transport_failure(error: BaseException | None, timeout_s: float, during: str) -> str:
    error = getattr(error, "original", None) or error  # geventhttpclient's RetriesExceeded wraps the cause
    if isinstance(error, TimeoutError | socket.timeout | gevent.Timeout):
        return f"timeout: no data for {timeout_s:g}s {during}"
    if error is None:
        return f"connection error {during}"
    return f"connection error: {type(error).__name__} {during}"


_absent_logged: set[str] = set()


def _note_absent(method: str, name: str, status: int = 404) -> None:
    """Log once per process that the target lacks an endpoint (every request still counts as failed)."""
    key = f"{method} {name}"
    if key not in _absent_logged:
        _absent_logged.add(key)
        logger.warning(
            "loadgate: %s answered %d: the target does not offer this endpoint; its requests are reported as "
            "failures '%s' (set the user class weight to 0 or exclude its tag to skip them)",
            key,
            status,
            p.ENDPOINT_ABSENT if status == 404 else f"endpoint not available ({status})",
        )


class Settled:
    """The with-block of :meth:`ApiClient.settled` (a class: a generator context manager costs more, on
    every request). A user killed while reading the body, before any result was marked, is counted as
    cancelled here, once: Locust's with-block reports nothing for it (it lets the GreenletExit through)."""

    __slots__ = ("resp", "note", "on_cancelled")

    def __init__(self, resp: Any, note: RequestNote, on_cancelled: Callable[[RequestNote], None]) -> None:
        self.resp, self.note, self.on_cancelled = resp, note, on_cancelled

    def __enter__(self) -> Any:
        return self.resp.__enter__()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> bool | None:
        if kind is not None and issubclass(kind, GreenletExit) and not locust_compat.result_marked(self.resp):
            self.on_cancelled(self.note)
        return bool(self.resp.__exit__(kind, error, tb))


class ApiClient:
    """One user's requests. ``session`` is the FastHttpUser's client; ``settings`` returns the live
    settings (the web UI may change them between tests); ``on_lost_at_stop(name)`` is called for a job
    still being polled when the run stops the user; ``on_cancelled(method, name)`` for a request cut off
    by the run stopping (counted by loadgate, not by Locust); ``stopping()`` says the run is stopping."""

    def __init__(
        self,
        session: Any,
        settings: Callable[[], Settings],
        on_lost_at_stop: Callable[[str], None],
        on_cancelled: Callable[[str, str], None] = lambda method, name: None,
        count_tokens: Callable[[str], tuple[int, str]] | None = None,
        log_cancelled: Callable[[RequestNote], None] | None = None,
        arrival: Callable[[], tuple[float, float] | None] | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.session = session
        self.settings = settings
        self.on_lost_at_stop = on_lost_at_stop
        self.on_cancelled = on_cancelled
        self.count_tokens = count_tokens
        self.log_cancelled = log_cancelled  # the request log's line for a cancelled request
        self.arrival = arrival  # rate mode: the arrival the next request starts (taken once)
        self.stopping = stopping
        self.api_key = api_key()  # read once per user, not per request (an environment lookup)

    @property
    def timeout_s(self) -> float:
        return self.settings().request_timeout_s

    # -- settling -------------------------------------------------------------------------------------

    def _cancelled(self, note: RequestNote) -> None:
        self.on_cancelled(note.method, note.name)
        if self.log_cancelled is not None:
            self.log_cancelled(note)

    def settled(
        self, method: str, url: str, name: str, note: RequestNote | None = None, **kwargs: Any
    ) -> Settled:
        """``session.request(..., stream=True, catch_response=True)`` for a with-block that also settles a
        request cut off by the run stopping. Locust kills users mid-request when the run ends and never
        reports that request although the server got it. Such a request is not a failure of the target:
        it is counted once, as cancelled, in loadgate's own counters (``on_cancelled``) and not in
        Locust's request stats. One killed while still connecting never reached the server and is not
        counted. ``note`` (made here when None) goes in the request's Locust context, for the request log."""
        note = note or RequestNote(method, name)
        note.x_request_id = (kwargs.get("headers") or {}).get("X-Request-Id")
        note.started = time.time()
        note.arrival = self.arrival() if self.arrival is not None else None
        try:
            resp = self.session.request(
                method, url, name=name, stream=True, catch_response=True, context={NOTE_KEY: note}, **kwargs
            )
        except GreenletExit as stop:
            if locust_compat.reached_the_wire(stop):
                self._cancelled(note)
            raise
        return Settled(resp, note, self._cancelled)

    def status_failure(self, resp: Any, method: str, name: str, endpoint_route: bool = True) -> str | None:
        """The failure reason of a response that is not a 2xx, or None when it is one. endpoint_route=False
        for URLs naming a resource (a job, a file), whose 404 means the resource is missing."""
        status = resp.status_code or 0
        if 200 <= status < 300:
            return None
        if status == 0:
            return transport_failure(
                getattr(resp, "error", None), self.timeout_s, "waiting for the response headers"
            )
        body = self._drain(resp)
        if endpoint_route and p.is_route_absent(status, body):
            _note_absent(method, name, status)
            return p.ENDPOINT_ABSENT if status == 404 else f"endpoint not available ({status})"
        return p.status_reason(status, body)

    def _drain(self, resp: Any) -> bytes:
        try:
            return self.read_all(resp)
        except p.ResponseInvalid:
            return b""  # the connection was discarded; the status alone names the failure

    def read_all(self, resp: Any) -> bytes:
        return self.read_all_timed(resp)[0]

    def read_all_timed(self, resp: Any) -> tuple[bytes, float]:
        """The whole body and when its last bytes arrived (the kernel's stamp where there is one)."""
        cached = locust_compat.cached_body(resp)
        if cached is not None:
            return cached, locust_compat.headers_received(resp)
        parts: list[bytes] = []
        stamp = 0.0
        try:
            for chunk, at in locust_compat.iter_timed_body(resp):
                parts.append(chunk)
                stamp = at
        except (HTTPConnectionClosed, OSError) as e:
            locust_compat.discard_connection(resp)
            raise p.ResponseInvalid(transport_failure(e, self.timeout_s, "reading the body")) from None
        return b"".join(parts), stamp or time.perf_counter()

    @staticmethod
    def finish_meta(resp: Any, t_send: float, t_end: float, length: int) -> None:
        """Make the HTTP row hold the whole exchange (headers + body), not just time to headers."""
        resp.request_meta["response_time"] = (t_end - t_send) * 1000
        resp.request_meta["response_length"] = length

    # -- chat completions -----------------------------------------------------------------------------

    def chat(self, body: dict[str, Any], request_id: str | None = None) -> ChatResult:
        """POST /v1/chat/completions (streamed when body["stream"]). request_id is sent as X-Request-Id
        (a random one when None) to match server-side logs."""
        stream = bool(body.get("stream"))
        name = NAME_STREAM if stream else NAME_NON_STREAM
        if stream:
            body = {**body, "stream_options": {"include_usage": True}}
        headers = p.request_headers(self.api_key, request_id)
        headers["Content-Type"] = headers["Accept"] = "application/json"  # what Locust's json= sets
        payload = p.dumps(body)  # orjson where installed: Locust's json= would use the stdlib
        model = body.get("model")
        note = RequestNote(
            "POST", p.CHAT_PATH, model=model if isinstance(model, str) else None, stream=stream
        )
        timing = note.timing = RequestTiming(t_send=time.perf_counter())
        with self.settled("POST", p.CHAT_PATH, p.CHAT_PATH, note, data=payload, headers=headers) as resp:
            timing.first_byte(locust_compat.headers_received(resp))
            reason = self.status_failure(resp, "POST", p.CHAT_PATH)
            length = 0
            text = ""
            if reason is None:
                try:
                    text, length = (self._read_stream if stream else self._read_completion)(resp, timing)
                except p.ResponseInvalid as e:
                    reason = str(e)
                    locust_compat.discard_connection(resp)
                    self.finish_meta(resp, timing.t_send, time.perf_counter(), 0)
            else:
                locust_compat.discard_connection(resp)
            if reason is not None:
                resp.failure(reason)
                return ChatResult(False, name)
            self.finish_meta(resp, timing.t_send, timing.t_end or time.perf_counter(), length)
            resp.success()
        return ChatResult(True, name, text, timing)

    def _read_completion(self, resp: Any, timing: RequestTiming) -> tuple[str, int]:
        body, timing.t_end = self.read_all_timed(resp)
        text, timing.usage_tokens, timing.prompt_tokens, timing.response_id = p.completion(body)
        if timing.usage_tokens is None:
            self.count_text(timing, text)
        return text, len(body)

    def count_text(self, timing: RequestTiming, text: str) -> None:
        """No usage from the server: count the answer's text (a tokenizer, or the documented estimate)."""
        timing.counted_tokens, timing.counted_by = self.tokens_of(text)

    def tokens_of(self, text: str) -> tuple[int, str]:
        counter = self.count_tokens or tokens_mod.ESTIMATOR
        return counter(text)

    def _read_stream(self, resp: Any, timing: RequestTiming) -> tuple[str, int]:
        # Per token: one parse and appending its read's arrival time (the kernel's receive stamp where it
        # has one: a late read keeps when its bytes arrived); the figures are derived at the end.
        parser, parts, length, done = SSEParser(), [], 0, False
        stamp, chunk_of = timing.t_tokens.append, p.stream_chunk_data
        try:
            for chunk, now in locust_compat.iter_timed_body(resp):
                length += len(chunk)
                for data in parser.payloads(chunk):
                    if not data.startswith(b"{") and data.strip() == b"[DONE]":  # (no copy per token)
                        done = True
                        continue
                    text, obj = chunk_of(data)
                    if obj.get("usage"):  # the usage chunk (once a stream): its prompt_tokens too
                        usage = p.usage_tokens(obj)
                        if usage is not None:
                            timing.usage_tokens, timing.prompt_tokens = usage, p.prompt_tokens(obj)
                    if timing.response_id is None:
                        timing.response_id = p.response_id(obj)
                    if text:
                        stamp(now)
                        parts.append(text)
        except (HTTPConnectionClosed, OSError) as e:
            raise p.ResponseInvalid(
                transport_failure(e, self.timeout_s, f"mid-stream after {len(timing.t_tokens)} chunks")
            ) from None
        timing.t_end = time.perf_counter()
        if not done:
            raise p.ResponseInvalid(f"stream ended without [DONE] after {len(timing.t_tokens)} chunks")
        answer = "".join(parts)
        if timing.usage_tokens is None:
            self.count_text(timing, answer)
        return answer, length

    # -- JSON requests (models, health, jobs) ---------------------------------------------------------

    def call(
        self,
        method: str,
        url: str,
        name: str,
        handle: Callable[[bytes], Any],
        *,
        endpoint_route: bool = True,
        **kwargs: Any,
    ) -> tuple[Any | None, str | None]:
        """One request settled exactly once. ``handle(body)`` turns a 2xx body into the result or raises
        ResponseInvalid to fail it. Returns (result, None) on success, (None, reason) on failure."""
        t_send = time.perf_counter()
        headers = {**p.request_headers(self.api_key), **kwargs.pop("headers", {})}
        with self.settled(method, url, name, headers=headers, **kwargs) as resp:
            reason = self.status_failure(resp, method, name, endpoint_route)
            result = None
            if reason is None:
                try:
                    body = self.read_all(resp)
                    self.finish_meta(resp, t_send, time.perf_counter(), len(body))
                    result = handle(body)
                except p.ResponseInvalid as e:
                    reason = str(e)
            else:
                locust_compat.discard_connection(resp)
            if reason is not None:
                resp.failure(reason)
                return None, reason
            resp.success()
            return result, None

    def json(
        self,
        method: str,
        url: str,
        name: str,
        *,
        validate: Callable[[Any], Any] | None = None,
        endpoint_route: bool = True,
        **kwargs: Any,
    ) -> tuple[Any | None, str | None]:
        """:meth:`call` for a JSON body; ``validate(data)`` may raise ResponseInvalid."""

        def handle(body: bytes) -> Any:
            data = p.parse_json_body(body) if body.strip() else {}
            if validate is not None:
                validate(data)
            return data

        return self.call(method, url, name, handle, endpoint_route=endpoint_route, **kwargs)

    def list_models(self) -> list[str] | None:
        data, _ = self.json("GET", p.MODELS_PATH, p.MODELS_PATH, validate=p.expect_object_list)
        return None if data is None else p.model_ids(data)

    def get_model(self, model_id: str) -> bool:
        data, _ = self.json("GET", f"{p.MODELS_PATH}/{model_id}", p.MODEL_NAME, validate=p.expect_model)
        return data is not None

    def health(self) -> bool:
        data, _ = self.json("GET", p.HEALTH_PATH, p.HEALTH_PATH)
        return data is not None

    # -- async jobs and the Batch API -----------------------------------------------------------------

    def poll_job(
        self,
        url: str,
        name: str,
        job: JobResult,
        kind: str,
        done_check: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any | None:
        """Poll with backoff until a terminal state; sets job.outcome when the job fails or is lost. The
        poll that sees the job failed, or still pending at --job-timeout (a lost job), is the one marked
        failed: nothing extra is counted. A job still being polled when the run stops the user (past
        --stop-timeout) is reported through on_lost_at_stop, so none vanishes."""
        try:
            return self._poll_until_terminal(url, name, job, kind, done_check)
        except GreenletExit:
            self.on_lost_at_stop(job.name)
            logger.warning(
                "loadgate: %s job %s was still pending when the run stopped; counted as lost "
                "(raise --stop-timeout to let jobs finish)",
                kind,
                url.rsplit("/", 1)[-1],
            )
            raise

    def _poll_until_terminal(
        self,
        url: str,
        name: str,
        job: JobResult,
        kind: str,
        done_check: Callable[[dict[str, Any]], None] | None,
    ) -> Any | None:
        settings = self.settings()
        deadline = job.started + settings.job_timeout_s
        wait = settings.poll_interval_s
        while True:
            self._wait_to_poll(min(wait, deadline - time.perf_counter()), settings.poll_interval_s)
            final = time.perf_counter() >= deadline
            seen: dict[str, str] = {}

            def check(data: Any, final: bool = final, seen: dict[str, str] = seen) -> None:
                status = seen["status"] = p.job_status(data)
                if status in p.JOB_FAILED:
                    detail = p.describe_error(data.get("error") or data.get("errors") or status)
                    raise p.ResponseInvalid(f"{kind} job {status}: {detail}")
                if status in p.JOB_DONE and done_check is not None:
                    done_check(data)
                elif final and status not in p.JOB_DONE:
                    raise p.ResponseInvalid(
                        f"{kind} job lost: still '{status}' after --job-timeout {settings.job_timeout_s:g}s"
                    )

            data, reason = self.json("GET", url, name, validate=check, endpoint_route=False)
            status = seen.get("status", "")
            if data is not None and status in p.JOB_DONE:
                return data
            if status in p.JOB_FAILED or (status in p.JOB_DONE and reason):
                job.outcome = "failed"
                return None
            if final or (reason or "").startswith("HTTP 404"):  # past the deadline, or the job is gone
                job.outcome = "lost"
                return None
            # pending, or a transient poll failure (already counted once): keep polling, spaced by the backoff
            wait = min(wait * settings.poll_backoff, settings.poll_max_interval_s)
            if self.stopping():
                wait = settings.poll_interval_s

    def _wait_to_poll(self, seconds: float, step: float) -> None:
        """Sleep until the next poll, but poll at once when the run starts stopping meanwhile (seen within
        ``step``, --poll-interval), and every --poll-interval after: a job that ends during the graceful
        stop is seen before --stop-timeout, not lost at the stop behind the backoff's long wait."""
        end = time.perf_counter() + seconds
        stopping = self.stopping()
        while (left := end - time.perf_counter()) > 0:
            gevent.sleep(min(left, step))
            if not stopping and self.stopping():
                return

    def async_chat(self, body: dict[str, Any]) -> JobResult:
        """Submit to the proxy's async endpoint, poll with backoff, check the result. The submit is its
        own HTTP row; time to completion is the E2E row of /v1/chat/completions/async."""
        job = JobResult(NAME_ASYNC, "rejected", time.perf_counter())
        submitted, _ = self.json(
            "POST", p.ASYNC_PATH, p.ASYNC_PATH, json={**body, "stream": False}, validate=p.job_id
        )
        if submitted is None:
            return job

        def check_result(data: dict[str, Any]) -> None:
            p.completion_text(p.job_result(data))

        url = f"{p.ASYNC_PATH}/{p.job_id(submitted)}"
        data = self.poll_job(url, p.ASYNC_POLL_NAME, job, "async", check_result)
        if data is not None:
            job.outcome, job.finished = "completed", time.perf_counter()
            answer = p.job_result(data)
            job.add_answer(p.usage_tokens(answer), p.completion_text(answer), self.tokens_of)
        return job

    def batch_job(self, bodies: list[dict[str, Any]]) -> JobResult:
        """OpenAI Batch API: upload JSONL, create the batch, poll, download and check every output line.
        Time from upload to a checked output is the E2E row of /v1/batches."""
        job = JobResult(NAME_BATCH, "rejected", time.perf_counter())
        custom_ids, content = p.batch_input(bodies)
        payload, content_type = p.multipart({"purpose": "batch"}, "loadgate-batch.jsonl", content)
        uploaded, _ = self.json(
            "POST",
            p.FILES_PATH,
            p.FILES_PATH,
            data=payload,
            headers={"Content-Type": content_type},
            validate=p.job_id,
        )
        if uploaded is None:
            return job
        created, _ = self.json(
            "POST",
            p.BATCHES_PATH,
            p.BATCHES_PATH,
            validate=p.job_id,
            json={"input_file_id": p.job_id(uploaded), "endpoint": p.CHAT_PATH, "completion_window": "24h"},
        )
        if created is None:
            return job
        url = f"{p.BATCHES_PATH}/{p.job_id(created)}"
        batch = self.poll_job(url, p.BATCH_POLL_NAME, job, "batch", p.expect_batch_output_file)
        if batch is None:
            return job
        answers, _ = self.call(
            "GET",
            f"{p.FILES_PATH}/{batch['output_file_id']}/content",
            p.FILE_CONTENT_NAME,
            lambda body: p.check_batch_output(body, custom_ids),
            endpoint_route=False,
        )
        if answers is None:
            job.outcome = "failed"
            return job
        job.outcome, job.finished = "completed", time.perf_counter()
        for usage, text in answers:
            job.add_answer(usage, text, self.tokens_of)
        return job
