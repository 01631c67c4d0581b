"""The report bench in its tiny mode: a synthetic long history, downsampled, opened in real chromium.

No timing is asserted (the load time is the bench's printout); what is asserted: every chart is drawn,
no line has more points than asked for, and the page fetches nothing from outside the file."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from child_env import child_env

from .support import REPO

CHROMIUM = "/usr/bin/chromium"


def _require_browser() -> None:
    """Skip without chromium/playwright, unless LOADGATE_REQUIRE_BROWSER=1 makes that a failure."""
    missing = None
    if not os.path.exists(CHROMIUM):
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "the playwright package is missing (pip install -r requirements-test.txt)"
    if missing:
        if os.environ.get("LOADGATE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LOADGATE_REQUIRE_BROWSER=1 but {missing}")
        pytest.skip(missing)


def test_tiny_bench_draws_every_chart_downsampled_and_offline(tmp_path):
    _require_browser()
    result = subprocess.run(
        [sys.executable, "bench/bench_report.py", "--tiny", "--loads", "1", "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=child_env(),
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^history: 600 s, [\d,]+ rows; report [\d.]+ MB built in", result.stdout, re.M)
    line = next(x for x in result.stdout.splitlines() if x.startswith("chromium load 1:"))
    found = re.search(
        r"\((\d+) charts, (\d+) traces, max (\d+) points per trace, (\d+) requests outside the file, "
        r"(\d+) page errors\)",
        line,
    )
    assert found, line
    charts, traces, max_points, outside, errors = map(int, found.groups())
    assert charts == 9 and traces > 30
    assert 100 < max_points <= 200  # --tiny asks for at most 200 points per line (600 s -> 3 s buckets)
    assert (outside, errors) == (0, 0)
    assert (tmp_path / "report.html").is_file()
