"""Durations as users write them anywhere in loadgate (flags, env vars, threshold files):
a number of seconds (30, "1.5") or number-unit parts, "30s", "1m30s", "500ms", "1.5m", "2h"."""

from __future__ import annotations

import re

_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_PART = re.compile(rf"({_NUMBER})(ms|h|m|s)")
_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Seconds; ValueError for anything else (a bool, a sign, an unknown unit). Numbers pass through
    as they are: callers bound them (negative, zero, NaN) with their own message."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use e.g. 30s, 500ms, 2m")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).replace(" ", "")
    if re.fullmatch(_NUMBER, text):
        return float(text)
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration; use e.g. 30s, 500ms, 2m")
    return sum(float(n) * _UNITS_S[u] for n, u in parts)
