"""The capacity search's logic and files (loadgate.capacity_search), without load."""

import csv
import json

import pytest

from loadgate import capacity_search as cap
from loadgate.gate.config import parse_config


def run_search(start, resolution, passes_below, no_data_below=0.0):
    search = cap.Search(start, resolution)
    rate = search.next_rate()
    while rate is not None:
        result = cap.NO_DATA if rate < no_data_below else cap.PASSED if rate < passes_below else cap.FAILED
        search.record(rate, result)
        rate = search.next_rate()
    return search


def test_doubles_then_bisects_to_the_resolution():
    search = run_search(1, 0.1, passes_below=4.4)
    assert [r for r, _ in search.tried] == [1, 2, 4, 8, 6, 5, 4.5, 4.25]
    assert search.low == 4.25 and search.high == 4.5 and search.bounded
    assert (search.high - search.low) / search.low < 0.1


def test_the_first_step_failing_finds_nothing():
    search = run_search(2, 0.1, passes_below=1)
    assert search.tried == [(2, cap.FAILED)] and search.low is None


def test_steps_without_enough_data_climb_on_and_fail_closed_above_a_pass():
    search = run_search(1, 0.1, passes_below=10, no_data_below=3)
    assert search.tried[:3] == [(1, cap.NO_DATA), (2, cap.NO_DATA), (4, cap.PASSED)]
    assert 9 <= search.low < 10


def test_no_failure_up_to_the_top_is_a_lower_bound():
    search = cap.Search(1, 0.1, max_doublings=3)
    for _ in range(4):
        search.record(search.next_rate(), cap.PASSED)
    assert search.next_rate() is None and search.low == 8 and not search.bounded


SLA = """\
warmup: 10s
min_requests: 5
thresholds:
  Aggregated:
    - "fail_ratio < 1%"
    - "rps >= 2"
    - "fail_ratio < 5% for 10s"
    - "p(95) < 3s for 1m"
  "TTFT /v1/chat/completions [stream]": ["p(95) < 500"]
  LLM: ["lost_jobs == 0", "tokens_per_s > 50"]
regression:
  Aggregated: ["p(95) <= baseline + 10%"]
"""


def test_a_step_judges_what_one_window_can_and_names_the_rest():
    config, skipped = cap.step_config(parse_config(SLA, "sla.yaml"), measured_s=20)
    kept = {(row.key, rs.rule.text) for row in config.thresholds for rs in row.rules}
    assert kept == {
        ("Aggregated", "fail_ratio < 1%"),
        ("Aggregated", "fail_ratio < 5% for 10s"),
        ("TTFT /v1/chat/completions [stream]", "p(95) < 500"),
        ("LLM", "lost_jobs == 0"),
    }
    assert config.warmup_s == 0 and config.min_requests == 5 and not config.regression
    assert [(s.row, s.rule, s.line) for s in skipped] == [
        ("Aggregated", "p(95) <= baseline + 10%", 12),
        ("Aggregated", "rps >= 2", 6),
        ("Aggregated", "p(95) < 3s for 1m", 8),
        ("LLM", "tokens_per_s > 50", 10),
    ]
    assert "longer than a step's measured 20s" in skipped[2].reason


def step(rate, result, *thresholds, achieved=None):
    return {
        "step": 0, "rate_rps": rate, "achieved_rps": achieved or rate, "result": result,
        "output_tokens_per_s": rate * 10, "thresholds": list(thresholds),
    }  # fmt: skip


def threshold(row, rule, observed, limit, status):
    return {"row": row, "metric": rule.split()[0], "rule": rule, "limit": limit, "observed": observed,
            "observed_text": f"{observed}", "status": status, "reason": ""}  # fmt: skip


def test_the_limiting_threshold_is_the_worst_on_the_lowest_failing_step_above():
    ttft = "TTFT /v1/chat/completions [stream]"
    steps = [
        step(4, cap.PASSED, threshold(ttft, "p(95) < 500", 200, 500, "PASS")),
        step(8, cap.FAILED, threshold(ttft, "p(95) < 500", 3000, 500, "FAIL"),
             threshold("Aggregated", "fail_ratio < 0.01", 0.5, 0.01, "FAIL")),
        step(6, cap.FAILED, threshold(ttft, "p(95) < 500", 900, 500, "FAIL"),
             threshold("Aggregated", "fail_ratio < 0.01", 0.011, 0.01, "FAIL")),
    ]  # fmt: skip
    lim = cap.limiting(steps, 4)
    assert (lim["row"], lim["rate_rps"], lim["observed"]) == (ttft, 6, 900)
    assert lim["also_failed"] == ["Aggregated: fail_ratio < 0.01"]
    assert cap.limiting(steps[:1], 4) is None


def test_sustained_allows_the_edges_and_a_random_counts_spread():
    assert cap.sustain_dict(10, 7)["status"] == "PASS"  # 9 - 2 at the edges
    assert cap.sustain_dict(40, 30)["status"] == "FAIL"
    assert cap.sustain_dict(640, 519)["status"] == "FAIL"  # 81% of a constant rate: not sustained
    assert cap.sustain_dict(640, 519, "poisson")["status"] == "PASS"  # within 3 sigma of 90% of Poisson's
    assert cap.sustain_dict(640, 480, "poisson")["status"] == "FAIL"
    late = cap.sustain_dict(640, 400, "constant", cause="late")
    assert (
        late["reason"] == "the offered rate was not sustained: the load generator sent them late (CPU-bound?)"
    )
    assert cap.sustain_dict(0, 0)["observed"] is None and cap.sustain_dict(0, 0)["status"] == "FAIL"


def test_the_files_parse(tmp_path):
    ttft = "TTFT /v1/chat/completions [stream]"
    steps = [
        step(2, cap.PASSED, threshold(ttft, "p(95) < 500", 100, 500, "PASS")),
        step(4, cap.FAILED, threshold(ttft, "p(95) < 500", 900, 500, "FAIL"), achieved=3.5),
    ]
    document = {"capacity": {"rate_rps": 2}, "limiting": cap.limiting(steps, 2), "steps": steps}
    cap.write_json(str(tmp_path / "c.json"), document)
    cap.write_csv(str(tmp_path / "c.csv"), steps)
    cap.write_png(str(tmp_path / "c.png"), document)
    assert json.loads((tmp_path / "c.json").read_text())["limiting"]["rate_rps"] == 4
    rows = list(csv.DictReader((tmp_path / "c.csv").open()))
    assert [(r["rate_rps"], r["result"], r[f"{ttft}: p(95) < 500"]) for r in rows] == [
        ("2", "pass", "100"),
        ("4", "fail", "900"),
    ]
    assert rows[1]["failed"] == f"{ttft}: p(95) < 500"
    import matplotlib.image

    assert matplotlib.image.imread(str(tmp_path / "c.png")).shape[0] > 400


@pytest.mark.parametrize("rate", [0.3, 3.0, 1234.5678])
def test_rates_stay_readable(rate):
    search = cap.Search(rate, 0.1)
    search.record(search.next_rate(), cap.PASSED)
    assert len(str(search.next_rate())) <= 7
