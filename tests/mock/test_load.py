"""Capacity, queueing, continuous-batching slowdown and per-key rate limits under concurrent load."""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp
import pytest
import requests

from .conftest import chat_body, read_truth

pytestmark = pytest.mark.timeout(60)


async def fire(url: str, bodies: list[dict]) -> list[tuple[int, float, dict | str]]:
    """Send all bodies at once; return (status, seconds, body) per request."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(body: dict):
            started = time.monotonic()
            async with session.post(f"{url}/v1/chat/completions", json=body) as r:
                data = await r.json() if not body.get("stream") else await r.text()
                return r.status, time.monotonic() - started, data

        return await asyncio.gather(*(one(b) for b in bodies))


def model(ttft: float, tokens_per_s: float, tokens: int) -> dict:
    return {"m": {"ttft": ttft, "tokens_per_s": tokens_per_s, "output_tokens": tokens}}


@pytest.mark.parametrize("overload_status", [503, 429])
def test_requests_beyond_slots_plus_queue_are_rejected(mock_server, overload_status):
    mock = mock_server(
        config={
            "models": model(0.3, 0, 1),
            "capacity": {"slots": 2, "queue": 2, "overload_status": overload_status},
        }
    )
    results = asyncio.run(fire(mock.url, [chat_body("m")] * 8))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * 4 + [overload_status] * 4
    error = next(body for status, _, body in results if status != 200)["error"]
    assert "capacity.slots + capacity.queue" in error["message"]
    assert error["code"] == ("overloaded" if overload_status == 503 else "rate_limit_exceeded")
    # the queued pair waited one ttft for a slot: ~0.6 s instead of ~0.3 s
    served = sorted(seconds for status, seconds, _ in results if status == 200)
    assert served[0] < 0.5 and served[-1] >= 0.55


def test_queue_wait_counts_in_time_to_first_token(mock_server, tmp_path):
    truth = tmp_path / "truth.jsonl"
    mock = mock_server(
        config={"models": model(0.2, 0, 2), "capacity": {"slots": 1, "queue": 10}}, truth_log=truth
    )
    asyncio.run(fire(mock.url, [chat_body("m", stream=True)] * 3))
    mock.stop()
    ttfts = sorted(row["t_first_token"] - row["t_received"] for row in read_truth(truth))
    assert ttfts[0] == pytest.approx(0.2, abs=0.08)
    assert ttfts[1] == pytest.approx(0.4, abs=0.1)
    assert ttfts[2] == pytest.approx(0.6, abs=0.12)


def test_latency_rises_with_concurrency(mock_server, tmp_path):
    truth = tmp_path / "truth.jsonl"
    mock = mock_server(
        config={
            "models": model(0.01, 100, 20),
            "seed": 1,
            "capacity": {"slots": 64, "queue": 64, "batching_slowdown": 0.05},
        },
        truth_log=truth,
    )
    low = [
        seconds
        for _ in range(3)
        for _, seconds, _ in asyncio.run(fire(mock.url, [chat_body("m", stream=True)]))
    ]
    high = [seconds for _, seconds, _ in asyncio.run(fire(mock.url, [chat_body("m", stream=True)] * 40))]
    # alone: 0.01 + 19 / 100 = 0.2 s; 40 active: per-token time x (1 + 0.05 x 39) = x2.95 -> ~0.57 s
    assert statistics.mean(low) == pytest.approx(0.2, abs=0.06)
    assert statistics.mean(high) > 1.8 * statistics.mean(low)
    mock.stop()
    rows = read_truth(truth)
    itl = [(r["t_last_token"] - r["t_first_token"]) / 19 for r in rows]
    assert min(itl[3:]) > 1.5 * max(itl[:3])  # the server's own record agrees


def test_request_rate_limit_per_key(mock_server):
    mock = mock_server(config={"models": model(0, 0, 1), "rate_limits": {"requests_per_minute": 3}})
    url = f"{mock.url}/v1/chat/completions"
    alice = {"Authorization": "Bearer sk-alice"}
    answers = [requests.post(url, json=chat_body("m"), headers=alice, timeout=5) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining-requests"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["x-ratelimit-limit-requests"] == "3" for a in answers)
    limited = answers[-1]
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert limited.json()["error"]["type"] == "requests"
    assert 1 <= int(limited.headers["Retry-After"]) <= 20  # one request refills in 60 / 3 = 20 s
    assert limited.headers["x-ratelimit-reset-requests"].endswith("s")
    queued = requests.post(f"{url}/async", json=chat_body("m"), headers=alice, timeout=5)
    assert queued.status_code == 429 and "Retry-After" in queued.headers  # async submits share the budget
    bob = requests.post(
        f"{url}/async", json=chat_body("m"), headers={"Authorization": "Bearer sk-bob"}, timeout=5
    )
    assert bob.status_code == 202 and bob.headers["x-ratelimit-remaining-requests"] == "2"  # own budget


def test_token_rate_limit(mock_server):
    mock = mock_server(config={"models": model(0, 0, 1), "rate_limits": {"tokens_per_minute": 100}})
    url = f"{mock.url}/v1/chat/completions"
    first = requests.post(url, json=chat_body("m", max_tokens=50), timeout=5)  # 7 prompt + 50 = 57
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-tokens"] == "100"
    assert first.headers["x-ratelimit-remaining-tokens"] == "43"
    second = requests.post(url, json=chat_body("m", max_tokens=50), timeout=5)
    assert second.status_code == 429
    assert second.json()["error"]["type"] == "tokens"
    assert int(second.headers["Retry-After"]) >= 1
    too_big = requests.post(url, json=chat_body("m", max_tokens=500), timeout=5)
    assert too_big.status_code == 429 and "Request too large" in too_big.json()["error"]["message"]
