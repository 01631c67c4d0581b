"""Installed from a wheel into a fresh virtualenv, loadgate works from an empty folder outside the
repository: the console script, the shipped user classes and thresholds, results/ in the current folder.
A missing dependency is one line and exit 2 (never a traceback with exit 1, which reads as a breach)."""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from child_env import child_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv with loadgate installed from a wheel built from this checkout."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"  # a copy: setuptools writes build/ and *.egg-info into the tree it builds
    shutil.copytree(
        ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "results", "*.egg-info")
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check", "-w",
         str(base / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    wheel = next((base / "dist").glob("loadgate-*.whl"))
    venv.create(base / "venv", with_pip=True)
    python = base / "venv" / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return base / "venv" / "bin"


def run(command: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    env = child_env()
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_version_and_help_from_an_empty_folder(installed, tmp_path):
    import locust

    done = run([str(installed / "loadgate"), "--version"], tmp_path)
    assert (done.returncode, done.stdout) == (0, f"loadgate 0.1.0 (locust {locust.__version__})\n")
    for command in ("run", "gate", "mock"):
        done = run([str(installed / "loadgate"), command, "--help"], tmp_path)
        assert done.returncode == 0 and done.stdout.startswith("usage: "), (command, done.stderr)
    done = run([str(installed / "loadgate"), "nope"], tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "loadgate: error: unknown command 'nope'; use one of run, gate, mock, report\n",
    )


def test_the_job_passes_from_an_empty_folder_outside_the_repository(installed, tmp_path):
    """`loadgate run` with every default: the shipped classes and thresholds, the embedded target."""
    assert not str(tmp_path).startswith(str(ROOT))
    done = run([str(installed / "loadgate"), "run"], tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SLA MET" in done.stdout
    results = tmp_path / "results"
    for name in ("loadgate_stats.csv", "loadgate_llm_stats.csv", "loadgate_llm_summary.json", "verdict.json"):
        assert (results / name).is_file(), name
    assert set(os.listdir(tmp_path)) == {"results"}  # nothing else written outside results/


def test_a_missing_dependency_is_one_line_and_exit_2(installed, tmp_path):
    python = installed / "python"
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "-y", "-q", "pandas"], check=True, capture_output=True
    )
    try:
        done = run([str(installed / "loadgate"), "gate", "results/loadgate"], tmp_path)
        assert done.returncode == 2
        assert done.stderr == (
            "loadgate: error: missing dependency 'pandas'; install loadgate with its dependencies "
            "(pip install loadgate, or pip install -e . in a clone)\n"
        )
    finally:  # other tests of the session share the venv
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pandas"], check=True, capture_output=True)
