"""The gate on CSVs written by real Locust runs (see conftest.runs): metrics, operators, names, outputs."""

from __future__ import annotations

import csv
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import PHASE_SLOW_MS, PHASE_SWITCH_S
from .sla_test_names import QUOTED_NAME

pytestmark = pytest.mark.timeout(120)

PERCENTILES = ["50", "66", "75", "80", "90", "95", "98", "99", "99.9", "99.99", "100"]
COLUMN = {
    "median": "Median Response Time",
    "avg": "Average Response Time",
    "min": "Min Response Time",
    "max": "Max Response Time",
    "rps": "Requests/s",
    "fail_rps": "Failures/s",
    "requests": "Request Count",
    "failures": "Failure Count",
    **{f"p({p})": f"{p}%" for p in PERCENTILES},
}


def stats_rows(prefix: str) -> dict[str, dict[str, str]]:
    """The CSV read back with the csv module (an independent reader), keyed like the gate's rows."""
    with open(prefix + "_stats.csv", newline="", encoding="utf-8") as handle:
        return {
            (r["Name"] if not r["Type"] else f"{r['Type']} {r['Name']}"): r for r in csv.DictReader(handle)
        }


def quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted scalar


def verdicts(json_path: Path) -> dict[tuple[str, str], dict]:
    document = json.loads(json_path.read_text(encoding="utf-8"))
    return {(v["row"], v["rule"]): v for v in document["verdicts"]}


@pytest.mark.parametrize("row_key", ["GET /fast", "Aggregated", "CUSTOM queue.publish"])
def test_every_metric_and_operator_passes_and_breaches_at_the_observed_value(
    runs, gate, write_yaml, tmp_path, row_key
):
    row = stats_rows(runs["mixed"].prefix)[row_key]
    requests, failures = int(row["Request Count"]), int(row["Failure Count"])
    observed = {metric: float(row[column]) for metric, column in COLUMN.items()}
    observed["fail_ratio"] = failures / requests
    expected = {}
    rules = []
    for metric, value in observed.items():
        for op, holds in (("<=", True), ("<", False), (">=", True), (">", False), ("==", True)):
            rule = f"{metric} {op} {value!r}"
            rules.append(rule)
            expected[rule] = "PASS" if holds else "FAIL"
    thresholds = write_yaml(
        "thresholds:\n  " + quote(row_key) + ":\n" + "".join(f"    - {quote(r)}\n" for r in rules)
    )
    code, out, err = gate(runs["mixed"].prefix, "--thresholds", thresholds, "--json", tmp_path / "v.json")
    assert (code, err) == (1, "")
    got = {rule: v["status"] for (_, rule), v in verdicts(tmp_path / "v.json").items()}
    assert got == expected
    assert len(expected) == 5 * 20  # 11 percentiles + 9 other metrics, five operators each
    assert requests > 0


def test_quoted_non_ascii_names_and_custom_types_by_type_name_and_by_unique_name(runs, gate, write_yaml):
    rows = stats_rows(runs["mixed"].prefix)
    assert f"GET {QUOTED_NAME}" in rows  # Locust wrote it quoted; the csv module reads it back whole
    slow_p50 = float(rows[f"GET {QUOTED_NAME}"]["50%"])
    thresholds = write_yaml(
        "thresholds:\n"
        f"  {quote('GET ' + QUOTED_NAME)}: ['p(50) >= 50ms']\n"
        f"  {quote(QUOTED_NAME)}: ['p(50) < 1m']\n"
        "  'queue.publish': ['max == 7', 'min == 7']\n"
        "  '/fail': ['fail_ratio == 100%', 'failures > 0']\n"
    )
    code, out, err = gate(runs["mixed"].prefix, "--thresholds", thresholds)
    assert (code, err) == (0, "")
    assert f"PASS    GET {QUOTED_NAME}" in out or f"PASS    {QUOTED_NAME}" in out
    assert f"{int(slow_p50)} ms" in out
    assert out.strip().endswith("SLA MET: 0 failed, 6 passed, 0 skipped")


