"""The upgrade guard: every Locust/geventhttpclient private loadgate touches is still there, at the
versions requirements.txt pins. An upgrade that changes one fails here, not silently in the figures."""

from importlib import metadata
from pathlib import Path

from loadgate.harness import locust_compat

ROOT = Path(__file__).resolve().parents[2]


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name] = version
    return pins


def test_the_libraries_whose_internals_we_touch_are_pinned_exactly_and_installed_at_the_pin():
    pins = pinned()
    assert set(pins) >= {"locust", "geventhttpclient"}
    for name, version in pins.items():
        assert metadata.version(name) == version, (
            f"{name} {metadata.version(name)} installed, {version} pinned"
        )


def test_every_private_loadgate_touches_still_exists():
    assert locust_compat.missing_internals() == []


def test_bucketing_swap_round_trips():
    import locust.stats

    from loadgate.harness import precision

    precision.install()
    assert locust.stats.bucket_response_time(147.4) == 147
    precision.uninstall()
    assert locust.stats.bucket_response_time(147.4) == 150  # Locust's own: 2 significant digits
    precision.install()


def test_a_worker_is_known_before_locust_sets_its_runner():
    from types import SimpleNamespace

    from locust.env import Environment

    env = Environment()
    assert env.runner is None
    env.parsed_options = SimpleNamespace(worker=True)  # what `locust --worker` parses
    assert locust_compat.is_worker(env)  # a rebalancing master's spawn can come before the runner
    env.parsed_options = SimpleNamespace(worker=False)
    assert not locust_compat.is_worker(env)
    env.create_local_runner()
    env.parsed_options = SimpleNamespace(worker=True)
    assert not locust_compat.is_worker(env)  # once set, the runner decides


def test_log_many_gives_the_entry_of_one_log_per_value():
    from locust.stats import RequestStats

    values = [0.0, 12.34, 0.5, 147.4, 3.0, 12.34]
    one, bulk = RequestStats().get("x", "ITL"), RequestStats().get("x", "ITL")
    for value in values:
        one.log(value, 0)
    locust_compat.log_many(bulk, values)
    locust_compat.log_many(bulk, [])
    fields = (
        "num_requests",
        "total_response_time",
        "min_response_time",
        "max_response_time",
        "response_times",
    )
    assert [getattr(bulk, f) for f in fields] == [getattr(one, f) for f in fields]
    assert sum(bulk.num_reqs_per_sec.values()) == len(values)
