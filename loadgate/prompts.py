"""Prompt sets: the shipped one (``loadgate/data/prompts.jsonl``) or a user's own JSONL file.

One JSON object per line (blank lines and lines starting with ``#`` are skipped)::

    {"messages": [{"role": "system", "content": "..."}, {"role": "user", "content": "..."}],
     "max_tokens": 64,                         # optional: overrides --max-tokens for this prompt
     "followups": ["next user turn", "..."]}   # optional: user turns of a multi-turn conversation
    {"prompt": "a bare user message"}          # shorthand for one user message

``messages`` must end with a user message. Multi-turn conversations without ``followups`` use
:data:`DEFAULT_FOLLOWUPS`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHIPPED_PROMPTS = Path(__file__).parent / "data" / "prompts.jsonl"
ROLES = ("system", "user", "assistant", "developer", "tool")
DEFAULT_FOLLOWUPS = (
    "Can you expand on that with one concrete example?",
    "Summarize your previous answer in one sentence.",
    "What would be the main risk with that approach?",
    "Rewrite that as a numbered list.",
)


class PromptFileError(ValueError):
    """A prompt file that cannot be used; str() names the file, line and fix."""


@dataclass(frozen=True)
class Prompt:
    messages: tuple[dict[str, str], ...]
    max_tokens: int | None = None
    followups: tuple[str, ...] = ()
    input_tokens: int | None = None  # synthetic prompts (loadgate.workload): the length requested
    text_tokens: int | None = None  # synthetic prompts: the length of the text sent (after calibration)


class PromptSet:
    def __init__(self, prompts: list[Prompt], source: str) -> None:
        self.prompts = prompts
        self.source = source

    def __len__(self) -> int:
        return len(self.prompts)

    def sample(self, rng: random.Random) -> Prompt:
        return rng.choice(self.prompts)

    @classmethod
    def load(cls, path: str | Path | None = None) -> PromptSet:
        """Load and validate a JSONL prompt file (the shipped set when path is empty)."""
        file = Path(path) if path else SHIPPED_PROMPTS
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise PromptFileError(
                f"{file}: cannot read prompt file ({e.strerror}); check --prompt-file"
            ) from None
        prompts = [
            _parse_line(file, number, line)
            for number, line in enumerate(lines, start=1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not prompts:
            raise PromptFileError(f"{file}: no prompts in file; add one JSON object per line")
        return cls(prompts, str(file))


def _parse_line(file: Path, number: int, line: str) -> Prompt:
    where = f"{file}:{number}"
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise PromptFileError(f"{where}: invalid JSON ({e.msg}); write one JSON object per line") from None
    if not isinstance(obj, dict):
        raise PromptFileError(f"{where}: expected a JSON object with 'messages' or 'prompt'")
    if "prompt" in obj and "messages" not in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"]:
            raise PromptFileError(f"{where}: 'prompt' must be a non-empty string")
        messages: Any = [{"role": "user", "content": obj["prompt"]}]
    else:
        messages = obj.get("messages")
    _check_messages(where, messages)
    max_tokens = obj.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise PromptFileError(f"{where}: 'max_tokens' must be a positive integer (got {max_tokens!r})")
    followups = obj.get("followups", [])
    if not isinstance(followups, list) or not all(isinstance(f, str) and f for f in followups):
        raise PromptFileError(f"{where}: 'followups' must be a list of non-empty strings")
    return Prompt(tuple(dict(m) for m in messages), max_tokens, tuple(followups))


def _check_messages(where: str, messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise PromptFileError(f"{where}: 'messages' must be a non-empty list (or give 'prompt')")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise PromptFileError(
                f'{where}: messages[{i}] must be {{"role": one of {"/".join(ROLES)}, "content": string}}'
            )
    if messages[-1]["role"] != "user":
        raise PromptFileError(
            f"{where}: the last message must have role 'user' (got {messages[-1]['role']!r})"
        )
