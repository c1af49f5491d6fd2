"""Small helpers shared by the tests."""

from __future__ import annotations

from trainlint import engine
from trainlint.registry import all_rules


def lint_code(code: str, rules=None, path: str = "example.py"):
    return engine.lint(path, code.encode(), list(rules or all_rules())).diagnostics


def fix_code(code: str, rules=None, unsafe: bool = True) -> str:
    return engine.fix("example.py", code.encode(), list(rules or all_rules()), unsafe).data.decode()
