"""Load shapes: the named profiles (shipped scenarios) and --stages files, as one LoadTestShape.

Locust 2.47 runs *every* test through the first non-abstract LoadTestShape found in the locustfile, so a
shape that is merely imported would hijack plain runs. This one is inert unless a profile or a stages file
is chosen: on `init`, with neither, it clears `environment.shape_class` and Locust runs plain `-u/-r/-t`,
headless and in the web UI alike (`--class-picker` still lists it as a choice).

The profile name is Locust's own `--profile` option (Locust 2.47 already owns that flag as a run label, so
adding ours would clash; the name doubles as the label in Locust's HTML report), or env LOADGATE_PROFILE;
each names a shipped scenario, `loadgate/harness/scenarios/NAME.yaml` (see :mod:`loadgate.stages`).
`--stages FILE` replaces it. Percentages in a scenario scale `--users` (U), `--spawn-rate` (R),
`--run-time` (T) and, in rate mode, `--request-rate`, hence `use_common_options = True`.

A users timeline sets the user count each second (a ramp follows its line, a step jumps at its spawn
rate; per-stage class weights re-balance the running users). A rate timeline keeps --users executors
running while :mod:`loadgate.harness.arrival` follows the rate. A timeline marked `breakpoint: true`
stops at the first step over the --breakpoint-* limits and records the knee.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from locust import events
from locust.shape import LoadTestShape
from locust.stats import calculate_response_time_percentile

from loadgate import options as opts
from loadgate.contract import EXIT_BAD_INPUT
from loadgate.harness import locust_compat
from loadgate.options import BY_FLAG, PROFILES, parse_value
from loadgate.stages import RATE, Span, StagesError, StagesFile, Timeline, load_scenario, load_stages, resolve

logger = logging.getLogger(__name__)

PROFILE_ENV = "LOADGATE_PROFILE"
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
    """The steps of a (step-only) profile scaled to U users, R users/s and T seconds (docs/running.md,
    "Load profiles")."""
    if profile not in PROFILES:
        raise ValueError(f"unknown load profile {profile!r}; choose one of {', '.join(PROFILES)}")
    u, r = max(1, int(users)), max(0.1, float(spawn_rate))
    timeline = resolve(load_scenario(profile), users=u, spawn_rate=r, run_time_s=run_time_s)
    return [Stage(s.end_s, int(s.end), s.spawn_rate or r) for s in timeline.spans]


def stage_at(stages: list[Stage], elapsed_s: float) -> Stage | None:
    """The stage running `elapsed_s` seconds into the run; None once the last one has ended."""
    return next((s for s in stages if elapsed_s < s.until_s), None)


# -- the timeline of a run ------------------------------------------------------------------------------


def profile_name(environment: Any) -> str | None:
    return getattr(environment, "profile", None) or os.environ.get(PROFILE_ENV) or None


def stages_spec(environment: Any) -> StagesFile | None:
    """The stages file (--stages) or the profile's scenario; None for neither. StagesError when bad."""
    options = environment.parsed_options
    path = str(getattr(options, "stages", "") or "").strip() if options is not None else ""
    if path:
        return load_stages(path)
    name = profile_name(environment)
    return load_scenario(name) if name else None


def timeline(environment: Any) -> Timeline | None:
    """The run's timeline from the current options (the web UI may have changed them); None without a
    profile or stages file, or in a capacity search (which drives the rate itself). StagesError when bad."""
    options = environment.parsed_options
    spec = stages_spec(environment)
    if spec is None or options is None:
        return None
    settings = opts.load(options)
    if settings.find_capacity:
        return None
    return resolve(
        spec,
        users=max(1, int(getattr(options, "num_users", None) or 1)),
        spawn_rate=max(0.1, float(getattr(options, "spawn_rate", None) or 1)),
        run_time_s=getattr(options, "run_time", None) or None,
        request_rate=settings.request_rate,
        time_scale=settings.time_scale,
    )


_ORIGINAL_WEIGHTS: dict[type, int] = {}  # weights of classes without a loadgate role, before any stage


def apply_weights(environment: Any, weights: dict[str, int] | None) -> bool:
    """A stage's class weights (by class name or role: chat, batch, models) over the configured ones
    (--chat-weight...); None restores the configured ones. True when any class weight changed."""
    settings = opts.load(environment.parsed_options)
    configured = {
        "chat": settings.chat_weight,
        "batch": settings.batch_weight,
        "models": settings.models_weight,
    }
    changed = False
    for user_class in environment.user_classes:
        role = getattr(user_class, "loadgate_role", None)
        weight = (
            configured[role]
            if role in configured
            else _ORIGINAL_WEIGHTS.setdefault(user_class, user_class.weight)
        )
        if weights and user_class.__name__ in weights:
            weight = weights[user_class.__name__]
        elif weights and role in weights:
            weight = weights[role]
        if user_class.weight != weight:
            user_class.weight, changed = weight, True
    return changed


@dataclass
class StepResult:
    users: int
    seconds: float
    requests: int
    failures: int
    rps: float
    fail_ratio: float
    p95_ms: float
    rate_rps: float | None = None  # the offered rate of a rate-mode step


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

    def measure(self, total, users: int, rate: float | None = None) -> StepResult:
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
            rate,
        )


