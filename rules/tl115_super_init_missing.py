"""
## What it does
Flags an `nn.Module` subclass whose `__init__` never calls the parent constructor:
no `super().__init__()`, `super(Cls, self).__init__()`, `Base.__init__(self, ...)` or
`nn.Module.__init__(self)` anywhere in its body.

## Why is this bad?
`nn.Module.__init__` creates the dictionaries that hold parameters, buffers, submodules
and hooks. Without it the first `self.fc = nn.Linear(...)` raises
`AttributeError: cannot assign module before Module.__init__() call`; a module that only
stores plain values constructs, but fails on its first call
(`'Net' object has no attribute '_backward_pre_hooks'`), in `.to()`, in `state_dict()`
and everywhere else the module machinery is needed.

## Example
```python
class Scale(nn.Module):
    def __init__(self, s):
        self.s = s

    def forward(self, x):
        return x * self.s
```

## Use instead
```python
class Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s
```

## Fix safety
Unsafe. `super().__init__()` is inserted as the first statement (after the docstring), so
construction now runs the parent's constructor, which it never did before. The fix is
offered only when the first base is `nn.Module` itself, whose constructor takes no
arguments; a subclass of `nn.Linear`, of another `torch.nn` layer or of a class of the
same file needs the parent's arguments, which the rule cannot choose, and is reported
without an edit.

## Known false positives
The rule stays quiet, rather than guess, when the constructor may reach the parent's
constructor along a path it cannot see:
- any `__init__` attribute is mentioned in the body (`Base.__init__(self)`, an
  `init = super().__init__` alias, a call inside a nested function or a branch);
- `super().init()` and other slips of `__init__` (TL007 reports those), and classes
  with no `__init__` at all (nothing is overridden; a misspelled `def init` is TL007's);
- `self` is passed to another function (`init_module(self, cfg)`), or the body calls a
  method of the same class (or of a base class in the same file) that mentions
  `__init__`, or, in a class with a base from outside torch and this file, calls an
  inherited `self.<name>()` whose name contains `init` (the framework base may do the
  parent initialisation there). `self._init(...)` defined in the class is looked into;
- a constructor that only raises, or whose body is `...` (an abstract stub), a
  decorated `__init__`, and a class that defines `__new__`.
A class is recognised as a `nn.Module` by its bases in the same file (see
`is_nn_module`), so subclasses of third-party modules are not checked.
"""

from __future__ import annotations

import ast
import re
from functools import cached_property

import libcst as cst

from trainlint import screen as sc
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor, base_names, is_nn_module, local_classes, methods
from trainlint.rules._screens import nn_module_classes
from trainlint.traverse import walk

INIT = "__init__"
NN_MODULE = {"torch.nn.Module", "torch.nn.modules.module.Module"}
# Calls that receive `self` without being able to run `Module.__init__` on it.
HARMLESS_SELF_CALLS = {
    "super", "setattr", "getattr", "hasattr", "delattr", "isinstance", "issubclass", "print",
    "id", "type", "vars", "repr", "str", "hash", "len", "dir", "callable",
}
# `init` misspellings of a `super()` call (TL007's territory): letters of "init" only.
_INIT_SLIP = re.compile(r"_*[int]{2,6}_*")


def _is_super_call(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Call) and isinstance(node.func, cst.Name) and node.func.value == "super"


class _InitEvidence(Visitor):
    """Anything in a constructor that may run (or reach) the parent's `__init__`."""

    def __init__(self, self_name: str | None) -> None:
        self.self_name = self_name
        self.found = False
        self.self_methods: set[str] = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        attr = node.attr.value
        if attr == INIT:
            self.found = True
        elif _is_super_call(node.value) and _INIT_SLIP.fullmatch(attr):
            self.found = True  # `super().init()`: TL007

    def visit_Call(self, node: cst.Call) -> None:
        if self.self_name is None:
            return
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Name)
            and func.value.value == self.self_name
        ):
            self.self_methods.add(func.attr.value)
        callee = func.value if isinstance(func, cst.Name) else (
            func.attr.value if isinstance(func, cst.Attribute) else None
        )
        if callee in HARMLESS_SELF_CALLS:
            return
        for arg in node.args:
            if isinstance(arg.value, cst.Name) and arg.value.value == self.self_name:
                self.found = True


def _self_name(func: cst.FunctionDef) -> str | None:
    params = [*func.params.posonly_params, *func.params.params]
    return params[0].name.value if params else None


def _evidence(func: cst.FunctionDef) -> _InitEvidence:
    finder = _InitEvidence(_self_name(func))
    walk(func.body, finder)
    return finder


