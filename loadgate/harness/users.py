"""The user base classes the locustfiles subclass: ChatUserBase, BatchUserBase, ModelsUserBase.

Each user owns an :class:`~loadgate.harness.api.ApiClient` (its requests) and records what it returns in
the run's LLM stats. Tasks are picked by weights read from the live settings, and no task starts once the
run is stopping.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections import defaultdict
from typing import Any, cast

from locust import TaskSet, tag, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

from loadgate import options as opts
from loadgate.client import protocol as p
from loadgate.harness import arrival, locust_compat
from loadgate.harness.api import ApiClient, ChatResult
from loadgate.harness.state import RunState, state
from loadgate.prompts import DEFAULT_FOLLOWUPS, Prompt
from loadgate.target import TASK_ROUTES
from loadgate.workload import SyntheticPrompts, seeded_rng

logger = logging.getLogger("loadgate")
_user_numbers: defaultdict[str, itertools.count] = defaultdict(itertools.count)  # per class, this process


class LoadgateUser(FastHttpUser):
    """FastHttpUser with loadgate's timeouts, think time and state. Subclass, don't run directly."""

    abstract = True
    loadgate_role = ""
    loadgate_executor = True  # in rate mode, runs the arrivals of its class (loadgate.harness.arrival)

    def __init__(self, environment: Any) -> None:
        st = state(environment)
        self.network_timeout = self.connection_timeout = st.settings.request_timeout_s
        super().__init__(environment)
        # --seed: each user's choices come from the seed and where it runs (worker, class, its number)
        self.rng = seeded_rng(
            st.settings.seed,
            getattr(environment.runner, "worker_index", 0),
            type(self).__name__,
            next(_user_numbers[type(self).__name__]),
        )
        if st.basic_auth:  # credentials from --host, kept out of environment.host (and so of every report)
            locust_compat.set_basic_auth(self.client, st.basic_auth)
        self.api = ApiClient(
            self.client,
            lambda: self.lg.settings,
            lambda name: self.lg.llm.record_lost_at_stop(name),
            on_cancelled=lambda method, name: self.lg.llm.record_cancelled(method, name),
            count_tokens=st.tokens,
            log_cancelled=self._log_cancelled,
            arrival=self._take_arrival,
            stopping=lambda: run_is_stopping(environment),
        )

    pending_arrival: tuple[float, float] | None = None  # rate mode: set by arrival.take, for the request log

    def _take_arrival(self) -> tuple[float, float] | None:
        """The arrival (intended start, schedule lag) the next request starts; only the first request of
        an arrival carries it."""
        taken, self.pending_arrival = self.pending_arrival, None
        return taken

    def _log_cancelled(self, note: Any) -> None:
        log = self.lg.request_log
        if log is not None:
            log.cancelled(note)

    @functools.cached_property
    def lg(self) -> RunState:
        """The run's state (one per environment, made at init): looked up once per user, not per use."""
        return state(self.environment)

    def wait_time(self) -> float:
        """Closed loop: the think time. Rate mode: no thinking; the wait is for the next arrival."""
        if arrival.open_loop(self.environment):
            arrival.next_arrival(self)
            return 0.0
        low, high = self.lg.settings.think_time_s
        return self.rng.uniform(low, high) if high > low else low

    def on_stop(self) -> None:
        arrival.release(self)

    def model(self) -> str:
        """A model from --models (by its weight: a:3,b:1), else one discovered from GET /v1/models (once
        per process)."""
        st = self.lg
        models = st.settings.models
        if models:
            if len(models) == 1:
                return models[0]
            return self.rng.choices(models, models.weights)[0] if models.weighted else self.rng.choice(models)
        with st.models_lock:
            if st.models is None:
                data, reason = self.api.json(
                    "GET", p.MODELS_PATH, p.MODELS_PATH, validate=p.expect_object_list
                )
                found = p.model_ids(data) if data else []
                if not found:
                    logger.error(
                        "loadgate: no model to use: GET /v1/models %s; set --models (LOADGATE_MODELS). %s stops.",
                        f"failed ({reason})" if reason else "listed none",
                        type(self).__name__,
                    )
                    raise StopUser()
                st.models = found
        return self.rng.choice(st.models)

    def chat_body(
        self, messages: list[dict[str, str]], stream: bool, max_tokens: int | None = None
    ) -> dict[str, Any]:
        """--output-tokens, else the prompt's own max_tokens, else --max-tokens; --extra-body's fields
        under loadgate's own (the option refuses those it would override)."""
        s = self.lg.settings
        if s.output_tokens is not None:
            max_tokens = s.output_tokens.draw(self.rng)
        elif not max_tokens:
            low, high = s.max_tokens
            max_tokens = self.rng.randint(low, high) if high > low else low
        body = {
            **(s.extra_body or {}),
            "model": self.model(),
            "messages": messages,
            "max_tokens": max_tokens,
            "stream": stream,
        }
        if s.ignore_eos:
            body["ignore_eos"] = True
        if s.min_tokens is not None:
            body["min_tokens"] = min(s.min_tokens, max_tokens)  # vLLM refuses min_tokens > max_tokens
        return body


