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
A class is recognised as a `nn.Module` by its bases in the same file: `torch.nn`
classes, Lightning's `LightningModule` and transformers' `PreTrainedModel`, directly or
through classes of the file; subclasses of other third-party modules are not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.semantic import ClassInfo, SemanticModel, is_stub, receiver
from trainlint.semantic import vocabulary as vocab
from trainlint.semantic.imports import dotted_name

INIT = "__init__"
# Calls that receive `self` without being able to run `Module.__init__` on it.
HARMLESS_SELF_CALLS = {
    "super", "setattr", "getattr", "hasattr", "delattr", "isinstance", "issubclass", "print",
    "id", "type", "vars", "repr", "str", "hash", "len", "dir", "callable",
}
# `init` misspellings of a `super()` call (TL007's territory): letters of "init" only.
_INIT_SLIP = re.compile(r"_*[int]{2,6}_*")


@dataclass(frozen=True)
class _Missing:
    anchor: object  # the constructor's `def`
    cls: str
    fixable: bool  # the first base is `nn.Module`, whose constructor takes no arguments


class SuperInitMissing(Rule):
    __doc__ = __doc__
    code = "TL115"
    name = "super-init-missing"
    message = "`{cls}.__init__` never calls `super().__init__()`: the module is never initialised"
    fix_applicability = Applicability.UNSAFE
    tokens = ("__init__", ("nn", "*module*", "PreTrainedModel"))

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
    def candidates(cls, model: SemanticModel) -> list[_Missing]:
        out = []
        for klass in model.classes:
            own = klass.methods
            init = own.get(INIT)
            if init is None or init.decorator_list or "__new__" in own or is_stub(init):
                continue
            if not model.is_module(klass) or _may_initialise(model, klass, init):
                continue
            out.append(_Missing(init, klass.name, _fixable(model, klass, init)))
        return out

    def check(self, candidate: _Missing, node: cst.FunctionDef) -> None:
        self.report(
            node.name,
            self.message.format(cls=candidate.cls),
            fix=self._fix(node) if candidate.fixable else None,
            help="call `super().__init__(...)` first in `__init__`, before assigning attributes",
            data={"class": candidate.cls},
        )

    def _fix(self, init: cst.FunctionDef):
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


def _may_initialise(model: SemanticModel, cls: ClassInfo, init) -> bool:
    """Whether the constructor may reach the parent's `__init__` (conservatively): it, or
    a method of the class or a local base it calls on `self`, mentions an `__init__`,
    misspells a `super()` one, or passes `self` to a call; or, with a base from outside
    torch and this file, it calls an inherited init-like method."""
    chain = model.chain(cls)
    known = {}
    for klass in reversed(chain):  # nearer classes override farther ones
        known.update(klass.methods)
    local = model.top_level_classes
    external_bases = any(
        b not in local and not b.startswith("torch.")
        for klass in chain
        for b in model.base_names(klass)
    )
    seen: set[str] = set()
    todo = [init]
    while todo:
        func = todo.pop()
        scope = model.scope_of(func)
        if INIT in model.attribute_names_in(scope) or any(
            _INIT_SLIP.fullmatch(attr) for attr in model.super_attributes_in(scope)
        ):
            return True
        me = receiver(func)
        if me is None:
            continue
        calls = list(model.calls_in(scope))
        if any(c.callee not in HARMLESS_SELF_CALLS and c.passes(me) for c in calls):
            return True
        for name in {c.callee for c in calls if c.receiver == me} - seen:
            seen.add(name)
            if name in known:
                todo.append(known[name])
            elif external_bases and "init" in name.lower():
                return True
    return False


def _fixable(model: SemanticModel, cls: ClassInfo, init) -> bool:
    bases = cls.node.bases
    if not bases or receiver(init) is None:
        return False
    first = model.imports.qualname(bases[0])
    return first in vocab.MODULE or (first is None and dotted_name(bases[0]) in vocab.MODULE_AS_WRITTEN)


def _is_docstring(stmt: cst.BaseStatement) -> bool:
    return (
        isinstance(stmt, cst.SimpleStatementLine)
        and len(stmt.body) == 1
        and isinstance(stmt.body[0], cst.Expr)
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )
