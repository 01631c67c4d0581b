"""The files a run leaves under its CSV prefix (see :mod:`loadgate.contract`).

``PREFIX_llm_stats.csv`` (+ history) and ``PREFIX_llm_summary.json`` are rewritten every
``CSV_STATS_INTERVAL_SEC`` and once more from the final totals; ``PREFIX_loadgate.json`` (run metadata)
at start, at the warm-up reset and at the end. Locust's own ``_stats.csv`` / ``_failures.csv`` are rewritten
from the final totals when its CSV writer closes (:class:`FinalTotalsCSVFileWriter`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import gevent
import locust
import locust.stats
from locust.runners import MasterRunner

import loadgate
from loadgate import contract, workload
from loadgate.harness import locust_compat, precision
from loadgate.harness.llm_stats import LlmStatsCSV
from loadgate.harness.locust_compat import is_worker
from loadgate.harness.state import RunState, state
from loadgate.urls import public_url


def start_writing(environment: Any, st: RunState) -> None:
    """On the process that writes files (local or master, with --csv): truncate and start the LLM files."""
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None) if options else None
    if not prefix or is_worker(environment):
        return
    st.csv_prefix = prefix
    st.llm_csv = LlmStatsCSV(
        environment, st.llm, prefix, bool(getattr(options, "stats_history_enabled", False))
    )
    st.llm_csv.start_history()
    st.writer_greenlet = gevent.spawn(_write_periodically, environment)


def metadata(environment: Any, st: RunState, started_at: float | None = None) -> dict[str, Any]:
    """PREFIX_loadgate.json at test start. The measured window is recorded exactly: ``started_at`` (the
    test start, also the LLM figures' window start), ``stats_reset_at`` (the warm-up reset: the statistics'
    and the LLM figures' restart) and ``stopped_at`` (the test stop, after the last user stopped and, on a
    master, after every worker's final report): the gate divides counts by this window."""
    options = environment.parsed_options
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        mode = "processes" if getattr(options, "processes", None) else "master"
        workers = runner.worker_count
    else:
        mode, workers = "local", 0
    meta = {
        "loadgate_version": loadgate.__version__,
        "locust_version": locust.__version__,
        "host": public_url(environment.host),
        "warmup_s": st.settings.warmup_s,
        "stats_reset_at": None,
        "started_at": started_at if started_at is not None else time.time(),
        "stopped_at": None,
        "run_mode": mode,
        "workers": workers,
        "user_classes": sorted(c.__name__ for c in environment.user_classes),
        "profile": getattr(options, "profile", None) if options else None,
        "usage_source": None,
        "token_source": None,
        "final_stats_written": False,
        "allow_lost_workers": st.settings.allow_lost_workers,
        "lost_workers": [],
        **load_metadata(environment, st),
        "workload": workload.describe(st.settings, st.prompts),
    }
    if st.probe is not None:  # the start-up probe's routes (contract.RunMeta.capabilities)
        meta["capabilities"] = st.probe.capabilities()
    return meta


def load_metadata(environment: Any, st: RunState) -> dict[str, Any]:
    """How the load was driven: closed-loop users, or an arrival rate (docs/load-shapes.md)."""
    s = st.settings
    options = environment.parsed_options
    open_loop = (
        bool(getattr(options, "loadgate_open_loop", False)) or s.request_rate is not None or s.find_capacity
    )
    return {
        "load_mode": "capacity search" if s.find_capacity else "rate" if open_loop else "users",
        "stages": s.stages or None,
        "request_rate": s.request_rate,
        "arrival": s.arrival if open_loop else None,
        "burstiness": s.burstiness if open_loop and s.arrival == "gamma" else None,
        "max_concurrency": s.max_concurrency,
    }


RATE_RESULTS = (
    "requested_rate",
    "achieved_rate",
    "schedule_lag_p50",
    "schedule_lag_p99",
    "schedule_lag_max",
    "arrivals_waiting_at_stop",
    "schedule_lag_cause",
)


def rate_metadata(st: RunState) -> None:
    """Rate mode's results beside the run's settings in PREFIX_loadgate.json (as in the summary)."""
    summary = st.llm.summary()
    st.meta.update({key: summary.get(key) for key in RATE_RESULTS})
    if st.meta.get("request_rate") is None:
        st.meta["request_rate"] = summary.get("requested_rate")


def write_json(path: str, data: dict[str, Any]) -> None:
    """Atomically: readers (the gate, the live SLA) never see half a file."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_metadata(st: RunState) -> None:
    if st.csv_prefix:
        contract.RunMeta.from_dict(st.meta)  # the writer keeps the contract the gate reads (else it raises)
        write_json(contract.path(st.csv_prefix, contract.LOADGATE_JSON), st.meta)


def _write_llm_files(st: RunState) -> None:
    if st.llm_csv is None or st.csv_prefix is None:
        return
    st.llm_csv.write_totals()
    figures = summary(st)
    contract.LlmSummary.from_dict(figures)  # the writer keeps the contract the gate reads (else it raises)
    write_json(contract.path(st.csv_prefix, contract.LLM_SUMMARY_JSON), figures)


def summary(st: RunState) -> dict[str, Any]:
    """PREFIX_llm_summary.json: the LLM figures, the generator's own health and, with --server-metrics,
    the scrapes' counts."""
    scrapes = {k: st.meta[k] for k in SERVER_METRICS_COUNTS if st.meta.get(k) is not None}
    return {**st.llm.summary(), **st.monitor.summary(local=st.meta.get("run_mode") == "local"), **scrapes}


SERVER_METRICS_COUNTS = ("server_metrics_scrapes", "server_metrics_failures")


def _write_periodically(environment: Any) -> None:
    st = state(environment)
    while True:
        gevent.sleep(locust.stats.CSV_STATS_INTERVAL_SEC)
        _write_llm_files(st)
        if (
            st.llm_csv is not None
            and environment.runner is not None
            and environment.runner.state
            not in (
                "ready",
                "stopped",
            )
        ):
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
    figures = summary(st)
    st.meta["usage_source"] = figures["usage_source"]
    st.meta["token_source"] = figures["token_source"]
    st.meta.update({k: v for k, v in figures.items() if k.startswith("loadgen_lag")})
    st.meta["final_stats_written"] = True
    write_metadata(st)


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
            locust_compat.rewrite_csv_files(self)
            self._stats_history_data_rows(self.stats_history_csv_writer, time.time())
            write_final(self.environment)
        finally:
            super().close_files()


def install() -> None:
    locust_compat.set_csv_writer_class(FinalTotalsCSVFileWriter)
