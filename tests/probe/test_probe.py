"""The start-up probe (loadgate/target.py) against the mock, no load: reachability, auth, routes; and the
failure reasons (loadgate/client/protocol.py) and host URLs (loadgate/urls.py) it and the users share."""

from __future__ import annotations

import time

import pytest

from loadgate import target
from loadgate.client import protocol as p
from loadgate.job import free_port
from loadgate.urls import basic_auth_header, normalize_host, public_url, target_host

KEY = "sk-probe-right-key-0001"
FAST = {"ttft": 0.0, "tokens_per_s": 0, "output_tokens": 4}


def config(**overrides) -> dict:
    return {"seed": 1, "models": {"loadgate-small": dict(FAST)}, **overrides}


def test_a_full_target_serves_every_route(mock_server):
    mock = mock_server(config=config())
    found = target.probe(mock.url)
    assert {name: route.served for name, route in found.routes.items()} == dict.fromkeys(target.ROUTES, True)
    assert found.models == ["loadgate-small"]
    assert found.host == mock.url
    target.require(found, target.ROUTES, models_given=False)  # nothing missing: no error


def test_a_refused_key_is_one_line_naming_status_message_and_the_variable(mock_server, monkeypatch):
    mock = mock_server(config=config(auth={"keys": [KEY]}))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0000000")
    started = time.monotonic()
    with pytest.raises(target.TargetError) as error:
        target.probe(mock.url)
    assert time.monotonic() - started < 10
    assert str(error.value) == (
        "the target refused the API key: GET /v1/models answered HTTP 401 invalid_api_key: Incorrect API key "
        "provided: sk-****0000.; set OPENAI_API_KEY to a key the target accepts"
    )


def test_a_missing_key_is_refused_too(mock_server, monkeypatch):
    mock = mock_server(config=config(auth={"keys": [KEY]}))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(
        target.TargetError, match=r"^the target refused the API key: GET /v1/models answered HTTP 401"
    ):
        target.probe(mock.url)


def test_the_right_key_passes(mock_server, monkeypatch):
    mock = mock_server(config=config(auth={"keys": [KEY]}))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert target.probe(mock.url).served(target.CHAT)


def test_nothing_listening_is_named_at_once():
    port = free_port()
    started = time.monotonic()
    with pytest.raises(target.TargetError) as error:
        target.probe(f"http://user:secret@127.0.0.1:{port}/v1/")
    assert time.monotonic() - started < 5
    assert str(error.value) == (
        f"nothing listens at http://127.0.0.1:{port}: connection refused; start the target or fix --host"
    )


def test_no_model_list_and_no_models_names_the_flag(mock_server):
    mock = mock_server(config=config(endpoints={"models": False}))
    found = target.probe(mock.url)
    assert not found.served(target.MODELS) and found.served(target.CHAT)
    with pytest.raises(target.TargetError) as error:
        target.require(found, {target.CHAT}, models_given=False)
    assert str(error.value) == (
        "no model to use: GET /v1/models answered 404: the target has no model list; set --models "
        "(LOADGATE_MODELS) to the model ids the target serves"
    )
    given = target.probe(mock.url, models=["loadgate-small"])
    target.require(given, {target.CHAT}, models_given=True)
    assert (
        given.routes[target.MODEL].detail == "GET /v1/models/{id}: HTTP 404, absent"
    )  # GET /v1/models/{id} went with the list


def test_each_route_is_probed_on_its_own(mock_server):
    mock = mock_server(config=config(endpoints={"model_by_id": False, "async": False}))
    found = target.probe(mock.url)
    served = {name: route.served for name, route in found.routes.items()}
    assert served == {
        "models": True,
        "model": False,
        "chat": True,
        "async": False,
        "batch": True,
        "health": True,
    }
    assert found.routes["async"].detail == "POST /v1/chat/completions/async: HTTP 404, absent"


def test_a_chat_request_the_target_refuses_fails_the_run_with_the_servers_reason(mock_server):
    mock = mock_server(config=config())
    found = target.probe(mock.url, models=["no-such-model"], max_tokens=0)
    with pytest.raises(target.TargetError) as error:
        target.require(found, {target.CHAT}, models_given=True)
    assert str(error.value).startswith(
        "the target refuses loadgate's chat request (model 'no-such-model', max_tokens 0): "
        "POST /v1/chat/completions answered HTTP 400"
    )


def test_the_chat_check_carries_the_extra_body(mock_server):
    """--extra-body goes into the probe's chat request as into every chat request: a field the target
    refuses is refused at start-up (the mock allows temperature 0-2), one it accepts passes."""
    mock = mock_server(config=config())
    refused = target.probe(mock.url, routes=[target.CHAT], extra_body={"temperature": 5})
    assert refused.routes[target.CHAT].refused is not None
    assert "temperature" in refused.routes[target.CHAT].detail
    accepted = target.probe(mock.url, routes=[target.CHAT], extra_body={"temperature": 1.5})
    assert accepted.routes[target.CHAT].refused is None
    assert accepted.routes[target.CHAT].detail == "POST /v1/chat/completions: HTTP 200"


