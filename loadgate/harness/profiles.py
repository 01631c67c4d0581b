"""Named load profiles (smoke, load, stress, spike, soak, breakpoint) as one LoadTestShape.

Locust 2.47 runs *every* test through the first non-abstract LoadTestShape found in the locustfile, so a
shape that is merely imported would hijack plain runs. This one is inert unless a profile is chosen: on
`init`, with no profile, it clears `environment.shape_class` and Locust runs plain `-u/-r/-t`, headless and
in the web UI alike (`--class-picker` still lists it as a choice).

The profile name is Locust's own `--profile` option (Locust 2.47 already owns that flag as a run label, so
adding ours would clash; the name doubles as the label in Locust's HTML report), or env LOADGATE_PROFILE.
Every profile is scaled by `--users` (U), `--spawn-rate` (R) and `--run-time` (T), hence
`use_common_options = True`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from locust import events
from locust.shape import LoadTestShape
from locust.stats import calculate_response_time_percentile

from loadgate.options import BY_FLAG, PROFILES, parse_value

logger = logging.getLogger(__name__)

PROFILE_ENV = "LOADGATE_PROFILE"
# Used when a profile runs without --run-time (e.g. started from the web UI with the field blank).
DEFAULT_RUN_TIME_S = {"smoke": 60, "load": 600, "stress": 600, "spike": 300, "soak": 3600, "breakpoint": 600}
assert tuple(DEFAULT_RUN_TIME_S) == PROFILES
BREAKPOINT_STEPS = 10
# A breakpoint check needs this many requests in the current step, so one slow request cannot end a run.
BREAKPOINT_MIN_SAMPLES = 20
DEFAULT_FAIL_RATIO = BY_FLAG["--breakpoint-fail-ratio"].default
DEFAULT_P95_MS = BY_FLAG["--breakpoint-p95-ms"].default


@dataclass(frozen=True)
class Stage:
    """Hold `users` (reached at `spawn_rate` users/s) until `until_s` seconds into the run."""

    until_s: float
    users: int
    spawn_rate: float


def plan(profile: str, users: int, spawn_rate: float, run_time_s: float | None) -> list[Stage]:
    """The stages of a profile scaled to U users, R users/s and T seconds (see docs/running.md, "Load profiles")."""
    if profile not in DEFAULT_RUN_TIME_S:
        raise ValueError(f"unknown load profile {profile!r}; choose one of {', '.join(PROFILES)}")
    u, r = max(1, int(users)), max(0.1, float(spawn_rate))
    t = float(run_time_s or DEFAULT_RUN_TIME_S[profile])
    if profile == "smoke":
        return [Stage(t, max(1, u // 10), r)]
    if profile in ("load", "soak"):
        return [Stage(t, u, r)]
    if profile == "stress":  # four equal steps to twice the nominal load
        return [Stage(t * (i + 1) / 4, max(1, math.ceil(u * f)), r) for i, f in enumerate((0.5, 1, 1.5, 2))]
    if profile == "spike":  # base load, a near-instant jump to U, then recovery at base load
        base, jump = max(1, u // 5), max(r, float(u))
        return [Stage(t * 0.3, base, r), Stage(t * 0.5, u, jump), Stage(t, base, jump)]
    # breakpoint: BREAKPOINT_STEPS equal steps up to U users (the ceiling); stops early at the limit
    steps = min(BREAKPOINT_STEPS, u)
    return [Stage(t * (i + 1) / steps, max(1, math.ceil(u * (i + 1) / steps)), r) for i in range(steps)]


def stage_at(stages: list[Stage], elapsed_s: float) -> Stage | None:
    """The stage running `elapsed_s` seconds into the run; None once the last one has ended."""
    return next((s for s in stages if elapsed_s < s.until_s), None)


@dataclass
class StepResult:
    users: int
    seconds: float
    requests: int
    failures: int
    rps: float
    fail_ratio: float
    p95_ms: float


@dataclass
class _Window:
    """Locust's aggregated totals at the start of a breakpoint step, to measure the step alone."""

    started: float
    requests: int
    failures: int
    response_times: dict[int, int] = field(default_factory=dict)

    @classmethod
    def now(cls, total) -> _Window:
        return cls(time.monotonic(), total.num_requests, total.num_failures, dict(total.response_times))

    def measure(self, total, users: int) -> StepResult:
        requests = total.num_requests - self.requests
        failures = total.num_failures - self.failures
        seconds = max(1e-9, time.monotonic() - self.started)
        times = {k: v - self.response_times.get(k, 0) for k, v in total.response_times.items()}
        times = {k: v for k, v in times.items() if v > 0}
        p95 = calculate_response_time_percentile(times, sum(times.values()), 0.95) if times else 0
        ratio = failures / requests if requests else 0.0
        return StepResult(
            users,
            round(seconds, 3),
            requests,
            failures,
            round(requests / seconds, 3),
            round(ratio, 5),
            float(p95),
        )