def _is_stub(func: cst.FunctionDef) -> bool:
    """A body of `...` or `raise` statements (and docstrings), nothing else."""
    body = func.body
    stmts = list(body.body) if isinstance(body, cst.IndentedBlock) else [cst.SimpleStatementLine(body.body)]
    stub = False
    for stmt in stmts:
        if not isinstance(stmt, cst.SimpleStatementLine):
            return False
        for small in stmt.body:
            if isinstance(small, cst.Raise) or (
                isinstance(small, cst.Expr) and isinstance(small.value, cst.Ellipsis)
            ):
                stub = True
            elif not (
                isinstance(small, cst.Expr)
                and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString))
            ):
                return False
    return stub


def _is_docstring(stmt: cst.BaseStatement) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


class SuperInitMissing(Rule):
    __doc__ = __doc__
    code = "TL115"
    name = "super-init-missing"
    message = "`{cls}.__init__` never calls `super().__init__()`: the module is never initialised"
    fix_applicability = Applicability.UNSAFE
    tokens = ("__init__", ("nn", "*module*"))

    VALID = [
        # Every spelling of the parent call.
        Valid(
            """
            import torch
            import torch.nn as nn

            class A(nn.Module):
                def __init__(self):
                    super().__init__()
            class B(nn.Module):
                def __init__(self):
                    super(B, self).__init__()
            class C(A):
                def __init__(self, n):
                    A.__init__(self)
                    self.n = n
            class D(nn.Module):
                def __init__(self):
                    nn.Module.__init__(self)
            class E(torch.nn.Linear):
                def __init__(self, n):
                    if n:
                        super().__init__(n, n)
                    else:
                        torch.nn.Linear.__init__(self, 1, 1)
            """
        ),
        # No `__init__` at all: the parent's runs.
        Valid(
            """
            from torch import nn
            class Act(nn.Module):
                def forward(self, x):
                    return x.relu()
            """
        ),
        # A misspelled constructor or super call is TL007's.
        Valid(
            """
            from torch import nn
            class LDAMLoss(nn.Module):
                def init(self, m):
                    self.m = m
            class Other(nn.Module):
                def __init__(self, m):
                    super().init()
                    self.m = m
            """
        ),
        # Not a Module.
        Valid(
            """
            class Meter:
                def __init__(self):
                    self.n = 0
            class Cfg(dict):
                def __init__(self, **kw):
                    self.update(kw)
            """
        ),
        # Delegation the rule cannot see through, or can see through.
        Valid(
            """
            import torch.nn as nn
            from mylib import init_module

            class A(nn.Module):
                def __init__(self, cfg):
                    init_module(self, cfg)
            class B(nn.Module):
                def __init__(self, n):
                    self._setup(n)
                def _setup(self, n):
                    super().__init__()
                    self.n = n
            class C(nn.Module):
                def __init__(self, n):
                    init = super().__init__
                    init()
            class D(nn.Module):
                def __init__(self, cfg):
                    init_module(cfg, module=self)
            """
        ),
        # An inherited init-like hook of a base from elsewhere.
        Valid(
            """
            from torch import nn
            from framework import Layer

            class Dense(Layer, nn.Module):
                def __init__(self, n):
                    self._init_layer(n)
            """
        ),
        # Abstract stubs, overloads and `__new__` tricks.
        Valid(
            '''
            from typing import overload
            from torch import nn

            class Base(nn.Module):
                def __init__(self, *args):
                    """Subclasses build the network."""
                    raise NotImplementedError
            class Stub(nn.Module):
                def __init__(self, n: int) -> None: ...
            class Over(nn.Module):
                @overload
                def __init__(self, n: int) -> None: ...
                @overload
                def __init__(self, n: str) -> None: ...
                def __init__(self, n):
                    super().__init__()
            class Singleton(nn.Module):
                def __new__(cls, *a):
                    return _make(cls, *a)
                def __init__(self, n):
                    self.n = n
            '''
        ),
    ]
    INVALID = [
        # The classic: a Module that stores values without initialising the parent.
        Invalid(
            """
            import torch.nn as nn

            class Scale(nn.Module):
                def __init__(self, s):
                    self.s = s

                def forward(self, x):
                    return x * self.s
            """,
            fixed="""
            import torch.nn as nn

            class Scale(nn.Module):
                def __init__(self, s):
                    super().__init__()
                    self.s = s

                def forward(self, x):
                    return x * self.s
            """,
            line=4,
        ),
        # Docstring kept first, comments kept with their statement, aliased imports.
        Invalid(
            '''
            import torch as T
            from torch.nn import Module

            class Head(Module):
                def __init__(self, d):
                    """A linear head."""
                    # layers
                    self.fc = T.nn.Linear(d, 1)

            class Tiny(T.nn.Module):
                def __init__(self): self.k = 2
            ''',
            fixed='''
            import torch as T
            from torch.nn import Module

            class Head(Module):
                def __init__(self, d):
                    """A linear head."""
                    super().__init__()
                    # layers
                    self.fc = T.nn.Linear(d, 1)

            class Tiny(T.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.k = 2
            ''',
            line=5,
            count=2,
        ),
        # A subclass of a torch layer, or of a local Module: the parent needs arguments,
        # so the rule only reports. Methods of the class are looked into.
        Invalid(
            """
            from torch import nn

            class MyLinear(nn.Linear):
                def __init__(self, n):
                    self.n = n

            class Base(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.n = n

            class Child(Base):
                def __init__(self, n):
                    self._build(n)
                    print(self)
                def _build(self, n):
                    self.fc = nn.Linear(n, n)
            """,
            line=4,
            count=2,
        ),
        # An init-like hook is trusted only when a base comes from elsewhere; a class
        # nested in a function, and `self` under another name, are checked alike.
        Invalid(
            """
            from torch import nn

            def make(d):
                class Head(nn.Module):
                    def __init__(me, d):
                        me._init_weights(d)
                return Head(d)
            """,
            fixed="""
            from torch import nn

            def make(d):
                class Head(nn.Module):
                    def __init__(me, d):
                        super().__init__()
                        me._init_weights(d)
                return Head(d)
            """,
            line=5,
        ),
        # Only a docstring: the call goes after it.
        Invalid(
            '''
            from torch import nn
            class Empty(nn.Module):
                def __init__(self):
                    """Nothing yet."""
            ''',
            fixed='''
            from torch import nn
            class Empty(nn.Module):
                def __init__(self):
                    """Nothing yet."""
                    super().__init__()
            ''',
            line=3,
        ),
    ]

    @classmethod
    def screen(cls, index) -> bool:
        """The rule's own analysis, loosened, on the ast: some `nn.Module` class has an
        undecorated, non-stub `__init__` and no `__new__`, and neither that constructor nor
        the methods of the class it calls on `self` surely reach the parent's (see
        `_Screen`)."""
        modules = nn_module_classes(index)
        if not modules:
            return False
        screen = _Screen(index)
        return any(screen.may_report(c) for c in modules)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        own = methods(node)
        init = own.get(INIT)
        if init is None or init.decorators or "__new__" in own or _is_stub(init):
            return
        ctx = self.context
        if not is_nn_module(node, ctx.imports, ctx.module):
            return
        if self._may_initialise(node, init, own):
            return
        cls_name = node.name.value
        self.report(
            init.name,
            self.message.format(cls=cls_name),
            fix=self._fix(node, init),
            help="call `super().__init__(...)` first in `__init__`, before assigning attributes",
            data={"class": cls_name},
        )

    # ----------------------------------------------------------------- analysis

    def _may_initialise(self, cls: cst.ClassDef, init: cst.FunctionDef, own) -> bool:
        """Whether the constructor may reach the parent's `__init__` (conservatively)."""
        local = local_classes(self.context.module)
        chain = self._local_chain(cls, local)
        known: dict[str, cst.FunctionDef] = {}
        for klass in reversed(chain):  # nearer classes override farther ones
            known.update(methods(klass))
        external_bases = any(
            b not in local and not b.startswith("torch.")
            for klass in chain
            for b in base_names(klass, self.context.imports)
        )
        seen: set[str] = set()
        todo = [init]
        while todo:
            func = todo.pop()
            evidence = _evidence(func)
            if evidence.found:
                return True
            for name in evidence.self_methods:
                if name in seen:
                    continue
                seen.add(name)
                if name in known:
                    todo.append(known[name])
                elif external_bases and "init" in name.lower():
                    return True
        return False

    def _local_chain(self, cls: cst.ClassDef, local: dict[str, cst.ClassDef]) -> list[cst.ClassDef]:
        """cls and its ancestors defined in this module, nearest first."""
        out = [cls]
        names = {cls.name.value}
        i = 0
        while i < len(out):
            for base in base_names(out[i], self.context.imports):
                if base in local and base not in names:
                    names.add(base)
                    out.append(local[base])
            i += 1
        return out

    # ----------------------------------------------------------------------- fix

    def _fix(self, cls: cst.ClassDef, init: cst.FunctionDef):
        bases = [a for a in cls.bases if a.keyword is None]
        if not bases:
            return None
        first = self.context.qualname(bases[0].value)
        written = self.context.code(bases[0].value)
        if first not in NN_MODULE and not (first is None and written in ("nn.Module", "Module")):
            return None
        if _self_name(init) is None:
            return None
        call = cst.parse_statement("super().__init__()\n")
        body = init.body
        message = "Call `super().__init__()` first in `__init__`"
        if isinstance(body, cst.SimpleStatementSuite):
            block = cst.IndentedBlock(body=[call, cst.SimpleStatementLine(body=body.body)])
            return self.make_fix(message, (body, block))
        stmts = list(body.body)
        if _is_docstring(stmts[0]):
            if len(stmts) == 1:
                return self.make_fix(message, (stmts[0], cst.FlattenSentinel([stmts[0], call])))
            target = stmts[1]
        else:
            target = stmts[0]
        return self.make_fix(message, (target, cst.FlattenSentinel([call, target])))


