"""``import loadgate.plugin`` wires loadgate into Locust, through Locust's events only.

- settings: custom arguments (``init_command_line_parser``), validated at ``init`` (exit 2 on a bad one);
- precision: 3-significant-digit response-time buckets for every stats entry;
- LLM metrics: a second RequestStats, shipped worker -> master (``report_to_master``/``worker_report``);
- warm-up: ``--warmup 30s`` resets Locust's and the LLM stats once it has elapsed;
- CSV: ``PREFIX_llm_stats.csv`` (+ history), ``PREFIX_llm_summary.json``, ``PREFIX_loadgate.json``, and
  at shutdown Locust's own ``_stats.csv``/``_failures.csv`` are rewritten from the final totals;
- the user base classes the thin locustfiles subclass (ChatUserBase, BatchUserBase, ModelsUserBase).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import gevent
import locust
import locust.stats
from gevent.lock import Semaphore
from locust import TaskSet, events, tag, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from locust.runners import (
    STATE_CLEANUP,
    STATE_RUNNING,
    STATE_SPAWNING,
    STATE_STOPPED,
    STATE_STOPPING,
    MasterRunner,
    WorkerRunner,
)

import loadgate
import loadgate.embedded  # noqa: F401  (registers the embedded-target listeners)
import loadgate.live_sla  # noqa: F401  (registers --sla, the live SLA check)
import loadgate.webui  # noqa: F401  (registers the LLM web UI tabs)
from loadgate import client, llm_stats, precision, settings
from loadgate.llm_stats import LlmStats, LlmStatsCSV
from loadgate.prompts import DEFAULT_FOLLOWUPS, PromptFileError, PromptSet
from loadgate.settings import SettingError, Settings

logger = logging.getLogger("loadgate")

precision.install()


# -- per-run state -----------------------------------------------------------------------------------


@dataclass
class RunState:
    settings: Settings
    llm: LlmStats
    prompts: PromptSet
    csv_prefix: str | None = None
    llm_csv: LlmStatsCSV | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    models: list[str] | None = None
    models_lock: Semaphore = field(default_factory=Semaphore)
    warmup_greenlet: Any = None
    writer_greenlet: Any = None
    flushed: set[str] = field(default_factory=set)


def state(environment: Any) -> RunState:
    st = getattr(environment, "loadgate_state", None)
    if st is None:  # an Environment built by hand (tests, library use) without the init event
        st = _new_state(environment)
    return st


def _fail_setup(message: str) -> None:
    sys.stderr.write(f"loadgate: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(settings.EXIT_BAD_SETTING)


def _new_state(environment: Any) -> RunState:
    st_settings = settings.load(environment.parsed_options)
    prompts = PromptSet.load(st_settings.prompt_file or None)
    st = RunState(st_settings, LlmStats(st_settings.goodput), prompts)
    environment.loadgate_state = st
    llm_stats.attach(environment, st.llm)
    return st


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kw: Any) -> None:
    settings.add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    try:
        st = _new_state(environment)
    except (SettingError, PromptFileError) as e:
        _fail_setup(str(e))
        return
    _apply_class_weights(environment, st.settings)
    _register_flush_messages(environment)
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None) if options else None
    if prefix and not isinstance(environment.runner, WorkerRunner):
        st.csv_prefix = prefix
        st.llm_csv = LlmStatsCSV(
            environment, st.llm, prefix, bool(getattr(options, "stats_history_enabled", False))
        )
        st.llm_csv.start_history()
        st.writer_greenlet = gevent.spawn(_write_periodically, environment)
    logger.info(
        "loadgate %s: prompts from %s (%d), goodput targets %s",
        loadgate.__version__,
        st.prompts.source,
        len(st.prompts),
        st.settings.goodput.as_dict(),
    )


def _apply_class_weights(environment: Any, s: Settings) -> None:
    """--chat-weight/--batch-weight/--models-weight set the classes' Locust weights."""
    weights = {"chat": s.chat_weight, "batch": s.batch_weight, "models": s.models_weight}
    for user_class in environment.user_classes:
        role = getattr(user_class, "loadgate_role", None)
        if role in weights:
            user_class.weight = weights[role]


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    st = state(environment)
    try:  # a worker receives the master's custom arguments just before test_start; the web UI edits them
        new = settings.load(environment.parsed_options)
        if new.prompt_file != st.settings.prompt_file:
            st.prompts = PromptSet.load(new.prompt_file or None)
        st.settings = new
        st.llm.goodput = new.goodput
    except (SettingError, PromptFileError) as e:
        logger.error("loadgate: %s (keeping the previous settings)", e)
    st.llm.clear()
    st.meta = _metadata(environment, st)
    if isinstance(environment.runner, WorkerRunner):
        return
    _apply_class_weights(environment, st.settings)  # web UI edits (a master has dispatched already)
    _write_metadata(st)
    if st.settings.warmup_s > 0:
        st.warmup_greenlet = gevent.spawn_later(st.settings.warmup_s, _end_warmup, environment)


