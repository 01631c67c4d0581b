"""Stages files and the shipped scenarios for real: what the runner actually had over time, from the
history CSV. Load tests: run them under the shared lock (flock /tmp/loadgate-load.lock pytest tests/loadshapes)."""

from __future__ import annotations

import json

import pytest

from loadgate.stages import SCENARIOS, load_scenario, resolve
from loadshapes.helpers import CHAT_ONLY, ZERO_LATENCY, history, read_json, run_locust


def runs_of(values: list[int]) -> list[int]:
    """The values with repeats collapsed: [2, 2, 6, 6, 5, 3] -> [2, 6, 5, 3]."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


@pytest.mark.timeout(90)
def test_a_users_stages_file_drives_the_user_count(tmp_path, mock_server):
    mock = mock_server(config=ZERO_LATENCY)
    stages = tmp_path / "shape.yaml"
    stages.write_text(
        "stages:\n"
        "  - {duration: 4s, users: 2, hold: true}\n"
        "  - {duration: 4s, users: 6, hold: true, spawn_rate: 50}\n"
        "  - {duration: 4s, users: 1}\n"  # a ramp down: 6 -> 1 over 4 s
    )
    done, prefix = run_locust(
        tmp_path,
        mock.url,
        "--stages",
        str(stages),
        "--warmup",
        "0s",
        "--think-time",
        "0.1",
        *CHAT_ONLY,
        users=3,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    counts = [int(r["User Count"]) for r in history(prefix)]
    seen = runs_of([c for c in counts if c > 0])
    peak = seen.index(6)
    assert seen[:peak] == [2] or seen[:peak] == [1, 2]  # up to 2 (spawned at -r), then the jump to 6
    ramp = seen[peak:]
    assert ramp == sorted(ramp, reverse=True) and len(ramp) >= 3  # the ramp steps down through the counts
    assert "Shape test stopping" in done.stderr  # the stages ended the run (no --run-time was given)
    meta = read_json(f"{prefix}_loadgate.json")
    assert meta["stages"] == str(stages) and meta["load_mode"] == "users"


@pytest.mark.timeout(90)
def test_a_rate_stages_file_drives_the_request_rate(tmp_path, mock_server):
    mock = mock_server(config=ZERO_LATENCY)
    stages = tmp_path / "rates.yaml"
    stages.write_text(
        "stages:\n  - {duration: 5s, rate: 4, hold: true}\n  - {duration: 5s, rate: 16, hold: true}\n"
    )
    done, prefix = run_locust(
        tmp_path, mock.url, "--stages", str(stages), "--warmup", "0s", "--arrival", "constant", *CHAT_ONLY,
        users=8,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [r for r in history(prefix) if int(r["User Count"]) > 0]  # (not the row written at the stop)
    start = read_json(f"{prefix}_loadgate.json")["started_at"]
    totals = [(float(r["Timestamp"]) - start, int(r["Total Request Count"])) for r in rows]
    per_second = [(t, b - a) for (t, b), (_, a) in zip(totals[1:], totals, strict=False)]
    first = [n for t, n in per_second if 1.5 < t < 4.5]
    second = [n for t, n in per_second if 6.5 < t < 9.5]
    assert first and second
    assert sum(first) / len(first) == pytest.approx(4, abs=1.2)
    assert sum(second) / len(second) == pytest.approx(16, abs=3)
    summary = read_json(f"{prefix}_llm_summary.json")
    assert summary["requested_rate"] == pytest.approx(10, rel=0.1)  # the mean of 4 and 16 over the run
    assert read_json(f"{prefix}_loadgate.json")["load_mode"] == "rate"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", SCENARIOS)
def test_every_shipped_scenario_runs_compressed(tmp_path, mock_server, name):
    """Each scenario squeezed into about 4 s (--time-scale), with its own shape, think time and weights."""
    mock = mock_server(config=ZERO_LATENCY)
    spec = load_scenario(name)
    scale = 4 / spec.default_run_time_s
    done, prefix = run_locust(
        tmp_path, mock.url, "--profile", name, "--time-scale", f"{scale:.6g}", "--warmup", "0s",
        "-r", "100", "--poll-interval", "0.1s", users=6,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Shape test stopping" in done.stderr
    timeline = resolve(spec, users=6, spawn_rate=100, run_time_s=None, time_scale=scale)
    counts = [int(r["User Count"]) for r in history(prefix)]
    assert max(counts) <= max(s.end for s in timeline.spans)
    assert max(counts) >= min(s.end for s in timeline.spans)
    meta = read_json(f"{prefix}_loadgate.json")
    assert meta["profile"] == name and meta["load_mode"] == "users"
    assert meta["stopped_at"] - meta["started_at"] < timeline.end_s + 10
    if spec.breakpoint:
        record = json.loads((tmp_path / "run_breakpoint.json").read_text())
        assert record["steps"] and record["breached"] is False


@pytest.mark.timeout(60)
def test_a_bad_stages_file_stops_locust_before_any_load_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - {duration: 10s, users: 2}\n  - {duration: soon, users: 4}\n")
    done, _ = run_locust(tmp_path, "http://127.0.0.1:9", "--stages", str(bad))
    assert done.returncode == 2
    assert (
        f"loadgate: error: {bad}:3: stages[1].duration: not a duration (got 'soon'); "
        "use e.g. 30s, 5m, 1h30m or N% of --run-time\n"
    ) in done.stderr
    assert "Traceback" not in done.stderr
