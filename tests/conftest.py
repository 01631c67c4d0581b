"""Shared fixtures for every test area."""

from __future__ import annotations

import pytest

from loadgate.mock.process import MockProcess


@pytest.fixture
def mock_server():
    """Factory: `mock_server(config=..., truth_log=..., env=...)` -> a started MockProcess (`.url`).

    Every mock started through it is stopped at teardown, even when the test fails.
    """
    started: list[MockProcess] = []

    def start(config=None, truth_log=None, **kwargs) -> MockProcess:
        mock = MockProcess(config=config, truth_log=truth_log, **kwargs)
        started.append(mock)
        return mock.start()

    yield start
    for mock in reversed(started):
        mock.stop()
