"""The request log (``--request-log FILE``): one JSON line per request, written as it ends.

Every request Locust counts arrives through its ``request`` event (so the lines are exactly the requests
of ``_stats.csv``), plus the requests cut off by the stop (cancelled: the server got them, Locust's stats
do not count them). loadgate's own detail (model, stream, LLM timing, X-Request-Id, the arrival) rides in
the request's context as an :class:`~loadgate.harness.api.RequestNote`. Lines are buffered in memory and
written once a second and at the stop (no syscall per request). A local run writes FILE; each worker its
own file (:func:`loadgate.request_log.worker_path`). Nothing of the request's headers but the X-Request-Id
is kept: never the API key.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import gevent
from locust.runners import MasterRunner, WorkerRunner

from loadgate.client import protocol as p
from loadgate.harness.api import NOTE_KEY, RequestNote
from loadgate.harness.state import has_state, state
from loadgate.request_log import worker_path

logger = logging.getLogger("loadgate")

FLUSH_INTERVAL_S = 1.0


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def line(
    note: RequestNote | None,
    method: str,
    name: str,
    start: float,
    response_time_ms: float | None,
    status: int | None,
    failure: str | None,
    cancelled: bool = False,
    server_request_id: str | None = None,
    worker: int | None = None,
) -> str:
    """One request as a JSON line (keys in loadgate.request_log.FIELDS order)."""
    timing = note.timing if note is not None else None
    ok = failure is None and not cancelled
    answered = ok and timing is not None
    e2e = timing.e2e_ms if answered and timing is not None else response_time_ms
    arrival = note.arrival if note is not None else None
    row = {
        "start": round(start, 6),
        "end": round(start + (response_time_ms or 0.0) / 1000, 6),
        "method": method,
        "name": name,
        "model": note.model if note is not None else None,
        "stream": note.stream if note is not None else None,
        "outcome": "cancelled" if cancelled else ("ok" if ok else "failed"),
        "status": status or None,
        "failure": failure,
        "ttfb_ms": _ms(timing.ttfb_ms) if timing is not None else None,
        "ttft_ms": _ms(timing.ttft_ms) if timing is not None else None,
        "e2e_ms": _ms(e2e),
        "output_tokens": timing.output_tokens if answered and timing is not None else None,
        "token_source": timing.token_source if answered and timing is not None else None,
        "prompt_tokens": timing.prompt_tokens if timing is not None else None,
        "x_request_id": note.x_request_id if note is not None else None,
        "response_id": timing.response_id if timing is not None else None,
        "server_request_id": server_request_id,
        "intended_start": round(arrival[0], 6) if arrival else None,
        "schedule_lag_ms": _ms(arrival[1]) if arrival else None,
        "worker": worker,
    }
    return json.dumps(row, separators=(",", ":")) + "\n"


def _header(response: Any, key: str) -> str | None:
    try:
        value = response.headers.get(key) if response is not None and response.headers else None
    except Exception:  # a transport error's response may carry no usable headers
        return None
    return str(value) if value else None


class RequestLog:
    """The lines of one process (local runner or worker), buffered and written once a second."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.path: str | None = None
        self.worker: int | None = None
        self.buffer: list[str] = []
        self.file: Any = None
        self.flusher: Any = None
        self.broken = False

    def begin(self) -> None:
        """A test starts: (re)open the file named by the live settings, truncated."""
        self.close()
        path = state(self.environment).settings.request_log
        if not path:
            return
        runner = self.environment.runner
        if isinstance(runner, WorkerRunner):
            self.worker = max(0, int(getattr(runner, "worker_index", 0)))
            path = str(worker_path(path, self.worker))
        try:
            self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (open until the stop)
        except OSError as e:
            logger.error("loadgate: --request-log: cannot write %s (%s); no request log this test", path, e)
            return
        self.path, self.broken = path, False
        self.flusher = gevent.spawn(self._flush_periodically)

    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float | None,
        response: Any = None,
        context: dict[str, Any] | None = None,
        exception: BaseException | None = None,
        start_time: float | None = None,
        **_kw: Any,
    ) -> None:
        if self.file is None:
            return
        note = (context or {}).get(NOTE_KEY)
        status = getattr(response, "status_code", None)
        self.buffer.append(
            line(
                note if isinstance(note, RequestNote) else None,
                request_type,
                name,
                start_time or (note.started if isinstance(note, RequestNote) else 0.0),
                response_time,
                status if isinstance(status, int) else None,
                None if exception is None else p.scrub(str(exception)),
                server_request_id=_header(response, "x-request-id"),
                worker=self.worker,
            )
        )

    def cancelled(self, note: RequestNote) -> None:
        """A request cut off by the stop (counted as cancelled, not in Locust's stats)."""
        if self.file is None:
            return
        elapsed = max(0.0, time.time() - note.started) * 1000
        self.buffer.append(
            line(
                note,
                note.method,
                note.name,
                note.started,
                elapsed,
                None,
                p.CANCELLED,
                True,
                worker=self.worker,
            )
        )

    def flush(self) -> None:
        if self.file is None or not self.buffer:
            return
        lines, self.buffer = self.buffer, []
        try:
            self.file.write("".join(lines))
            self.file.flush()
        except OSError as e:
            if not self.broken:
                self.broken = True
                logger.error("loadgate: --request-log: writing %s failed (%s); lines are lost", self.path, e)

    def _flush_periodically(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def close(self) -> None:
        """Write what is buffered and close the file (the stop, quit, or a new test)."""
        if self.flusher is not None:
            self.flusher.kill(block=False)
            self.flusher = None
        self.flush()
        if self.file is not None:
            self.file.close()
            self.file = None


def install(environment: Any) -> None:
    """On the processes that run users (local, worker): log every request while --request-log is set."""
    if isinstance(environment.runner, MasterRunner):
        return
    log = RequestLog(environment)
    state(environment).request_log = log
    events = environment.events
    events.request.add_listener(log.on_request)
    events.test_start.add_listener(lambda **_kw: log.begin())
    events.test_stop.add_listener(lambda **_kw: log.flush())
    events.quit.add_listener(lambda **_kw: log.close() if has_state(environment) else None)
