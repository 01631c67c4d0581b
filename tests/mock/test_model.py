"""In-process checks of the simulation model: distributions, slot queue, rate-limit buckets, seeds."""

from __future__ import annotations

import asyncio
import random
import statistics

import pytest
import requests

from loadgate.mock.config import parse_config
from loadgate.mock.engine import Engine, Slots
from loadgate.mock.errors import APIError
from loadgate.mock.ratelimit import RateLimiter, duration

from .conftest import chat_body


def draws(spec, n: int = 20000, seed: int = 1) -> list[float]:
    model = parse_config({"models": {"m": {"ttft": spec}}}).models["m"]
    rng = random.Random(seed)
    return sorted(model.ttft.draw(rng) for _ in range(n))


def test_lognormal_matches_its_median_and_p95():
    values = draws({"median": 0.2, "p95": 0.8})
    assert statistics.median(values) == pytest.approx(0.2, rel=0.03)
    assert values[int(0.95 * len(values))] == pytest.approx(0.8, rel=0.05)


def test_uniform_fixed_and_clamps():
    values = draws({"distribution": "uniform", "min": 0.1, "max": 0.3})
    assert values[0] >= 0.1 and values[-1] <= 0.3
    assert statistics.mean(values) == pytest.approx(0.2, rel=0.02)
    assert set(draws(0.05, n=10)) == {0.05}
    assert set(draws({"distribution": "fixed", "value": 0.5}, n=10)) == {0.5}
    clamped = draws({"median": 1.0, "p95": 10.0, "min": 0.5, "max": 2.0})
    assert clamped[0] == 0.5 and clamped[-1] == 2.0


def test_plan_caps_length_at_max_tokens():
    config = parse_config({"models": {"m": {"output_tokens": 50}}})
    engine = Engine(config.capacity, random.Random(1))
    assert (
        engine.plan(config.models["m"], 10).tokens,
        engine.plan(config.models["m"], 10).finish_reason,
    ) == (10, "length")
    assert (
        engine.plan(config.models["m"], 50).tokens,
        engine.plan(config.models["m"], 50).finish_reason,
    ) == (50, "stop")
    assert engine.plan(config.models["m"], None).tokens == 50


def test_prefill_rate_adds_prompt_time_to_ttft():
    config = parse_config({"models": {"m": {"ttft": 0.1, "prefill_tokens_per_s": 1000}, "n": {"ttft": 0.1}}})
    engine = Engine(config.capacity, random.Random(1))
    assert engine.plan(config.models["m"], None, prompt_tokens=500).ttft == pytest.approx(0.6)
    assert engine.plan(config.models["n"], None, prompt_tokens=500).ttft == pytest.approx(0.1)


def test_slots_fifo_bounded_queue_and_abandon():
    async def scenario() -> list:
        slots = Slots(1, 2)
        first = slots.try_enter()
        a, b = slots.try_enter(), slots.try_enter()
        assert first is True and slots.try_enter() is None  # 1 running + 2 queued: full
        slots.abandon(a)  # a gives up its queue place before being served
        assert slots.queued == 1
        slots.release()  # the slot passes to b, not back to the pool
        assert b.done() and slots.active == 1
        slots.leave(b)
        return [slots.active, slots.queued]

    assert asyncio.run(scenario()) == [0, 0]


def test_token_bucket_refills_continuously():
    limiter = RateLimiter(parse_config({"rate_limits": {"requests_per_minute": 60}}).rate_limits)
    for _ in range(60):
        limiter.check("k", 1)
    with pytest.raises(APIError) as exc:
        limiter.check("k", 1)
    assert exc.value.status == 429 and exc.value.headers["retry-after"] == "1"
    bucket = limiter._buckets["k"][0]
    bucket.stamp -= 2.0  # two seconds later: two requests' worth refilled
    assert limiter.check("k", 1)["x-ratelimit-remaining-requests"] == "1"


def test_duration_format():
    assert [duration(0.02), duration(1.5), duration(360)] == ["20ms", "1.5s", "6m0s"]


@pytest.mark.timeout(60)
def test_seed_makes_draws_reproducible(mock_server):
    config = {"models": {"m": {"ttft": 0, "tokens_per_s": 0, "output_tokens": {"median": 50, "p95": 200}}}}

    def lengths(seed: int) -> list[int]:
        mock = mock_server(config={**config, "seed": seed})
        with requests.Session() as session:
            return [
                session.post(f"{mock.url}/v1/chat/completions", json=chat_body("m"), timeout=5).json()[
                    "usage"
                ]["completion_tokens"]
                for _ in range(10)
            ]

    first = lengths(11)
    assert lengths(11) == first and len(set(first)) > 3
    config = parse_config({**config, "seed": 11})

    def replay(seed: int) -> list[int]:
        engine = Engine(config.capacity, random.Random(seed))
        return [engine.plan(config.models["m"], None).tokens for _ in range(10)]

    assert replay(11) == first and replay(12) != first  # the server draws exactly the seeded sequence


def test_a_job_that_crashes_still_ends_failed(monkeypatch):
    from loadgate.mock.app import MockServer
    from loadgate.mock.jobs import AsyncJob
    from loadgate.mock.truthlog import Exchange

    async def scenario() -> tuple[AsyncJob, int]:
        server = MockServer(parse_config({"models": {"m": {"ttft": 0}}}))

        async def broken(*args, **kwargs):
            raise RuntimeError("boom")

        monkeypatch.setattr(server.jobs, "run_chat", broken)
        job = AsyncJob("req_1", "m", 0)
        server.jobs.pending = 1
        await server.jobs._run_async(job, None, Exchange("req_1", "POST", "job:async", 0.0))
        return job, server.jobs.pending

    job, pending = asyncio.run(scenario())
    assert job.status == "failed" and pending == 0
    assert job.error == {
        "message": "internal error: RuntimeError: boom",
        "type": "server_error",
        "param": None,
        "code": "server_error",
    }


@pytest.mark.parametrize("use_stdlib", [False, True])
def test_request_parsing_same_with_or_without_orjson(monkeypatch, use_stdlib):
    import json

    from loadgate.mock import validation

    if use_stdlib:
        monkeypatch.setattr(validation, "_loads", json.loads)
    assert validation.parse_json(b'{"model": "m", "n": 1}') == {"model": "m", "n": 1}
    for raw in (b'{"model": ', b"", b"[" * 5000 + b"]" * 5000, b"\xff\xfe{"):
        with pytest.raises(APIError) as exc:
            validation.parse_json(raw)
        assert exc.value.status == 400 and exc.value.code == "invalid_json"
