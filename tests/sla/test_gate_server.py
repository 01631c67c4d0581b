"""Row SERVER: thresholds on PREFIX_server_metrics.csv (--server-metrics), judged on the committed fixture
run (tests/sla/fixtures/job_*: measured window 1795383572.1 to 1795383607.97) plus a hand-written series
file. Exit 0 pass, 1 breach or no data, 2 bad expression (one line naming file, line, row and fix)."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from loadgate.contract import SERVER_METRICS_COLUMNS, SERVER_METRICS_CSV

from .test_gate_invalid import copy_job

pytestmark = pytest.mark.timeout(60)

BEFORE, INSIDE, AFTER = 1795383565.0, 1795383575.0, 1795383610.0  # warm-up, measured window, after stop
A, B = 'model_name="a"', 'model_name="b"'
SAMPLES = [
    (BEFORE, "mock_requests_waiting", "", "50.0"),
    (BEFORE, "vllm:num_requests_running", A, "90.0"),
    (INSIDE, "mock_requests_waiting", "", "8.0"),
    (INSIDE, "vllm:num_requests_running", A, "3.0"),
    (INSIDE, "vllm:num_requests_running", B, "4.0"),
    (INSIDE + 5, "mock_requests_waiting", "", "2.0"),
    (INSIDE + 5, "vllm:num_requests_running", A, "1.0"),
    (INSIDE + 5, "vllm:num_requests_running", B, "1.0"),
    (INSIDE + 5, "vllm:gpu_cache_usage_perc", "", "NaN"),
    (AFTER, "mock_requests_waiting", "", "70.0"),
]


def write_series(path: Path, samples: list[tuple[float, str, str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(SERVER_METRICS_COLUMNS)
        writer.writerows(samples)


@pytest.fixture
def run(tmp_path: Path) -> str:
    prefix = copy_job(tmp_path)
    write_series(Path(prefix + SERVER_METRICS_CSV), SAMPLES)
    return prefix


def server_rows(out: str) -> list[str]:
    return [" ".join(line.split()) for line in out.splitlines() if " SERVER " in line]


def test_aggregates_read_only_the_measured_window(gate, write_yaml, run):
    rules = write_yaml(
        "thresholds:\n  SERVER:\n"
        "    - max(mock_requests_waiting) <= 8\n"
        "    - avg(mock_requests_waiting) == 5\n"
        "    - last(mock_requests_waiting) < 3\n"
        "    - min(mock_requests_waiting) >= 2\n"
        "    - max(vllm:num_requests_running) == 7\n"  # two series: summed per scrape (3 + 4)
        '    - last(vllm:num_requests_running{model_name="b"}) == 1\n'
    )
    code, out, err = gate(run, "--thresholds", rules)
    assert (code, err) == (0, "")
    assert server_rows(out) == [
        "PASS SERVER max(mock_requests_waiting) 8 <= 8 2 scrapes in the measured window",
        "PASS SERVER avg(mock_requests_waiting) 5 == 5 2 scrapes in the measured window",
        "PASS SERVER last(mock_requests_waiting) 2 < 3 2 scrapes in the measured window",
        "PASS SERVER min(mock_requests_waiting) 2 >= 2 2 scrapes in the measured window",
        "PASS SERVER max(vllm:num_requests_running) 7 == 7 2 scrapes in the measured window, the sum of 2 series",
        'PASS SERVER last(vllm:num_requests_running{model_name="b"}) 1 == 1 2 scrapes in the measured window',
    ]
    assert out.endswith("SLA MET: 0 failed, 6 passed, 0 skipped\n")


def test_a_breach_fails_in_every_report(gate, write_yaml, run, tmp_path):
    rules = write_yaml("thresholds:\n  SERVER:\n    - max(mock_requests_waiting) < 8\n")
    junit, md, js = tmp_path / "j.xml", tmp_path / "v.md", tmp_path / "v.json"
    code, out, _ = gate(run, "--thresholds", rules, "--junit", junit, "--markdown", md, "--json", js)
    assert code == 1
    line = 'FAIL max(mock_requests_waiting) of "SERVER": observed 8, required < 8 (2 scrapes in the measured window)'
    assert server_rows(out) == [
        "FAIL SERVER max(mock_requests_waiting) 8 < 8 2 scrapes in the measured window"
    ]
    case = ET.parse(junit).getroot().find("testcase")
    assert case is not None and case.get("classname") == "check_sla.thresholds.SERVER"
    assert case.find("failure").get("message") == line
    assert (
        "| ❌ FAIL | SERVER | max(mock_requests_waiting) | 8 | < | 8 | 2 scrapes in the measured window |"
        in (md.read_text())
    )
    verdict = json.loads(js.read_text())["verdicts"][0]
    assert (verdict["row"], verdict["status"], verdict["observed"], verdict["line"]) == (
        "SERVER",
        "FAIL",
        8.0,
        line,
    )
    assert verdict["source"] == run + SERVER_METRICS_CSV


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (
            "max(mock_requests_queued) < 10",
            "no data: no series mock_requests_queued in {src}; series present: mock_requests_waiting, "
            "vllm:gpu_cache_usage_perc, vllm:num_requests_running",
        ),
        (
            'max(vllm:num_requests_running{model_name="c"}) < 10',
            'no data: no series vllm:num_requests_running{{model_name="c"}} in {src}; series present: '
            "mock_requests_waiting, vllm:gpu_cache_usage_perc, vllm:num_requests_running",
        ),
        ("max(vllm:gpu_cache_usage_perc) < 0.9", "no data: a non-finite value (NaN) at 21:39:40"),
    ],
)
def test_no_data_fails_closed(gate, write_yaml, run, rule, reason):
    code, out, _ = gate(run, "--thresholds", write_yaml(f"thresholds:\n  SERVER:\n    - {rule}\n"))
    assert code == 1
    assert reason.format(src=run + SERVER_METRICS_CSV) in out
    assert "SLA BREACHED: 1 failed, 0 passed, 0 skipped" in out


def test_no_server_metrics_file_fails_closed_unless_optional(gate, write_yaml, tmp_path):
    prefix = copy_job(tmp_path)
    rule = "    - max(mock_requests_waiting) < 10\n"
    code, out, _ = gate(prefix, "--thresholds", write_yaml("thresholds:\n  SERVER:\n" + rule))
    assert code == 1
    assert f"no data: no {prefix}{SERVER_METRICS_CSV} (run the load with --server-metrics URL or auto)" in out
    optional = "thresholds:\n  SERVER:\n    optional: true\n    rules:\n" + rule.replace("    -", "      -")
    code, out, _ = gate(prefix, "--thresholds", write_yaml(optional))
    assert code == 0 and out.endswith("SLA MET: 0 failed, 0 passed, 1 skipped\n")


FIX = (
    'write "AGGREGATE(SERIES) OP NUMBER" with AGGREGATE one of max, min, avg, last, e.g. '
    '"max(vllm:num_requests_waiting) < 10" or "avg(vllm:gpu_cache_usage_perc{model_name="m"}) < 0.9"'
)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            "sum(mock_requests_waiting) < 10",
            f"row SERVER: unknown aggregate 'sum' (got \"sum(mock_requests_waiting) < 10\"); {FIX}",
        ),
        ("p(95) < 10", f'row SERVER: cannot parse SERVER threshold (got "p(95) < 10"); {FIX}'),
        (
            "max(mock_requests_waiting) < 10ms",
            "row SERVER: bad value '10ms' (got \"max(mock_requests_waiting) < 10ms\"); write the limit as a "
            "plain number, e.g. 10 or 0.9",
        ),
        (
            "max(x{model=a}) < 1",
            'row SERVER: bad label selector {model=a} (got "max(x{model=a}) < 1"); write labels as '
            '{name="value",other="value"}',
        ),
    ],
)
def test_bad_expression_is_exit_2_with_one_line(gate, write_yaml, run, rule, message):
    rules = write_yaml(f"thresholds:\n  SERVER:\n    - '{rule}'\n")
    code, out, err = gate(run, "--thresholds", rules)
    assert (code, out) == (2, "")
    assert err == f"check_sla: error: {rules}:3: {message}\n"


def test_server_rows_are_thresholds_only(gate, write_yaml, run):
    rules = write_yaml("regression:\n  SERVER:\n    - max(mock_requests_waiting) < 10\n")
    code, _, err = gate(run, "--thresholds", rules)
    assert code == 2
    assert err == (
        f"check_sla: error: {rules}:3: row SERVER is only allowed under 'thresholds:' (got "
        '"max(mock_requests_waiting) < 10"); move the SERVER row under thresholds: with an absolute limit\n'
    )


def test_a_corrupt_series_file_is_exit_2_naming_its_line(gate, write_yaml, run):
    path = Path(run + SERVER_METRICS_CSV)
    write_series(path, [*SAMPLES[:2], (INSIDE, "mock_requests_waiting", "", "eight"), *SAMPLES[3:]])
    code, _, err = gate(
        run, "--thresholds", write_yaml("thresholds:\n  SERVER: ['max(mock_requests_waiting) < 9']\n")
    )
    assert code == 2
    assert err == (
        f'check_sla: error: {path}:4: value is not a number (got "eight"); re-run Locust to rewrite the file '
        "(was it truncated or hand-edited?)\n"
    )
