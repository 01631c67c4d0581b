"""GET /metrics: the mock's Prometheus series (loadgate.mock.metrics), read with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import threading

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import chat_body, read_truth
from .test_load import fire, model

pytestmark = pytest.mark.timeout(60)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of one /metrics page (which must be Prometheus text)."""
    answer = requests.get(f"{url}/metrics", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def test_metrics_page_names_every_series_and_stays_out_of_the_truth_log(mock_server, tmp_path):
    truth = tmp_path / "truth.jsonl"
    mock = mock_server(
        config={"models": model(0, 0, 7), "capacity": {"slots": 3, "queue": 5}, "jobs": {"workers": 4}},
        truth_log=truth,
    )
    before = scrape(mock.url)
    assert before == {
        ("mock_requests_running", ()): 0.0,
        ("mock_requests_waiting", ()): 0.0,
        ("mock_slots_in_use", (("pool", "chat"),)): 0.0,
        ("mock_slots_in_use", (("pool", "jobs"),)): 0.0,
        ("mock_slots", (("pool", "chat"),)): 3.0,
        ("mock_slots", (("pool", "jobs"),)): 4.0,
        ("mock_tokens_generated_total", ()): 0.0,
        ("mock_requests_rejected_total", (("reason", "overloaded"),)): 0.0,
        ("mock_requests_rejected_total", (("reason", "rate_limited"),)): 0.0,
        ("mock_requests_rejected_total", (("reason", "queue_full"),)): 0.0,
    }
    for stream in (False, True):
        r = requests.post(f"{mock.url}/v1/chat/completions", json=chat_body("m", stream=stream), timeout=5)
        assert r.status_code == 200
    assert scrape(mock.url)[("mock_tokens_generated_total", ())] == 14.0
    mock.stop()
    paths = [row["path"] for row in read_truth(truth)]
    assert paths == ["/v1/chat/completions", "/v1/chat/completions"]  # the scrapes are not load


def test_running_waiting_and_rejected_follow_the_slots(mock_server):
    """slots 2 + queue 3 under 7 simultaneous slow requests: 2 running, 3 waiting, 2 rejected."""
    mock = mock_server(config={"models": model(1.0, 0, 1), "capacity": {"slots": 2, "queue": 3}})
    results: list = []
    sender = threading.Thread(
        target=lambda: results.extend(asyncio.run(fire(mock.url, [chat_body("m")] * 7))), daemon=True
    )
    sender.start()
    seen = {}
    for _ in range(100):  # until all 7 arrived (the rejected 2 are answered at once)
        seen = scrape(mock.url)
        if seen[("mock_requests_rejected_total", (("reason", "overloaded"),))] == 2.0:
            break
    sender.join(10)
    assert seen[("mock_requests_running", ())] == 2.0
    assert seen[("mock_requests_waiting", ())] == 3.0
    assert seen[("mock_slots_in_use", (("pool", "chat"),))] == 2.0
    assert sorted(status for status, _, _ in results) == [200] * 5 + [503] * 2
    after = scrape(mock.url)
    assert (after[("mock_requests_running", ())], after[("mock_requests_waiting", ())]) == (0.0, 0.0)
