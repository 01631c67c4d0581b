"""The capacity search on the Locust side (``--find-capacity``, headless; local, --processes or master).

Step by step (:class:`loadgate.capacity_search.Search` picks the rates) the search sets a constant offered rate
(:class:`loadgate.harness.arrival.Controller`), lets the step's first third warm up, resets every
statistic (the workers report first), then records the step's window: Locust's and loadgate's files under
``PREFIX_capacity_stepNN`` (the same files a run leaves, history included), read back and judged by the
gate itself (:func:`loadgate.gate.data.load_run`, :func:`loadgate.gate.evaluate.evaluate`: the code of
``check_sla``). At the end it writes PREFIX_capacity.json/.csv/.png and quits with exit code 0 (a capacity
was found), 1 (even the first step failed) or 2 (bad input, or the run was cut short).
"""

from __future__ import annotations

import csv
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import locust
import locust.stats
from locust.runners import STATE_RUNNING
from locust.stats import StatsCSV

import loadgate
from loadgate import capacity_search as cap
from loadgate import contract
from loadgate.gate import report
from loadgate.gate.config import SlaConfig, load_config
from loadgate.gate.data import load_run
from loadgate.gate.errors import GateInputError
from loadgate.gate.evaluate import evaluate
from loadgate.harness import distributed, locust_compat, outputs, precision
from loadgate.harness.arrival import controller
from loadgate.harness.llm_stats import LlmStatsCSV, _history_columns
from loadgate.harness.state import state
from loadgate.schedule import RatePlan
from loadgate.urls import public_url

logger = logging.getLogger("loadgate.capacity_search")

SHIPPED_THRESHOLDS = Path(loadgate.__file__).parent / "data" / "thresholds.yaml"
SAMPLE_S = 0.5  # requests in flight are sampled this often
SPAWN_WAIT_S = 120  # the first step waits at most this long for the users to be spawned


