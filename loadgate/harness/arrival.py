"""Open-loop arrival rate: --request-rate, --arrival, --burstiness, --max-concurrency.

In rate mode users are *executors*: between tasks a user does not think, it takes the next arrival of
its class from this process's queue, then a slot under the cap, and runs one task (one chat turn, one
job, one metadata request). A scheduler greenlet per process puts arrivals into the queues at the times
the arrival process gives (:mod:`loadgate.schedule`), whatever the responses take, so a slow target no
longer slows the load down (no coordinated omission). Each arrival's **schedule lag** is its actual
start minus its intended start: the time it waited in the queue (no free user of its class), under the
cap, or because the generator put it in late; the figures go to the LLM summary (achieved_rate,
schedule_lag_p50/p99/max, arrivals_waiting_at_stop) with the cause that dominated.

The rate is owned by the local runner or the master (:class:`Controller`): the total plan (a constant
rate, a stages timeline, or a capacity search step) is split across worker processes in proportion to
the users of each class they run, and re-split when that changes (a worker joins or leaves, users are
spawned): each worker gets its share by the custom message ``loadgate_rate`` (again when its
``loadgate_rate_ready`` says the first one may have come too early). The class weights
(--chat-weight... or a stage's weights) set each class's share of the rate.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event
from gevent.queue import Queue
from locust.exception import StopUser
from locust.runners import STATE_RUNNING, STATE_SPAWNING, MasterRunner, WorkerRunner

from loadgate.harness import locust_compat
from loadgate.harness.llm_stats import LAG_WARN_MS, ArrivalStats
from loadgate.harness.state import RunState, state
from loadgate.schedule import RatePlan, arrival_times
from loadgate.stages import RATE
from loadgate.workload import seeded_rng

logger = logging.getLogger("loadgate")

# Set on the local/master runner's parsed options at test start: Locust sends custom options to the
# workers with every spawn message, so a worker knows the run is open loop before its first user starts.
OPEN_LOOP_OPTION = "loadgate_open_loop"
RATE_MESSAGE = "loadgate_rate"
READY_MESSAGE = "loadgate_rate_ready"  # worker -> master: my rate handler is in place, (re)send my share
IN_FLIGHT_KEY = "loadgate_in_flight"  # a worker's requests in flight, in its reports to the master
SHARED_KEY = "loadgate_rate_shared"  # whether a worker holds a share of the rate, in its reports
PUSH_INTERVAL_S = 0.5


def open_loop(environment: Any) -> bool:
    st = state(environment)
    if st.settings.request_rate is not None or st.settings.find_capacity:
        return True
    return bool(getattr(environment.parsed_options, OPEN_LOOP_OPTION, False))


# -- one process: queues, cap, scheduler --------------------------------------------------------------


@dataclass
class Arrival:
    due: float  # time.monotonic() at which the schedule wants it started
    queued: float  # when the scheduler put it in the queue
    cap_full: bool  # the cap was full when it was queued (so any wait is the cap's)


class SlotCap:
    """A FIFO cap on tasks in flight; ``limit`` None is no cap. A released slot passes straight to the
    longest waiter."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.active = 0
        self._waiters: deque[Event] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def full(self) -> bool:
        return self.limit is not None and (self.active >= self.limit or bool(self._waiters))

    def acquire(self) -> None:
        if self.limit is None or (self.active < self.limit and not self._waiters):
            self.active += 1
            return
        event = Event()
        self._waiters.append(event)
        try:
            event.wait()
        except BaseException:
            if event.is_set():  # the slot was handed over just before the kill: give it back
                self.release()
            else:
                self._waiters.remove(event)
            raise

    def wake_all(self) -> None:
        """The run is stopping: every waiter wakes (and, seeing the stop, gives its slot back)."""
        while self._waiters:
            self.active += 1
            self._waiters.popleft().set()

    def release(self) -> None:
        if self._waiters and (self.limit is None or self.active <= self.limit):
            self._waiters.popleft().set()  # the slot passes on; active stays
            return
        self.active = max(0, self.active - 1)

    def set_limit(self, limit: int | None) -> None:
        self.limit = limit
        while self._waiters and (limit is None or self.active < limit):
            self.active += 1
            self._waiters.popleft().set()


