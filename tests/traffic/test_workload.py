"""Workloads (docs/traffic.md "Workloads"): token lengths, synthetic prompts, the seed, ShareGPT datasets and
--extra-body; unit tests, then real Locust runs against the real mock, whose usage counts the tokens."""

from __future__ import annotations

import json
import logging
import random
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from child_env import child_env

from loadgate.client.tokens import load_counter
from loadgate.harness.users import LoadgateUser
from loadgate.options import Lengths, SettingError, load, parse_value, probe_max_tokens
from loadgate.prompts import PromptFileError
from loadgate.workload import (
    CALIBRATION_SAMPLES,
    WORDS,
    LengthTally,
    SyntheticPrompts,
    load_prompts,
    load_sharegpt,
    seeded_rng,
)
from traffic.helpers import REPO, mock_config, read_truth, run_locust

SHAREGPT = REPO / "loadgate" / "data" / "sharegpt_sample.json"
LENGTH_FIX = "use N, MIN-MAX (uniform) or MEAN:STDDEV (normal), e.g. 200, 100-300 or 200:40"
CL100K = load_counter("auto")


# -- the length parser (--input-tokens and --output-tokens share it) -----------------------------------


@pytest.mark.parametrize(
    "raw, parsed",
    [
        ("200", Lengths(200, 200, 200.0)),
        (" 100-300 ", Lengths(100, 300, 200.0)),
        ("200:40", Lengths(1, 1_000_000, 200.0, 40.0)),
        ("7.5:0", Lengths(1, 1_000_000, 7.5, 0.0)),
        ("", None),
    ],
)
@pytest.mark.parametrize("flag", ["--input-tokens", "--output-tokens"])
def test_length_parser_accepts_n_range_and_normal(flag, raw, parsed):
    assert parse_value(flag, raw) == parsed


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("0", "needs 1 <= MIN <= MAX <= 1000000 (got '0')"),
        ("300-100", "needs 1 <= MIN <= MAX <= 1000000 (got '300-100')"),
        ("2000000", "needs 1 <= MIN <= MAX <= 1000000 (got '2000000')"),
        ("ten", "not N, MIN-MAX or MEAN:STDDEV (whole tokens) (got 'ten')"),
        ("1.5", "not N, MIN-MAX or MEAN:STDDEV (whole tokens) (got '1.5')"),
        ("200:x", "not MEAN:STDDEV (numbers) (got '200:x')"),
        ("200:-1", "needs 1 <= MEAN <= 1000000 and STDDEV >= 0 (got '200:-1')"),
        ("0:5", "needs 1 <= MEAN <= 1000000 and STDDEV >= 0 (got '0:5')"),
    ],
)
@pytest.mark.parametrize("flag", ["--input-tokens", "--output-tokens"])
def test_bad_length_is_one_line_naming_flag_value_and_fix(flag, raw, problem):
    with pytest.raises(SettingError) as info:
        parse_value(flag, raw)
    assert str(info.value) == f"{flag}: {problem}; {LENGTH_FIX}"


def test_length_draws_stay_in_their_distribution():
    rng = random.Random(1)
    assert {parse_value("--input-tokens", "64").draw(rng) for _ in range(50)} == {64}
    uniform = [parse_value("--input-tokens", "100-300").draw(rng) for _ in range(4000)]
    assert min(uniform) == 100 and max(uniform) == 300 and abs(statistics.fmean(uniform) - 200) < 5
    normal = [parse_value("--input-tokens", "200:40").draw(rng) for _ in range(4000)]
    assert abs(statistics.fmean(normal) - 200) < 3 and abs(statistics.pstdev(normal) - 40) < 3
    assert all(isinstance(n, int) for n in normal)
    clipped = [parse_value("--input-tokens", "2:10").draw(rng) for _ in range(500)]
    assert min(clipped) == 1  # clipped, never 0 or negative


# -- synthetic prompts ----------------------------------------------------------------------------------


