"""Figures over the last N seconds, from the cumulative stats Locust and loadgate keep.

Locust's rows are cumulative (a histogram and counts since the last reset). A :class:`Window` keeps
timestamped copies of them (:class:`Snapshot`) and diffs the newest against the one N seconds older: the
percentiles, rates and ratios of just that stretch of time. The headless progress line uses one per
``--progress-interval``, the web UI's LLM charts one per point (a sliding 10 s window). Works the same on
a local runner and on a master (whose rows are the merge of the workers' reports).

A reset (warm-up end, the web UI's Reset, a new test) zeroes the cumulative figures: the caller passes an
``epoch`` that changes with each reset (e.g. :attr:`LlmStats.window_start`), and a count that went down is
taken as a reset too. The window then restarts from zero at the reset.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from locust.stats import RequestStats, StatsEntry, calculate_response_time_percentile

from loadgate.contract import is_model_row

Key = tuple[str, str]  # (name, method), as RequestStats keys its entries


@dataclass
class Histogram:
    """A cumulative response-time histogram (bucket -> count) and the number of samples in it."""

    buckets: dict[int, int]
    count: int

    @classmethod
    def of(cls, entry: StatsEntry) -> Histogram:
        return cls(dict(entry.response_times), entry.num_requests - entry.num_none_requests)

    def minus(self, older: Histogram | None) -> Histogram:
        if older is None:
            return Histogram(dict(self.buckets), self.count)
        buckets = {k: n - older.buckets.get(k, 0) for k, n in self.buckets.items()}
        return Histogram({k: n for k, n in buckets.items() if n > 0}, self.count - older.count)

    def add(self, other: Histogram) -> None:
        for k, n in other.buckets.items():
            self.buckets[k] = self.buckets.get(k, 0) + n
        self.count += other.count

    def percentile(self, fraction: float) -> float | None:
        """The percentile of the samples in this histogram; None without samples."""
        if self.count <= 0 or not self.buckets:
            return None
        return float(calculate_response_time_percentile(self.buckets, self.count, fraction))


@dataclass
class Snapshot:
    at: float
    histograms: dict[Key, Histogram] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)


def snapshot(
    at: float, stats: RequestStats | None = None, counters: dict[str, float] | None = None
) -> Snapshot:
    """The cumulative figures now: every entry's histogram (no total row) and the given counters."""
    histograms = {key: Histogram.of(entry) for key, entry in (stats.entries.items() if stats else ())}
    return Snapshot(at, histograms, dict(counters or {}))


@dataclass
class Span:
    """What happened between two snapshots."""

    seconds: float
    histograms: dict[Key, Histogram]
    counters: dict[str, float]

    def merged(self, keys: Iterable[Key]) -> Histogram:
        total = Histogram({}, 0)
        for key in keys:
            if key in self.histograms:
                total.add(self.histograms[key])
        return total

    def percentile(self, method: str, fraction: float, name: str | None = None) -> float | None:
        """The percentile of one metric (e.g. TTFT) over every endpoint (not the per-model rows, whose
        samples the endpoint rows hold already), or over ``name`` only."""
        keys = [
            k
            for k in self.histograms
            if k[1] == method and (k[0] == name if name is not None else not is_model_row(k[0]))
        ]
        return self.merged(keys).percentile(fraction)

    def rate(self, counter: str) -> float | None:
        """A counter's increase per second over the span; None when the span has no length."""
        if self.seconds <= 0:
            return None
        return self.counters.get(counter, 0.0) / self.seconds


class Window:
    """Snapshots of the last ``horizon_s`` seconds (plus the one just before them), restarted at resets."""

    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self.snapshots: deque[Snapshot] = deque()
        self.epoch: Any = None

    def add(self, current: Snapshot, epoch: Any = None, epoch_at: float | None = None) -> None:
        """Record ``current``. A new ``epoch`` (or a count that went down) restarts the window from an
        empty snapshot at ``epoch_at`` (the reset time; default: now)."""
        if epoch != self.epoch or (self.snapshots and _went_down(self.snapshots[-1], current)):
            self.snapshots.clear()
            self.snapshots.append(Snapshot(min(epoch_at or current.at, current.at)))
            self.epoch = epoch
        elif not self.snapshots:
            self.snapshots.append(Snapshot(epoch_at if epoch_at is not None else current.at))
        self.snapshots.append(current)
        # keep one snapshot at or before the horizon, so a full window is always available once it exists
        while len(self.snapshots) > 2 and self.snapshots[1].at <= current.at - self.horizon_s:
            self.snapshots.popleft()

    def span(self, seconds: float | None = None) -> Span | None:
        """The newest snapshot minus the youngest one at least ``seconds`` (default: the horizon) older,
        or the oldest kept when the window is younger than that."""
        if len(self.snapshots) < 2:
            return None
        newest = self.snapshots[-1]
        horizon = newest.at - (self.horizon_s if seconds is None else seconds)
        base = self.snapshots[0]
        for snap in list(self.snapshots)[:-1]:
            if snap.at <= horizon:
                base = snap
            else:
                break
        return _diff(newest, base)

    def last_step(self) -> Span | None:
        """The newest snapshot minus the one before it."""
        if len(self.snapshots) < 2:
            return None
        return _diff(self.snapshots[-1], self.snapshots[-2])


def _diff(newest: Snapshot, base: Snapshot) -> Span:
    histograms = {key: hist.minus(base.histograms.get(key)) for key, hist in newest.histograms.items()}
    counters = {name: value - base.counters.get(name, 0.0) for name, value in newest.counters.items()}
    return Span(newest.at - base.at, histograms, counters)


def _went_down(older: Snapshot, newer: Snapshot) -> bool:
    if any(newer.counters.get(name, 0.0) < value for name, value in older.counters.items()):
        return True
    return any(
        key not in newer.histograms or newer.histograms[key].count < hist.count
        for key, hist in older.histograms.items()
    )