def fail_setup(message: str) -> None:
    sys.stderr.write(f"loadgate: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(contract.EXIT_BAD_INPUT)


class StepCSV(StatsCSV):
    """Locust's stats of one step as PREFIX_stats.csv, _failures.csv and _stats_history.csv."""

    def __init__(self, environment: Any, prefix: str) -> None:
        super().__init__(environment, locust.stats.PERCENTILES_TO_REPORT)
        self.prefix = prefix
        self.full_history = True
        self.stats_history_csv_columns = _history_columns(self.percentiles_to_report)
        with open(contract.path(prefix, contract.STATS_HISTORY_CSV), "w", newline="") as f:
            csv.writer(f).writerow(self.stats_history_csv_columns)

    def _percentile_fields(self, stats_entry: Any, use_current: bool = False) -> list:
        return precision.percentile_fields(stats_entry, self.percentiles_to_report, use_current)

    def append_history(self, now: float) -> None:
        with open(contract.path(self.prefix, contract.STATS_HISTORY_CSV), "a", newline="") as f:
            locust_compat.write_history_rows(self, csv.writer(f), now)

    def write_totals(self) -> None:
        with open(contract.path(self.prefix, contract.STATS_CSV), "w", newline="") as f:
            self.requests_csv(csv.writer(f))
        with open(contract.path(self.prefix, contract.FAILURES_CSV), "w", newline="") as f:
            self.failures_csv(csv.writer(f))


class CapacitySearch:
    def __init__(self, environment: Any, config: SlaConfig, prefix: str) -> None:
        self.environment = environment
        self.config = config
        self.prefix = prefix
        s = state(environment).settings
        self.step_s = s.capacity_step_time_s
        self.warmup_s = self.step_s * cap.WARMUP_SHARE
        self.measured_s = self.step_s - self.warmup_s
        self.step_config, self.skipped = cap.step_config(config, self.measured_s)
        self.search = cap.Search(s.capacity_start, s.capacity_resolution)
        self.steps: list[dict[str, Any]] = []
        self.greenlet: Any = None
        self.finished = False
        self.exit_code: int | None = None
        self.error: str | None = None
        self.charted = False

    # -- the search ----------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._wait_for_users()
            rate = self.search.next_rate()
            while rate is not None:
                step = self.run_step(len(self.steps) + 1, rate)
                self.steps.append(step)
                self.search.record(rate, step["result"])
                self._say(step)
                self.write_outputs()
                rate = self.search.next_rate()
                self.drain()
            self.finished = True
            self.exit_code = contract.EXIT_PASS if self.search.low is not None else contract.EXIT_BREACH
        except GateInputError as e:
            self.error = e.line().replace("check_sla: error:", "loadgate capacity: error:", 1)
            logger.error("%s", self.error)
            self.exit_code = contract.EXIT_BAD_INPUT
        self.write_outputs()
        self.write_chart()  # now, not at quit: Locust's CSV writer must not be held up at shutdown
        self.charted = True
        self.environment.process_exit_code = self.exit_code
        gevent.spawn(self.environment.runner.quit)

    def drain(self) -> None:
        """Between steps: no new arrivals, the queued ones dropped, until the requests in flight are done,
        so a failing step's backlog (here and in the target's queue) does not spill into the next step."""
        env, rc = self.environment, controller(self.environment)
        rc.set_plan(RatePlan.constant(0.0), drop=True)
        deadline = time.monotonic() + state(env).settings.request_timeout_s + 5
        while time.monotonic() < deadline:
            distributed.collect_reports(env)
            if rc.total_in_flight() == 0:
                return
            gevent.sleep(0.25)
        logger.warning("loadgate capacity: %d requests still in flight after the drain", rc.total_in_flight())

    def _wait_for_users(self) -> None:
        runner = self.environment.runner
        deadline = time.monotonic() + SPAWN_WAIT_S
        while runner.state != STATE_RUNNING and time.monotonic() < deadline:
            gevent.sleep(0.2)

    def run_step(self, index: int, rate: float) -> dict[str, Any]:
        env, st = self.environment, state(self.environment)
        rc = controller(env)
        started_at = time.time()
        logger.info(
            "loadgate capacity: step %d: %g req/s for %gs (warm-up %gs)",
            index,
            rate,
            self.step_s,
            self.warmup_s,
        )
        rc.set_plan(RatePlan.constant(rate))
        gevent.sleep(self.warmup_s)
        distributed.collect_reports(env)
        env.runner.stats.reset_all()
        st.llm.reset()
        st.monitor.reset()
        reset_at = time.time()
        st.meta["stats_reset_at"] = reset_at
        prefix = f"{self.prefix}_capacity_step{index:02d}"
        http, llm = StepCSV(env, prefix), LlmStatsCSV(env, st.llm, prefix, True)
        llm.start_history()
        in_flight: list[int] = []
        end = time.monotonic() + self.measured_s
        next_history = time.monotonic() + 1.0
        while time.monotonic() < end:
            gevent.sleep(min(SAMPLE_S, max(0.0, end - time.monotonic())))
            in_flight.append(rc.total_in_flight())
            if time.monotonic() >= next_history:
                now = time.time()
                http.append_history(now)
                llm.append_history(now)
                next_history += 1.0
        distributed.collect_reports(env)
        stopped_at = time.time()
        now = stopped_at
        http.append_history(now)
        llm.append_history(now)
        http.write_totals()
        llm.write_totals()
        summary = outputs.summary(st)  # the LLM figures and the load generator's own (loadgen_lag_*)
        outputs.write_json(contract.path(prefix, contract.LLM_SUMMARY_JSON), summary)
        outputs.write_json(
            contract.path(prefix, contract.LOADGATE_JSON), self._meta(started_at, reset_at, stopped_at, rate)
        )
        counters = st.llm.arrivals.counters
        run = load_run(prefix, 0.0)
        evaluation = evaluate(self.step_config, run)
        with open(f"{prefix}_verdict.json", "w") as f:
            f.write(report.to_json(evaluation, prefix, self.config.path, None))
        arrivals, window = st.llm.arrivals, st.llm.window()
        mean = arrivals.requested(*window) if arrivals.requested is not None and window is not None else None
        offered = (mean or 0.0) * (window[1] - window[0]) if window is not None else 0.0
        sustained = cap.sustain_dict(
            offered, counters.started, st.settings.arrival, st.settings.burstiness, arrivals.cause()
        )
        thresholds = [cap.verdict_dict(v) for v in evaluation.verdicts] + [sustained]
        return {
            "step": index,
            "rate_rps": rate,
            "achieved_rps": summary.get("achieved_rate"),
            "result": cap.step_result(evaluation, sustained),
            "arrivals_offered": round(offered, 2),
            "arrivals_due": counters.due,
            "arrivals_started": counters.started,
            "concurrency_p95": _p95(in_flight),
            "schedule_lag_p99_ms": summary.get("schedule_lag_p99"),
            "schedule_lag_cause": summary.get("schedule_lag_cause"),
            "output_tokens_per_s": summary.get("output_tokens_per_s"),
            "goodput_req_per_s": summary.get("goodput_req_per_s"),
            "requests": int(env.runner.stats.total.num_requests),
            "failures": int(env.runner.stats.total.num_failures),
            "files": os.path.basename(prefix),  # PREFIX_capacity_stepNN, beside PREFIX_capacity.json
            "thresholds": thresholds,
        }

    def _meta(self, started_at: float, reset_at: float, stopped_at: float, rate: float) -> dict[str, Any]:
        env, st = self.environment, state(self.environment)
        meta = {k: v for k, v in st.meta.items() if k not in outputs.RATE_RESULTS}
        return {
            **meta,
            "loadgate_version": loadgate.__version__,
            "locust_version": locust.__version__,
            "host": public_url(env.host),
            "warmup_s": round(reset_at - started_at, 3),
            "stats_reset_at": reset_at,
            "started_at": started_at,
            "stopped_at": stopped_at,
            "load_mode": "capacity step",
            "request_rate": rate,
            "final_stats_written": True,
        }

    def _say(self, step: dict[str, Any]) -> None:
        failed = [
            f"{t['row']}: {t['rule']} (observed {t['observed_text']})"
            for t in step["thresholds"]
            if t["status"] == "FAIL"
        ]
        logger.warning(
            "loadgate capacity: step %d at %g req/s: %s (achieved %s req/s, in flight p95 %s)%s",
            step["step"], step["rate_rps"], step["result"].upper(), step["achieved_rps"], step["concurrency_p95"],
            "; failed: " + "; ".join(failed) if failed else "",
        )  # fmt: skip

    # -- the files -------------------------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        s = state(self.environment).settings
        low = self.search.low
        at = next((st for st in self.steps if st["rate_rps"] == low and st["result"] == cap.PASSED), None)
        found = None
        if at is not None:
            found = {
                "rate_rps": at["rate_rps"],
                "achieved_rps": at["achieved_rps"],
                "output_tokens_per_s": at["output_tokens_per_s"],
                "concurrency_p95": at["concurrency_p95"],
                "schedule_lag_p99_ms": at["schedule_lag_p99_ms"],
            }
            if s.goodput.enabled:
                found["goodput_req_per_s"] = at["goodput_req_per_s"]
        if self.error:
            result = "error"
        elif not self.finished:
            result = "interrupted"
        elif found is None:
            result = "none: even the first step failed"
        elif not self.search.bounded:
            result = f"lower bound: no step failed up to {self.steps[-1]['rate_rps']:g} req/s"
        else:
            result = "found"
        return {
            "result": result,
            "exit_code": self.exit_code,
            "error": self.error,
            "capacity": found,
            "limiting": cap.limiting(self.steps, low),
            "thresholds": self.config.path,
            "skipped": [k.as_dict() for k in self.skipped],
            "start_rps": s.capacity_start,
            "resolution": s.capacity_resolution,
            "step_time_s": self.step_s,
            "step_warmup_s": round(self.warmup_s, 3),
            "arrival": s.arrival,
            "burstiness": s.burstiness if s.arrival == "gamma" else None,
            "max_concurrency": s.max_concurrency,
            "users": getattr(self.environment.parsed_options, "num_users", None),
            "sustained_share": cap.SUSTAINED_SHARE,
            "steps": self.steps,
        }

    def write_outputs(self) -> None:
        """The JSON and CSV (rewritten after each step, so a cut-short search leaves its steps)."""
        cap.write_json(contract.path(self.prefix, contract.CAPACITY_JSON), self.document())
        cap.write_csv(contract.path(self.prefix, contract.CAPACITY_CSV), self.steps)

    def write_chart(self) -> None:
        """The PNG, once at the end (matplotlib takes a moment)."""
        if self.steps:
            cap.write_png(contract.path(self.prefix, contract.CAPACITY_PNG), self.document())

    def finish(self) -> None:
        """The run is stopping: an unfinished search is reported as such (exit 2); the chart is drawn."""
        if self.greenlet is not None and not self.greenlet.dead:
            self.greenlet.kill(block=True)
            logger.error("loadgate capacity: the run stopped before the search ended; no capacity (exit 2)")
            self.exit_code = contract.EXIT_BAD_INPUT
            self.environment.process_exit_code = self.exit_code
        self.write_outputs()
        if not self.charted:
            self.write_chart()
            gevent.sleep(0)  # let Locust's CSV writer run its overdue tick while its files are open
        self.log_result()

    def log_result(self) -> None:
        doc = self.document()
        found, lim = doc["capacity"], doc["limiting"]
        if found:
            logger.warning(
                "loadgate capacity: %s: %g req/s (achieved %s req/s, %s output tokens/s, %s requests in flight p95)%s",
                doc["result"], found["rate_rps"], found["achieved_rps"], found["output_tokens_per_s"],
                found["concurrency_p95"],
                f"; limiting: {lim['row']}: {lim['rule']} observed {lim['observed_text']} at {lim['rate_rps']:g} req/s"
                + (f" ({lim['reason']})" if lim.get("reason") else "") if lim else "",
            )  # fmt: skip
        else:
            logger.warning(
                "loadgate capacity: %s%s", doc["result"], f" ({doc['error']})" if doc["error"] else ""
            )
        for skipped in self.skipped:
            logger.info(
                "loadgate capacity: skipped per step: %s: %s (%s)", skipped.row, skipped.rule, skipped.reason
            )


def _p95(values: list[int]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, int(round(0.95 * len(ordered) + 0.5)) - 1))])


