"""Workloads: synthetic prompts of a requested length in tokens, ShareGPT datasets, seeded users, and the
tally of the input/output lengths the server reports (docs/traffic.md "Workloads").

Synthetic prompts are words of :data:`WORDS`: each is a space and three lowercase letters, so 4 characters
and 1 token for cl100k-style tokenizers (tested) and for the ``ceil(chars / 4)`` count of the
embedded mock. The server's own count (``usage.prompt_tokens``) is the check: every answer's is tallied
(:class:`LengthTally`), and a fixed difference (a chat template's tokens) is learned from the first answers
and taken off later prompts (:class:`Calibration`). Imports neither Locust nor gevent.
"""

from __future__ import annotations

import json
import logging
import random
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgate.options import Lengths, Settings
from loadgate.prompts import Prompt, PromptFileError, PromptSet

logger = logging.getLogger("loadgate")

# One token each (with their leading space) in cl100k_base: tests/traffic/test_workload.py checks it
_WORD_LIST = (
    "the and for are but not you all any can had her was one our out day get has him his how man new now "
    "old see two way who boy did its let put say she too use act add age ago aid aim air art ask bad bag "
    "bar bed big bit box bus buy car cat cup cut dog dry ear eat egg end eye far fat few fit fix fly fun "
    "gas gun hat hit hot ice job key kid law lay leg lie lot low map mix net oil own pay pen pet pie pop "
    "raw red row run sad sea set sit six sky son sun tax tea ten tie tip top toy try war web win yes yet"
)
WORDS = tuple(_WORD_LIST.split(" "))
CALIBRATION_SAMPLES = 5  # answers with usage before the chat template's offset is learned
OFF_LIMIT = 0.10  # warn when the achieved input mean is further than this from the requested mean


def words(rng: random.Random, tokens: int) -> str:
    """``tokens`` words of :data:`WORDS`, each with its leading space: 4 * tokens characters."""
    return "".join(" " + rng.choice(WORDS) for _ in range(tokens))


def seeded_rng(seed: int | None, *where: object) -> random.Random:
    """A user's random source: from ``seed`` and where the user is (worker index, class, user number), so
    a run with the same seed and shape makes the same choices; unseeded without --seed."""
    if seed is None:
        return random.Random()
    return random.Random(":".join(str(part) for part in ("loadgate", seed, *where)))


# -- the chat template's offset ---------------------------------------------------------------------------


@dataclass
class Calibration:
    """Learns the fixed number of tokens the server adds to a prompt's text (chat template, BOS) from the
    first answers' ``usage.prompt_tokens``, so later prompts are shortened by it (once per process)."""

    offset: int = 0
    learned: bool = False
    seen: list[int] = field(default_factory=list)

    def observe(self, text_tokens: int, prompt_tokens: int) -> None:
        if self.learned:
            return
        self.seen.append(prompt_tokens - text_tokens)
        if len(self.seen) >= CALIBRATION_SAMPLES:
            self.offset, self.learned = round(statistics.median(self.seen)), True
            if self.offset:
                logger.info(
                    "loadgate: the server counts %+d tokens beyond a synthetic prompt's text (its chat "
                    "template); later prompts are %s by that to match --input-tokens",
                    self.offset,
                    "shortened" if self.offset > 0 else "lengthened",
                )


# -- prompt sources -------------------------------------------------------------------------------------


class SyntheticPrompts:
    """PromptSet's interface over generated prompts: a shared prefix (the same in every process), then
    words drawn by the user's rng up to the requested length."""

    def __init__(self, lengths: Lengths, prefix_tokens: int = 0) -> None:
        self.lengths = lengths
        self.prefix_tokens = prefix_tokens
        self.prefix = words(random.Random("loadgate-shared-prefix"), prefix_tokens)
        self.calibration = Calibration()
        shared = f" after a shared prefix of {prefix_tokens}" if prefix_tokens else ""
        self.source = f"synthetic prompts of {lengths.text()} input tokens{shared}"

    def __len__(self) -> int:
        return 0  # generated, not listed

    def sample(self, rng: random.Random) -> Prompt:
        requested = self.prefix_tokens + self.lengths.draw(rng)
        unique = max(1, requested - self.prefix_tokens - self.calibration.offset)
        text = self.prefix + words(rng, unique)
        return Prompt(
            ({"role": "user", "content": text.lstrip()},),
            input_tokens=requested,
            text_tokens=self.prefix_tokens + unique,
        )

    def observe(self, prompt: Prompt, prompt_tokens: int | None) -> None:
        if prompt.text_tokens is not None and prompt_tokens is not None:
            self.calibration.observe(prompt.text_tokens, prompt_tokens)


Prompts = PromptSet | SyntheticPrompts


