"""The environment every test subprocess (Locust, the job, the mock) runs with."""

from __future__ import annotations

import os


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment without Locust/loadgate settings or an API key, so a developer's
    shell cannot change a test's outcome, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGATE_", "LOCUST_"))}
    env.pop("OPENAI_API_KEY", None)
    env.update(extra)
    return env