def _end_warmup(environment: Any) -> None:
    st = state(environment)
    environment.runner.stats.reset_all()
    st.llm.reset()
    st.meta["stats_reset_at"] = time.time()
    logger.info("loadgate: warm-up of %gs over: statistics reset", st.settings.warmup_s)
    _write_metadata(st)


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner._send_stats()  # the final report goes out before "client_stopped" (Locust sends it after)
        return
    if isinstance(runner, MasterRunner):
        _flush_workers(environment)
    st = state(environment)
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


# -- exact final counts with workers -----------------------------------------------------------------
#
# A headless master quits by sending "quit" and waiting a fixed 0.5 s for the workers' last reports;
# a worker whose users take longer to stop (--stop-timeout) reports too late and its last requests
# are lost. So before the master quits, it asks every running worker to stop its users and report
# (custom message "loadgate_flush"), and waits for each "loadgate_flushed" answer.

FLUSH, FLUSHED = "loadgate_flush", "loadgate_flushed"


def _register_flush_messages(environment: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):

        def on_flush(environment: Any, msg: Any, **_kw: Any) -> None:
            runner.stop()  # fires test_stop, which sends the final report (below)
            runner.send_message(FLUSHED)

        runner.register_message(FLUSH, on_flush)
    elif isinstance(runner, MasterRunner):

        def on_flushed(environment: Any, msg: Any, **_kw: Any) -> None:
            state(environment).flushed.add(msg.node_id)

        runner.register_message(FLUSHED, on_flushed)


def _flush_workers(environment: Any) -> None:
    runner = environment.runner
    running = [c.id for c in runner.clients.all if c.state in (STATE_RUNNING, STATE_SPAWNING)]
    if not running:
        return  # a web UI stop already waited for the workers
    st = state(environment)
    st.flushed = set()
    for client_id in running:
        runner.send_message(FLUSH, client_id=client_id)
    deadline = time.monotonic() + (environment.stop_timeout or 0) + 10
    while not st.flushed.issuperset(running) and time.monotonic() < deadline:
        gevent.sleep(0.05)
    if not st.flushed.issuperset(running):
        logger.warning(
            "loadgate: %d worker(s) did not send their final report in time; their last requests "
            "may be missing",
            len(set(running) - st.flushed),
        )


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    env = getattr(locust, "_loadgate_env", None)
    if env is not None:
        data[llm_stats.REPORT_KEY] = state(env).llm.report()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    env = getattr(locust, "_loadgate_env", None)
    if env is not None and llm_stats.REPORT_KEY in data:
        state(env).llm.merge(data[llm_stats.REPORT_KEY])


@events.init.add_listener
def _remember_environment(environment: Any, **_kw: Any) -> None:
    # report_to_master/worker_report carry no environment; one Locust process runs one Environment
    locust._loadgate_env = environment  # type: ignore[attr-defined]