def load_prompts(
    prompt_file: str,
    dataset: tuple[str, str] | None,
    input_tokens: Lengths | None,
    prefix_tokens: int,
    count: Callable[[str], int],
) -> Prompts:
    """The run's prompt source; PromptFileError (one line) for a bad file or a conflict. ``count`` counts
    a text's tokens (ShareGPT answers' lengths)."""
    if dataset and prompt_file:
        raise PromptFileError("--dataset: replaces --prompt-file; give one of them")
    if input_tokens is not None and (dataset or prompt_file):
        given = "--dataset" if dataset else "--prompt-file"
        raise PromptFileError(f"--input-tokens: synthetic prompts replace {given}; give one of them")
    if input_tokens is not None:
        return SyntheticPrompts(input_tokens, prefix_tokens)
    if prefix_tokens:
        raise PromptFileError("--shared-prefix-tokens: only with --input-tokens (synthetic prompts)")
    if dataset and dataset[0] == "sharegpt":
        return load_sharegpt(dataset[1], count)
    return PromptSet.load((dataset[1] if dataset else prompt_file) or None)


def prompts_for(settings: Settings, count: Callable[[str], int]) -> Prompts:
    """The prompt source the settings name (load_prompts)."""
    return load_prompts(
        settings.prompt_file, settings.dataset, settings.input_tokens, settings.shared_prefix_tokens, count
    )


def source_of(settings: Settings) -> tuple[Any, ...]:
    """What the prompt source depends on: a new test reloads it only when this changed."""
    return (settings.prompt_file, settings.dataset, settings.input_tokens, settings.shared_prefix_tokens)


def describe(settings: Settings, prompts: Prompts) -> dict[str, Any]:
    """What the requests carried, for PREFIX_loadgate.json (extra body: its keys only, values may be
    credentials)."""
    out = settings.output_tokens
    return {
        "prompts": prompts.source,
        "input_tokens": settings.input_tokens.text() if settings.input_tokens else None,
        "shared_prefix_tokens": settings.shared_prefix_tokens,
        "output_tokens": out.text() if out else None,
        "ignore_eos": settings.ignore_eos,
        "min_tokens": settings.min_tokens,
        "seed": settings.seed,
        "extra_body_keys": sorted(settings.extra_body or {}),
    }


# -- ShareGPT ------------------------------------------------------------------------------------------

HUMAN, GPT, SYSTEM = ("human", "user"), ("gpt", "assistant", "chatgpt", "bard", "bing"), ("system",)
SHAREGPT_FIX = 'each entry is {"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", ...}]}'


