"""Test locustfile: one plain user plus the profile shape, imported exactly as locustfiles/ does."""

from locust import FastHttpUser, constant, task

from loadgate.harness.profiles import LoadProfileShape  # noqa: F401  (Locust picks it; inert without --profile)


class PingUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def ping(self) -> None:
        self.client.get("/ping")