class LoadProfileShape(LoadTestShape):
    """Runs the profile named by `--profile` / LOADGATE_PROFILE; see the module docstring."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self._window: _Window | None = None
        self._step: Stage | None = None
        self._steps: list[StepResult] = []
        self.breakpoint: dict | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self._window, self._step, self._steps, self.breakpoint = None, None, [], None

    @property
    def _runner(self) -> Any:
        """Locust sets the runner before it calls tick()."""
        assert self.runner is not None
        return self.runner

    # -- what Locust calls every second ------------------------------------------------------------
    def tick(self) -> tuple[int, float] | None:
        env = self._runner.environment
        options = env.parsed_options
        users = getattr(options, "num_users", None) or 1
        rate = getattr(options, "spawn_rate", None) or 1
        run_time = getattr(options, "run_time", None)
        name = env.profile or os.environ.get(PROFILE_ENV) or None
        elapsed = self.get_run_time()
        if name is None:  # picked in the web UI without a profile: plain -u/-r/-t
            return None if run_time and elapsed >= run_time else (int(users), float(rate))
        try:
            stages = plan(name, users, rate, run_time)
        except ValueError as e:
            logger.error("loadgate: %s", e)
            return None
        stage = stage_at(stages, elapsed)
        if name == "breakpoint" and self._breakpoint_reached(stage):
            return None
        return None if stage is None else (stage.users, stage.spawn_rate)

    # -- breakpoint ----------------------------------------------------------------------------------
    def _limits(self) -> tuple[float, float]:
        options = self._runner.environment.parsed_options
        ratio = getattr(options, "breakpoint_fail_ratio", None)
        p95 = getattr(options, "breakpoint_p95_ms", None)
        return (
            parse_value("--breakpoint-fail-ratio", DEFAULT_FAIL_RATIO if ratio is None else ratio),
            parse_value("--breakpoint-p95-ms", DEFAULT_P95_MS if p95 is None else p95),
        )

    def _breakpoint_reached(self, stage: Stage | None) -> bool:
        """Measure the current step; True (and the knee recorded) once a limit is exceeded or it ended."""
        total = self._runner.stats.total
        if self._window is None or total.num_requests < self._window.requests:  # start, or stats reset
            self._window, self._step = _Window.now(total), stage
            return stage is None
        current = self._window.measure(total, self._step.users if self._step else 0)
        max_ratio, max_p95 = self._limits()
        reason = None
        if current.requests >= BREAKPOINT_MIN_SAMPLES:
            if current.fail_ratio > max_ratio:
                reason = f"failure ratio {current.fail_ratio:.4f} > {max_ratio}"
            elif current.p95_ms > max_p95:
                reason = f"p95 {current.p95_ms:.0f} ms > {max_p95:.0f} ms"
        if reason:
            self._steps.append(current)
            self._record(reason, breached=current)
            return True
        if stage != self._step:  # the step ended within the limits
            self._steps.append(current)
            self._window, self._step = _Window.now(total), stage
            if stage is None:
                self._record("no limit exceeded up to the last step", breached=None)
                return True
        return False

    def finish(self) -> None:
        """The run stopped (run time, Ctrl-C, web UI) before the shape ended it: record the knee so far."""
        if self.breakpoint is not None or self._window is None:
            return
        self._steps.append(
            self._window.measure(self._runner.stats.total, self._step.users if self._step else 0)
        )
        self._record("the run stopped before any limit was exceeded", breached=None)

    def _record(self, reason: str, breached: StepResult | None) -> None:
        good = [s for s in self._steps if s is not breached]
        knee = good[-1] if good else None
        max_ratio, max_p95 = self._limits()
        self.breakpoint = {
            "profile": "breakpoint",
            "reason": reason,
            "breached": breached is not None,
            "limits": {"fail_ratio": max_ratio, "p95_ms": max_p95},
            "knee": asdict(knee) if knee else None,
            "breach": asdict(breached) if breached else None,
            "steps": [asdict(s) for s in self._steps],
            "at": time.time(),
        }
        if knee:
            logger.warning(
                "loadgate breakpoint: %s; knee at %d users, %.1f req/s", reason, knee.users, knee.rps
            )
        else:
            logger.warning("loadgate breakpoint: %s before the first step completed; no knee", reason)
        prefix = getattr(self._runner.environment.parsed_options, "csv_prefix", None)
        if prefix:
            with open(f"{prefix}_breakpoint.json", "w") as f:
                json.dump(self.breakpoint, f, indent=2)


@events.test_stop.add_listener
def _finish_breakpoint(environment, **_kwargs) -> None:
    shape = environment.shape_class
    if (
        isinstance(shape, LoadProfileShape)
        and environment.profile == "breakpoint"
        and shape.runner is not None
    ):
        shape.finish()


@events.init.add_listener
def _choose_profile(environment, **_kwargs) -> None:
    """No profile: step aside so Locust runs plain -u/-r/-t. Unknown profile: fail before any load."""
    if not isinstance(environment.shape_class, LoadProfileShape):
        return
    name = environment.profile or os.environ.get(PROFILE_ENV) or None
    if name is None:
        environment.shape_class = None
        return
    if name not in DEFAULT_RUN_TIME_S:
        sys.stderr.write(
            f"loadgate: error: --profile / {PROFILE_ENV}: unknown load profile (got {name!r}); "
            f"choose one of {', '.join(PROFILES)}\n"
        )
        sys.exit(2)
    environment.profile = name  # so Locust's HTML report and the run metadata show it
