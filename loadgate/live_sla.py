"""Live SLA: the gate's threshold file evaluated during a Locust run, on the live stats.

    import loadgate.live_sla  # noqa: F401   (loadgate.plugin does it for you)
    locust -f locustfile.py --sla sla/thresholds.yaml [--sla-abort] [--sla-interval 5s]

Every second it samples the sliding-window figures of every row (the same ~10 s window Locust's
``--csv-full-history`` writes); every ``--sla-interval`` it evaluates the file with the gate's own
evaluator, logging each rule that starts or stops failing. ``--sla-abort`` stops the run on the first
breach that has data (like k6's abortOnFail). When Locust quits, a final fail-closed evaluation (plus any
"for" breach seen during the run) sets the exit code to 1 on breach; a bad threshold file exits 2 at
start-up. Runs only on the master or a local runner. ``sla/check_sla.py`` on the run's CSVs stays the
authority: it also checks the warm-up record and compares with a baseline.
"""

from __future__ import annotations

from typing import Any

from locust import events
from locust.runners import WorkerRunner


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any, **_kw: Any) -> None:
    # In a group, so Locust keeps them out of the web UI start form: they are read once, at init.
    group = parser.add_argument_group("loadgate live SLA")
    group.add_argument(
        "--sla",
        type=str,
        default="",
        env_var="LOADGATE_SLA",
        metavar="FILE",
        help="evaluate this threshold file during the run; exit code 1 on breach (env LOADGATE_SLA)",
    )
    group.add_argument(
        "--sla-abort",
        action="store_true",
        default=False,
        env_var="LOADGATE_SLA_ABORT",
        help="stop the run at the first SLA breach that has data (env LOADGATE_SLA_ABORT)",
    )
    group.add_argument(
        "--sla-interval",
        type=str,
        default="5s",
        env_var="LOADGATE_SLA_INTERVAL",
        help="how often to evaluate the thresholds during the run (default 5s; env LOADGATE_SLA_INTERVAL)",
    )


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    options = environment.parsed_options
    if options is None or not getattr(options, "sla", "") or isinstance(environment.runner, WorkerRunner):
        return
    from loadgate.gate.live import start  # pandas and the gate: only for runs that use --sla

    start(environment, options)