@events.quit.add_listener
def _print_llm_summary(**_kw: Any) -> None:
    """After Locust's own final tables (local and master runs; a worker has nothing merged)."""
    env = getattr(locust, "_loadgate_env", None)
    if env is None or isinstance(env.runner, WorkerRunner) or getattr(env, "loadgate_state", None) is None:
        return
    console = logging.getLogger("locust.stats_logger")
    for line in llm_stats.summary_lines(state(env).llm):
        console.info(line)
    console.info("")


# -- files ---------------------------------------------------------------------------------------------


def _public_host(host: str | None) -> str | None:
    """The target URL without userinfo, query or fragment (credentials never reach a file)."""
    if not host:
        return host
    parts = urlsplit(host)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _metadata(environment: Any, st: RunState) -> dict[str, Any]:
    options = environment.parsed_options
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        mode = "processes" if getattr(options, "processes", None) else "master"
        workers = runner.worker_count
    else:
        mode, workers = "local", 0
    return {
        "loadgate_version": loadgate.__version__,
        "locust_version": locust.__version__,
        "host": _public_host(environment.host),
        "warmup_s": st.settings.warmup_s,
        "stats_reset_at": None,
        "started_at": time.time(),
        "stopped_at": None,
        "run_mode": mode,
        "workers": workers,
        "user_classes": sorted(c.__name__ for c in environment.user_classes),
        "profile": getattr(options, "profile", None) if options else None,
        "usage_source": None,
        "final_stats_written": False,
    }


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _write_metadata(st: RunState) -> None:
    if st.csv_prefix:
        _write_json(f"{st.csv_prefix}_loadgate.json", st.meta)


def _write_llm_files(st: RunState) -> None:
    if st.llm_csv is None or st.csv_prefix is None:
        return
    st.llm_csv.write_totals()
    _write_json(f"{st.csv_prefix}_llm_summary.json", st.llm.summary())


def _write_periodically(environment: Any) -> None:
    st = state(environment)
    while True:
        gevent.sleep(locust.stats.CSV_STATS_INTERVAL_SEC)
        _write_llm_files(st)
        if environment.runner is not None and environment.runner.state not in ("ready", "stopped"):
            st.llm_csv.append_history()


def write_final(environment: Any) -> None:
    """After the run: the LLM CSV/summary and the metadata, from the final totals."""
    st = state(environment)
    if st.writer_greenlet is not None:
        st.writer_greenlet.kill(block=False)
    if st.llm_csv is None:
        return
    st.llm_csv.append_history()
    _write_llm_files(st)
    st.meta.setdefault("started_at", None)
    st.meta["stopped_at"] = st.meta.get("stopped_at") or time.time()
    st.meta["usage_source"] = st.llm.summary()["usage_source"]
    st.meta["final_stats_written"] = True
    _write_metadata(st)


class FinalTotalsCSVFileWriter(locust.stats.StatsCSVFileWriter):
    """Locust's CSV writer, plus one last rewrite from the final totals when it closes its files.

    Locust rewrites _stats.csv once a second and flushes it every few seconds, so the file a local
    headless run leaves behind can miss the last requests. close_files() runs after the runner has
    quit (and, on a master, after the workers' last reports), so the rows written here are final.
    """

    def _percentile_fields(self, stats_entry: Any, use_current: bool = False) -> list:
        return precision.percentile_fields(stats_entry, self.percentiles_to_report, use_current)

    def close_files(self) -> None:
        try:
            for handle, write in (
                (self.requests_csv_filehandle, lambda: self.requests_csv(self.requests_csv_writer)),
                (self.failures_csv_filehandle, lambda: self.failures_csv(self.failures_csv_writer)),
                (self.exceptions_csv_filehandle, lambda: self.exceptions_csv(self.exceptions_csv_writer)),
            ):
                handle.seek(0)
                handle.truncate()
                write()
            self._stats_history_data_rows(self.stats_history_csv_writer, time.time())
            write_final(self.environment)
        finally:
            super().close_files()


