"""Every touch of a Locust, geventhttpclient or gevent private, in one place.

loadgate pins Locust and geventhttpclient exactly (requirements.txt); the gevent socket attributes the
stream reader uses are checked like the rest. Each function here names the private it relies on;
:func:`missing_internals` lists any that an upgrade removed, and ``tests/harness/test_locust_compat.py``
fails loudly on it, so an upgrade breaks one test instead of silently skewing figures.
"""

from __future__ import annotations

import inspect
import logging
import os
import socket
import ssl
import struct
import sys
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gevent.monkey
import gevent.socket
import locust.stats
from gevent.hub import Waiter, get_hub
from geventhttpclient.connectionpool import ConnectionPool
from geventhttpclient.response import HTTPConnectionClosed, HTTPSocketPoolResponse
from greenlet import GreenletExit, getcurrent
from locust import User
from locust.contrib.fasthttp import FastResponse
from locust.dispatch import UsersDispatcher
from locust.runners import Runner, WorkerRunner
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING, TaskSet

__all__ = ["HTTPConnectionClosed"]

log = logging.getLogger(__name__)

_RESPONSE_MODULE = os.path.join("geventhttpclient", "response.py")
_LOCUST_BUCKETING = locust.stats.bucket_response_time


# -- Locust stats ---------------------------------------------------------------------------------------


_bulk_bucketing: tuple[Callable[[float], float], Callable[[Sequence[float]], Counter]] | None = None


def set_bucketing(
    bucket: Callable[[float], float] | None, counts: Callable[[Sequence[float]], Counter] | None = None
) -> None:
    """Replace ``locust.stats.bucket_response_time`` (documented as replaceable); None restores Locust's.
    ``counts(values)``: the same as ``Counter(map(bucket, values))`` at less cost, for log_samples."""
    global _bulk_bucketing
    locust.stats.bucket_response_time = bucket or _LOCUST_BUCKETING  # type: ignore[assignment]
    _bulk_bucketing = (bucket, counts) if bucket is not None and counts is not None else None


def log_samples(
    samples: Sequence[tuple[Sequence[locust.stats.StatsEntry], Sequence[float]]], now: float | None = None
) -> None:
    """For each (entries, values): ``entry.log(value, 0)`` for every value in every entry, in one pass: the
    same count, per-second count, sum, min, max, histogram and response-times cache as StatsEntry.log (its
    fields num_requests, num_reqs_per_sec, last_request_timestamp, total_response_time,
    min/max_response_time, response_times; _cache_response_times when a new second starts), with one
    clock read for all (``now``: when the samples were taken, all within one second; default the clock)
    and each value bucketed once: one batch of answers' figures go to their endpoint's rows and their
    model's rows at once."""
    now = time.time() if now is None else now
    second = int(now)
    bucket = locust.stats.bucket_response_time
    bulk = _bulk_bucketing[1] if _bulk_bucketing is not None and _bulk_bucketing[0] is bucket else None
    for entries, values in samples:
        if not values:
            continue
        keys = (bulk(values) if bulk is not None else Counter(map(bucket, values))).items()
        count, total, low, high = len(values), sum(values), min(values), max(values)
        for entry in entries:
            last = entry.last_request_timestamp
            if entry.use_response_times_cache and last and second > int(last):
                entry._cache_response_times(second - 1)
            entry.num_requests += count
            entry.num_reqs_per_sec[second] += count
            entry.last_request_timestamp = now
            entry.total_response_time += total  # type: ignore[assignment]
            least = entry.min_response_time
            entry.min_response_time = low if least is None else min(least, low)  # type: ignore[assignment]
            entry.max_response_time = max(entry.max_response_time, high)  # type: ignore[assignment]
            times = entry.response_times
            for key, n in keys:
                times[key] += n


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


# -- users at the stop --------------------------------------------------------------------------------------

_USER_STOP = User.stop


