"""Traffic that stops early: each user sends 3 requests, then stops, whatever the run time (issue 9: Locust's
_stats.csv then says 3 requests over ~0.1 s is tens of req/s; the measured window says 3 / 10 s)."""

from locust import FastHttpUser, constant, task
from locust.exception import StopUser

import loadgate.harness  # noqa: F401  (settings, LLM metrics, the run metadata with the measured window)


class ThreeRequestsUser(FastHttpUser):
    wait_time = constant(0.01)
    sent = 0

    @task
    def list_models(self) -> None:
        if self.sent >= 3:
            raise StopUser()
        self.sent += 1
        self.client.get("/v1/models")
