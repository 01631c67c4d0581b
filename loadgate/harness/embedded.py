"""Auto-start of the embedded mock target, so `locust` with no arguments has something to load.

On the local or master runner (never on a worker, including the children `--processes` forks), when
the target host is locust.conf's default, http://127.0.0.1:8000, and that port is free
(`--embedded-target auto`, the default), or for any loopback URL when asked (`on`), loadgate starts
`python -m loadgate.mock` on that host and port, waits for its health, logs one line, and stops it when
Locust quits. Any other host is never touched: where nothing listens, the start-up probe says so (exit 2)
rather than load a stand-in for the server the user meant.
"""

from __future__ import annotations

import atexit
import errno
import ipaddress
import logging
import os
import socket
import sys
import time
import weakref
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import events
from locust.env import Environment
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner

from loadgate.contract import EXIT_BAD_INPUT
from loadgate.harness.locust_compat import is_worker
from loadgate.harness.outputs import write_metadata
from loadgate.harness.state import state
from loadgate.mock.process import MockStartError, resolve_profile, start_mock
from loadgate.options import EMBEDDED_MODES, SettingError, parse_value
from loadgate.urls import public_url

logger = logging.getLogger(__name__)

MODES = EMBEDDED_MODES
DEFAULT_ENDPOINT_PORT = 8000  # locust.conf's host: http://127.0.0.1:8000
EXIT_EMBEDDED_TARGET = 3
"""Process exit code when `--embedded-target`/`--embedded-config` cannot be honoured (bad input)."""

WATCHDOG_INTERVAL_S = 0.5
WORKER_GRACE_S = 5.0
_LIVE: weakref.WeakSet[EmbeddedTargets] = weakref.WeakSet()


class EmbeddedTargetError(Exception):
    """The embedded target was asked for but cannot be started; the message says why and how to fix it."""


@dataclass(frozen=True)
class LoopbackEndpoint:
    """Where the mock must listen to serve a loopback `--host` URL."""

    bind_host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"http://{host}:{self.port}"