def mock_count(text: str) -> int:
    """The embedded mock's prompt tokens: ceil(chars / 4) (loadgate/mock/validation.py)."""
    return -(-len(text) // 4)


def test_every_word_is_one_cl100k_token_and_a_prompt_of_n_tokens_is_n_for_both_counts():
    assert CL100K.name == "tiktoken cl100k_base (offline)"
    assert [w for w in WORDS if CL100K.count(" " + w) != 1] == []
    rng = random.Random(5)
    for n in (1, 2, 17, 200, 1000):
        text = SyntheticPrompts(Lengths(n, n, n)).sample(rng).messages[0]["content"]
        assert (CL100K.count(text), mock_count(text)) == (n, n)


def test_shared_prefix_is_the_same_in_every_prompt_and_adds_to_the_length():
    source = SyntheticPrompts(Lengths(10, 10, 10), prefix_tokens=30)
    again = SyntheticPrompts(Lengths(10, 10, 10), prefix_tokens=30)  # another process: the same prefix
    a, b = source.sample(random.Random(1)), again.sample(random.Random(2))
    text_a, text_b = a.messages[0]["content"], b.messages[0]["content"]
    assert text_a[: 30 * 4 - 1] == text_b[: 30 * 4 - 1] and text_a != text_b
    assert (a.input_tokens, mock_count(text_a), CL100K.count(text_a)) == (40, 40, 40)


def test_the_seed_gives_the_same_prompt_sequence_twice():
    def sequence(seed, *where):
        rng, source = seeded_rng(seed, *where), SyntheticPrompts(Lengths(5, 50, 27.5))
        return [(p.input_tokens, p.messages[0]["content"]) for p in (source.sample(rng) for _ in range(20))]

    assert sequence(7, 0, "ChatUser", 3) == sequence(7, 0, "ChatUser", 3)
    assert sequence(7, 0, "ChatUser", 3) != sequence(7, 0, "ChatUser", 4)  # each user its own sequence
    assert sequence(7, 0, "ChatUser", 3) != sequence(8, 0, "ChatUser", 3)
    assert sequence(None, 0, "ChatUser", 3) != sequence(None, 0, "ChatUser", 3)  # no seed: not reproducible
    ps = load_sharegpt(str(SHAREGPT), CL100K.count)
    picks = [[ps.sample(seeded_rng(3, 1, "ChatUser", 0)).messages for _ in range(3)] for _ in range(2)]
    assert picks[0] == picks[1]


def test_calibration_learns_the_chat_template_offset_once(caplog):
    source = SyntheticPrompts(Lengths(100, 100, 100))
    rng = random.Random(1)
    with caplog.at_level(logging.INFO, logger="loadgate"):
        for _ in range(CALIBRATION_SAMPLES + 3):
            prompt = source.sample(rng)
            source.observe(prompt, prompt.text_tokens + 12)  # the server adds 12 tokens of template
    prompt = source.sample(rng)
    assert (prompt.input_tokens, prompt.text_tokens, mock_count(prompt.messages[0]["content"])) == (
        100,
        88,
        88,
    )
    said = [r.getMessage() for r in caplog.records if "chat template" in r.getMessage()]
    assert said == [
        "loadgate: the server counts +12 tokens beyond a synthetic prompt's text (its chat template); later "
        "prompts are shortened by that to match --input-tokens"
    ]


def test_no_offset_learned_when_the_server_counts_the_text():
    source = SyntheticPrompts(Lengths(50, 50, 50))
    for _ in range(CALIBRATION_SAMPLES):
        prompt = source.sample(random.Random(2))
        source.observe(prompt, prompt.text_tokens)
    assert (source.calibration.learned, source.calibration.offset) == (True, 0)


# -- the request body -------------------------------------------------------------------------------------


def body_of(**settings: str) -> dict:
    """LoadgateUser.chat_body with these settings, on a stand-in user (no Locust runner needed)."""
    user = SimpleNamespace(
        lg=SimpleNamespace(settings=load(SimpleNamespace(**settings))),
        rng=random.Random(1),
        model=lambda: "m",
    )
    return LoadgateUser.chat_body(user, [{"role": "user", "content": "hi"}], True, 17)  # type: ignore[arg-type]


def test_output_tokens_override_max_tokens_and_the_prompts_own():
    assert body_of()["max_tokens"] == 17  # the prompt's own max_tokens wins over --max-tokens
    assert body_of(output_tokens="48", max_tokens="8")["max_tokens"] == 48
    assert body_of(output_tokens="64")["max_tokens"] == 64  # and over the prompt's own


def test_extra_body_ignore_eos_and_min_tokens_are_in_the_body():
    body = body_of(
        extra_body='{"temperature": 0, "top_p": 0.9, "vendor": {"x": 1}}', ignore_eos="true", min_tokens="8"
    )
    assert body == {
        "temperature": 0,
        "top_p": 0.9,
        "vendor": {"x": 1},
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 17,
        "stream": True,
        "ignore_eos": True,
        "min_tokens": 8,
    }
    assert body_of(min_tokens="100")["min_tokens"] == 17  # never above max_tokens (vLLM refuses that)
    assert "ignore_eos" not in body_of() and "min_tokens" not in body_of()


EXTRA_FIX = 'give a JSON object, e.g. \'{"temperature": 0, "top_p": 0.9}\''


@pytest.mark.parametrize(
    "raw, line",
    [
        (
            "{bad",
            f"--extra-body: not valid JSON (Expecting property name enclosed in double quotes) (got '{{bad'); {EXTRA_FIX}",
        ),
        ("[1, 2]", f"--extra-body: not a JSON object (a list) (got '[1, 2]'); {EXTRA_FIX}"),
        (
            '{"model": "x", "temperature": 0}',
            '--extra-body: may not set \'model\': loadgate sets these per request (got \'{"model": "x", '
            '"temperature": 0}\'); drop it (use --models)',
        ),
        (
            '{"stream": false, "max_tokens": 9}',
            "--extra-body: may not set 'stream', 'max_tokens': loadgate sets these per request (got "
            '\'{"stream": false, "max_tokens": 9}\'); drop it (use --stream-ratio; use --output-tokens or --max-tokens)',
        ),
    ],
)
def test_bad_extra_body_is_one_line(raw, line):
    with pytest.raises(SettingError) as info:
        parse_value("--extra-body", raw)
    assert str(info.value) == line


# -- datasets ---------------------------------------------------------------------------------------------


def test_shipped_sharegpt_sample_loads_first_human_turn_and_answer_length():
    ps = load_prompts("", ("sharegpt", str(SHAREGPT)), None, 0, CL100K.count)
    raw = json.loads(SHAREGPT.read_text())
    assert len(ps) == len(raw) == 12 and ps.source == f"{SHAREGPT} (ShareGPT)"
    second = ps.prompts[1]
    assert second.messages == (
        {"role": "system", "content": raw[1]["conversations"][0]["value"]},
        {"role": "user", "content": raw[1]["conversations"][1]["value"]},
    )
    assert second.max_tokens == CL100K.count(raw[1]["conversations"][2]["value"])
    assert all(p.messages[-1]["role"] == "user" and p.max_tokens for p in ps.prompts)


def test_jsonl_dataset_is_the_prompt_file():
    shipped = REPO / "loadgate" / "data" / "prompts.jsonl"
    ps = load_prompts("", ("jsonl", str(shipped)), None, 0, CL100K.count)
    assert ps.source == str(shipped) and len(ps) > 10


@pytest.mark.parametrize(
    "content, where",
    [
        (
            '[{"conversations": []},\n  {"conversations": [}]',
            ":2: invalid JSON (Expecting value); a ShareGPT file is one JSON list",
        ),
        ('{"conversations": []}', ": expected a JSON list of conversations; "),
        (
            '[{"conversations": [{"from": "human", "value": "q"}]}, {"turns": []}]',
            ": entry [1]: no 'conversations' list; ",
        ),
        (
            '[{"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]}]',
            ': entry [0]: conversations[1] must be {"from": "human", "gpt" or "system", "value": string}',
        ),
        ('[{"conversations": [{"from": "gpt", "value": "a"}]}]', ": no conversation with a human turn; "),
    ],
)
def test_bad_sharegpt_file_names_file_and_entry(tmp_path, content, where):
    path = tmp_path / "data.json"
    path.write_text(content)
    with pytest.raises(PromptFileError) as info:
        load_sharegpt(str(path), CL100K.count)
    assert str(info.value).startswith(f"{path}{where}")


@pytest.mark.parametrize(
    "settings, message",
    [
        (("p.jsonl", ("sharegpt", "d.json"), None, 0), "--dataset: replaces --prompt-file; give one of them"),
        (
            ("", ("sharegpt", "d.json"), Lengths(5, 5, 5), 0),
            "--input-tokens: synthetic prompts replace --dataset; give one of them",
        ),
        (("", None, None, 8), "--shared-prefix-tokens: only with --input-tokens (synthetic prompts)"),
    ],
)
def test_prompt_sources_that_exclude_each_other(settings, message):
    with pytest.raises(PromptFileError) as info:
        load_prompts(*settings, CL100K.count)
    assert str(info.value) == message


# -- the tally of lengths ---------------------------------------------------------------------------------


def test_length_tally_merges_across_workers_and_warns_when_off():
    whole, parts = LengthTally(), [LengthTally(), LengthTally()]
    for i in range(100):
        for tally in (whole, parts[i % 2]):
            tally.record(100 + i, 10 + i % 7, 100 + i, 32)
    merged = LengthTally()
    for part in parts:
        merged.merge(json.loads(json.dumps(part.report())))  # as a worker report travels
    assert merged.summary() == whole.summary()
    s = whole.summary()
    assert s["input_lengths"] == {
        "answers": 100, "mean": 149.5, "p50": 149, "p99": 198, "min": 100, "max": 199,
        "requested_mean": 149.5, "achieved_mean_of_requested": 149.5,
    }  # fmt: skip
    assert s["output_lengths"]["max_tokens_mean"] == 32 and s["input_length_warning"] is None
    off = LengthTally()
    off.record(120, 5, 100, None)
    assert off.summary()["input_length_warning"] == (
        "the server counted 120.0 input tokens per prompt on average, +20% off the requested 100.0 "
        "(--input-tokens); its tokenizer splits loadgate's words differently: compare input_lengths in "
        "_llm_summary.json"
    )


# -- real runs against the mock -------------------------------------------------------------------------

# No delay, and answers longer than any max_tokens asked: the mock stops at max_tokens, so the truth
# log's completion_tokens are the max_tokens sent.
LONG_ANSWERS = {"loadgate-small": {"ttft": 0.005, "tokens_per_s": 0, "output_tokens": 5000}}


def length_run(
    tmp_path: Path, mock_server, *args: str
) -> tuple[subprocess.CompletedProcess, dict, list[dict]]:
    truth_log = tmp_path / "truth.jsonl"
    mock = mock_server(config=mock_config(models=LONG_ANSWERS), truth_log=truth_log)
    proc, prefix = run_locust(
        tmp_path,
        mock.url,
        "--models",
        "loadgate-small",
        "--multi-turn-ratio",
        "0",
        "--seed",  # fixed draws: an unseeded 100-300 mean strays past 10% about one run in 1,000
        "1",
        *args,
        users=3,
        run_time="3s",
        user_classes=("ChatUser",),
    )
    mock.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(Path(f"{prefix}_llm_summary.json").read_text())
    truth = [t for t in read_truth(truth_log) if t["path"] == "/v1/chat/completions" and t["status"] == 200]
    assert summary["completed_requests"] == len(truth) > 10
    return proc, summary, truth


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "input_tokens, mean, output_tokens, low, high",
    [("200:40", 200, "30:5", 1, None), ("100-300", 200, "20-40", 20, 40), ("500", 500, "48", 48, 48)],
)
def test_achieved_input_lengths_match_the_request_and_output_tokens_set_max_tokens(
    tmp_path: Path, mock_server, input_tokens, mean, output_tokens, low, high
):
    proc, summary, truth = length_run(
        tmp_path, mock_server, "--input-tokens", input_tokens, "--output-tokens", output_tokens
    )
    inputs, outputs = summary["input_lengths"], summary["output_lengths"]
    prompt_tokens = sorted(t["prompt_tokens"] for t in truth)
    # the summary's figures are the server's counts: the same as the mock's own log
    assert (
        inputs["answers"] == len(truth)
        and inputs["min"] == prompt_tokens[0]
        and inputs["max"] == prompt_tokens[-1]
    )
    assert inputs["mean"] == round(statistics.fmean(prompt_tokens), 2)
    assert abs(inputs["mean"] - mean) <= 0.1 * mean, inputs
    assert (
        inputs["achieved_mean_of_requested"] == inputs["requested_mean"]
    )  # the mock counts as loadgate does
    completion = [t["completion_tokens"] for t in truth]
    assert outputs["mean"] == round(statistics.fmean(completion), 2) == outputs["max_tokens_mean"]
    assert min(completion) >= low and (high is None or max(completion) <= high)
    if input_tokens == "500":
        assert set(prompt_tokens) == {500} and set(completion) == {48}
    assert f"input tokens per request (server usage.prompt_tokens): mean {inputs['mean']:g}" in proc.stderr
    assert "warning: the server counted" not in proc.stderr


