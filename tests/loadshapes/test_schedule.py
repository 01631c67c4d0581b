"""The arrival schedules (loadgate.schedule): rates, ramps, splits and the arrival processes' shapes."""

import math
import random
import statistics

import pytest

from loadgate.schedule import (
    RatePlan,
    Segment,
    arrival_times,
    exponential_cdf,
    ks_critical,
    ks_statistic,
)


def take(iterator, n):
    return [t for _, t in zip(range(n), iterator, strict=False)]


def test_constant_arrivals_are_evenly_spaced_from_the_start():
    times = take(arrival_times(RatePlan.constant(20), "constant"), 5)
    assert times == pytest.approx([0.0, 0.05, 0.10, 0.15, 0.20])


def test_phases_interleave_two_halves_into_one_even_stream():
    half = RatePlan.constant(20).scaled(0.5)
    a = take(arrival_times(half, "constant", phase=0.0), 4)
    b = take(arrival_times(half, "constant", phase=0.5), 4)
    assert sorted(a + b) == pytest.approx([0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.35])


def test_poisson_inter_arrival_times_pass_a_ks_test_and_even_spacing_does_not():
    rate, n = 20.0, 2000
    times = take(arrival_times(RatePlan.constant(rate), "poisson", rng=random.Random(11)), n)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert ks_statistic(gaps, exponential_cdf(rate)) < ks_critical(len(gaps), 0.01)
    even = [1 / rate + random.Random(3).uniform(-1e-4, 1e-4) for _ in range(n)]
    assert ks_statistic(even, exponential_cdf(rate)) > ks_critical(n, 0.01)  # the check can fail


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_gamma_burstiness_sets_the_spread_and_keeps_the_rate(burstiness):
    times = take(arrival_times(RatePlan.constant(10), "gamma", burstiness, random.Random(5)), 4000)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    mean = statistics.fmean(gaps)
    assert mean == pytest.approx(0.1, rel=0.1)
    assert statistics.pstdev(gaps) / mean == pytest.approx(1 / math.sqrt(burstiness), rel=0.15)


def test_a_ramp_and_a_pause_follow_the_plan():
    # 0 -> 10 req/s over 10 s (50 due), 5 s at 0, then 4 req/s for 5 s (20 due); then the plan ends
    plan = RatePlan(
        (Segment(0, 10, 0, 10), Segment(10, 15, 0, 0), Segment(15, 20, 4, 4))
    )  # fmt: skip
    times = list(arrival_times(plan, "constant", phase=0.5))
    assert sum(t < 10 for t in times) == 50
    assert not [t for t in times if 10 <= t < 15]
    assert sum(15 <= t < 20 for t in times) == 20 and len(times) == 70
    assert plan.cumulative(10) == pytest.approx(50) and plan.time_of(12.5) == pytest.approx(5.0)
    assert plan.mean_rate(0, 20) == pytest.approx(3.5) and plan.rate_at(20) is None


def test_starting_late_resumes_the_plan_where_it_is():
    plan = RatePlan.constant(10)
    times = take(arrival_times(plan, "constant", start_s=100.0), 3)
    assert times == pytest.approx([100.0, 100.1, 100.2])


def test_plans_travel_as_json_lists():
    plan = RatePlan((Segment(0, 5, 1, 3), Segment(5, math.inf, 3, 3)))
    assert RatePlan.from_list(plan.to_list()) == plan
    assert plan.to_list()[-1][1] is None


def test_bad_plans_and_processes_are_refused():
    with pytest.raises(ValueError, match="contiguous"):
        RatePlan((Segment(1, 2, 1, 1),))
    with pytest.raises(ValueError, match="unknown arrival process"):
        next(arrival_times(RatePlan.constant(1), "uniform"))
