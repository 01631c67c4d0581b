"""The request log's files without Locust: where each worker writes, and the merge into one file.

With ``--request-log FILE`` a local run writes FILE; each worker (master/worker, ``--processes``) writes
its own ``FILE`` with ``.<worker index>`` before ``.jsonl`` (``requests.jsonl`` -> ``requests.0.jsonl``),
and :func:`merge` joins them into FILE, sorted by start time (the job does this after Locust has
quit). The fields of a line: ``FIELDS``, described in docs/running.md#request-log.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

SUFFIX = ".jsonl"
FIELDS = (
    "start",  # epoch s: the request was sent (Locust's start_time)
    "end",  # epoch s: it ended (start + Locust's response time), or was cut off
    "method",  # _stats.csv's Type
    "name",  # _stats.csv's Name
    "model",  # chat requests: the body's model
    "stream",  # chat requests: stream=true
    "outcome",  # ok, failed or cancelled
    "status",  # HTTP status; null without one (connection error, cancelled)
    "failure",  # the failure reason as in _failures.csv; null when ok
    "ttfb_ms",
    "ttft_ms",
    "e2e_ms",
    "output_tokens",
    "token_source",  # server, tokenizer or estimate
    "prompt_tokens",  # usage.prompt_tokens when the server sent it
    "x_request_id",  # the X-Request-Id loadgate sent
    "response_id",  # the answer's "id"
    "server_request_id",  # the server's x-request-id response header, when it sends one
    "intended_start",  # rate mode: epoch s the arrival was due
    "schedule_lag_ms",  # rate mode: how late it started
    "worker",  # the worker's index; null in a local run
)


def worker_path(path: str | Path, worker: int) -> Path:
    """Where worker ``worker`` writes the log named ``path``: requests.jsonl -> requests.3.jsonl."""
    p = Path(path)
    if p.name.endswith(SUFFIX) and len(p.name) > len(SUFFIX):
        return p.with_name(f"{p.name[: -len(SUFFIX)]}.{worker}{SUFFIX}")
    return p.with_name(f"{p.name}.{worker}")


def worker_files(path: str | Path) -> list[Path]:
    """The per-worker files of the log named ``path`` that exist, by worker index."""
    p = Path(path)
    stem, suffix = (p.name[: -len(SUFFIX)], SUFFIX) if p.name.endswith(SUFFIX) else (p.name, "")
    pattern = re.compile(rf"{re.escape(stem)}\.(\d+){re.escape(suffix)}")
    found = []
    if p.parent.is_dir():
        for entry in p.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)), entry))
    return [entry for _, entry in sorted(found)]


def merge(path: str | Path) -> int:
    """Join the per-worker files (and FILE itself, if a local run wrote one) into FILE, sorted by start
    time, and remove the worker files; returns the number of lines, or -1 when there were no worker
    files (FILE is left as it is). A partly written last line (a killed worker) is dropped."""
    parts = worker_files(path)
    if not parts:
        return -1
    p = Path(path)
    rows: list[tuple[float, str]] = []
    for source in ([p] if p.is_file() else []) + parts:
        with open(source, encoding="utf-8") as f:
            for line in f:
                try:
                    start = float(json.loads(line).get("start") or 0.0)
                except (ValueError, AttributeError, TypeError):
                    continue
                rows.append((start, line if line.endswith("\n") else line + "\n"))
    rows.sort(key=lambda row: row[0])
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(line for _, line in rows)
    os.replace(tmp, p)
    for source in parts:
        source.unlink()
    return len(rows)