def _stop_user(self: User, force: bool = False) -> bool:
    """``User.stop`` whose kill of a waiting user cannot land in a request. Locust kills a user in its wait
    at once (``_group.killone``), but the kill is delivered on the hub's next turn: a user whose wait ended
    in between has sent its next request by then, the kill lands in the read, and the server gets a
    request that no figure counts (sent after the stop, too). So the state is read where the kill lands
    (:func:`_kill_if_still_waiting`)."""
    glet = self._greenlet
    if force or self._state != LOCUST_STATE_WAITING or glet is None or getcurrent() is glet:
        return _USER_STOP(self, force)
    waiter = Waiter()
    get_hub().loop.run_callback(_kill_if_still_waiting, self, glet, waiter)
    killed: bool = waiter.get()
    if killed:
        glet.join()  # as Locust's killone(block=True)
    return killed


def _kill_if_still_waiting(user: User, glet: Any, waiter: Waiter) -> None:
    """On the hub: a user still in its wait is killed there (Locust's kill, delivered now); one that has
    moved on is in its task and stops after it, as a running user asked to stop does."""
    killed = user._state == LOCUST_STATE_WAITING
    if killed:
        try:
            glet.throw(GreenletExit)
        except BaseException:
            get_hub().handle_error(glet, *sys.exc_info())
    elif user._state == LOCUST_STATE_RUNNING:
        user._state = LOCUST_STATE_STOPPING
    waiter.switch(killed)


def set_user_stop(safe: bool = True) -> None:
    """Install :func:`_stop_user` as ``User.stop`` (False restores Locust's)."""
    User.stop = _stop_user if safe else _USER_STOP  # type: ignore[method-assign]


# -- geventhttpclient connections and responses (FastHttpUser) --------------------------------------------

_POOL_CHECK = ConnectionPool._is_socket_alive
_unpatched_select = gevent.monkey.get_original("select", "select")


def _socket_alive_without_yielding(self: ConnectionPool, sock: Any) -> bool:
    """``ConnectionPool._is_socket_alive`` (an idle keep-alive socket must not be readable) with the
    unpatched select. Under Locust's monkey-patching, gevent's ``select(..., 0)`` also yields to the hub
    (``gevent.sleep(0)``), so every request on a pooled connection waited behind every other ready
    greenlet after Locust had stamped its start and before it was sent: at 150 streams, up to 18-30 ms
    of client-side delay counted as the target's TTFB/TTFT/E2E (and as Locust's response time)."""
    if sock is None:
        return False
    try:
        if sock.fileno() < 0:
            return False
        readable, _, _ = _unpatched_select([sock], [], [], 0.0)
        return not readable
    except (OSError, ValueError):
        return False


def set_pool_check(non_yielding: bool = True) -> None:
    """Install the non-yielding pooled-socket check (False restores geventhttpclient's own)."""
    ConnectionPool._is_socket_alive = _socket_alive_without_yielding if non_yielding else _POOL_CHECK  # type: ignore[method-assign]


class _ReceiptSocket(gevent.socket.socket):
    """The TCP socket of geventhttpclient's pools: each recv also keeps when the kernel received the bytes
    it returned (``received``, perf_counter domain; see stamped_reader). geventhttpclient reads a
    response's headers with recv, and a server that sends them with its first chunk (aiohttp does, so the
    mock does) delivers the first token in that read: its TTFT, and the TTFB, then come from the kernel
    too, not from when the busy loop got to the read. Its reads and sends also cost less than gevent's
    own (see timed_read and sendall)."""

    received: float | None = None
    _timed: StampedRead | None = None  # this connection's stamped reader, made at its first read

    def timed_read(self, n: int) -> tuple[bytes, float]:
        """A read and its stamp (:func:`stamped_reader`'s), kept as ``received``. One reader per connection:
        its timer and its wait-before-reading serve every response of a keep-alive socket, so the
        header read, which always follows a send, waits first instead of failing a system call and
        raising, and makes no Timeout."""
        if self._timed is None:
            self._timed = stamped_reader(self)
        data, self.received = self._timed(n)
        return data, self.received

    def sendall(self, data: bytes, flags: int = 0) -> None:
        # A request that fits the send buffer goes in one send: gevent's sendall first asks the kernel
        # for the buffer's size (a system call) and goes through three Python calls, on every request.
        if flags:
            return super().sendall(data, flags)
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            super().sendall(memoryview(data)[sent:])
        return None

    def recv(self, n: int, flags: int = 0) -> bytes:
        if flags:
            data: bytes = super().recv(n, flags)
            self.received = time.perf_counter()
            return data
        return self.timed_read(n)[0]


