"""
## What it does
Flags a function parameter whose default is a mutable object: a list, dict or set display
(`[]`, `{}`, `{1}`) or a `list()`, `dict()` or `set()` call.

## Why is this bad?
A default is evaluated once, when the `def` runs, and the same object is handed to every
call that omits the argument. A scheduler built with `steps=[]` that sorts or appends to
`steps` changes the default seen by the next scheduler; a cache dict default leaks entries
between unrelated calls. The bug appears only on the second construction, typically in a
hyper-parameter sweep or when a script builds a second model.

## Example
```python
class WarmRestarts:
    def __init__(self, optimizer, steps=[]):
        steps.sort()
        self.steps = steps
```

## Use instead
```python
class WarmRestarts:
    def __init__(self, optimizer, steps=None):
        if steps is None:
            steps = []
        steps.sort()
        self.steps = steps
```

## Fix safety
Unsafe. The default becomes `None` and the body creates a fresh object on each call, so
code that relied on the object being shared (a deliberate memo cache) changes behaviour,
and callers that passed `None` explicitly now get the empty container.

## Known false positives
A default that is never mutated is harmless today; the rule still flags it, as ruff's
B006 does, because a later edit that mutates it is not visible at the call site.
"""

from __future__ import annotations

import ast

import libcst as cst

from trainlint import screen as sc
from trainlint.rule import Applicability, Invalid, Rule, Valid

MUTABLE_CALLS = {"list", "dict", "set"}
_DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def ast_is_mutable_default(node: ast.AST) -> bool:
    """`is_mutable_default` on the stdlib tree."""
    return isinstance(node, _DISPLAYS) or (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in MUTABLE_CALLS
    )


def is_mutable_default(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp, cst.SetComp)):
        return True
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value in MUTABLE_CALLS
    )


class MutableDefaultArgument(Rule):
    __doc__ = __doc__
    code = "TL005"
    name = "mutable-default-argument"
    message = "Mutable default `{default}` for parameter `{param}` is shared between calls"
    fix_applicability = Applicability.UNSAFE
    tokens = (("def", "lambda"),)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """A function (not a lambda) with a mutable parameter default."""
        for func in index.functions():
            args = func.args
            if any(ast_is_mutable_default(d) for d in args.defaults) or any(
                d is not None and ast_is_mutable_default(d) for d in args.kw_defaults
            ):
                return True
        return False

    VALID = [
        Valid("def f(steps=None):\n    return steps\n"),
        Valid("def f(steps=()):\n    return steps\n"),
        Valid("def f(steps=frozenset()):\n    return steps\n"),
        Valid("def f(scale=1.0, name='cos'):\n    return scale\n"),
        Valid("x = []\ndef f(steps=x):\n    return steps\n"),
        Valid("def f():\n    steps = []\n    return steps\n"),
    ]
    INVALID = [
        Invalid(
            """
            def __init__(self, optimizer, steps=[]):
                steps.sort()
            """,
            fixed="""
            def __init__(self, optimizer, steps=None):
                if steps is None:
                    steps = []
                steps.sort()
            """,
            line=1,
        ),
        Invalid(
            '''
            def collect(x, seen=dict()):
                """Collect x."""
                seen[x] = 1
                return seen
            ''',
            fixed='''
            def collect(x, seen=None):
                """Collect x."""
                if seen is None:
                    seen = dict()
                seen[x] = 1
                return seen
            ''',
        ),
        Invalid(
            "def f(*, tags: set = {1, 2}): return tags\n",
            fixed="def f(*, tags: set = None):\n    if tags is None:\n        tags = {1, 2}\n    return tags\n",
        ),
        Invalid(
            "def f(a=[], b={}):\n    return a, b\n",
            fixed=(
                "def f(a=None, b=None):\n    if b is None:\n        b = {}\n"
                "    if a is None:\n        a = []\n    return a, b\n"
            ),
            count=2,
        ),
    ]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        p = node.params
        for param in [*p.posonly_params, *p.params, *p.kwonly_params]:
            if param.default is not None and is_mutable_default(param.default):
                self._report(node, param)

    def _report(self, func: cst.FunctionDef, param: cst.Param) -> None:
        name = param.name.value
        default = self.context.code(param.default)
        guard = cst.parse_statement(f"if {name} is None:\n    {name} = {default}\n")
        fix = self.make_fix(
            f"Default `{name}` to `None` and create the {default} inside the function",
            (param.default, cst.Name("None")),
            (func.body, _prepend(func.body, guard)),
        )
        self.report(
            param.default,
            self.message.format(default=_short(default), param=name),
            fix=fix,
            help=f"use `{name}=None` and `if {name} is None: {name} = {default}` in the body",
            data={"parameter": name},
        )


def _short(code: str) -> str:
    """The default as written, or its brackets only when it is long or spans lines."""
    if "\n" not in code and len(code) <= 30:
        return code
    return f"{code[0]}...{code[-1]}" if code[0] in "[{" else code.split("(", 1)[0] + "(...)"


def _prepend(body: cst.BaseSuite, stmt: cst.BaseStatement) -> cst.BaseSuite:
    if isinstance(body, cst.SimpleStatementSuite):
        return cst.IndentedBlock(body=[stmt, cst.SimpleStatementLine(body=body.body)])
    statements = list(body.body)
    at = 1 if statements and _is_docstring(statements[0]) else 0
    return body.with_changes(body=[*statements[:at], stmt, *statements[at:]])


def _is_docstring(stmt: cst.BaseStatement) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )
