"""ci/lib/venv.sh, the first-run bootstrap of ci/run_load_gate.sh: what it says while it works.

A stub `python` stands in for the real one (creating a venv and pip-installing take a minute and the
network): it records what it is asked to do, so the test checks the messages and the commands."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from child_env import child_env

from .conftest import ROOT

STUB = """#!/usr/bin/env bash
# stands in for python: `-m venv DIR` makes DIR/bin/python (this stub); `-m pip ...` is recorded
echo "$*" >> "$STUB_LOG"
if [ "$1 $2" = "-m venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
exit 0
"""


def checkout(tmp_path: Path) -> Path:
    """The files venv.sh reads, in a fresh tree without .venv."""
    tree = tmp_path / "tree"
    (tree / "ci" / "lib").mkdir(parents=True)
    shutil.copy(ROOT / "ci" / "lib" / "venv.sh", tree / "ci" / "lib" / "venv.sh")
    for name in ("pyproject.toml", "requirements.txt", "requirements-test.txt"):
        shutil.copy(ROOT / name, tree / name)
    stub = tmp_path / "python"
    stub.write_text(STUB)
    stub.chmod(0o755)
    return tree


def bootstrap(tree: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", '. ci/lib/venv.sh && ensure_venv "" && echo "$LOADGATE_PY"'],
        cwd=tree,
        env=child_env(PYTHON=str(tmp_path / "python"), STUB_LOG=str(tmp_path / "calls.log")),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_first_run_says_what_it_does_and_later_runs_say_nothing(tmp_path):
    tree = checkout(tmp_path)
    first = bootstrap(tree, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.splitlines() == [
        f"loadgate: first run: creating {tree}/.venv with {tmp_path}/python",
        f"loadgate: installing loadgate and its dependencies into .venv (pip install -e '{tree}'; about a "
        "minute the first time)",
        "loadgate: .venv is ready (later runs skip this step until pyproject.toml or requirements*.txt change)",
    ]
    assert first.stdout.strip() == f"{tree}/.venv/bin/python"
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls == [f"-m venv {tree}/.venv", f"-m pip install -q --disable-pip-version-check -e {tree}"]

    again = bootstrap(tree, tmp_path)
    assert again.returncode == 0 and again.stderr == ""
    assert len((tmp_path / "calls.log").read_text().splitlines()) == 2  # nothing installed again