def _weighted(taskset: LoadgateTasks, weights: dict[str, float]) -> tuple[list[Any], list[float]]:
    """The tasks to pick among (those left after tag filtering, never one whose route the target does not
    serve: start-up probe) with their cumulative weights (only weights > 0; all alike when none is)."""
    found = taskset.lg_user.lg.probe
    tasks = [
        t
        for t in taskset.tasks
        if found is None or found.served(TASK_ROUTES.get(getattr(t, "__name__", ""), ""))
    ]
    if not tasks:
        raise StopUser()  # nothing this class calls is served (its class weight is 0 on the master)
    w = [max(0.0, weights.get(getattr(t, "__name__", ""), 0.0)) for t in tasks]
    if sum(w) > 0:
        tasks, w = [t for t, x in zip(tasks, w, strict=True) if x > 0], [x for x in w if x > 0]
    else:
        w = [1.0] * len(tasks)  # the tags left only tasks the settings weight 0: run them anyway
    return tasks, list(itertools.accumulate(w))


class LoadgateTasks(TaskSet):
    """Starts no new task once the run is stopping. Locust's graceful stop kills a user that is waiting,
    but one whose wait ends at that moment wakes before the kill lands and starts its next task, which
    is then cut off mid-request: a spurious cancelled request. A conversation sends no further turn
    either; a submitted job is still polled to its end (until --stop-timeout)."""

    _choice: tuple[Any, Any, list[Any], list[float]] | None = None  # settings, probe, tasks, cum. weights

    @property
    def lg_user(self) -> Any:
        """The user, typed by each task set (ChatUserBase, BatchUserBase, ModelsUserBase)."""
        return self.user

    def task_weights(self, settings: opts.Settings) -> dict[str, float]:
        """Each task's weight under the live settings, by task name (none given: all alike)."""
        return {}

    def get_next_task(self) -> Any:
        """A task by its weight under the live settings. The choice is worked out again only when the
        settings (replaced whole when the web UI edits them) or the probe's findings change."""
        st = self.lg_user.lg
        choice = self._choice
        if choice is None or choice[0] is not st.settings or choice[1] is not st.probe:
            choice = self._choice = (st.settings, st.probe, *_weighted(self, self.task_weights(st.settings)))
        tasks, cumulative = choice[2], choice[3]
        return tasks[0] if len(tasks) == 1 else self.pick(tasks, cumulative)

    def pick(self, tasks: list[Any], cumulative: list[float]) -> Any:
        """One of two or more tasks, by weight (at random: each request of a user is one draw)."""
        return self.lg_user.rng.choices(tasks, cum_weights=cumulative)[0]

    def wait(self) -> None:
        super().wait()
        if run_is_stopping(self.user.environment):
            raise StopUser()

    def on_start(self) -> None:
        if arrival.open_loop(self.user.environment):
            arrival.take(self.user)  # rate mode: the first task waits for an arrival too

    def on_stop(self) -> None:
        arrival.release(self.user)


def run_is_stopping(environment: Any) -> bool:
    runner = environment.runner
    return runner is not None and runner.state in (STATE_STOPPING, STATE_CLEANUP, STATE_STOPPED)


class ChatTasks(LoadgateTasks):
    """Single-turn streamed / non-streamed chats and multi-turn conversations."""

    @property
    def lg_user(self) -> ChatUserBase:
        return cast("ChatUserBase", self.user)

    def task_weights(self, settings: opts.Settings) -> dict[str, float]:
        single = 1.0 - settings.multi_turn_ratio
        return {
            "stream_chat": single * settings.stream_ratio,
            "non_stream_chat": single * (1.0 - settings.stream_ratio),
            "multi_turn_chat": settings.multi_turn_ratio,
        }

    @tag("stream", "chat")
    @task
    def stream_chat(self) -> None:
        self.lg_user.converse(turns=1, stream=True)

    @tag("non-stream", "chat")
    @task
    def non_stream_chat(self) -> None:
        self.lg_user.converse(turns=1, stream=False)

    @tag("multi-turn", "chat")
    @task
    def multi_turn_chat(self) -> None:
        low, high = self.lg_user.lg.settings.turns
        self.lg_user.converse(turns=self.lg_user.rng.randint(low, high), stream=None)


class ChatUserBase(LoadgateUser):
    """POST /v1/chat/completions: the bulk of an LLM gateway's traffic."""

    abstract = True
    loadgate_role = "chat"
    tasks = [ChatTasks]

    def chat(self, body: dict[str, Any], prompt: Prompt | None = None) -> ChatResult:
        """One chat request; a successful answer's LLM figures go to the run's LLM stats. ``prompt``: the
        synthetic prompt this request sends as it is (a conversation's first turn), whose length is checked."""
        result = self.api.chat(body)
        if result.ok and result.timing is not None:
            st, timing = self.lg, result.timing
            requested = prompt.input_tokens if prompt is not None else None
            st.llm.record(result.name, timing, body.get("model"), (requested, body.get("max_tokens")))
            if prompt is not None and isinstance(st.prompts, SyntheticPrompts):
                st.prompts.observe(prompt, timing.prompt_tokens)
        return result

    def converse(self, turns: int, stream: bool | None) -> None:
        """Send a prompt, then (multi-turn) append each reply and send the next user turn.
        stream=None picks streaming per turn by --stream-ratio."""
        st = self.lg
        prompt = st.prompts.sample(self.rng)
        messages = list(prompt.messages)  # a conversation appends to its own list (the turns: not changed)
        followups = prompt.followups or DEFAULT_FOLLOWUPS
        for turn in range(turns):
            streamed = stream if stream is not None else self.rng.random() < st.settings.stream_ratio
            body = self.chat_body(messages, streamed, prompt.max_tokens)
            result = self.chat(body, prompt if turn == 0 else None)
            if not result.ok or turn == turns - 1 or run_is_stopping(self.environment):
                return  # after the stop, no next turn: --stop-timeout need only cover one request
            if arrival.open_loop(self.environment):
                arrival.next_arrival(self)  # rate mode: each turn is a request of its own, on schedule
            messages.append({"role": "assistant", "content": result.text})
            messages.append({"role": "user", "content": followups[turn % len(followups)]})


class BatchTasks(LoadgateTasks):
    """The proxy's async endpoint and/or the OpenAI Batch API, as --batch-mode says."""

    @property
    def lg_user(self) -> BatchUserBase:
        return cast("BatchUserBase", self.user)

    _turn = -1  # the task picked last (an index), -1 before the first

    def pick(self, tasks: list[Any], cumulative: list[float]) -> Any:
        """--batch-mode both: async and batch jobs take turns, from a random first one (the weights are
        equal). A job takes seconds, so a short run makes only a few per user, and random draws left one
        kind without any in about 1 run in 100 (its rows without data: a failed gate)."""
        self._turn = self.lg_user.rng.randrange(len(tasks)) if self._turn < 0 else self._turn + 1
        return tasks[self._turn % len(tasks)]

    def task_weights(self, settings: opts.Settings) -> dict[str, float]:
        mode = settings.batch_mode
        return {
            "async_job": 1.0 if mode in ("async", "both") else 0.0,
            "batch_job": 1.0 if mode in ("batch", "both") else 0.0,
        }

    @tag("async")
    @task
    def async_job(self) -> None:
        self.lg_user.lg.llm.record_job(self.lg_user.api.async_chat(self.lg_user.prompt_body()))

    @tag("batch")
    @task
    def batch_job(self) -> None:
        bodies = [self.lg_user.prompt_body() for _ in range(self.lg_user.lg.settings.batch_size)]
        self.lg_user.lg.llm.record_job(self.lg_user.api.batch_job(bodies))


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

    @property
    def lg_user(self) -> ModelsUserBase:
        return cast("ModelsUserBase", self.user)

    def task_weights(self, settings: opts.Settings) -> dict[str, float]:
        return {"list_models": 3.0, "get_model": 2.0, "health": 1.0}

    @tag("models")
    @task(3)
    def list_models(self) -> None:
        st = self.lg_user.lg
        found = self.lg_user.api.list_models()
        if found and st.models is None and not st.settings.models:
            st.models = found

    @tag("models")
    @task(2)
    def get_model(self) -> None:
        st = self.lg_user.lg
        known = st.settings.models or st.models
        if not known:
            return None if st.probe is not None and not st.probe.served("models") else self.list_models()
        self.lg_user.api.get_model(self.lg_user.rng.choice(known))

    @tag("models", "health")
    @task(1)
    def health(self) -> None:
        self.lg_user.api.health()


class ModelsUserBase(LoadgateUser):
    """Rare metadata traffic: GET /v1/models, GET /v1/models/{id}, GET /health."""

    abstract = True
    loadgate_role = "models"
    tasks = [ModelsTasks]
