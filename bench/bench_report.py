"""How long the HTML report of a long run takes to open in a real browser (Debian chromium).

Builds a synthetic run from a real job's files (tests/report/fixtures/run): the same rows, names and
figures, stretched to a two-hour history with one line per row per second (~160k history rows), writes
its report with ``loadgate report``, and opens it in chromium (Playwright) a few times, printing the
time until the load event and until every chart is drawn, the points per trace and any request that
left the file. Run it under the load lock (it loads the CPU):

    flock /tmp/loadgate-load.lock .venv/bin/python bench/bench_report.py            # 2 h of history
    .venv/bin/python bench/bench_report.py --tiny                                   # 10 min, for a test
    .venv/bin/python bench/bench_report.py --open results/report.html --screenshot docs/img/report.png
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from loadgate import contract
from loadgate.report import main as report_main

ROOT = Path(__file__).resolve().parents[1]

TEMPLATE = ROOT / "tests" / "report" / "fixtures" / "run" / "loadgate"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_HEIGHT = 1700  # px from the top: the verdict, the summary and the first chart
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
COPIED = (contract.STATS_CSV, contract.LLM_STATS_CSV, contract.FAILURES_CSV, contract.LLM_SUMMARY_JSON)


def synthesize(prefix: Path, seconds: int, warmup_s: int, seed: int = 7) -> int:
    """A run of ``seconds`` with the template's rows; returns the number of history rows written."""
    rng = np.random.default_rng(seed)
    for suffix in COPIED:
        shutil.copy(f"{TEMPLATE}{suffix}", f"{prefix}{suffix}")
    start = 1_800_000_000.0
    meta = json.loads(Path(f"{TEMPLATE}{contract.LOADGATE_JSON}").read_text())
    meta.update(
        started_at=start, stats_reset_at=start + warmup_s, stopped_at=start + seconds, warmup_s=warmup_s
    )
    Path(f"{prefix}{contract.LOADGATE_JSON}").write_text(json.dumps(meta, indent=2))
    verdict = json.loads((TEMPLATE.parent / "verdict.json").read_text())
    verdict["prefix"] = str(prefix)
    (prefix.parent / "verdict.json").write_text(json.dumps(verdict, indent=2))
    rows = 0
    for suffix in (contract.STATS_HISTORY_CSV, contract.LLM_STATS_HISTORY_CSV):
        frame = _stretch(
            pd.read_csv(
                f"{TEMPLATE}{suffix}",
                keep_default_na=False,
                na_values=["N/A"],
                dtype={"Type": str, "Name": str},
            ),
            seconds,
            start,
            rng,
        )
        frame.to_csv(f"{prefix}{suffix}", index=False, float_format="%.6g", na_rep="N/A")
        rows += len(frame)
    return rows


