"""Distributed-run test locustfile: each request carries its worker's pid in X-Request-Id, so the mock's
truth log tells how many requests each worker sent."""

import itertools
import os

from locust import FastHttpUser, constant, task

import loadgate.harness  # noqa: F401  (settings, LLM metrics, precision, final CSVs)

_sequence = itertools.count()


class ModelsUser(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def list_models(self) -> None:
        self.client.get("/v1/models", headers={"X-Request-Id": f"{os.getpid()}-{next(_sequence)}"})
