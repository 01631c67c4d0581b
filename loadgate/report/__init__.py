"""``loadgate report PREFIX``: one self-contained HTML report of a run (opens offline).

    loadgate report results/loadgate                      -> results/report.html
    loadgate report results/loadgate --out run.html --baseline baseline/loadgate
    loadgate report results/loadgate --thresholds sla/thresholds.yaml   (judge now, draw the limits)

Reads files only (never imports Locust or gevent). Exit 0 written, 2 bad input (one line).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from loadgate.contract import EXIT_BAD_INPUT
from loadgate.report.data import ReportInputError, load_capacity, load_run
from loadgate.report.figures import DEFAULT_MAX_POINTS
from loadgate.report.html import Page, render
from loadgate.report.verdict import default_verdict_path, judge, load_verdict_json, same_run

__all__ = ["build_parser", "main", "write_report"]


class _Parser(argparse.ArgumentParser):
    given: list[str] = []

    def error(self, message: str) -> NoReturn:  # argparse's usage errors: one line, exit 2
        raise ReportInputError("arguments", message, " ".join(self.given), "see loadgate report --help")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="loadgate report",
        description="Write the self-contained HTML report of a run (its --csv PREFIX files). Exit 0 written, "
        "2 bad input.",
    )
    parser.add_argument("prefix", help="the --csv PREFIX of the run, e.g. results/loadgate")
    parser.add_argument("--out", metavar="FILE", help="the HTML file (default: report.html beside the run)")
    parser.add_argument(
        "--verdict",
        metavar="FILE",
        help="the gate's JSON verdict (check_sla --json); default: verdict.json beside the run, if present",
    )
    parser.add_argument(
        "--thresholds",
        metavar="FILE",
        help="threshold YAML: judge the run now with the gate and draw each limit (used when no --verdict)",
    )
    parser.add_argument(
        "--baseline", metavar="PREFIX", help="a baseline run's --csv PREFIX: drawn on the same axes, deltas"
    )
    parser.add_argument("--title", help="the report's title (default: loadgate report: PREFIX's name)")
    parser.add_argument(
        "--max-points",
        type=int,
        default=DEFAULT_MAX_POINTS,
        metavar="N",
        help="downsample each chart line to at most N points (default %(default)s)",
    )
    return parser


def build_page(args: argparse.Namespace) -> Page:
    if args.max_points < 10:
        raise ReportInputError(
            "--max-points", "must be at least 10", args.max_points, "pass e.g. --max-points 2000"
        )
    run = load_run(args.prefix)
    baseline = load_run(args.baseline, flag="--baseline") if args.baseline else None
    hint = ""
    notes: list[str] = []
    verdict = None
    if args.verdict:
        verdict = load_verdict_json(args.verdict, "--verdict")
        if not same_run(verdict, args.prefix):
            notes.append(f"{args.verdict} was written for another prefix than {args.prefix}")
    elif args.thresholds:
        verdict = judge(args.prefix, args.thresholds, args.baseline)
    else:
        default = default_verdict_path(args.prefix)
        if Path(default).is_file():
            verdict = load_verdict_json(default, "--verdict")
            if not same_run(verdict, args.prefix):
                hint = f"{default} judged another run; pass --verdict FILE or --thresholds FILE"
                verdict = None
        else:
            hint = f"no {default} beside the run: pass --verdict FILE (check_sla --json) or --thresholds FILE"
    return Page(
        run,
        verdict,
        verdict_hint=hint,
        baseline=baseline,
        capacity=load_capacity(args.prefix),
        title=args.title or "",
        max_points=args.max_points,
        notes=notes,
    )


def default_out(prefix: str) -> str:
    return str(Path(prefix).parent / "report.html")


def write_report(path: str, text: str) -> None:
    """Atomically: a reader (or a CI artifact upload) never sees half a report."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise ReportInputError(
            "--out", "cannot write the report", f"{path}: {error.strerror or error}", "choose a writable path"
        ) from None


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        given = list(sys.argv[1:] if argv is None else argv)
        parser.given = given  # type: ignore[attr-defined]
        args = parser.parse_args(given)
        out = args.out or default_out(args.prefix)
        text = render(build_page(args))
        write_report(out, text)
    except ReportInputError as error:
        sys.stderr.write(error.line() + "\n")
        return EXIT_BAD_INPUT
    print(f"loadgate report: wrote {out} ({len(text.encode('utf-8')) / 1e6:.1f} MB)")
    return 0
