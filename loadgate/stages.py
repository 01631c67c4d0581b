"""Stages files and the shipped scenarios: named load shapes as data. Pure (no Locust).

A stages file is a YAML list of stages, or a mapping with ``stages:`` and optional settings::

    description: a short text
    default_run_time: 10m   # what percentage durations refer to when --run-time is not given
    think_time: 1-3         # replaces --think-time for the run (closed loop)
    breakpoint: true        # stop at the first step over --breakpoint-fail-ratio / --breakpoint-p95-ms
    stages:
      - {duration: 30s, users: 10}                 # k6-style: a linear ramp from the previous target
      - {duration: 2m, users: 10, hold: true}      # a step: jump (at spawn_rate), then hold
      - {duration: 25%, users: 50%, spawn_rate: 5} # percentages of --run-time and of --users
      - {duration: 1m, rate: 20, weights: {chat: 90, batch: 0, models: 10}}

Each stage has ``duration`` (30s, 1m30s, or N% of the run time) and one target: ``users`` (N or N% of
--users: closed loop) or ``rate`` (requests/s, or N% of --request-rate: open loop); a file drives one or
the other. ``hold: true`` makes the stage a step instead of a ramp. ``spawn_rate`` (users/s, N% of
--spawn-rate, or ``instant``: at least --users per second) and ``weights`` (per user class: chat, batch,
models or a class name) are optional. In rate mode (--request-rate given) a users file whose targets are
all percentages drives the rate instead: N% of --request-rate.

The shipped scenarios (``loadgate/harness/scenarios/NAME.yaml``) are the named --profile values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from loadgate.durations import parse_duration

SCENARIOS_DIR = Path(__file__).parent / "harness" / "scenarios"
PROFILES = ("smoke", "load", "stress", "spike", "soak", "breakpoint")  # the profiles loadgate always had
EXAMPLES = ("normal-day", "black-friday", "maintenance-window")
SCENARIOS = PROFILES + EXAMPLES
TOP_KEYS = ("description", "default_run_time", "think_time", "breakpoint", "stages")
STAGE_KEYS = ("duration", "users", "rate", "hold", "spawn_rate", "weights")
USERS, RATE = "users", "rate"
MAX_STAGES_BYTES = 1024 * 1024


class StagesError(ValueError):
    """A bad stages file or a stage that cannot be resolved: one line naming file, line and field."""

    def __init__(self, file: str, line: int | None, field_: str, problem: str, got: object, fix: str) -> None:
        self.file, self.line_no, self.field, self.problem, self.got, self.fix = (
            file,
            line,
            field_,
            problem,
            got,
            fix,
        )
        super().__init__(self.text())

    def text(self) -> str:
        where = f"{self.file}:{self.line_no}" if self.line_no else self.file
        got = f"{self.got!r}" if not isinstance(self.got, str) else repr(self.got[:80])
        return f"{where}: {self.field}: {self.problem} (got {got}); {self.fix}"


# -- a value as written: absolute, or a percentage of a run setting ------------------------------------


@dataclass(frozen=True)
class Amount:
    value: float
    percent: bool = False

    def of(self, base: float) -> float:
        return self.value * base / 100.0 if self.percent else self.value


@dataclass(frozen=True)
class StageSpec:
    line: int
    duration: Amount  # seconds, or % of the run time
    kind: str  # USERS or RATE
    target: Amount
    hold: bool = False
    spawn_rate: Amount | str | None = None  # users/s, % of --spawn-rate, or "instant"
    weights: dict[str, int] | None = None


@dataclass(frozen=True)
class StagesFile:
    source: str
    stages: tuple[StageSpec, ...]
    description: str = ""
    default_run_time_s: float | None = None
    think_time: tuple[float, float] | None = None
    breakpoint: bool = False

    @property
    def kind(self) -> str:
        return self.stages[0].kind

    @property
    def relative(self) -> bool:
        """Every target a percentage (so it can scale --users or --request-rate)."""
        return all(s.target.percent for s in self.stages)


def scenario_path(name: str) -> Path:
    return SCENARIOS_DIR / f"{name}.yaml"


def load_scenario(name: str) -> StagesFile:
    if name not in SCENARIOS:
        raise StagesError(
            "--profile",
            None,
            "--profile",
            "unknown load profile",
            name,
            f"choose one of {', '.join(SCENARIOS)}",
        )
    return load_file(scenario_path(name))


def load_stages(value: str) -> StagesFile:
    """--stages: a YAML file, or the name of a shipped scenario (loadgate/harness/scenarios/NAME.yaml)."""
    if not Path(value).is_file() and value in SCENARIOS:
        return load_scenario(value)
    return load_file(value)


def load_file(path: str | Path) -> StagesFile:
    name = str(path)
    p = Path(path)
    if not p.is_file():
        raise StagesError(
            name, None, "--stages", "file not found", name,
            f"give a stages YAML file or a shipped scenario ({', '.join(SCENARIOS)})",
        )  # fmt: skip
    if p.stat().st_size > MAX_STAGES_BYTES:
        raise StagesError(
            name, None, "--stages", "file too large for a stages file", p.stat().st_size, "check the path"
        )
    try:
        text = p.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise StagesError(
            name, None, "--stages", "cannot read the file as UTF-8 text", str(e), "check the path"
        ) from None
    return parse(text, name)


def parse(text: str, name: str = "<stages>") -> StagesFile:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise StagesError(
            name,
            mark.line + 1 if mark else None,
            "YAML",
            "syntax error",
            str(e.problem),
            "fix the YAML syntax",
        ) from None
    except yaml.YAMLError as e:
        raise StagesError(name, None, "YAML", "syntax error", str(e), "fix the YAML syntax") from None
    finally:
        loader.dispose()
    return _Builder(name, loader).build(root)


class _Builder:
    def __init__(self, name: str, loader: yaml.SafeLoader) -> None:
        self.name, self.loader = name, loader

    def fail(self, node: yaml.Node | None, field_: str, problem: str, got: object, fix: str) -> StagesError:
        return StagesError(
            self.name, node.start_mark.line + 1 if node is not None else None, field_, problem, got, fix
        )

    def value(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self.loader.construct_object(node, deep=True)
        return "a mapping" if isinstance(node, yaml.MappingNode) else "a list"

    def mapping(
        self, node: yaml.Node, field_: str, allowed: tuple[str, ...]
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(
                node, field_, "must be a mapping", self.value(node), f"write {field_} as key: value lines"
            )
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str) or key not in allowed:
                raise self.fail(
                    key_node, f"{field_}.{key}", "unknown key", key, f"use only {', '.join(allowed)}"
                )
            if key in out:
                raise self.fail(key_node, f"{field_}.{key}", "duplicate key", key, "keep one of them")
            out[key] = (key_node, value_node)
        return out

    def build(self, root: yaml.Node | None) -> StagesFile:
        if root is None:
            raise StagesError(
                self.name,
                None,
                "stages",
                "the file is empty",
                "",
                "list stages, e.g. - {duration: 30s, users: 10}",
            )
        settings: dict[str, Any] = {}
        if isinstance(root, yaml.MappingNode):
            top = self.mapping(root, "file", TOP_KEYS)
            if "stages" not in top:
                raise self.fail(root, "stages", "missing", None, "add stages: with a list of stages")
            stages_node = top["stages"][1]
            for key, (_k, node) in top.items():
                if key == "description":
                    settings["description"] = str(self.value(node) or "")
                elif key == "default_run_time":
                    settings["default_run_time_s"] = self.seconds(node, key, percent=False).value
                elif key == "think_time":
                    settings["think_time"] = self.think_time(node)
                elif key == "breakpoint":
                    settings["breakpoint"] = self.flag(node, key)
        else:
            stages_node = root
        if not isinstance(stages_node, yaml.SequenceNode) or not stages_node.value:
            raise self.fail(
                stages_node, "stages", "must be a non-empty list", self.value(stages_node),
                "write - {duration: 30s, users: 10} lines",
            )  # fmt: skip
        stages = tuple(self.stage(i, node) for i, node in enumerate(stages_node.value))
        first = stages[0].kind
        for i, s in enumerate(stages):
            if s.kind != first:
                raise StagesError(
                    self.name, s.line, f"stages[{i}].{s.kind}", f"mixes {s.kind} with {first}", s.kind,
                    "a file drives either users (closed loop) or the request rate (open loop): use one",
                )  # fmt: skip
        return StagesFile(self.name, stages, **settings)

    def stage(self, i: int, node: yaml.Node) -> StageSpec:
        where = f"stages[{i}]"
        keys = self.mapping(node, where, STAGE_KEYS)
        if "duration" not in keys:
            raise self.fail(
                node, f"{where}.duration", "missing", None, "add duration: 30s (or N% of --run-time)"
            )
        targets = [k for k in (USERS, RATE) if k in keys]
        if len(targets) != 1:
            raise self.fail(
                node, f"{where}.{'/'.join(targets) or 'users'}",
                "needs exactly one target" if targets else "missing target", "both" if targets else None,
                "give users: N (closed loop) or rate: R (requests/s), not both",
            )  # fmt: skip
        kind = targets[0]
        duration = self.seconds(keys["duration"][1], f"{where}.duration", percent=True)
        if duration.value <= 0:
            raise self.fail(
                keys["duration"][1],
                f"{where}.duration",
                "must be > 0",
                self.value(keys["duration"][1]),
                "use e.g. 30s",
            )
        target = self.amount(keys[kind][1], f"{where}.{kind}", whole=kind == USERS)
        hold = self.flag(keys["hold"][1], f"{where}.hold") if "hold" in keys else False
        spawn: Amount | str | None = None
        if "spawn_rate" in keys:
            raw = self.value(keys["spawn_rate"][1])
            if raw == "instant":
                spawn = "instant"
            else:
                spawn = self.amount(keys["spawn_rate"][1], f"{where}.spawn_rate", whole=False)
                if spawn.value <= 0:
                    raise self.fail(
                        keys["spawn_rate"][1],
                        f"{where}.spawn_rate",
                        "must be > 0",
                        raw,
                        "use e.g. 5, 50% or instant",
                    )
        weights = self.weights(keys["weights"][1], f"{where}.weights") if "weights" in keys else None
        return StageSpec(node.start_mark.line + 1, duration, kind, target, hold, spawn, weights)

    def seconds(self, node: yaml.Node, field_: str, percent: bool) -> Amount:
        raw = self.value(node)
        fix = "use e.g. 30s, 5m, 1h30m" + (" or N% of --run-time" if percent else "")
        if percent and isinstance(raw, str) and raw.strip().endswith("%"):
            return self._percent(node, field_, raw, fix)
        try:
            seconds = parse_duration(raw)
        except ValueError:
            raise self.fail(node, field_, "not a duration", raw, fix) from None
        if not math.isfinite(seconds) or seconds < 0:
            raise self.fail(node, field_, "not a duration", raw, fix)
        return Amount(seconds)

    def amount(self, node: yaml.Node, field_: str, whole: bool) -> Amount:
        raw = self.value(node)
        fix = "use a number >= 0 or a percentage, e.g. 50%"
        if isinstance(raw, str) and raw.strip().endswith("%"):
            return self._percent(node, field_, raw, fix)
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw) or raw < 0:
            raise self.fail(node, field_, "not a number >= 0", raw, fix)
        if whole and not float(raw).is_integer():
            raise self.fail(
                node, field_, "not a whole number of users", raw, "use a whole number or a percentage"
            )
        return Amount(float(raw))

    def _percent(self, node: yaml.Node, field_: str, raw: str, fix: str) -> Amount:
        try:
            value = float(raw.strip()[:-1])
        except ValueError:
            raise self.fail(node, field_, "not a percentage", raw, fix) from None
        if not math.isfinite(value) or value < 0:
            raise self.fail(node, field_, "not a percentage >= 0", raw, fix)
        return Amount(value, percent=True)

    def flag(self, node: yaml.Node, field_: str) -> bool:
        raw = self.value(node)
        if not isinstance(raw, bool):
            raise self.fail(
                node, field_, "must be true or false", raw, f"write {field_.split('.')[-1]}: true"
            )
        return raw

    def think_time(self, node: yaml.Node) -> tuple[float, float]:
        raw = str(self.value(node)).strip().removesuffix("s")
        low, sep, high = raw.partition("-")
        try:
            bounds = (float(low), float(high.removesuffix("s")) if sep else float(low))
        except ValueError:
            raise self.fail(
                node, "think_time", "not S or MIN-MAX seconds", self.value(node), "use e.g. 1-3"
            ) from None
        if not all(math.isfinite(b) for b in bounds) or bounds[0] < 0 or bounds[1] < bounds[0]:
            raise self.fail(node, "think_time", "needs 0 <= MIN <= MAX", self.value(node), "use e.g. 1-3")
        return bounds

    def weights(self, node: yaml.Node, field_: str) -> dict[str, int]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(
                node, field_, "must be a mapping", self.value(node), "write weights: {chat: 80, models: 20}"
            )
        out: dict[str, int] = {}
        for key_node, value_node in node.value:
            key, raw = self.value(key_node), self.value(value_node)
            if not isinstance(key, str):
                raise self.fail(
                    key_node,
                    field_,
                    "a class name must be text",
                    key,
                    "use chat, batch, models or a class name",
                )
            if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
                raise self.fail(value_node, f"{field_}.{key}", "not a whole number >= 0", raw, "use e.g. 80")
            out[key] = raw
        if out and not any(out.values()):
            raise self.fail(node, field_, "all weights are 0", out, "give at least one class a weight > 0")
        return out


# -- resolving a file against the run's settings -------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One resolved stage: the target goes from ``start`` to ``end`` (a ramp) or is ``end`` throughout
    (``hold``) over [start_s, end_s)."""

    index: int
    line: int
    start_s: float
    end_s: float
    start: float
    end: float
    hold: bool
    spawn_rate: float | None = None
    weights: dict[str, int] | None = field(default=None, compare=True)

    def value_at(self, t: float) -> float:
        if self.hold or self.end_s <= self.start_s:
            return self.end
        return self.start + (self.end - self.start) * (t - self.start_s) / (self.end_s - self.start_s)


