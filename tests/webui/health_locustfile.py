"""A minimal locustfile for the embedded-target tests: only loadgate.embedded, one cheap request."""

from locust import FastHttpUser, constant, task

import loadgate.harness  # noqa: F401  (the embedded target)


class HealthUser(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def health(self) -> None:
        self.client.get("/health")