def load_sharegpt(path: str, count: Callable[[str], int]) -> PromptSet:
    """A ShareGPT JSON list: each entry's first human turn is a prompt (after any system turn before it),
    the next gpt turn's length in tokens its max_tokens (as vLLM's benchmark does). Entries without a
    human turn are skipped; a malformed one is a PromptFileError naming the entry."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as e:
        raise PromptFileError(f"{file}: cannot read dataset file ({e.strerror}); check --dataset") from None
    except json.JSONDecodeError as e:
        raise PromptFileError(
            f"{file}:{e.lineno}: invalid JSON ({e.msg}); a ShareGPT file is one JSON list"
        ) from None
    if not isinstance(data, list):
        raise PromptFileError(f"{file}: expected a JSON list of conversations; {SHAREGPT_FIX}")
    prompts = [p for i, entry in enumerate(data) if (p := _conversation(file, i, entry, count)) is not None]
    if not prompts:
        raise PromptFileError(f"{file}: no conversation with a human turn; {SHAREGPT_FIX}")
    return PromptSet(prompts, f"{file} (ShareGPT)")


def _conversation(file: Path, i: int, entry: Any, count: Callable[[str], int]) -> Prompt | None:
    where = f"{file}: entry [{i}]"
    turns = entry.get("conversations") if isinstance(entry, dict) else None
    if not isinstance(turns, list):
        raise PromptFileError(f"{where}: no 'conversations' list; {SHAREGPT_FIX}")
    for j, turn in enumerate(turns):
        if (
            not isinstance(turn, dict)
            or str(turn.get("from", "")).lower() not in HUMAN + GPT + SYSTEM
            or not isinstance(turn.get("value"), str)
        ):
            raise PromptFileError(
                f'{where}: conversations[{j}] must be {{"from": "human", "gpt" or "system", "value": string}}'
            )
    roles = [str(t["from"]).lower() for t in turns]
    first = next((j for j, role in enumerate(roles) if role in HUMAN and turns[j]["value"]), None)
    if first is None:
        return None
    system = [{"role": "system", "content": t["value"]} for t in turns[:first] if t["from"] in SYSTEM]
    answer = turns[first + 1]["value"] if first + 1 < len(turns) and roles[first + 1] in GPT else ""
    return Prompt(
        (*system, {"role": "user", "content": turns[first]["value"]}),
        max_tokens=max(1, count(answer)) if answer else None,
    )


# -- the lengths the server reports -------------------------------------------------------------------


def _distribution(counts: Counter[int]) -> dict[str, Any] | None:
    """mean, p50, p99, min, max of a histogram {length: answers} (nearest-rank percentiles)."""
    n = sum(counts.values())
    if not n:
        return None
    ordered = sorted(counts.items())

    def percentile(fraction: float) -> int:
        rank, seen = max(1, -(-n * fraction // 1)), 0
        for length, k in ordered:
            seen += k
            if seen >= rank:
                return length
        return ordered[-1][0]

    mean = sum(length * k for length, k in ordered) / n
    return {
        "answers": n,
        "mean": round(mean, 2),
        "p50": percentile(0.5),
        "p99": percentile(0.99),
        "min": ordered[0][0],
        "max": ordered[-1][0],
    }


@dataclass
class LengthTally:
    """Input lengths (the server's usage.prompt_tokens) and output lengths (usage.completion_tokens, else
    the counted text) of the answers, with what was requested; histograms, so workers' tallies add up."""

    inputs: Counter[int] = field(default_factory=Counter)
    outputs: Counter[int] = field(default_factory=Counter)
    requested_in: int = 0  # sum of the requested input lengths (synthetic prompts' first turns)
    requested_in_n: int = 0
    achieved_in: int = 0  # sum of prompt_tokens of those same answers
    requested_out: int = 0  # sum of the max_tokens sent
    requested_out_n: int = 0

    def record(
        self, prompt_tokens: int | None, output_tokens: int, requested_in: int | None, max_tokens: int | None
    ) -> None:
        if prompt_tokens is not None:
            self.inputs[prompt_tokens] += 1
            if requested_in is not None:
                self.requested_in += requested_in
                self.requested_in_n += 1
                self.achieved_in += prompt_tokens
        self.outputs[output_tokens] += 1
        if max_tokens is not None:
            self.requested_out += max_tokens
            self.requested_out_n += 1

    def report(self) -> dict[str, Any]:
        """Serializable (msgpack: lists of [length, answers], no int keys)."""
        return {
            "inputs": [[k, v] for k, v in self.inputs.items()],
            "outputs": [[k, v] for k, v in self.outputs.items()],
            **{
                name: getattr(self, name)
                for name in (
                    "requested_in",
                    "requested_in_n",
                    "achieved_in",
                    "requested_out",
                    "requested_out_n",
                )
            },
        }

    def merge(self, data: dict[str, Any] | None) -> None:
        if not data:
            return
        for k, v in data.get("inputs", []):
            self.inputs[int(k)] += int(v)
        for k, v in data.get("outputs", []):
            self.outputs[int(k)] += int(v)
        for name in ("requested_in", "requested_in_n", "achieved_in", "requested_out", "requested_out_n"):
            setattr(self, name, getattr(self, name) + int(data.get(name, 0)))

    def summary(self) -> dict[str, Any]:
        """``input_lengths`` / ``output_lengths`` of PREFIX_llm_summary.json, and the warning when the
        achieved input mean is off the requested one by more than :data:`OFF_LIMIT`."""
        inputs, outputs = _distribution(self.inputs), _distribution(self.outputs)
        requested = self.requested_in / self.requested_in_n if self.requested_in_n else None
        achieved = self.achieved_in / self.requested_in_n if self.requested_in_n else None
        if inputs is not None:
            inputs["requested_mean"] = None if requested is None else round(requested, 2)
            inputs["achieved_mean_of_requested"] = None if achieved is None else round(achieved, 2)
        if outputs is not None:
            outputs["max_tokens_mean"] = (
                round(self.requested_out / self.requested_out_n, 2) if self.requested_out_n else None
            )
        warning = None
        if requested and achieved is not None and abs(achieved - requested) > OFF_LIMIT * requested:
            warning = (
                f"the server counted {achieved:.1f} input tokens per prompt on average, "
                f"{(achieved - requested) / requested:+.0%} off the requested {requested:.1f} (--input-tokens); "
                "its tokenizer splits loadgate's words differently: compare input_lengths in _llm_summary.json"
            )
        return {"input_lengths": inputs, "output_lengths": outputs, "input_length_warning": warning}

    def lines(self) -> list[str]:
        """The console lines of the summary (the warning is logged at the stop)."""
        s = self.summary()
        out = []
        for label, d, asked in (
            ("input tokens per request (server usage.prompt_tokens)", s["input_lengths"], "requested_mean"),
            ("output tokens per answer", s["output_lengths"], "max_tokens_mean"),
        ):
            if d is None:
                continue
            wanted = f"; {asked.replace('_', ' ')} {d[asked]:g}" if d.get(asked) is not None else ""
            out.append(
                f"{label}: mean {d['mean']:g}, p50 {d['p50']}, p99 {d['p99']}, min {d['min']}, max {d['max']} "
                f"({d['answers']} answers){wanted}"
            )
        return out
