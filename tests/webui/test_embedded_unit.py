"""Decisions of the embedded-target auto-start that need no process: which hosts, ports and configs."""

from __future__ import annotations

import socket

import pytest

from loadgate.harness import embedded
from loadgate.harness.embedded import EmbeddedTargetError, EmbeddedTargets, LoopbackEndpoint
from loadgate.mock.config import PROFILES_DIR


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("http://127.0.0.1:8000", LoopbackEndpoint("127.0.0.1", 8000)),
        ("http://localhost:9000", LoopbackEndpoint("127.0.0.1", 9000)),
        ("http://LOCALHOST:9000/", LoopbackEndpoint("127.0.0.1", 9000)),
        ("http://127.0.0.2", LoopbackEndpoint("127.0.0.2", 80)),
        ("http://[::1]:8000", LoopbackEndpoint("::1", 8000)),
        ("http://user:secret@127.0.0.1:8000", LoopbackEndpoint("127.0.0.1", 8000)),
        ("https://127.0.0.1:8000", None),  # the mock speaks plain HTTP only
        ("http://10.0.0.1:8000", None),
        ("http://gateway.example.com", None),
        ("http://127.0.0.1:notaport", None),
        ("127.0.0.1:8000", None),
        ("", None),
        (None, None),
    ],
)
def test_only_plain_http_loopback_hosts_qualify(host, expected):
    assert embedded.loopback_endpoint(host) == expected


def test_endpoint_url_brackets_ipv6():
    assert LoopbackEndpoint("::1", 8000).url == "http://[::1]:8000"
    assert LoopbackEndpoint("127.0.0.1", 8000).url == "http://127.0.0.1:8000"


@pytest.fixture
def listening_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def test_port_with_a_listener_is_not_free(listening_port):
    assert embedded.port_is_free(LoopbackEndpoint("127.0.0.1", listening_port)) is False


def test_closed_port_is_free():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert embedded.port_is_free(LoopbackEndpoint("127.0.0.1", port)) is True


def test_config_resolution(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("models: {}\n")
    assert embedded.resolve_config(None) is None
    assert embedded.resolve_config("") is None
    assert embedded.resolve_config(str(config)) == str(config.resolve())
    assert embedded.resolve_config("zero-latency") == str(PROFILES_DIR / "zero-latency.yaml")


def test_unknown_config_names_the_value_and_the_shipped_profiles():
    with pytest.raises(EmbeddedTargetError) as error:
        embedded.resolve_config("no-such-profile")
    message = str(error.value)
    assert message.startswith("--embedded-config: no such file or shipped profile (got 'no-such-profile')")
    assert "default" in message and "zero-latency" in message


def test_off_and_non_loopback_auto_start_nothing():
    targets = EmbeddedTargets()
    assert targets.ensure("http://127.0.0.1:1", "off", None) is None
    assert targets.ensure("http://gateway.example.com:8000", "auto", None) is None
    assert targets.ensure(None, "auto", None) is None
    # a loopback host the user gave: never replaced by the mock (where nothing listens, the probe says so)
    assert targets.ensure("http://127.0.0.1:18099", "auto", None) is None
    assert targets.ensure("http://localhost:9000/v1", "auto", None) is None


def test_on_refuses_a_non_loopback_host_without_its_credentials():
    with pytest.raises(EmbeddedTargetError) as error:
        EmbeddedTargets().ensure("http://user:hunter2@gateway.example.com:8000", "on", None)
    assert str(error.value).startswith(
        "--embedded-target on: host 'http://gateway.example.com:8000' is not a plain-HTTP loopback URL"
    )
    assert "hunter2" not in str(error.value)


def test_busy_port_auto_leaves_it_to_its_listener_on_fails(listening_port):
    host = f"http://127.0.0.1:{listening_port}"
    assert EmbeddedTargets().ensure(host, "auto", None) is None
    with pytest.raises(EmbeddedTargetError, match=f"port {listening_port} on 127.0.0.1 is already in use"):
        EmbeddedTargets().ensure(host, "on", None)
