"""The gate fails closed on invalid input (issue 9, item 9): every case of "the gate passed on invalid
data" and "tracebacks with exit 1", each with its exit code and its exact one-line message.

Runs are the committed fixtures of a real default job (tests/sla/fixtures/job_*), with one defect each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadgate import contract

from .conftest import FIXTURES, REPO

pytestmark = pytest.mark.timeout(60)

FIX = "re-run Locust to rewrite the file (was it truncated or hand-edited?)"
JSON_FIX = "re-run the load to rewrite the file (was it truncated or hand-edited?)"
# passes on the untouched fixture: every file of the run is read (both histories through "for" rules)
THRESHOLDS = """\
warmup: 10s
thresholds:
  Aggregated: ['fail_ratio < 1%', 'rps >= 2', 'fail_ratio < 5% for 10s']
  'TTFT /v1/chat/completions [stream]': ['p(95) < 4s for 10s']
  LLM: ['lost_jobs == 0', 'tokens_per_s > 50']
"""
HEALTH = "GET,/health,13,0,2.14,2.8260498461349925,1.2444740000319143,6.27272599990647,61.84615384615385,"


def copy_job(folder: Path, name: str = "run") -> str:
    """The fixture job run under folder/name: PREFIX_stats.csv, _llm_summary.json, _loadgate.json, ..."""
    for path in FIXTURES.glob("job_*"):
        shutil.copy(path, folder / path.name.replace("job_", f"{name}_", 1))
    return str(folder / name)


def edit(path: str, old: str, new: str) -> None:
    text = Path(path).read_text(encoding="utf-8")
    assert old in text, (path, old)
    Path(path).write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def thresholds(write_yaml) -> Path:
    return write_yaml(THRESHOLDS)


def test_the_untouched_fixture_passes(gate, thresholds, tmp_path):
    code, out, err = gate(copy_job(tmp_path), "--thresholds", thresholds)
    assert (code, err) == (0, "") and out.endswith("SLA MET: 0 failed, 6 passed, 0 skipped\n")


# (case, file suffix, text in the file, replacement, the error after "check_sla: error: PREFIX")
INVALID_VALUES = [
    (
        "-inf in a percentile cell",
        "_stats.csv",
        HEALTH + "0.36239276684509086,0.0,2.14,",
        HEALTH + "0.36239276684509086,0.0,-inf,",
        "_stats.csv:2: column '50%' must be a finite number >= 0 (got \"-inf\"); " + FIX,
    ),
    (
        "-5 in a percentile cell",
        "_stats.csv",
        "0.0,2.14,2.43,4.38,",
        "0.0,2.14,2.43,-5,",
        "_stats.csv:2: column '75%' must be a finite number >= 0 (got \"-5\"); " + FIX,
    ),
    (
        "a negative Failure Count",
        "_stats.csv",
        "POST,/v1/batches,3,0,",
        "POST,/v1/batches,3,-1,",
        "_stats.csv:3: column 'Failure Count' must be a finite number >= 0 (got \"-1\"); " + FIX,
    ),
    (
        "negative Requests/s",
        "_stats.csv",
        HEALTH + "0.36239276684509086,",
        HEALTH + "-0.36239276684509086,",
        "_stats.csv:2: column 'Requests/s' must be a finite number >= 0 (got \"-0.36239276684509086\"); "
        + FIX,
    ),
    (
        "a fractional Request Count",
        "_stats.csv",
        "POST,/v1/batches,3,0,",
        "POST,/v1/batches,10.5,0,",
        "_stats.csv:3: column 'Request Count' must be a whole number >= 0 (got \"10.5\"); " + FIX,
    ),
    (
        "more failures than requests",
        "_stats.csv",
        "POST,/v1/batches,3,0,",
        "POST,/v1/batches,3,4,",
        "_stats.csv:3: column 'Failure Count' is larger than 'Request Count' (got \"4 > 3\"); " + FIX,
    ),
    (
        "N/A on a row with requests",
        "_stats.csv",
        HEALTH + "0.36239276684509086,0.0,2.14,",
        HEALTH + "0.36239276684509086,0.0,N/A,",
        "_stats.csv:2: column '50%' is N/A on a row with requests (got \"N/A\"); " + FIX,
    ),
    (
        "Infinity in an LLM CSV",
        "_llm_stats.csv",
        "E2E,/v1/batches,3,0,4089.480483999978,",
        "E2E,/v1/batches,3,0,Infinity,",
        "_llm_stats.csv:2: column 'Median Response Time' must be a finite number >= 0 (got \"inf\"); " + FIX,
    ),
    (
        "1e400 in a history",
        "_stats_history.csv",
        "1795383563,10,POST,/v1/chat/completions,0.000000,",
        "1795383563,10,POST,/v1/chat/completions,1e400,",
        "_stats_history.csv:3: column 'Requests/s' must be a finite number >= 0 (got \"inf\"); " + FIX,
    ),
    (
        "lost_jobs: -1",
        "_llm_summary.json",
        '"lost_jobs": 0',
        '"lost_jobs": -1',
        "_llm_summary.json:lost_jobs: lost_jobs must be a whole number >= 0 (got -1); " + JSON_FIX,
    ),
    (
        "lost_jobs: NaN",
        "_llm_summary.json",
        '"lost_jobs": 0',
        '"lost_jobs": NaN',
        "_llm_summary.json:lost_jobs: lost_jobs must be a whole number >= 0 (got nan); " + JSON_FIX,
    ),
    (
        "tokens_per_s: Infinity",
        "_llm_summary.json",
        '"output_tokens_per_s": 440.3008',
        '"output_tokens_per_s": Infinity',
        "_llm_summary.json:output_tokens_per_s: output_tokens_per_s must be a finite number >= 0 (got inf); "
        + JSON_FIX,
    ),
    (
        "a fractional completed_requests",
        "_llm_summary.json",
        '"completed_requests": 222',
        '"completed_requests": 222.5',
        "_llm_summary.json:completed_requests: completed_requests must be a whole number >= 0 (got 222.5); "
        + JSON_FIX,
    ),
    (
        "a string for a number",
        "_llm_summary.json",
        '"total_output_tokens": 15795',
        '"total_output_tokens": "15795"',
        "_llm_summary.json:total_output_tokens: total_output_tokens must be a whole number >= 0 "
        '(got "15795"); ' + JSON_FIX,
    ),
    (
        "warmup_s: NaN",
        "_loadgate.json",
        '"warmup_s": 10.0',
        '"warmup_s": NaN',
        "_loadgate.json:warmup_s: warmup_s must be a finite number >= 0 (got nan); " + JSON_FIX,
    ),
    (
        "stats_reset_at: NaN",
        "_loadgate.json",
        '"stats_reset_at": 1795383572.098837',
        '"stats_reset_at": NaN',
        "_loadgate.json:stats_reset_at: stats_reset_at must be a finite number >= 0 (got nan); " + JSON_FIX,
    ),
    (
        "stats_reset_at: Infinity",
        "_loadgate.json",
        '"stats_reset_at": 1795383572.098837',
        '"stats_reset_at": Infinity',
        "_loadgate.json:stats_reset_at: stats_reset_at must be a finite number >= 0 (got inf); " + JSON_FIX,
    ),
    (
        "stats_reset_at: 1e400",
        "_loadgate.json",
        '"stats_reset_at": 1795383572.098837',
        '"stats_reset_at": 1e400',
        "_loadgate.json:stats_reset_at: stats_reset_at must be a finite number >= 0 (got inf); " + JSON_FIX,
    ),
    (
        "stopped_at before the warm-up end",
        "_loadgate.json",
        '"stopped_at": 1795383607.9720378',
        '"stopped_at": 1795383570',
        "_loadgate.json:stopped_at: stopped_at is before stats_reset_at (got 1795383570.0); " + JSON_FIX,
    ),
    (
        "final_stats_written: a string",
        "_loadgate.json",
        '"final_stats_written": true',
        '"final_stats_written": "yes"',
        "_loadgate.json:final_stats_written: final_stats_written must be true, false or null (got "
        '"yes"); ' + JSON_FIX,
    ),
]


@pytest.mark.parametrize(
    ("suffix", "old", "new", "expected"),
    [case[1:] for case in INVALID_VALUES],
    ids=[case[0] for case in INVALID_VALUES],
)
def test_an_invalid_value_is_exit_2_naming_file_line_or_field_and_value(
    gate, thresholds, tmp_path, suffix, old, new, expected
):
    prefix = copy_job(tmp_path)
    edit(prefix + suffix, old, new)
    code, out, err = gate(prefix, "--thresholds", thresholds)
    assert (code, out) == (2, "")
    assert err == f"check_sla: error: {prefix}{expected}\n"


def test_a_zero_request_run_with_only_optional_rows_is_a_breach(gate, write_yaml, tmp_path):
    prefix = str(tmp_path / "idle")
    header = (FIXTURES / "job_stats.csv").read_text(encoding="utf-8").splitlines()[0]
    Path(prefix + "_stats.csv").write_text(
        header + "\n,Aggregated,0,0,0,0.0,0,0,0,0.0,0.0" + ",N/A" * 11 + "\n", encoding="utf-8"
    )
    thresholds = write_yaml(
        "min_requests: 0\nthresholds:\n"
        "  'GET /v1/models': {rules: ['p(95) < 1s'], optional: true}\n"
        "  'E2E /v1/chat/completions/async': {rules: ['p(95) < 1m'], optional: true}\n"
    )
    code, out, err = gate(prefix, "--thresholds", thresholds, "--json", tmp_path / "v.json")
    assert (code, err) == (1, "")
    assert out.splitlines()[-1] == "SLA BREACHED: 1 failed, 0 passed, 2 skipped"
    failed = [v for v in json.loads((tmp_path / "v.json").read_text())["verdicts"] if v["status"] == "FAIL"]
    assert [v["line"] for v in failed] == [
        f'FAIL requests of "Aggregated": observed 0, required > 0 (no data: the run made no requests '
        f"({prefix}_stats.csv counts 0); a run without requests is never a pass, whatever rows are optional)"
    ]


# -- files that are not files ---------------------------------------------------------------------


def test_dev_zero_as_thresholds_is_refused_before_reading(gate, tmp_path):
    code, out, err = gate(copy_job(tmp_path), "--thresholds", "/dev/zero")
    assert (code, out) == (2, "")
    assert err == (
        'check_sla: error: /dev/zero: threshold file is not a regular file (got "a device or socket"); '
        "pass --thresholds FILE (a YAML file)\n"
    )


def test_a_fifo_as_thresholds_is_refused_without_blocking(gate, tmp_path):
    fifo = tmp_path / "t.yaml"
    os.mkfifo(fifo)
    code, _, err = gate(copy_job(tmp_path), "--thresholds", fifo)
    assert code == 2
    assert err == (
        f'check_sla: error: {fifo}: threshold file is not a regular file (got "a FIFO"); '
        "pass --thresholds FILE (a YAML file)\n"
    )


def test_a_directory_as_thresholds(gate, tmp_path):
    code, _, err = gate(copy_job(tmp_path), "--thresholds", tmp_path)
    assert code == 2
    assert err == (
        f'check_sla: error: {tmp_path}: threshold file is a directory, not a file (got "{tmp_path}"); '
        "pass --thresholds FILE (a YAML file)\n"
    )


def test_a_threshold_file_over_one_mib(gate, write_yaml, tmp_path):
    big = write_yaml(THRESHOLDS + "#" * (1024 * 1024) + "\n")
    code, _, err = gate(copy_job(tmp_path), "--thresholds", big)
    assert code == 2
    assert err == (
        f'check_sla: error: {big}: threshold file is larger than 1 MiB (got "{big.stat().st_size} bytes"); '
        "pass --thresholds FILE (a YAML file)\n"
    )


def test_a_fifo_as_a_run_file(gate, thresholds, tmp_path):
    prefix = copy_job(tmp_path)
    os.remove(prefix + "_llm_stats.csv")
    os.mkfifo(prefix + "_llm_stats.csv")
    code, _, err = gate(prefix, "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f'check_sla: error: {prefix}_llm_stats.csv: run file is not a regular file (got "a FIFO"); '
        "re-run Locust to rewrite it\n"
    )


def test_a_history_over_512_mib_is_refused_before_reading(gate, thresholds, tmp_path):
    prefix = copy_job(tmp_path)
    with open(prefix + "_stats_history.csv", "r+b") as handle:
        handle.truncate(contract.MAX_CSV_BYTES + 1)  # sparse: no disk space used
    code, _, err = gate(prefix, "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f'check_sla: error: {prefix}_stats_history.csv: run file is larger than 512 MiB (got "536870913 '
        'bytes"); re-run Locust to rewrite it\n'
    )


def test_run_metadata_over_one_mib(gate, thresholds, tmp_path):
    prefix = copy_job(tmp_path)
    with open(prefix + "_loadgate.json", "a", encoding="utf-8") as handle:
        handle.write(" " * (1024 * 1024))
    size = Path(prefix + "_loadgate.json").stat().st_size
    code, _, err = gate(prefix, "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f'check_sla: error: {prefix}_loadgate.json: run file is larger than 1 MiB (got "{size} bytes"); '
        "delete or replace it with the file the run wrote\n"
    )


# -- YAML and JSON the parsers refuse ----------------------------------------------------------------


def test_a_nul_byte_in_the_yaml(gate, write_yaml, tmp_path):
    thresholds = write_yaml("thresholds:\n  Aggregated: ['rps > 1']\x00\n")
    code, _, err = gate(copy_job(tmp_path), "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f'check_sla: error: {thresholds}:2: YAML does not allow this character (got "#x0000"); remove it '
        "(NUL and other control characters cannot appear in YAML)\n"
    )


@pytest.mark.parametrize(
    ("nested", "got"),
    [
        ("[" * 5000 + "]" * 5000, "more than 64 levels of [ ] or { }"),
        ("{a: " * 5000 + "1" + "}" * 5000, "more than 64 levels of [ ] or { }"),
        ("\n    " + "- " * 5000 + "x", "more levels than the parser can follow"),
    ],
    ids=["lists", "mappings", "block lists"],
)
def test_yaml_nested_5000_levels(gate, write_yaml, tmp_path, nested, got):
    thresholds = write_yaml(f"thresholds:\n  Aggregated: {nested}\n")
    code, _, err = gate(copy_job(tmp_path), "--thresholds", thresholds)
    assert code == 2
    assert err == f'check_sla: error: {thresholds}: YAML nested too deeply (got "{got}"); flatten the file\n'


def test_yaml_that_is_not_utf8(gate, tmp_path):
    thresholds = tmp_path / "t.yaml"
    thresholds.write_bytes(b"thresholds:\n  Aggregated: ['rps > 1'] # caf\xe9\n")
    code, _, err = gate(copy_job(tmp_path), "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f"check_sla: error: {thresholds}:2: threshold file is not UTF-8 (got \"'utf-8' codec can't decode "
        'byte 0xe9 in position 43: invalid continuation byte"); save the file as UTF-8\n'
    )


@pytest.mark.parametrize(
    ("text", "got"),
    [
        ("{", "Expecting property name enclosed in double quotes: line 1 column 2"),
        ("[1, 2]", None),
        ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
    ],
    ids=["truncated", "a list", "nested"],
)
def test_run_metadata_the_json_parser_refuses(gate, thresholds, tmp_path, text, got):
    prefix = copy_job(tmp_path)
    Path(prefix + "_loadgate.json").write_text(text, encoding="utf-8")
    code, _, err = gate(prefix, "--thresholds", thresholds)
    assert code == 2
    if got is None:
        assert err == (
            f'check_sla: error: {prefix}_loadgate.json: run metadata must be a JSON object (got "list"); '
            f"{JSON_FIX}\n"
        )
    else:
        assert err == (
            f'check_sla: error: {prefix}_loadgate.json: unreadable run metadata (got "{got}"); {JSON_FIX}\n'
        )


def test_a_history_that_is_not_utf8(gate, thresholds, tmp_path):
    prefix = copy_job(tmp_path)
    path = Path(prefix + "_stats_history.csv")
    path.write_bytes(path.read_bytes().replace(b"Aggregated", b"Aggr\xffgated", 1))
    code, _, err = gate(prefix, "--thresholds", thresholds)
    assert code == 2
    assert err.startswith(f"check_sla: error: {path}: CSV is not UTF-8 (got \"'utf-8' codec can't decode")
    assert err.endswith('"); re-run Locust with a UTF-8 locale\n') and err.count("\n") == 1


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_an_unreadable_history_is_exit_2(tmp_path):
    """As root (this machine's CI) a mode of 000 does not stop reads: the gate runs as nobody."""
    folder = Path("/tmp") / f"loadgate-unreadable-{os.getpid()}"
    folder.mkdir(mode=0o755)
    try:
        prefix = copy_job(folder)
        (folder / "t.yaml").write_text(THRESHOLDS, encoding="utf-8")
        for path in folder.iterdir():
            path.chmod(0o644)
        Path(prefix + "_stats_history.csv").chmod(0)
        command = [sys.executable, "-m", "loadgate", "gate", prefix, "--thresholds", str(folder / "t.yaml")]
        if os.geteuid() == 0:
            if shutil.which("setpriv") is None:
                pytest.skip("running as root without setpriv: cannot make a file unreadable")
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd="/", check=False)
    finally:
        shutil.rmtree(folder)
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr == (
        f'check_sla: error: {prefix}_stats_history.csv: cannot read run file (got "permission denied"); '
        "make it readable (check its owner and mode)\n"
    )