def install(environment: Any) -> None:
    """At init (local or master runner): check the inputs (exit 2 on bad ones), then search from test start."""
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None) if options is not None else None
    if not prefix:
        fail_setup(
            "--find-capacity: needs --csv PREFIX (the steps and PREFIX_capacity.json/.csv/.png go there)"
        )
    if options is not None and not getattr(options, "headless", False):
        fail_setup("--find-capacity: runs headless only (add --headless)")
    if options is not None and getattr(options, "run_time", None):
        fail_setup("--find-capacity: the search ends the run itself; drop --run-time / -t")
    path = getattr(options, "sla", None) or str(SHIPPED_THRESHOLDS)
    try:
        config = load_config(path, option="--sla")
    except GateInputError as e:
        fail_setup(e.line().removeprefix("check_sla: error: "))
        return
    if not config.thresholds:
        fail_setup(f"--find-capacity: {path} has no thresholds: section (a capacity step has no baseline)")
    search = CapacitySearch(environment, config, str(prefix))
    if not search.step_config.thresholds:
        fail_setup(
            f"--find-capacity: no rule of {path} can be judged on one step ("
            + "; ".join(f"{k.row}: {k.rule}: {k.reason}" for k in search.skipped[:3])
            + "); add latency or failure thresholds"
        )
    os.makedirs(os.path.dirname(os.path.abspath(str(prefix))), exist_ok=True)
    state(environment).capacity_search = search

    def on_start(**_kw: Any) -> None:
        search.greenlet = gevent.spawn(search.run)

    def on_quitting(**_kw: Any) -> None:
        search.finish()

    environment.events.test_start.add_listener(on_start)
    environment.events.quitting.add_listener(on_quitting)
