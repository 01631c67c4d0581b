"""MockProcess: run `python -m loadgate.mock` as a child process (tests, the Locust plugin, CI).

stdout and stderr go to temporary files, never pipes, so a chatty child can never block on a full pipe;
start() polls stdout for the ready line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from loadgate.mock.config import PROFILES_DIR

READY = re.compile(r"^loadgate mock listening on (http://\S+)$", re.M)


class MockStartError(RuntimeError):
    """The mock did not come up: the message carries its stderr."""


def resolve_profile(value: str | None) -> str | None:
    """A config for the mock: None (default profile), an existing YAML file, or a shipped profile name
    (loadgate/mock/profiles/NAME.yaml). MockStartError names the shipped ones when it is neither."""
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_file():
        return str(path.resolve())
    profile = PROFILES_DIR / f"{value}.yaml"
    if "/" not in value and profile.is_file():
        return str(profile)
    shipped = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))) or "none found"
    raise MockStartError(
        f"no such file or shipped profile (got {value!r}); give a YAML path or one of: {shipped}"
    )


def start_mock(
    config: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    truth_log: str | os.PathLike[str] | None = None,
) -> MockProcess:
    """Start the mock (config: a YAML path or a shipped profile name) and wait until it serves;
    MockStartError with one line (the mock's last stderr line) when it does not come up."""
    mock = MockProcess(config=resolve_profile(config), truth_log=truth_log, host=host, port=port)
    try:
        return mock.start()
    except MockStartError as e:
        mock.stop()
        lines = str(e).strip().splitlines()
        raise MockStartError(f"{lines[0]}{(' ... ' + lines[-1]) if len(lines) > 1 else ''}") from None


class MockProcess:
    """Start/stop the mock as a subprocess; usable as a context manager.

    config: None (default profile), a YAML path, or a dict (written to a temporary YAML file).
    """

    def __init__(
        self,
        config: None | str | os.PathLike[str] | dict[str, Any] = None,
        truth_log: None | str | os.PathLike[str] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        env: dict[str, str] | None = None,
        start_timeout: float = 15.0,
    ):
        self.config = config
        self.truth_log = Path(truth_log) if truth_log is not None else None
        self.host = host
        self.port = port
        self.env = env
        self.start_timeout = start_timeout
        self.url: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def command(self, config_path: str | None) -> list[str]:
        cmd = [sys.executable, "-m", "loadgate.mock", "--host", self.host, "--port", str(self.port)]
        if config_path:
            cmd += ["--config", config_path]
        if self.truth_log is not None:
            cmd += ["--truth-log", str(self.truth_log)]
        return cmd

    def start(self) -> MockProcess:
        if self.proc is not None:
            raise RuntimeError("MockProcess already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="loadgate-mock-")
        tmp = Path(self._tmp.name)
        config_path = None
        if isinstance(self.config, dict):
            config_path = str(tmp / "config.yaml")
            Path(config_path).write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        elif self.config is not None:
            config_path = str(self.config)
        env = {**os.environ, **(self.env or {})}
        self._stdout, self._stderr = tmp / "stdout.txt", tmp / "stderr.txt"
        with open(self._stdout, "wb") as out, open(self._stderr, "wb") as err:
            self.proc = subprocess.Popen(
                self.command(config_path), stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL
            )
        self._wait_ready(self.proc)
        return self

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            match = READY.search(self._stdout.read_text(errors="replace"))
            if match:
                self.url = match.group(1)
                return
            if proc.poll() is not None:
                self._fail(f"exited with code {proc.returncode} before it was ready")
            time.sleep(0.02)
        self.stop()
        self._fail(f"was not ready within {self.start_timeout:g}s")

    def _fail(self, what: str) -> None:
        stderr = self.stderr().strip() or "(no stderr)"
        self._cleanup_tmp()
        raise MockStartError(f"loadgate mock {what}: {stderr}")

    def stderr(self) -> str:
        try:
            return self._stderr.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful: truth log flushed), then kill if it does not exit within `timeout`."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._cleanup_tmp()
        return proc.returncode

    def _cleanup_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> MockProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
