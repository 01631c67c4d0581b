"""Every touch of a Locust or geventhttpclient private, in one place.

loadgate pins both libraries exactly (requirements.txt). Each function here names the private it relies
on; :func:`missing_internals` lists any that an upgrade removed, and ``tests/harness/test_locust_compat.py``
fails loudly on it, so an upgrade breaks one test instead of silently skewing figures.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from typing import Any

import locust.stats
from geventhttpclient.response import HTTPConnectionClosed, HTTPSocketPoolResponse
from locust.contrib.fasthttp import FastResponse
from locust.dispatch import UsersDispatcher
from locust.runners import Runner, WorkerRunner

__all__ = ["HTTPConnectionClosed"]

_RESPONSE_MODULE = os.path.join("geventhttpclient", "response.py")
_LOCUST_BUCKETING = locust.stats.bucket_response_time


# -- Locust stats ---------------------------------------------------------------------------------------


def set_bucketing(bucket: Callable[[float], float] | None) -> None:
    """Replace ``locust.stats.bucket_response_time`` (documented as replaceable); None restores Locust's."""
    locust.stats.bucket_response_time = bucket or _LOCUST_BUCKETING  # type: ignore[assignment]


def log_many(entry: locust.stats.StatsEntry, values: list[float]) -> None:
    """``entry.log(value, 0)`` for every value, in one pass (a stream's ITL gaps, recorded once at the end
    of the response): the same count, per-second count, sum, min, max and histogram. The first value goes
    through ``log`` itself (its response-times cache check and timestamp); the rest are added to the
    fields it updates (StatsEntry.num_requests, num_reqs_per_sec, total_response_time, min/max_response_time,
    response_times)."""
    if not values:
        return
    entry.log(values[0], 0)  # type: ignore[arg-type]
    rest = values[1:]
    if not rest:
        return
    entry.num_requests += len(rest)
    entry.num_reqs_per_sec[int(entry.last_request_timestamp or 0)] += len(rest)
    entry.total_response_time += sum(rest)  # type: ignore[assignment]
    # (log() set min_response_time from values[0])
    entry.min_response_time = min(entry.min_response_time, min(rest))  # type: ignore[type-var, assignment]
    entry.max_response_time = max(entry.max_response_time, max(rest))  # type: ignore[assignment]
    bucket, times = locust.stats.bucket_response_time, entry.response_times
    for value in rest:
        times[bucket(value)] += 1  # type: ignore[arg-type]


def set_csv_writer_class(cls: type[locust.stats.StatsCSVFileWriter]) -> None:
    """Locust's main() looks ``StatsCSVFileWriter`` up in ``locust.stats`` when --csv is given."""
    locust.stats.StatsCSVFileWriter = cls  # type: ignore[misc]


def write_history_rows(csv_stats: Any, writer: Any, now: float) -> None:
    """Locust's own history-row code (``StatsCSVFileWriter._stats_history_data_rows``) on any StatsCSV."""
    locust.stats.StatsCSVFileWriter._stats_history_data_rows(csv_stats, writer, now)


def rewrite_csv_files(writer: Any) -> None:
    """Rewrite the totals files of a StatsCSVFileWriter from the final figures (its private handles)."""
    for handle, write in (
        (writer.requests_csv_filehandle, lambda: writer.requests_csv(writer.requests_csv_writer)),
        (writer.failures_csv_filehandle, lambda: writer.failures_csv(writer.failures_csv_writer)),
        (writer.exceptions_csv_filehandle, lambda: writer.exceptions_csv(writer.exceptions_csv_writer)),
    ):
        handle.seek(0)
        handle.truncate()
        write()


def is_worker(environment: Any) -> bool:
    """This process runs users for a master. Asked of the options too: a master rebalancing onto a worker
    that has just connected sends it a spawn message that the worker handles (firing test_start) before
    ``create_worker_runner`` has returned and set ``environment.runner``."""
    runner = environment.runner
    if runner is not None:
        return isinstance(runner, WorkerRunner)
    return bool(getattr(environment.parsed_options, "worker", False))


def send_worker_report(runner: WorkerRunner) -> None:
    """A worker's stats report now (``WorkerRunner._send_stats``), not at the next heartbeat."""
    runner._send_stats()


def rebalance_user_classes(runner: Any) -> bool:
    """After the user classes' weights changed mid-run: recompute the running users' classes from the new
    weights (``UsersDispatcher._prepare_rebalance``, what Locust does when a worker joins), so the next
    dispatch stops and starts users to match. False when nothing is running yet."""
    dispatcher = getattr(runner, "_users_dispatcher", None)
    if dispatcher is None or not runner.user_count:
        return False
    dispatcher._prepare_rebalance()
    return True


# -- geventhttpclient responses (FastHttpUser) ------------------------------------------------------------