def test_the_probe_round_trips_through_json(mock_server):
    mock = mock_server(config=config(endpoints={"batch": False}))
    found = target.probe(mock.url)
    again = target.ProbeResult.from_json(found.to_json())
    assert again == found
    assert again.capabilities()["batch"] == {"served": False, "detail": "POST /v1/files: HTTP 404, absent"}


# -- health: a missing route falls back to the probe --------------------------------------------------


def test_a_404_health_route_returns_at_once(mock_server):
    mock = mock_server(config=config())
    started = time.monotonic()
    assert target.wait_healthy(mock.url, "/no-health-here", 30) == "absent"
    assert time.monotonic() - started < 2
    assert target.wait_healthy(mock.url, "/health", 30) == "ok"


def test_health_where_nothing_listens_names_it():
    port = free_port()
    with pytest.raises(target.TargetError) as error:
        target.wait_healthy(f"http://127.0.0.1:{port}", "/health", 0.5)
    assert str(error.value) == (
        f"nothing listens at http://127.0.0.1:{port}: connection refused for 0.5s; start the target or fix --host"
    )


# -- failure reasons: status, the server's code and message ------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            500,
            b'{"error": {"message": "files_settings is not set", "type": "server_error", "code": "500"}}',
            "HTTP 500 server_error: files_settings is not set",
        ),
        (
            400,
            b'{"error": {"message": "No connected db.", "type": "no_db_connection", "param": null, "code": "400"}}',
            "HTTP 400 no_db_connection: No connected db.",
        ),
        (
            400,
            b'{"error": {"message": "bad", "type": "invalid_request_error", "code": "400"}}',
            "HTTP 400 invalid_request_error: bad",
        ),
        (400, b"400", "HTTP 400"),
        (
            422,
            b'{"detail": [{"loc": ["body", "purpose"], "msg": "Field required"}]}',
            "HTTP 422: body.purpose: Field required",
        ),
        (404, b'{"detail": "Not Found"}', "HTTP 404: Not Found"),
        (500, b"Internal Server Error", "HTTP 500: Internal Server Error"),
        (502, b"<html><title>502 Bad Gateway</title></html>", "HTTP 502: 502 Bad Gateway"),
        (500, b"", "HTTP 500 server error"),
        (429, b"", "HTTP 429 rate limited"),
        (503, b'{"error": "overloaded"}', "HTTP 503: overloaded"),
        (
            401,
            b'{"error": {"message": "key sk-abcdefghijklmnop at http://u:pw@gw/x", "code": "invalid_api_key"}}',
            "HTTP 401 invalid_api_key: key *** at http://***@gw/x",
        ),
        (
            500,
            b'{"error": {"message": "' + b"x" * 300 + b'", "code": "boom"}}',
            "HTTP 500 boom: " + "x" * 200 + "...",
        ),
    ],
)
def test_status_reason_carries_the_servers_code_and_message(status, body, reason):
    assert p.status_reason(status, body) == reason


def test_varying_messages_are_grouped_after_a_few(monkeypatch):
    monkeypatch.setattr(p, "_seen_messages", {})
    reasons = {
        p.status_reason(503, f'{{"error": {{"message": "{n} queued", "code": "busy"}}}}'.encode())
        for n in range(20)
    }
    assert len(reasons) == p.DISTINCT_MESSAGES + 1
    assert "HTTP 503 busy: # queued" in reasons


def test_the_current_key_is_scrubbed(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "plainsecretvalue")
    assert (
        p.status_reason(400, b'{"error": {"message": "bad key plainsecretvalue"}}') == "HTTP 400: bad key ***"
    )


@pytest.mark.parametrize(
    ("status", "body", "resource", "absent"),
    [
        (404, b'{"detail": "Not Found"}', False, True),
        (405, b"", False, True),
        (
            404,
            b'{"error": {"message": "The model x does not exist", "code": "model_not_found"}}',
            False,
            False,
        ),
        (404, b'{"detail": "Not Found"}', True, True),
        (404, b'{"error": {"message": "Invalid URL (GET /v1/batches/x)", "code": null}}', True, True),
        (404, b'{"error": {"message": "No such batch x", "code": "batch_not_found"}}', True, False),
        (400, b"", False, False),
    ],
)
def test_route_absent_or_resource_missing(status, body, resource, absent):
    assert p.is_route_absent(status, body, resource) is absent


# -- host URLs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "host"),
    [
        ("http://gw:8000/", "http://gw:8000"),
        ("http://gw:8000/v1", "http://gw:8000"),
        ("http://gw:8000/v1/", "http://gw:8000"),
        ("https://gw/prefix/v1/", "https://gw/prefix"),
        ("http://user:pw@gw:8000/v1/?x=1", "http://gw:8000"),
        ("http://[::1]:8000/", "http://[::1]:8000"),
    ],
)
def test_target_host_is_normalised_and_has_no_credentials(given, host):
    assert target_host(given) == host
    assert normalize_host(public_url(given) or "") == host


def test_credentials_become_a_basic_header():
    assert basic_auth_header("http://user:p%40ss@gw") == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert basic_auth_header("http://gw") is None
