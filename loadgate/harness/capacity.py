"""Lost capacity on a master: a worker lost mid-run is named, its share of the planned load measured, and
the run fails unless ``--allow-lost-workers`` accepts it.

A worker is lost when, while the test runs, Locust marks it missing (no heartbeat for ~3 s: killed, hung,
its host or network gone) or it leaves (quit, stopped), and it does not come back; or when it sends no
final report at the stop. Its users stop generating load and its requests since its last report (every
~3 s) are in no CSV. Locust's rebalancing is switched on (:func:`enable_rebalancing`), so the remaining
workers take over its users; the watch measures what was missing meanwhile:

- planned user-seconds: the integral of the target user count over the measured window;
- missing user-seconds: from the lost worker's last sign of life, its users until Locust noticed, then
  the shortfall of running users against the target until the run ends (or the load is restored).

Everything goes to ``PREFIX_loadgate.json`` (``lost_workers``, ``planned_user_seconds``,
``missing_user_seconds``, ``missing_user_seconds_share``, ``allow_lost_workers``, ``workers_reported``)
where the gate fails the run on it; the process exits 1 (Locust's ``process_exit_code``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import gevent
from locust.runners import STATE_MISSING, STATE_RUNNING, STATE_SPAWNING, MasterRunner

from loadgate.contract import EXIT_BREACH
from loadgate.harness.state import state

logger = logging.getLogger("loadgate")

TICK_S = 0.5
ACTIVE = (STATE_RUNNING, STATE_SPAWNING)


@dataclass
class WorkerRecord:
    """What the master knows of one worker during a test."""

    id: str
    index: int | None
    last_seen: float
    users: int = 0  # users it ran at the last tick while alive
    requests: int = 0  # Locust requests it reported (since the window start)
    failures: int = 0
    cancelled: int = 0  # requests its users had in flight at the stop (loadgate's count)
    lost_at: float | None = None  # its last sign of life, once lost
    detected_at: float | None = None
    users_lost: int = 0
    reason: str = ""

    def as_dict(self, started_at: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "index": self.index,
            "reason": self.reason,
            "users": self.users_lost,
            "lost_at": round(self.lost_at, 3) if self.lost_at is not None else None,
            "lost_after_s": round(self.lost_at - started_at, 1) if self.lost_at is not None else None,
            "reported_requests": self.requests,
            "reported_failures": self.failures,
            "reported_cancelled": self.cancelled,
        }


def enable_rebalancing(environment: Any) -> None:
    """A master moves a lost worker's users onto the remaining workers (Locust's --enable-rebalancing)."""
    options = environment.parsed_options
    if options is not None and isinstance(environment.runner, MasterRunner):
        options.enable_rebalancing = True


class CapacityWatch:
    """Samples the master's workers every :data:`TICK_S` while the test runs."""

    def __init__(self, environment: Any, started_at: float) -> None:
        self.environment = environment
        self.started_at = started_at
        self.workers: dict[str, WorkerRecord] = {}
        self.planned = 0.0
        self.missing = 0.0
        self.last_tick = started_at
        self.greenlet = gevent.spawn(self._run)

    # -- signs of life (master listeners) ------------------------------------------------------------

    def seen(self, client_id: str, now: float | None = None) -> WorkerRecord:
        now = now or time.time()
        record = self.workers.get(client_id)
        if record is None:
            record = self.workers[client_id] = WorkerRecord(client_id, self._index(client_id), now)
        if record.lost_at is None:
            record.last_seen = now
        return record

    def report(self, client_id: str, data: dict[str, Any], cancelled: int) -> None:
        """A worker's stats report: what it adds to the merged figures (a lost worker's late one too)."""
        record = self.workers.get(client_id) or self.seen(client_id)
        if record.lost_at is None:
            record.last_seen = time.time()
        total = data.get("stats_total") or {}
        record.requests += int(total.get("num_requests", 0))
        record.failures += int(total.get("num_failures", 0))
        record.cancelled += cancelled

    def reset(self, now: float) -> None:
        """The warm-up reset: the measured window starts now."""
        self.planned = self.missing = 0.0
        self.last_tick = now
        for record in self.workers.values():
            record.requests = record.failures = record.cancelled = 0

    # -- sampling ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            gevent.sleep(TICK_S)
            self.tick(time.time())

    def tick(self, now: float) -> None:
        runner = self.environment.runner
        running = runner.state in ACTIVE
        dt, self.last_tick = max(0.0, now - self.last_tick), now
        alive = {c.id: c for c in runner.clients.values() if c.state != STATE_MISSING}
        for client_id, client in alive.items():
            record = self.workers.get(client_id)
            if record is None:  # a new worker: its heartbeats and reports keep last_seen from now on
                record = self.seen(client_id, now)
            if record.lost_at is not None:
                logger.warning("loadgate: worker %s is back (self-healed); not counted as lost", client_id)
                record.lost_at = record.detected_at = None
                record.reason = ""
                record.last_seen = now
            record.users = client.user_count
        if not running:
            return
        for record in self.workers.values():
            if record.lost_at is None and record.id not in alive:
                gone = runner.clients.get(record.id)
                self._lose(record, "no heartbeat" if gone is not None else "left the run", now)
        target = runner.target_user_count or 0
        self.planned += target * dt
        if self.lost():
            actual = sum(c.user_count for c in alive.values())
            self.missing += max(0, target - actual) * dt

    def _lose(self, record: WorkerRecord, reason: str, now: float) -> None:
        record.lost_at, record.detected_at, record.reason = record.last_seen, now, reason
        record.users_lost = record.users
        # Locust counted its users as running until it noticed; they were not
        self.missing += record.users * max(0.0, now - record.last_seen)
        logger.error(
            "loadgate: worker %s (index %s) lost mid-run (%s) %.1f s into the run with %d users; its "
            "requests since its last report are missing%s",
            record.id,
            record.index,
            reason,
            record.last_seen - self.started_at,
            record.users,
            "; rebalancing its users onto the remaining workers" if self._others_alive(record) else "",
        )

    def _others_alive(self, lost: WorkerRecord) -> bool:
        return any(r.lost_at is None for r in self.workers.values() if r is not lost)

    def _index(self, client_id: str) -> int | None:
        try:
            return int(self.environment.runner.get_worker_index(client_id))
        except Exception:  # an unknown id: Locust raises on some versions
            return None

    def lost(self) -> list[WorkerRecord]:
        return [r for r in self.workers.values() if r.lost_at is not None]

    # -- the end ---------------------------------------------------------------------------------------

    def finish(self, environment: Any, now: float, unflushed: list[str]) -> None:
        """At test stop (after the workers' final reports): workers that sent none are lost too; write the
        record into the run metadata and fail the run unless --allow-lost-workers accepts it."""
        self.greenlet.kill(block=False)
        for client_id in unflushed:
            record = self.workers.get(client_id) or self.seen(client_id)
            if record.lost_at is None:
                record.lost_at, record.detected_at, record.reason = record.last_seen, now, "no final report"
                record.users_lost = record.users
        st = state(environment)
        lost = self.lost()
        share = (self.missing / self.planned) if self.planned > 0 else (1.0 if lost else 0.0)
        # rounded once: the log line, the file and the gate's clause show the same figure
        share = round(min(1.0, share), 4)
        st.meta.update(
            {
                "lost_workers": [
                    r.as_dict(self.started_at) for r in sorted(lost, key=lambda r: r.lost_at or 0)
                ],
                "planned_user_seconds": round(self.planned, 1),
                "missing_user_seconds": round(min(self.missing, self.planned), 1),
                "missing_user_seconds_share": share,
                "allow_lost_workers": st.settings.allow_lost_workers,
                "workers_reported": {
                    r.id: {"requests": r.requests, "failures": r.failures, "cancelled": r.cancelled}
                    for r in self.workers.values()
                },
            }
        )
        if not lost:
            return
        names = ", ".join(f"{r.id} ({r.reason})" for r in lost)
        if st.settings.allow_lost_workers:
            logger.warning(
                "loadgate: lost %d worker(s): %s; %.1f%% of the planned user-seconds missing; accepted by "
                "--allow-lost-workers",
                len(lost),
                names,
                share * 100,
            )
            return
        logger.error(
            "loadgate: lost %d worker(s): %s; %.1f%% of the planned user-seconds missing; the run fails "
            "(exit 1; --allow-lost-workers accepts it)",
            len(lost),
            names,
            share * 100,
        )
        environment.process_exit_code = max(environment.process_exit_code or 0, EXIT_BREACH)


def start(environment: Any, started_at: float) -> None:
    st = state(environment)
    if st.capacity is not None:
        st.capacity.greenlet.kill(block=False)
    st.capacity = CapacityWatch(environment, started_at)