def loopback_endpoint(host_url: str | None) -> LoopbackEndpoint | None:
    """The bind address and port for `host_url` if it is a plain-HTTP loopback URL, else None."""
    if not host_url:
        return None
    try:
        parts = urlsplit(host_url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or not parts.hostname:
        return None
    hostname = parts.hostname.lower()
    if hostname == "localhost":
        bind_host = "127.0.0.1"
    else:
        try:
            address = ipaddress.ip_address(hostname)
        except ValueError:
            return None
        if not address.is_loopback:
            return None
        bind_host = str(address)
    return LoopbackEndpoint(bind_host, port if port is not None else 80)


def port_is_free(endpoint: LoopbackEndpoint) -> bool:
    """True when nothing listens on the endpoint (a bind succeeds, as the mock's own bind would)."""
    family = socket.AF_INET6 if ":" in endpoint.bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The mock (aiohttp) binds with SO_REUSEADDR, so TIME_WAIT leftovers must not count as "taken".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((endpoint.bind_host, endpoint.port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def resolve_config(value: str | None) -> str | None:
    """A config file path for the mock: None (default profile), an existing file, or a shipped profile name."""
    try:
        return resolve_profile(value)
    except MockStartError as error:
        raise EmbeddedTargetError(f"--embedded-config: {error}") from None


class EmbeddedTargets:
    """The mock processes this Locust process started, one per loopback endpoint, stopped at quit."""

    def __init__(self, environment: Environment | None = None) -> None:
        self.environment = environment
        self._owner_pid = os.getpid()  # a forked child must never stop its parent's mock
        self._started: dict[LoopbackEndpoint, Any] = {}
        self._watchdogs: dict[LoopbackEndpoint, gevent.Greenlet] = {}
        _LIVE.add(self)

    def ensure(self, host_url: str | None, mode: str, config: str | None) -> str | None:
        """Start a mock serving `host_url` when `mode` asks for it; returns its URL, or None if not started."""
        if mode == "off":
            return None
        endpoint = loopback_endpoint(host_url)
        if endpoint is None:
            if mode == "on":
                raise EmbeddedTargetError(
                    f"--embedded-target on: host {public_url(host_url) or ''!r} is not a plain-HTTP loopback URL; "
                    "use e.g. --host http://127.0.0.1:8000, or --embedded-target auto/off"
                )
            return None
        if mode == "auto" and endpoint != LoopbackEndpoint("127.0.0.1", DEFAULT_ENDPOINT_PORT):
            return None  # a host the user chose: load what listens there, or fail at the probe
        running = self._started.pop(endpoint, None)
        if running is not None:
            if running.returncode is None:
                self._started[endpoint] = running
                return endpoint.url
            running.stop()  # died earlier (the watchdog said so): clean up, then start afresh
        if not port_is_free(endpoint):
            if mode == "on":
                raise EmbeddedTargetError(
                    f"--embedded-target on: port {endpoint.port} on {endpoint.bind_host} is already in use; "
                    "stop what listens there, pick another --host port, or use --embedded-target auto"
                )
            logger.info("loadgate: %s is already in use; loading the server that listens there", endpoint.url)
            return None
        return self._start(endpoint, resolve_config(config))

    def _start(self, endpoint: LoopbackEndpoint, config: str | None) -> str:
        try:
            mock = start_mock(config, endpoint.bind_host, endpoint.port)
        except MockStartError as error:
            raise EmbeddedTargetError(f"embedded target on {endpoint.url} failed to start: {error}") from None
        self._started[endpoint] = mock
        self._watchdogs[endpoint] = gevent.spawn(_watch, endpoint, mock, self.environment)
        logger.info(
            "loadgate: embedded target started at %s (config: %s, pid %s)",
            endpoint.url,
            config or "default profile",
            mock.proc.pid if mock.proc else None,
        )
        return endpoint.url

    def stop_all(self) -> None:
        if os.getpid() != self._owner_pid:
            return
        gevent.killall(list(self._watchdogs.values()))
        self._watchdogs.clear()
        while self._started:
            endpoint, mock = self._started.popitem()
            mock.stop()
            logger.info("loadgate: embedded target at %s stopped", endpoint.url)


def _watch(endpoint: LoopbackEndpoint, mock: Any, environment: Environment | None = None) -> None:
    """Say so at once if the target dies mid-run, rather than leave only a wall of connection errors. A
    death while a test runs makes the run invalid: recorded as ``target_died`` in PREFIX_loadgate.json
    (the gate then gives no verdict, exit 2), the run stops, and Locust exits 2."""
    while mock.returncode is None:
        gevent.sleep(WATCHDOG_INTERVAL_S)
    last_words = mock.stderr().strip().splitlines()[-1:] or ["(no stderr)"]
    # Code 0 is a graceful stop: a signal reached it directly (e.g. Ctrl-C hits the whole process group).
    logger.log(
        logging.WARNING if mock.returncode == 0 else logging.ERROR,
        "loadgate: embedded target at %s exited unexpectedly (code %s): %s; requests to it now fail",
        endpoint.url,
        mock.returncode,
        last_words[0],
    )
    runner = environment.runner if environment is not None else None
    if runner is None or runner.state not in (STATE_SPAWNING, STATE_RUNNING):
        return
    assert environment is not None
    st = state(environment)
    started = st.meta.get("started_at")
    st.meta["target_died"] = {
        "url": endpoint.url,
        "exit_code": mock.returncode,
        "last_stderr": last_words[0][:300],
        "after_s": round(time.time() - started, 1) if isinstance(started, int | float) else None,
    }
    write_metadata(st)
    logger.error(
        "loadgate: error: no valid run: the embedded target at %s died (exit code %s: %s); stopping (exit 2)",
        endpoint.url,
        mock.returncode,
        last_words[0],
    )
    environment.process_exit_code = EXIT_BAD_INPUT
    options = environment.parsed_options
    gevent.spawn(runner.quit if options is not None and getattr(options, "headless", False) else runner.stop)


def _targets(environment: Environment) -> EmbeddedTargets:
    st = state(environment)
    if st.embedded is None:
        st.embedded = EmbeddedTargets(environment)
    return st.embedded


def _ensure_for_current_host(environment: Environment) -> None:
    """Raises EmbeddedTargetError; does nothing on workers or without parsed options (library use)."""
    options = environment.parsed_options
    if options is None or is_worker(environment):
        return
    try:
        mode = parse_value("--embedded-target", getattr(options, "embedded_target", None) or "off")
    except SettingError as error:
        raise EmbeddedTargetError(str(error)) from None
    _targets(environment).ensure(environment.host, mode, getattr(options, "embedded_config", None) or None)


@events.init.add_listener
def on_init(environment: Environment, **_kwargs: Any) -> None:
    try:
        _ensure_for_current_host(environment)
    except EmbeddedTargetError as error:
        # Bad input before anything ran: one line and a distinct exit code, never a traceback.
        logger.error("loadgate: error: %s", error)
        _targets(environment).stop_all()
        if isinstance(environment.runner, MasterRunner):
            release_workers(environment.runner, environment.parsed_options)
        sys.exit(EXIT_EMBEDDED_TARGET)


def release_workers(runner: MasterRunner, options: Any) -> None:
    """Tell workers to quit before the master exits early.

    `--processes` children are forked before `init` and would otherwise sit waiting for a master that is
    gone (Locust's own clean-up of them does not signal children still running). They connect within
    moments, so wait briefly for the expected ones, then send Locust's quit message to every worker.
    """
    deadline = time.monotonic() + WORKER_GRACE_S
    while runner.worker_count < getattr(options, "expect_workers", 0) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    runner.quit()


@events.test_start.add_listener
def on_test_start(environment: Environment, **_kwargs: Any) -> None:
    # The web UI form may have changed the host since init: serve the new one too if it qualifies.
    # Mid-session there is nothing to exit from: the error is logged and requests fail visibly.
    try:
        _ensure_for_current_host(environment)
    except EmbeddedTargetError as error:
        logger.error("loadgate: error: %s", error)


@events.quit.add_listener
def on_quit(**_kwargs: Any) -> None:
    # `quit` fires after the runner has stopped every user (`quitting` fires before, with users still
    # running when the web UI gets SIGTERM): stopping the target there would fail in-flight requests.
    stop_all_targets()


def stop_all_targets() -> None:
    """Stop every embedded target this process started (also run at interpreter exit, as a safety net)."""
    for targets in list(_LIVE):
        targets.stop_all()


atexit.register(stop_all_targets)
