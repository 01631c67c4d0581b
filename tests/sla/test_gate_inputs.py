"""Bad input (exit 2, one exact line), warm-up, "for" window boundaries, stale CSVs, LLM rows.

Runs are the committed fixtures (copied from a real Locust run, tests/sla/fixtures/real_*), edited
where a test needs a defect, or histories written sample by sample where exact boundaries matter.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from .conftest import FIXTURES
from .sla_test_names import QUOTED_NAME

pytestmark = pytest.mark.timeout(60)

T0 = 1_800_000_000  # an epoch second for written histories


def copy_run(tmp_path: Path, name: str = "run", with_history: bool = True) -> str:
    prefix = tmp_path / name
    for suffix in ("_stats.csv", "_failures.csv") + (("_stats_history.csv",) if with_history else ()):
        shutil.copy(FIXTURES / f"real{suffix}", f"{prefix}{suffix}")
    return str(prefix)


def history_header() -> list[str]:
    with open(FIXTURES / "real_stats_history.csv", newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def write_history(
    prefix: str, samples: list[tuple[int, str, str, float, float, str]], llm: bool = False
) -> None:
    """samples: (timestamp, type, name, rps, p95, total requests); other percentiles follow p95."""
    header = history_header()
    with open(
        prefix + ("_llm_stats_history.csv" if llm else "_stats_history.csv"),
        "w",
        newline="",
        encoding="utf-8",
    ) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for stamp, type_, name, rps, p95, total in samples:
            row = dict.fromkeys(header, "0")
            row.update(
                {
                    "Timestamp": str(stamp),
                    "User Count": "5",
                    "Type": type_,
                    "Name": name,
                    "Requests/s": f"{rps:2f}",
                    "Failures/s": "0.000000",
                    "Total Request Count": total,
                    "Total Failure Count": "0",
                }
            )
            for column in header:
                if column.endswith("%"):
                    row[column] = str(p95) if p95 == p95 else "N/A"
            writer.writerow([row[c] for c in header])


def write_meta(prefix: str, **fields) -> None:
    Path(prefix + "_loadgate.json").write_text(
        json.dumps({"final_stats_written": True, **fields}), encoding="utf-8"
    )


def edit(path: str, old: str, new: str) -> None:
    text = Path(path).read_text(encoding="utf-8")
    assert old in text
    Path(path).write_text(text.replace(old, new, 1), encoding="utf-8")


# -- exit 2: CSV input ------------------------------------------------------------------------------


def test_missing_stats_csv(gate, write_yaml, tmp_path):
    thresholds = write_yaml("thresholds:\n  Aggregated: ['rps > 1']\n")
    prefix = tmp_path / "nothing"
    code, out, err = gate(prefix, "--thresholds", thresholds)
    assert (code, out) == (2, "")
    assert err == (
        f'check_sla: error: {prefix}_stats.csv: run CSV not found (got "{prefix}_stats.csv"); run Locust '
        f"headless with --csv {prefix} (and --csv-full-history), or fix the prefix\n"
    )


def test_a_file_given_instead_of_the_prefix(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    code, _, err = gate(
        prefix + "_stats.csv", "--thresholds", write_yaml("thresholds:\n  Aggregated: ['rps > 1']\n")
    )
    assert code == 2 and err.endswith(f"; pass the prefix, not a file: {prefix}\n")


def test_empty_stats_csv(gate, write_yaml, tmp_path):
    prefix = tmp_path / "empty"
    Path(f"{prefix}_stats.csv").write_text("", encoding="utf-8")
    code, _, err = gate(prefix, "--thresholds", write_yaml("thresholds:\n  Aggregated: ['rps > 1']\n"))
    assert code == 2
    assert err == (
        f'check_sla: error: {prefix}_stats.csv: empty CSV file (no header) (got "0 bytes"); re-run Locust; '
        "the run was probably killed before writing stats\n"
    )


def test_header_only_stats_csv_is_no_data(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path, with_history=False)
    header = Path(prefix + "_stats.csv").read_text(encoding="utf-8").splitlines()[0]
    Path(prefix + "_stats.csv").write_text(header + "\n", encoding="utf-8")
    code, out, _ = gate(prefix, "--thresholds", write_yaml("thresholds:\n  Aggregated: ['rps > 1']\n"))
    assert code == 1 and "no data: row absent; rows present: none" in out


def test_non_number_names_file_line_and_column(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    edit(prefix + "_stats.csv", "GET,/fast,162,", "GET,/fast,lots,")
    code, _, err = gate(prefix, "--thresholds", write_yaml("thresholds:\n  Aggregated: ['rps > 1']\n"))
    assert code == 2
    assert err == (
        f"check_sla: error: {prefix}_stats.csv:3: column 'Request Count' is not a number (got \"lots\"); "
        "re-run Locust to rewrite the file (was it truncated or hand-edited?)\n"
    )


def test_missing_column(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    edit(prefix + "_stats.csv", "Requests/s,", "Reqs/s,")
    code, _, err = gate(prefix, "--thresholds", write_yaml("thresholds:\n  Aggregated: ['rps > 1']\n"))
    assert code == 2
    assert err.startswith(
        f"check_sla: error: {prefix}_stats.csv:1: missing column 'Requests/s' (got \"Type,Name,"
    )
    assert err.endswith("; pass the PREFIX of Locust's --csv output (files PREFIX_stats.csv etc.)\n")


def test_malformed_history_is_exit_2_even_without_for_rules(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    lines = Path(prefix + "_stats_history.csv").read_text(encoding="utf-8").splitlines()
    Path(prefix + "_stats_history.csv").write_text(
        "\n".join(lines[:-1] + [lines[-1][:12]]) + "\n", encoding="utf-8"
    )
    code, _, err = gate(prefix, "--thresholds", write_yaml("thresholds:\n  Aggregated: ['rps > 1']\n"))
    assert (
        code == 2 and f"{prefix}_stats_history.csv:{len(lines)}: column" in err and "is not a number" in err
    )


def test_aggregated_only_file(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path, with_history=False)
    lines = Path(prefix + "_stats.csv").read_text(encoding="utf-8").splitlines()
    Path(prefix + "_stats.csv").write_text("\n".join([lines[0], lines[-1]]) + "\n", encoding="utf-8")
    thresholds = write_yaml(
        "thresholds:\n  Aggregated: ['requests == 256', 'fail_ratio < 12%', 'p(95) == 65']\n"
        "  'GET /fast': ['p(95) < 1s']\n"
    )
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 1
    assert out.count("PASS") == 3 and 'no data: row absent; rows present: "Aggregated"' in out


def test_name_alone_that_is_ambiguous_is_exit_2(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path, with_history=False)
    edit(prefix + "_stats.csv", "CUSTOM,queue.publish,", "POST,/fast,")
    code, _, err = gate(prefix, "--thresholds", write_yaml("thresholds:\n  '/fast': ['avg < 1s']\n"))
    assert code == 2
    assert err.endswith(
        ':2: row name \'/fast\' is ambiguous (got "/fast"); write it as "Type Name", one of '
        '"GET /fast", "POST /fast"\n'
    )


def test_percentile_the_csv_does_not_have(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    thresholds = write_yaml("thresholds:\n  Aggregated:\n    - 'p(97) < 1s'\n")
    code, _, err = gate(prefix, "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f"check_sla: error: {thresholds}:3: p(97) is not a percentile {prefix}_stats.csv has (got "
        '"p(97) < 1s"); use one of p(50) p(66) p(75) p(80) p(90) p(95) p(98) p(99) p(99.9) p(99.99) '
        "p(100)\n"
    )


# -- exit 2: threshold file and command line ------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "thresholds:\n  Aggregated:\n    - 'p95 < 3000'\n",
            ":3: unknown metric 'p95' (got \"p95 < 3000\"); use one of p(N) (N a percentile Locust writes: 50 66 75 80 "
            "90 95 98 99 99.9 99.99 100), median, avg, min, max, rps, fail_rps, fail_ratio, requests, failures; on row "
            "LLM: goodput, tokens_per_s, output_tokens, lost_jobs, cancelled, loadgen_lag_p99, achieved_rate, "
            "schedule_lag_p99",
        ),
        (
            "thresholds:\n  Aggregated: ['avg < 1']\n  Aggregated: ['avg < 2']\n",
            ":3: duplicate key 'Aggregated' in thresholds (first on line 2) (got \"Aggregated\"); merge the two entries "
            "into one",
        ),
        (
            "thresholds:\n  Aggregated: ['avg < 1'\n",
            ":3: YAML syntax error (got \"expected ',' or ']', but got '<stream end>'\"); fix the YAML syntax",
        ),
        (
            "treshold:\n  Aggregated: ['avg < 1']\n",
            ":1: unknown top-level key 'treshold' (got \"treshold\"); use only warmup, min_requests, thresholds, "
            "regression",
        ),
        (
            "warmup: soon\nthresholds:\n  Aggregated: ['avg < 1']\n",
            ':1: warmup: bad duration (got "soon"); write e.g. "30s", "1m30s", "500ms" or a number of seconds',
        ),
        (
            "min_requests: -1\nthresholds:\n  Aggregated: ['avg < 1']\n",
            ":1: min_requests must be a whole number >= 0 (got \"-1\"); write e.g. 'min_requests: 50'",
        ),
        (
            "thresholds:\n  Aggregated: {rules: ['avg < 1'], optional: maybe}\n",
            ":2: Aggregated: optional must be true or false (got \"maybe\"); write 'optional: true'",
        ),
        (
            "thresholds:\n  Aggregated: {min_requests: 5}\n",
            ":2: row 'Aggregated' has no 'rules' list (got \"Aggregated\"); add 'rules: [\"p(95) < 3000\"]'",
        ),
        (
            "thresholds:\n  Aggregated: 'avg < 1'\n",
            ':2: row \'Aggregated\' must list its thresholds (got "avg < 1"); write a YAML list, e.g. - "p(95) < 3000"',
        ),
        (
            "thresholds:\n  Aggregated: ['avg < baseline']\n",
            ":2: 'baseline' is only allowed under 'regression:' (got \"avg < baseline\"); move the rule under "
            "'regression:' (evaluated with --baseline)",
        ),
        (
            "regression:\n  Aggregated: ['avg < 5']\n",
            ':2: a regression rule must compare with \'baseline\' (got "avg < 5"); write e.g. "p(95) <= baseline + '
            '10%", or move it under thresholds:',
        ),
        (
            "thresholds:\n  Aggregated: ['avg < 5 for 10s']\n",
            ":2: 'for' needs a per-second figure; avg has none in Locust's history (got \"avg < 5 for 10s\"); use 'for' "
            "with p(N), median, rps, fail_rps or fail_ratio, or drop 'for'",
        ),
        (
            "thresholds:\n  Aggregated: ['rps > 5 ms']\n",
            ":2: unit 'ms' does not apply to rps (got \"rps > 5 ms\"); write requests per second as a plain number, "
            "e.g. 5 or 0.5",
        ),
        ("thresholds:\n", ": no thresholds defined (got \"\"); add a 'thresholds:' mapping of row: [rules]"),
        ("", ": threshold file is empty (got \"\"); add a 'thresholds:' mapping"),
    ],
)
def test_threshold_file_errors_name_the_line(gate, write_yaml, tmp_path, yaml_text, expected):
    prefix = copy_run(tmp_path)
    thresholds = write_yaml(yaml_text)
    code, out, err = gate(prefix, "--thresholds", thresholds)
    assert (code, out) == (2, "")
    assert err == f"check_sla: error: {thresholds}{expected}\n"


def test_missing_threshold_file(gate, tmp_path):
    code, _, err = gate(copy_run(tmp_path), "--thresholds", tmp_path / "nope.yaml")
    assert code == 2
    assert err == (
        f'check_sla: error: {tmp_path}/nope.yaml: threshold file not found (got "{tmp_path}/nope.yaml"); '
        "pass --thresholds FILE\n"
    )


def test_command_line_errors_keep_the_one_line_format(gate):
    code, out, err = gate("--thresholds")
    assert (code, out) == (2, "")
    assert err.startswith("check_sla: error: check_sla: ") and err.endswith("; see check_sla --help\n")
    assert err.count("\n") == 1


def test_unwritable_report_path(gate, write_yaml, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    code, _, err = gate(
        copy_run(tmp_path),
        "--thresholds",
        write_yaml("thresholds:\n  Aggregated: ['rps > 1']\n"),
        "--json",
        blocker / "out.json",
    )
    assert code == 2 and err.startswith(f"check_sla: error: {blocker}/out.json: cannot write report (got ")


# -- warm-up -------------------------------------------------------------------------------------------------


WARM = "warmup: 30s\nthresholds:\n  Aggregated: ['rps > 1']\n"


def test_warmup_requires_the_harness_record(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    code, _, err = gate(prefix, "--thresholds", write_yaml(WARM))
    assert code == 2
    assert err == (
        f"check_sla: error: {prefix}_loadgate.json: the thresholds require a 30s warm-up but the run has "
        'no warm-up record (got "no file"); run the load with loadgate\'s --warmup (env LOADGATE_WARMUP) '
        "and --csv PREFIX, which write this file\n"
    )


def test_warmup_shorter_than_required(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_meta(prefix, warmup_s=10, stats_reset_at=T0)
    code, _, err = gate(prefix, "--thresholds", write_yaml(WARM))
    assert code == 2
    assert err == (
        f"check_sla: error: {prefix}_loadgate.json:warmup_s: the run warmed up less than the thresholds' "
        "warmup (30s) (got 10); re-run with --warmup 30s or longer\n"
    )


def test_warmup_never_reset(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_meta(prefix, warmup_s=30, stats_reset_at=None)
    code, _, err = gate(prefix, "--thresholds", write_yaml(WARM))
    assert code == 2
    assert err == (
        f"check_sla: error: {prefix}_loadgate.json:stats_reset_at: the run's stats were never reset after "
        "the warm-up (the run ended before the warm-up did?) (got nothing); re-run with a run time longer "
        "than the 30s warm-up\n"
    )


def test_warmup_record_unreadable(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    Path(prefix + "_loadgate.json").write_text("{not json", encoding="utf-8")
    code, _, err = gate(prefix, "--thresholds", write_yaml(WARM))
    assert code == 2 and err.startswith(
        f"check_sla: error: {prefix}_loadgate.json: unreadable run metadata (got "
    )


def test_warmup_baseline_needs_its_own_record(gate, write_yaml, tmp_path):
    prefix, base = copy_run(tmp_path), copy_run(tmp_path, "base")
    write_meta(prefix, warmup_s=30, stats_reset_at=T0)
    code, _, err = gate(prefix, "--thresholds", write_yaml(WARM), "--baseline", base)
    assert code == 2 and "but the baseline run has no warm-up record" in err


def test_history_before_the_reset_is_excluded(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    # 20 slow seconds of warm-up, then 40 fast ones; the reset happened at T0 + 19.6. Per-row samples
    # too: Locust's Aggregated history percentiles are windowed only with --csv-full-history.
    samples = [
        (T0 + s, type_, name, 10.0, 5000.0 if s < 20 else 100.0, total)
        for s in range(60)
        for type_, name, total in (("GET", "/fast", "162"), ("", "Aggregated", "256"))
    ]
    write_history(prefix, samples)
    thresholds = write_yaml("warmup: 15s\nthresholds:\n  Aggregated: ['p(95) < 1s for 5s']\n")
    write_meta(prefix, warmup_s=15, stats_reset_at=T0 + 19.6)
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and "never violated (worst sample 100 ms)" in out
    write_meta(prefix, warmup_s=15, stats_reset_at=T0 + 10.2)  # a reset too early leaves 9 slow samples in
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 1 and "violated for 8 s" in out


# -- "for" windows: exact boundaries ---------------------------------------------------------------------


@pytest.mark.parametrize(("violating_samples", "status"), [(30, 0), (31, 1)])
def test_for_window_boundary(gate, write_yaml, tmp_path, violating_samples, status):
    """30 s means violating samples spanning 30 s: timestamps t..t+30, i.e. 31 one-second samples."""
    prefix = copy_run(tmp_path)
    samples = [
        (T0 + s, "GET", "/fast", 10.0, 900.0 if 10 <= s < 10 + violating_samples else 100.0, "162")
        for s in range(60)
    ]
    write_history(prefix, samples)
    code, out, _ = gate(
        prefix, "--thresholds", write_yaml("thresholds:\n  'GET /fast': ['p(95) < 500 for 30s']\n")
    )
    assert code == status
    assert f"violated for {violating_samples - 1} s" in out and "worst 900 ms" in out


def test_unknown_samples_do_not_interrupt_a_violation(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    values = [100.0] * 5 + [900.0] * 5 + [float("nan"), 0.0] + [900.0] * 5 + [100.0] * 5
    write_history(prefix, [(T0 + s, "GET", "/fast", 10.0, v, "162") for s, v in enumerate(values)])
    code, out, _ = gate(
        prefix, "--thresholds", write_yaml("thresholds:\n  'GET /fast': ['p(95) < 500 for 11s']\n")
    )
    assert code == 1 and "violated for 11 s" in out


def test_rate_window_uses_greater_than(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    rates = [20.0] * 10 + [2.0] * 12 + [20.0] * 10
    write_history(prefix, [(T0 + s, "", "Aggregated", r, 100.0, "256") for s, r in enumerate(rates)])
    code, out, _ = gate(
        prefix, "--thresholds", write_yaml("thresholds:\n  Aggregated: ['rps >= 5 for 10s']\n")
    )
    assert code == 1 and "violated for 11 s" in out and "worst 2 req/s" in out


# -- stale final CSV ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds", [10, 5000]
)  # 5000 rows: the last write is found by reading the file's tail
def test_final_csv_behind_the_history_uses_the_newer_totals(gate, write_yaml, tmp_path, seconds):
    prefix = copy_run(tmp_path)
    samples = [
        (T0 + s - seconds + 10, "", "Aggregated", 10.0, 100.0, str(max(0, 100 + (s - seconds + 10) * 20)))
        for s in range(seconds)
    ]  # the last total is 280, at T0 + 9
    write_history(prefix, samples)
    assert Path(prefix + "_stats_history.csv").stat().st_size > (400_000 if seconds > 10 else 0)
    code, out, _ = gate(
        prefix, "--thresholds", write_yaml("thresholds:\n  Aggregated: ['requests == 280']\n")
    )
    assert code == 0
    assert (
        f'note: {prefix}_stats.csv: "Aggregated" disagrees with {prefix}_stats_history.csv (its last row, '
        "08:00:09 UTC, has 280 requests, the CSV 256); using the history's newer totals; rps, fail_rps stay from "
        "the CSV"
    ) in out  # Aggregated-only history: its percentiles are cumulative, so newer too


def test_final_csv_ahead_of_the_history_is_trusted(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_history(prefix, [(T0 + s, "", "Aggregated", 10.0, 100.0, str(10 * s)) for s in range(10)])
    code, out, _ = gate(
        prefix, "--thresholds", write_yaml("thresholds:\n  Aggregated: ['requests == 256']\n")
    )
    assert code == 0 and "has 90 requests, the CSV 256); using the CSV's newer figures" in out


# -- LLM rows -----------------------------------------------------------------------------------------------


def write_llm_stats(prefix: str) -> None:
    """An _llm_stats.csv in Locust's columns (as loadgate.llm_stats writes it): TTFT in ms, TOKENS/S in tok/s."""
    header = Path(FIXTURES / "real_stats.csv").read_text(encoding="utf-8").splitlines()[0]
    rows = [
        "TTFT,/v1/chat/completions [stream],120,0,210,230.5,90,900,0,4.0,0.0,210,240,260,280,330,420,600,700,900,900,900",
        "TOKENS/S,/v1/chat/completions [stream],120,0,45,44.2,20,60,0,4.0,0.0,45,47,49,50,53,56,58,59,60,60,60",
        "TTFT,/v1/chat/completions [non-stream],0,0,0,0.0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A",
    ]
    Path(prefix + "_llm_stats.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def test_llm_rows_are_gated_by_type_and_name(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_llm_stats(prefix)
    thresholds = write_yaml(
        "thresholds:\n"
        "  'TTFT /v1/chat/completions [stream]': ['p(95) < 800', 'p(99) < 1s', 'requests >= 100']\n"
        "  'TOKENS/S /v1/chat/completions [stream]': ['p(50) >= 30', 'min > 25']\n"
        "  'TTFT /v1/chat/completions [non-stream]': {rules: ['p(95) < 800'], min_requests: 0}\n"
    )
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 1
    assert "FAIL    TTFT /v1/chat/completions [non-stream]" in out and "row has 0 requests" in out
    lines = [line.split() for line in out.splitlines()]
    assert [
        "PASS",
        "TOKENS/S",
        "/v1/chat/completions",
        "[stream]",
        "p(50)",
        "45",
        "tok/s",
        ">=",
        "30",
        "tok/s",
    ] in lines
    assert [
        "FAIL",
        "TOKENS/S",
        "/v1/chat/completions",
        "[stream]",
        "min",
        "20",
        "tok/s",
        ">",
        "25",
        "tok/s",
    ] in lines
    assert out.count("PASS") == 4


def test_llm_time_unit_on_tokens_per_second_row_is_exit_2(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_llm_stats(prefix)
    thresholds = write_yaml(
        "thresholds:\n  'TOKENS/S /v1/chat/completions [stream]':\n    - 'p(50) > 20ms'\n"
    )
    code, _, err = gate(prefix, "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f'check_sla: error: {thresholds}:3: a time unit on row "TOKENS/S /v1/chat/completions [stream]", '
        'whose figures are tok/s (got "p(50) > 20ms"); write the limit as a plain number\n'
    )


def test_llm_name_alone_is_ambiguous(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_llm_stats(prefix)
    code, _, err = gate(
        prefix, "--thresholds", write_yaml("thresholds:\n  '/v1/chat/completions [stream]': ['avg < 1']\n")
    )
    assert (
        code == 2
        and 'write it as "Type Name", one of "TTFT /v1/chat/completions [stream]", '
        '"TOKENS/S /v1/chat/completions [stream]"'
        in err
    )


def test_llm_for_rule_reads_the_llm_history(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_llm_stats(prefix)
    thresholds = write_yaml("thresholds:\n  'TTFT /v1/chat/completions [stream]': ['p(95) < 800 for 5s']\n")
    code, _, err = gate(prefix, "--thresholds", thresholds)
    assert code == 2 and err.startswith(
        f"check_sla: error: {prefix}_llm_stats_history.csv: history file not found"
    )
    samples = [
        (T0 + s, "TTFT", "/v1/chat/completions [stream]", 4.0, 950.0 if s > 3 else 300.0, "120")
        for s in range(12)
    ]
    write_history(prefix, samples, llm=True)
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 1 and "violated for 7 s" in out


def test_quoted_name_round_trips_through_the_fixture(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    thresholds = write_yaml(
        f"thresholds:\n  {json.dumps(QUOTED_NAME, ensure_ascii=False)}: ['p(50) == 64']\n"
    )
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and f"PASS    {QUOTED_NAME}" in out


def test_llm_summary_row(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    Path(prefix + "_llm_summary.json").write_text(
        json.dumps(
            {
                "completed_requests": 228,
                "total_output_tokens": 14272,
                "output_tokens_per_s": 434.1477,
                "goodput_req_per_s": None,
                "lost_jobs": 0,
            }
        ),
        encoding="utf-8",
    )
    thresholds = write_yaml(
        "thresholds:\n  LLM: ['tokens_per_s > 400', 'lost_jobs == 0', 'output_tokens >= 14272', "
        "'goodput >= 1']\n"
    )
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 1 and out.count("PASS") == 3
    assert "no data: goodput is N/A (no --goodput targets were set)" in out and "434.148 tok/s" not in out
    wrong_row = write_yaml("thresholds:\n  Aggregated:\n    - 'goodput >= 1'\n")
    code, _, err = gate(prefix, "--thresholds", wrong_row)
    assert code == 2
    assert err == (
        f'check_sla: error: {wrong_row}:3: goodput does not apply to row "Aggregated" (got "goodput >= 1"); '
        "use one of requests, failures, median, avg, min, max, rps, fail_rps, fail_ratio, or gate it on row "
        "LLM\n"
    )


def test_names_pandas_would_read_as_missing_stay_text(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path, with_history=False)
    edit(prefix + "_stats.csv", "GET,/fast,", "GET,NaN,")
    edit(prefix + "_stats.csv", "CUSTOM,queue.publish,", "CUSTOM,null,")
    thresholds = write_yaml("thresholds:\n  'GET NaN': ['requests == 162']\n  'null': ['max == 7']\n")
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and out.count("PASS") == 2


# -- honest throughput: per-second figures over the measured window --------------------------------------


def three_requests_run(tmp_path: Path) -> str:
    """Traffic stopped early: Locust wrote 349.7 req/s for 3 requests (it divides by the time to the last)."""
    prefix = str(tmp_path / "early")
    header = Path(FIXTURES / "real_stats.csv").read_text(encoding="utf-8").splitlines()[0]
    rows = [
        "GET,/fast,3,1,3,3.0,2,4,2.0,349.7,116.6,3,3,4,4,4,4,4,4,4,4,4",
        ",Aggregated,3,1,3,3.0,2,4,2.0,349.7,116.6,3,3,4,4,4,4,4,4,4,4,4",
    ]
    Path(prefix + "_stats.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return prefix


def test_rps_is_requests_over_the_measured_window_not_locusts_column(gate, write_yaml, tmp_path):
    prefix = three_requests_run(tmp_path)
    write_meta(prefix, warmup_s=0, started_at=T0, stopped_at=T0 + 10)
    thresholds = write_yaml("thresholds:\n  Aggregated: ['rps >= 2', 'fail_rps < 0.5', 'requests == 3']\n")
    code, out, err = gate(prefix, "--thresholds", thresholds, "--json", tmp_path / "v.json")
    assert (code, err) == (1, "")
    lines = {v["rule"]: v["line"] for v in json.loads((tmp_path / "v.json").read_text())["verdicts"]}
    assert lines["rps >= 2"] == 'FAIL rps of "Aggregated": observed 0.3 req/s, required >= 2 req/s'
    assert (
        lines["fail_rps < 0.5"] == 'PASS fail_rps of "Aggregated": observed 0.1 req/s, required < 0.5 req/s'
    )
    assert "note:" not in out


def test_the_window_starts_at_the_warm_up_reset(gate, write_yaml, tmp_path):
    prefix = three_requests_run(tmp_path)
    write_meta(prefix, warmup_s=10, started_at=T0, stats_reset_at=T0 + 10, stopped_at=T0 + 16)
    thresholds = write_yaml("warmup: 10s\nthresholds:\n  'GET /fast': ['rps == 0.5']\n")
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and "0.5 req/s" in out


def test_without_a_recorded_window_locusts_column_is_used_and_said(gate, write_yaml, tmp_path):
    prefix = three_requests_run(tmp_path)
    thresholds = write_yaml("thresholds:\n  Aggregated: ['rps >= 2']\n")
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and "349.7 req/s" in out
    assert (
        'note: rps and fail_rps are Locust\'s "Requests/s" and "Failures/s" columns, which divide by the time '
        f"to the last request, not the run's length: {prefix}_loadgate.json does not exist (plain Locust, "
        "without loadgate)"
    ) in out.splitlines()
    write_meta(prefix, warmup_s=0, started_at=T0)  # killed: no stopped_at
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and out.splitlines()[-2].endswith(
        f"{prefix}_loadgate.json records no stopped_at (the run did not end cleanly?)"
    )
    code, out, _ = gate(prefix, "--thresholds", write_yaml("thresholds:\n  Aggregated: ['requests == 3']\n"))
    assert code == 0 and "rps and fail_rps are" not in out  # said only when a rate is judged


def test_llm_rates_are_recomputed_over_the_window(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_meta(prefix, warmup_s=0, started_at=T0, stopped_at=T0 + 100)
    write_summary(prefix, total_output_tokens=5000, output_tokens_per_s=999.0, good_requests=20)
    thresholds = write_yaml("thresholds:\n  LLM: ['tokens_per_s == 50', 'goodput == 0.2']\n")
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and "50 tok/s" in out and "0.2 req/s" in out


# -- LLM summary metrics: cancelled, lags, achieved rate --------------------------------------------------


def write_summary(prefix: str, **fields) -> None:
    summary = {
        "completed_requests": 228,
        "total_output_tokens": 14272,
        "output_tokens_per_s": 434.1477,
        "goodput_req_per_s": 2.5,
        "good_requests": 200,
        "lost_jobs": 0,
        **fields,
    }
    Path(prefix + "_llm_summary.json").write_text(json.dumps(summary), encoding="utf-8")


def test_cancelled_and_the_load_generator_metrics_are_llm_row_metrics(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_summary(prefix, cancelled=3, loadgen_lag_p99=12.5, achieved_rate=9.8, schedule_lag_p99=40)
    thresholds = write_yaml(
        "thresholds:\n  LLM: ['cancelled <= 5', 'loadgen_lag_p99 < 50ms', 'achieved_rate >= 9.5', "
        "'schedule_lag_p99 < 30']\n"
    )
    code, out, _ = gate(prefix, "--thresholds", thresholds, "--json", tmp_path / "v.json")
    assert code == 1
    lines = {v["rule"]: v["line"] for v in json.loads((tmp_path / "v.json").read_text())["verdicts"]}
    assert lines == {
        "cancelled <= 5": 'PASS cancelled of "LLM": observed 3, required <= 5',
        "loadgen_lag_p99 < 50ms": 'PASS loadgen_lag_p99 of "LLM": observed 12.5 ms, required < 50 ms',
        "achieved_rate >= 9.5": 'PASS achieved_rate of "LLM": observed 9.8 req/s, required >= 9.5 req/s',
        "schedule_lag_p99 < 30": 'FAIL schedule_lag_p99 of "LLM": observed 40 ms, required < 30 ms',
    }


def test_a_summary_without_cancelled_is_no_data(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    write_summary(prefix)
    code, out, _ = gate(prefix, "--thresholds", write_yaml("thresholds:\n  LLM: ['cancelled == 0']\n"))
    assert code == 1
    assert (
        f"no data: cancelled is N/A ({prefix}_llm_summary.json has no 'cancelled': written by an older "
        "loadgate?)"
    ) in out


def test_cancelled_on_an_http_row_is_exit_2(gate, write_yaml, tmp_path):
    thresholds = write_yaml("thresholds:\n  Aggregated:\n    - 'cancelled == 0'\n")
    code, _, err = gate(copy_run(tmp_path), "--thresholds", thresholds)
    assert code == 2 and 'cancelled does not apply to row "Aggregated"' in err


# -- the token source on token-based verdicts -------------------------------------------------------------


TOKEN_RULES = (
    "thresholds:\n"
    "  'TOKENS/S /v1/chat/completions [stream]': ['p(50) >= 30']\n"
    "  'TTFT /v1/chat/completions [stream]': ['p(95) < 800']\n"
    "  LLM: ['tokens_per_s > 400', 'lost_jobs == 0']\n"
)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"token_source": "estimate"}, "estimate"),
        ({"token_source": "tokenizer", "usage_source": "counted"}, "tokenizer"),
        ({"usage_source": "counted"}, "counted"),
        (
            {"token_source": "mixed", "token_source_shares": {"server": 0.6, "estimate": 0.4}},
            "mixed (server 60%, estimate 40%)",
        ),
        ({"token_source": "server"}, None),
        ({}, None),
    ],
)
def test_token_based_verdicts_name_a_token_source_other_than_server(
    gate, write_yaml, tmp_path, fields, named
):
    prefix = copy_run(tmp_path)
    write_llm_stats(prefix)
    write_summary(prefix, **fields)
    code, out, _ = gate(prefix, "--thresholds", write_yaml(TOKEN_RULES), "--json", tmp_path / "v.json")
    assert code == 0
    lines = {v["rule"]: v["line"] for v in json.loads((tmp_path / "v.json").read_text())["verdicts"]}
    suffix = f" (tokens: {named})" if named else ""
    assert lines == {
        "p(50) >= 30": 'PASS p(50) of "TOKENS/S /v1/chat/completions [stream]": observed 45 tok/s, required '
        ">= 30 tok/s" + suffix,
        "p(95) < 800": 'PASS p(95) of "TTFT /v1/chat/completions [stream]": observed 420 ms, required < 800 ms',
        "tokens_per_s > 400": 'PASS tokens_per_s of "LLM": observed 434.1 tok/s, required > 400 tok/s'
        + suffix,
        "lost_jobs == 0": 'PASS lost_jobs of "LLM": observed 0, required == 0',
    }
    table_lines = [line for line in out.splitlines() if line.startswith("PASS")]
    assert sum(line.endswith(f"tokens: {named}") for line in table_lines) == (2 if named else 0)


def test_goodput_names_the_token_source_only_with_a_tpot_target(gate, write_yaml, tmp_path):
    prefix = copy_run(tmp_path)
    thresholds = write_yaml("thresholds:\n  LLM: ['goodput >= 1']\n")
    write_summary(prefix, token_source="estimate", goodput_targets={"ttft_ms": 500, "tpot_ms": None})
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and "tokens: estimate" not in out
    write_summary(prefix, token_source="estimate", goodput_targets={"ttft_ms": 500, "tpot_ms": 50})
    code, out, _ = gate(prefix, "--thresholds", thresholds)
    assert code == 0 and out.splitlines()[1].endswith("tokens: estimate")
