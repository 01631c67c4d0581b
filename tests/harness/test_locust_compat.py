"""The upgrade guard: every Locust/geventhttpclient private loadgate touches is still there, at the
versions requirements.txt pins. An upgrade that changes one fails here, not silently in the figures."""

import contextlib
import socket
import time
import types
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import gevent
import pytest
from geventhttpclient.connectionpool import ConnectionPool

from loadgate.harness import locust_compat

ROOT = Path(__file__).resolve().parents[2]


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name] = version
    return pins


def test_the_libraries_whose_internals_we_touch_are_pinned_exactly_and_installed_at_the_pin():
    pins = pinned()
    assert set(pins) >= {"locust", "geventhttpclient"}
    for name, version in pins.items():
        assert metadata.version(name) == version, (
            f"{name} {metadata.version(name)} installed, {version} pinned"
        )


def test_every_private_loadgate_touches_still_exists():
    assert locust_compat.missing_internals() == []


def test_bucketing_swap_round_trips():
    import locust.stats

    from loadgate.harness import precision

    precision.install()
    assert locust.stats.bucket_response_time(147.4) == 147
    precision.uninstall()
    assert locust.stats.bucket_response_time(147.4) == 150  # Locust's own: 2 significant digits
    precision.install()


def test_a_worker_is_known_before_locust_sets_its_runner():
    from types import SimpleNamespace

    from locust.env import Environment

    env = Environment()
    assert env.runner is None
    env.parsed_options = SimpleNamespace(worker=True)  # what `locust --worker` parses
    assert locust_compat.is_worker(env)  # a rebalancing master's spawn can come before the runner
    env.parsed_options = SimpleNamespace(worker=False)
    assert not locust_compat.is_worker(env)
    env.create_local_runner()
    env.parsed_options = SimpleNamespace(worker=True)
    assert not locust_compat.is_worker(env)  # once set, the runner decides


def test_log_samples_gives_each_entry_what_one_log_per_value_gives():
    from locust.stats import RequestStats

    values = [0.0, 12.34, 0.5, 147.4, 3.0, 12.34]
    one = RequestStats().get("x", "ITL")
    bulk = [RequestStats().get("x", "ITL"), RequestStats().get("x @m", "ITL")]  # an endpoint's and a model's
    for value in values:
        one.log(value, 0)
    locust_compat.log_samples([(bulk, values), (bulk, [])])
    fields = (
        "num_requests",
        "total_response_time",
        "min_response_time",
        "max_response_time",
        "response_times",
        "total_content_length",
        "num_none_requests",
    )
    for entry in bulk:
        assert [getattr(entry, f) for f in fields] == [getattr(one, f) for f in fields]
        assert sum(entry.num_reqs_per_sec.values()) == len(values)
        assert entry.last_request_timestamp == pytest.approx(one.last_request_timestamp, abs=1)


def test_log_samples_caches_the_histogram_when_a_new_second_starts_as_log_does():
    """The response-times cache behind Locust's current percentiles (its web UI and the live SLA)."""
    from locust.stats import RequestStats

    one, bulk = (RequestStats(use_response_times_cache=True).get("x", "TTFT") for _ in range(2))
    for entry in (one, bulk):
        entry.log(10.0, 0)
        entry.last_request_timestamp -= 5  # the previous sample came 5 s ago
        entry.response_times_cache.clear()
    one.log(20.0, 0)
    locust_compat.log_samples([([bulk], [20.0])])
    assert list(bulk.response_times_cache) == list(one.response_times_cache) != []
    assert [c.response_times for c in bulk.response_times_cache.values()] == [
        c.response_times for c in one.response_times_cache.values()
    ]


@pytest.mark.parametrize("kernel_stamps", [True, False])
def test_a_late_read_carries_the_kernels_receive_time_unless_turned_off(monkeypatch, kernel_stamps):
    """The bytes wait in the socket before the read: with kernel stamps the read's stamp is when they
    arrived (before the read began); turned off, it is the read's own time. Linux turns receive stamping
    on lazily (a deferred work item, the first time any socket asks), so a message sent at once may
    arrive unstamped: the stamped case gets a few tries, the other must never carry a kernel time."""
    monkeypatch.setenv(locust_compat.KERNEL_STAMPS_ENV, "1" if kernel_stamps else "0")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    with client, server:
        read = locust_compat.stamped_reader(client)
        early = []
        for _ in range(20 if kernel_stamps else 3):
            server.sendall(b"data: x\n\n")
            time.sleep(0.05)
            before_read = time.perf_counter()
            data, stamp = read(4096)
            assert data == b"data: x\n\n"
            early.append(stamp < before_read)
            if early[-1]:
                break
    assert early[-1] is kernel_stamps, early


