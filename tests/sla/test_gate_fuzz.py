"""Property-based fuzzing of the gate (issue 9): the real fixture run (tests/sla/fixtures/job_*) with one
file corrupted (values, types, encodings, truncation, structure), judged in-process by the gate's main().

Every run: exit 0, 1 or 2; never a traceback, never the catch-all "internal error" (that would be a bug
the fuzzer found); exit 2 is exactly one line on stderr, nothing on stdout. Corruptions that cannot leave
valid data (a NaN, a negative, a fractional count, a broken encoding, a cut JSON...) must never pass;
those that may leave a valid, smaller run (a cut CSV, a dropped key) only have to judge it without
crashing.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadgate.gate import main

from .conftest import FIXTURES

pytestmark = pytest.mark.timeout(300)

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

# passes on the untouched run and reads every file in full: both histories through "for" rules
THRESHOLDS = """\
warmup: 10s
thresholds:
  Aggregated: ['fail_ratio < 1%', 'rps >= 2', 'fail_ratio < 5% for 10s']
  'POST /v1/chat/completions': ['p(95) < 12s']
  'TTFT /v1/chat/completions [stream]': ['p(95) < 4s for 10s']
  LLM: ['lost_jobs == 0', 'tokens_per_s > 50']
"""
CSV_FILES = ("_stats.csv", "_stats_history.csv", "_llm_stats.csv", "_llm_stats_history.csv", "_failures.csv")
JSON_FILES = ("_loadgate.json", "_llm_summary.json")
TEXT_COLUMNS = ("Type", "Name", "Method", "Error", "First Seen", "Last Seen")
COUNT_COLUMNS = ("Request Count", "Failure Count", "Total Request Count", "Total Failure Count", "Timestamp")
# a numeric cell replaced by any of these is invalid wherever it is
BAD_CELLS = ["-5", "-0.5", "-inf", "inf", "Infinity", "-Infinity", "nan", "NaN", "1e400", "-1e400", "abc"]
BAD_CELLS += ["", "0x10", "1_000", "\u0663", "5 5", "N/A ", "--1", "1e", "true"]
# invalid JSON values by the field's kind (as raw JSON text)
BAD_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1",
    "-0.5",
    '"12"',
    "true",
    "[]",
    "{}",
    "1" + "0" * 400,
]
BAD_COUNTS = [*BAD_NUMBERS, "2.5"]
BAD_TEXTS = ["5", "true", "[]", "{}"]
META_FIELDS = {
    "warmup_s": BAD_NUMBERS,
    "stats_reset_at": BAD_NUMBERS,
    "started_at": BAD_NUMBERS,
    "stopped_at": BAD_NUMBERS,
    "workers": BAD_COUNTS,
    "loadgate_version": BAD_TEXTS,
    "locust_version": BAD_TEXTS,
    "host": BAD_TEXTS,
    "run_mode": BAD_TEXTS,
    "profile": BAD_TEXTS,
    "usage_source": BAD_TEXTS,
    "user_classes": ['"ChatUser"', "[1]", "5", "{}"],
    "final_stats_written": ['"yes"', "1", "[]", "{}"],
}
SUMMARY_FIELDS = {
    **dict.fromkeys(("duration_s", "output_tokens_per_s", "goodput_req_per_s"), BAD_NUMBERS),
    **dict.fromkeys(
        (
            "completed_requests",
            "total_output_tokens",
            "good_requests",
            "responses_with_server_usage",
            "responses_with_counted_tokens",
            "jobs_completed",
            "jobs_failed",
            "lost_jobs",
        ),
        BAD_COUNTS,
    ),
    "goodput_targets": ['"ttft"', "5", "[]", '{"ttft_ms": -1}', '{"ttft_ms": "x"}', '{"tpot_ms": NaN}'],
    "usage_source": BAD_TEXTS,
}
CONTROL_CHARS = [chr(c) for c in (*range(0, 9), 11, 12, *range(14, 32), 127)]
BAD_UTF8 = [b"\xff", b"\xfe", b"\xc3(", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]


def pristine() -> dict[str, bytes]:
    return {p.name.removeprefix("job"): p.read_bytes() for p in FIXTURES.glob("job_*")}


FILES = pristine()


def judge(files: dict[str, bytes], thresholds: bytes = THRESHOLDS.encode()) -> tuple[int, str, str]:
    """The gate's main() on a run made of ``files`` (suffix -> bytes): (exit code, stdout, stderr)."""
    folder = Path(tempfile.mkdtemp(prefix="loadgate-fuzz-"))
    try:
        for suffix, data in files.items():
            (folder / f"run{suffix}").write_bytes(data)
        (folder / "t.yaml").write_bytes(thresholds)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(folder / "run"), "--thresholds", str(folder / "t.yaml")])
        return code, out.getvalue(), err.getvalue().replace(str(folder), "DIR")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check(result: tuple[int, str, str], invalid: bool, what: str) -> None:
    code, out, err = result
    assert code in (0, 1, 2), (what, code, err)
    assert "Traceback" not in err and "internal error" not in err, (what, err)
    if code == 2:
        assert out == "" and err.startswith("check_sla: error: ") and err.count("\n") == 1, (what, err)
        assert err.endswith("\n") and "\r" not in err, (what, err)
    else:
        assert err == "" and out.splitlines()[-1].startswith(("SLA MET", "SLA BREACHED")), (what, out, err)
    if invalid:
        assert code != 0, (what, out)