def test_breach_line_shows_metric_row_observed_operator_and_limit_and_comes_first(runs, gate, write_yaml):
    row = stats_rows(runs["mixed"].prefix)["Aggregated"]
    thresholds = write_yaml("thresholds:\n  Aggregated: ['rps >= 1', 'fail_ratio < 0.01']\n")
    code, out, _ = gate(runs["mixed"].prefix, "--thresholds", thresholds)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["RESULT", "ROW", "METRIC", "OBSERVED", "OP", "LIMIT", "DETAIL"]
    ratio = int(row["Failure Count"]) / int(row["Request Count"]) * 100
    assert lines[1].startswith("FAIL    Aggregated  fail_ratio  ")
    assert f"{ratio:.3f}".rstrip("0").rstrip(".") + "%" in lines[1]
    assert "<   1%" in lines[1] and "top error: HTTPError('500 Server Error" in lines[1]
    assert lines[2].startswith("PASS    Aggregated  rps")
    assert lines[-1] == "SLA BREACHED: 1 failed, 1 passed, 0 skipped"


def test_absent_row_is_a_breach_listing_the_rows_that_exist_and_optional_rows_are_skipped(
    runs, gate, write_yaml
):
    thresholds = write_yaml(
        "thresholds:\n"
        "  'POST /v1/chat/completions': ['p(95) < 3000']\n"
        "  'TTFT /v1/chat/completions [stream]': {rules: ['p(95) < 800'], optional: true}\n"
    )
    code, out, _ = gate(runs["mixed"].prefix, "--thresholds", thresholds)
    assert code == 1
    fail = next(line for line in out.splitlines() if line.startswith("FAIL"))
    assert 'no data: row absent; rows present: "GET /fail", "GET /fast"' in fail
    assert f'"GET {QUOTED_NAME}"' in fail and '"Aggregated"' in fail
    skip = next(line for line in out.splitlines() if line.startswith("SKIP"))
    assert "TTFT /v1/chat/completions [stream]" in skip and "optional row absent" in skip
    assert out.strip().endswith("SLA BREACHED: 1 failed, 0 passed, 1 skipped")


def test_rows_below_min_requests_are_no_data(runs, gate, write_yaml):
    count = int(stats_rows(runs["mixed"].prefix)["GET /fast"]["Request Count"])
    thresholds = write_yaml(
        f"min_requests: {count + 1}\nthresholds:\n  'GET /fast': ['avg < 1m']\n"
        f"  '/fail': {{rules: ['failures >= 1'], min_requests: 1}}\n"
    )
    code, out, _ = gate(runs["mixed"].prefix, "--thresholds", thresholds)
    assert code == 1
    assert f"no data: row has {count} requests, min_requests is {count + 1}" in out
    assert "PASS    /fail" in out


def test_zero_request_run_fails_closed(runs, gate, write_yaml):
    rows = stats_rows(runs["idle"].prefix)
    assert rows["Aggregated"]["Request Count"] == "0" and rows["Aggregated"]["50%"] == "N/A"
    thresholds = write_yaml(
        "min_requests: 0\nthresholds:\n  Aggregated: ['fail_ratio < 1%', 'failures == 0']\n"
    )
    code, out, _ = gate(runs["idle"].prefix, "--thresholds", thresholds)
    assert code == 1
    assert out.count("no data: row has 0 requests, min_requests is 1") == 2


def test_baseline_regression_both_ways(runs, gate, write_yaml, tmp_path):
    prefix = runs["mixed"].prefix
    fast = stats_rows(prefix)["GET /fast"]
    thresholds = write_yaml(
        "thresholds:\n  Aggregated: ['requests > 0']\n"
        "regression:\n  'GET /fast':\n"
        "    - 'p(95) <= baseline + 10%'\n    - 'rps >= baseline - 5%'\n    - 'avg <= baseline - 10%'\n"
        "    - 'max <= baseline + 1s'\n"
    )
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and out.count("SKIP") == 4 and "no --baseline given" in out
    code, out, _ = gate(
        prefix, "--thresholds", thresholds, "--baseline", prefix, "--json", tmp_path / "r.json"
    )
    assert code == 1
    got = verdicts(tmp_path / "r.json")
    assert got[("GET /fast", "p(95) <= baseline + 10%")]["status"] == "PASS"
    assert got[("GET /fast", "p(95) <= baseline + 10%")]["limit"] == pytest.approx(float(fast["95%"]) * 1.1)
    assert got[("GET /fast", "rps >= baseline - 5%")]["status"] == "PASS"
    avg = got[("GET /fast", "avg <= baseline - 10%")]
    assert avg["status"] == "FAIL" and avg["limit"] == pytest.approx(
        float(fast["Average Response Time"]) * 0.9
    )
    assert f"baseline {fast['95%']} ms" in got[("GET /fast", "p(95) <= baseline + 10%")]["limit_text"]
    assert got[("GET /fast", "max <= baseline + 1s")]["limit"] == pytest.approx(
        float(fast["Max Response Time"]) + 1000
    )


