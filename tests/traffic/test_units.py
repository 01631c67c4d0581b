"""Unit tests: SSE parsing, metric math, bucketing precision, settings and prompt validation."""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

import pytest

from loadgate.client.protocol import (
    ResponseInvalid,
    check_batch_output,
    completion,
    completion_text,
    content_of,
    prompt_tokens,
    response_id,
    usage_tokens,
)
from loadgate.client.sse import SSEParser
from loadgate.client.timing import GoodputTargets, RequestTiming, parse_goodput
from loadgate.durations import parse_duration
from loadgate.harness import precision
from loadgate.harness.llm_stats import LlmStats
from loadgate.options import SettingError, load
from loadgate.prompts import PromptFileError, PromptSet


def feed_all(parser: SSEParser, *chunks: bytes) -> list[str]:
    return [e.data for chunk in chunks for e in parser.feed(chunk)]


# -- SSE ----------------------------------------------------------------------------------------------


def test_sse_event_split_across_reads_is_emitted_once_complete():
    p = SSEParser()
    assert feed_all(p, b'data: {"a"', b": 1}\n") == []
    assert feed_all(p, b"\n") == ['{"a": 1}']


def test_sse_crlf_cr_comments_and_multiline_data():
    p = SSEParser()
    out = feed_all(
        p, b": keep-alive\r\n\r\ndata: one\r\ndata: two\r\n\r", b"\ndata: three\r\rdata:[DONE]\n\n"
    )
    assert out == ["one\ntwo", "three", "[DONE]"]


def test_sse_event_without_data_is_not_dispatched_and_incomplete_is_reported():
    p = SSEParser()
    assert feed_all(p, b"event: ping\n\n", b"data: partial") == []
    assert p.incomplete


STREAMS = [
    b'data: {"a":1}\n\ndata: {"b":2}\n\n: keep\n\nevent: x\ndata: one\ndata: two\n\ndata:bare\n\n\n\ndata: [DONE]\n\n',
    b": keep-alive\r\n\r\ndata: one\r\ndata: two\r\n\r\ndata: three\r\rdata:[DONE]\n\n",
    b"data: \xc3\xa9t\xc3\xa9\n\nid: 3\ndata: x\n\ndata: y\n\n\n",
    b"data: a\n\ndata: b\r\n\r\ndata: c\n\ndata: partial",
    b'data: {"a":1}\n\ndata: \n\ndata: {"b":"data: x"}\n\ndata:{"c":3}\n\ndata: d\n\n\n\ndata: [DONE]\n\n',
]


@pytest.mark.parametrize("stream", STREAMS)
def test_sse_payloads_fast_path_gives_the_events_of_the_full_parser_however_the_reads_split(stream):
    want = [e.data.encode() for e in SSEParser().feed(stream)]
    rng = random.Random(7)
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(0, 6)))
        p = SSEParser()
        got = [
            d for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True) for d in p.payloads(stream[a:b])
        ]
        assert got == want
        assert p.incomplete == stream.endswith(b"partial")


# -- metrics ------------------------------------------------------------------------------------------


def streamed_timing() -> RequestTiming:
    # sent at 10.000 s, headers at 10.010, tokens at 10.200, 10.220, 10.250, 10.300
    t = RequestTiming(t_send=10.0)
    t.first_byte(10.010)
    for ts in (10.200, 10.220, 10.250, 10.300):
        t.content_event(ts)
    t.t_end = 10.310  # usage chunk + [DONE] after the last token: not part of E2E
    return t


def test_metrics_follow_vllm_definitions():
    t = streamed_timing()
    assert t.ttfb_ms == pytest.approx(10.0)
    assert t.ttft_ms == pytest.approx(200.0)
    assert t.e2e_ms == pytest.approx(300.0)
    assert t.itl_ms == pytest.approx([20.0, 30.0, 50.0])
    assert t.output_tokens == 0 and t.tpot_ms is None  # four chunks are not four tokens: nothing counted
    t.counted_tokens, t.counted_by = 7, "tokenizer"  # the text, counted (no usage)
    assert (t.output_tokens, t.token_source) == (7, "tokenizer")
    assert t.tpot_ms == pytest.approx((300.0 - 200.0) / 6)
    t.usage_tokens = 5  # the server's usage wins over a count of the text
    assert (t.output_tokens, t.token_source) == (5, "server")
    assert t.tpot_ms == pytest.approx(25.0)
    assert t.tokens_per_s == pytest.approx(5 / 0.3)


