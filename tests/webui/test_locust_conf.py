"""`locust.conf` at the repo root: what `locust` with no arguments runs, and what overrides it."""

from __future__ import annotations

import pytest
from locust.argument_parser import parse_options

import loadgate.harness  # noqa: F401  (settings, LLM metrics, precision, final CSVs)

from .support import REPO


@pytest.fixture
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)
    for name in ("LOCUST_HOST", "LOCUST_WEB_PORT", "LOCUST_USERS", "LOADGATE_EMBEDDED_TARGET"):
        monkeypatch.delenv(name, raising=False)


def test_no_arguments_mean_web_ui_on_the_embedded_target_with_every_class(at_repo_root):
    options = parse_options(args=[])
    assert options.locustfile == "locustfiles/locustfile.py"  # ChatUser, BatchUser, ModelsUser
    assert options.host == "http://127.0.0.1:8000"
    assert options.embedded_target == "auto"
    assert options.headless is False
    assert (options.web_port, options.num_users, options.spawn_rate) == (8089, 10, 2)


def test_flags_and_environment_override_the_file(at_repo_root, monkeypatch):
    monkeypatch.setenv("LOCUST_HOST", "http://127.0.0.1:9999")
    monkeypatch.setenv("LOCUST_WEB_PORT", "18089")
    options = parse_options(args=["--headless", "-u", "3"])
    assert (options.host, options.web_port, options.headless, options.num_users) == (
        "http://127.0.0.1:9999",
        18089,
        True,
        3,
    )