def test_a_preemption_between_a_reads_two_clock_reads_never_stamps_bytes_before_they_were_sent(monkeypatch):
    """The kernel's stamp is wall-clock time; moving it to perf_counter's takes one read of each clock. A
    process preempted between the two (here: every clock read waits 50 ms first) must get a stamp between
    the send and the read, off towards the read, never before the bytes were sent (a TTFB of -0.24 ms
    failed a gate on a busy CI host)."""
    monkeypatch.setenv(locust_compat.KERNEL_STAMPS_ENV, "1")

    def preempted(clock: Callable[[], float]) -> Callable[[], float]:
        return lambda: time.sleep(0.05) or clock()

    fake = types.SimpleNamespace(perf_counter=preempted(time.perf_counter), time=preempted(time.time))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    with client, server:
        monkeypatch.setattr(locust_compat, "time", fake)
        read = locust_compat.stamped_reader(client)
        for _ in range(10):  # Linux turns receive stamping on lazily: the first reads may carry none
            sent = time.perf_counter()
            server.sendall(b"data: x\n\n")
            time.sleep(0.1)
            before_read = time.perf_counter()
            data, stamp = read(4096)
            assert data == b"data: x\n\n"
            assert sent <= stamp <= time.perf_counter()
            if stamp < before_read:  # the kernel's stamp (50 ms late here), not the read's own: checked
                return
    pytest.fail("no read carried a kernel receive stamp")


@contextlib.contextmanager
def pooled_connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the socket geventhttpclient's pool makes, connected; the server's end), closed at the end."""
    locust_compat.set_socket_class(True)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = ConnectionPool._create_tcp_socket(None, socket.AF_INET, socket.SOCK_STREAM, 0)  # type: ignore[arg-type]
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    with client, server:
        assert isinstance(client, locust_compat._ReceiptSocket)
        yield client, server


@pytest.mark.parametrize("kernel_stamps", [True, False])
def test_the_pools_socket_keeps_the_kernels_receive_time_of_its_last_recv(monkeypatch, kernel_stamps):
    """geventhttpclient reads a response's headers (and the first chunk, when the server sends them
    together) with the pooled socket's recv: that socket keeps when the kernel received those bytes, so
    a late header read still stamps them truthfully (headers_received); turned off, the read's own time."""
    monkeypatch.setenv(locust_compat.KERNEL_STAMPS_ENV, "1" if kernel_stamps else "0")
    with pooled_connection() as (client, server):
        early = []
        for _ in range(20 if kernel_stamps else 3):
            server.sendall(b"HTTP/1.1 200 OK\r\n\r\ndata: x\n\n")
            time.sleep(0.05)
            before_read = time.perf_counter()
            assert client.recv(4096) == b"HTTP/1.1 200 OK\r\n\r\ndata: x\n\n"
            assert client.received is not None and client.received <= time.perf_counter()
            early.append(client.received < before_read)
            if early[-1]:
                break
    assert early[-1] is kernel_stamps, early


def test_the_pools_socket_sends_and_reads_every_byte_and_times_out_like_gevents_own():
    """The pooled socket's own sendall and recv (one send for a request that fits the send buffer; one
    stamped reader per connection): a small request arrives whole; one far larger than the send buffer
    arrives in full while another greenlet reads it (the rest goes through gevent's cooperative sendall);
    a recv with nothing to read raises socket.timeout after the socket's timeout, and the next response
    on the same connection is read (the connection's timer is re-armed, not left expired); the timer
    expiring while no read waits throws into no one, and the next wait arms it again."""
    with pooled_connection() as (client, server):
        client.settimeout(0.5)
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert server.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
        big = bytes(range(256)) * 16_384  # 4 MiB: many times the send buffer
        received = gevent.spawn(lambda: b"".join(iter(lambda: server.recv(65536), b"")))
        client.sendall(big)
        client.shutdown(socket.SHUT_WR)
        assert received.get(timeout=10) == big
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match="timed out"):
            client.recv(4096)
        assert time.perf_counter() - started >= 0.45
        gevent.spawn_later(0.3, server.sendall, b"HTTP/1.1 200 OK\r\n\r\n")  # the last expiry has passed
        assert client.recv(4096) == b"HTTP/1.1 200 OK\r\n\r\n"
        gevent.sleep(0.6)  # the timer that recv armed expires with no read waiting: nothing is thrown
        gevent.spawn_later(0.3, server.sendall, b"HTTP/1.1 200 OK\r\n\r\n")
        assert client.recv(4096) == b"HTTP/1.1 200 OK\r\n\r\n"
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match="timed out"):
            client.recv(4096)
        assert 0.45 <= time.perf_counter() - started < 0.9