# -- the prefix in the wrong place -----------------------------------------------------------------------


def test_prefix_under_a_file(gate, thresholds, tmp_path):
    prefix = copy_job(tmp_path)
    code, _, err = gate(f"{prefix}_stats.csv/run", "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f'check_sla: error: {prefix}_stats.csv/run_stats.csv: run CSV not found (got "{prefix}_stats.csv/'
        f'run_stats.csv"); {prefix}_stats.csv is a file, not a folder: pass the --csv prefix of the run, e.g. '
        f"{prefix}_stats.csv\n"
    )


def test_prefix_is_the_results_folder(gate, thresholds, tmp_path):
    prefix = copy_job(tmp_path)
    code, _, err = gate(f"{tmp_path}/", "--thresholds", thresholds)
    assert code == 2
    assert err == (
        f'check_sla: error: {tmp_path}/_stats.csv: run CSV not found (got "{tmp_path}/_stats.csv"); pass the '
        f"--csv prefix of the files in the folder, e.g. {prefix}\n"
    )


# -- nothing ends in a traceback ------------------------------------------------------------------------


def test_an_unexpected_exception_is_one_line_and_exit_2(gate, thresholds, tmp_path, monkeypatch):
    from loadgate.gate import cli

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cli, "evaluate", broken)
    code, out, err = gate(copy_job(tmp_path), "--thresholds", thresholds)
    assert (code, out) == (2, "")
    assert err.startswith("check_sla: error: internal error ZeroDivisionError: division by zero at ")
    assert err.endswith("; no verdict (please report it with the run's files)\n") and err.count("\n") == 1