# ---------------------------------------------------------------------------- screen


class _Screen:
    """`SuperInitMissing`'s analysis on CPython's ast, answering yes wherever the rule may
    report: it takes the same bail-outs, but follows only the class's own methods (a
    nearer class always wins in the rule's lookup) and trusts an inherited init-like hook
    only when the class itself has a base surely from outside torch and this file."""

    def __init__(self, index) -> None:
        self.index = index

    @cached_property
    def top(self) -> list[ast.ClassDef]:
        """The top-level classes (the rule's `local_classes`)."""
        return [s for s in self.index.tree.body if isinstance(s, ast.ClassDef)]

    def may_report(self, klass: ast.ClassDef) -> bool:
        own = {s.name: s for s in klass.body if isinstance(s, sc.FUNCTIONS)}
        init = own.get(INIT)
        if init is None or init.decorator_list or "__new__" in own or _ast_is_stub(init):
            return False
        seen: set[str] = set()
        inherited: set[str] = set()
        todo = [init]
        while todo:
            found, called = _ast_evidence(todo.pop())
            if found:
                return False
            for name in called - seen:
                seen.add(name)
                if name in own:
                    todo.append(own[name])
                else:
                    inherited.add(name)
        hooks = {n for n in inherited if "init" in n.lower()}
        return not (hooks and self._outside_file(hooks) and self._external_base(klass))

    def _outside_file(self, names: set[str]) -> bool:
        """Whether some name is a method of no top-level class (so no local ancestor of
        the rule's chain defines it)."""
        local = {s.name for c in self.top for s in c.body if isinstance(s, sc.FUNCTIONS)}
        return not names <= local

    def _external_base(self, klass: ast.ClassDef) -> bool:
        """Whether a base of the class is, however the rule resolves it, neither a
        top-level class of the file nor a `torch.` name."""
        local = {c.name for c in self.top}
        for base in klass.bases:
            dotted = sc.dotted_name(base)
            if dotted is None:
                continue
            names = {dotted, *self.index.qualnames(base)}
            if not any(n in local or n.startswith("torch.") for n in names):
                return True
        return False


