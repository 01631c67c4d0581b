"""Helpers for the report tests: copying real run files, rendering, and reading the HTML back."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parent.parent
RUN = HERE / "fixtures" / "run"  # a real `loadgate run --run-time 30s --warmup 10s` (files + verdict.json)
CAPACITY = HERE / "fixtures" / "capacity"
SLA_JOB = REPO / "tests" / "sla" / "fixtures"  # an older real job run (prefix "job", no verdict.json)


def copy_run(source: Path, target: Path, name: str = "loadgate", source_name: str = "loadgate") -> str:
    """Copy a run's files (and its verdict.json) into ``target``; returns the new prefix."""
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.name.startswith(f"{source_name}_"):
            shutil.copy(path, target / path.name.replace(f"{source_name}_", f"{name}_", 1))
        elif path.name == "verdict.json":
            shutil.copy(path, target / path.name)
    return str(target / name)


class Page(HTMLParser):
    """What a test asserts on: ids, attributes, scripts, table rows and text."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.sections: list[str] = []
        self.links: list[tuple[str, str]] = []  # (attribute, value) of every src/href
        self.styles: list[str] = []  # <style> bodies and style="" attributes
        self.scripts: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.text: list[str] = []
        self._in: str | None = None
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.append(attributes["id"] or "")
        if tag == "section":
            self.sections.append(attributes.get("id") or "")
        for name in ("src", "href"):
            if attributes.get(name) is not None:
                self.links.append((name, attributes[name] or ""))
        if attributes.get("style"):
            self.styles.append(attributes["style"] or "")
        if tag in ("script", "style"):
            self._in = tag
            (self.scripts if tag == "script" else self.styles).append("")
        if tag == "table":
            self._table = attributes.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        if tag == "tr" and self._table:
            self._row = []
        if tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._in = None
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if tag == "tr" and self._row is not None and self._table:
            self.tables[self._table].append(self._row)
            self._row = None
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.scripts[-1] += data
        elif self._in == "style":
            self.styles[-1] += data
        else:
            self.text.append(data)
            if self._cell is not None:
                self._cell.append(data)

    def figure(self, chart_id: str) -> tuple[list[dict], dict]:
        """The data and layout passed to Plotly.newPlot for the chart ``chart_id``."""
        for script in self.scripts:
            start = _find_call(script, chart_id)
            if start >= 0:
                decoder = json.JSONDecoder()
                rest = script[start:]
                rest = rest[rest.index(",") + 1 :].lstrip()
                data, end = decoder.raw_decode(rest)
                rest = rest[end:].lstrip().removeprefix(",").lstrip()
                layout, _ = decoder.raw_decode(rest)
                return data, layout
        raise AssertionError(f"no Plotly.newPlot call for {chart_id}")

    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def _find_call(script: str, chart_id: str) -> int:
    match = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(chart_id) + '",', script)
    return match.start() if match else -1


def parse(path: str | Path) -> Page:
    page = Page()
    page.feed(Path(path).read_text(encoding="utf-8"))
    page.close()
    return page


def external_urls(page: Page) -> list[str]:
    """Every src/href or CSS url() that would make the browser fetch something from outside the file."""
    found = [value for _, value in page.links if not value.startswith(("#", "data:"))]
    for style in page.styles:
        found += [
            u for u in re.findall(r"url\(\s*['\"]?([^'\")]+)", style) if not u.startswith(("#", "data:"))
        ]
    return found


def values(array: object) -> list[float]:
    """A trace's x or y as numbers: Plotly writes numpy arrays as {"dtype", "bdata"} (base64)."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).astype(float).tolist()
    return [float(v) for v in array]  # type: ignore[union-attr]


def trace(data: list[dict], name_start: str) -> dict:
    matches = [t for t in data if str(t.get("name", "")).startswith(name_start)]
    assert matches, f"no trace named {name_start!r}; have {[t.get('name') for t in data]}"
    return matches[0]
