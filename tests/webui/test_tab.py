"""The LLM tabs through Locust's real web UI app (Flask test client): template args, live rows, CSV."""

from __future__ import annotations

import csv
import io
import json

import pytest
from locust import HttpUser, task
from locust.env import Environment

from loadgate.harness import outputs, webui
from loadgate.harness.state import state

STREAM = "/v1/chat/completions [stream]"
NON_STREAM = "/v1/chat/completions [non-stream]"


class IdleUser(HttpUser):
    host = "http://127.0.0.1:9"

    @task
    def nothing(self) -> None:  # never run: the runner is not started
        pass


@pytest.fixture
def ui_env(monkeypatch, tmp_path):
    # Locust's template args parse sys.argv and ./locust.conf for the UI's extra options: isolate both.
    monkeypatch.setattr("sys.argv", ["locust"])
    monkeypatch.chdir(tmp_path)
    environment = Environment(user_classes=[IdleUser])
    environment.create_local_runner()
    web_ui = environment.create_web_ui("127.0.0.1", 0, delayed_start=True)  # never listens
    llm = state(environment).llm
    webui.install(environment)
    yield environment, llm, web_ui.app.test_client()
    environment.runner.quit()


def stats_payload(client) -> dict:
    response = client.get("/stats/requests")
    assert response.status_code == 200
    return response.get_json()


def tab_rows(payload: dict, key: str) -> list[dict]:
    (tab,) = [tab for tab in payload["extended_stats"] if tab["key"] == key]
    return tab["data"]


def test_index_declares_the_tabs_tables_and_csv_link(ui_env):
    _, _, client = ui_env
    html = client.get("/").get_data(as_text=True)
    args = json.loads(html.split("window.templateArgs = ", 1)[1].split("\n", 1)[0])
    assert args["extended_tabs"] == [
        {"key": "llm_metrics", "title": "LLM metrics"},
        {"key": "llm_charts", "title": "LLM charts"},
        {"key": "sla", "title": "SLA"},
        {"key": "llm_summary", "title": "LLM summary"},
    ]
    tables = {
        table["key"]: [column["key"] for column in table["structure"]] for table in args["extended_tables"]
    }
    assert tables == {  # no table for the charts tab: ui.js puts the charts page there
        "llm_metrics": ["type", "name", "unit", "count", "p50", "p90", "p95", "p99", "avg", "min", "max"],
        "sla": ["row", "rule", "value", "limit", "state", "breach"],
        "llm_summary": ["figure", "value"],
    }
    assert args["extended_csv_files"] == [
        {"href": "./stats/llm/csv", "title": "Download LLM metrics CSV"},
        {"href": "./stats/llm/summary", "title": "Download LLM summary JSON"},
    ]


def test_stats_poll_carries_llm_rows_with_exact_figures_in_metric_order(ui_env):
    _, llm, client = ui_env
    for value in (100, 200, 300):
        llm.log("TTFT", STREAM, value)
    llm.log("TOKENS/S", STREAM, 40)
    llm.log("TTFB", STREAM, 50)
    llm.log("E2E", NON_STREAM, 900)

    rows = tab_rows(stats_payload(client), "llm_metrics")

    assert [(row["type"], row["name"]) for row in rows] == [
        ("E2E", NON_STREAM),
        ("TTFB", STREAM),
        ("TTFT", STREAM),
        ("TOKENS/S", STREAM),
    ]
    ttft = rows[2]
    assert ttft == {
        "type": "TTFT",
        "name": STREAM,
        "unit": "ms",
        "count": 3,
        "p50": 200,
        "p90": 300,
        "p95": 300,
        "p99": 300,
        "avg": 200.0,
        "min": 100,
        "max": 300,
    }
    assert rows[3]["unit"] == "tok/s"
    assert "Aggregated" not in [row["name"] for row in rows]


def test_rows_are_fresh_on_every_poll_although_locust_memoizes_its_stats(ui_env):
    _, llm, client = ui_env
    llm.log("ITL", STREAM, 10)
    assert tab_rows(stats_payload(client), "llm_metrics")[0]["count"] == 1
    llm.log("ITL", STREAM, 20)
    llm.log("ITL", STREAM, 30)
    assert tab_rows(stats_payload(client), "llm_metrics")[0]["count"] == 3


def test_empty_stats_give_empty_tables_not_errors(ui_env):
    environment, _, client = ui_env
    payload = stats_payload(client)
    assert tab_rows(payload, "llm_metrics") == []
    assert payload["stats"][-1]["name"] == "Aggregated"  # Locust's own payload is left intact
    delattr(environment, "loadgate")  # no loadgate run state at all
    assert tab_rows(stats_payload(client), "llm_summary") == []


def test_other_routes_are_untouched(ui_env):
    _, llm, client = ui_env
    llm.log("TTFT", STREAM, 100)
    assert "extended_stats" not in client.get("/exceptions").get_json()
    assert "TTFT" not in client.get("/stats/requests/csv").get_data(as_text=True)


