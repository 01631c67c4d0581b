"""The mock's own Prometheus metrics (GET /metrics), in a registry of its own (not prometheus_client's
global one), read from the live slot pools when scraped. Names in docs/mock.md ("Metrics")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest

if TYPE_CHECKING:
    from .engine import Slots

REJECT_REASONS = ("overloaded", "rate_limited", "queue_full")


class MockMetrics:
    """Gauges read from the chat slot pool and the job pool; counters bumped by the handlers."""

    content_type = "text/plain; version=0.0.4; charset=utf-8"  # the classic text format every scraper reads

    def __init__(self, chat: Slots, jobs: Slots) -> None:
        disable_created_metrics()  # no *_created series: a counter's creation time is noise in a run's CSV
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Gauge(
            "mock_requests_running", "Chat completions generating (holding a capacity slot)", registry=r
        ).set_function(lambda: chat.active)
        Gauge(
            "mock_requests_waiting", "Chat completions queued for a capacity slot", registry=r
        ).set_function(lambda: chat.queued)
        in_use = Gauge("mock_slots_in_use", "Slots held, per pool", ["pool"], registry=r)
        in_use.labels(pool="chat").set_function(lambda: chat.active)
        in_use.labels(pool="jobs").set_function(lambda: jobs.active)
        total = Gauge("mock_slots", "Slots configured, per pool", ["pool"], registry=r)
        total.labels(pool="chat").set(chat.slots)
        total.labels(pool="jobs").set(jobs.slots)
        self.tokens = Counter(
            "mock_tokens_generated", "Completion tokens generated (chat and jobs)", registry=r
        )
        self.rejected = Counter(
            "mock_requests_rejected",
            "Requests refused: overloaded (slots and queue full), rate_limited, queue_full (jobs)",
            ["reason"],
            registry=r,
        )
        for reason in REJECT_REASONS:  # every series present from the start, at 0
            self.rejected.labels(reason=reason)

    def reject(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()

    def page(self) -> bytes:
        return generate_latest(self.registry)