def test_baseline_row_missing_is_no_data(runs, gate, write_yaml):
    thresholds = write_yaml(
        "thresholds:\n  Aggregated: ['requests > 0']\nregression:\n  'GET /fast': ['avg <= baseline']\n"
    )
    code, out, _ = gate(runs["mixed"].prefix, "--thresholds", thresholds, "--baseline", runs["idle"].prefix)
    assert code == 1 and "no data: baseline row absent" in out


def test_for_window_on_real_history(runs, gate, write_yaml, tmp_path):
    thresholds = write_yaml(
        "thresholds:\n  'GET /phase':\n"
        f"    - 'p(95) < {PHASE_SLOW_MS / 2:g} for 4s'\n"
        "    - 'p(95) < 1s for 4s'\n"
        "  Aggregated:\n    - 'rps > 0 for 5s'\n    - 'fail_ratio < 1% for 5s'\n"
    )
    code, out, err = gate(runs["phase"].prefix, "--thresholds", thresholds, "--json", tmp_path / "w.json")
    assert (code, err) == (1, "")
    got = verdicts(tmp_path / "w.json")
    slow = got[("GET /phase", f"p(95) < {PHASE_SLOW_MS / 2:g} for 4s")]
    assert slow["status"] == "FAIL"
    # /phase turned slow after PHASE_SWITCH_S of a 12 s run: the window figure violates from then to the end.
    assert 4 <= slow["violation_s"] <= 12 - PHASE_SWITCH_S
    assert slow["observed"] >= PHASE_SLOW_MS
    assert got[("GET /phase", "p(95) < 1s for 4s")]["status"] == "PASS"
    assert got[("GET /phase", "p(95) < 1s for 4s")]["violation_s"] == 0
    assert got[("Aggregated", "rps > 0 for 5s")]["status"] == "PASS"
    assert got[("Aggregated", "fail_ratio < 1% for 5s")]["status"] == "PASS"


def test_for_window_longer_than_the_history_is_no_data(runs, gate, write_yaml):
    thresholds = write_yaml("thresholds:\n  Aggregated: ['rps > 0 for 10m']\n")
    code, out, _ = gate(runs["mixed"].prefix, "--thresholds", thresholds)
    assert code == 1 and "shorter than the 600 s window" in out


def test_for_rules_without_the_history_they_need_exit_2(runs, gate, write_yaml, tmp_path):
    prefix = runs["plain"].prefix  # no --csv-full-history: history has Aggregated rows only
    per_row = write_yaml("thresholds:\n  'GET /fast': ['p(95) < 1s for 1s']\n")
    code, _, err = gate(prefix, "--thresholds", per_row)
    assert code == 2
    assert err == (
        f'check_sla: error: {prefix}_stats_history.csv: no per-row history for "GET /fast" (only '
        f'Aggregated was written) (got "p(95) < 1s for 1s"); run Locust with --csv {prefix} '
        "--csv-full-history\n"
    )
    cumulative = write_yaml("thresholds:\n  Aggregated: ['p(95) < 1s for 1s']\n")
    code, _, err = gate(prefix, "--thresholds", cumulative)
    assert code == 2 and "history percentiles are cumulative, not windowed, without --csv-full-history" in err
    rate = write_yaml("thresholds:\n  Aggregated: ['fail_ratio <= 100% for 1s']\n")
    assert gate(prefix, "--thresholds", rate)[0] == 0  # rates are per-second even without full history
    copy = tmp_path / "nohist"
    for suffix in ("_stats.csv", "_failures.csv"):
        shutil.copy(prefix + suffix, str(copy) + suffix)
    code, _, err = gate(copy, "--thresholds", rate)
    assert code == 2
    assert err == (
        f"check_sla: error: {copy}_stats_history.csv: history file not found; 'for' rules need it "
        f'(got "fail_ratio <= 100% for 1s"); run Locust with --csv {copy} --csv-full-history\n'
    )


