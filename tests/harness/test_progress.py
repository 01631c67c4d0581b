"""The headless status line and the windowed figures behind it (no load: figures logged by hand).

The real run, with lines arriving while it goes on, is tests/ci/test_job.py's."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from child_env import child_env
from locust import HttpUser, task
from locust.argument_parser import parse_options
from locust.env import Environment
from locust.stats import RequestStats

from loadgate.harness import progress
from loadgate.harness.state import state
from loadgate.harness.windows import Histogram, Window, snapshot

ROOT = Path(__file__).resolve().parents[2]
STREAM = "/v1/chat/completions [stream]"
T0 = 1_700_000_000.0


class IdleUser(HttpUser):
    host = "http://127.0.0.1:9"

    @task
    def nothing(self) -> None:
        pass


# -- windows --------------------------------------------------------------------------------------------


def stats_with(values: list[float], name: str = STREAM, method: str = "TTFT") -> RequestStats:
    stats = RequestStats()
    for value in values:
        stats.log_request(method, name, value, 0)
    return stats


def test_a_span_holds_only_the_samples_between_its_snapshots():
    stats = stats_with([100, 200])
    window = Window(10)
    window.add(snapshot(T0, stats, {"tokens": 5}), epoch="run", epoch_at=T0 - 1)
    for value in (1000, 2000, 3000):
        stats.log_request("TTFT", STREAM, value, 0)
    window.add(snapshot(T0 + 10, stats, {"tokens": 35}), epoch="run")
    span = window.last_step()
    assert span.seconds == 10
    assert span.merged([(STREAM, "TTFT")]).count == 3
    assert span.percentile("TTFT", 0.5) == 2000 and span.percentile("TTFT", 1.0) == 3000
    assert span.rate("tokens") == 3.0
    assert span.percentile("ITL", 0.95) is None  # no such samples: no figure, not 0


def test_the_first_span_counts_from_the_reset_not_from_nothing():
    window = Window(10)
    window.add(snapshot(T0 + 4, stats_with([100, 300]), {"tokens": 20}), epoch=T0, epoch_at=T0)
    span = window.span()
    assert span.seconds == 4 and span.rate("tokens") == 5.0 and span.percentile("TTFT", 1.0) == 300


def test_a_reset_restarts_the_window():
    stats = stats_with([100] * 10)
    window = Window(10)
    window.add(snapshot(T0, stats), epoch=1, epoch_at=T0)
    stats.reset_all()
    stats.log_request("TTFT", STREAM, 700, 0)
    window.add(snapshot(T0 + 5, stats), epoch=1)  # same epoch, but the counts went down: a reset
    span = window.last_step()
    assert span.merged([(STREAM, "TTFT")]).count == 1 and span.percentile("TTFT", 0.5) == 700


def test_a_sliding_span_reaches_back_its_horizon():
    stats = RequestStats()
    window = Window(10)
    window.add(snapshot(T0, stats), epoch=1, epoch_at=T0)
    for second in range(1, 16):
        stats.log_request("TTFT", STREAM, 100 * second, 0)
        window.add(snapshot(T0 + second, stats), epoch=1)
    span = window.span()
    assert span.seconds == 10
    assert span.merged([(STREAM, "TTFT")]).count == 10  # seconds 6..15
    assert span.percentile("TTFT", 0.0001) == 600
    assert len(window.snapshots) <= 12  # older snapshots are dropped


def test_histogram_difference_drops_empty_buckets():
    newer, older = Histogram({100: 3, 200: 1}, 4), Histogram({100: 3}, 3)
    assert newer.minus(older) == Histogram({200: 1}, 1)


# -- the status line ------------------------------------------------------------------------------------


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setattr("sys.argv", ["locust"])
    monkeypatch.chdir(tmp_path)
    options = parse_options(args=["--headless", "-t", "40s", "--progress-interval", "10s"])
    environment = Environment(user_classes=[IdleUser], parsed_options=options)
    environment.create_local_runner()
    state(environment).llm.window_start = T0
    yield environment
    environment.runner.quit()


def line_after_ten_seconds(environment) -> str:
    out = io.StringIO()
    status = progress.Progress(environment, 10, out)
    status.started_at = T0
    status.sample(T0)
    for _ in range(19):
        environment.stats.log_request("POST", "/v1/chat/completions", 500, 10)
    environment.stats.log_error("POST", "/v1/chat/completions", "boom")
    environment.stats.log_request("POST", "/v1/chat/completions", 500, 10)
    llm = state(environment).llm
    for value in [200] * 19 + [900]:
        llm.log("TTFT", STREAM, value)
    for value in [30] * 99 + [80]:
        llm.log("ITL", STREAM, value)
    llm.counters.output_tokens += 1234
    status.print_line(T0 + 10)
    return out.getvalue()


def test_the_line_has_the_last_interval_figures(env):
    assert line_after_ten_seconds(env) == (
        "loadgate: 0:10/0:40 | 0 users | last 10s: 2.0 req/s, 5.0% failed, TTFT p95 900 ms, "
        "ITL p95 30 ms, 123 tok/s out\n"
    )


def test_rate_mode_shows_offered_and_achieved_rate(env, monkeypatch):
    monkeypatch.setattr(
        progress.outputs, "summary", lambda st: {"requested_rate": 20.0, "achieved_rate": 19.54}
    )
    assert "| rate 20.0/s offered, 19.5/s achieved |" in line_after_ten_seconds(env)
    monkeypatch.setattr(progress.outputs, "summary", lambda st: {"requested_rate": 20.0})
    assert "| rate 20.0/s offered, 2.0/s achieved |" in line_after_ten_seconds(env)  # measured here


@pytest.mark.parametrize(
    ("count", "text"),
    [((0, 14, False), "SLA 14 thresholds, not evaluated yet"), ((2, 14, True), "SLA 2 of 14 breached")],
)
def test_with_sla_the_line_ends_with_the_breaches(env, count, text):
    state(env).live_sla = SimpleNamespace(breach_count=lambda: count)
    assert line_after_ten_seconds(env).endswith(f"tok/s out | {text}\n")


def test_a_reset_just_now_says_so_instead_of_empty_figures(env):
    out = io.StringIO()
    status = progress.Progress(env, 10, out)
    status.started_at = T0
    status.sample(T0)
    env.stats.reset_all()  # e.g. the warm-up ended at the same moment
    status.print_line(env.stats.total.start_time)
    assert out.getvalue().endswith("| statistics reset just now\n")


@pytest.mark.parametrize(
    ("args", "interval"),
    [
        (["--headless"], 10.0),
        (["--headless", "--progress-interval", "2s"], 2.0),
        (["--headless", "--progress-interval", "0"], 0.0),
        ([], 0.0),  # the web UI shows the figures itself
    ],
)
def test_progress_runs_headless_only_and_0_turns_it_off(monkeypatch, tmp_path, args, interval):
    monkeypatch.setattr("sys.argv", ["locust"])
    monkeypatch.chdir(tmp_path)
    assert progress.interval_s(parse_options(args=args)) == interval


def test_a_bad_interval_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "locustfiles" / "locustfile.py"), "--headless"]
        + ["--progress-interval", "5x", "-t", "1s", "--host", "http://127.0.0.1:9"],
        cwd=tmp_path,
        env=child_env(LOADGATE_EMBEDDED_TARGET="off"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        "loadgate: error: --progress-interval: not a duration (got '5x'); use e.g. 40s, 5m, 1h30m or seconds"
    )
