"""The scraper's parts without a load test: the default filters against the servers' own metric pages, the
CSV row format, and a refused scrape logged once and counted (loadgate.servermetrics,
loadgate.harness.server_metrics)."""

from __future__ import annotations

import logging

import pytest

from loadgate.harness.server_metrics import ServerMetrics
from loadgate.job import free_port
from loadgate.options import SettingError, parse_value
from loadgate.servermetrics import (
    DEFAULT_FILTERS,
    NotPrometheusText,
    compile_filters,
    label_text,
    parse_label_text,
    parse_page,
)

# Excerpts of real /metrics pages (names and label sets as the servers write them).
PAGES = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="llama"} 7.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.42
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="llama"} 5.0
vllm:time_to_first_token_seconds_count{model_name="llama"} 5.0
vllm:time_to_first_token_seconds_sum{model_name="llama"} 0.3
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="qwen"} 2.0
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="qwen"} 0.5
# TYPE tgi_queue_size gauge
tgi_queue_size 4
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size 8
# TYPE litellm_in_flight_requests gauge
litellm_in_flight_requests{model="gpt"} 11.0
# TYPE python_gc_objects_collected_total counter
python_gc_objects_collected_total{generation="0"} 123.0
# TYPE mock_requests_waiting gauge
mock_requests_waiting 8.0
"""


def test_the_default_filters_keep_the_servers_load_series_and_drop_the_rest():
    kept = parse_page(PAGES, compile_filters(DEFAULT_FILTERS))
    assert [(s.metric, s.labels, s.value) for s in kept] == [
        ("vllm:num_requests_running", 'engine="0",model_name="llama"', 3.0),
        ("vllm:num_requests_waiting", 'engine="0",model_name="llama"', 7.0),
        ("vllm:kv_cache_usage_perc", 'engine="0",model_name="llama"', 0.42),
        ("sglang:num_queue_reqs", 'model_name="qwen"', 2.0),
        ("sglang:token_usage", 'model_name="qwen"', 0.5),
        ("tgi_queue_size", "", 4.0),
        ("tgi_batch_current_size", "", 8.0),
        ("litellm_in_flight_requests", 'model="gpt"', 11.0),
        ("mock_requests_waiting", "", 8.0),
    ]
    filters = parse_value("--server-metrics-filter", "default,vllm:time_to_first_token_seconds_count")
    names = {s.metric for s in parse_page(PAGES, compile_filters(filters))}
    assert "vllm:time_to_first_token_seconds_count" in names
    assert "vllm:time_to_first_token_seconds_bucket" not in names  # whole-name matches only


def test_rows_and_labels_are_stable_and_round_trip():
    labels = {"model_name": 'a "b"', "engine": "0\\1"}
    assert label_text(labels) == 'engine="0\\\\1",model_name="a \\"b\\""'
    assert parse_label_text(label_text(labels)) == labels
    (sample,) = parse_page('x{b="2",a="1"} NaN\n', compile_filters(["x"]))
    assert sample.row(1.5) == ["1.500", "x", 'a="1",b="2"', "NaN"]


@pytest.mark.parametrize("page", ["<html><body>Not Found</body></html>", '{"detail": "Not Found"}'])
def test_a_page_that_is_not_prometheus_text_is_refused(page):
    with pytest.raises(NotPrometheusText):
        parse_page(page, compile_filters(DEFAULT_FILTERS))


def test_a_refused_scrape_is_logged_once_then_counted(caplog):
    port = free_port()
    scraper = ServerMetrics(f"http://user:pw-secret@127.0.0.1:{port}/metrics", 1.0, DEFAULT_FILTERS)
    scraper.resolve("http://127.0.0.1:1", None)
    with caplog.at_level(logging.WARNING, logger="loadgate"):
        for _ in range(3):
            scraper.scrape(None)
    assert (scraper.scrapes, scraper.failures) == (0, 3)
    assert [r.getMessage() for r in caplog.records] == [
        f"loadgate: server metrics: scraping http://127.0.0.1:{port}/metrics failed (connection refused); "
        "further failures are only counted, the run goes on"
    ]
    assert scraper.metadata() == {
        "server_metrics_url": f"http://127.0.0.1:{port}/metrics",
        "server_metrics_scrapes": 0,
        "server_metrics_failures": 3,
    }


def test_auto_without_prometheus_text_turns_itself_off(caplog):
    port = free_port()  # nothing listens: auto says so once and scrapes nothing
    scraper = ServerMetrics("auto", 5.0, DEFAULT_FILTERS)
    with caplog.at_level(logging.WARNING, logger="loadgate"):
        scraper.resolve(f"http://k:secret@127.0.0.1:{port}", None)
    assert scraper.url is None
    assert [r.getMessage() for r in caplog.records] == [
        f"loadgate: --server-metrics auto: http://127.0.0.1:{port}/metrics does not answer Prometheus text "
        "(connection refused); no server metrics"
    ]


@pytest.mark.parametrize(
    ("flag", "raw", "message"),
    [
        (
            "--server-metrics",
            "ftp://u:secret@h/metrics",
            "--server-metrics: not an http(s) URL (got 'ftp://h/metrics'); use auto, off or an http(s) URL, "
            "e.g. http://vllm:8000/metrics",
        ),
        ("--server-metrics-filter", ",", "--server-metrics-filter: no pattern (got ','); use e.g. default or "
         "vllm:num_requests_.*,sglang:.*"),
    ],
)  # fmt: skip
def test_bad_settings_are_one_line_without_secrets(flag, raw, message):
    with pytest.raises(SettingError) as error:
        parse_value(flag, raw)
    assert str(error.value) == message
