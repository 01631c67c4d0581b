"""Rate mode for real: headless Locust against the mock, counted from the mock's truth log.

Load tests: run them under the shared lock (flock /tmp/loadgate-load.lock pytest tests/loadshapes)."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from child_env import child_env

from loadgate.job import free_port
from loadgate.schedule import exponential_cdf, ks_critical, ks_statistic
from loadgate.target import PROBE_ID_PREFIX
from loadshapes.helpers import (
    CHAT_ONLY,
    LOCUSTFILE,
    ZERO_LATENCY,
    chat_requests,
    read_json,
    read_truth,
    run_locust,
)


def achieved_in_truth(truth_log, prefix: str) -> tuple[float, dict, dict]:
    meta, summary = read_json(f"{prefix}_loadgate.json"), read_json(f"{prefix}_llm_summary.json")
    start, end = meta["stats_reset_at"], meta["stopped_at"]
    return len(chat_requests(read_truth(truth_log), start, end)) / (end - start), meta, summary


@pytest.mark.timeout(180)
@pytest.mark.parametrize("processes", [None, "2"], ids=["one-process", "processes-2"])
def test_a_constant_rate_of_20_per_second_is_what_the_target_receives(tmp_path, mock_server, processes):
    truth_log = tmp_path / "truth.jsonl"
    mock = mock_server(config=ZERO_LATENCY, truth_log=truth_log)
    extra = ["--processes", processes] if processes else []
    done, prefix = run_locust(
        tmp_path, mock.url, "--request-rate", "20", "--arrival", "constant", "-t", "22s", "--warmup", "2s",
        *CHAT_ONLY, *extra,
    )  # fmt: skip
    mock.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    truth_rate, meta, summary = achieved_in_truth(truth_log, prefix)
    assert meta["stopped_at"] - meta["stats_reset_at"] > 19
    assert truth_rate == pytest.approx(20, rel=0.05)
    assert summary["achieved_rate"] == pytest.approx(20, rel=0.05)
    assert summary["requested_rate"] == pytest.approx(20)
    assert summary["schedule_lag_p99"] < 100 and summary["arrivals_waiting_at_stop"] == 0
    assert meta["load_mode"] == "rate" and meta["request_rate"] == 20 and meta["arrival"] == "constant"
    assert meta["achieved_rate"] == summary["achieved_rate"]
    assert "rate mode: requested 20 req/s, achieved" in done.stderr
    assert "schedule lag p99" not in done.stderr  # no warning


@pytest.mark.timeout(120)
def test_poisson_arrivals_pass_a_goodness_of_fit_check(tmp_path, mock_server):
    truth_log = tmp_path / "truth.jsonl"
    mock = mock_server(config=ZERO_LATENCY, truth_log=truth_log)
    # --seed fixes the draws, and the level is 1e-4: at 1% a true Poisson stream fails one run in 100
    done, prefix = run_locust(
        tmp_path, mock.url, "--request-rate", "20", "-t", "17s", "--warmup", "2s", "--seed", "3", *CHAT_ONLY
    )
    mock.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    meta = read_json(f"{prefix}_loadgate.json")
    assert meta["arrival"] == "poisson"
    times = chat_requests(read_truth(truth_log), meta["stats_reset_at"], meta["stopped_at"])
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) > 200
    assert ks_statistic(gaps, exponential_cdf(20)) < ks_critical(len(gaps), 1e-4)
    # and the same arrivals are clearly not evenly spaced (the test can tell the two apart)
    assert ks_statistic([0.05] * len(gaps), exponential_cdf(20)) > ks_critical(len(gaps), 1e-4)


@pytest.mark.timeout(180)
def test_the_same_seed_repeats_the_random_gaps_and_another_seed_does_not(tmp_path, mock_server):
    """Three real runs at 20 req/s of Poisson arrivals: seeds 5, 5 and 6. The gaps between the arrivals the
    mock received, in order: the two runs of seed 5 differ by the jitter of sending (well under 5 ms), seed
    6 by the draws (the median difference of two independent 50 ms exponential gaps is 35 ms)."""
    truth_log = tmp_path / "truth.jsonl"
    mock = mock_server(config=ZERO_LATENCY, truth_log=truth_log)
    gaps = []
    for name, seed in [("a", "5"), ("b", "5"), ("c", "6")]:
        done, prefix = run_locust(
            tmp_path, mock.url, "--request-rate", "20", "-t", "6s", "--warmup", "0s", "--seed", seed, *CHAT_ONLY,
            prefix_name=name,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        meta = read_json(f"{prefix}_loadgate.json")
        truth = [
            t for t in read_truth(truth_log) if not (t["x_request_id"] or "").startswith(PROBE_ID_PREFIX)
        ]
        times = chat_requests(truth, meta["started_at"], meta["stopped_at"])  # (no warm-up: no reset)
        gaps.append([b - a for a, b in zip(times, times[1:], strict=False)])
    n = min(len(g) for g in gaps)
    assert n > 60, [len(g) for g in gaps]

    def median_difference(x: list[float], y: list[float]) -> float:
        return statistics.median(abs(a - b) for a, b in zip(x[:n], y[:n], strict=True))

    same, other = median_difference(gaps[0], gaps[1]), median_difference(gaps[0], gaps[2])
    assert same < 0.005 and other > 0.015, (same, other)


SLOW = {
    "models": {"loadgate-small": {"ttft": 0.5, "tokens_per_s": 0, "output_tokens": 16}},
    "capacity": {"slots": 1000, "queue": 1000, "batching_slowdown": 0},
}


@pytest.mark.timeout(120)
def test_the_cap_holds_and_its_lag_is_reported_with_a_warning(tmp_path, mock_server):
    truth_log = tmp_path / "truth.jsonl"
    mock = mock_server(config=SLOW, truth_log=truth_log)
    done, prefix = run_locust(
        tmp_path, mock.url, "--request-rate", "20", "--arrival", "constant", "--max-concurrency", "4",
        "-t", "8s", "--warmup", "2s", *CHAT_ONLY, users=20,
    )  # fmt: skip
    mock.stop()
    assert done.returncode in (0, 1), done.stderr[-3000:]
    summary = read_json(f"{prefix}_llm_summary.json")
    assert summary["schedule_lag_p99"] > 1000 and summary["schedule_lag_cause"] == "cap"
    assert summary["max_concurrency"] == 4 and summary["arrivals_waiting_at_stop"] > 20
    assert summary["achieved_rate"] < 10  # 4 in flight at 0.5 s each: 8/s at most
    warnings = [line for line in done.stderr.splitlines() if "schedule lag p99" in line]
    assert len(warnings) == 1 and "> 100 ms" in warnings[0]
    assert "cause: the cap: arrivals waited for a slot under --max-concurrency 4" in warnings[0]
    # the target never saw more than 4 requests at once
    truth = [t for t in read_truth(truth_log) if t["path"] == "/v1/chat/completions"]
    events = sorted([(t["t_received"], 1) for t in truth] + [(t["t_done"], -1) for t in truth])
    in_flight = peak = 0
    for _, step in events:
        in_flight += step
        peak = max(peak, in_flight)
    assert peak == 4


@pytest.mark.timeout(120)
def test_without_enough_users_the_generator_is_named(tmp_path, mock_server):
    mock = mock_server(config=SLOW)
    done, prefix = run_locust(
        tmp_path, mock.url, "--request-rate", "10", "--arrival", "constant", "-t", "6s", "--warmup", "1s",
        *CHAT_ONLY, users=2,
    )  # fmt: skip
    summary = read_json(f"{prefix}_llm_summary.json")
    assert summary["schedule_lag_cause"] == "executors" and summary["max_concurrency"] is None
    assert "cause: the generator: all 2 users of a class were busy" in done.stderr


@pytest.mark.timeout(150)
def test_a_worker_joining_gets_its_share_instead_of_adding_to_the_rate(tmp_path, mock_server):
    truth_log = tmp_path / "truth.jsonl"
    mock = mock_server(config=ZERO_LATENCY, truth_log=truth_log)
    port, prefix = free_port(), str(tmp_path / "run")
    common = [sys.executable, "-m", "locust", "-f", LOCUSTFILE]
    worker_cmd = [*common, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    workers = [
        subprocess.Popen(
            worker_cmd, cwd=tmp_path, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    ]
    master = subprocess.Popen(
        [*common, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "--expect-workers", "1", "--enable-rebalancing", "--headless", "-u", "10", "-r", "10", "-t", "16s",
         "--host", mock.url, "--csv", prefix, "--only-summary", "--models", "loadgate-small", "--embedded-target",
         "off", "--stop-timeout", "5", "--warmup", "0s", "--request-rate", "20", "--arrival", "constant", *CHAT_ONLY],
        cwd=tmp_path, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 60  # the first requests reach the mock: the test runs (a busy CI is slow)
        while time.time() < deadline and not (truth_log.exists() and truth_log.stat().st_size):
            time.sleep(0.2)
        time.sleep(4)
        joined = time.time()
        workers.append(
            subprocess.Popen(
                worker_cmd,
                cwd=tmp_path,
                env=child_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        _, errors = master.communicate(timeout=90)
    finally:
        for proc in [master, *workers]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
    mock.stop()
    assert master.returncode == 0, errors[-3000:]
    meta = read_json(f"{prefix}_loadgate.json")
    truth = read_truth(truth_log)
    # The joining worker gets its spawn message before Locust has set its runner; it once took itself for
    # a local run and generated the whole rate on top of its share (30/s in about one run in three).
    # Counted over the whole run: an arrival dispatched late moves but is never added.
    run_s = meta["stopped_at"] - meta["started_at"]
    assert meta["started_at"] < joined < meta["stopped_at"] - 6
    sent = chat_requests(truth, meta["started_at"], meta["stopped_at"])
    # 20/s throughout, not 40/s after the join (that would be about 1.6x this)
    assert len(sent) == pytest.approx(20 * run_s, rel=0.12)
    assert meta["workers"] == 1  # (counted at the start)


def get_json(url: str, form: bytes | None = None) -> dict:
    with urllib.request.urlopen(url, data=form, timeout=5) as answer:
        return json.loads(answer.read())


@pytest.mark.timeout(90)
def test_the_web_ui_start_form_takes_a_rate(tmp_path, mock_server):
    mock = mock_server(config=ZERO_LATENCY)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "-H", mock.url, "--web-host", "127.0.0.1",
         "--web-port", str(port), "--embedded-target", "off", "--models", "loadgate-small"],
        cwd=tmp_path, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base, timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        form = {"user_count": 5, "spawn_rate": 5, "request_rate": "8", "arrival": "constant",
                "batch_weight": "0", "models_weight": "0", "warmup": "0s"}  # fmt: skip
        assert get_json(f"{base}/swarm", urllib.parse.urlencode(form).encode())["success"] is True
        rows: dict[str, str] = {}
        for _ in range(60):
            time.sleep(0.25)
            stats = get_json(f"{base}/stats/requests")
            summary = next(e["data"] for e in stats["extended_stats"] if e["key"] == "llm_summary")
            rows = {r["figure"]: r["value"] for r in summary}
            if float(rows.get("Achieved rate (req/s started)", "0")) > 0 and stats["total_rps"] > 0:
                break
        assert float(rows["Requested rate (req/s, rate mode)"]) == pytest.approx(8, rel=0.02)
        assert 0 < float(rows["Achieved rate (req/s started)"]) <= 16
        assert "Schedule lag p99 (ms)" in rows
        assert get_json(f"{base}/stop", b"")["success"] is True
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.timeout(120)
def test_rate_mode_keeps_the_class_weights(tmp_path, mock_server):
    """Chat 3 : models 1 by weight: constant arrivals go to the classes interleaved in that proportion
    (one request each), so the mix the target saw is 3:1 up to the arrivals still waiting at the stop."""
    truth_log = tmp_path / "truth.jsonl"
    mock = mock_server(config=ZERO_LATENCY, truth_log=truth_log)
    done, prefix = run_locust(
        tmp_path, mock.url, "--request-rate", "24", "--arrival", "constant", "-t", "10s", "--warmup", "0s",
        "--chat-weight", "3", "--models-weight", "1", "--batch-weight", "0", "--multi-turn-ratio", "0",
        "--models", "loadgate-small", users=8,
    )  # fmt: skip
    mock.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    truth = [t for t in read_truth(truth_log) if not (t["x_request_id"] or "").startswith(PROBE_ID_PREFIX)]
    chat = sum(t["path"] == "/v1/chat/completions" for t in truth)
    models = sum(t["path"].startswith("/v1/models") or t["path"] == "/health" for t in truth)  # ModelsUser
    assert chat + models == len(truth) > 150
    waiting = json.loads(Path(f"{prefix}_llm_summary.json").read_text())["arrivals_waiting_at_stop"]
    assert abs(chat - 3 * models) <= 3 + 3 * waiting, (chat, models, waiting)


def test_constant_arrivals_interleave_the_classes_and_random_ones_thin_at_random():
    import random

    from loadgate.harness.arrival import class_picker

    pick = class_picker({"ChatUser": 0.6, "ModelsUser": 0.2, "BatchUser": 0.0}, "constant", random.Random(1))
    picks = [pick() for _ in range(400)]
    assert all(picks[i : i + 4].count("ChatUser") == 3 for i in range(0, 400, 4))  # every 4: 3 chat, 1 models
    pick = class_picker({"ChatUser": 0.6, "ModelsUser": 0.2}, "poisson", random.Random(1))
    picks = [pick() for _ in range(20000)]
    assert picks.count("ChatUser") / len(picks) == pytest.approx(0.75, abs=0.01)
    assert any(picks[i : i + 4].count("ChatUser") != 3 for i in range(0, 400, 4))  # not a fixed pattern
    assert class_picker({"ChatUser": 1.0, "ModelsUser": 0.0}, "poisson", random.Random(1))() == "ChatUser"


def test_the_seed_fixes_the_arrivals_of_each_stream_and_no_seed_draws_afresh():
    from loadgate.harness.arrival import RateConfig
    from loadgate.schedule import RatePlan, arrival_times

    def first(seed: int | None, stream: str) -> list[float]:
        config = RateConfig(
            RatePlan.constant(20), 0.0, {"ChatUser": 1.0}, "poisson", 1.0, None, 0.0, seed, stream
        )
        times = arrival_times(config.plan, config.kind, config.burstiness, config.rng(), 0.0, config.phase)
        return [next(times) for _ in range(5)]

    assert first(3, "0:1") == first(3, "0:1")
    assert first(3, "0:1") != first(3, "1:2") and first(3, "0:1") != first(4, "0:1")
    assert first(None, "0:1") != first(None, "0:1")


def test_a_share_reaches_a_worker_as_it_was_built():
    from loadgate.harness.arrival import RateConfig
    from loadgate.schedule import RatePlan

    sent = RateConfig(
        RatePlan.constant(7), time.monotonic() - 12.5, {"ChatUser": 0.25}, "gamma", 2.0, 3, 0.5, 9, "1:4"
    )
    got, drop = RateConfig.from_message(json.loads(json.dumps(sent.to_message(drop=True))))
    assert drop is True
    assert got.origin == pytest.approx(sent.origin, abs=0.05)  # the plan's t = 0 on the worker's own clock
    assert {**vars(got), "origin": 0} == {**vars(sent), "origin": 0}


def test_a_new_plan_with_drop_empties_this_process_queues_as_it_does_a_workers(monkeypatch, tmp_path):
    """A capacity step's drain drops its queued arrivals: in a single process too, not only on workers, so
    a failing step's backlog does not spill into the next step."""
    from locust import User, constant, task
    from locust.argument_parser import parse_options
    from locust.env import Environment

    from loadgate.harness.arrival import Arrival, controller, dispatcher
    from loadgate.schedule import RatePlan

    class Executor(User):
        loadgate_executor = True
        wait_time = constant(1)

        @task
        def nothing(self) -> None:
            pass

    monkeypatch.setattr("sys.argv", ["locust"])
    monkeypatch.chdir(tmp_path)
    environment = Environment(
        user_classes=[Executor], parsed_options=parse_options(args=["--request-rate", "5"])
    )
    environment.create_local_runner()
    try:
        queue = dispatcher(environment).queue("Executor")
        for _ in range(3):
            queue.put(Arrival(time.monotonic(), time.monotonic(), False))
        controller(environment).set_plan(RatePlan.constant(0.0))
        assert queue.qsize() == 3  # a new plan alone keeps them
        controller(environment).set_plan(RatePlan.constant(0.0), drop=True)
        assert queue.qsize() == 0
    finally:
        dispatcher(environment).end()
        environment.runner.quit()