_TCP_SOCKET = ConnectionPool._create_tcp_socket


def _receipt_socket(_pool: ConnectionPool, family: int, kind: int, proto: int) -> Any:
    return _ReceiptSocket(family, kind, proto)


def set_socket_class(stamping: bool = True) -> None:
    """Pools make :class:`_ReceiptSocket` s (``ConnectionPool._create_tcp_socket``, the documented socket
    factory); False restores geventhttpclient's plain gevent socket."""
    ConnectionPool._create_tcp_socket = _receipt_socket if stamping else _TCP_SOCKET  # type: ignore[method-assign,assignment]


def headers_received(resp: FastResponse) -> float:
    """When the response's headers (and any body bytes read with them) reached this host: the kernel's
    stamp of geventhttpclient's last header read where the socket keeps one, else now."""
    now = time.perf_counter()
    raw = resp._response
    received = getattr(getattr(raw, "_sock", None), "received", None)
    return received if received is not None and received < now else now


def raw_response(resp: FastResponse) -> HTTPSocketPoolResponse | None:
    return resp._response


def cached_body(resp: FastResponse) -> bytes | None:
    """The whole body when it is already in memory (a buffered one is taken from the buffer): geventhttpclient
    read it at once (an error status's body), or it all came with the headers (a short answer)."""
    raw = resp._response
    if raw is not None and raw.message_complete and raw._body_buffer:  # the usual case: looked at first
        body = bytes(raw._body_buffer)
        del raw._body_buffer[:]
        return body
    cached = getattr(resp, "_cached_content", None)  # (unset, its slot raises AttributeError inside)
    return cached if isinstance(cached, bytes) else None


# Kernel receive stamps (Linux SO_TIMESTAMPNS): a read that the busy event loop makes late still carries
# when its bytes reached the socket. The socket module does not export the constants; these are Linux's
# generic values (SO_TIMESTAMPNS_OLD = SCM_TIMESTAMPNS = 35; other values on alpha/mips/parisc/sparc only).
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")  # struct timespec {tv_sec; tv_nsec} as the kernel writes it (old ABI)
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
KERNEL_STAMPS_ENV = "LOADGATE_KERNEL_STAMPS"  # "0": stamp at the read (tests compare the two)
_fallback_logged = False
_STAMPING: weakref.WeakSet[Any] = weakref.WeakSet()  # sockets with receive stamping turned on

StampedRead = Callable[[int], tuple[bytes, float]]


_KERNEL_STAMPS_HERE = (
    sys.platform == "linux"
    and _CMSG_SPACE > 0
    and not os.uname().machine.startswith(("alpha", "mips", "parisc", "sparc"))
)


def kernel_stamps_wanted() -> bool:
    return _KERNEL_STAMPS_HERE and os.environ.get(KERNEL_STAMPS_ENV, "1") != "0"


def _fallback(sock: Any, why: object) -> StampedRead:
    global _fallback_logged
    if not _fallback_logged:
        _fallback_logged = True
        log.debug("kernel receive stamps unavailable (%s): stamping each read when it is made", why)
    recv, perf_counter = _stream_reader(sock, "recv"), time.perf_counter
    return lambda n: (recv(n), perf_counter())


def _is_tls(sock: Any) -> bool:
    """A TLS socket (the stdlib's or gevent's): its bytes on the wire are not the ones a read returns."""
    return isinstance(sock, ssl.SSLSocket) or "ssl" in type(sock).__module__.lower()


