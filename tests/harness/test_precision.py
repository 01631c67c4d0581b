"""loadgate's percentile arithmetic against Locust's own: the same answers, whatever the histogram."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from locust.stats import PERCENTILES_TO_REPORT, calculate_response_time_percentile

from loadgate.harness.precision import bucket_3_sig_digits, percentiles_of

FRACTIONS = st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=14)
HISTOGRAMS = st.dictionaries(
    st.floats(min_value=0.0, max_value=1e6).map(bucket_3_sig_digits), st.integers(1, 1000), max_size=300
)


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
