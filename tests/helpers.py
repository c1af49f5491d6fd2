"""Small helpers shared by the tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from trainlint import engine
from trainlint.registry import all_rules


def lint_code(code: str, rules=None, path: str = "example.py"):
    return engine.lint(path, code.encode(), list(rules or all_rules())).diagnostics


def fix_code(code: str, rules=None, unsafe: bool = True) -> str:
    return engine.fix("example.py", code.encode(), list(rules or all_rules()), unsafe).data.decode()


def console_script(name: str = "trainlint") -> str:
    """An installed console script: beside this interpreter (a venv used without activating
    it), else on PATH. Unlike `python -m trainlint` run from the checkout, it imports the
    installed package, where rules/ is `trainlint.rules`."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.is_file() else shutil.which(name)
    assert found, f"the {name} console script is not installed"
    return found