def _stream_reader(sock: Any, method: str) -> Callable[..., Any]:
    """``sock.<method>(n, ...)`` for reading a stream as it arrives, cooperative like gevent's own method
    (its socket's read watcher; ``socket.timeout`` after ``sock.timeout`` s without data) at less cost
    per read. gevent's method tries the read first and makes a new Timeout for every wait: a stream
    whose tokens come one by one paid a failed system call, an exception and a Timeout per token. Here
    once a read that followed a short one (the queue emptied) found nothing, each read after a short one
    waits first; a response whose bytes come faster than the loop reads them keeps trying first. A wait
    only notes when it started: one timer per connection, started at a wait when none is pending, checks
    at its expiry whether the wait under way has lasted ``sock.timeout`` and starts again for the rest
    (a token's wait used to start and stop a libev timer and make an exception). A socket that is not a
    plain gevent one (TLS, a test's) uses its own method."""
    os_sock, event, hub = (getattr(sock, name, None) for name in ("_sock", "_read_event", "hub"))
    if os_sock is None or event is None or hub is None or _is_tls(sock):
        return getattr(sock, method)
    call, wait, timeout_s, loop = getattr(os_sock, method), hub.wait, sock.timeout, hub.loop
    waiter: Any = None  # the greenlet waiting for the socket, while it waits
    since = 0.0  # when that wait started (time.monotonic: the loop's own clock is the wall clock)
    pending = False  # a timer will fire
    drained = wait_first = False

    def arm(after: float) -> None:
        nonlocal pending
        pending = True
        loop.timer(after, ref=False).start(expire)

    def expire() -> None:
        nonlocal pending
        pending = False
        if waiter is None:
            return  # no wait under way: the next one starts a timer
        left = since + timeout_s - time.monotonic()
        if left > 0:
            arm(left)
        else:
            waiter.throw(TimeoutError("timed out"))

    def block() -> None:
        nonlocal waiter, since
        if timeout_s is not None:
            since = time.monotonic()
            if not pending:
                arm(timeout_s)
        waiter = getcurrent()
        try:
            wait(event)
        finally:
            waiter = None

    def read(n: int, *args: Any) -> Any:
        nonlocal drained, wait_first
        if drained and wait_first:
            block()
        while True:
            try:
                got = call(n, *args)
            except BlockingIOError:
                wait_first = wait_first or drained
                block()
                continue
            drained = len(got if method == "recv" else got[0]) < n
            return got

    return read


def _cannot_stamp(sock: Any) -> str | None:
    """Why ``sock``'s reads cannot carry kernel receive stamps, or None once they can (the option is set
    once a socket: keep-alive sockets keep it; harmless for other reads)."""
    if not kernel_stamps_wanted():
        return "disabled or not Linux"
    if _is_tls(sock):
        return "a TLS socket"
    try:
        if sock not in _STAMPING:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            _STAMPING.add(sock)
    except (OSError, AttributeError, TypeError) as e:
        return str(e) or type(e).__name__
    return None


def _kernel_time(ancillary: list[tuple[int, int, bytes]], now: float, offset: float) -> float:
    """The receive stamp in a recvmsg's ancillary data (CLOCK_REALTIME, moved to perf_counter's domain
    by ``offset`` = time.time() - perf_counter()), never later than ``now``; ``now`` without one."""
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(payload) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(payload)
            stamp = sec - offset + nsec * 1e-9
            return stamp if stamp < now else now
    return now