def test_tpot_needs_two_tokens_and_non_stream_e2e_is_body_time():
    one = RequestTiming(t_send=0.0)
    one.content_event(0.1)
    assert one.tpot_ms is None and one.itl_ms == []
    body = RequestTiming(t_send=0.0, t_end=0.5, usage_tokens=10)
    assert body.ttft_ms is None and body.e2e_ms == pytest.approx(500.0)
    assert body.tokens_per_s == pytest.approx(20.0)
    words = RequestTiming(t_send=0.0, t_end=0.5, counted_tokens=7, counted_by="estimate")
    assert words.output_tokens == 7 and words.tpot_ms is None
    llm = LlmStats()
    llm.record("/v1/chat/completions [non-stream]", words)
    assert (llm.counters.usage_counted, llm.counters.usage_from_server) == (1, 0)
    summary = llm.summary()
    assert (summary["token_source"], summary["token_source_shares"]) == ("estimate", {"estimate": 1.0})
    llm.record("/v1/chat/completions [non-stream]", body)
    llm.record("/v1/chat/completions [non-stream]", body)
    llm.record("/v1/chat/completions [non-stream]", body)
    summary = llm.summary()
    assert summary["token_source"] == "mixed (server 75%, estimate 25%)"
    assert summary["token_source_shares"] == {"server": 0.75, "estimate": 0.25}
    assert summary["usage_source"] == "mixed" and summary["responses_with_counted_tokens"] == 1


def test_goodput_counts_requests_meeting_every_target():
    targets = parse_goodput("ttft:250,tpot:40")
    assert targets == GoodputTargets(ttft_ms=250.0, tpot_ms=40.0)
    assert targets.met_by(streamed_timing())  # ttft 200, tpot 33.3
    assert not parse_goodput("e2el:299").met_by(streamed_timing())
    llm = LlmStats(targets)
    llm.window_start = 100.0
    llm.window_end = 102.0
    fast = streamed_timing()
    fast.counted_tokens, fast.counted_by = 4, "tokenizer"
    llm.record("/v1/chat/completions [stream]", fast)
    slow = streamed_timing()
    slow.counted_tokens, slow.counted_by = 4, "tokenizer"
    slow.t_tokens[0] = 10.26  # ttft 260 > 250
    llm.record("/v1/chat/completions [stream]", slow)
    summary = llm.summary()
    assert summary["good_requests"] == 1 and summary["goodput_req_per_s"] == 0.5
    assert summary["total_output_tokens"] == 8 and summary["usage_source"] == "counted"
    assert summary["token_source"] == "tokenizer"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("ttft", "is not NAME:MS"),
        ("latency:5", "is not NAME:MS"),
        ("ttft:abc", "needs a finite number of ms > 0"),
        ("ttft:nan", "needs a finite number of ms > 0"),
        ("tpot:0", "> 0"),
    ],
)
def test_goodput_bad_spec_names_the_part(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_goodput(spec)


# -- precision ----------------------------------------------------------------------------------------


def test_bucketing_keeps_every_value_within_half_a_percent():
    rng = random.Random(3)
    edges = [0.0123, 0.05678, 0.0999, 1.0, 99.96, 100.0, 999.5, 123456.0]
    values = [rng.lognormvariate(3, 2) for _ in range(20000)] + edges
    worst = max(abs(precision.bucket_3_sig_digits(v) - v) / v for v in values)
    assert worst <= precision.MAX_RELATIVE_ERROR == 0.005
    assert precision.bucket_3_sig_digits(147) == 147 and precision.bucket_3_sig_digits(3432) == 3430
    assert precision.bucket_3_sig_digits(12.345) == 12.3
    for v in values:  # the fast ranges give Python's own decimal rounding (ties aside): the same keys
        digits = precision.SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(v))
        expected = round(v, digits)
        if v > 0.001 and abs(v * 10**digits % 1 - 0.5) > 1e-6:
            assert precision.bucket_3_sig_digits(v) == (int(expected) if digits <= 0 else expected), v


