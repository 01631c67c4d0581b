"""Open-loop arrival schedules: when each request of a rate-mode run is due. Pure math, no Locust.

A :class:`RatePlan` is the offered request rate over time, piecewise linear (a constant rate, a k6-style
ramp, a step). Its integral ``Λ(t)`` counts the requests due by ``t``. Arrival times are
``Λ⁻¹(S₁), Λ⁻¹(S₂), ...`` where ``S`` are the partial sums of independent increments of mean 1
(the time-rescaling of a renewal process, so a ramp keeps the arrival process's shape):

- ``constant``: every increment is 1 (evenly spaced, 1/rate apart);
- ``poisson``: exponential increments (independent arrivals; inter-arrival times exponential);
- ``gamma``: gamma increments of shape ``burstiness`` and mean 1 (coefficient of variation
  1/sqrt(burstiness): below 1 burstier than Poisson, above 1 smoother; 1 is Poisson), as vLLM's
  ``bench serve --burstiness``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

ARRIVALS = ("constant", "poisson", "gamma")


@dataclass(frozen=True)
class Segment:
    """The rate over ``[start_s, end_s)``: linear from ``rate_from`` to ``rate_to`` (req/s)."""

    start_s: float
    end_s: float  # math.inf: the segment never ends (then rate_to == rate_from)
    rate_from: float
    rate_to: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def rate_at(self, t: float) -> float:
        if math.isinf(self.end_s) or self.duration_s <= 0:
            return self.rate_from
        return self.rate_from + (self.rate_to - self.rate_from) * (t - self.start_s) / self.duration_s

    def area(self, until: float | None = None) -> float:
        """Requests due from the segment's start to ``until`` (default: its end)."""
        end = self.end_s if until is None else min(until, self.end_s)
        if end <= self.start_s:
            return 0.0
        if math.isinf(end):
            return math.inf if self.rate_from > 0 else 0.0
        return (self.rate_from + self.rate_at(end)) / 2 * (end - self.start_s)

    def time_of(self, y: float) -> float:
        """The time at which ``y`` (0 < y <= area) requests of this segment are due."""
        r0 = self.rate_from
        if math.isinf(self.end_s) or self.rate_to == r0:
            return self.start_s + y / r0
        k = (self.rate_to - r0) / (2 * self.duration_s)  # area(τ) = r0 τ + k τ²
        root = math.sqrt(max(0.0, r0 * r0 + 4 * k * y))
        return min(self.end_s, self.start_s + 2 * y / (r0 + root))


@dataclass(frozen=True)
class RatePlan:
    """Contiguous segments from t = 0; after the last one ends (if it does) nothing more is due."""

    segments: tuple[Segment, ...]

    def __post_init__(self) -> None:
        at = 0.0
        for s in self.segments:
            if s.start_s != at or s.end_s < s.start_s or s.rate_from < 0 or s.rate_to < 0:
                raise ValueError(f"segments must be contiguous from 0 with rates >= 0: {self.segments}")
            at = s.end_s

    @classmethod
    def constant(cls, rate: float) -> RatePlan:
        return cls((Segment(0.0, math.inf, float(rate), float(rate)),))

    @property
    def end_s(self) -> float:
        return self.segments[-1].end_s if self.segments else 0.0

    def rate_at(self, t: float) -> float | None:
        """The offered rate at ``t``; None once the plan has ended."""
        for s in self.segments:
            if s.start_s <= t < s.end_s:
                return s.rate_at(t)
        return None

    def cumulative(self, t: float) -> float:
        """Λ(t): requests due from 0 to t."""
        return sum(s.area(t) for s in self.segments if s.start_s < t)

    def mean_rate(self, t0: float, t1: float) -> float | None:
        """The offered rate averaged over [t0, t1] (None for an empty interval)."""
        if t1 <= t0:
            return None
        return (self.cumulative(t1) - self.cumulative(t0)) / (t1 - t0)

    def time_of(self, x: float) -> float | None:
        """Λ⁻¹(x): the earliest time by which x requests are due; None when the plan ends first."""
        left = x
        for s in self.segments:
            area = s.area()
            if area >= left and area > 0:
                return s.time_of(left)
            left -= area
        return None

    def scaled(self, factor: float) -> RatePlan:
        return RatePlan(
            tuple(
                Segment(s.start_s, s.end_s, s.rate_from * factor, s.rate_to * factor) for s in self.segments
            )
        )

    def to_list(self) -> list[list[float | None]]:
        """JSON-safe (an endless segment ends at null), for messages to workers."""
        return [
            [s.start_s, None if math.isinf(s.end_s) else s.end_s, s.rate_from, s.rate_to]
            for s in self.segments
        ]

    @classmethod
    def from_list(cls, data: list[list[float | None]]) -> RatePlan:
        return cls(
            tuple(
                Segment(
                    float(a or 0.0), math.inf if b is None else float(b), float(r0 or 0.0), float(r1 or 0.0)
                )
                for a, b, r0, r1 in data
            )
        )


def increments(kind: str, burstiness: float, rng: random.Random) -> Iterator[float]:
    """Endless increments of mean 1 in Λ-space (see the module docstring)."""
    if kind not in ARRIVALS:
        raise ValueError(f"unknown arrival process {kind!r}; choose one of {', '.join(ARRIVALS)}")
    if kind == "gamma" and not burstiness > 0:
        raise ValueError(f"burstiness must be > 0 (got {burstiness!r})")
    while True:
        if kind == "constant":
            yield 1.0
        elif kind == "poisson" or burstiness == 1.0:
            yield rng.expovariate(1.0)
        else:
            yield rng.gammavariate(burstiness, 1.0 / burstiness)


def arrival_times(
    plan: RatePlan,
    kind: str = "poisson",
    burstiness: float = 1.0,
    rng: random.Random | None = None,
    start_s: float = 0.0,
    phase: float = 0.0,
) -> Iterator[float]:
    """The due times (seconds on the plan's clock) of the arrivals after ``start_s``, until the plan ends.

    ``phase`` (0..1) offsets a constant process by that fraction of an interval, so that N processes
    sharing a rate with phases 0, 1/N, 2/N... interleave into one even stream. A random process's first
    arrival is one increment after ``start_s`` (memoryless for Poisson)."""
    steps = increments(kind, burstiness, rng or random.Random())
    due = plan.cumulative(start_s) if start_s > 0 else 0.0
    due += phase if kind == "constant" else next(steps)
    while True:
        t = plan.time_of(due)
        if t is None:
            return
        yield max(t, start_s)
        due += next(steps)


# -- goodness of fit (stdlib): tests and benchmarks check the arrival process with it ----------------


def ks_statistic(samples: list[float], cdf) -> float:  # type: ignore[no-untyped-def]
    """The Kolmogorov-Smirnov distance between the samples' empirical CDF and ``cdf``."""
    xs = sorted(samples)
    n = len(xs)
    return max(max((i + 1) / n - cdf(x), cdf(x) - i / n) for i, x in enumerate(xs)) if n else 1.0


def ks_critical(n: int, alpha: float = 0.01) -> float:
    """The asymptotic KS critical distance for n samples at level alpha (0.05 -> 1.358/sqrt(n))."""
    return math.sqrt(-0.5 * math.log(alpha / 2)) / math.sqrt(n)


def exponential_cdf(rate: float):  # type: ignore[no-untyped-def]
    return lambda x: 1.0 - math.exp(-rate * x) if x > 0 else 0.0