def stamped_reader(sock: Any) -> StampedRead:
    """``read(n) -> (bytes, stamp)``: the stamp (perf_counter domain) is when the kernel received the LAST
    bytes of the read (TCP stamps each segment; a read, or segments coalesced in the receive queue, that
    spans several carries the latest one), never later than the read itself. The option is set once a
    socket (keep-alive sockets keep it; harmless for other reads); LOADGATE_KERNEL_STAMPS=0 turns the
    stamps off. The kernel stamps with CLOCK_REALTIME: the offset to perf_counter (CLOCK_MONOTONIC, same
    rate) is measured at each read, so a wall-clock step between reads cannot skew it; the wall clock is
    read first, so a process preempted between the two reads gets a later stamp (never later than the
    read), not one before its bytes arrived (a TTFB of -0.24 ms on a busy CI host). TLS sockets, other
    systems and any failure read as before, stamped at the read; so do the first reads of a run if Linux
    has not yet turned receive stamping on (it does so lazily, in a work item, when the first socket
    asks)."""
    why = _cannot_stamp(sock)
    if why:
        return _fallback(sock, why)
    try:
        recvmsg = _stream_reader(sock, "recvmsg")
    except (OSError, AttributeError) as e:
        return _fallback(sock, e)
    perf_counter, wall, space = time.perf_counter, time.time, _CMSG_SPACE

    def read(n: int) -> tuple[bytes, float]:
        data, ancillary, _, _ = recvmsg(n, space)
        wall_now = wall()
        now = perf_counter()
        return data, _kernel_time(ancillary, now, wall_now - now)

    return read


def iter_timed_body(resp: FastResponse) -> Iterator[tuple[bytes, float]]:
    """The body's bytes as they arrive (geventhttpclient's read(n) would wait for n bytes, batching SSE
    events and distorting their timing), each chunk with its arrival stamp (perf_counter domain; see
    stamped_reader); bytes that geventhttpclient read with the headers carry the headers' stamp
    (headers_received). Raises HTTPConnectionClosed if the peer closes early."""
    raw = resp._response
    if raw is None:
        return
    buffer = raw._body_buffer
    stamp = headers_received(resp)
    read: StampedRead | None = None
    while True:
        if buffer:
            chunk = bytes(buffer)
            del buffer[:]
            yield chunk, stamp
            continue
        sock = raw._sock
        if raw.message_complete or sock is None:
            return
        if read is None:
            read = sock.timed_read if isinstance(sock, _ReceiptSocket) else stamped_reader(sock)
        data, received = read(raw.block_size)
        if not data:
            raise HTTPConnectionClosed("connection closed mid-body")
        # Never before the previous stamp: bytes buffered with the headers are stamped when yielded, and
        # the kernel may have received the next ones before that (a gap would come out negative).
        stamp = max(stamp, received)
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
        "locust.stats.StatsEntry fields (log_samples)": all(
            f"self.{name}" in inspect.getsource(locust.stats.StatsEntry)
            for name in (
                "num_reqs_per_sec",
                "last_request_timestamp",
                "total_response_time",
                "min_response_time",
                "response_times",
                "use_response_times_cache",
                "_cache_response_times",
            )
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
        "gevent socket ._sock/._read_event/.hub (the stream reader)": all(
            f"self.{name} =" in inspect.getsource(gevent.socket.socket.__init__)
            for name in ("_sock", "_read_event", "hub")
        ),
        "geventhttpclient ConnectionPool._create_tcp_socket (the socket factory)": "_create_tcp_socket("
        in inspect.getsource(ConnectionPool._create_socket),
        "locust FastHttpSession.auth_header": "self.auth_header" in _fast_source(),
        "locust FastResponse._response/_cached_content": "_response" in _fast_source()
        and "_cached_content" in _fast_source(),
        "locust ResponseContextManager._manual_result": "self._manual_result" in _fast_source(),
        "locust User.stop/_state/_greenlet and TaskSet.wait's states (set_user_stop)": all(
            text in inspect.getsource(_USER_STOP)
            for text in ("self._state in (None, LOCUST_STATE_WAITING)", "self._group.killone(self._greenlet)")
        )
        and "self.user._state = LOCUST_STATE_RUNNING" in inspect.getsource(TaskSet.wait),
        "geventhttpclient ConnectionPool._is_socket_alive (select, 0)": "select.select([sock], [], [], 0.0)"
        in inspect.getsource(_POOL_CHECK),
    }
    return [name for name, ok in checks.items() if not ok]


def _response_source() -> str:
    return inspect.getsource(inspect.getmodule(HTTPSocketPoolResponse))  # type: ignore[arg-type]


def _fast_source() -> str:
    return inspect.getsource(inspect.getmodule(FastResponse))  # type: ignore[arg-type]
