"""The docs stay true: every command they show is one loadgate (or the tool named) accepts, the option
tables equal the options table, the examples parse, the links resolve, the README stays the front door.

Commands are taken from the fenced ``bash``, ``sh`` and ``console`` blocks (in ``console`` blocks only the
lines starting with ``$ ``) of README.md and docs/*.md. Each simple command (split at ``&&``, ``||``,
``;`` and ``|``) must be of a kind listed here:

- checked: ``loadgate SUB``, ``python sla/check_sla.py``, ``python -m loadgate.mock``,
  ``bash ci/run_load_gate.sh``, ``bash ci/run_tests.sh`` (pytest's options), ``locust`` (Locust's options
  plus loadgate's) and ``python bench/NAME.py``: the command exists, answers ``--help``, and every option
  in the command is one its parser lists. The parsers are asked once per session;
- run for real by another test or by ``.ci/run``: :data:`RUN_ELSEWHERE` names where (and this test checks
  that place still runs it);
- tools this machine has no use for in a test (docker, kubectl, kustomize) and plain shell (export,
  source, cp, mkdir): :data:`EXTERNAL` and :data:`SHELL` say which files the commands use and who checks
  those files.

A command of any other kind fails the test: add it to one of the lists, with where it is exercised.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from child_env import child_env

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
BIN = VENV_BIN if (VENV_BIN / "loadgate").exists() else Path(sys.executable).parent  # loadgate, python
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250
FIRST_COMMANDS = ["bash ci/run_load_gate.sh", "bash ci/run_tests.sh"]
SUBCOMMANDS = ("run", "gate", "mock", "report")
TOP_LEVEL_FLAGS = {"--version", "-V", "--help", "-h"}

# Commands run for real elsewhere: exact command -> (file that runs it, text that file must contain).
RUN_ELSEWHERE: dict[str, tuple[str, str]] = {
    "bash ci/run_tests.sh": (".ci/run", "bash ci/run_tests.sh"),
    "bash ci/run_load_gate.sh": ("tests/ci/test_job.py", "def test_job_passes_and_leaves_one_results_folder"),
    "pip install -e .": ("ci/lib/venv.sh", "pip install -q --disable-pip-version-check -e"),
    "pip install .": ("tests/test_install.py", '"wheel"'),  # builds the wheel, installs it in a fresh venv
}
# Programs whose commands cannot run here; the files they use are checked by the test named.
EXTERNAL: dict[str, str] = {
    "docker": "tests/ci/test_templates.py (ci/Dockerfile, ci/docker-compose.yml)",
    "kubectl": "tests/ci/test_templates.py (ci/k8s/)",
    "kustomize": "tests/ci/test_templates.py (ci/k8s/kustomization.yaml)",
}
SHELL = {"export", "source", "cp", "mkdir", "cd"}


# -- reading the documents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str


@dataclass(frozen=True)
class Command:
    where: str  # "docs/running.md:42"
    text: str  # the simple command as written (continuations joined)
    argv: tuple[str, ...]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def fenced_blocks(path: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    fence: str | None = None
    start, lang, body = 0, "", []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if fence is None:
            match = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if match:
                fence, lang, start, body = match.group(1), match.group(2).lower(), number, []
        elif stripped.startswith(fence) and not stripped[len(fence) :].strip():
            blocks.append(Block(path, start, lang, "\n".join(body)))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"{rel(path)}:{start}: code fence never closed"
    return blocks


def command_lines(block: Block) -> list[tuple[int, str]]:
    """(line number, command) of a shell block, continuation lines joined."""
    out: list[tuple[int, str]] = []
    pending, pending_line = "", 0
    for offset, raw in enumerate(block.text.splitlines(), 1):
        line = raw.strip()
        if not pending:
            if block.lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:].strip()
            if not line or line.startswith("#"):
                continue
            pending_line = block.line + offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending_line, pending + line))
        pending = ""
    assert not pending, f"{rel(block.path)}:{pending_line}: a command ends with a line continuation"
    return out


def simple_commands(text: str) -> list[list[str]]:
    """Split a command line at &&, ||, ; and | into argv lists; comments dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in ("&&", "||", ";", "|", "&"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def all_commands() -> list[Command]:
    commands = []
    for path in DOCS:
        for block in fenced_blocks(path):
            if block.lang not in ("bash", "sh", "shell", "console"):
                continue
            for line, text in command_lines(block):
                for argv in simple_commands(text):
                    while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
                        argv = argv[1:]  # VAR=value before the program
                    if argv:
                        commands.append(Command(f"{rel(path)}:{line}", shlex.join(argv), tuple(argv)))
    return commands


COMMANDS = all_commands()


# -- what each parser accepts ---------------------------------------------------------------------------


def help_flags(help_text: str) -> set[str]:
    """Option strings of an argparse-style --help: the option lines, indented by two spaces."""
    flags: set[str] = set()
    for line in help_text.splitlines():
        match = re.match(r"^ {2}(-\S.*?)(?: {2,}|$)", line)
        if not match:
            continue
        for part in match.group(1).split(", "):
            flag = part.split()[0].split("=")[0]
            if flag.startswith("-"):
                flags.add(flag)
    return flags


def run_help(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=child_env(COLUMNS="250"),
        capture_output=True,
        text=True,
        timeout=120,
    )


LOCUST_PARSER = """
import runpy
runpy.run_path("locustfiles/locustfile.py")  # loadgate's options join Locust's parser on import
from locust.argument_parser import get_parser
print(get_parser().format_help())
"""


@functools.cache
def accepted_flags(kind: str) -> set[str]:
    """The options of one kind of command, from its own --help (skips when that command is not built)."""
    python = str(BIN / "python")
    if kind.startswith("loadgate "):
        argv = [str(BIN / "loadgate"), kind.split()[1], "--help"]
    elif kind == "check_sla":
        argv = [python, "sla/check_sla.py", "--help"]
    elif kind == "mock":
        argv = [python, "-m", "loadgate.mock", "--help"]
    elif kind == "run_load_gate.sh":
        argv = ["bash", "ci/run_load_gate.sh", "--help"]
    elif kind == "pytest":
        argv = [python, "-m", "pytest", "--help"]
    elif kind == "locust":
        argv = [python, "-c", LOCUST_PARSER]
    elif kind.startswith("bench/"):
        argv = [python, kind, "--help"]
    else:
        raise AssertionError(f"no parser known for {kind}")
    done = run_help(argv)
    if kind == "loadgate report" and done.returncode != 0 and "missing dependency 'loadgate'" in done.stderr:
        pytest.skip("loadgate report not built yet (loadgate.report is missing)")
    assert done.returncode == 0, (
        f"{' '.join(argv[-3:])} failed (exit {done.returncode}): {done.stderr[-2000:]}"
    )
    flags = help_flags(done.stdout)
    assert "-h" in flags or "--help" in flags, f"{kind}: no options found in its --help:\n{done.stdout}"
    return flags


def options_in(args: tuple[str, ...]) -> list[str]:
    """The options of a command's arguments (before a bare --), without =value; negative numbers are
    values."""
    found = []
    for arg in args:
        if arg == "--":
            break
        if arg.startswith("-") and arg != "-" and not re.fullmatch(r"-\d+(\.\d+)?", arg):
            found.append(arg.split("=", 1)[0])
    return found


def program(argv: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """(program, arguments) with .venv/bin/ and python -m spelled one way."""
    name, args = argv[0], argv[1:]
    if name.startswith(".venv/bin/"):
        name = name[len(".venv/bin/") :]
    if name in ("python", "python3", "python3.11"):
        if args[:2] == ("-m", "loadgate.mock"):
            return "python -m loadgate.mock", args[2:]
        if args[:2] == ("-m", "loadgate"):
            return "loadgate", args[2:]
        if args[:2] == ("-m", "locust"):
            return "locust", args[2:]
        if args and args[0].endswith(".py"):
            return f"python {args[0]}", args[1:]
    if name == "bash" and args:
        return f"bash {args[0]}", args[1:]
    return name, args


def check_options(kind: str, args: tuple[str, ...], command: Command) -> None:
    unknown = [flag for flag in options_in(args) if flag not in accepted_flags(kind)]
    assert not unknown, f"{command.where}: `{command.text}`: {kind} does not accept {', '.join(unknown)}"


# -- every command ---------------------------------------------------------------------------------------


def test_the_docs_show_commands():
    assert len(COMMANDS) > 20, [c.text for c in COMMANDS]


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {c.text[:70]}" for c in COMMANDS])
def test_every_command_is_exercised(command: Command):
    name, args = program(command.argv)
    if command.text in RUN_ELSEWHERE:
        check_run_elsewhere(command.text, command.where)
    if name == "loadgate":
        if not args or args[0].startswith("-"):
            unknown = [flag for flag in options_in(args) if flag not in TOP_LEVEL_FLAGS]
            assert not unknown, f"{command.where}: `{command.text}`: loadgate has no option {unknown}"
            return
        assert args[0] in SUBCOMMANDS, f"{command.where}: `{command.text}`: no subcommand {args[0]!r}"
        check_options(f"loadgate {args[0]}", args[1:], command)
    elif name == "python sla/check_sla.py":
        check_options("check_sla", args, command)
    elif name == "python -m loadgate.mock":
        check_options("mock", args, command)
    elif name == "bash ci/run_load_gate.sh":
        check_options("run_load_gate.sh", args, command)
    elif name == "bash ci/run_tests.sh":
        check_options("pytest", args, command)
        for path in (a for a in args if not a.startswith("-")):
            assert (ROOT / path.split("::")[0]).exists(), f"{command.where}: `{command.text}`: no {path}"
    elif name == "locust":
        check_options("locust", args, command)
        for flag, value in zip(args, args[1:], strict=False):
            if flag in ("-f", "--locustfile"):
                assert (ROOT / value).is_file(), f"{command.where}: `{command.text}`: no locustfile {value}"
    elif name.startswith("python bench/"):
        script = name.split()[1]
        assert (ROOT / script).is_file(), f"{command.where}: `{command.text}`: no {script}"
        check_options(script, args, command)
    elif name == "pip":
        assert command.text in RUN_ELSEWHERE, f"{command.where}: `{command.text}`: add it to RUN_ELSEWHERE"
    elif name in EXTERNAL or name in SHELL:
        pass  # see EXTERNAL and SHELL above
    else:
        pytest.fail(
            f"{command.where}: `{command.text}`: no test exercises {name!r} commands; check it here "
            "(or list where it runs) in tests/test_docs.py"
        )


def check_run_elsewhere(text: str, where_shown: str) -> None:
    where, needle = RUN_ELSEWHERE[text]
    assert needle in (ROOT / where).read_text(), f"{where_shown}: {where} no longer runs `{text}`"


def test_what_the_lists_name_exists():
    for text in RUN_ELSEWHERE:
        check_run_elsewhere(text, "RUN_ELSEWHERE")
    for checked_by in EXTERNAL.values():
        assert (ROOT / checked_by.split()[0]).is_file(), checked_by


# -- the README ------------------------------------------------------------------------------------------


def test_readme_is_the_front_door():
    readme = ROOT / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= README_MAX_LINES
    first = [c for c in COMMANDS if c.where.startswith("README.md:")][:2]
    assert [c.text for c in first] == FIRST_COMMANDS
    shell_blocks = [b for b in fenced_blocks(readme) if b.lang in ("bash", "sh", "shell", "console")]
    assert [b.lang for b in shell_blocks[:2]] == ["bash", "bash"]
    assert [b.text.strip() for b in shell_blocks[:2]] == FIRST_COMMANDS  # each alone in its own block


def test_readme_links_into_every_doc():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name}" in readme, f"README.md has no link to docs/{doc.name}"


# -- generated option tables -----------------------------------------------------------------------------


def generated(scope: str) -> list[tuple[Path, str]]:
    begin, end = f"<!-- BEGIN GENERATED options:{scope} -->", f"<!-- END GENERATED options:{scope} -->"
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(re.escape(begin) + r"\n(.*?)" + re.escape(end), text, re.S):
            found.append((path, match.group(1)))
        assert text.count(begin) == text.count(end), f"{rel(path)}: unmatched markers of options:{scope}"
    return found


@pytest.mark.parametrize("scope", ["job", "locust"])
def test_each_option_table_appears_once(scope):
    assert len(generated(scope)) == 1, f"options:{scope} must appear exactly once in the docs"


@pytest.mark.parametrize("scope", ["job", "locust"])
def test_option_tables_equal_the_options_table(scope):
    try:
        from loadgate.options import markdown_table
    except ImportError:
        pytest.skip("loadgate.options not built yet")
    [(path, text)] = generated(scope)
    expected = markdown_table(scope)
    assert text.strip() == expected.strip(), (
        f"{rel(path)}: the options:{scope} table is out of date; put this between its markers:\n{expected}"
    )


# -- examples --------------------------------------------------------------------------------------------


EXAMPLES = [b for path in DOCS for b in fenced_blocks(path) if b.lang in ("yaml", "yml", "json")]


@pytest.mark.parametrize("block", EXAMPLES, ids=[f"{rel(b.path)}:{b.line}" for b in EXAMPLES])
def test_examples_parse(block: Block):
    where = f"{rel(block.path)}:{block.line}"
    if block.lang == "json":
        try:
            json.loads(block.text)
        except json.JSONDecodeError:  # JSON Lines
            for line in block.text.splitlines():
                if line.strip():
                    json.loads(line)
        return
    data = yaml.safe_load(block.text)
    assert isinstance(data, dict), f"{where}: a YAML example must be a mapping"
    if {"thresholds", "regression"} & set(data):
        from loadgate.gate.config import parse_config

        parse_config(block.text, where)  # raises GateInputError naming the line
    else:
        from loadgate.mock.config import parse_config as parse_mock_config

        parse_mock_config(data, where)  # raises MockConfigError naming the key


# -- links -----------------------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"\s*(```|~~~)", line):
            in_fence = not in_fence
            continue
        match = None if in_fence else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    out = []
    in_fence = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if re.match(r"\s*(```|~~~)", line):
            in_fence = not in_fence
            continue
        if not in_fence:
            out += [(number, m.group(1)) for m in re.finditer(r"\]\(([^)\s]+)\)", line)]
    return out


@pytest.mark.parametrize("path", DOCS, ids=[rel(p) for p in DOCS])
def test_links_resolve(path: Path):
    broken = []
    for number, target in links(path):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        file_part, _, anchor = target.partition("#")
        target_path = (path.parent / file_part).resolve() if file_part else path
        if not target_path.exists():
            broken.append(f"{rel(path)}:{number}: {target}: no such file")
        elif anchor and target_path.suffix == ".md" and anchor not in anchors(target_path):
            broken.append(f"{rel(path)}:{number}: {target}: no heading with that anchor")
    assert not broken, "\n".join(broken)
