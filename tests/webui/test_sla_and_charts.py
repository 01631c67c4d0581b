"""The SLA tab, the LLM charts tab and loadgate's script in Locust's page, through Locust's real web UI app
(Flask test client; no browser, no load: tests/webui/test_browser.py has those)."""

from __future__ import annotations

import pytest
from locust import HttpUser, task
from locust.argument_parser import parse_options
from locust.env import Environment

from loadgate.harness import lifecycle, live_sla, webui
from loadgate.harness.llm_charts import MAX_POINTS, SERIES, LlmCharts
from loadgate.harness.state import state

STREAM = "/v1/chat/completions [stream]"
NON_STREAM = "/v1/chat/completions [non-stream]"
T0 = 1_700_000_000.0


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
    environment = Environment(user_classes=[IdleUser], parsed_options=parse_options(args=[]))
    environment.create_local_runner()
    web_ui = environment.create_web_ui("127.0.0.1", 0, delayed_start=True)  # never listens
    state(environment)
    webui.install(environment)
    yield environment, web_ui.app.test_client()
    environment.runner.quit()


def sla_tab(client) -> list[dict]:
    (tab,) = [t for t in client.get("/stats/requests").get_json()["extended_stats"] if t["key"] == "sla"]
    return tab["data"]


def write(tmp_path, text: str, name: str = "sla.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


SLA = """
min_requests: 1
thresholds:
  Aggregated:
    - "fail_ratio < 1%"
    - "requests > 1000"
  "TTFT /v1/chat/completions [stream]":
    - "p(95) < 2500"
    - "p(95) < 4s for 10s"
regression:
  Aggregated:
    - "rps >= baseline - 5%"
"""


# -- the page: loadgate's script and stylesheet -----------------------------------------------------------


def test_locust_page_links_the_script_and_stylesheet_once(ui_env):
    _, client = ui_env
    page = client.get("/").get_data(as_text=True)
    assert page.count(webui.UI_TAGS) == 1
    assert page.index(webui.UI_TAGS) < page.index("</head>")
    assert 'src="./loadgate/ui.js"' in webui.UI_TAGS  # relative, like Locust's own assets


@pytest.mark.parametrize(
    ("path", "content_type", "needle"),
    [
        ("/loadgate/ui.js", "text/javascript", "LLM charts"),
        ("/loadgate/ui.css", "text/css", "MuiInputLabel"),
        ("/loadgate/llm-charts.html", "text/html", "./llm-charts.json"),
        ("/loadgate/plotly.min.js", "text/javascript", "plotly.js"),
    ],
)
def test_loadgate_files_are_served_from_the_package(ui_env, path, content_type, needle):
    _, client = ui_env
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-type"].startswith(content_type)
    assert needle in response.get_data(as_text=True)[:5_000_000]


def test_other_paths_under_loadgate_are_not_found(ui_env):
    _, client = ui_env
    assert client.get("/loadgate/../web.py").status_code == 404
    assert client.get("/loadgate/secret.txt").status_code == 404


def test_the_tab_order_puts_loadgate_tabs_before_locusts_secondary_ones():
    script = (webui.STATIC / "ui.js").read_text()
    order = script.split("const ORDER = [", 1)[1].split("];", 1)[0]
    titles = [t.strip().strip('"') for t in order.replace("\n", " ").split(",") if t.strip()]
    assert titles[:7] == ["Statistics", "Charts", "Failures", *(title for _, title in webui.TABS)]
    assert titles[7:] == ["Exceptions", "Current Ratio", "Download Data", "Logs", "Workers"]


# -- the SLA tab -------------------------------------------------------------------------------------------


def test_sla_tab_without_a_file_says_how_to_get_one(ui_env):
    _, client = ui_env
    assert sla_tab(client) == [webui.NO_SLA_FILE]


def test_sla_tab_lists_every_threshold_with_no_data_before_the_first_evaluation(ui_env, tmp_path):
    environment, client = ui_env
    environment.parsed_options.sla = write(tmp_path, SLA)
    live = live_sla.load(environment, environment.parsed_options)
    state(environment).live_sla = live
    rows = sla_tab(client)
    assert [(r["row"], r["rule"], r["limit"], r["state"]) for r in rows] == [
        ("Aggregated", "fail_ratio < 1%", "< 1%", "no data yet"),
        ("Aggregated", "requests > 1000", "> 1000", "no data yet"),
        ("TTFT /v1/chat/completions [stream]", "p(95) < 2500", "< 2500", "no data yet"),
        ("TTFT /v1/chat/completions [stream]", "p(95) < 4s for 10s", "< 4s for 10s", "no data yet"),
        ("Aggregated", "rps >= baseline - 5%", ">= baseline - 5%", "no data yet"),
    ]
    assert {r["value"] for r in rows} == {"-"}


def test_sla_tab_shows_live_values_states_and_time_in_breach(ui_env, tmp_path):
    environment, client = ui_env
    environment.parsed_options.sla = write(tmp_path, SLA)
    live = live_sla.load(environment, environment.parsed_options)
    state(environment).live_sla = live
    for _ in range(10):
        environment.stats.log_request("POST", "/v1/chat/completions", 100, 10)
    for value in (100, 200, 300):
        state(environment).llm.log("TTFT", STREAM, value)
    live.started_at = T0
    live.tick(now=T0 + 30)
    rows = {(r["row"], r["rule"]): r for r in live.ui_rows(now=T0 + 42)}

    fail_ratio = rows[("Aggregated", "fail_ratio < 1%")]
    assert (fail_ratio["value"], fail_ratio["state"], fail_ratio["breach"]) == ("0%", "pass", "")
    requests = rows[("Aggregated", "requests > 1000")]
    assert (requests["value"], requests["state"]) == ("10", "breach")
    assert requests["breach"] == "12 s (since 0:30)"  # first seen at the evaluation 30 s into the test
    ttft = rows[("TTFT /v1/chat/completions [stream]", "p(95) < 2500")]
    assert (ttft["value"], ttft["limit"], ttft["state"]) == ("300 ms", "< 2500 ms", "pass")
    window = rows[("TTFT /v1/chat/completions [stream]", "p(95) < 4s for 10s")]
    assert window["state"] == "no data yet" and window["limit"] == "< 4000 ms for 10 s"
    regression = rows[("Aggregated", "rps >= baseline - 5%")]
    assert regression["state"].startswith("skip: ")
    assert live.breach_count() == (1, 4, True)

    # the breach ends: the row passes again and says how long it lasted
    for _ in range(1000):
        environment.stats.log_request("POST", "/v1/chat/completions", 100, 10)
    live.tick(now=T0 + 50)
    requests = {(r["row"], r["rule"]): r for r in live.ui_rows(now=T0 + 55)}[
        ("Aggregated", "requests > 1000")
    ]
    assert (requests["state"], requests["breach"]) == ("pass", "earlier: 20 s, ended 0:50")
    assert live.breach_count() == (0, 4, True)


def test_start_form_names_the_sla_file_at_test_start(ui_env, tmp_path):
    environment, client = ui_env
    st = state(environment)
    environment.parsed_options.sla = write(tmp_path, SLA)  # what the form's Sla field sets
    lifecycle.follow_sla_form(environment, st)
    assert st.live_sla is not None and len(sla_tab(client)) == 5

    environment.parsed_options.sla = write(
        tmp_path, "thresholds:\n  Aggregated: ['p(95) < lots']\n", "bad.yaml"
    )
    lifecycle.follow_sla_form(environment, st)  # a bad file cannot stop the web UI: it shows instead
    assert st.live_sla is None
    (row,) = sla_tab(client)
    assert row["state"] == "error"
    assert row["value"].startswith(f"loadgate live SLA: error: {tmp_path / 'bad.yaml'}:2: bad value 'lots'")

    environment.parsed_options.sla = ""  # the field emptied: no live SLA any more
    lifecycle.follow_sla_form(environment, st)
    assert st.live_sla is None and sla_tab(client) == [webui.NO_SLA_FILE]


# -- the LLM charts tab ------------------------------------------------------------------------------------


def test_chart_points_hold_the_last_window_per_endpoint(ui_env):
    environment, client = ui_env
    charts = state(environment).charts
    llm = state(environment).llm
    llm.window_start = T0
    for value in (100, 200, 300, 400, 500):
        llm.log("TTFT", STREAM, value)
    llm.log("E2E", NON_STREAM, 900)
    llm.tokens_by_name = {STREAM: 40, NON_STREAM: 10}
    point = charts.sample(T0 + 2)
    stream = dict(zip(SERIES, point["endpoints"][STREAM], strict=True))
    assert (stream["ttft_p50"], stream["ttft_p95"], stream["itl_p50"], stream["e2e_p50"]) == (
        300,
        500,
        None,
        None,
    )
    assert stream["tokens_per_s"] == 20.0  # 40 tokens over the 2 s since the test started
    non_stream = dict(zip(SERIES, point["endpoints"][NON_STREAM], strict=True))
    assert (non_stream["e2e_p95"], non_stream["ttft_p95"], non_stream["tokens_per_s"]) == (900, None, 5.0)

    # later points hold only what came within their last 10 s
    for second in range(3, 6):
        charts.sample(T0 + second)
    llm.log("TTFT", STREAM, 5000)
    llm.tokens_by_name[STREAM] = 140
    for second in range(6, 15):
        charts.sample(T0 + second)
    last = dict(zip(SERIES, charts.points[-1]["endpoints"][STREAM], strict=True))
    assert last["ttft_p50"] == last["ttft_p95"] == 5000  # the five early samples left the window
    assert last["tokens_per_s"] == 10.0  # 100 tokens in the last 10 s

    payload = client.get("/loadgate/llm-charts.json").get_json()
    assert payload["full"] and len(payload["points"]) == 13 and payload["series"] == list(SERIES)


def test_the_page_gets_only_new_points_and_starts_over_after_reset(ui_env):
    environment, client = ui_env
    charts = state(environment).charts
    llm = state(environment).llm
    llm.window_start = T0
    llm.log("TTFT", STREAM, 100)
    for second in range(1, 4):
        charts.sample(T0 + second)
    first = client.get("/loadgate/llm-charts.json").get_json()
    assert first["full"] and len(first["points"]) == 3
    charts.sample(T0 + 4)
    query = f"run={first['run']}&version={first['version']}&have=3"
    more = client.get(f"/loadgate/llm-charts.json?{query}").get_json()
    assert not more["full"] and [p["at"] for p in more["points"]] == [T0 + 4]

    assert client.post("/stats/reset").status_code == 200  # Locust's Reset button
    after = client.get(f"/loadgate/llm-charts.json?{query}").get_json()
    assert after["full"] and after["points"] == [] and after["run"] != first["run"]


def test_a_long_history_is_thinned_and_the_page_reloads_it(ui_env):
    environment, _ = ui_env
    charts = LlmCharts(environment)
    state(environment).llm.window_start = T0
    for second in range(1, MAX_POINTS + 2):
        charts.sample(T0 + second)
    assert len(charts.points) < MAX_POINTS and charts.version == 1
    assert charts.points[-1]["at"] == T0 + MAX_POINTS + 1  # the recent points stay, one a second
    assert charts.payload(charts.run, 0, 10)["full"]