@pytest.mark.timeout(60)
def test_sharegpt_dataset_sends_its_prompts_with_their_answer_lengths(tmp_path: Path, mock_server):
    _, summary, truth = length_run(tmp_path, mock_server, "--dataset", f"sharegpt:{SHAREGPT}")
    prompts = load_sharegpt(str(SHAREGPT), CL100K.count).prompts
    expected: dict[
        int, set[int | None]
    ] = {}  # the mock's prompt length -> the answer lengths of those prompts
    for p in prompts:
        expected.setdefault(mock_count("".join(m["content"] for m in p.messages)), set()).add(p.max_tokens)
    for t in truth:
        assert t["completion_tokens"] in expected[t["prompt_tokens"]], t
    assert len({t["prompt_tokens"] for t in truth}) > 3
    assert summary["input_lengths"]["requested_mean"] is None  # a dataset requests no input length


SHORT_ANSWERS = {"loadgate-small": {"ttft": 0.005, "tokens_per_s": 0, "output_tokens": 4}}


@pytest.mark.timeout(90)
def test_extra_body_reaches_the_server(tmp_path: Path, mock_server):
    """A field the mock accepts reaches every chat request: it honours min_tokens, so every answer is 12
    tokens where the model alone answers 4. One it refuses (a temperature above 2) stops the run at
    start-up, exit 2, with the server's reason: the probe's chat request carries the extra body too."""
    truth_log = tmp_path / "truth.jsonl"
    mock = mock_server(config=mock_config(models=SHORT_ANSWERS), truth_log=truth_log)
    proc, _ = run_locust(
        tmp_path, mock.url, "--models", "loadgate-small", "--output-tokens", "20",
        "--extra-body", '{"min_tokens": 12, "vendor_x": "y"}', users=1, run_time="2s", user_classes=("ChatUser",),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    mock.stop()
    chats = [t for t in read_truth(truth_log) if t["path"] == "/v1/chat/completions"]
    assert len(chats) >= 3 and {(t["status"], t["completion_tokens"]) for t in chats} == {(200, 12)}, chats
    refusing = mock_server(config=mock_config(models=SHORT_ANSWERS))
    proc, _ = run_locust(
        tmp_path, refusing.url, "--models", "loadgate-small", "--output-tokens", "20",
        "--extra-body", '{"temperature": 5}', users=1, run_time="2s", user_classes=("ChatUser",),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (
        "loadgate: error: the target refuses loadgate's chat request (model 'loadgate-small', max_tokens 20): "
        "POST /v1/chat/completions answered HTTP 400 invalid_value: temperature: expected a number in [0, 2], "
        "got 5; check OPENAI_API_KEY, --models and the target's settings\n"
    ) in proc.stderr, proc.stderr[-2000:]


def test_bad_extra_body_exits_2_for_locust_and_the_job(tmp_path: Path):
    line = f"--extra-body: not a JSON object (a list) (got '[1]'); {EXTRA_FIX}"
    proc, _ = run_locust(tmp_path, "http://127.0.0.1:9", "--extra-body", "[1]", run_time="1s")
    assert proc.returncode == 2 and f"loadgate: error: {line}\n" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    job = subprocess.run(
        [sys.executable, "-m", "loadgate", "run", "--extra-body", "[1]"],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert job.returncode == 2 and job.stderr == f"run_load_gate: error: {line}\n"


def test_bad_sharegpt_file_exits_2_naming_file_and_entry(tmp_path: Path):
    data = tmp_path / "data.json"
    data.write_text('[{"conversations": [{"from": "human", "value": "q"}]}, {"conversations": "x"}]')
    line = (
        f"{data}: entry [1]: no 'conversations' list; each entry is "
        '{"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", ...}]}'
    )
    proc, _ = run_locust(tmp_path, "http://127.0.0.1:9", "--dataset", f"sharegpt:{data}", run_time="1s")
    assert proc.returncode == 2 and f"loadgate: error: {line}\n" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    # the job checks it before it starts anything (no target, no results folder)
    job = subprocess.run(
        [sys.executable, "-m", "loadgate", "run", "--dataset", f"sharegpt:{data}", "--results", str(tmp_path / "res")],
        cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (job.returncode, job.stderr) == (2, f"run_load_gate: error: {line}\n")
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize(
    "output_tokens, expected", [(None, 16), ("40", 40), ("30-90", 30), ("200:40", 200), ("3:10", 3)]
)
def test_the_probe_asks_for_the_max_tokens_the_run_sends(output_tokens, expected):
    """--output-tokens wins over --max-tokens (16-64 here), as in every chat body: its smallest value, a
    normal distribution's mean."""
    lengths = None if output_tokens is None else parse_value("--output-tokens", output_tokens)
    assert probe_max_tokens((16, 64), lengths) == expected
