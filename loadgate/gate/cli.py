"""``check_sla``: judge a Locust run against a threshold file; exit 0 pass, 1 breach, 2 bad input."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from loadgate.gate import report
from loadgate.gate.config import load_config
from loadgate.gate.data import load_run
from loadgate.gate.errors import EXIT_BAD_INPUT, EXIT_BREACH, EXIT_PASS, GateInputError, one_line
from loadgate.gate.evaluate import Evaluation, evaluate

DEFAULT_THRESHOLDS = "sla/thresholds.yaml"
REPO_ROOT = Path(__file__).resolve().parents[2]


class _Parser(argparse.ArgumentParser):
    def error(
        self, message: str
    ) -> NoReturn:  # argparse's own usage errors keep the one-line format and exit 2
        raise GateInputError("check_sla", None, message, " ".join(sys.argv[1:]), "see check_sla --help")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="check_sla", description="Gate a Locust run (--csv PREFIX) on YAML SLA thresholds.")
    parser.add_argument("prefix", help="the --csv PREFIX of the run to judge")
    parser.add_argument(
        "--thresholds", default=DEFAULT_THRESHOLDS, help="threshold YAML (default %(default)s)"
    )
    parser.add_argument(
        "--baseline", metavar="BASE_PREFIX", help="the --csv PREFIX of a baseline run (regression:)"
    )
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report")
    parser.add_argument("--json", metavar="FILE", help="write a JSON report")
    parser.add_argument("--markdown", metavar="FILE", help="write a Markdown report")
    parser.add_argument("--quiet", action="store_true", help="print only breaches and the summary")
    return parser


PACKAGED_THRESHOLDS = Path(__file__).resolve().parents[1] / "data" / "thresholds.yaml"


def thresholds_path(given: str) -> str:
    """The default file is found from any working directory: ./sla/thresholds.yaml, the repository's, or
    the copy shipped inside the package (loadgate/data/thresholds.yaml)."""
    if given != DEFAULT_THRESHOLDS or Path(given).is_file():
        return given
    for candidate in (REPO_ROOT / given, PACKAGED_THRESHOLDS):
        if candidate.is_file():
            return str(candidate)
    return given


def judge(args: argparse.Namespace) -> Evaluation:
    args.thresholds = thresholds_path(args.thresholds)
    config = load_config(args.thresholds)
    if not config.thresholds and not args.baseline:
        raise GateInputError(
            args.thresholds,
            "regression",
            "the file has only regression rules and no --baseline was given, so there is nothing to judge",
            "no --baseline",
            "pass --baseline BASE_PREFIX (a previous run's --csv prefix) or add 'thresholds:'",
        )
    run = load_run(args.prefix, config.warmup_s)
    baseline = load_run(args.baseline, config.warmup_s, role="baseline run") if args.baseline else None
    return evaluate(config, run, baseline)


def write_reports(args: argparse.Namespace, evaluation: Evaluation) -> None:
    outputs = {
        args.junit: lambda: report.junit(evaluation),
        args.json: lambda: report.to_json(evaluation, args.prefix, args.thresholds, args.baseline),
        args.markdown: lambda: report.markdown(evaluation, args.prefix),
    }
    for path, render in outputs.items():
        if path:
            _write(path, render(), append=False)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        _write(step_summary, report.markdown(evaluation, args.prefix), append=True)


def _write(path: str, text: str, append: bool) -> None:
    try:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a" if append else "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as error:
        raise GateInputError(
            path, None, "cannot write report", error.strerror or str(error), "choose a writable path"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Exit 0 pass, 1 breach, 2 no verdict. Every error is one line on stderr: nothing ends in a traceback,
    and nothing unexpected reads as exit 1 (a breach) or 0."""
    try:
        args = build_parser().parse_args(argv)
        evaluation = judge(args)
        sys.stdout.write(report.table(evaluation, quiet=args.quiet))
        write_reports(args, evaluation)
    except GateInputError as error:
        return _fail(error.line())
    except RecursionError:
        return _fail("check_sla: error: input nested too deeply to judge; no verdict")
    except MemoryError:
        return _fail("check_sla: error: out of memory reading the run; no verdict")
    except KeyboardInterrupt:
        return _fail("check_sla: error: interrupted; no verdict")
    except Exception as error:  # a bug, never a verdict: one line, exit 2
        where = _origin(error)
        return _fail(
            f"check_sla: error: internal error {type(error).__name__}: {str(error)[:200]}{where}; no verdict "
            "(please report it with the run's files)"
        )
    return EXIT_BREACH if evaluation.failed else EXIT_PASS


def _fail(line: str) -> int:
    try:
        sys.stderr.write(one_line(line) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return EXIT_BAD_INPUT


def _origin(error: BaseException) -> str:
    """ " at data.py:123" : the innermost loadgate frame, so a report names the code."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "loadgate" in f.filename] or frames
    return f" at {Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else ""