def test_junit_json_and_markdown_reports_parse_back(runs, gate, write_yaml, tmp_path):
    thresholds = write_yaml(
        "thresholds:\n  Aggregated: ['fail_ratio < 0.01', 'rps >= 1']\n"
        "  'TTFT /v1/chat/completions [stream]': {rules: ['p(95) < 800'], optional: true}\n"
    )
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    code, out, _ = gate(
        runs["mixed"].prefix,
        "--thresholds",
        thresholds,
        "--junit",
        tmp_path / "out/j.xml",
        "--json",
        tmp_path / "j.json",
        "--markdown",
        tmp_path / "m.md",
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert code == 1
    suite = ET.parse(tmp_path / "out/j.xml").getroot()
    assert (suite.tag, suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        "testsuite",
        "3",
        "1",
        "1",
    )
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases["fail_ratio < 0.01"].find("failure")
    fail_line = next(line for line in out.splitlines() if line.startswith("FAIL"))
    assert failure is not None and failure.get("message").startswith(
        'FAIL fail_ratio of "Aggregated": observed '
    )
    assert "required < 1%" in failure.get("message")
    assert cases["rps >= 1"].find("failure") is None and cases["p(95) < 800"].find("skipped") is not None
    document = json.loads((tmp_path / "j.json").read_text(encoding="utf-8"))
    assert (document["result"], document["exit_code"]) == ("fail", 1)
    assert [v["status"] for v in document["verdicts"]] == ["FAIL", "SKIP", "PASS"]
    first = document["verdicts"][0]
    assert (first["row"], first["metric"], first["op"], first["limit"]) == (
        "Aggregated",
        "fail_ratio",
        "<",
        0.01,
    )
    assert first["line"] == failure.get("message")
    markdown = (tmp_path / "m.md").read_text(encoding="utf-8")
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[0] == "| Result | Row | Metric | Observed | Op | Limit | Detail |"
    assert table[1].startswith("| ❌ FAIL | Aggregated | fail_ratio |") and len(table) == 4
    assert markdown.splitlines()[0] == "### loadgate SLA gate: SLA BREACHED: 1 failed, 1 passed, 1 skipped"
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + markdown
    assert fail_line.split()[0] == "FAIL"


def test_quiet_prints_only_breaches_and_the_summary(runs, gate, write_yaml):
    thresholds = write_yaml("thresholds:\n  Aggregated: ['rps >= 1']\n")
    code, out, _ = gate(runs["mixed"].prefix, "--thresholds", thresholds, "--quiet")
    assert (code, out) == (0, "SLA MET: 0 failed, 1 passed, 0 skipped\n")


def test_pinned_command_runs_as_a_script(runs, write_yaml):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    thresholds = write_yaml("thresholds:\n  Aggregated: ['rps >= 1', 'fail_ratio < 0.01']\n")
    done = subprocess.run(
        [
            sys.executable,
            str(repo / "sla/check_sla.py"),
            runs["mixed"].prefix,
            "--thresholds",
            str(thresholds),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 1 and done.stderr == ""
    assert done.stdout.splitlines()[-1] == "SLA BREACHED: 1 failed, 1 passed, 0 skipped"


def test_default_threshold_file_is_found_from_any_directory(runs):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    prefix = runs["mixed"].prefix
    done = subprocess.run(
        [sys.executable, str(repo / "sla/check_sla.py"), prefix],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    # sla/thresholds.yaml was read (it asks for a 10 s warm-up, which this plain Locust run did not record)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(
        f"check_sla: error: {prefix}_loadgate.json: the thresholds require a 10s warm-up"
    )
