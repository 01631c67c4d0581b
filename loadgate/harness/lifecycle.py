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
from loadgate.client.tokens import TokenizerError, load_counter
from loadgate.contract import EXIT_BAD_INPUT
from loadgate.harness import capacity, distributed, llm_stats, outputs
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
    except (opts.SettingError, PromptFileError, TokenizerError) as e:
        fail_setup(str(e))
        return
    apply_class_weights(environment, st.settings)
    distributed.install(environment)
    capacity.enable_rebalancing(environment)
    environment.events.quit.add_listener(lambda **_kw: print_llm_summary(environment))  # quit has no env
    outputs.start_writing(environment, st)
    options = environment.parsed_options
    if (
        options is not None
        and getattr(options, "sla", None)
        and not isinstance(environment.runner, WorkerRunner)
    ):
        from loadgate.harness.live_sla import start  # pandas and the gate: only for runs that use --sla

        start(environment, options)
    logger.info(
        "loadgate %s: prompts from %s (%d), goodput targets %s; tokens without usage: %s",
        loadgate.__version__,
        st.prompts.source,
        len(st.prompts),
        st.settings.goodput.as_dict(),
        st.tokens.name if st.tokens else "estimate",
    )
    # Start-up (imports, the locustfile, the tokenizer) ran without a turn of gevent's loop, whose cached
    # clock is now ~0.3 s old; Locust's --run-time timer is set from it next, and would end the run that
    # much early. Refresh it, so a 10 s run lasts 10 s from its start.
    gevent.get_hub().loop.update_now()


@events.test_start.add_listener
def on_test_start(environment: Any, **_kw: Any) -> None:
    st = state(environment)
    try:  # a worker receives the master's custom arguments just before test_start; the web UI edits them
        new = opts.load(environment.parsed_options)
        if new.prompt_file != st.settings.prompt_file:
            st.prompts = PromptSet.load(new.prompt_file or None)
        if new.tokenizer != st.settings.tokenizer:
            st.tokens = load_counter(new.tokenizer)
            st.llm.token_counter = st.tokens.name
        st.settings = new
        st.llm.goodput = new.goodput
    except (opts.SettingError, PromptFileError, TokenizerError) as e:
        logger.error("loadgate: %s (keeping the previous settings)", e)
    now = time.time()
    st.llm.clear(now)
    st.meta = outputs.metadata(environment, st, started_at=now)
    if isinstance(environment.runner, WorkerRunner):
        return
    apply_class_weights(environment, st.settings)  # web UI edits (a master has dispatched already)
    if isinstance(environment.runner, MasterRunner):
        capacity.start(environment, now)
    outputs.write_metadata(st)
    if st.settings.warmup_s > 0:
        st.warmup_greenlet = gevent.spawn_later(st.settings.warmup_s, end_warmup, environment)


def end_warmup(environment: Any) -> None:
    """The warm-up is over: every statistic restarts now, the measured window's start. On a master the
    workers drop what they have not reported yet (warm-up requests), so nothing of the warm-up leaks in."""
    st = state(environment)
    now = time.time()
    if isinstance(environment.runner, MasterRunner):
        distributed.reset_workers(environment)
    environment.runner.stats.reset_all()
    st.llm.reset(now)
    if st.capacity is not None:
        st.capacity.reset(now)
    st.meta["stats_reset_at"] = now
    logger.info("loadgate: warm-up of %gs over: statistics reset", st.settings.warmup_s)
    outputs.write_metadata(st)


@events.test_stop.add_listener
def on_test_stop(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        distributed.final_report(runner)
        return
    st = state(environment)
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
    if st.llm.counters.usage_counted:
        logger.warning(
            "loadgate: %d answers carried no usage: their output tokens were counted from the text (token "
            "source %s in _llm_summary.json)",
            st.llm.counters.usage_counted,
            llm_stats.token_source_text(summary),
        )
    if st.llm.counters.cancelled:
        logger.info(
            "loadgate: %d requests were cut off by the stop (cancelled: not failures; counted in "
            "_llm_summary.json, not in Locust's tables; raise --stop-timeout to let them finish)",
            st.llm.counters.cancelled,
        )
    outputs.write_metadata(st)


def print_llm_summary(environment: Any) -> None:
    """After Locust's own final tables (local and master runs; a worker has nothing merged)."""
    if isinstance(environment.runner, WorkerRunner) or not has_state(environment):
        return
    console = logging.getLogger("locust.stats_logger")
    for line in llm_stats.summary_lines(state(environment).llm):
        console.info(line)
    console.info("")
