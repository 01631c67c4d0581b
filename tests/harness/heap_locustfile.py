"""Users that hold a heap, as real ones do (session, pool, buffers), and grow it while they run: with
loadgate's harness loaded, the collector must leave both out of its way (no collection in the run)."""

import os

from locust import User, constant, task

import loadgate.harness  # noqa: F401  (the monitor: freeze at the start, again once users are spawned)
from loadgate.harness.state import state

AT_START = int(os.environ.get("HEAP_AT_START", "0"))  # tracked objects each user holds once built
PER_TASK = int(os.environ.get("HEAP_PER_TASK", "0"))  # and adds with each task


class HeapUser(User):
    wait_time = constant(0.1)

    def __init__(self, environment) -> None:  # (as a FastHttpUser builds its session: while spawning)
        super().__init__(environment)
        self.held = [[] for _ in range(AT_START)]

    @task
    def grow(self) -> None:
        self.held.extend([] for _ in range(PER_TASK))
        self.environment.events.request.fire(  # a row for the gate
            request_type="WORK", name="heap", response_time=1.0, response_length=0, exception=None, context={}
        )
        state(self.environment).llm.counters.completed += 1