def test_locust_own_bucketing_is_coarser_than_one_percent():
    import locust.stats

    precision.uninstall()
    try:
        assert abs(locust.stats.bucket_response_time(1049) - 1049) / 1049 > 0.04  # -> 1000
    finally:
        precision.install()
    assert locust.stats.bucket_response_time(1049) == 1050


# -- settings -----------------------------------------------------------------------------------------


def options(**values) -> SimpleNamespace:
    return SimpleNamespace(**values)


def test_settings_defaults_and_parsing():
    s = load(options(stream_ratio="0.5", turns="3", max_tokens="8-16", warmup="1.5m", models="a, b"))
    assert (s.stream_ratio, s.turns, s.max_tokens, s.warmup_s, s.models) == (
        0.5,
        (3, 3),
        (8, 16),
        90.0,
        ("a", "b"),
    )
    assert s.batch_mode == "both" and s.chat_weight == 85 and s.job_timeout_s == 120.0
    assert parse_duration("250ms") == 0.25
    assert load(options(warmup="1m30s")).warmup_s == 90.0  # the same syntax as the job and the gate YAML


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("stream_ratio", "1.5", "--stream-ratio: must be from 0 to 1 (got 1.5)"),
        ("batch_mode", "sync", "--batch-mode: unknown value (got 'sync'); choose one of async, batch, both"),
        ("turns", "4-2", "--turns: needs 1 <= MIN <= MAX (got '4-2'); use e.g. 64 or 32-128"),
        (
            "think_time",
            "nan",
            "--think-time: not a finite number of seconds (got 'nan'); use seconds S or MIN-MAX",
        ),
        (
            "job_timeout",
            "soon",
            "--job-timeout: not a duration (got 'soon'); use e.g. 40s, 5m, 1h30m or seconds",
        ),
        ("goodput", "ttft=5", "--goodput: target 'ttft=5' is not NAME:MS (got 'ttft=5'); use e.g. ttft:500"),
    ],
)
def test_bad_setting_message_names_flag_value_and_fix(field, value, message):
    with pytest.raises(SettingError) as info:
        load(options(**{field: value}))
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


# -- prompts ------------------------------------------------------------------------------------------


