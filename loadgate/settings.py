"""loadgate's command-line settings (Locust custom arguments) and their validated form.

Every setting has one home: a Locust custom argument registered on ``init_command_line_parser``, so it
can be given on the command line, in ``locust.conf`` (key without dashes), as an environment variable
(``LOADGATE_*``), and in the web UI's custom parameters. :func:`load` turns the parsed options into a
:class:`Settings`, failing with one clear line naming the setting, the value and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from loadgate.durations import parse_duration
from loadgate.metrics import GoodputTargets, parse_goodput

BATCH_MODES = ("async", "batch", "both")
EXIT_BAD_SETTING = 2  # argparse's own code for a bad command line


class SettingError(ValueError):
    """A setting with a bad value; str() is the one-line message for the user."""


# (flag, env var, default, help, shown in web UI). Defaults are strings, parsed by load().
ARGUMENTS: list[tuple[str, str, str, str, bool]] = [
    ("--chat-weight", "LOADGATE_CHAT_WEIGHT", "85", "ChatUser class weight", True),
    ("--batch-weight", "LOADGATE_BATCH_WEIGHT", "5", "BatchUser class weight", True),
    ("--models-weight", "LOADGATE_MODELS_WEIGHT", "10", "ModelsUser class weight", True),
    (
        "--think-time",
        "LOADGATE_THINK_TIME",
        "0.5-2",
        "seconds a user waits between tasks: S or MIN-MAX",
        True,
    ),
    (
        "--stream-ratio",
        "LOADGATE_STREAM_RATIO",
        "0.8",
        "share of chat requests sent with stream=true (0..1)",
        True,
    ),
    (
        "--multi-turn-ratio",
        "LOADGATE_MULTI_TURN_RATIO",
        "0.2",
        "share of chat tasks that are multi-turn conversations (0..1)",
        True,
    ),
    ("--turns", "LOADGATE_TURNS", "2-4", "turns per multi-turn conversation: N or MIN-MAX", True),
    (
        "--models",
        "LOADGATE_MODELS",
        "",
        "comma-separated model ids; empty = discover from GET /v1/models",
        True,
    ),
    (
        "--prompt-file",
        "LOADGATE_PROMPT_FILE",
        "",
        "JSONL prompt set; empty = the shipped loadgate/data/prompts.jsonl",
        True,
    ),
    ("--max-tokens", "LOADGATE_MAX_TOKENS", "32-128", "max_tokens per request: N or MIN-MAX (uniform)", True),
    ("--batch-mode", "LOADGATE_BATCH_MODE", "both", "BatchUser flow: async | batch | both", True),
    ("--batch-size", "LOADGATE_BATCH_SIZE", "4", "requests per Batch API input file", True),
    ("--poll-interval", "LOADGATE_POLL_INTERVAL", "0.5s", "first wait between job status polls", True),
    (
        "--poll-backoff",
        "LOADGATE_POLL_BACKOFF",
        "1.5",
        "poll wait multiplier after each non-terminal poll (>= 1)",
        True,
    ),
    ("--poll-max-interval", "LOADGATE_POLL_MAX_INTERVAL", "5s", "longest wait between polls", True),
    (
        "--job-timeout",
        "LOADGATE_JOB_TIMEOUT",
        "120s",
        "a job not terminal after this long is reported lost",
        True,
    ),
    (
        "--request-timeout",
        "LOADGATE_REQUEST_TIMEOUT",
        "60s",
        "per-request network timeout (connect and each read)",
        True,
    ),
    ("--goodput", "LOADGATE_GOODPUT", "", "goodput targets in ms, e.g. ttft:500,tpot:50,e2e:10000", True),
    ("--warmup", "LOADGATE_WARMUP", "0s", "warm-up: reset all stats this long after the test starts", True),
]


def add_arguments(parser: Any) -> None:
    """Register every setting on Locust's parser (``init_command_line_parser`` listener)."""
    # on the parser itself: Locust's include_in_web_ui only exists there, not on argument groups
    for flag, env_var, default, help_text, in_ui in ARGUMENTS:
        parser.add_argument(
            flag,
            type=str,
            default=default,
            env_var=env_var,
            include_in_web_ui=in_ui,
            help=f"{help_text} (default: {default or 'empty'}; env {env_var})",
        )


