"""Mock configuration: YAML (or dict) -> validated, immutable settings.

Every key has a default, so an empty file is a valid config. Unknown keys and bad values raise
MockConfigError naming the key, the value and the fix: a typo must never silently fall back to a
default.
"""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILES_DIR = Path(__file__).parent / "profiles"
DEFAULT_PROFILE = PROFILES_DIR / "default.yaml"

# sigma of a lognormal from its median and p95: p95 = median * exp(1.645 * sigma)
Z95 = 1.6448536269514722


class MockConfigError(ValueError):
    """A config file or value the mock cannot run with."""


@dataclass(frozen=True)
class Distribution:
    """A non-negative random quantity: fixed, uniform(min, max) or lognormal(median, p95)."""

    kind: str
    a: float  # fixed value | uniform min | lognormal mu
    b: float = 0.0  # uniform max | lognormal sigma
    low: float = 0.0  # clamp after drawing
    high: float = math.inf

    def draw(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            value = self.a
        elif self.kind == "uniform":
            value = rng.uniform(self.a, self.b)
        else:
            value = rng.lognormvariate(self.a, self.b)
        return min(max(value, self.low), self.high)


@dataclass(frozen=True)
class ModelConfig:
    id: str
    ttft: Distribution  # seconds
    tokens_per_s: float  # 0 = no decode delay
    output_tokens: Distribution
    prefill_tokens_per_s: float = 0.0  # 0 = TTFT does not depend on the prompt length
    owned_by: str = "loadgate"


@dataclass(frozen=True)
class CapacityConfig:
    slots: int = 64
    queue: int = 256
    overload_status: int = 503
    batching_slowdown: float = 0.02
    prefill_slowdown: float = 0.0


@dataclass(frozen=True)
class RateLimitConfig:
    requests_per_minute: int = 0  # 0 = unlimited
    tokens_per_minute: int = 0

    @property
    def enabled(self) -> bool:
        return self.requests_per_minute > 0 or self.tokens_per_minute > 0


@dataclass(frozen=True)
class FaultConfig:
    error_5xx: float = 0.0
    stall: float = 0.0
    cut: float = 0.0
    malformed_chunk: float = 0.0
    slow_header: float = 0.0
    job_failure: float = 0.0
    error_5xx_status: int = 500
    stall_seconds: float = 30.0
    slow_header_seconds: float = 5.0

    # Request faults are mutually exclusive: one uniform draw picks at most one of them.
    REQUEST_FAULTS = ("error_5xx", "stall", "cut", "malformed_chunk", "slow_header")

    def pick(self, rng: random.Random) -> str | None:
        if not self.any_request_fault:
            return None
        u = rng.random()
        for name in self.REQUEST_FAULTS:
            rate = getattr(self, name)
            if u < rate:
                return name
            u -= rate
        return None

    @property
    def any_request_fault(self) -> bool:
        return any(getattr(self, name) > 0 for name in self.REQUEST_FAULTS)


@dataclass(frozen=True)
class JobsConfig:
    workers: int = 16
    queue: int = 100_000
    max_batch_lines: int = 50_000


@dataclass(frozen=True)
class EndpointsConfig:
    models: bool = True
    chat: bool = True
    async_: bool = True
    batch: bool = True
    model_by_id: bool = True  # GET /v1/models/{id} (false: only the list, as some servers have)


@dataclass(frozen=True)
class MockConfig:
    models: dict[str, ModelConfig]
    capacity: CapacityConfig = field(default_factory=CapacityConfig)
    auth_keys: frozenset[str] = frozenset()
    rate_limits: RateLimitConfig = field(default_factory=RateLimitConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    jobs: JobsConfig = field(default_factory=JobsConfig)
    endpoints: EndpointsConfig = field(default_factory=EndpointsConfig)
    usage: bool = True
    tokens_per_chunk: int = 1  # streamed: tokens per content chunk (OpenAI and vLLM send 1)
    chars_per_chunk: int = 0  # streamed: > 0 splits the text into chunks of this many characters instead
    seed: int | None = None
    max_body_bytes: int = 1_048_576
    source: str = "<dict>"


# ---------------------------------------------------------------- parsing helpers


class _Reader:
    """Reads one mapping of the config, tracking the dotted path for error messages."""

    def __init__(self, data: Any, path: str, source: str):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise MockConfigError(f"{source}: {path or 'top level'}: expected a mapping (got {_show(data)})")
        self.data = data
        self.path = path
        self.source = source
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, what: str, value: Any, fix: str) -> MockConfigError:
        return MockConfigError(f"{self.source}: {self.key(name)}: {what} (got {_show(value)}); {fix}")

    def get(self, name: str, default: Any = None) -> Any:
        self.seen.add(name)
        return self.data.get(name, default)

    def number(self, name: str, default: float, *, low: float = 0.0, high: float = math.inf) -> float:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise self.fail(name, "must be a number", value, f"use a value in [{low}, {high}]")
        return float(value)

    def integer(self, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
            bound = f"[{low}, {high}]" if high else f">= {low}"
            raise self.fail(name, "must be an integer", value, f"use an integer {bound}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false", value, "write true or false")
        return value

    def child(self, name: str) -> _Reader:
        return _Reader(self.get(name), self.key(name), self.source)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            known = ", ".join(sorted(self.seen))
            raise self.fail(unknown[0], "unknown key", unknown[0], f"known keys here: {known}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _distribution(r: _Reader, name: str, default: Any, *, integer: bool) -> Distribution:
    raw = r.get(name, default)
    low = 1.0 if integer else 0.0
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        if raw < low:
            raise r.fail(name, f"must be >= {low:g}", raw, "use a non-negative number")
        return Distribution("fixed", float(raw), low=low)
    d = _Reader(raw, r.key(name), r.source)
    kind = d.get("distribution", "lognormal" if "median" in d.data else None)
    floor = d.number("min", low, low=low)
    ceiling = d.number("max", math.inf, low=floor)
    if kind == "fixed":
        dist = Distribution("fixed", d.number("value", 0.0, low=low), low=floor, high=ceiling)
    elif kind == "uniform":
        lo, hi = d.number("min", low, low=low), d.number("max", math.inf, low=low)
        if math.isinf(hi):
            raise d.fail("max", "uniform needs a finite max", hi, "set max")
        dist = Distribution("uniform", lo, hi, low=floor, high=ceiling)
    elif kind == "lognormal":
        median = d.number("median", 1.0, low=1e-9)
        p95 = d.number("p95", median, low=median)
        dist = Distribution("lognormal", math.log(median), math.log(p95 / median) / Z95, floor, ceiling)
    else:
        raise d.fail("distribution", "unknown distribution", kind, "use fixed, uniform or lognormal")
    d.finish()
    return dist


def _model(model_id: str, raw: Any, source: str) -> ModelConfig:
    r = _Reader(raw, f"models.{model_id}", source)
    model = ModelConfig(
        id=model_id,
        ttft=_distribution(r, "ttft", {"median": 0.2, "p95": 0.6}, integer=False),
        tokens_per_s=r.number("tokens_per_s", 50.0),
        output_tokens=_distribution(r, "output_tokens", {"median": 100, "p95": 400}, integer=True),
        prefill_tokens_per_s=r.number("prefill_tokens_per_s", 0.0),
        owned_by=str(r.get("owned_by", "loadgate")),
    )
    r.finish()
    return model


def _auth_keys(r: _Reader) -> frozenset[str]:
    keys = r.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise r.fail("keys", "must be a list of non-empty strings", keys, "e.g. keys: [sk-test-1]")
    env_name = r.get("keys_env")
    if env_name is not None:
        if not isinstance(env_name, str) or not env_name:
            raise r.fail(
                "keys_env", "must be an environment variable name", env_name, "e.g. LOADGATE_MOCK_KEYS"
            )
        keys = keys + [k.strip() for k in os.environ.get(env_name, "").split(",") if k.strip()]
    r.finish()
    return frozenset(keys)


def parse_config(data: Any, source: str = "<dict>") -> MockConfig:
    """Validate a config mapping (already parsed YAML) into a MockConfig."""
    top = _Reader(data, "", source)
    models_raw = top.get("models")
    if models_raw is None:
        models_raw = load_yaml(DEFAULT_PROFILE)["models"]
    if not isinstance(models_raw, dict) or not models_raw:
        raise top.fail(
            "models",
            "must map at least one model id to its settings",
            models_raw,
            "e.g. models: {my-model: {tokens_per_s: 50}}",
        )
    models = {str(mid): _model(str(mid), raw, source) for mid, raw in models_raw.items()}

    cap = top.child("capacity")
    capacity = CapacityConfig(
        slots=cap.integer("slots", 64, low=1),
        queue=cap.integer("queue", 256),
        overload_status=cap.integer("overload_status", 503, low=429, high=503),
        batching_slowdown=cap.number("batching_slowdown", 0.02),
        prefill_slowdown=cap.number("prefill_slowdown", 0.0),
    )
    if capacity.overload_status not in (429, 503):
        raise cap.fail("overload_status", "must be 429 or 503", capacity.overload_status, "use 429 or 503")
    cap.finish()

    rl = top.child("rate_limits")
    rate_limits = RateLimitConfig(rl.integer("requests_per_minute", 0), rl.integer("tokens_per_minute", 0))
    rl.finish()

    f = top.child("faults")
    faults = FaultConfig(
        **{name: f.number(name, 0.0, high=1.0) for name in (*FaultConfig.REQUEST_FAULTS, "job_failure")},
        error_5xx_status=f.integer("error_5xx_status", 500, low=500, high=599),
        stall_seconds=f.number("stall_seconds", 30.0),
        slow_header_seconds=f.number("slow_header_seconds", 5.0),
    )
    total = sum(getattr(faults, name) for name in FaultConfig.REQUEST_FAULTS)
    if total > 1.0 + 1e-9:
        raise f.fail(
            "error_5xx",
            "request fault rates must sum to at most 1",
            round(total, 6),
            "lower some of error_5xx, stall, cut, malformed_chunk, slow_header",
        )
    f.finish()

    j = top.child("jobs")
    jobs = JobsConfig(
        j.integer("workers", 16, low=1),
        j.integer("queue", 100_000, low=1),
        j.integer("max_batch_lines", 50_000, low=1),
    )
    j.finish()

    e = top.child("endpoints")
    endpoints = EndpointsConfig(
        e.boolean("models", True),
        e.boolean("chat", True),
        e.boolean("async", True),
        e.boolean("batch", True),
        e.boolean("model_by_id", True),
    )
    e.finish()

    seed = top.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise top.fail("seed", "must be an integer or null", seed, "e.g. seed: 42")

    config = MockConfig(
        models=models,
        capacity=capacity,
        auth_keys=_auth_keys(top.child("auth")),
        rate_limits=rate_limits,
        faults=faults,
        jobs=jobs,
        endpoints=endpoints,
        usage=top.boolean("usage", True),
        tokens_per_chunk=top.integer("tokens_per_chunk", 1, low=1),
        chars_per_chunk=top.integer("chars_per_chunk", 0),
        seed=seed,
        max_body_bytes=top.integer("max_body_bytes", 1_048_576, low=1024),
        source=source,
    )
    if config.chars_per_chunk and config.tokens_per_chunk != 1:
        raise top.fail(
            "chars_per_chunk",
            "cannot be combined with tokens_per_chunk",
            config.chars_per_chunk,
            "set one of chars_per_chunk and tokens_per_chunk",
        )
    top.finish()
    return config


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MockConfigError(
            f"{path}: cannot read config ({exc.strerror}); pass an existing YAML file"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise MockConfigError(
            f"{path}{where}: invalid YAML ({getattr(exc, 'problem', exc)}); fix the syntax"
        ) from None


def load_config(path: str | os.PathLike[str] | None = None) -> MockConfig:
    """Load a config file (the shipped default profile when path is None)."""
    file = Path(path) if path is not None else DEFAULT_PROFILE
    return parse_config(load_yaml(file), str(file))
