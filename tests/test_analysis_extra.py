"""The functions rule pack 3 (group B) appended to rules/_analysis.py."""

from __future__ import annotations

import libcst as cst
import pytest

from trainlint.rules._analysis import accepts_call, append_keyword, returned_names


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


def test_returned_names():
    func = function(
        "def build(a):\n"
        "    model = Net()\n"
        "    if a:\n"
        "        return model, opt\n"
        "    def inner():\n"
        "        return hidden\n"
        "    return\n"
    )
    assert returned_names(func) == {"model", "opt"}


@pytest.mark.parametrize(
    "code, expected",
    [
        ("f()", 'f(k="v")'),
        ("f(a)", 'f(a, k="v")'),
        ("f(a, b=1)", 'f(a, b=1, k="v")'),
        ("f(\n    a,\n)", 'f(\n    a,\n    k="v",\n)'),
        ("f(\n    a,\n    b,\n)", 'f(\n    a,\n    b,\n    k="v",\n)'),
        ("f(a, b,)", 'f(a, b, k="v",)'),
    ],
)
def test_append_keyword(code, expected):
    call = cst.parse_expression(code)
    assert cst.Module([]).code_for_node(append_keyword(call, "k", cst.SimpleString('"v"'))) == expected