def _stretch(template: pd.DataFrame, seconds: int, start: float, rng: np.random.Generator) -> pd.DataFrame:
    """One row per key per second: the key's typical figures with noise, a slow wave and rare spikes."""
    t = np.arange(seconds, dtype=float)
    users = np.minimum(20.0, 1 + t / 3)
    wave = 1 + 0.25 * np.sin(t / 900 * 2 * np.pi)
    parts = []
    for (type_, name), group in template.groupby(["Type", "Name"], sort=False):
        typical = group.tail(max(len(group) // 2, 1)).median(numeric_only=True)
        part = pd.DataFrame({"Timestamp": (start + t).astype(np.int64), "User Count": users.astype(int)})
        part["Type"], part["Name"] = type_, name
        rps = float(typical.get("Requests/s", 0) or 0)
        part["Requests/s"] = np.round(np.maximum(0, rps * wave * rng.normal(1, 0.1, seconds)), 6)
        part["Failures/s"] = np.where(rng.random(seconds) < 0.002, np.round(rps * 0.2, 6), 0.0)
        spikes = np.where(rng.random(seconds) < 0.003, rng.uniform(2, 5, seconds), 1.0)
        for column in [c for c in template.columns if c.endswith("%")]:
            base = float(typical.get(column, 0) or 0)
            part[column] = np.round(base * wave * rng.lognormal(0, 0.08, seconds) * spikes, 2)
        count = np.cumsum(part["Requests/s"].to_numpy())
        part["Total Request Count"] = count.astype(np.int64)
        part["Total Failure Count"] = np.cumsum(part["Failures/s"].to_numpy()).astype(np.int64)
        for column in [c for c in template.columns if c.startswith("Total ") and c not in part]:
            part[column] = typical.get(column, 0)
        parts.append(part[list(template.columns)])
    return pd.concat(parts).sort_values(["Timestamp"], kind="stable")


DRAWN = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const points = plots.flatMap(g => (g._fullData || []).map(t => t._length || 0));
  return new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(() => resolve({
    drawn_ms: performance.now(),
    load_ms: performance.getEntriesByType('navigation')[0].loadEventEnd,
    charts: plots.length,
    traces: points.length,
    max_points: Math.max(0, ...points),
  }))));
}"""


def open_in_chromium(html: Path, loads: int, screenshot: str | None = None) -> list[dict]:
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for _ in range(loads):
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                outside: list[str] = []
                errors: list[str] = []
                page.on(
                    "request",
                    lambda r, out=outside: (
                        out.append(r.url) if not r.url.startswith(("file:", "data:")) else None
                    ),
                )
                page.on("pageerror", lambda e, errs=errors: errs.append(str(e)))
                page.goto(html.as_uri(), wait_until="load", timeout=60_000)
                result = page.evaluate(DRAWN)
                result.update(outside=outside, errors=errors)
                if screenshot and not results:
                    height = min(page.evaluate("document.body.scrollHeight"), SCREENSHOT_HEIGHT)
                    page.screenshot(
                        path=screenshot,
                        full_page=True,
                        clip={"x": 0, "y": 0, "width": 1400, "height": height},
                    )
                results.append(result)
                page.close()
        finally:
            browser.close()
    return results


def report_in_chromium(html: Path, loads: int, screenshot: str | None) -> int:
    if not Path(CHROMIUM).exists():
        print(f"bench_report: {CHROMIUM} not found; apt-get install -y chromium")
        return 2
    results = open_in_chromium(html, loads, screenshot)
    for i, r in enumerate(results, start=1):
        print(
            f"chromium load {i}: load event {r['load_ms'] / 1000:.2f} s, charts drawn {r['drawn_ms'] / 1000:.2f} s "
            f"({r['charts']} charts, {r['traces']} traces, max {r['max_points']} points per trace, "
            f"{len(r['outside'])} requests outside the file, {len(r['errors'])} page errors)"
        )
    drawn = [r["drawn_ms"] / 1000 for r in results]
    print(
        f"charts drawn: median {statistics.median(drawn):.2f} s, max {max(drawn):.2f} s over {len(drawn)} loads"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=7200, help="history length (default: 2 hours)")
    parser.add_argument("--tiny", action="store_true", help="10 minutes, max 200 points: a quick check")
    parser.add_argument("--loads", type=int, default=3, help="page loads to time (default 3)")
    parser.add_argument("--keep", metavar="DIR", help="write the run and report here (kept)")
    parser.add_argument("--no-browser", action="store_true", help="build the report only")
    parser.add_argument("--open", metavar="HTML", help="time an existing report instead of a synthetic one")
    parser.add_argument("--screenshot", metavar="PNG", help="save the top of the report (first load)")
    args = parser.parse_args(argv)
    if args.open:
        return report_in_chromium(Path(args.open), args.loads, args.screenshot)
    seconds, max_points, warmup = (600, 200, 60) if args.tiny else (args.seconds, 2000, 60)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / "loadgate"
    rows = synthesize(prefix, seconds, warmup)
    html = folder / "report.html"
    began = time.perf_counter()
    code = report_main([str(prefix), "--out", str(html), "--max-points", str(max_points)])
    built = time.perf_counter() - began
    if code != 0:
        print(f"bench_report: loadgate report exited {code}")
        return 1
    print(
        f"history: {seconds} s, {rows:,} rows; report {html.stat().st_size / 1e6:.2f} MB built in {built:.2f} s"
    )
    code = 0 if args.no_browser else report_in_chromium(html, args.loads, args.screenshot)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
