"""The threshold language on its own: every metric, operator, unit and duration, and the errors."""

import pytest

from loadgate.gate.language import RuleSyntaxError, parse_duration, parse_rule


@pytest.mark.parametrize(
    ("text", "metric", "op", "limit"),
    [
        ("p(95) < 3000", "p(95)", "<", 3000.0),
        ("p(99)<8s", "p(99)", "<", 8000.0),
        ("p(99.9) <= 250ms", "p(99.9)", "<=", 250.0),
        ("p(99.99) > 1.5s", "p(99.99)", ">", 1500.0),
        ("p(100) >= 1m", "p(100)", ">=", 60000.0),
        ("median == 12", "median", "==", 12.0),
        ("avg < 1500", "avg", "<", 1500.0),
        ("min >= 0", "min", ">=", 0.0),
        ("max < 2s", "max", "<", 2000.0),
        ("rps >= 5", "rps", ">=", 5.0),
        ("fail_rps < 0.5", "fail_rps", "<", 0.5),
        ("fail_ratio < 1%", "fail_ratio", "<", 0.01),
        ("fail_ratio < 0.01", "fail_ratio", "<", 0.01),
        ("requests >= 100", "requests", ">=", 100.0),
        ("failures == 0", "failures", "==", 0.0),
    ],
)
def test_rules_parse_to_metric_operator_and_limit_in_the_metrics_unit(text, metric, op, limit):
    rule = parse_rule(text)
    assert (rule.metric.name, rule.op, rule.limit, rule.window_s, rule.baseline) == (
        metric,
        op,
        limit,
        None,
        None,
    )


def test_for_window_and_baseline_forms():
    rule = parse_rule("p(95) < 4000 for 1m30s")
    assert (rule.limit, rule.window_s) == (4000.0, 90.0)
    up = parse_rule("p(95) <= baseline + 10%").baseline
    assert up.limit(200.0) == pytest.approx(220.0)
    down = parse_rule("rps >= baseline - 5%").baseline
    assert down.limit(100.0) == pytest.approx(95.0)
    absolute = parse_rule("max <= baseline + 200ms")
    assert absolute.baseline.limit(1000.0) == 1200.0 and absolute.time_unit_given
    assert parse_rule("avg <= baseline").baseline.limit(7.0) == 7.0


def test_percentile_maps_to_locusts_column_name():
    assert parse_rule("p(99.9) < 1").metric.column_label == "99.9%"
    assert parse_rule("p(50.0) < 1").metric.column_label == "50%"
    assert parse_rule("median < 1").metric.column_label is None


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("p95 < 3000", "unknown metric 'p95'"),
        ("latency < 3", "unknown metric 'latency'"),
        ("p(95) = 3000", "unknown operator '='"),
        ("p(95) != 3000", "unknown operator '!='"),
        ("p(0) < 3", "bad percentile"),
        ("p(abc) < 3", "bad percentile"),
        ("rps >= 3s", "unit 's' does not apply to rps"),
        ("avg < 3%", "unit '%' does not apply to avg"),
        ("avg < fast", "bad value 'fast'"),
        ("avg <", "bad value ''"),
        ("p(95) < 4000 for 0s", "duration must be positive"),
        ("p(95) < 4000 for soon", "bad duration"),
        ("p(95)", "cannot parse threshold"),
    ],
)
def test_bad_rules_say_what_is_wrong_and_keep_the_whole_rule(text, what):
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)
    assert caught.value.what == what
    assert caught.value.got == text


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(30, 30.0), ("30s", 30.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), ("0", 0.0), ("1.5", 1.5)],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["-5s", "5 parsecs", "s30", True])
def test_bad_durations(value):
    with pytest.raises(RuleSyntaxError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "metric", "kind"),
    [
        ("cancelled <= 5", "cancelled", "count"),
        ("loadgen_lag_p99 < 50ms", "loadgen_lag_p99", "time"),
        ("achieved_rate >= 9.5", "achieved_rate", "rate"),
        ("schedule_lag_p99 < 1s", "schedule_lag_p99", "time"),
    ],
)
def test_llm_summary_metrics_of_the_load_generator(text, metric, kind):
    rule = parse_rule(text)
    assert (rule.metric.name, rule.metric.kind) == (metric, kind)


def test_every_llm_summary_metric_has_a_key_in_the_contract():
    from loadgate import contract
    from loadgate.gate.language import SUMMARY_METRICS

    assert set(SUMMARY_METRICS) | {"requests"} == set(contract.LLM_SUMMARY_METRICS)


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("p(95) < " + "9" * 400, "value '" + "9" * 40 + "' is out of range"),
        ("max <= baseline + " + "9" * 400 + "ms", "value '" + "9" * 40 + "' is out of range"),
        ("p(95) < 4000 for " + "9" * 400 + "s", "duration must be a finite number of seconds"),
        ("p(95) < inf", "bad value 'inf'"),
        ("p(95) < nan", "bad value 'nan'"),
        ("p(95) < -5", "bad value '-5'"),
    ],
)
def test_limits_and_windows_must_be_finite(text, what):
    with pytest.raises(RuleSyntaxError) as caught:
        parse_rule(text)
    assert caught.value.what == what


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (float("inf"), "duration must be a finite number of seconds"),
        (float("nan"), "duration must be a finite number of seconds"),
        (10**400, "bad duration"),
    ],
)
def test_durations_must_be_finite(value, what):
    with pytest.raises(RuleSyntaxError) as caught:
        parse_duration(value)
    assert caught.value.what == what
