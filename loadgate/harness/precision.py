"""Finer response-time bucketing for Locust's percentile histograms.

Locust stores each response time rounded to about 2 significant digits (147 -> 150, 3432 -> 3400),
so its percentiles can be off by up to ~5%. ``locust.stats.bucket_response_time`` is a module-level
function documented as replaceable (swapped through locust_compat); :func:`install` swaps in :func:`bucket_3_sig_digits`, which keeps
3 significant digits at every scale (sub-millisecond keys below 100 ms), so a stored value is never
more than 0.5% away from the measured one. Keys are ints from 100 ms up (as Locust's are), floats
below. The histogram stays small: at most 900 keys per decade of latency.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from locust.stats import StatsEntry

from loadgate.harness import locust_compat

SIGNIFICANT_DIGITS = 3
#: Worst-case relative storage error of a bucketed value: half a unit in the last kept digit
#: divided by the smallest value with that many digits (100 for 3 digits).
MAX_RELATIVE_ERROR = 0.5 / 10 ** (SIGNIFICANT_DIGITS - 1)
_FLOOR_MS = 0.001  # below 1 microsecond everything is one bucket


def bucket_3_sig_digits(response_time: int | float) -> int | float:
    """Round to 3 significant digits: 0.01234 -> 0.0123, 12.345 -> 12.3, 147 -> 147, 3432 -> 3430."""
    # Runs for every sample logged one at a time (Locust's HTTP rows): 0.01 ms to 100 s (and tokens/s up to
    # 100,000) by comparisons and an integer round (round(x, n) formats the float in decimal); a tie may
    # round the other way, still within the bound. _RANGES below repeats these expressions for the LLM
    # rows' bulk bucketing: change both (a property test compares them).
    if 1 <= response_time < 1000:
        if response_time >= 100:
            return round(response_time)
        if response_time >= 10:
            return round(response_time * 10) / 10
        return round(response_time * 100) / 100
    if 1000 <= response_time < 100_000:
        return round(response_time / 10) * 10 if response_time < 10_000 else round(response_time / 100) * 100
    if 0.1 <= response_time < 1:
        return round(response_time * 1000) / 1000
    if 0.01 <= response_time < 0.1:  # (sub-millisecond token gaps: round(x, n) costs ~4x more)
        return round(response_time * 10_000) / 10_000
    if response_time <= _FLOOR_MS:
        return 0
    exponent = math.floor(math.log10(response_time))
    ndigits = SIGNIFICANT_DIGITS - 1 - exponent
    rounded = round(response_time, ndigits)
    if ndigits <= 0:
        return int(rounded)
    return rounded


# From each lower bound up to the next: the keys of sorted values, by bucket_3_sig_digits' own expressions
# for that range (the same keys); None: one call per value. Below the first bound, (0.001, 0.01): per value.
_RANGES: tuple[tuple[float, Callable[[Sequence[float]], Any] | None], ...] = (
    (0.01, lambda vs: [round(v * 10_000) / 10_000 for v in vs]),
    (0.1, lambda vs: [round(v * 1000) / 1000 for v in vs]),
    (1, lambda vs: [round(v * 100) / 100 for v in vs]),
    (10, lambda vs: [round(v * 10) / 10 for v in vs]),
    (100, lambda vs: [round(v) for v in vs]),
    (1000, lambda vs: [round(v / 10) * 10 for v in vs]),
    (10_000, lambda vs: [round(v / 100) * 100 for v in vs]),
    (100_000, None),
)


def bucket_counts(values: Sequence[float]) -> Counter:
    """``Counter(map(bucket_3_sig_digits, values))``, a range at a time over the values sorted: a list
    comprehension per range instead of a call per value, and the many zero gaps of tokens that share a
    read counted at once. The fold of a batch of answers buckets every figure and token gap with it."""
    ordered = sorted(values)
    counts: Counter = Counter()
    at = bisect.bisect_right(ordered, _FLOOR_MS)
    if at:
        counts[0] = at
    keys: Callable[[Sequence[float]], Any] | None = None
    for low, next_keys in _RANGES:
        end = bisect.bisect_left(ordered, low, at)
        if end > at:
            part = ordered[at:end]
            counts.update(keys(part) if keys is not None else map(bucket_3_sig_digits, part))
        at, keys = end, next_keys
    if at < len(ordered):
        counts.update(map(bucket_3_sig_digits, ordered[at:]))
    return counts


def percentiles_of(response_times: Mapping[Any, int], num_requests: int, fractions: Sequence[float]) -> list:
    """``locust.stats.calculate_response_time_percentile`` for several fractions at once, the same answers
    from one sort of the histogram instead of one per fraction. A row's 12 CSV percentiles re-sorted an
    ITL histogram of ~1,500 keys 12 times: 11 ms with the event loop blocked, every second, at 150
    streams (the run's ITL p99 read it)."""
    results: list = [0] * len(fractions)  # Locust's answer when nothing qualifies
    targets = sorted(((int(num_requests * f), i) for i, f in enumerate(fractions)), reverse=True)
    if not targets:
        return results
    at, (limit, index) = 0, targets[0]
    processed = 0
    for response_time in sorted(response_times, reverse=True):
        processed += response_times[response_time]
        while num_requests - processed <= limit:  # the highest fractions are met first, walking down
            results[index] = response_time
            at += 1
            if at == len(targets):
                return results
            limit, index = targets[at]
    return results


def percentile_fields(entry: StatsEntry, percentiles: list[float], use_current: bool = False) -> list:
    """Locust's CSV percentile columns without its int() cast, which would throw away the finer
    buckets below 100 ms (11.3 ms written as 11)."""
    if not entry.num_requests:
        return ["N/A"] * len(percentiles)
    if use_current and entry.use_response_times_cache:
        return [entry.get_current_response_time_percentile(p) or 0 for p in percentiles]
    return [v or 0 for v in percentiles_of(entry.response_times, entry.num_requests, percentiles)]


def install() -> None:
    """Make every StatsEntry (Locust's and loadgate's) use 3-significant-digit buckets."""
    locust_compat.set_bucketing(bucket_3_sig_digits, bucket_counts)


def uninstall() -> None:
    """Restore Locust's own bucketing (benchmarks compare both)."""
    locust_compat.set_bucketing(None)
