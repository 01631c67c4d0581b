"""Master/worker: LLM figures travel with Locust's own reports, and the final counts are exact.

Each worker ships its LLM rows and counters in Locust's ``report_to_master`` payload (key
:data:`REPORT_KEY`); the master merges them on ``worker_report``, as Locust does its own stats.

A headless master quits by sending "quit" and waiting a fixed 0.5 s for the workers' last reports; a
worker whose users take longer to stop (--stop-timeout) reports too late and its last requests are lost.
So before the master quits, it asks every running worker to stop its users and report (custom message
``loadgate_flush``), and waits for each ``loadgate_flushed`` answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from loadgate.harness import locust_compat
from loadgate.harness.state import state

logger = logging.getLogger("loadgate")

REPORT_KEY = "loadgate_llm"  # key of our payload in the worker -> master report
LAG_KEY = "loadgate_lag"  # the worker's event-loop lag, GC and CPU (loadgate.harness.monitor)
FLUSH, FLUSHED = "loadgate_flush", "loadgate_flushed"
REPORT_NOW, REPORTED = "loadgate_report_now", "loadgate_reported"
RESET = "loadgate_reset"  # master -> workers at the warm-up end: drop what is not reported yet


def install(environment: Any) -> None:
    """At init: the report listeners (bound to this environment: the events carry none) and the flush
    messages."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def on_report_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
            st = state(environment)
            data[REPORT_KEY] = st.llm.report()
            data[LAG_KEY] = st.monitor.report()

        def on_flush(environment: Any, msg: Any, **_kw: Any) -> None:
            runner.stop()  # fires test_stop, which sends the final report (see final_report)
            runner.send_message(FLUSHED)

        def on_report_now(environment: Any, msg: Any, **_kw: Any) -> None:
            locust_compat.send_worker_report(runner)  # ahead of the answer on the same connection
            runner.send_message(REPORTED, msg.data)  # {"token": ...}

        def on_reset(environment: Any, msg: Any, **_kw: Any) -> None:
            # the master reset its merged figures: what this worker has not reported yet is warm-up too
            runner.stats.reset_all()
            state(environment).llm.reset()

        environment.events.report_to_master.add_listener(on_report_to_master)
        runner.register_message(FLUSH, on_flush)
        runner.register_message(RESET, on_reset)
        runner.register_message(REPORT_NOW, on_report_now)
    elif isinstance(runner, MasterRunner):

        def on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
            st = state(environment)
            payload = data.get(REPORT_KEY)
            if payload is not None:
                st.llm.merge(payload)
            if LAG_KEY in data:
                st.monitor.merge(data[LAG_KEY])
            if st.capacity is not None:
                cancelled = int((payload or {}).get("counters", {}).get("cancelled", 0))
                st.capacity.report(client_id, data, cancelled)

        def on_heartbeat(client_id: str, timestamp: float, **_kw: Any) -> None:
            st = state(environment)
            if st.capacity is not None:
                st.capacity.seen(client_id, timestamp)

        def on_flushed(environment: Any, msg: Any, **_kw: Any) -> None:
            state(environment).flushed.add(msg.node_id)

        def on_reported(environment: Any, msg: Any, **_kw: Any) -> None:
            state(environment).reported.add((msg.node_id, str((msg.data or {}).get("token"))))

        def on_stopping(**_kw: Any) -> None:
            st = state(environment)
            if st.capacity is not None:  # the planned load ends here: count it up to this moment
                st.capacity.tick(time.time())

        environment.events.worker_report.add_listener(on_worker_report)
        environment.events.heartbeat_sent.add_listener(on_heartbeat)
        environment.events.test_stopping.add_listener(on_stopping)
        runner.register_message(FLUSHED, on_flushed)
        runner.register_message(REPORTED, on_reported)


def collect_reports(environment: Any, timeout_s: float = 5.0) -> None:
    """Master: every running worker reports now (its stats up to this moment are merged on return), so a
    capacity step's end splits the figures at one moment, not at each
    worker's next 3-second report. Waits at most ``timeout_s``."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    running = [c.id for c in runner.clients.all if c.state in (STATE_RUNNING, STATE_SPAWNING)]
    if not running:
        return
    st = state(environment)
    token = f"{time.monotonic():.6f}"
    for client_id in running:
        runner.send_message(REPORT_NOW, {"token": token}, client_id=client_id)
    expected = {(client_id, token) for client_id in running}
    deadline = time.monotonic() + timeout_s
    while not st.reported.issuperset(expected) and time.monotonic() < deadline:
        gevent.sleep(0.02)
    st.reported -= expected


def final_report(runner: WorkerRunner) -> None:
    """Worker at test_stop: the final report goes out before "client_stopped" (Locust sends it after)."""
    locust_compat.send_worker_report(runner)


def reset_workers(environment: Any) -> None:
    """Master at the warm-up end: every worker drops its unreported figures, as the master resets."""
    runner = environment.runner
    for client in runner.clients.all:
        if client.state in (STATE_RUNNING, STATE_SPAWNING):
            runner.send_message(RESET, client_id=client.id)


def flush_workers(environment: Any) -> list[str]:
    """Master at test_stop: every running worker stops its users and reports, within the stop timeout.
    Returns the workers that sent no final report in time."""
    runner = environment.runner
    running = [c.id for c in runner.clients.all if c.state in (STATE_RUNNING, STATE_SPAWNING)]
    if not running:
        return []  # a web UI stop already waited for the workers
    st = state(environment)
    st.flushed = set()
    for client_id in running:
        runner.send_message(FLUSH, client_id=client_id)
    deadline = time.monotonic() + (environment.stop_timeout or 0) + 10
    while not st.flushed.issuperset(running) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    unflushed = sorted(set(running) - st.flushed)
    if unflushed:
        logger.warning(
            "loadgate: %d worker(s) did not send their final report in time; their last requests "
            "are missing: %s",
            len(unflushed),
            ", ".join(unflushed),
        )
    return unflushed