@dataclass(frozen=True)
class RateConfig:
    """What one process generates: its share of the total plan, per user class."""

    plan: RatePlan  # the total plan of the run (all processes)
    origin: float  # this process's time.monotonic() at the plan's t = 0
    classes: dict[str, float]  # user class name -> this process's fraction of the total rate
    kind: str
    burstiness: float
    cap: int | None
    phase: float = 0.0
    seed: int | None = None  # --seed
    stream: str = ""  # which process and which of its plans: each its own sequence under --seed

    @property
    def share(self) -> float:
        return sum(self.classes.values())

    def rng(self) -> random.Random:
        """The random source of these arrivals' times and classes: under --seed they repeat run to run."""
        return seeded_rng(self.seed, "arrivals", self.stream)

    def to_message(self, drop: bool) -> dict[str, Any]:
        """This share as a worker receives it: the plan's t = 0 as time elapsed (clocks differ by process)."""
        return {
            "plan": self.plan.to_list(),
            "elapsed": time.monotonic() - self.origin,
            "classes": self.classes,
            "kind": self.kind,
            "burstiness": self.burstiness,
            "cap": self.cap,
            "phase": self.phase,
            "seed": self.seed,
            "stream": self.stream,
            "drop": drop,
        }

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> tuple[RateConfig, bool]:
        """A share sent by :meth:`to_message`, on this process's clock; and whether to drop the queue."""
        config = cls(
            RatePlan.from_list(data["plan"]),
            time.monotonic() - float(data["elapsed"]),
            {str(k): float(v) for k, v in data["classes"].items()},
            str(data["kind"]),
            float(data["burstiness"]),
            data["cap"],
            float(data["phase"]),
            data["seed"],
            str(data["stream"]),
        )
        return config, bool(data["drop"])


def class_picker(classes: dict[str, float], kind: str, rng: random.Random) -> Callable[[], str]:
    """The user class of each next arrival, in proportion to ``classes`` (name -> weight > 0 to count).
    Constant arrivals are interleaved evenly (smooth weighted round robin: 3:1 gives chat, chat, models,
    chat, ...; every window holds the weights' mix); random arrivals are thinned at random, which keeps
    each class's own arrivals Poisson (or gamma) as the whole stream is."""
    names = [n for n, f in classes.items() if f > 0]
    weights = [classes[n] for n in names]
    if len(names) == 1:
        return lambda: names[0]
    if kind != "constant":
        return lambda: rng.choices(names, weights)[0]
    credit, total = [0.0] * len(names), sum(weights)

    def interleaved() -> str:
        for i, weight in enumerate(weights):
            credit[i] += weight
        best = max(range(len(names)), key=credit.__getitem__)
        credit[best] -= total
        return names[best]

    return interleaved


