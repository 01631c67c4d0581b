"""Fixtures for the mock's own tests: fast profiles and a session-wide default mock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgate.mock.process import MockProcess

FAST_MODELS = {
    "loadgate-small": {"ttft": 0.005, "tokens_per_s": 1000, "output_tokens": 8},
    "loadgate-large": {
        "ttft": 0.01,
        "tokens_per_s": 500,
        "output_tokens": {"median": 20, "p95": 40, "max": 64},
    },
}


def fast_config(**sections) -> dict:
    """A quick profile (tiny latencies) plus the given top-level sections."""
    return {"models": FAST_MODELS, "seed": 7, **sections}


def read_truth(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def fast_mock(tmp_path_factory):
    """One fast mock shared by a module's read-only tests (truth log in the module's tmp dir)."""
    truth = tmp_path_factory.mktemp("truth") / "truth.jsonl"
    with MockProcess(config=fast_config(), truth_log=truth) as mock:
        mock.truth_path = truth
        yield mock


def chat_body(model: str = "loadgate-small", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Say hello to the load test."}], **extra}