class LoadProfileShape(LoadTestShape):
    """Runs the profile named by `--profile` / LOADGATE_PROFILE, or `--stages`; see the module docstring."""

    use_common_options = True

    def __init__(self) -> None:
        super().__init__()
        self._window: _Window | None = None
        self._step: Span | None = None
        self._steps: list[StepResult] = []
        self.breakpoint: dict | None = None
        self.timeline: Timeline | None = None
        self._weights: dict[str, int] | None = None

    def reset_time(self) -> None:
        super().reset_time()
        self._window, self._step, self._steps, self.breakpoint = None, None, [], None
        self._weights = None
        try:
            self.timeline = timeline(self._runner.environment) if self.runner is not None else None
        except (StagesError, opts.SettingError) as e:
            logger.error("loadgate: error: %s", e)
            self.timeline = None

    @property
    def _runner(self) -> Any:
        """Locust sets the runner before it calls tick()."""
        assert self.runner is not None
        return self.runner

    # -- what Locust calls every second ------------------------------------------------------------
    def tick(self) -> tuple[int, float] | None:
        env = self._runner.environment
        options = env.parsed_options
        users = int(getattr(options, "num_users", None) or 1)
        rate = float(getattr(options, "spawn_rate", None) or 1)
        run_time = getattr(options, "run_time", None)
        elapsed = self.get_run_time()
        if self.timeline is None:
            self.timeline = self._timeline()
        tl = self.timeline
        if tl is None:  # picked in the web UI without a profile: plain -u/-r/-t
            return None if run_time and elapsed >= run_time else (users, rate)
        span = tl.at(elapsed)
        if tl.breakpoint and self._breakpoint_reached(span):
            return None
        if span is None:
            return None
        if tl.kind == RATE:  # --users executors; the rate itself is followed by loadgate.harness.arrival
            result = (users, rate)
        else:
            spawn = span.spawn_rate or rate
            if not span.hold and span.end_s > span.start_s:  # a ramp: fast enough to follow its line
                spawn = max(spawn, abs(span.end - span.start) / (span.end_s - span.start_s))
            result = (max(0, round(span.value_at(elapsed))), spawn)
        if self._stage_weights(span) and getattr(self._runner, "shape_last_tick", None) == result:
            self._runner.shape_last_tick = None  # the same counts, other classes: Locust must dispatch again
        return result

    def _timeline(self) -> Timeline | None:
        try:
            return timeline(self._runner.environment)
        except (StagesError, opts.SettingError) as e:
            logger.error("loadgate: error: %s", e)
            return None

    def _stage_weights(self, span: Span) -> bool:
        """Per-stage class weights: applied, and the running users' classes re-balanced to them at the
        next dispatch. True when the running users must be re-dispatched."""
        if span.weights == self._weights:
            return False
        self._weights = span.weights
        if not apply_weights(self._runner.environment, span.weights):
            return False
        logger.info("loadgate: stage %d: class weights %s", span.index + 1, span.weights or "as configured")
        return locust_compat.rebalance_user_classes(self._runner)

    # -- breakpoint ----------------------------------------------------------------------------------
    def _limits(self) -> tuple[float, float]:
        options = self._runner.environment.parsed_options
        ratio = getattr(options, "breakpoint_fail_ratio", None)
        p95 = getattr(options, "breakpoint_p95_ms", None)
        return (
            parse_value("--breakpoint-fail-ratio", DEFAULT_FAIL_RATIO if ratio is None else ratio),
            parse_value("--breakpoint-p95-ms", DEFAULT_P95_MS if p95 is None else p95),
        )

    def _measure(self) -> StepResult:
        assert self._window is not None
        step, tl = self._step, self.timeline
        options = self._runner.environment.parsed_options
        if step is not None and tl is not None and tl.kind == RATE:
            return self._window.measure(
                self._runner.stats.total, int(getattr(options, "num_users", 0) or 0), step.end
            )
        return self._window.measure(self._runner.stats.total, int(step.end) if step else 0)

    def _breakpoint_reached(self, stage: Span | None) -> bool:
        """Measure the current step; True (and the knee recorded) once a limit is exceeded or it ended."""
        total = self._runner.stats.total
        if self._window is None or total.num_requests < self._window.requests:  # start, or stats reset
            self._window, self._step = _Window.now(total), stage
            return stage is None
        current = self._measure()
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
        self._steps.append(self._measure())
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
        if knee and knee.rate_rps is not None:
            logger.warning(
                "loadgate breakpoint: %s; knee at %g req/s offered, %.1f req/s",
                reason,
                knee.rate_rps,
                knee.rps,
            )
        elif knee:
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
        and shape.timeline is not None
        and shape.timeline.breakpoint
        and shape.runner is not None
    ):
        shape.finish()


def fail_setup(message: str) -> None:
    sys.stderr.write(f"loadgate: error: {message}\n")
    sys.stderr.flush()
    sys.exit(EXIT_BAD_INPUT)


@events.init.add_listener
def _choose_profile(environment, **_kwargs) -> None:
    """No profile or stages file (or a capacity search): step aside so Locust runs plain -u/-r/-t.
    An unknown profile or a bad stages file: fail before any load (exit 2, one line)."""
    if not isinstance(environment.shape_class, LoadProfileShape):
        return
    options = environment.parsed_options
    name = profile_name(environment)
    stages = str(getattr(options, "stages", "") or "").strip() if options is not None else ""
    try:
        capacity = opts.load(options).find_capacity if options is not None else False
    except opts.SettingError:
        capacity = False  # lifecycle reports the bad setting
    if capacity or (name is None and not stages):
        environment.shape_class = None
        return
    if name is not None and name not in PROFILES and not stages:
        fail_setup(
            f"--profile / {PROFILE_ENV}: unknown load profile (got {name!r}); choose one of {', '.join(PROFILES)}"
        )
    try:
        timeline(environment)  # every stage resolvable with these settings
    except StagesError as e:
        fail_setup(str(e))
        return
    except opts.SettingError:
        return  # lifecycle reports it
    if stages:
        if name:
            logger.info("loadgate: --stages %s replaces the profile %s", stages, name)
        environment.profile = None
    else:
        environment.profile = name  # so Locust's HTML report and the run metadata show it