def test_body_bytes_read_with_the_headers_carry_the_header_reads_stamp():
    """A server that sends its headers with the first chunk (aiohttp, so the mock) delivers the first
    token in geventhttpclient's header read: that token is stamped with the header read's receive time
    (the socket's ``received``), not when the body is iterated; without one, now."""

    class Raw:
        def __init__(self, received: float | None) -> None:
            self._body_buffer = bytearray(b"data: first\n\n")
            self._sock = type("Sock", (), {"received": received})()
            self.message_complete = True

    class Resp:
        def __init__(self, received: float | None) -> None:
            self._response = Raw(received)

    arrived = time.perf_counter() - 0.030  # the bytes came 30 ms before the loop got to them
    assert list(locust_compat.iter_timed_body(Resp(arrived))) == [(b"data: first\n\n", arrived)]  # type: ignore[arg-type]
    assert locust_compat.headers_received(Resp(arrived)) == arrived  # type: ignore[arg-type]
    before = time.perf_counter()
    ((_, stamp),) = locust_compat.iter_timed_body(Resp(None))  # type: ignore[arg-type]
    assert stamp >= before


@pytest.mark.parametrize("method", ["recv", "recvmsg"])
def test_a_stream_read_as_it_arrives_gets_every_byte_and_times_out_like_gevents_own(method):
    """The stream reader of a gevent socket: sends spaced in time read one by one (after the first short
    read it waits before reading; the timeout counts from each wait, not from the first), a send longer than the read size in full reads, other greenlets run
    while it waits, and no byte for the socket's timeout raises socket.timeout (a TimeoutError), as
    gevent's own recv does."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    with client, server:
        client.settimeout(1.0)
        read = locust_compat._stream_reader(client, method)
        assert read != getattr(client, method)  # the cooperative reader, not gevent's method

        def data() -> bytes:
            got = read(4096)
            return got if method == "recv" else got[0]

        def send() -> None:
            for i in range(5):  # 1.25 s of waits in all, past the 1 s timeout: each wait has its own
                gevent.sleep(0.25)
                server.sendall(b"token %d" % i)
            gevent.sleep(0.02)
            server.sendall(b"y" * 10_000)

        ticks: list[float] = []
        sender = gevent.spawn(send)
        ticker = gevent.spawn(
            lambda: [ticks.append(time.perf_counter()) or gevent.sleep(0.005) for _ in range(40)]
        )
        assert [data() for _ in range(5)] == [b"token %d" % i for i in range(5)]
        big = b""
        while len(big) < 10_000:
            big += data()
        assert big == b"y" * 10_000
        assert len(ticks) >= 10  # the reader's waits let the other greenlet run
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match="timed out"):
            data()
        waited = time.perf_counter() - started  # counted from this wait: not from the first wait's timer,
        assert 0.95 <= waited < 1.4  # nor a whole timeout more from a timer armed before this wait
        gevent.joinall([sender, ticker])


@pytest.mark.parametrize("non_yielding", [True, False])
def test_taking_a_pooled_connection_does_not_yield_to_other_greenlets(non_yielding):
    """geventhttpclient checks a pooled socket with select(..., 0), which under gevent also yields to the
    hub: the request, its start already stamped, waited behind every ready greenlet. loadgate's check
    gives the same answers without yielding (False: geventhttpclient's own, which does yield)."""
    ran: list[str] = []
    idle, peer = socket.socketpair()
    try:
        locust_compat.set_pool_check(non_yielding)
        gevent.spawn(ran.append, "other greenlet")
        alive = ConnectionPool._is_socket_alive(None, idle)  # type: ignore[arg-type]
        assert (ran == []) is non_yielding
        peer.close()  # the peer closed: readable (EOF), so not alive
        assert (alive, ConnectionPool._is_socket_alive(None, idle)) == (True, False)  # type: ignore[arg-type]
    finally:
        locust_compat.set_pool_check(True)
        idle.close()
    gevent.sleep(0)


@pytest.mark.parametrize("safe", [True, False])
def test_a_user_asked_to_stop_as_its_wait_ends_finishes_the_request_it_sends(safe):
    """The stop's kill of a waiting user and the end of its wait in the same turn of the hub: Locust's kill
    lands in the request the user has just sent (the server gets it, nothing counts it); loadgate's stop
    reads the state where the kill lands and lets that request finish (False: Locust's own)."""
    from gevent.pool import Group
    from locust import User, constant, task
    from locust.env import Environment
    from locust.exception import StopUser

    sent: list[int] = []
    done: list[int] = []

    class Lockstep(User):
        wait_time = constant(0)  # its wait ends on the hub's next turn, as a timer that fires
        host = "http://127.0.0.1"

        @task
        def request(self) -> None:
            sent.append(1)
            gevent.sleep(0.01)  # the request on the wire
            done.append(1)
            if len(done) == 1:
                gevent.spawn(self.stop)  # runs once the user waits, just before its wait ends
            elif len(done) == 3:
                raise StopUser()

    locust_compat.set_user_stop(safe)
    try:
        group = Group()
        user = Lockstep(Environment(user_classes=[Lockstep]))
        user.start(group)
        assert group.join(timeout=5)
    finally:
        locust_compat.set_user_stop(True)
    # safe: the request sent as the stop came finishes, and no other starts; Locust's: it is cut off
    assert (len(sent), len(done)) == ((2, 2) if safe else (2, 1))
