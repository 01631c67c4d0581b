"""The ``loadgate`` command: one face for the job, the gate, the embedded target and the report.

    loadgate --version
    loadgate run [options]        the CI job (= bash ci/run_load_gate.sh)
    loadgate gate PREFIX [opts]   the SLA gate (= python sla/check_sla.py)
    loadgate mock [options]       the embedded target (= python -m loadgate.mock)
    loadgate report PREFIX        the HTML report of a run

Each subcommand's module is imported only when it runs, so a missing dependency is reported as one
line naming the package, exit 2 (never a traceback with exit 1, which would read as "SLA breached").
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

import loadgate
from loadgate.contract import EXIT_BAD_INPUT

# subcommand -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "loadgate.job",
        "run the CI job: target up, headless Locust, the SLA gate (see: loadgate run --help)",
    ),
    "gate": ("loadgate.gate", "gate a run's CSVs on SLA thresholds (see: loadgate gate --help)"),
    "mock": (
        "loadgate.mock.__main__",
        "serve the embedded OpenAI-compatible target (see: loadgate mock --help)",
    ),
    "report": (
        "loadgate.report",
        "write the self-contained HTML report of a run (see: loadgate report --help)",
    ),
}


def version_line() -> str:
    try:
        locust_version = metadata.version("locust")
    except metadata.PackageNotFoundError:
        locust_version = "not installed"
    return f"loadgate {loadgate.__version__} (locust {locust_version})"


def usage() -> str:
    lines = ["usage: loadgate [--version] {" + ",".join(COMMANDS) + "} ...", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def load_main(module: str) -> Callable[[list[str]], int]:
    """The module's main(), or exit 2 with one line when a dependency is missing."""
    try:
        return importlib.import_module(module).main
    except ModuleNotFoundError as e:
        missing = (e.name or str(e)).split(".")[0]
        sys.stderr.write(
            f"loadgate: error: missing dependency '{missing}'; install loadgate with its dependencies "
            "(pip install loadgate, or pip install -e . in a clone)\n"
        )
        raise SystemExit(EXIT_BAD_INPUT) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else EXIT_BAD_INPUT
    if args[0] in ("-V", "--version"):
        print(version_line())
        return 0
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        sys.stderr.write(f"loadgate: error: unknown command {command!r}; use one of {', '.join(COMMANDS)}\n")
        return EXIT_BAD_INPUT
    module, _ = COMMANDS[command]
    return int(load_main(module)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