locust.stats.StatsCSVFileWriter = FinalTotalsCSVFileWriter  # main() looks it up when --csv is given


# -- user base classes -------------------------------------------------------------------------------


class LoadgateUser(FastHttpUser):
    """FastHttpUser with loadgate's timeouts, think time and state. Subclass, don't run directly."""

    abstract = True
    loadgate_role = ""

    def __init__(self, environment: Any) -> None:
        st = state(environment)
        self.network_timeout = self.connection_timeout = st.settings.request_timeout_s
        super().__init__(environment)
        self.rng = random.Random()

    @property
    def lg(self) -> RunState:
        return state(self.environment)

    def wait_time(self) -> float:
        low, high = self.lg.settings.think_time_s
        return self.rng.uniform(low, high)

    def model(self) -> str:
        """A model from --models, else one discovered from GET /v1/models (once per process)."""
        st = self.lg
        if st.settings.models:
            return self.rng.choice(st.settings.models)
        with st.models_lock:
            if st.models is None:
                found = client.list_models(self.client, st.settings.request_timeout_s)
                if not found:
                    logger.error(
                        "loadgate: no model to use: GET /v1/models gave none; set --models "
                        "(LOADGATE_MODELS). %s stops.",
                        type(self).__name__,
                    )
                    raise StopUser()
                st.models = found
        return self.rng.choice(st.models)

    def chat_body(
        self, messages: list[dict[str, str]], stream: bool, max_tokens: int | None = None
    ) -> dict[str, Any]:
        low, high = self.lg.settings.max_tokens
        return {
            "model": self.model(),
            "messages": messages,
            "max_tokens": max_tokens or self.rng.randint(low, high),
            "stream": stream,
        }


def _weighted(taskset: TaskSet, weights: dict[str, float]) -> Any:
    """Pick among the tasks left after tag filtering, by weights read from the live settings."""
    tasks = taskset.tasks
    w = [max(0.0, weights.get(t.__name__, 0.0)) for t in tasks]
    if sum(w) <= 0:
        w = [1.0] * len(tasks)  # the tags left only tasks the settings weight 0: run them anyway
    return taskset.user.rng.choices(tasks, w)[0]


class LoadgateTasks(TaskSet):
    """Starts no new task once the run is stopping. Locust's graceful stop kills a user that is waiting,
    but one whose wait ends at that moment wakes before the kill lands and starts its next task, which
    is then cut off mid-request: a spurious "cancelled" failure. A conversation sends no further turn
    either; a submitted job is still polled to its end (until --stop-timeout)."""

    def wait(self) -> None:
        super().wait()
        if run_is_stopping(self.user.environment):
            raise StopUser()


def run_is_stopping(environment: Any) -> bool:
    runner = environment.runner
    return runner is not None and runner.state in (STATE_STOPPING, STATE_CLEANUP, STATE_STOPPED)


class ChatTasks(LoadgateTasks):
    """Single-turn streamed / non-streamed chats and multi-turn conversations."""

    def get_next_task(self) -> Any:
        s = self.user.lg.settings
        single = 1.0 - s.multi_turn_ratio
        return _weighted(
            self,
            {
                "stream_chat": single * s.stream_ratio,
                "non_stream_chat": single * (1.0 - s.stream_ratio),
                "multi_turn_chat": s.multi_turn_ratio,
            },
        )

    @tag("stream", "chat")
    @task
    def stream_chat(self) -> None:
        self.user.converse(turns=1, stream=True)

    @tag("non-stream", "chat")
    @task
    def non_stream_chat(self) -> None:
        self.user.converse(turns=1, stream=False)

    @tag("multi-turn", "chat")
    @task
    def multi_turn_chat(self) -> None:
        low, high = self.user.lg.settings.turns
        self.user.converse(turns=self.user.rng.randint(low, high), stream=None)


