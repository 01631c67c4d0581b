"""The shipped threshold files parse, and the commented "every feature" block in sla/thresholds.yaml does too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgate.gate.config import load_config, parse_config

from .conftest import FIXTURES, REPO

SHIPPED = sorted([REPO / "sla/thresholds.yaml", *(REPO / "sla/examples").glob("*.yaml")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_files_parse(path: Path):
    config = load_config(path)
    assert config.thresholds or config.regression
    assert all(spec.rules for spec in config.all_rows())


def test_default_thresholds_match_the_default_job():
    config = load_config(REPO / "sla/thresholds.yaml")
    assert config.warmup_s == 10.0  # the main job's default --warmup; a larger value would make it exit 2
    keys = {spec.key for spec in config.thresholds}
    assert {"Aggregated", "POST /v1/chat/completions", "TTFT /v1/chat/completions [stream]", "LLM"} <= keys


def test_commented_examples_in_the_default_file_are_valid():
    text = (REPO / "sla/thresholds.yaml").read_text(encoding="utf-8")
    block = text.split("# Every other feature", 1)[1].splitlines()[1:]
    uncommented = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in block)
    config = parse_config(uncommented, "commented block")
    rules = [rs.rule for spec in config.all_rows() for rs in spec.rules]
    assert any(r.window_s for r in rules) and any(r.baseline for r in rules)
    assert {r.metric.name for r in rules} >= {
        "p(99.9)",
        "median",
        "max",
        "min",
        "requests",
        "failures",
        "fail_rps",
        "rps",
        "goodput",
        "fail_ratio",
        "p(95)",
    }


def test_regression_only_file_without_baseline_is_exit_2(gate, tmp_path):
    thresholds = REPO / "sla/examples/regression-only.yaml"
    code, _, err = gate(tmp_path / "run", "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f"check_sla: error: {thresholds}:regression: the file has only regression rules and no --baseline "
        'was given, so there is nothing to judge (got "no --baseline"); pass --baseline BASE_PREFIX (a '
        "previous run's --csv prefix) or add 'thresholds:'\n"
    )


def test_default_thresholds_pass_on_a_real_default_job_run(gate, tmp_path):
    """tests/sla/fixtures/job_*: the CSVs of `bash ci/run_load_gate.sh` (defaults), histories cut to the rows the
    shipped "for" rules read."""
    code, out, err = gate(FIXTURES / "job", "--json", tmp_path / "v.json")
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "SLA MET: 0 failed, 17 passed, 0 skipped"
    verdicts = {(v["row"], v["rule"]): v for v in json.loads((tmp_path / "v.json").read_text())["verdicts"]}
    assert verdicts[("POST /v1/chat/completions", "p(95) < 12s")]["observed"] == 5520.0
    assert verdicts[("LLM", "tokens_per_s > 50")]["observed"] == pytest.approx(440.3, abs=0.1)
    assert verdicts[("TTFT /v1/chat/completions [stream]", "p(95) < 4s for 10s")]["violation_s"] == 0