class Dispatcher:
    """One process's arrivals: the scheduler greenlet, a queue per user class, the cap, the holders."""

    def __init__(self, stats: ArrivalStats) -> None:
        self.stats = stats
        self.config: RateConfig | None = None
        self.queues: dict[str, Queue] = {}
        self.cap = SlotCap()
        self.holders: set[int] = set()
        self.scheduler: Any = None
        self.stopping = False
        self.abandoned = 0  # executors killed at the stop while holding an arrival (waiting for the cap)
        self.idle: dict[str, int] = {}  # executors waiting for an arrival, per class

    @property
    def in_flight(self) -> int:
        return len(self.holders)

    def queue(self, name: str) -> Queue:
        if name not in self.queues:
            self.queues[name] = Queue()
        return self.queues[name]

    def configure(self, config: RateConfig, drop: bool = False) -> None:
        """A new share of the rate; ``drop``: the queued arrivals belong to a finished capacity step."""
        self.config = config
        self.cap.set_limit(config.cap)
        if drop:
            for q in self.queues.values():
                while not q.empty():
                    q.get_nowait()
        self._restart()

    def begin(self) -> None:
        """A test starts: empty queues, no holders; the scheduler (re)starts if a config arrived."""
        self.queues, self.holders, self.cap = {}, set(), SlotCap(self.config.cap if self.config else None)
        self.stopping, self.abandoned, self.idle = False, 0, {}
        self._restart()

    def end(self) -> int:
        """The run is stopping: no more arrivals; returns the arrivals still waiting (queued, or held by an
        executor waiting for the cap). Executors waiting for an arrival or a slot stop at once (StopUser),
        so Locust's graceful stop does not wait --stop-timeout for arrivals that will never come."""
        self.stopping = True
        if self.scheduler is not None:
            self.scheduler.kill(block=False)
            self.scheduler = None
        waiting = sum(q.qsize() for q in self.queues.values()) + self.cap.waiting
        for name, count in self.idle.items():
            for _ in range(count):
                self.queue(name).put(None)
        self.cap.wake_all()
        self.config = None
        return waiting

    def _restart(self) -> None:
        if self.scheduler is not None:
            self.scheduler.kill(block=False)
            self.scheduler = None
        if self.config is not None and self.config.share > 0 and not self.stopping:
            self.scheduler = gevent.spawn(self._schedule, self.config)

    def _schedule(self, config: RateConfig) -> None:
        rng = config.rng()
        pick = class_picker(config.classes, config.kind, rng)
        plan = config.plan.scaled(config.share)
        start_s = max(0.0, time.monotonic() - config.origin)
        for t in arrival_times(plan, config.kind, config.burstiness, rng, start_s, config.phase):
            due = config.origin + t
            delay = due - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            self.queue(pick()).put(Arrival(due, time.monotonic(), self.cap.full))
            self.stats.counters.due += 1

    def take(self, user: Any) -> None:
        """Block until the user's class has an arrival and the cap a slot; record the lag. StopUser once
        the run is stopping."""
        if self.stopping:
            raise StopUser()
        name = type(user).__name__
        self.idle[name] = self.idle.get(name, 0) + 1
        try:
            arrival: Arrival | None = self.queue(name).get()
        finally:
            self.idle[name] -= 1
        if arrival is None or self.stopping:
            raise StopUser()
        taken = time.monotonic()
        try:
            self.cap.acquire()
        except BaseException:
            if self.stopping:
                self.abandoned += 1
            raise
        if self.stopping:  # woken by the stop, not by a free slot
            self.cap.release()
            raise StopUser()
        started = time.monotonic()
        self.holders.add(id(user))
        late = max(0.0, arrival.queued - arrival.due)
        rest = max(0.0, started - max(arrival.queued, arrival.due))
        waited_for_cap = arrival.cap_full or started - taken > 0.0005
        # the request log: when this arrival was due (epoch s) and how late it starts
        user.pending_arrival = (time.time() - (started - arrival.due), max(0.0, started - arrival.due) * 1000)
        self.stats.record(
            (started - arrival.due) * 1000,
            {"late": late * 1000, "cap" if waited_for_cap else "executors": rest * 1000},
        )

    def release(self, user: Any) -> None:
        if id(user) in self.holders:
            self.holders.discard(id(user))
            self.cap.release()


def dispatcher(environment: Any) -> Dispatcher:
    st = state(environment)
    if st.dispatcher is None or st.dispatcher.stats is not st.llm.arrivals:
        st.dispatcher = Dispatcher(st.llm.arrivals)
    return st.dispatcher


# -- what the users call ---------------------------------------------------------------------------------


def take(user: Any) -> None:
    """The user's next arrival (blocks); a no-op if it already holds one."""
    d = dispatcher(user.environment)
    if id(user) not in d.holders:
        d.take(user)


def release(user: Any) -> None:
    dispatcher(user.environment).release(user)


def next_arrival(user: Any) -> None:
    """Done with the current arrival (task or chat turn); wait for the next one."""
    d = dispatcher(user.environment)
    d.release(user)
    d.take(user)


# -- the rate's owner: the local runner or the master ---------------------------------------------------