def raw_response(resp: FastResponse) -> HTTPSocketPoolResponse | None:
    return resp._response


def cached_body(resp: FastResponse) -> bytes | None:
    """The body geventhttpclient already read (it reads an error status's body at once)."""
    cached = getattr(resp, "_cached_content", None)
    return cached if isinstance(cached, bytes) else None


def iter_body(resp: FastResponse) -> Iterator[bytes]:
    """Yield body bytes as they arrive (geventhttpclient's read(n) would wait for n bytes, batching
    SSE events and distorting their timing). Raises HTTPConnectionClosed if the peer closes early."""
    raw = resp._response
    if raw is None:
        return
    buffer = raw._body_buffer
    while True:
        if buffer:
            chunk = bytes(buffer)
            del buffer[:]
            yield chunk
            continue
        if raw.message_complete or raw._sock is None:
            return
        data = raw._sock.recv(raw.block_size)
        if not data:
            raise HTTPConnectionClosed("connection closed mid-body")
        raw.feed(data)


def result_marked(resp: Any) -> bool:
    """Whether success() or failure() was already called on a catch_response with-block (Locust's
    ``ResponseContextManager._manual_result``): its exit then reports the request, even on GreenletExit."""
    return getattr(resp, "_manual_result", None) is not None


def discard_connection(resp: FastResponse) -> None:
    """Close a connection whose body was not read to the end, so the pool never reuses it."""
    raw = getattr(resp, "_response", None)
    pool, sock = getattr(raw, "_pool", None), getattr(raw, "_sock", None)
    if raw is not None and sock is not None:
        if pool is not None:
            pool.release_socket(sock)
        else:
            sock.close()
        raw._sock, raw._pool = None, None


def reached_the_wire(stop: BaseException) -> bool:
    """Whether a request killed before its response headers had reached the server: true when the kill
    landed while geventhttpclient was waiting for the response, false while it was still connecting."""
    tb = stop.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(_RESPONSE_MODULE):
            return True
        tb = tb.tb_next
    return False


def set_basic_auth(session: Any, header: str) -> None:
    """Send ``header`` (``Basic ...``) as Authorization on every request of a FastHttpSession, as Locust
    does itself for credentials in the base URL (``FastHttpSession.auth_header``)."""
    session.auth_header = header


# -- the upgrade guard ------------------------------------------------------------------------------------


def missing_internals() -> list[str]:
    """The privates above that the installed Locust / geventhttpclient no longer have."""
    checks = {
        "locust.stats.bucket_response_time": hasattr(locust.stats, "bucket_response_time"),
        "locust.stats.StatsCSVFileWriter._stats_history_data_rows": hasattr(
            locust.stats.StatsCSVFileWriter, "_stats_history_data_rows"
        ),
        "locust.stats.StatsCSVFileWriter._percentile_fields": hasattr(
            locust.stats.StatsCSV, "_percentile_fields"
        ),
        "locust.stats.StatsCSVFileWriter.close_files": hasattr(
            locust.stats.StatsCSVFileWriter, "close_files"
        ),
        "locust.stats.StatsEntry fields (log_many)": all(
            f"self.{name}" in inspect.getsource(locust.stats.StatsEntry)
            for name in ("num_reqs_per_sec", "total_response_time", "min_response_time", "response_times")
        ),
        "locust.runners.WorkerRunner._send_stats": hasattr(WorkerRunner, "_send_stats"),
        "locust.dispatch.UsersDispatcher._prepare_rebalance": hasattr(UsersDispatcher, "_prepare_rebalance"),
        "locust runner._users_dispatcher": "_users_dispatcher" in inspect.getsource(Runner.__init__),
        "geventhttpclient response ._body_buffer/._sock/._pool/.block_size/.message_complete": all(
            f"self.{name}" in _response_source() for name in ("_body_buffer", "_sock", "_pool", "block_size")
        )
        and "message_complete" in _response_source()
        and hasattr(HTTPSocketPoolResponse, "feed"),
        "geventhttpclient/response.py (GreenletExit frame check)": str(
            inspect.getsourcefile(HTTPSocketPoolResponse)
        ).endswith(_RESPONSE_MODULE),
        "locust FastHttpSession.auth_header": "self.auth_header" in _fast_source(),
        "locust FastResponse._response/_cached_content": "_response" in _fast_source()
        and "_cached_content" in _fast_source(),
        "locust ResponseContextManager._manual_result": "self._manual_result" in _fast_source(),
    }
    return [name for name, ok in checks.items() if not ok]


def _response_source() -> str:
    return inspect.getsource(inspect.getmodule(HTTPSocketPoolResponse))  # type: ignore[arg-type]


def _fast_source() -> str:
    return inspect.getsource(inspect.getmodule(FastResponse))  # type: ignore[arg-type]
