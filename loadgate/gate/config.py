"""The threshold file: YAML with line numbers kept, validated into an ``SlaConfig``.

PyYAML's composer keeps a mark (line) on every node; we walk the node tree ourselves so every schema
error names its line, and so duplicate keys (which ``yaml.safe_load`` silently overwrites) are caught.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from loadgate.contract import SERVER_ROW
from loadgate.gate.errors import GateInputError, input_file
from loadgate.gate.language import (
    Rule,
    RuleSyntaxError,
    parse_duration,
    parse_rule,
    parse_server_rule,
    windowable,
)

TOP_KEYS = ("warmup", "min_requests", "thresholds", "regression")
ROW_KEYS = ("rules", "min_requests", "optional")
SECTIONS = ("thresholds", "regression")


@dataclass(frozen=True)
class RuleSpec:
    rule: Rule
    line: int
    section: str  # "thresholds" or "regression"


@dataclass(frozen=True)
class RowSpec:
    key: str  # "Aggregated", "POST /v1/chat/completions", "TTFT /v1/chat/completions [stream]" or a Name
    rules: tuple[RuleSpec, ...]
    min_requests: int
    optional: bool
    line: int


@dataclass
class SlaConfig:
    path: str
    warmup_s: float = 0.0
    min_requests: int = 1
    thresholds: list[RowSpec] = field(default_factory=list)
    regression: list[RowSpec] = field(default_factory=list)

    def all_rows(self) -> list[RowSpec]:
        return self.thresholds + self.regression


MAX_THRESHOLDS_BYTES = 1024 * 1024  # a threshold file is a few kilobytes; /dev/zero is not one


def load_config(path: str | Path, option: str = "--thresholds") -> SlaConfig:
    name = str(path)
    if not input_file(name, "threshold file", MAX_THRESHOLDS_BYTES, f"pass {option} FILE (a YAML file)"):
        raise GateInputError(name, None, "threshold file not found", name, f"pass {option} FILE")
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise GateInputError(
            name, None, "cannot read threshold file", error.strerror or str(error), "check the path"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise GateInputError(
            name, line, "threshold file is not UTF-8", str(error), "save the file as UTF-8"
        ) from None
    return parse_config(text, name)


MAX_FLOW_DEPTH = 64  # [ ] and { } nesting; PyYAML's flow scanner slows down with depth, then recurses out


def _flow_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } (quotes not considered: a rough, fast bound before parsing)."""
    depth = deepest = 0
    for char in re.sub(r"[^\[\]{}]+", "", text):
        depth = depth + 1 if char in "[{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def parse_config(text: str, name: str) -> SlaConfig:
    if _flow_depth(text) > MAX_FLOW_DEPTH:
        raise GateInputError(
            name,
            None,
            "YAML nested too deeply",
            f"more than {MAX_FLOW_DEPTH} levels of [ ] or {{ }}",
            "flatten the file",
        )
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader refuses NUL and other control characters here
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        raise GateInputError(
            name, line, "YAML syntax error", str(error.problem), "fix the YAML syntax"
        ) from None
    except yaml.reader.ReaderError as error:
        line = text[: error.position].count("\n") + 1 if isinstance(error.position, int) else None
        char = error.character if isinstance(error.character, str) else chr(error.character)
        raise GateInputError(
            name,
            line,
            "YAML does not allow this character",
            f"#x{ord(char):04x}",
            "remove it (NUL and other control characters cannot appear in YAML)",
        ) from None
    except yaml.YAMLError as error:
        raise GateInputError(name, None, "YAML error", str(error), "fix the YAML syntax") from None
    except RecursionError:
        raise GateInputError(
            name, None, "YAML nested too deeply", "more levels than the parser can follow", "flatten the file"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise GateInputError(name, None, "threshold file is empty", "", "add a 'thresholds:' mapping")
    try:
        return _Builder(name, loader).config(root)
    except RecursionError:
        raise GateInputError(
            name, None, "YAML nested too deeply", "more levels than the parser can follow", "flatten the file"
        ) from None


class _Builder:
    def __init__(self, name: str, loader: yaml.SafeLoader) -> None:
        self.name = name
        self.loader = loader

    def error(self, node: yaml.Node, what: str, got: object, fix: str) -> GateInputError:
        return GateInputError(self.name, node.start_mark.line + 1, what, got, fix)

    def scalar(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[str, yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.error(
                node, f"{what} must be a mapping", _node_text(node), f"write {what} as 'key: value' lines"
            )
        seen: dict[str, int] = {}
        items = []
        for key_node, value_node in node.value:
            key = self.scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float) or isinstance(key, bool):
                raise self.error(
                    key_node, f"bad key in {what}", _node_text(key_node), "quote the key as a string"
                )
            key = str(key)
            if key in seen:
                raise self.error(
                    key_node,
                    f"duplicate key {key!r} in {what} (first on line {seen[key]})",
                    key,
                    "merge the two entries into one",
                )
            seen[key] = key_node.start_mark.line + 1
            items.append((key, key_node, value_node))
        return items

    def config(self, root: yaml.Node) -> SlaConfig:
        config = SlaConfig(self.name)
        items = self.mapping(root, "the threshold file")
        for key, key_node, value in items:
            if key not in TOP_KEYS:
                raise self.error(
                    key_node, f"unknown top-level key {key!r}", key, f"use only {', '.join(TOP_KEYS)}"
                )
            if key == "warmup":
                config.warmup_s = self.duration(value, "warmup")
            elif key == "min_requests":
                config.min_requests = self.count(value, "min_requests")
        for key, _key_node, value in items:
            if key in SECTIONS:
                rows = self.section(value, key, config.min_requests)
                setattr(config, key, rows)
        if not config.thresholds and not config.regression:
            raise GateInputError(
                self.name, None, "no thresholds defined", "", "add a 'thresholds:' mapping of row: [rules]"
            )
        return config

    def duration(self, node: yaml.Node, key: str) -> float:
        try:
            return parse_duration(
                self.scalar(node) if isinstance(node, yaml.ScalarNode) else _node_text(node)
            )
        except RuleSyntaxError as error:
            raise self.error(node, f"{key}: {error.what}", error.got, error.fix) from None

    def count(self, node: yaml.Node, key: str) -> int:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.error(
                node, f"{key} must be a whole number >= 0", _node_text(node), f"write e.g. '{key}: 50'"
            )
        return value

    def section(self, node: yaml.Node, section: str, default_min: int) -> list[RowSpec]:
        if isinstance(node, yaml.ScalarNode) and self.scalar(node) is None:
            return []
        return [
            self.row(key, key_node, value, section, default_min)
            for key, key_node, value in self.mapping(node, section)
        ]

    def row(self, key: str, key_node: yaml.Node, node: yaml.Node, section: str, default_min: int) -> RowSpec:
        min_requests, optional = default_min, False
        rules_node: yaml.Node | None = node
        if isinstance(node, yaml.MappingNode):
            rules_node = None
            for opt, opt_node, value in self.mapping(node, f"row {key!r}"):
                if opt == "rules":
                    rules_node = value
                elif opt == "min_requests":
                    min_requests = self.count(value, f"{key}: min_requests")
                elif opt == "optional":
                    flag = self.scalar(value) if isinstance(value, yaml.ScalarNode) else None
                    if not isinstance(flag, bool):
                        raise self.error(
                            value,
                            f"{key}: optional must be true or false",
                            _node_text(value),
                            "write 'optional: true'",
                        )
                    optional = flag
                else:
                    raise self.error(
                        opt_node,
                        f"unknown key {opt!r} in row {key!r}",
                        opt,
                        f"use only {', '.join(ROW_KEYS)}",
                    )
            if rules_node is None:
                raise self.error(
                    node, f"row {key!r} has no 'rules' list", key, "add 'rules: [\"p(95) < 3000\"]'"
                )
        if not isinstance(rules_node, yaml.SequenceNode) or not rules_node.value:
            raise self.error(
                rules_node or node,
                f"row {key!r} must list its thresholds",
                _node_text(rules_node),
                'write a YAML list, e.g. - "p(95) < 3000"',
            )
        if key == SERVER_ROW:
            rules = tuple(self.server_rule(item, section) for item in rules_node.value)
        else:
            rules = tuple(self.rule(item, section) for item in rules_node.value)
        return RowSpec(key, rules, min_requests, optional, key_node.start_mark.line + 1)

    def server_rule(self, node: yaml.Node, section: str) -> RuleSpec:
        """A rule of row SERVER (PREFIX_server_metrics.csv): "max(SERIES) < N"; thresholds only."""
        text = self.scalar(node) if isinstance(node, yaml.ScalarNode) else _node_text(node)
        if section == "regression":
            raise self.error(
                node,
                f"row {SERVER_ROW} is only allowed under 'thresholds:'",
                text,
                f"move the {SERVER_ROW} row under thresholds: with an absolute limit",
            )
        try:
            rule = parse_server_rule(text)
        except RuleSyntaxError as error:
            raise self.error(node, f"row {SERVER_ROW}: {error.what}", error.got, error.fix) from None
        return RuleSpec(rule, node.start_mark.line + 1, section)

    def rule(self, node: yaml.Node, section: str) -> RuleSpec:
        text = self.scalar(node) if isinstance(node, yaml.ScalarNode) else _node_text(node)
        try:
            rule = parse_rule(text)
        except RuleSyntaxError as error:
            raise self.error(node, error.what, error.got, error.fix) from None
        if section == "thresholds" and rule.baseline is not None:
            raise self.error(
                node,
                "'baseline' is only allowed under 'regression:'",
                text,
                "move the rule under 'regression:' (evaluated with --baseline)",
            )
        if section == "regression" and rule.baseline is None:
            raise self.error(
                node,
                "a regression rule must compare with 'baseline'",
                text,
                'write e.g. "p(95) <= baseline + 10%", or move it under thresholds:',
            )
        if rule.window_s is not None and not windowable(rule.metric):
            raise self.error(
                node,
                f"'for' needs a per-second figure; {rule.metric.name} has none in Locust's history",
                text,
                "use 'for' with p(N), median, rps, fail_rps or fail_ratio, or drop 'for'",
            )
        if section == "regression" and rule.window_s is not None:
            raise self.error(
                node,
                "'for' is not supported in regression rules",
                text,
                "compare whole-run figures, or move the 'for' rule under thresholds:",
            )
        return RuleSpec(rule, node.start_mark.line + 1, section)


def _node_text(node: yaml.Node | None) -> str:
    if node is None:
        return ""
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    kinds: dict[type, str] = {yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list"}
    return kinds.get(type(node), str(node.tag))
