"""The run state: the only thing loadgate stores on Locust's ``Environment``.

One typed :class:`RunState` per Environment (``environment.loadgate``), created at ``init`` or on first
use (an Environment built by hand in tests or library use). Every other harness module reads and writes
its state through :func:`state`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gevent.lock import Semaphore

from loadgate import options as opts
from loadgate.client.tokens import TokenCounter, load_counter
from loadgate.harness.llm_stats import LlmStats
from loadgate.harness.monitor import LoadgenMonitor
from loadgate.workload import Prompts, prompts_for

if TYPE_CHECKING:
    from loadgate.harness.arrival import Controller, Dispatcher
    from loadgate.harness.embedded import EmbeddedTargets
    from loadgate.harness.llm_stats import LlmStatsCSV
    from loadgate.target import ProbeResult

_ATTR = "loadgate"


@dataclass
class RunState:
    settings: opts.Settings
    llm: LlmStats
    prompts: Prompts  # a prompt file or dataset (PromptSet), or synthetic prompts (--input-tokens)
    csv_prefix: str | None = None  # set on the process that writes files (local or master)
    llm_csv: LlmStatsCSV | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # PREFIX_loadgate.json
    models: list[str] | None = None  # discovered from GET /v1/models, once per process
    models_lock: Semaphore = field(default_factory=Semaphore)
    warmup_greenlet: Any = None
    writer_greenlet: Any = None
    flushed: set[str] = field(default_factory=set)  # workers that answered the final flush
    reported: set[tuple[str, str]] = field(default_factory=set)  # (worker, token): answered a report request
    embedded: EmbeddedTargets | None = None  # mock processes this process started
    live_sla: Any = None  # loadgate.harness.live_sla.LiveSla with --sla
    dispatcher: Dispatcher | None = None  # rate mode: this process's arrivals (loadgate.harness.arrival)
    rate: Controller | None = None  # rate mode, local or master: the plan and its split across processes
    capacity_search: Any = None  # loadgate.harness.capacity_search.CapacitySearch (--find-capacity)
    live_sla_error: str = ""  # why the file named in the web UI's start form could not be loaded
    progress: Any = None  # loadgate.harness.progress.Progress in headless runs
    charts: Any = None  # loadgate.harness.llm_charts.LlmCharts behind the web UI's LLM charts tab
    tokens: TokenCounter | None = None  # counts answers without usage (--tokenizer)
    capacity: Any = None  # loadgate.harness.capacity.CapacityWatch on a master
    monitor: LoadgenMonitor = field(default_factory=LoadgenMonitor)  # event-loop lag, GC, CPU
    monitor_watch: Any = None  # the greenlet warning about lag while the run goes on
    probe: ProbeResult | None = None  # what the start-up probe found (None: not probed, all assumed served)
    basic_auth: str | None = None  # "Basic ..." from credentials in --host (kept out of environment.host)
    request_log: Any = None  # loadgate.harness.request_log.RequestLog on a process that runs users
    server_metrics: Any = None  # loadgate.harness.server_metrics.ServerMetrics with --server-metrics


def new_state(environment: Any) -> RunState:
    """Validate the options (SettingError / PromptFileError / TokenizerError when bad) and attach a fresh
    state."""
    settings = opts.load(environment.parsed_options)
    tokens = load_counter(settings.tokenizer)  # (first: a ShareGPT dataset's answers are counted with it)
    st = RunState(settings, LlmStats(settings.goodput), prompts_for(settings, tokens.count))
    st.tokens = tokens
    st.llm.token_counter = st.tokens.name
    setattr(environment, _ATTR, st)
    return st


def state(environment: Any) -> RunState:
    st = getattr(environment, _ATTR, None)
    return st if isinstance(st, RunState) else new_state(environment)


def has_state(environment: Any) -> bool:
    return isinstance(getattr(environment, _ATTR, None), RunState)
