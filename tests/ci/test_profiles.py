"""Load profiles: the stage plans, and real Locust runs proving the shape is inert without a profile."""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from loadgate.harness.profiles import Stage, plan, stage_at
from loadgate.job import free_port

from .conftest import HERE, repo_env, run_locust

LOCUSTFILE = str(HERE / "profile_locustfile.py")


def get_json(url: str, form: bytes | None = None) -> dict:
    with urllib.request.urlopen(url, data=form, timeout=5) as answer:
        return json.loads(answer.read())


def test_plans_scale_with_users_spawn_rate_and_run_time():
    assert plan("smoke", 20, 10, 40) == [Stage(40, 2, 10)]
    assert plan("load", 20, 10, 40) == [Stage(40, 20, 10)]
    assert plan("soak", 20, 10, None) == [Stage(3600, 20, 10)]
    assert plan("stress", 20, 5, 40) == [
        Stage(10, 10, 5),
        Stage(20, 20, 5),
        Stage(30, 30, 5),
        Stage(40, 40, 5),
    ]
    assert plan("spike", 20, 2, 100) == [Stage(30, 4, 2), Stage(50, 20, 20), Stage(100, 4, 20)]
    steps = plan("breakpoint", 20, 10, 100)
    assert [s.users for s in steps] == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    assert [s.until_s for s in steps] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert [s.users for s in plan("breakpoint", 3, 1, 30)] == [1, 2, 3]


def test_stage_at_walks_the_plan_and_ends():
    stages = plan("spike", 10, 1, 10)
    assert [stage_at(stages, t).users for t in (0, 2.9, 3, 4.9, 5, 9.9)] == [2, 2, 10, 10, 2, 2]
    assert stage_at(stages, 10) is None


def test_unknown_profile_is_a_value_error():
    with pytest.raises(ValueError, match="unknown load profile 'ramp'; choose one of smoke, load"):
        plan("ramp", 1, 1, 1)


@pytest.mark.timeout(60)
def test_plain_run_ignores_the_imported_shape(tiny_target, tmp_path):
    url = tiny_target()
    done = run_locust(
        ["-f", LOCUSTFILE, "--headless", "-H", url, "-u", "3", "-r", "3", "-t", "2s", "--csv", "plain"],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Shape" not in done.stderr
    assert "will be ignored" not in done.stderr
    assert 'All users spawned: {"PingUser": 3} (3 total users)' in done.stderr


@pytest.mark.timeout(60)
def test_unknown_profile_exits_2_with_one_line(tiny_target, tmp_path):
    done = run_locust(
        ["-f", LOCUSTFILE, "--headless", "-H", tiny_target(), "-t", "2s"], tmp_path, LOADGATE_PROFILE="ramp"
    )
    assert done.returncode == 2
    assert (
        "loadgate: error: --profile / LOADGATE_PROFILE: unknown load profile (got 'ramp'); choose one of "
        "smoke, load, stress, spike, soak, breakpoint\n"
    ) in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.timeout(60)
def test_profile_from_env_drives_the_shape(tiny_target, tmp_path):
    done = run_locust(
        ["-f", LOCUSTFILE, "--headless", "-H", tiny_target(), "-u", "20", "-r", "20", "-t", "3s"],
        tmp_path,
        LOADGATE_PROFILE="smoke",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Shape test updating to 2 users at 20.00 spawn rate" in done.stderr
    assert "will be ignored" not in done.stderr


@pytest.mark.timeout(60)
def test_breakpoint_stops_at_the_limit_and_records_the_knee(tiny_target, tmp_path):
    url = tiny_target(max_inflight=3, delay_ms=200)  # a 4th concurrent user starts drawing 503s (a long
    # hold keeps all 4 in flight for most of a step even when a starved CPU slows the client)
    started = time.monotonic()
    done = run_locust(
        [
            "-f",
            LOCUSTFILE,
            "--headless",
            "-H",
            url,
            "-u",
            "10",
            "-r",
            "10",
            "-t",
            "30s",
            "--profile",
            "breakpoint",
            "--csv",
            "bp",
        ],
        tmp_path,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr[-2000:]  # Locust's own code: some requests failed
    record = json.loads((tmp_path / "bp_breakpoint.json").read_text())
    assert record["breached"] is True
    assert record["reason"].startswith("failure ratio ")
    assert record["knee"]["users"] == 3 and record["knee"]["failures"] == 0 and record["knee"]["rps"] > 0
    assert record["breach"]["users"] == 4 and record["breach"]["fail_ratio"] > 0.05
    assert [s["users"] for s in record["steps"]] == [1, 2, 3, 4]
    assert "loadgate breakpoint: failure ratio" in done.stderr and "knee at 3 users" in done.stderr
    assert elapsed < 25, "the breakpoint run must stop at the limit, not at --run-time"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("extra_args", "form", "users", "message"),
    [
        ([], {"user_count": 2, "spawn_rate": 2}, 2, "Swarming started"),
        (
            ["--class-picker"],
            {
                "user_count": 20,
                "spawn_rate": 5,
                "user_classes": "PingUser",
                "shape_class": "LoadProfileShape",
                "profile": "smoke",
            },
            2,
            "Swarming started using shape class 'LoadProfileShape'",
        ),
    ],
    ids=["plain", "class-picker-smoke"],
)
def test_web_ui_runs_plain_counts_or_a_picked_profile(
    tiny_target, tmp_path, extra_args, form, users, message
):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            LOCUSTFILE,
            "-H",
            tiny_target(),
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
            *extra_args,
        ],
        cwd=tmp_path,
        env=repo_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base, timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        answer = get_json(f"{base}/swarm", urllib.parse.urlencode(form).encode())
        assert answer["success"] is True and answer["message"] == message
        for _ in range(50):
            stats = get_json(f"{base}/stats/requests")
            if stats["user_count"] == users:
                break
            time.sleep(0.1)
        time.sleep(1.5)  # a form count of 20 at 5/s would be past 7 users by now
        assert get_json(f"{base}/stats/requests")["user_count"] == users  # smoke: max(1, 20 // 10), not 20
        assert get_json(f"{base}/stop", b"")["success"] is True
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.timeout(60)
def test_breakpoint_without_a_breach_still_records_the_last_step(tiny_target, tmp_path):
    done = run_locust(
        [
            "-f",
            LOCUSTFILE,
            "--headless",
            "-H",
            tiny_target(),
            "-u",
            "3",
            "-r",
            "3",
            "-t",
            "6s",
            "--profile",
            "breakpoint",
            "--csv",
            "bp",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads((tmp_path / "bp_breakpoint.json").read_text())
    assert record["breached"] is False and record["breach"] is None
    assert [s["users"] for s in record["steps"]] == [1, 2, 3]
    assert record["knee"]["users"] == 3 and record["knee"]["failures"] == 0