def parse_int_range(value: str) -> tuple[int, int]:
    """ "64" -> (64, 64); "32-128" -> (32, 128)."""
    low, sep, high = str(value).strip().partition("-")
    try:
        bounds = (int(low), int(high) if sep else int(low))
    except ValueError:
        raise ValueError(f"{value!r} is not N or MIN-MAX (integers)") from None
    if bounds[0] < 1 or bounds[1] < bounds[0]:
        raise ValueError(f"{value!r} needs 1 <= MIN <= MAX")
    return bounds


def parse_float_range(value: str) -> tuple[float, float]:
    """ "1.5" -> (1.5, 1.5); "0.5-2" -> (0.5, 2.0); a trailing "s" is allowed."""
    low, sep, high = str(value).strip().removesuffix("s").partition("-")
    try:
        bounds = (float(low), float(high.removesuffix("s")) if sep else float(low))
    except ValueError:
        raise ValueError(f"{value!r} is not S or MIN-MAX (seconds)") from None
    if bounds[0] < 0 or bounds[1] < bounds[0]:
        raise ValueError(f"{value!r} needs 0 <= MIN <= MAX")
    return bounds


@dataclass(frozen=True)
class Settings:
    chat_weight: int
    batch_weight: int
    models_weight: int
    think_time_s: tuple[float, float]
    stream_ratio: float
    multi_turn_ratio: float
    turns: tuple[int, int]
    models: tuple[str, ...]
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


def _field(options: Any, flag: str) -> str:
    value = getattr(options, flag[2:].replace("-", "_"), None)
    if value is None:
        default = next(a[2] for a in ARGUMENTS if a[0] == flag)
        return default
    return str(value)


def load(options: Any) -> Settings:
    """Validate the parsed options; raise SettingError naming the first bad setting."""

    def get(flag: str, parse, check=None, fix: str = ""):
        raw = _field(options, flag)
        try:
            value = parse(raw)
        except ValueError as e:
            raise SettingError(f"{flag} {raw!r}: {e}") from None
        if check is not None and not check(value):
            raise SettingError(f"{flag} {raw!r}: {fix}")
        return value

    ratio = (lambda v: 0.0 <= v <= 1.0, "must be a number from 0 to 1")
    weight = (lambda v: v >= 0, "must be an integer >= 0")
    positive = (lambda v: v > 0, "must be > 0")
    return Settings(
        chat_weight=get("--chat-weight", int, *weight),
        batch_weight=get("--batch-weight", int, *weight),
        models_weight=get("--models-weight", int, *weight),
        think_time_s=get("--think-time", parse_float_range),
        stream_ratio=get("--stream-ratio", float, *ratio),
        multi_turn_ratio=get("--multi-turn-ratio", float, *ratio),
        turns=get("--turns", parse_int_range),
        models=tuple(m.strip() for m in _field(options, "--models").split(",") if m.strip()),
        prompt_file=_field(options, "--prompt-file").strip(),
        max_tokens=get("--max-tokens", parse_int_range),
        batch_mode=get("--batch-mode", str.strip, lambda v: v in BATCH_MODES, "use async, batch or both"),
        batch_size=get("--batch-size", int, lambda v: 1 <= v <= 50000, "must be an integer from 1 to 50000"),
        poll_interval_s=get("--poll-interval", parse_duration, *positive),
        poll_backoff=get("--poll-backoff", float, lambda v: v >= 1.0, "must be >= 1 (1 = fixed interval)"),
        poll_max_interval_s=get("--poll-max-interval", parse_duration, *positive),
        job_timeout_s=get("--job-timeout", parse_duration, *positive),
        request_timeout_s=get("--request-timeout", parse_duration, *positive),
        goodput=get("--goodput", parse_goodput),
        warmup_s=get("--warmup", parse_duration),
    )


def api_key() -> str | None:
    """The API key, from ``OPENAI_API_KEY`` only (the OpenAI SDK's convention); None when unset."""
    return os.environ.get("OPENAI_API_KEY") or None