class ChatUserBase(LoadgateUser):
    """POST /v1/chat/completions: the bulk of an LLM gateway's traffic."""

    abstract = True
    loadgate_role = "chat"
    tasks = [ChatTasks]

    def converse(self, turns: int, stream: bool | None) -> None:
        """Send a prompt, then (multi-turn) append each reply and send the next user turn.
        stream=None picks streaming per turn by --stream-ratio."""
        st = self.lg
        prompt = st.prompts.sample(self.rng)
        messages = [dict(m) for m in prompt.messages]
        followups = list(prompt.followups or DEFAULT_FOLLOWUPS)
        for turn in range(turns):
            streamed = stream if stream is not None else self.rng.random() < st.settings.stream_ratio
            body = self.chat_body(messages, streamed, prompt.max_tokens)
            result = client.chat_completion(self.client, st.llm, body, st.settings.request_timeout_s)
            if not result.ok or turn == turns - 1 or run_is_stopping(self.environment):
                return  # after the stop, no next turn: --stop-timeout need only cover one request
            messages.append({"role": "assistant", "content": result.text})
            messages.append({"role": "user", "content": followups[turn % len(followups)]})


class BatchTasks(LoadgateTasks):
    """The proxy's async endpoint and/or the OpenAI Batch API, as --batch-mode says."""

    def get_next_task(self) -> Any:
        mode = self.user.lg.settings.batch_mode
        return _weighted(
            self,
            {
                "async_job": 1.0 if mode in ("async", "both") else 0.0,
                "batch_job": 1.0 if mode in ("batch", "both") else 0.0,
            },
        )

    @tag("async")
    @task
    def async_job(self) -> None:
        st = self.user.lg
        client.async_chat(self.client, st.llm, st.settings, self.user.prompt_body())

    @tag("batch")
    @task
    def batch_job(self) -> None:
        st = self.user.lg
        bodies = [self.user.prompt_body() for _ in range(st.settings.batch_size)]
        client.batch_job(self.client, st.llm, st.settings, bodies)


class BatchUserBase(LoadgateUser):
    """Async jobs (submit + poll) and Batch API jobs (upload, create, poll, download, check)."""

    abstract = True
    loadgate_role = "batch"
    tasks = [BatchTasks]

    def prompt_body(self) -> dict[str, Any]:
        prompt = self.lg.prompts.sample(self.rng)
        return self.chat_body([dict(m) for m in prompt.messages], False, prompt.max_tokens)


class ModelsTasks(LoadgateTasks):
    """GET /v1/models (3), GET /v1/models/{id} (2), GET /health (1)."""

    @tag("models")
    @task(3)
    def list_models(self) -> None:
        st = self.user.lg
        found = client.list_models(self.client, st.settings.request_timeout_s)
        if found and st.models is None and not st.settings.models:
            st.models = found

    @tag("models")
    @task(2)
    def get_model(self) -> None:
        st = self.user.lg
        known = st.settings.models or st.models
        if not known:
            return self.list_models()
        model_id = self.user.rng.choice(known)
        client.json_request(
            self.client,
            "GET",
            f"{client.MODELS_PATH}/{model_id}",
            client.MODEL_NAME,
            st.settings.request_timeout_s,
            validate=client.expect_model,
        )

    @tag("models", "health")
    @task(1)
    def health(self) -> None:
        client.json_request(
            self.client,
            "GET",
            client.HEALTH_PATH,
            client.HEALTH_PATH,
            self.user.lg.settings.request_timeout_s,
        )


class ModelsUserBase(LoadgateUser):
    """Rare metadata traffic: GET /v1/models, GET /v1/models/{id}, GET /health."""

    abstract = True
    loadgate_role = "models"
    tasks = [ModelsTasks]