def _ast_is_stub(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """`_is_stub` on the ast: `...` or `raise` statements, and string constants."""
    stub = False
    for stmt in func.body:
        value = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(stmt, ast.Raise) or (
            isinstance(value, ast.Constant) and value.value is Ellipsis
        ):
            stub = True
        elif not (isinstance(value, ast.Constant) and type(value.value) in (str, bytes)):
            return False
    return stub


def _ast_evidence(func: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[bool, set[str]]:
    """`_InitEvidence` on the ast: whether the body surely has evidence the rule sees,
    and the methods it calls on its first parameter."""
    params = [*func.args.posonlyargs, *func.args.args]
    me = params[0].arg if params else None
    called: set[str] = set()
    for stmt in func.body:
        for node in sc.walk(stmt):
            if isinstance(node, ast.Attribute):
                if node.attr == INIT or (
                    _ast_is_super_call(node.value) and _INIT_SLIP.fullmatch(node.attr)
                ):
                    return True, called
            elif me is not None and isinstance(node, ast.Call):
                callee = node.func
                if isinstance(callee, ast.Attribute) and _is_name(callee.value, me):
                    called.add(callee.attr)
                name = callee.id if isinstance(callee, ast.Name) else (
                    callee.attr if isinstance(callee, ast.Attribute) else None
                )
                if name in HARMLESS_SELF_CALLS:
                    continue
                args = [a.value if isinstance(a, ast.Starred) else a for a in node.args]
                if any(_is_name(a, me) for a in [*args, *(k.value for k in node.keywords)]):
                    return True, called
    return False, called


def _ast_is_super_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _is_name(node.func, "super")


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name
