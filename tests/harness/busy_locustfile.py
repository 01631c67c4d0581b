"""A user whose task blocks the event loop (BUSY_MS of busy-waiting) or not, with loadgate's harness
loaded: the lag monitor must see the stall, and only then."""

import os
import time

from locust import User, constant, task

import loadgate.harness  # noqa: F401  (the lag monitor, the files)
from loadgate.harness.state import state

BUSY_S = float(os.environ.get("BUSY_MS", "0")) / 1000


class BusyUser(User):
    wait_time = constant(0.01)

    @task
    def work(self) -> None:
        start = time.perf_counter()
        while time.perf_counter() < start + BUSY_S:  # a blocking call in the loop: nothing else runs
            pass
        self.environment.events.request.fire(  # a row for the gate (a run with no request never passes)
            request_type="WORK", name="busy", response_time=(time.perf_counter() - start) * 1000,
            response_length=0, exception=None, context={},
        )  # fmt: skip
        state(self.environment).llm.counters.completed += 1  # the LLM row's request count (its min_requests)
