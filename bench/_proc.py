"""What the benchmarks read of a running process from Linux /proc, and CPU pinning (taskset)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a running process (its threads included); None without /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin_process(pid: int, cpus: str) -> None:
    """Pin every thread of a running process (the mock) to `cpus`."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True, capture_output=True)
