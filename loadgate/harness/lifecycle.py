"""loadgate's lifecycle listeners: settings at init, a fresh measurement at test start, the warm-up
reset, the stop (worker flush, measurement window) and the LLM table after Locust's own at quit."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

import loadgate
from loadgate import options as opts
from loadgate import workload
from loadgate.client.tokens import TokenizerError, load_counter
from loadgate.contract import EXIT_BAD_INPUT
from loadgate.harness import (
    arrival,
    capacity,
    distributed,
    llm_stats,
    monitor,
    outputs,
    progress,
    request_log,
    server_metrics,
)
from loadgate.harness.locust_compat import is_worker
from loadgate.harness.state import has_state, new_state, state
from loadgate.prompts import PromptFileError
from loadgate.target import ROUTES, TASK_ROUTES, ProbeResult, TargetError, probe, require, role_routes
from loadgate.urls import basic_auth_header, public_url, target_host

logger = logging.getLogger("loadgate")


def fail_setup(message: str) -> None:
    """A bad setting before any load: one line, exit 2."""
    sys.stderr.write(f"loadgate: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_BAD_INPUT)


PROBE_HANDOFF_ENV = "LOADGATE_PROBE_RESULT"  # the job's probe (JSON), so Locust does not probe again
PROBE_OPTION = "loadgate_probe"  # on parsed_options: Locust sends it to the workers with every spawn
BASIC_AUTH_OPTION = "loadgate_basic_auth"  # the host URL's credentials, for the workers' users
HOST_AUTH_ENV = "LOADGATE_HOST_BASIC_AUTH"  # the job passes --host's credentials here, not in the URL


def apply_class_weights(environment: Any, s: opts.Settings) -> None:
    """--chat-weight/--batch-weight/--models-weight set the classes' Locust weights; a class none of
    whose routes the target serves (start-up probe) gets weight 0: it is not run."""
    weights = {"chat": s.chat_weight, "batch": s.batch_weight, "models": s.models_weight}
    found = state(environment).probe
    for user_class in environment.user_classes:
        role = getattr(user_class, "loadgate_role", None)
        if role in weights:
            user_class.weight = weights[role]
            if found is not None and not any(found.served(r) for r in role_routes(role, s.batch_mode)):
                user_class.weight = 0


def secure_host(environment: Any) -> None:
    """On every runner: the host normalised (no trailing slash, no /v1) and without credentials, which
    are kept apart (RunState.basic_auth) and sent by loadgate's users, so that Locust's report, logs and
    web UI show only the public URL."""
    host = environment.host
    if not host:
        return
    st = state(environment)
    basic = basic_auth_header(host) or os.environ.get(HOST_AUTH_ENV) or None
    if basic:
        st.basic_auth = basic
    environment.host = target_host(host)
    options = environment.parsed_options
    if options is not None:
        if getattr(options, "host", None):
            options.host = environment.host
        if st.basic_auth:
            setattr(options, BASIC_AUTH_OPTION, st.basic_auth)
        if basic and any(not getattr(c, "loadgate_role", "") for c in environment.user_classes):
            logger.warning(
                "loadgate: the credentials in --host are sent by loadgate's user classes only; %s get the "
                "URL without them",
                ", ".join(
                    sorted(
                        c.__name__ for c in environment.user_classes if not getattr(c, "loadgate_role", "")
                    )
                ),
            )


@events.init.add_listener
def on_init(environment: Any, **_kw: Any) -> None:
    try:
        st = new_state(environment)
    except (opts.SettingError, PromptFileError, TokenizerError) as e:
        fail_setup(str(e))
        return
    secure_host(environment)
    apply_class_weights(environment, st.settings)
    distributed.install(environment)
    arrival.install(environment)
    request_log.install(environment)
    capacity.enable_rebalancing(environment)
    environment.events.quit.add_listener(lambda **_kw: print_llm_summary(environment))  # quit has no env
    environment.events.spawning_complete.add_listener(lambda **_kw: state(environment).monitor.settle())
    outputs.start_writing(environment, st)
    options = environment.parsed_options
    if not is_worker(environment):
        if st.settings.find_capacity:
            from loadgate.harness import capacity_search  # pandas, matplotlib, the gate: only for a search

            capacity_search.install(environment)  # (its --sla is the search's thresholds, not a live check)
        elif options is not None and getattr(options, "sla", None):
            from loadgate.harness.live_sla import start  # pandas and the gate: only for runs with --sla

            start(environment, options)
        install_live_sla(environment)
        try:
            st.progress = progress.install(environment)
            st.server_metrics = server_metrics.install(environment)
        except opts.SettingError as e:
            fail_setup(str(e))
    logger.info(
        "loadgate %s: prompts from %s%s, goodput targets %s; tokens without usage: %s",
        loadgate.__version__,
        st.prompts.source,
        f" ({len(st.prompts)})" if len(st.prompts) else "",
        st.settings.goodput.as_dict(),
        st.tokens.name if st.tokens else "estimate",
    )


def install_live_sla(environment: Any) -> None:
    """Evaluate the live SLA file (if any: --sla, or the web UI's start form) through each test."""

    def live() -> Any:
        return state(environment).live_sla

    def start(**_kw: Any) -> None:
        if live() is not None:
            live().begin()

    def stop(**_kw: Any) -> None:
        if live() is not None:
            live().end()

    def quitting(**_kw: Any) -> None:
        if live() is not None and live().started_at is not None:
            live().finish()

    environment.events.test_start.add_listener(start)
    environment.events.test_stop.add_listener(stop)
    environment.events.quitting.add_listener(quitting)


def follow_sla_form(environment: Any, st: Any) -> None:
    """A web-UI test: the SLA file the start form names now (read only when there is one)."""
    if environment.web_ui is None:
        return
    if getattr(environment.parsed_options, "sla", None) or st.live_sla is not None or st.live_sla_error:
        from loadgate.harness.live_sla import follow_form

        follow_form(environment)


@events.test_start.add_listener
def on_test_start(environment: Any, **_kw: Any) -> None:
    st = state(environment)
    try:  # a worker receives the master's custom arguments just before test_start; the web UI edits them
        new = opts.load(environment.parsed_options)
        if new.tokenizer != st.settings.tokenizer:
            st.tokens = load_counter(new.tokenizer)
            st.llm.token_counter = st.tokens.name
        if workload.source_of(new) != workload.source_of(st.settings):
            st.prompts = workload.prompts_for(new, (st.tokens or load_counter(None)).count)
        st.settings = new
        st.llm.goodput = new.goodput
    except (opts.SettingError, PromptFileError, TokenizerError) as e:
        logger.error("loadgate: %s (keeping the previous settings)", e)
    now = time.time()
    st.llm.clear(now)
    st.monitor.reset()
    if not isinstance(environment.runner, MasterRunner):
        st.monitor.start()  # the processes that run users
    if is_worker(environment):
        options = environment.parsed_options  # the master's probe and credentials come with the spawn
        handed = getattr(options, PROBE_OPTION, None) if options is not None else None
        if handed:
            st.probe = ProbeResult.from_json(handed)
            if st.probe.models and not st.settings.models and st.models is None:
                st.models = list(st.probe.models)
        st.basic_auth = (
            getattr(options, BASIC_AUTH_OPTION, None) if options is not None else None
        ) or st.basic_auth
        st.meta = outputs.metadata(environment, st, started_at=now)
        arrival.on_test_start(environment, arrival.open_loop(environment))
        return
    secure_host(environment)  # the web UI's form may have set another host
    options = environment.parsed_options
    lag_limit_s = opts.parse_value("--lag-limit", getattr(options, "lag_limit", None) or "5ms")
    st.monitor_watch = monitor.watch(st.monitor, lag_limit_s * 1000)
    apply_class_weights(environment, st.settings)  # web UI edits (a master has dispatched already)
    arrival.on_test_start(environment, wants_open_loop(environment, st.settings))
    st.meta = outputs.metadata(environment, st, started_at=now)
    follow_sla_form(environment, st)
    if isinstance(environment.runner, MasterRunner):
        capacity.start(environment, now)
    outputs.write_metadata(st)
    timeline = _timeline(environment)
    if st.settings.find_capacity:
        pass  # a capacity search warms up (and resets) each step itself
    elif st.settings.warmup_s > 0 and timeline is not None and timeline.breakpoint:
        logger.info(
            "loadgate: no warm-up reset with the breakpoint profile: each step is measured on its own"
        )
    elif st.settings.warmup_s > 0:
        st.warmup_greenlet = gevent.spawn_later(st.settings.warmup_s, end_warmup, environment)


def _timeline(environment: Any) -> Any:
    """The run's stages timeline (profile or --stages), or None (none, or a bad file refused at init)."""
    from loadgate.harness import profiles  # (imported here: lifecycle's init listener must come first)

    try:
        return profiles.timeline(environment)
    except Exception:
        return None


def wants_open_loop(environment: Any, settings: opts.Settings) -> bool:
    """Rate mode: --request-rate, a capacity search, or a stages file / profile that drives a rate."""
    if settings.request_rate is not None or settings.find_capacity:
        return True
    timeline = _timeline(environment)
    return timeline is not None and timeline.kind == "rate"


# -- the start-up probe: registered after the embedded target's listeners (harness/__init__.py) ---------


def needed_routes(environment: Any, s: opts.Settings) -> set[str]:
    """The routes the loadgate user classes that will run (weight > 0 by the settings) call."""
    weights = {"chat": s.chat_weight, "batch": s.batch_weight, "models": s.models_weight}
    routes: set[str] = set()
    for user_class in environment.user_classes:
        role = getattr(user_class, "loadgate_role", "")
        if role and weights.get(role, user_class.weight) > 0:
            routes |= role_routes(role, s.batch_mode)
    return routes


def _handed_off(host: str) -> ProbeResult | None:
    raw = os.environ.get(PROBE_HANDOFF_ENV)
    if not raw:
        return None
    try:
        found = ProbeResult.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return None
    return found if found.host == public_url(host) else None


def run_probe(environment: Any) -> None:
    """Probe the host for the routes loadgate's classes call; TargetError when no valid run can be made.
    Records the result (RunState.probe, PREFIX_loadgate.json), seeds the model list, drops what the
    target does not serve and says so in one line."""
    st = state(environment)
    s, host = st.settings, environment.host
    routes = needed_routes(environment, s)
    if not host or not routes:
        return
    found = _handed_off(host) or probe(
        host,
        models=s.models,
        routes=routes,
        max_tokens=opts.probe_max_tokens(s.max_tokens, s.output_tokens),
        basic_auth=st.basic_auth,
        extra_body=s.extra_body,
    )
    require(found, routes, bool(s.models))
    st.probe = found
    if found.models and not s.models and st.models is None:
        st.models = list(found.models)
    if environment.parsed_options is not None:
        setattr(environment.parsed_options, PROBE_OPTION, found.to_json())
    apply_class_weights(environment, s)
    if st.meta:
        st.meta["capabilities"] = found.capabilities()
    say_dropped(environment, found, routes)


def say_dropped(environment: Any, found: ProbeResult, routes: set[str]) -> None:
    """One line: which routes the target does not serve, and which classes and tasks are not run."""
    absent = [r for r in ROUTES if r in routes and not found.served(r)]
    if not absent:
        return
    classes = sorted(
        c.__name__ for c in environment.user_classes if getattr(c, "loadgate_role", "") and c.weight == 0
    )
    tasks = sorted(
        f"{c.__name__}.{name}"
        for c in environment.user_classes
        if getattr(c, "loadgate_role", "") and c.weight > 0
        for name, route in TASK_ROUTES.items()
        if route in absent and route in role_routes(c.loadgate_role, state(environment).settings.batch_mode)
    )
    skipped = "; ".join(
        part
        for part in (
            f"not running {', '.join(classes)}" if classes else "",
            f"skipping {', '.join(tasks)}" if tasks else "",
        )
        if part
    )
    logger.warning(
        "loadgate: %s does not serve %s%s",
        found.host,
        ", ".join(f"{r} ({found.routes[r].detail})" for r in absent),
        f": {skipped}" if skipped else "",
    )


def _probe_or_exit(environment: Any) -> None:
    try:
        run_probe(environment)
    except TargetError as e:
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            from loadgate.harness.embedded import release_workers

            release_workers(runner, environment.parsed_options)
        fail_setup(str(e))


def probe_at_init(environment: Any, **_kw: Any) -> None:
    if is_worker(environment) or environment.parsed_options is None:
        return
    if has_state(environment):
        _probe_or_exit(environment)


def probe_at_test_start(environment: Any, **_kw: Any) -> None:
    """The web UI may start a run on another host than the one probed at init: probe that one. Mid-session
    there is nothing to exit from: a failure is logged, and the run shows what the target answers."""
    if is_worker(environment) or environment.parsed_options is None:
        return
    st = state(environment)
    if not environment.host or (st.probe is not None and st.probe.host == public_url(environment.host)):
        return
    st.probe = None
    try:
        run_probe(environment)
    except TargetError as e:
        logger.error("loadgate: error: %s", e)
    if st.probe is not None:
        st.meta["capabilities"] = st.probe.capabilities()
        outputs.write_metadata(st)


def install_probe() -> None:
    """Called by harness/__init__.py after the embedded target's listeners: the probe must see it up."""
    events.init.add_listener(probe_at_init)
    events.test_start.add_listener(probe_at_test_start)
    events.init.add_listener(refresh_loop_clock)  # the last init listener


def refresh_loop_clock(**_kw: Any) -> None:
    """Start-up (imports, the locustfile, the tokenizer, the probe) may run without a turn of gevent's
    loop, whose cached clock is then ~0.3 s old; Locust's --run-time timer is set from it right after
    init and would end the run that much early. Refreshed, a 10 s run lasts 10 s from its start."""
    gevent.get_hub().loop.update_now()


def end_warmup(environment: Any) -> None:
    """The warm-up is over: every statistic restarts now, the measured window's start. On a master the
    workers drop what they have not reported yet (warm-up requests), so nothing of the warm-up leaks in."""
    st = state(environment)
    now = time.time()
    if isinstance(environment.runner, MasterRunner):
        distributed.reset_workers(environment)
    environment.runner.stats.reset_all()
    st.llm.reset(now)
    st.monitor.reset()
    if st.capacity is not None:
        st.capacity.reset(now)
    st.meta["stats_reset_at"] = now
    logger.info("loadgate: warm-up of %gs over: statistics reset", st.settings.warmup_s)
    outputs.write_metadata(st)


@events.test_stopping.add_listener
def on_test_stopping(environment: Any, **_kw: Any) -> None:
    if has_state(environment):
        arrival.on_test_stopping(environment)


@events.test_stop.add_listener
def on_test_stop(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    st = state(environment)
    st.monitor.stop()
    if st.monitor_watch is not None:
        st.monitor_watch.kill(block=False)
        st.monitor_watch = None
    if has_state(environment):
        arrival.on_test_stop(environment)
    if isinstance(runner, WorkerRunner):
        distributed.final_report(runner)
        return
    if st.warmup_greenlet is not None:
        st.warmup_greenlet.kill(block=False)
        st.warmup_greenlet = None
    unflushed = distributed.flush_workers(environment) if isinstance(runner, MasterRunner) else []
    now = time.time()
    st.llm.window_end = now
    st.meta["stopped_at"] = now
    if st.capacity is not None:
        st.capacity.finish(environment, now, unflushed)
    summary = st.llm.summary()
    if st.llm.arrivals.active:
        outputs.rate_metadata(st)
        arrival.warn_if_late(environment)
    if st.llm.counters.usage_counted:
        logger.warning(
            "loadgate: %d answers carried no usage: their output tokens were counted from the text (token "
            "source %s in _llm_summary.json)",
            st.llm.counters.usage_counted,
            llm_stats.token_source_text(summary),
        )
    if summary.get("input_length_warning"):
        logger.warning("loadgate: %s", summary["input_length_warning"])
    if st.llm.counters.cancelled:
        logger.info(
            "loadgate: %d requests were cut off by the stop (cancelled: not failures; counted in "
            "_llm_summary.json, not in Locust's tables; raise --stop-timeout to let them finish)",
            st.llm.counters.cancelled,
        )
    outputs.write_metadata(st)


def print_llm_summary(environment: Any) -> None:
    """After Locust's own final tables (local and master runs; a worker has nothing merged)."""
    if is_worker(environment) or not has_state(environment):
        return
    console = logging.getLogger("locust.stats_logger")
    st = state(environment)
    for line in llm_stats.summary_lines(st.llm):
        console.info(line)
    s = outputs.summary(st)
    if s["loadgen_lag_samples"]:
        console.info(
            f"load generator: event-loop lag p50 {s['loadgen_lag_p50']:g} / p99 {s['loadgen_lag_p99']:g} / max "
            f"{s['loadgen_lag_max']:g} ms, CPU {s['loadgen_cpu_s']:g} s, longest GC pause {s['loadgen_gc_pause_max']:g} ms"
        )
    if st.meta.get("server_metrics_url"):
        console.info(
            f"server metrics: {st.meta.get('server_metrics_scrapes')} scrapes of {st.meta['server_metrics_url']}, "
            f"{st.meta.get('server_metrics_failures')} failed"
        )
    console.info("")
