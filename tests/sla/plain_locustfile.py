"""Plain Locust users for the gate's tests (no loadgate plugin): rows with known shapes.

SLA_TEST_USERS picks the class: "mixed" (default), "fast" (only /fast), "phase" (only /phase), "idle" (no
requests).
"""

import os
import time

from locust import HttpUser, User, constant, task
from sla_test_names import QUOTED_NAME  # Locust puts this file's folder on sys.path


class MixedUser(HttpUser):
    wait_time = constant(0.02)

    @task(6)
    def fast(self) -> None:
        self.client.get("/fast")

    @task(2)
    def slow(self) -> None:
        self.client.get("/slow", name=QUOTED_NAME)

    @task(1)
    def fail(self) -> None:
        self.client.get("/fail")

    @task(1)
    def custom(self) -> None:
        # A row of a custom request type, as a gRPC or WebSocket user would log it.
        self.environment.events.request.fire(
            request_type="CUSTOM",
            name="queue.publish",
            response_time=7,
            response_length=0,
            exception=None,
            context={},
        )


class FastUser(HttpUser):
    wait_time = constant(0.02)

    @task
    def fast(self) -> None:
        self.client.get("/fast")


class PhaseUser(HttpUser):
    wait_time = constant(0.02)

    @task
    def phase(self) -> None:
        self.client.get("/phase")


class IdleUser(User):
    wait_time = constant(0.5)

    @task
    def nothing(self) -> None:
        time.sleep(0.01)


_ALL = {"mixed": MixedUser, "fast": FastUser, "phase": PhaseUser, "idle": IdleUser}
_CLASSES = [_ALL[os.environ.get("SLA_TEST_USERS", "mixed")]]
for _cls in set(_ALL.values()) - set(_CLASSES):
    _cls.abstract = True
