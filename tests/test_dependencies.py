"""Every third-party module the project imports is declared in pyproject.toml.

A module imported under trainlint/, rules/, tests/ or bench/ (by an import statement or
`pytest.importorskip`) must be standard library, the project itself, or provided by a
distribution named in `dependencies` or in an extra. Code inside string literals (rule
examples, probe templates) is not an import of the project and is not looked at.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("trainlint", "rules", "tests", "bench")
# Top-level names that are this project's own code (the installed package, and modules
# the test suite and benchmark import from their own folders).
PROJECT = {"trainlint", "conftest", "helpers"}
# Distribution name -> the top-level module names it installs, where they differ.
IMPORT_NAMES = {
    "pre-commit": {"pre_commit"},
    "pygls": {"pygls"},
    "pytest-lsp": {"pytest_lsp"},
    "flake8": {"flake8"},
    "pyyaml": {"yaml"},
}


def _distribution(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower()


def declared_modules(pyproject: dict) -> dict[str, str]:
    """Import name -> the requirement group ('dependencies' or 'extra:NAME') declaring it."""
    project = pyproject["project"]
    groups = {"dependencies": project.get("dependencies", [])}
    for extra, requirements in project.get("optional-dependencies", {}).items():
        groups[f"extra:{extra}"] = requirements
    out: dict[str, str] = {}
    for group, requirements in groups.items():
        for requirement in requirements:
            dist = _distribution(requirement)
            if dist == "trainlint":  # an extra that includes other extras
                continue
            for name in IMPORT_NAMES.get(dist, {dist.replace("-", "_")}):
                out.setdefault(name, group)
    return out


def imported_modules(path: Path) -> set[str]:
    """Top-level names of absolute imports and `importorskip("name")` calls in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "importorskip"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.add(node.args[0].value.split(".")[0])
    return out


def undeclared(root: Path, pyproject: dict) -> dict[str, list[str]]:
    """Module -> the files importing it, for every import that nothing declares."""
    declared = declared_modules(pyproject)
    missing: dict[str, list[str]] = {}
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            for name in imported_modules(path):
                if name in sys.stdlib_module_names or name in PROJECT or name in declared:
                    continue
                missing.setdefault(name, []).append(str(path.relative_to(root)))
    return missing


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_imported_module_is_declared():
    missing = undeclared(ROOT, _pyproject())
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(
        f"{name} (in {', '.join(files)})" for name, files in sorted(missing.items())
    )


def test_a_new_undeclared_import_is_caught(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(
        "import json\nimport trainlint\nfrom hypothesis import given\n"
        "import pytest\nnumpy = pytest.importorskip('numpy')\n"
        "EXAMPLE = '''\nimport paddle\n'''\n"
    )
    pyproject = {"project": {"dependencies": ["click>=8"], "optional-dependencies": {"test": ["pytest>=7"]}}}
    assert undeclared(tmp_path, pyproject) == {
        "hypothesis": ["tests/test_x.py"],
        "numpy": ["tests/test_x.py"],
    }


def test_distribution_names_map_to_import_names():
    pyproject = {"project": {"optional-dependencies": {"test": ["pre-commit>=3", "tomli>=2; python_version < '3.11'"]}}}
    assert declared_modules(pyproject) == {"pre_commit": "extra:test", "tomli": "extra:test"}