@dataclass(frozen=True)
class Timeline:
    kind: str  # USERS or RATE
    spans: tuple[Span, ...]
    source: str = ""
    breakpoint: bool = False
    think_time: tuple[float, float] | None = None

    @property
    def end_s(self) -> float:
        return self.spans[-1].end_s

    def at(self, t: float) -> Span | None:
        """The span running ``t`` seconds into the run; None once the last one has ended."""
        return next((s for s in self.spans if s.start_s <= t < s.end_s), None)

    def rate_plan(self):  # type: ignore[no-untyped-def]
        from loadgate.schedule import RatePlan, Segment

        return RatePlan(
            tuple(Segment(s.start_s, s.end_s, s.end if s.hold else s.start, s.end) for s in self.spans)
        )


def resolve(
    spec: StagesFile,
    *,
    users: int,
    spawn_rate: float,
    run_time_s: float | None,
    request_rate: float | None = None,
    time_scale: float = 1.0,
) -> Timeline:
    """The stages in seconds and absolute targets. In rate mode (``request_rate`` given) a users file of
    percentages drives the rate; absolute users targets then are an error (StagesError)."""
    kind = spec.kind
    if request_rate is not None and kind == USERS:
        if not spec.relative:
            bad = next(s for s in spec.stages if not s.target.percent)
            raise StagesError(
                spec.source, bad.line, f"stages[{spec.stages.index(bad)}].users", "an absolute user count in rate mode",
                bad.target.value, "write rate: R, or users: N% (then a percentage of --request-rate), or drop --request-rate",
            )  # fmt: skip
        kind = RATE
    run_time = run_time_s or spec.default_run_time_s
    spans: list[Span] = []
    at, previous = 0.0, 0.0
    for i, s in enumerate(spec.stages):
        if s.duration.percent and not run_time:
            raise StagesError(
                spec.source, s.line, f"stages[{i}].duration", "a percentage needs a run time", f"{s.duration.value:g}%",
                "give --run-time, or default_run_time: in the file",
            )  # fmt: skip
        seconds = s.duration.of(run_time or 0.0) * time_scale
        if kind == USERS:
            target = (
                float(max(1, math.ceil(s.target.of(users) - 1e-9))) if s.target.percent else s.target.value
            )
        else:
            if s.target.percent and request_rate is None:
                raise StagesError(
                    spec.source, s.line, f"stages[{i}].rate", "a percentage needs --request-rate",
                    f"{s.target.value:g}%", "give --request-rate R, or write rate: R in requests/s",
                )  # fmt: skip
            target = s.target.of(request_rate or 0.0)
        if s.spawn_rate == "instant":
            spawn: float | None = max(float(spawn_rate), float(users))
        elif isinstance(s.spawn_rate, Amount):
            spawn = s.spawn_rate.of(spawn_rate)
        else:
            spawn = None
        span = Span(i, s.line, at, at + seconds, previous, target, s.hold, spawn, s.weights)
        last = spans[-1] if spans else None
        if (
            last is not None and span.hold and last.hold and last.end == span.end
            and last.spawn_rate == span.spawn_rate and last.weights == span.weights
        ):  # fmt: skip
            spans[-1] = replace(last, end_s=span.end_s)  # the same step continued: one step
        else:
            spans.append(span)
        at, previous = at + seconds, target
    return Timeline(kind, tuple(spans), spec.source, spec.breakpoint, spec.think_time)