def test_shipped_prompt_set_loads_with_varied_lengths():
    prompts = PromptSet.load()
    lengths = sorted(sum(len(m["content"]) for m in p.messages) for p in prompts.prompts)
    assert len(prompts) >= 30 and lengths[0] < 60 and lengths[-1] > 2000
    assert any(p.followups for p in prompts.prompts)


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", ":1: invalid JSON"),
        ('{"messages": []}', ":1: 'messages' must be a non-empty list"),
        (
            '{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}',
            ":1: the last message must have role 'user'",
        ),
        ('{"prompt": "x", "max_tokens": 0}', ":1: 'max_tokens' must be a positive integer"),
    ],
)
def test_bad_prompt_file_names_file_line_and_fix(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(PromptFileError) as info:
        PromptSet.load(path)
    assert str(info.value).startswith(f"{path}{message}")


# -- response validation ------------------------------------------------------------------------------


def test_completion_without_choices_is_invalid():
    with pytest.raises(ResponseInvalid, match="^200 response without choices$"):
        completion_text({"id": "x", "choices": []})
    assert completion_text({"choices": [{"message": {"role": "assistant", "content": "hi"}}]}) == "hi"


@pytest.mark.parametrize(
    "data",
    [
        {
            "id": "a",
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"completion_tokens": 2, "prompt_tokens": 5},
        },
        {
            "id": "a",
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"completion_tokens": True, "prompt_tokens": 5},
        },
        {
            "id": "",
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"completion_tokens": 2, "prompt_tokens": 5},
        },
        {
            "id": 7,
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"completion_tokens": 2, "prompt_tokens": 5},
        },
        {"choices": [{"message": {"content": "hi"}}], "usage": {"completion_tokens": 2}},
        {"id": "a", "choices": [{"message": {"content": "", "reasoning_content": "hmm"}}], "usage": None},
        {
            "id": "a",
            "choices": [{"message": {"content": 3}}],
            "usage": {"completion_tokens": 2, "prompt_tokens": 5},
        },
        {
            "id": "a",
            "choices": [{"message": {"content": "hi"}}],
            "usage": {"completion_tokens": 2.0, "prompt_tokens": 5},
        },
        {"id": "a", "choices": [{"message": "hi"}], "usage": {"completion_tokens": 2, "prompt_tokens": 5}},
        {"id": "a", "choices": [], "usage": {"completion_tokens": 2, "prompt_tokens": 5}},
        {"error": {"message": "boom"}},
        [1, 2],
        "not an object",
    ],
)
def test_a_completion_read_at_once_gives_what_the_field_by_field_checks_give(data):
    """protocol.completion's fast path (the usual answer, read at once) against the per-field helpers:
    the same four values, or the same failure."""
    body = json.dumps(data).encode()
    try:
        parsed = json.loads(body)
        expected: object = (
            completion_text(parsed),
            *(usage_tokens(parsed), prompt_tokens(parsed), response_id(parsed)),
        )
    except ResponseInvalid as e:
        expected = str(e)
    try:
        got: object = completion(body)
    except ResponseInvalid as e:
        got = str(e)
    assert got == expected


def test_content_of_counts_reasoning_and_tool_calls_but_not_role_only():
    assert content_of({"role": "assistant", "content": ""}) == ""
    assert content_of({"reasoning_content": "hmm"}) == "hmm"
    assert content_of({"tool_calls": [{"function": {"arguments": '{"a"'}}]}) == '{"a"'


def test_batch_output_missing_lines_is_a_failure():
    ok = {
        "status_code": 200,
        "body": {"choices": [{"message": {"content": "x"}}], "usage": {"completion_tokens": 3}},
    }
    body = (json.dumps({"custom_id": "a", "response": ok}) + "\n").encode()
    assert check_batch_output(body, ["a"]) == [(3, "x")]
    with pytest.raises(ResponseInvalid, match="^batch output missing 1 of 2 lines$"):
        check_batch_output(body, ["a", "b"])


# -- the task mix -------------------------------------------------------------------------------------


def test_the_task_mix_follows_settings_and_probe_replaced_mid_run():
    """The choice is cached per settings/probe object: a web-UI edit (new Settings) or a probe's findings
    change the next pick at once; a weight of 0 is never picked; nothing served stops the user."""
    import dataclasses
    from collections import Counter

    from locust.env import Environment
    from locust.exception import StopUser

    from loadgate.harness.state import state
    from loadgate.harness.users import BatchTasks, BatchUserBase, ChatTasks, ChatUserBase
    from loadgate.target import ASYNC, BATCH, ProbeResult, RouteProbe

    class ChatUser(ChatUserBase):
        host = "http://127.0.0.1:9"  # never called

    class BatchUser(BatchUserBase):
        host = "http://127.0.0.1:9"

    env = Environment(user_classes=[ChatUser, BatchUser], parsed_options=None)
    st = state(env)
    st.settings = dataclasses.replace(st.settings, stream_ratio=1.0, multi_turn_ratio=0.0)
    chat = ChatTasks(ChatUser(env))

    def mix(tasks, n=200):
        return Counter(tasks.get_next_task().__name__ for _ in range(n))

    assert mix(chat) == {"stream_chat": 200}
    st.settings = dataclasses.replace(st.settings, stream_ratio=0.25, multi_turn_ratio=0.2)
    picked = mix(chat, 2000)
    assert set(picked) == {"stream_chat", "non_stream_chat", "multi_turn_chat"}
    assert 300 < picked["multi_turn_chat"] < 500 and 300 < picked["stream_chat"] < 500  # 20%, 0.8 * 25%
    batch = BatchTasks(BatchUser(env))
    st.settings = dataclasses.replace(st.settings, batch_mode="both")
    picks = [batch.get_next_task().__name__ for _ in range(9)]
    assert set(picks[0::2]) | set(picks[1::2]) == {"async_job", "batch_job"}
    assert len(set(picks[0::2])) == len(set(picks[1::2])) == 1  # they take turns: never one kind only
    st.probe = ProbeResult("http://x", {ASYNC: RouteProbe(False, "HTTP 404 (absent)")})
    assert mix(batch) == {"batch_job": 200}
    st.probe = ProbeResult("http://x", {ASYNC: RouteProbe(False, "x"), BATCH: RouteProbe(False, "x")})
    with pytest.raises(StopUser):
        batch.get_next_task()