def test_the_untouched_run_passes():
    code, out, err = judge(FILES)
    assert (code, err) == (0, "") and out.endswith("SLA MET: 0 failed, 7 passed, 0 skipped\n")


# -- CSV ---------------------------------------------------------------------------------------------------


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


CSV_WITH_DATA = [s for s in CSV_FILES if len(rows_of(FILES[s])) > 1]


@st.composite
def bad_cell(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """One numeric cell of one data row replaced by a value no Locust writes."""
    suffix = draw(st.sampled_from(CSV_WITH_DATA))
    rows = rows_of(FILES[suffix])
    numeric = [i for i, name in enumerate(rows[0]) if name not in TEXT_COLUMNS]
    line = draw(st.integers(1, len(rows) - 1))
    column = draw(st.sampled_from(numeric))
    name = rows[0][column]
    choices = list(BAD_CELLS)
    if name in COUNT_COLUMNS or name == "Occurrences":
        choices += ["2.5", "0.1"]
    if not name.endswith("%"):
        choices.append("N/A")
    value = draw(st.sampled_from(choices))
    rows[line][column] = value
    return suffix, csv_bytes(rows), f"{suffix} line {line + 1} {name!r} = {value!r}"


@FUZZ
@given(bad_cell())
def test_a_bad_figure_in_any_csv_never_passes(case):
    suffix, data, what = case
    check(judge({**FILES, suffix: data}), invalid=True, what=what)


@st.composite
def broken_csv(draw: st.DrawFn) -> tuple[str, bytes, bool, str]:
    """A CSV broken in its encoding or structure: (suffix, bytes, cannot be valid, description)."""
    suffix = draw(st.sampled_from(CSV_FILES))
    data = FILES[suffix]
    rows = rows_of(data)
    kind = draw(
        st.sampled_from(
            [
                "bad utf-8",
                "utf-16",
                "cut",
                "empty",
                "extra field",
                "missing field",
                "drop column",
                "drop line",
                "duplicate line",
                "nul",
            ]
        )
    )
    at = draw(st.integers(0, len(data)))
    if kind == "bad utf-8":
        return suffix, data[:at] + draw(st.sampled_from(BAD_UTF8)) + data[at:], True, f"{kind} at {at}"
    if kind == "utf-16":
        return suffix, data.decode("utf-8").encode("utf-16"), True, kind
    if kind == "cut":  # may leave a valid, shorter file
        return suffix, data[:at], False, f"{kind} at {at}"
    if kind == "empty":
        return suffix, b"", True, kind
    if kind == "nul":  # a NUL in a name is an odd but possible name
        return suffix, data[:at] + b"\x00" + data[at:], False, f"{kind} at {at}"
    if len(rows) < 2:
        return suffix, data, False, "no data row to break"
    line = draw(st.integers(1, len(rows) - 1))
    if kind == "extra field":
        rows[line].append(draw(st.sampled_from(["0", "1.5", "x"])))
        return suffix, csv_bytes(rows), True, f"{kind} on line {line + 1}"
    if kind == "missing field":
        numeric_last = rows[0][-1] not in TEXT_COLUMNS
        rows[line] = rows[line][:-1]
        return suffix, csv_bytes(rows), numeric_last, f"{kind} on line {line + 1}"
    if kind == "drop column":
        column = draw(st.integers(0, len(rows[0]) - 1))
        name = rows[0][column]
        rows = [row[:column] + row[column + 1 :] for row in rows]
        # a dropped percentile or content size column leaves a file the gate can judge
        required = not (name.endswith("%") or "Content Size" in name or name in ("First Seen", "Last Seen"))
        return suffix, csv_bytes(rows), required, f"{kind} {name!r}"
    if kind == "drop line":
        del rows[line]
        return suffix, csv_bytes(rows), False, f"{kind} {line + 1}"
    rows.insert(line, list(rows[line]))  # a duplicate row in a totals file is exit 2; in a history, odd
    return suffix, csv_bytes(rows), suffix in ("_stats.csv", "_llm_stats.csv"), f"{kind} {line + 1}"


@FUZZ
@given(broken_csv())
def test_a_broken_csv_is_judged_or_refused_never_a_crash(case):
    suffix, data, invalid, what = case
    check(judge({**FILES, suffix: data}), invalid=invalid, what=f"{suffix}: {what}")


# -- JSON ----------------------------------------------------------------------------------------------------


@st.composite
def bad_json_value(draw: st.DrawFn) -> tuple[str, bytes, str]:
    """One field of _loadgate.json or _llm_summary.json set to a value of the wrong type or range."""
    suffix = draw(st.sampled_from(JSON_FILES))
    document = json.loads(FILES[suffix])
    fields = META_FIELDS if suffix == "_loadgate.json" else SUMMARY_FIELDS
    key = draw(st.sampled_from(sorted(k for k in fields if k in document)))
    raw = draw(st.sampled_from(fields[key]))
    document[key] = "\x00SENTINEL"
    text = json.dumps(document, indent=2).replace('"\\u0000SENTINEL"', raw)
    return suffix, text.encode("utf-8"), f"{suffix} {key} = {raw[:20]}"


@FUZZ
@given(bad_json_value())
def test_a_bad_json_value_never_passes(case):
    suffix, data, what = case
    check(judge({**FILES, suffix: data}), invalid=True, what=what)


@st.composite
def broken_json(draw: st.DrawFn) -> tuple[str, bytes, bool, str]:
    suffix = draw(st.sampled_from(JSON_FILES))
    data = FILES[suffix]
    kind = draw(
        st.sampled_from(["cut", "bad utf-8", "control char", "utf-16", "not an object", "deep", "drop key"])
    )
    if kind == "cut":  # anything short of the closing brace is not JSON
        at = draw(st.integers(0, data.rindex(b"}") - 1 if b"}" in data else 0))
        return suffix, data[:at], True, f"{kind} at {at}"
    if kind == "bad utf-8":
        at = draw(st.integers(0, len(data)))
        return suffix, data[:at] + draw(st.sampled_from(BAD_UTF8)) + data[at:], True, f"{kind} at {at}"
    if kind == "control char":  # raw control characters are invalid in and between JSON tokens
        at = draw(st.integers(1, data.rindex(b"}") - 1))
        char = draw(st.sampled_from([c for c in CONTROL_CHARS if c not in "\t\n\r"]))
        return suffix, data[:at] + char.encode() + data[at:], _breaks_json(data, at, char), f"{kind} {at}"
    if kind == "utf-16":
        return suffix, data.decode("utf-8").encode("utf-16"), True, kind
    if kind == "not an object":
        return suffix, draw(st.sampled_from([b"[]", b"null", b"5", b'"x"', b"[{}]"])), True, kind
    document = json.loads(data)
    key = draw(st.sampled_from(sorted(document)))
    if kind == "deep":
        depth = draw(st.integers(1000, 20_000))
        document[key] = "\x00SENTINEL"
        text = json.dumps(document).replace('"\\u0000SENTINEL"', "[" * depth + "]" * depth)
        return suffix, text.encode(), True, f"{kind} {depth} at {key}"
    del document[key]  # a missing key is "no data" or a fallback, not always invalid
    return suffix, json.dumps(document).encode(), False, f"{kind} {key}"


def _breaks_json(data: bytes, at: int, char: str) -> bool:
    """A control character between tokens where JSON allows whitespace is still an error (only space, tab,
    CR, LF are whitespace): always invalid."""
    try:
        json.loads(data[:at].decode() + char + data[at:].decode())
    except ValueError:
        return True
    return False


@FUZZ
@given(broken_json())
def test_a_broken_json_file_is_refused_never_a_crash(case):
    suffix, data, invalid, what = case
    check(judge({**FILES, suffix: data}), invalid=invalid, what=f"{suffix}: {what}")


# -- YAML ----------------------------------------------------------------------------------------------------


@st.composite
def broken_yaml(draw: st.DrawFn) -> tuple[bytes, bool, str]:
    text = THRESHOLDS
    data = text.encode()
    kind = draw(
        st.sampled_from(
            [
                "cut",
                "bad utf-8",
                "control char",
                "deep",
                "bad limit",
                "tab",
                "flip",
                "not a mapping",
                "utf-16",
            ]
        )
    )
    at = draw(st.integers(0, len(data)))
    if kind == "cut":  # fewer rules can still be a valid file
        return data[:at], False, f"{kind} at {at}"
    if kind == "bad utf-8":
        return data[:at] + draw(st.sampled_from(BAD_UTF8)) + data[at:], True, f"{kind} at {at}"
    if kind == "control char":
        char = draw(st.sampled_from(CONTROL_CHARS))
        return data[:at] + char.encode() + data[at:], True, f"{kind} {ord(char)} at {at}"
    if kind == "deep":  # flow brackets, flow mappings or compact block lists ("- - - x")
        depth = draw(st.integers(65, 20_000))
        nested = draw(
            st.sampled_from(
                ["[" * depth + "]" * depth, "{a: " * depth + "1" + "}" * depth, "\n    " + "- " * depth]
            )
        )
        return (
            text.replace("['lost_jobs == 0', 'tokens_per_s > 50']", nested).encode(),
            True,
            f"{kind} {depth}",
        )
    if kind == "bad limit":
        limit = draw(
            st.sampled_from(["inf", "nan", "1e400", "-5", "9" * 400, "Infinity", "5e", ".", "1.2.3"])
        )
        return text.replace("tokens_per_s > 50", f"tokens_per_s > {limit}").encode(), True, f"{kind} {limit}"
    if kind == "tab":
        return text.replace("\n  LLM", "\n\tLLM").encode(), True, kind
    if kind == "not a mapping":
        return (
            draw(st.sampled_from([b"- a\n- b\n", b"5\n", b"thresholds: 5\n", b"thresholds: [1]\n"])),
            True,
            kind,
        )
    if kind == "utf-16":
        return text.encode("utf-16"), True, kind
    char = draw(st.characters(codec="utf-8", exclude_categories=("Cs",)))  # one character changed
    position = min(at, len(text) - 1)
    return (text[:position] + char + text[position + 1 :]).encode(), False, f"{kind} {char!r} at {position}"


@FUZZ
@given(broken_yaml())
def test_a_broken_threshold_file_is_refused_never_a_crash(case):
    data, invalid, what = case
    check(judge(FILES, thresholds=data), invalid=invalid, what=f"thresholds: {what}")