def test_the_pinned_script_turns_bad_input_into_one_line(tmp_path):
    """The subprocess path (python sla/check_sla.py) on a NaN reset time: exit 2, one line, no traceback."""
    prefix = copy_job(tmp_path)
    edit(prefix + "_loadgate.json", '"stats_reset_at": 1795383572.098837', '"stats_reset_at": NaN')
    (tmp_path / "t.yaml").write_text(THRESHOLDS, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(REPO / "sla/check_sla.py"), prefix, "--thresholds", str(tmp_path / "t.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"check_sla: error: {prefix}_loadgate.json:stats_reset_at: stats_reset_at must be a finite number >= 0 "
        f"(got nan); {JSON_FIX}\n"
    )


# -- the contract's records ------------------------------------------------------------------------------


def test_the_fixture_files_round_trip_through_the_contract():
    for name, record in (
        ("job_loadgate.json", contract.RunMeta),
        ("job_llm_summary.json", contract.LlmSummary),
    ):
        data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
        assert record.from_dict(data).to_dict() == data


def test_contract_records_validate_and_keep_unknown_fields():
    meta = contract.RunMeta.from_dict(
        {"warmup_s": 5, "started_at": 100, "stopped_at": 130, "probe": {"x": 1}}
    )
    assert (meta.window(), meta.extra) == ((100.0, 130.0), {"probe": {"x": 1}})
    assert contract.RunMeta.from_dict(
        {"started_at": 100, "stats_reset_at": 110, "stopped_at": 130}
    ).window() == (
        110.0,
        130.0,
    )
    assert contract.RunMeta.from_dict({"started_at": 100}).window() is None
    summary = contract.LlmSummary.from_dict(
        {"token_source": "mixed", "token_source_shares": {"server": 0.6, "estimate": 0.4}, "cancelled": 2}
    )
    assert (summary.cancelled, summary.token_source_label()) == (2, "mixed (server 60%, estimate 40%)")
    assert contract.LlmSummary.from_dict({"usage_source": "counted"}).token_source_label() == "counted"
    written = contract.LlmSummary(completed_requests=3, cancelled=1).to_dict()
    assert written["cancelled"] == 1 and "token_source" not in written and written["lost_jobs"] is None
    for bad, key in (
        ({"token_source": "guess"}, "token_source"),
        ({"token_source_shares": {"server": 1.5}}, "token_source_shares.server"),
        ({"cancelled": True}, "cancelled"),
        ({"loadgen_lag_p99": -1}, "loadgen_lag_p99"),
        ({"achieved_rate": 10**400}, "achieved_rate"),
    ):
        with pytest.raises(contract.ContractError) as caught:
            contract.LlmSummary.from_dict(bad)
        assert caught.value.key == key