def test_answers_reach_the_rows_in_bulk_exactly_as_one_log_per_figure(monkeypatch):
    """LlmStats.record keeps a second's answers pending and logs them in bulk: once per second, every
    FOLD_VALUES values and before any read. Each row must end up as Locust's own StatsEntry.log per
    figure leaves it (counts per second, histogram, response-times cache); a reset drops what is pending."""
    import locust.stats

    from loadgate.contract import model_row
    from loadgate.harness import llm_stats

    clock = SimpleNamespace(now=1000.2)
    fake_time = SimpleNamespace(time=lambda: clock.now)
    monkeypatch.setattr(llm_stats, "FOLD_VALUES", 64)  # the 60 answers of one second: several folds
    monkeypatch.setattr(llm_stats, "time", fake_time)
    monkeypatch.setattr(locust.stats, "time", fake_time)
    llm, reference = LlmStats(), locust.stats.RequestStats(use_response_times_cache=True)
    rng = random.Random(7)

    def answer(name: str, model: str | None, stream: bool) -> None:
        timing = RequestTiming(t_send=0.0, usage_tokens=rng.randint(1, 30))
        timing.first_byte(rng.uniform(0.001, 0.05))
        if stream:
            timing.t_tokens = sorted(rng.uniform(0.05, 2.0) for _ in range(rng.randint(1, 12)))
        else:
            timing.t_end = rng.uniform(0.05, 2.0)
        llm.record(name, timing, model)
        rows = (name, model_row(name, model)) if model else (name,)
        figures = [*zip(llm_stats.FIGURES, timing.figures(), strict=True)]
        figures += [(llm_stats.ITL, gap) for gap in (timing.itl_ms if len(timing.t_tokens) > 1 else ())]
        for metric, value in figures:
            for row in rows:
                if value is not None:
                    reference.get(row, metric).log(value, 0)

    kinds = [("/s [stream]", "a", True), ("/s [stream]", "b", True), ("/n [non-stream]", None, False)]
    for clock.now, answers in ((1000.2, 5), (1000.4, 3), (1000.7, 60), (1001.1, 2), (1003.5, 4), (1003.9, 1)):
        for _ in range(answers):
            answer(*rng.choice(kinds))
        if answers == 3:
            assert llm.stats.entries  # a read mid-second (the web UI, the progress line) folds them
    fields = ("num_requests", "min_response_time", "max_response_time", "response_times")
    assert set(llm.stats.entries) == set(reference.entries)
    for key, entry in llm.stats.entries.items():
        expected = reference.entries[key]
        assert [getattr(entry, f) for f in fields] == [getattr(expected, f) for f in fields], key
        assert entry.total_response_time == pytest.approx(expected.total_response_time, rel=1e-12), key
        assert entry.num_reqs_per_sec == expected.num_reqs_per_sec, key
        assert {t: c.response_times for t, c in entry.response_times_cache.items()} == {
            t: c.response_times for t, c in expected.response_times_cache.items()
        }, key
    answer("/s [stream]", "a", True)
    llm.reset()
    assert all(e.num_requests == 0 for e in llm.stats.entries.values())
