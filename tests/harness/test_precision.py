"""loadgate's percentile arithmetic against Locust's own: the same answers, whatever the histogram."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from locust.stats import PERCENTILES_TO_REPORT, calculate_response_time_percentile

from loadgate.harness.precision import bucket_3_sig_digits, bucket_counts, percentiles_of

FRACTIONS = st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=14)
RELAXED = settings(deadline=None)  # a CPU shared with load tests may stall an example past the 200 ms default
HISTOGRAMS = st.dictionaries(
    st.floats(min_value=0.0, max_value=1e6).map(bucket_3_sig_digits), st.integers(1, 1000), max_size=300
)


@RELAXED
@given(HISTOGRAMS, FRACTIONS, st.integers(-3, 3))
def test_one_sort_gives_locusts_answer_for_every_fraction(histogram, fractions, miscount):
    """Also when num_requests disagrees with the histogram (Locust excludes None-timed requests)."""
    num_requests = max(0, sum(histogram.values()) + miscount)
    expected = [calculate_response_time_percentile(histogram, num_requests, f) for f in fractions]
    assert percentiles_of(histogram, num_requests, fractions) == expected


def test_the_csv_percentiles_of_an_itl_row():
    histogram = {bucket_3_sig_digits(20 + k / 10): k % 7 + 1 for k in range(-150, 400)} | {0.512: 3, 59.9: 1}
    n = sum(histogram.values())
    assert percentiles_of(histogram, n, PERCENTILES_TO_REPORT) == [
        calculate_response_time_percentile(histogram, n, f) for f in PERCENTILES_TO_REPORT
    ]
    assert percentiles_of({}, 0, [0.5, 0.99]) == [0, 0]


BOUNDS = [0.0, 0.001, 0.01, 0.1, 1, 10, 100, 1000, 10_000, 100_000]
VALUES = st.one_of(
    st.floats(min_value=-4.0, max_value=8.0).map(lambda e: 10**e),  # every range alike
    st.floats(min_value=-5.0, max_value=1e8),
    st.sampled_from(BOUNDS + [b * f for b in BOUNDS for f in (0.99999, 1.00001)] + [99.95, 999.5, 9999.5]),
)


@RELAXED
@given(st.lists(VALUES, max_size=300))
def test_bulk_bucketing_gives_the_keys_of_one_call_per_value(values):
    """Each range's list comprehension and the zeros counted at once: the same histogram as the per-value
    bucketing, across every range and on its bounds (a comprehension off by a range would shift keys)."""
    assert bucket_counts(values) == Counter(map(bucket_3_sig_digits, values))


def test_bulk_bucketing_of_a_token_streams_gaps():
    gaps = [0.0] * 14 + [0.0123, 0.0004, 2.346, 21.87, 149.6, 2346.0]
    assert bucket_counts(gaps) == {0: 15, 0.0123: 1, 2.35: 1, 21.9: 1, 150: 1, 2350: 1}