class Controller:
    """Splits the run's plan across the processes that run users and keeps the split current."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self.plan: RatePlan | None = None
        self.origin = time.monotonic()
        self.history: list[tuple[float, RatePlan]] = []  # (epoch of t = 0, plan), in order
        self.timeline: Any = None  # a rate Timeline (stages / profile), for its stage weights
        self.stage_weights: dict[str, int] | None = None
        self.sent: dict[str, tuple] = {}
        self.pushed = 0  # configurations sent in this test, for each one's --seed stream
        self.greenlet: Any = None
        self.in_flight: dict[str, int] = {}  # worker id -> its last reported requests in flight
        self.plan_ended_logged = False

    @property
    def st(self) -> RunState:
        return state(self.environment)

    def start(self) -> None:
        from loadgate.harness import profiles  # the shape's module (it imports this one's users)

        settings = self.st.settings
        stats = self.st.llm.arrivals
        stats.active, stats.requested, stats.max_concurrency = True, self.requested, settings.max_concurrency
        self.history, self.sent, self.in_flight, self.pushed = [], {}, {}, 0
        self.timeline = None
        if not settings.find_capacity:
            try:
                tl = profiles.timeline(self.environment)
            except Exception as e:  # a bad file was refused at init; an edit in the web UI lands here
                logger.error("loadgate: error: %s; running at --request-rate instead", e)
                tl = None
            if tl is not None and tl.kind == RATE:
                self.timeline = tl
                self.set_plan(tl.rate_plan())
            elif settings.request_rate is not None:
                self.set_plan(RatePlan.constant(settings.request_rate))
        self.greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None

    def set_plan(self, plan: RatePlan, drop: bool = False) -> None:
        """A new plan from now (a capacity step, or the run's start); ``drop`` the arrivals still queued."""
        self.plan, self.origin = plan, time.monotonic()
        self.history.append((time.time(), plan))
        self.push(force=True, drop=drop)

    def requested(self, t0: float, t1: float) -> float | None:
        """The offered rate averaged over the wall-clock window [t0, t1]."""
        if not self.history:
            return None
        t0 = max(t0, self.history[0][0])  # from the first plan on (the controller starts just after the test)
        if t1 <= t0:
            return None
        due = 0.0
        for i, (start, plan) in enumerate(self.history):
            end = self.history[i + 1][0] if i + 1 < len(self.history) else t1
            a, b = max(t0, start), min(t1, end)
            if b > a:
                due += plan.cumulative(b - start) - plan.cumulative(a - start)
        return due / (t1 - t0)

    # -- the split ---------------------------------------------------------------------------------------

    def class_weights(self) -> dict[str, float]:
        """Each rate-capable user class's weight (a stage's weights by class name or role first)."""
        out: dict[str, float] = {}
        w = self.stage_weights or {}
        for cls in self.environment.user_classes:
            if not getattr(cls, "loadgate_executor", False):
                continue  # a plain Locust user class runs closed loop beside the rate
            role = getattr(cls, "loadgate_role", "")
            out[cls.__name__] = float(w.get(cls.__name__, w.get(role, cls.weight)) if w else cls.weight)
        return out

    def nodes(self) -> dict[str, dict[str, int]]:
        """Users per class on each process that runs users: this one, or the master's workers."""
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            return {
                c.id: dict(c.user_classes_count)
                for c in runner.clients.values()
                if c.state in (STATE_RUNNING, STATE_SPAWNING, "ready")
            }
        return {"local": dict(runner.user_classes_count)} if runner is not None else {}

    def shares(self) -> dict[str, dict[str, float]]:
        """node -> class -> fraction of the total rate. A class's share is its weight over the weights of
        the classes that have users; within a class, each node's share follows its users of that class."""
        weights = {c: w for c, w in self.class_weights().items() if w > 0}
        nodes = self.nodes()
        if not nodes or not weights:
            return {}
        totals = {c: sum(n.get(c, 0) for n in nodes.values()) for c in weights}
        present = {c: w for c, w in weights.items() if totals[c] > 0}
        if not present:  # no users yet: an even split, by weight
            total_w = sum(weights.values())
            return {node: {c: w / total_w / len(nodes) for c, w in weights.items()} for node in nodes}
        total_w = sum(present.values())
        return {
            node: {c: w / total_w * counts.get(c, 0) / totals[c] for c, w in present.items()}
            for node, counts in nodes.items()
        }

    def push(self, force: bool = False, drop: bool = False) -> None:
        """Send each process its share when it changed (or ``force``)."""
        if self.plan is None:
            return
        settings = self.st.settings
        shares = self.shares()
        order = sorted(shares)
        for i, node in enumerate(order):
            classes = {c: round(f, 6) for c, f in shares[node].items()}
            share = sum(classes.values())
            cap = None
            if settings.max_concurrency is not None:
                cap = (
                    settings.max_concurrency
                    if len(order) == 1
                    else max(1, round(settings.max_concurrency * share))
                )
            key = (id(self.plan), tuple(sorted(classes.items())), cap, settings.arrival, settings.burstiness)
            if not force and self.sent.get(node) == key:
                continue
            self.sent[node] = key
            self.pushed += 1
            config = RateConfig(
                self.plan,
                self.origin,
                classes,
                settings.arrival,
                settings.burstiness,
                cap,
                i / len(order),
                settings.seed,
                f"{i}:{self.pushed}",
            )
            if node == "local":
                dispatcher(self.environment).configure(config, drop)
            else:
                self.environment.runner.send_message(RATE_MESSAGE, config.to_message(drop), client_id=node)
        for node in set(self.sent) - set(order):
            del self.sent[node]

    def total_in_flight(self) -> int:
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            live = {c.id for c in runner.clients.values()}
            return sum(n for worker, n in self.in_flight.items() if worker in live)
        return dispatcher(self.environment).in_flight

    def _loop(self) -> None:
        while True:
            gevent.sleep(PUSH_INTERVAL_S)
            if self.timeline is not None:
                span = self.timeline.at(time.monotonic() - self.origin)
                weights = span.weights if span is not None else None
                if weights != self.stage_weights:
                    self.stage_weights = weights
                    self.push(force=True)
            self.push()


def controller(environment: Any) -> Controller:
    st = state(environment)
    if st.rate is None:
        st.rate = Controller(environment)
    return st.rate


# -- lifecycle hooks (called by loadgate.harness.lifecycle) -------------------------------------------


def install(environment: Any) -> None:
    """At init: the rate message on workers; in-flight counts in the reports."""
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def on_rate(environment: Any, msg: Any, **_kw: Any) -> None:
            config, drop = RateConfig.from_message(msg.data)
            dispatcher(environment).configure(config, drop)
            state(environment).llm.arrivals.active = True

        def on_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
            d = dispatcher(environment)
            data[IN_FLIGHT_KEY], data[SHARED_KEY] = d.in_flight, d.config is not None

        runner.register_message(RATE_MESSAGE, on_rate)
        environment.events.report_to_master.add_listener(on_report)
        # A worker says it is ready before its init listeners run; a headless master can start the test
        # (and send the share) in between, and Locust drops a message nobody handles yet.
        runner.send_message(READY_MESSAGE)
    elif isinstance(runner, MasterRunner):

        def on_ready(environment: Any, msg: Any, **_kw: Any) -> None:
            rate = state(environment).rate
            if rate is not None:
                rate.sent.pop(msg.node_id, None)
                rate.push()

        runner.register_message(READY_MESSAGE, on_ready)

        def on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
            if IN_FLIGHT_KEY in data:
                controller(environment).in_flight[client_id] = int(data[IN_FLIGHT_KEY])
            # its share never arrived (or not yet): the next push resends it
            if data.get(SHARED_KEY) is False:
                controller(environment).sent.pop(client_id, None)

        environment.events.worker_report.add_listener(on_worker_report)


def on_test_start(environment: Any, is_open_loop: bool) -> None:
    if locust_compat.is_worker(environment):
        dispatcher(environment).begin()
        return
    if environment.parsed_options is not None:
        setattr(environment.parsed_options, OPEN_LOOP_OPTION, is_open_loop)
    dispatcher(environment).begin()
    if is_open_loop:
        controller(environment).start()


def on_test_stopping(environment: Any) -> None:
    """Before the users stop: no more arrivals; count the ones still waiting."""
    st = state(environment)
    if st.rate is not None:
        st.rate.stop()
    d = dispatcher(environment)
    waiting = d.end()
    st.llm.arrivals.counters.waiting_at_stop += waiting


def on_test_stop(environment: Any) -> None:
    d = dispatcher(environment)
    st = state(environment)
    st.llm.arrivals.counters.waiting_at_stop += d.abandoned
    d.abandoned = 0


def warn_if_late(environment: Any) -> str | None:
    """The end of a rate-mode run (local or master): a warning when lag p99 > 100 ms, naming the cause."""
    st = state(environment)
    arrivals = st.llm.arrivals
    if not arrivals.active:
        return None
    p99 = arrivals.percentile(0.99)
    if p99 is None or p99 <= LAG_WARN_MS:
        return None
    users = getattr(environment.parsed_options, "num_users", None)
    message = lag_warning(p99, arrivals.cause(), st.settings.max_concurrency, users)
    logger.warning(message)
    return message


def lag_warning(p99: float, cause: str | None, cap: int | None, users: int | None = None) -> str:
    head = f"loadgate: schedule lag p99 {p99:.0f} ms > {LAG_WARN_MS:.0f} ms: requests started late, the offered rate was not sent on time; cause: "
    if cause == "cap":
        return head + (
            f"the cap: arrivals waited for a slot under --max-concurrency {cap} (the target is slower than "
            "the rate allows at that concurrency)"
        )
    if cause == "executors":
        count = f" {users}" if users else ""
        return head + (
            f"the generator: all{count} users of a class were busy when arrivals were due (in rate mode users "
            "are the executors: raise --users above rate x latency)"
        )
    return head + (
        "the generator: it dispatched arrivals late (a CPU-bound load generator: add --processes or workers)"
    )