def test_summary_tab_shows_labelled_figures(ui_env):
    _, llm, client = ui_env
    llm.counters.output_tokens = 12345
    llm.counters.completed = 7
    llm.counters.usage_from_server, llm.counters.counted_tokenizer = 3, 1
    llm.token_counter = "tiktoken cl100k_base (offline)"
    llm.record_cancelled("POST", "/v1/chat/completions")
    rows = {row["figure"]: row["value"] for row in tab_rows(stats_payload(client), "llm_summary")}
    assert rows["Output tokens (total)"] == "12,345"
    assert rows["Completed LLM responses"] == "7"
    # the same value as token_source in _llm_summary.json and on the console, with the counter's name
    assert rows["Token source (how output tokens were counted)"] == (
        "mixed (server 75%, tokenizer 25%) (tiktoken cl100k_base (offline))"
    )
    assert llm.summary()["token_source"] == "mixed (server 75%, tokenizer 25%)"
    assert rows["Token source share: server"] == "0.75" and "Token counts from" not in rows
    assert rows["Requests cancelled by the stop (not failures)"] == "1"
    assert rows["Cancelled: POST /v1/chat/completions"] == "1"


def test_summary_rows_format_values_and_flatten_targets():
    rows = webui.summary_rows(
        {
            "output_tokens_per_s": 12.5,
            "goodput_req_per_s": None,
            "goodput_targets": {"ttft_ms": 500.0, "e2e_ms": None},
            "lost_jobs": 0,
            "some_new_figure": True,
        }
    )
    assert rows == [
        {"figure": "Output tokens/s (all users)", "value": "12.5"},
        {"figure": "Goodput (req/s meeting every target)", "value": "n/a"},
        {"figure": "Goodput target: TTFT (ms)", "value": "500"},
        {"figure": "Goodput target: E2E (ms)", "value": "n/a"},
        {"figure": "Async/batch jobs lost (not terminal in time, or at the stop)", "value": "0"},
        {"figure": "some new figure", "value": "yes"},
    ]


def test_llm_csv_download_has_locust_columns_and_no_aggregated_row(ui_env):
    _, llm, client = ui_env
    for value in (100, 200, 300):
        llm.log("TTFT", STREAM, value)
    response = client.get("/stats/llm/csv")
    assert response.status_code == 200
    assert response.headers["Content-type"] == "text/csv"
    assert "attachment" in response.headers["Content-disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:4] == ["Type", "Name", "Request Count", "Failure Count"]
    assert [row[:4] for row in rows[1:]] == [["TTFT", STREAM, "3", "0"]]


def test_percentiles_never_leave_the_exact_min_max(ui_env):
    _, llm, client = ui_env
    llm.log("E2E", STREAM, 236.5)  # bucketed to 240 (Locust) or 237 (3 digits): above the max
    (row,) = tab_rows(stats_payload(client), "llm_metrics")
    assert (row["min"], row["max"]) == (236.5, 236.5)
    assert [row[key] for key in ("p50", "p90", "p95", "p99")] == [236.5] * 4


def test_routes_follow_web_base_path(monkeypatch, tmp_path):
    from locust.argument_parser import parse_options

    monkeypatch.setattr("sys.argv", ["locust"])
    monkeypatch.chdir(tmp_path)
    options = parse_options(args=["--web-base-path", "/lg"])
    environment = Environment(user_classes=[IdleUser], parsed_options=options)
    environment.create_local_runner()
    web_ui = environment.create_web_ui("127.0.0.1", 0, web_base_path="/lg", delayed_start=True)
    state(environment).llm.log("TTFT", STREAM, 100)
    webui.install(environment)
    client = web_ui.app.test_client()
    try:
        assert tab_rows(client.get("/lg/stats/requests").get_json(), "llm_metrics")[0]["count"] == 1
        assert "TTFT" in client.get("/lg/stats/llm/csv").get_data(as_text=True)
        assert client.get("/stats/llm/csv").status_code == 404
    finally:
        environment.runner.quit()


def test_reset_stats_button_restarts_the_llm_tabs_too(ui_env):
    _, llm, client = ui_env
    llm.log("TTFT", STREAM, 100)
    llm.counters.output_tokens = 50
    assert client.post("/stats/reset").get_data(as_text=True) == "ok"
    payload = stats_payload(client)
    (row,) = tab_rows(payload, "llm_metrics")  # the row stays, emptied, as Locust's own rows do
    assert (row["count"], row["p50"], row["avg"], row["max"]) == (0, None, None, None)
    summary = {row["figure"]: row["value"] for row in tab_rows(payload, "llm_summary")}
    assert summary["Output tokens (total)"] == "0"


def test_small_values_keep_two_decimals_and_the_ui_does_no_rounding(ui_env):
    _, llm, client = ui_env
    llm.log("ITL", STREAM, 1.234)
    (row,) = tab_rows(stats_payload(client), "llm_metrics")
    assert (row["p50"], row["avg"], row["min"], row["max"]) == (1.23, 1.23, 1.23, 1.23)
    assert all("round" not in column for column in webui.METRICS_TABLE)  # it would show None as 0


def test_llm_summary_download_is_the_summary_json(ui_env):
    environment, llm, client = ui_env
    llm.counters.output_tokens = 42
    response = client.get("/stats/llm/summary")
    assert response.status_code == 200
    assert response.headers["Content-type"] == "application/json"
    assert "attachment" in response.headers["Content-disposition"]
    assert response.get_json() == outputs.summary(state(environment))  # no test started: zero duration
    assert response.get_json()["total_output_tokens"] == 42
