"""Stages files and the shipped scenarios (loadgate.stages): parsing, errors naming file/line/field, and
resolution against the run's settings."""

import pytest

from loadgate import job
from loadgate.stages import RATE, SCENARIOS, USERS, StagesError, load_scenario, parse, resolve

GOOD = """\
description: a test shape
default_run_time: 100s
think_time: 1-3
stages:
  - {duration: 10s, users: 10}
  - {duration: 20%, users: 50%, hold: true, spawn_rate: 5}
  - {duration: 10s, users: 4, weights: {chat: 9, ModelsUser: 1}}
"""


def test_a_file_resolves_into_ramps_and_steps():
    spec = parse(GOOD, "good.yaml")
    assert spec.think_time == (1.0, 3.0) and spec.kind == USERS
    tl = resolve(spec, users=30, spawn_rate=2, run_time_s=None)  # 20% of default_run_time (100 s)
    assert [(s.start_s, s.end_s, s.start, s.end, s.hold) for s in tl.spans] == [
        (0.0, 10.0, 0.0, 10.0, False),
        (10.0, 30.0, 10.0, 15.0, True),
        (30.0, 40.0, 15.0, 4.0, False),
    ]
    assert tl.spans[0].value_at(5) == 5.0 and tl.spans[1].value_at(20) == 15.0
    assert tl.spans[1].spawn_rate == 5 and tl.spans[2].weights == {"chat": 9, "ModelsUser": 1}
    assert tl.at(39.9).index == 2 and tl.at(40) is None
    assert resolve(spec, users=30, spawn_rate=2, run_time_s=100, time_scale=0.1).end_s == pytest.approx(4.0)


def test_rate_files_and_percentages_in_rate_mode():
    tl = resolve(parse("- {duration: 5s, rate: 50%, hold: true}\n- {duration: 5s, rate: 8}\n"), users=1,
                 spawn_rate=1, run_time_s=None, request_rate=4)  # fmt: skip
    assert tl.kind == RATE
    plan = tl.rate_plan()
    assert plan.cumulative(5) == pytest.approx(10) and plan.cumulative(10) == pytest.approx(10 + 25)
    # a users profile of percentages drives the rate when --request-rate is given
    stress = resolve(load_scenario("stress"), users=7, spawn_rate=1, run_time_s=40, request_rate=10)
    assert stress.kind == RATE and [s.end for s in stress.spans] == [5, 10, 15, 20]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stages:\n  - {duration: 10s}\n", "bad.yaml:2: stages[0].users: missing target (got None); give users: N"),
        ("- {duration: 10s, users: 1}\n- {duration: ten, users: 2}\n",
         "bad.yaml:2: stages[1].duration: not a duration (got 'ten'); use e.g. 30s, 5m, 1h30m or N% of --run-time"),
        ("- {duration: 10s, users: 1}\n- {duration: 5s, rate: 3}\n",
         "bad.yaml:2: stages[1].rate: mixes rate with users (got 'rate'); a file drives either users"),
        ("- {duration: 10s, users: 2.5}\n", "bad.yaml:1: stages[0].users: not a whole number of users (got 2.5)"),
        ("- {duration: 10s, users: 1, hold: yes please}\n", "bad.yaml:1: stages[0].hold: must be true or false"),
        ("- {duration: 10s, users: 1, ramp: 3}\n", "bad.yaml:1: stages[0].ramp: unknown key (got 'ramp'); use only duration, users, rate"),
        ("- {duration: 10s, users: 1, weights: {chat: -1}}\n", "bad.yaml:1: stages[0].weights.chat: not a whole number >= 0 (got -1)"),
        ("- {duration: 10s, users: 1\n", "bad.yaml:2: YAML: syntax error"),
        ("stages: []\n", "bad.yaml:1: stages: must be a non-empty list"),
        ("limits: 3\nstages: []\n", "bad.yaml:1: file.limits: unknown key (got 'limits')"),
    ],
)  # fmt: skip
def test_bad_files_name_file_line_and_field(text, message):
    with pytest.raises(StagesError) as caught:
        parse(text, "bad.yaml")
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_what_the_settings_cannot_resolve_is_named_too():
    spec = parse("- {duration: 50%, users: 10}\n", "pct.yaml")
    with pytest.raises(StagesError, match=r"pct.yaml:1: stages\[0\].duration: a percentage needs a run time"):
        resolve(spec, users=1, spawn_rate=1, run_time_s=None)
    with pytest.raises(StagesError, match=r"stages\[0\].users: an absolute user count in rate mode"):
        resolve(spec, users=1, spawn_rate=1, run_time_s=10, request_rate=5)
    rates = parse("- {duration: 5s, rate: 50%}\n", "r.yaml")
    with pytest.raises(StagesError, match=r"r.yaml:1: stages\[0\].rate: a percentage needs --request-rate"):
        resolve(rates, users=1, spawn_rate=1, run_time_s=None)


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_shipped_scenario_resolves(name):
    spec = load_scenario(name)
    assert spec.description and spec.default_run_time_s
    tl = resolve(spec, users=20, spawn_rate=5, run_time_s=None)
    assert tl.end_s == pytest.approx(spec.default_run_time_s)
    assert all(s.end >= 1 for s in tl.spans)


def test_the_job_refuses_a_bad_stages_file_before_any_load(tmp_path):
    bad = tmp_path / "shape.yaml"
    bad.write_text("- {duration: 10s, users: 1}\n- {duration: 10s, users: many}\n")
    with pytest.raises(
        job.JobError, match=r"shape.yaml:2: stages\[1\].users: not a number >= 0 \(got 'many'\)"
    ):
        job.parse_config(["--stages", str(bad)], {})
    with pytest.raises(job.JobError, match="--stages: replaces --profile; give one of them"):
        job.parse_config(["--stages", str(bad), "--profile", "spike"], {})
    with pytest.raises(
        job.JobError, match="--find-capacity: drives the rate itself; drop --stages / --profile"
    ):
        job.parse_config(["--find-capacity", "--profile", "spike"], {})


def test_the_job_passes_stages_and_capacity_settings_to_locust(tmp_path):
    shape = tmp_path / "shape.yaml"
    shape.write_text("- {duration: 10s, rate: 5}\n")
    cfg = job.parse_config(["--stages", str(shape), "--max-concurrency", "8"], {})
    cmd = job.locust_command(cfg, "http://127.0.0.1:1")
    assert cfg.profile is None and "--profile" not in cmd
    assert cmd[cmd.index("--stages") + 1] == str(shape) and cmd[cmd.index("--max-concurrency") + 1] == "8"
    cap = job.parse_config(
        ["--find-capacity", "--capacity-step-time", "6s"], {"LOADGATE_CAPACITY_START": "2"}
    )
    cmd = job.locust_command(cap, "http://127.0.0.1:1")
    assert "--run-time" not in cmd and cmd[cmd.index("--sla") + 1] == str(cap.thresholds)
    assert "--find-capacity" in cmd and cmd[cmd.index("--capacity-start") + 1] == "2"
