"""loadgate's lifecycle listeners: settings at init, a fresh measurement at test start, the warm-up
reset, the stop (worker flush, measurement window) and the LLM table after Locust's own at quit."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

import loadgate
from loadgate import options as opts
from loadgate.contract import EXIT_BAD_INPUT
from loadgate.harness import distributed, llm_stats, monitor, outputs, progress
from loadgate.harness.state import has_state, new_state, state
from loadgate.prompts import PromptFileError, PromptSet

logger = logging.getLogger("loadgate")


def fail_setup(message: str) -> None:
    """A bad setting before any load: one line, exit 2."""
    sys.stderr.write(f"loadgate: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_BAD_INPUT)


def apply_class_weights(environment: Any, s: opts.Settings) -> None:
    """--chat-weight/--batch-weight/--models-weight set the classes' Locust weights."""
    weights = {"chat": s.chat_weight, "batch": s.batch_weight, "models": s.models_weight}
    for user_class in environment.user_classes:
        role = getattr(user_class, "loadgate_role", None)
        if role in weights:
            user_class.weight = weights[role]


@events.init.add_listener
def on_init(environment: Any, **_kw: Any) -> None:
    try:
        st = new_state(environment)
    except (opts.SettingError, PromptFileError) as e:
        fail_setup(str(e))
        return
    apply_class_weights(environment, st.settings)
    distributed.install(environment)
    environment.events.quit.add_listener(lambda **_kw: print_llm_summary(environment))  # quit has no env
    outputs.start_writing(environment, st)
    options = environment.parsed_options
    if not isinstance(environment.runner, WorkerRunner):
        if options is not None and getattr(options, "sla", None):
            from loadgate.harness.live_sla import start  # pandas and the gate: only for runs with --sla

            start(environment, options)
        install_live_sla(environment)
        try:
            st.progress = progress.install(environment)
        except opts.SettingError as e:
            fail_setup(str(e))
    logger.info(
        "loadgate %s: prompts from %s (%d), goodput targets %s",
        loadgate.__version__,
        st.prompts.source,
        len(st.prompts),
        st.settings.goodput.as_dict(),
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
        if new.prompt_file != st.settings.prompt_file:
            st.prompts = PromptSet.load(new.prompt_file or None)
        st.settings = new
        st.llm.goodput = new.goodput
    except (opts.SettingError, PromptFileError) as e:
        logger.error("loadgate: %s (keeping the previous settings)", e)
    st.llm.clear()
    st.monitor.reset()
    if not isinstance(environment.runner, MasterRunner):
        st.monitor.start()  # the processes that run users
    st.meta = outputs.metadata(environment, st)
    if isinstance(environment.runner, WorkerRunner):
        return
    options = environment.parsed_options
    lag_limit_s = opts.parse_value("--lag-limit", getattr(options, "lag_limit", None) or "5ms")
    st.monitor_watch = monitor.watch(st.monitor, lag_limit_s * 1000)
    apply_class_weights(environment, st.settings)  # web UI edits (a master has dispatched already)
    follow_sla_form(environment, st)
    outputs.write_metadata(st)
    if st.settings.warmup_s > 0 and getattr(environment, "profile", None) == "breakpoint":
        logger.info(
            "loadgate: no warm-up reset with the breakpoint profile: each step is measured on its own"
        )
    elif st.settings.warmup_s > 0:
        st.warmup_greenlet = gevent.spawn_later(st.settings.warmup_s, end_warmup, environment)


def end_warmup(environment: Any) -> None:
    st = state(environment)
    environment.runner.stats.reset_all()
    st.llm.reset()
    st.monitor.reset()
    st.meta["stats_reset_at"] = time.time()
    logger.info("loadgate: warm-up of %gs over: statistics reset", st.settings.warmup_s)
    outputs.write_metadata(st)


@events.test_stop.add_listener
def on_test_stop(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    st = state(environment)
    st.monitor.stop()
    if st.monitor_watch is not None:
        st.monitor_watch.kill(block=False)
        st.monitor_watch = None
    if isinstance(runner, WorkerRunner):
        distributed.final_report(runner)
        return
    if isinstance(runner, MasterRunner):
        distributed.flush_workers(environment)
    st.llm.window_end = time.time()
    if st.warmup_greenlet is not None:
        st.warmup_greenlet.kill(block=False)
        st.warmup_greenlet = None
    st.meta["stopped_at"] = st.llm.window_end
    if st.llm.counters.usage_counted:
        logger.warning(
            "loadgate: %d responses carried no usage: their output tokens were counted from content events "
            "(usage source 'counted' in _llm_summary.json)",
            st.llm.counters.usage_counted,
        )


def print_llm_summary(environment: Any) -> None:
    """After Locust's own final tables (local and master runs; a worker has nothing merged)."""
    if isinstance(environment.runner, WorkerRunner) or not has_state(environment):
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
    console.info("")
