"""Third-party OpenAI-compatible servers from PyPI for the integration tests: a LiteLLM proxy answering with
``mock_response`` (chat and /v1/models, no async or batch), and fakellm (chat only: no /v1/models).

They are installed into their own venv (their dependency pins must not touch loadgate's), reused across
runs: ``LOADGATE_THIRDPARTY_VENV`` or /tmp/loadgate-thirdparty-venv. ``python tests/thirdparty/servers.py``
installs it ahead of the tests (.ci/run does). Servers listen on free loopback ports; no other network.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# Pinned: the versions these tests were written against (a new release may change routes or answers).
PACKAGES = ("litellm[proxy]==1.108.7", "fakellm==0.3.5")
VENV = Path(
    os.environ.get("LOADGATE_THIRDPARTY_VENV") or Path(tempfile.gettempdir()) / "loadgate-thirdparty-venv"
)
MASTER_KEY = "sk-thirdparty-right-key-1234"
MODEL = "mock-chat"
LITELLM_CONFIG = f"""model_list:
  - model_name: {MODEL}
    litellm_params:
      model: openai/{MODEL}
      api_key: not-used
      mock_response: "Hello from the LiteLLM mock proxy: a reply of a few words for loadgate."
      mock_delay: 0.05
general_settings:
  master_key: {MASTER_KEY}
litellm_settings:
  telemetry: false
"""
FAKELLM_CONFIG = "version: 1\ndefaults:\n  fallback: deterministic_echo\nrules: []\n"


class Unavailable(Exception):
    """The packages could not be installed here; str() says why."""


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """The venv with PACKAGES, created or completed once (a lock keeps parallel sessions apart)."""
    marker = VENV / "loadgate-packages.txt"
    wanted = "\n".join(PACKAGES) + "\n"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{VENV}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == wanted and python().exists():
            return python()
        steps = [
            [sys.executable, "-m", "venv", str(VENV)],
            [str(python()), "-m", "pip", "install", "-q", *PACKAGES],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1200)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise Unavailable(f"{' '.join(step[:4])}... failed ({done.returncode}): {last}")
        marker.write_text(wanted)
    return python()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A started server process (its own process group), stopped by PID."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], cwd: Path, ready_path: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"{name}.log"
        cmd = [part.replace("{port}", str(self.port)) for part in cmd]
        # A gateway normally runs on other machines than the load generator; here it shares 2 cores with
        # loadgate, so it yields the CPU first and the generator's own lag (gated) stays the generator's.
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(10)
            )
        self._wait(ready_path)

    def _wait(self, path: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise Unavailable(f"{self.name} did not answer {path} within {timeout:g}s: {self.tail()}")

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        return lines[-1] if lines else "(no output)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOADGATE_", "LOCUST_", "OPENAI_"))}
    env.update(
        {
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the cost map
            "LITELLM_TELEMETRY": "False",
            "LITELLM_MODE": "PRODUCTION",  # no .env loading
            "DISABLE_SCHEMA_UPDATE": "True",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def start_litellm(workdir: Path) -> Server:
    config = workdir / "litellm.yaml"
    config.write_text(LITELLM_CONFIG)
    litellm = str(VENV / "bin" / "litellm")
    cmd = [litellm, "--config", str(config), "--host", "127.0.0.1", "--port", "{port}", "--num_workers", "1"]
    return Server("litellm", cmd, server_env(), workdir, "/health/liveliness")


def start_fakellm(workdir: Path) -> Server:
    config = workdir / "fakellm.yaml"
    config.write_text(FAKELLM_CONFIG)
    env = {**server_env(), "FAKELLM_CONFIG": str(config)}
    cmd = [str(python()), "-m", "uvicorn", "fakellm.server:app", "--host", "127.0.0.1", "--port", "{port}"]
    cmd += ["--no-access-log", "--log-level", "warning"]
    return Server("fakellm", cmd, env, workdir, "/openapi.json")


if __name__ == "__main__":
    try:
        print(f"third-party servers ready in {ensure_venv().parent.parent}")
    except Unavailable as e:
        print(f"third-party servers unavailable: {e}", file=sys.stderr)
        sys.exit(1)
