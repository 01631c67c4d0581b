"""Fixtures: the third-party servers, installed once per machine into their own venv, started once per
session on loopback. Where they cannot be installed the tests skip, naming why, except in CI
(CI=true), where that is a failure."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from . import servers


def _unavailable(why: str) -> None:
    message = f"third-party servers unavailable: {why}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: these tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def thirdparty_venv() -> None:
    try:
        servers.ensure_venv()
    except servers.Unavailable as e:
        _unavailable(str(e))


@pytest.fixture
def litellm(thirdparty_venv, tmp_path_factory) -> Iterator[servers.Server]:
    """One proxy per test: a proxy that died in one test (seen once in CI, under load) must not fail the next."""
    try:
        server = servers.start_litellm(tmp_path_factory.mktemp("litellm"))
    except servers.Unavailable as e:
        _unavailable(str(e))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fakellm(thirdparty_venv, tmp_path_factory) -> Iterator[servers.Server]:
    try:
        server = servers.start_fakellm(tmp_path_factory.mktemp("fakellm"))
    except servers.Unavailable as e:
        _unavailable(str(e))
    yield server
    server.stop()
