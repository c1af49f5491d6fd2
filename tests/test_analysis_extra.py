"""The functions rule pack 3 (group B) appended to rules/_analysis.py."""

from __future__ import annotations

import libcst as cst
import pytest

from trainlint.rules._analysis import accepts_call


def function(code: str) -> cst.FunctionDef:
    statement = cst.parse_module(code).body[0]
    if isinstance(statement, cst.ClassDef):
        statement = statement.body.body[0]
    assert isinstance(statement, cst.FunctionDef)
    return statement


@pytest.mark.parametrize(
    "code, positional, keywords, expected",
    [
        ("class A:\n def train(self, mode=True): pass", 0, (), True),
        ("class A:\n def train(self, mode=True): pass", 1, (), True),
        ("class A:\n def train(self, mode=True): pass", 2, (), False),
        ("class A:\n def train(self, loader): pass", 0, (), False),
        ("class A:\n def train(self): pass", 1, (), False),
        ("class A:\n def f(self, *args): pass", 3, (), True),
        ("class A:\n def f(self, a, /, b=1): pass", 0, ("a",), False),
        ("class A:\n def f(self, a=1, /, b=1): pass", 0, ("b",), True),
        ("class A:\n def f(self, a=1): pass", 1, ("a",), False),
        ("class A:\n def f(self, *, prefix=''): pass", 0, ("prefix",), True),
        ("class A:\n def f(self, *, prefix): pass", 0, (), False),
        ("class A:\n def f(self): pass", 0, ("prefix",), False),
        ("class A:\n def f(self, **kw): pass", 0, ("prefix", "keep_vars"), True),
        ("class A:\n @staticmethod\n def f(x): pass", 1, (), True),
        ("class A:\n @staticmethod\n def f(x): pass", 0, (), False),
    ],
)
def test_accepts_call(code, positional, keywords, expected):
    assert accepts_call(function(code), positional, keywords) is expected
