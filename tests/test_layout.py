"""The house rules a newcomer relies on, checked: who may import Locust, no path patching, and the
user-facing copies agree with what the package ships."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "loadgate"
LOCUST_SIDE = ("locust", "gevent", "geventhttpclient", "flask")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if "harness" not in p.parts),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_only_the_harness_imports_locust_or_gevent(path):
    assert not imported_modules(path) & set(LOCUST_SIDE), f"{path}: move it into loadgate/harness/"


def test_nothing_patches_sys_path():
    pattern = re.compile(r"sys\.path|PYTHONPATH")
    offenders = []
    for folder in ("loadgate", "sla", "locustfiles", "ci", "bench"):
        for path in (ROOT / folder).rglob("*"):
            if (
                path.is_file()
                and path.suffix in (".py", ".sh", ".yml", ".yaml", "")
                and "__pycache__" not in path.parts
            ):
                offenders += [f"{path}:{n}" for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
                              if pattern.search(line)]  # fmt: skip
    assert offenders == []


def test_the_repository_thresholds_are_the_shipped_ones():
    assert (ROOT / "sla" / "thresholds.yaml").read_text() == (
        PACKAGE / "data" / "thresholds.yaml"
    ).read_text()


def test_the_repository_locustfiles_are_the_shipped_classes():
    import importlib.util

    from loadgate.harness import locustfile as shipped

    for name, classes in {"locustfile": ("ChatUser", "BatchUser", "ModelsUser"), "chat": ("ChatUser",),
                          "batch": ("BatchUser",), "models": ("ModelsUser",)}.items():  # fmt: skip
        spec = importlib.util.spec_from_file_location(f"lg_copy_{name}", ROOT / "locustfiles" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for cls in classes:
            assert getattr(module, cls) is getattr(shipped, cls), (name, cls)
        assert module.LoadProfileShape is shipped.LoadProfileShape


def test_the_package_declares_the_requirements_file():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dependencies = { file = ["requirements.txt"] }' in text
    assert 'loadgate = "loadgate.cli:main"' in text
