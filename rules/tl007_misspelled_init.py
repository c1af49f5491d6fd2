"""
## What it does
Flags a class whose constructor is misspelled: a method named `init`, `_init_`, `__init`,
`init__`, `__init_`, `_init__`, `__int__`, `__inti__`, `__intit__` or another one-letter
slip of `__init__`, in a class that defines no `__init__`. It also flags
`super().init()` / `super(Cls, self).init()` (and the same slips) called as a statement in
a constructor, where no base class has such a method.

## Why is this bad?
Python only runs a method called exactly `__init__` when an object is created. With the
name misspelled the class silently inherits its parent's constructor instead: for an
`nn.Module`, `LDAMLoss(cls_num_list)` raises `TypeError` (or, without arguments, builds a
module whose attributes are never set, and fails later with `AttributeError`), and the
body of the intended constructor never runs. `super().init()` raises `AttributeError`
because `nn.Module` has no method `init`, so the parent's initialisation never happens.

## Example
```python
class LDAMLoss(nn.Module):
    def init(self, cls_num_list, max_m=0.5, weight=None, s=30):
        super(LDAMLoss, self).init()
        self.s = s
```

## Use instead
```python
class LDAMLoss(nn.Module):
    def __init__(self, cls_num_list, max_m=0.5, weight=None, s=30):
        super(LDAMLoss, self).__init__()
        self.s = s
```

## Fix safety
Unsafe. The method is renamed to `__init__` and the `super()` call to
`super().__init__()`, so construction now runs code that never ran before, and the
signature of the class changes for its callers (e.g. code that called `Cls()` and then
set attributes by hand).

## Known false positives
The rule leans quiet; it does not see callers in other files. It stays silent on:
- a method named `init` (or one of the slips) that is referenced anywhere in the file
  (`self.init()`, `obj.init(...)`, `getattr(obj, "init")`, `reset = init`), or that is a
  static/class method or carries any decorator: that is an API, not a constructor;
- a plain `init` in a class that is not an `nn.Module`, optimizer or LR scheduler, unless
  its body shows it was meant as the constructor (`super().__init__()`,
  `Base.__init__(self, ...)`, or a `super().init()` that no base can answer). An `init`
  API of a Module subclass that is only called from another file is therefore flagged:
  suppress it, or call it in the same file;
- a plain `init` of a Module whose local parent class already defines `__init__`, or
  whose bases include a class from outside torch (a framework base might call
  `self.init()` from its own constructor);
- `__int__(self)` with no other parameter, since that is Python's int conversion, unless
  its body calls `super().__init__()` or sets attributes without returning or raising;
- classes that define `__init__` (directly, by assignment, or through `@dataclass`/attrs),
  and classes with more than one candidate method (which one was meant is unclear).
"""

from __future__ import annotations

import ast
import builtins

import libcst as cst

from trainlint import screen as sc
from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import (
    Visitor,
    is_nn_module,
    is_torch_scheduler_subclass,
    local_classes,
)
from trainlint.traverse import walk

INIT = "__init__"

# Cores one slip away from "init" (deletion, transposition, or a doubled / swapped letter
# of i, n, t); a dunder-decorated method with one of these cores is a misspelled
# constructor. Other letters (`__unit__`, `__exit__`) are left alone.
_CORES: set[str] = set()
for _i in range(4):
    _CORES.add("init"[:_i] + "init"[_i + 1 :])  # deletion
    if _i < 3:
        _CORES.add("init"[:_i] + "init"[_i + 1] + "init"[_i] + "init"[_i + 2 :])  # swap
    for _c in "int":
        _CORES.add("init"[:_i] + _c + "init"[_i + 1 :])  # substitution
for _i in range(5):
    for _c in "int":
        _CORES.add("init"[:_i] + _c + "init"[_i:])  # insertion
_CORES.discard("init")
CORES = frozenset(_CORES)

# Class decorators that generate an `__init__`.
INIT_GENERATING_DECORATORS = {"dataclass", "s", "attrs", "define", "frozen", "mutable"}


def classify(name: str) -> str | None:
    """'plain' for `init`, 'int' for `__int__`, 'dunder' for other slips; else None."""
    if name == "init":
        return "plain"
    if name == INIT:
        return None
    core = name.strip("_")
    lead = len(name) - len(name.lstrip("_"))
    trail = len(name) - len(name.rstrip("_"))
    if core.lower() == "init":
        if (lead, trail) in ((0, 0), (1, 0), (0, 1)):  # `Init`, `_init` helper, `init_`
            return None
        return "dunder"
    if lead == 2 and trail == 2 and core in CORES:
        return "int" if core == "int" else "dunder"
    return None


class MisspelledInit(Rule):
    __doc__ = __doc__
    code = "TL007"
    name = "misspelled-init"
    message = "Method `{method}` of `{cls}` looks like a misspelled `__init__`: it never runs on construction"
    fix_applicability = Applicability.UNSAFE
    # `init`, or a word with underscores before or after `init` or one of the cores
    tokens = (("init", *(f"*{w}*" for core in sorted({"init", *CORES}) for w in (f"_{core}", f"{core}_"))),)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """A `super(...).<slip>()` call, or a class without a direct `__init__` that
        defines an undecorated method named like a slip of `__init__`."""
        for call in index.nodes(ast.Call):
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Call)
                and isinstance(func.value.func, ast.Name)
                and func.value.func.id == "super"
                and classify(func.attr)
            ):
                return True
        for klass in index.nodes(ast.ClassDef):
            defs = sc.methods(klass)
            if any(f.name == INIT for f in defs):
                continue
            for f in defs:
                if classify(f.name) and not f.decorator_list and (f.args.posonlyargs or f.args.args):
                    return True
        return False

    VALID = [
        # A subclass calls the base's `init` through super(): an API, not a constructor.
        Valid(
            """
            from torch import nn
            class Base(nn.Module):
                def init(self, m):
                    self.m = m
            class Child(Base):
                def __init__(self, m):
                    super().__init__()
                    super().init(m)
            """
        ),
        # A real constructor next to an `init` API.
        Valid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                def init(self, n):
                    self.n = n
            """
        ),
        # A documented `init()` API of a plain class, called in the file.
        Valid(
            '''
            class Client:
                def init(self, url):
                    """Connect to `url`; call before use."""
                    self.url = url
            client = Client()
            client.init("http://localhost")
            '''
        ),
        # Module with a lazy `init` called from forward.
        Valid(
            """
            from torch import nn
            class Lazy(nn.Module):
                def init(self, x):
                    self.w = nn.Parameter(x.new_zeros(x.shape[-1]))
                def forward(self, x):
                    if not hasattr(self, "w"):
                        self.init(x)
                    return x * self.w
            """
        ),
        # Python's int conversion.
        Valid(
            """
            class Step:
                def __int__(self):
                    return self.value
            class Never:
                def __int__(self):
                    raise TypeError("no int")
            """
        ),
        # Plain `init` on a non-Module class with no sign of being a constructor.
        Valid(
            """
            class Roboflow:
                def init(self, url, token):
                    self.url = url
            """
        ),
        # Static/class methods named `init` (torch.testing FSDP models, distributed tests).
        Valid(
            """
            import torch.nn as nn
            class Model(nn.Module):
                @staticmethod
                def init(group, mode):
                    return Model()
                @classmethod
                def _init_(cls):
                    return cls()
            """
        ),
        # Private helpers `_init` / `init_`, and `nn.init` calls are not references.
        Valid(
            """
            import torch.nn as nn
            class Block(nn.Module):
                def _init(self, n):
                    self.n = n
                def init_(self):
                    nn.init.zeros_(self.w)
            """
        ),
        # `init` as a hook called by a local base constructor.
        Valid(
            """
            import torch.nn as nn
            class Base(nn.Module):
                def __init__(self, *args):
                    super().__init__()
                    self.init(*args)
            class Child(Base):
                def init(self, n):
                    self.n = n
            """
        ),
        # A base from outside torch may call `init` itself; chaining to its `init` is fine.
        Valid(
            """
            import torch.nn as nn
            from mylib import Hooked
            class Net(nn.Module, Hooked):
                def init(self, n):
                    super().init()
                    self.n = n
            class Other(Hooked):
                def __init__(self):
                    super().init()
            """
        ),
        # A local parent defines `init`: `super().init()` chains to it.
        Valid(
            """
            class Base:
                def init(self):
                    self.ready = True
            class Child(Base):
                def reset(self):
                    super().init()
            c = Child()
            c.init()
            """
        ),
        # Dataclasses generate `__init__`.
        Valid(
            """
            from dataclasses import dataclass
            @dataclass
            class Cfg:
                lr: float = 0.1
                def _init_(self):
                    self.ready = True
            """
        ),
        # A subclass of int may chain its conversion.
        Valid(
            """
            class Flag(int):
                def __int__(self):
                    return super().__int__()
            """
        ),
        # Lightning's graveyard: a module-level function `init` installed as `__init__`.
        Valid(
            """
            def _create_class(name, new_class):
                def init(self, *args, **kwargs):
                    new_class.__init__(self, *args, **kwargs)
                return type(name, (new_class,), {"__init__": init})
            """
        ),
        # Name used through `getattr`, and a class with two candidates (ambiguous).
        Valid(
            """
            import torch.nn as nn
            class A(nn.Module):
                def init(self, n):
                    self.n = n
            getattr(A(), "init")(3)
            class B(nn.Module):
                def init(self, n):
                    self.n = n
                def _init_(self, n):
                    self.n = n
            """
        ),
        # Plain `init` of a Module whose local parent already has a constructor.
        Valid(
            """
            import torch.nn as nn
            class Base(nn.Module):
                def __init__(self):
                    super().__init__()
            class Child(Base):
                def init(self, n):
                    self.n = n
            """
        ),
    ]
    INVALID = [
        # A `super().init()` in a class that does not derive from this one is no use of
        # its `init` (found by the fuzz tests: fixing it must not change this verdict).
        Invalid(
            """
            from torch import nn
            class LDAMLoss(nn.Module):
                def init(self, m):
                    self.m = m
            class Other(nn.Module):
                def __init__(self, m):
                    super().init()
                    self.m = m
            """,
            fixed="""
            from torch import nn
            class LDAMLoss(nn.Module):
                def __init__(self, m):
                    self.m = m
            class Other(nn.Module):
                def __init__(self, m):
                    super().__init__()
                    self.m = m
            """,
            line=3,
            count=2,
        ),
        # The seed page's LDAM loss.
        Invalid(
            """
            import numpy as np
            import torch
            import torch.nn as nn

            class LDAMLoss(nn.Module):
                def init(self, cls_num_list, max_m=0.5, weight=None, s=30):
                    super(LDAMLoss, self).init()
                    m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
                    m_list = m_list * (max_m / np.max(m_list))
                    self.m_list = torch.tensor(m_list)
                    assert s > 0
                    self.s = s
                    self.weight = weight

                def forward(self, x, target):
                    return x
            """,
            fixed="""
            import numpy as np
            import torch
            import torch.nn as nn

            class LDAMLoss(nn.Module):
                def __init__(self, cls_num_list, max_m=0.5, weight=None, s=30):
                    super(LDAMLoss, self).__init__()
                    m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
                    m_list = m_list * (max_m / np.max(m_list))
                    self.m_list = torch.tensor(m_list)
                    assert s > 0
                    self.s = s
                    self.weight = weight

                def forward(self, x, target):
                    return x
            """,
            line=6,
            count=2,
        ),
        # Aliased import, `nn.init` calls in the file, zero-argument super.
        Invalid(
            """
            import torch as T
            from torch.nn import Module

            class Head(Module):
                def init(self, d):
                    super().init()
                    self.w = T.nn.Parameter(T.empty(d))
                    T.nn.init.zeros_(self.w)
            """,
            fixed="""
            import torch as T
            from torch.nn import Module

            class Head(Module):
                def __init__(self, d):
                    super().__init__()
                    self.w = T.nn.Parameter(T.empty(d))
                    T.nn.init.zeros_(self.w)
            """,
            line=5,
            count=2,
        ),
        # Underscore slips, in any class.
        Invalid(
            """
            class Meter:
                def _init_(self, name):
                    self.name = name
            """,
            fixed="""
            class Meter:
                def __init__(self, name):
                    self.name = name
            """,
            line=2,
        ),
        Invalid(
            """
            from torch import nn
            class Net(nn.Module):
                def __init_(self, n):
                    super(Net, self).__init__()
                    self.fc = nn.Linear(n, n)
            """,
            fixed="""
            from torch import nn
            class Net(nn.Module):
                def __init__(self, n):
                    super(Net, self).__init__()
                    self.fc = nn.Linear(n, n)
            """,
            line=3,
        ),
        Invalid(
            "class A:\n    def init__(self, x):\n        self.x = x\n",
            fixed="class A:\n    def __init__(self, x):\n        self.x = x\n",
        ),
        Invalid(
            "class A(object):\n    def __init(self, x):\n        self.x = x\n",
            fixed="class A(object):\n    def __init__(self, x):\n        self.x = x\n",
        ),
        # Letter slips: `__int__` with parameters, `__inti__`, `__intit__`.
        Invalid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                def __int__(self, n):
                    super().__int__()
                    self.n = n
            """,
            fixed="""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.n = n
            """,
            count=2,
        ),
        Invalid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                def __int__(self):
                    super().__init__()
                    self.fc = nn.Linear(2, 2)
            """,
            fixed="""
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(2, 2)
            """,
        ),
        # `__int__` with (defaulted) parameters that sets attributes: not a conversion.
        Invalid(
            """
            from torch.utils import data
            class Images(data.Dataset):
                def __int__(self, root=None, transform=None):
                    if root is None:
                        raise ValueError("root is required")
                    self.root = root
            """,
            fixed="""
            from torch.utils import data
            class Images(data.Dataset):
                def __init__(self, root=None, transform=None):
                    if root is None:
                        raise ValueError("root is required")
                    self.root = root
            """,
            line=3,
        ),
        Invalid(
            "class A:\n    def __inti__(self, x):\n        self.x = x\n",
            fixed="class A:\n    def __init__(self, x):\n        self.x = x\n",
        ),
        Invalid(
            "class A:\n    def __intit__(self, x):\n        self.x = x\n",
            fixed="class A:\n    def __init__(self, x):\n        self.x = x\n",
        ),
        # A correct constructor that calls `super().init()`.
        Invalid(
            """
            import torch
            class Loss(torch.nn.Module):
                def __init__(self, s=30):
                    super(Loss, self).init()
                    self.s = s
            """,
            fixed="""
            import torch
            class Loss(torch.nn.Module):
                def __init__(self, s=30):
                    super(Loss, self).__init__()
                    self.s = s
            """,
            line=4,
        ),
        # A plain class whose `init` is clearly its constructor.
        Invalid(
            """
            class Config(dict):
                def init(self, **kw):
                    super().__init__(**kw)
            """,
            fixed="""
            class Config(dict):
                def __init__(self, **kw):
                    super().__init__(**kw)
            """,
        ),
        # An LR scheduler subclass whose `init` calls the parent constructor.
        Invalid(
            """
            from torch.optim.lr_scheduler import LRScheduler
            class Warmup(LRScheduler):
                def init(self, optimizer, warmup):
                    self.warmup = warmup
                    super().__init__(optimizer)
            """,
            fixed="""
            from torch.optim.lr_scheduler import LRScheduler
            class Warmup(LRScheduler):
                def __init__(self, optimizer, warmup):
                    self.warmup = warmup
                    super().__init__(optimizer)
            """,
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not isinstance(node.body, cst.IndentedBlock):
            return
        defs = [s for s in node.body.body if isinstance(s, cst.FunctionDef)]
        flagged: list[cst.FunctionDef] = []
        if not _defines_init(node):
            candidates = [f for f in defs if classify(f.name.value)]
            if len(candidates) == 1 and self._is_misspelled_constructor(node, candidates[0]):
                flagged.append(candidates[0])
        for func in flagged:
            self.report(
                func.name,
                self.message.format(method=func.name.value, cls=node.name.value),
                fix=self.make_fix(
                    f"Rename `{func.name.value}` to `__init__`", (func.name, cst.Name(INIT))
                ),
                help="Python only runs a method named exactly `__init__` on construction",
            )
        for func in defs:
            if func.name.value == INIT or func in flagged:
                for call, attr in _super_calls(func):
                    if self._bases_lack(node, attr.value):
                        self.report(
                            call,
                            f"`{self.context.code(call.func)}()` calls a method no base class of "
                            f"`{node.name.value}` has; did you mean `super().__init__()`?",
                            fix=self.make_fix(
                                f"Call `super().__init__()` instead of `super().{attr.value}()`",
                                (attr, cst.Name(INIT)),
                            ),
                        )

    # ------------------------------------------------------------------ decisions

    def _is_misspelled_constructor(self, cls: cst.ClassDef, func: cst.FunctionDef) -> bool:
        name = func.name.value
        kind = classify(name)
        if kind is None or func.decorators or not _positional(func):
            return False
        if self._referenced(cls, func):
            return False
        evidence = self._constructor_evidence(cls, func)
        if kind == "int":
            return (
                evidence
                or _has_required_extra(func)
                or (
                    _sets_attributes(func)
                    and (len(_positional(func)) > 1 or not _returns_or_raises(func))
                )
            )
        if kind == "dunder":
            return evidence or self._bases_lack(cls, name)
        # plain `init`
        if evidence:
            return True
        return (
            self._torch_derived(cls)
            and self._bases_lack(cls, name)
            and not self._inherits_local_init(cls)
            and _sets_attributes(func)
        )

    def _constructor_evidence(self, cls: cst.ClassDef, func: cst.FunctionDef) -> bool:
        """The body calls `super().__init__`, `Base.__init__(self, ...)`, or a slip of it on super()."""
        finder = _CallFinder()
        _visit_body(func, finder)
        self_name = _positional(func)[0].name.value
        for call in finder.calls:
            target = call.func
            if not isinstance(target, cst.Attribute):
                continue
            attr = target.attr.value
            if _is_super_call(target.value):
                if attr == INIT:
                    return True
                if classify(attr) and self._bases_lack(cls, attr):
                    return True
            elif (
                attr == INIT
                and call.args
                and isinstance(call.args[0].value, cst.Name)
                and call.args[0].value.value == self_name
            ):
                return True
        return False

    def _torch_derived(self, cls: cst.ClassDef) -> bool:
        imports, module = self.context.imports, self.context.module
        if is_nn_module(cls, imports, module) or is_torch_scheduler_subclass(cls, imports, module):
            return True
        return any(
            (imports.qualname(a.value) or "").startswith("torch.optim.")
            for a in cls.bases
            if a.keyword is None
        )

    def _bases_lack(self, cls: cst.ClassDef, name: str, seen: frozenset[str] = frozenset()) -> bool:
        """Every base is known (torch, typing, builtins, a local class) and has no `name`."""
        imports = self.context.imports
        local = local_classes(self.context.module)
        for arg in cls.bases:
            if arg.keyword is not None:
                meta = imports.qualname(arg.value) or dotted_name(arg.value) or ""
                if arg.keyword.value == "metaclass" and meta.split(".")[-1] in ("ABCMeta", "type"):
                    continue
                return False
            value = arg.value
            if isinstance(value, cst.Subscript):  # Generic[T]
                value = value.value
            qual = imports.qualname(value)
            dotted = dotted_name(value)
            if qual is not None:
                if qual.startswith(("typing.", "abc.", "collections.abc.")):
                    continue
                # torch.Tensor has `__int__`; no torch class has `init` or another slip
                if qual.startswith("torch.") and (name != "__int__" or qual.startswith("torch.nn.")):
                    continue
                return False
            if dotted is None:
                return False
            if dotted in local and dotted not in seen:
                base = local[dotted]
                if _defines(base, name) or not self._bases_lack(base, name, seen | {dotted}):
                    return False
                continue
            if dotted.startswith("nn.") or (dotted.startswith("torch.") and name != "__int__"):
                continue  # written without an import (a snippet)
            obj = getattr(builtins, dotted, None)
            if isinstance(obj, type) and not hasattr(obj, name):
                continue
            return False
        return True

    def _inherits_local_init(self, cls: cst.ClassDef, seen: frozenset[str] = frozenset()) -> bool:
        local = local_classes(self.context.module)
        for arg in cls.bases:
            dotted = dotted_name(arg.value)
            if dotted in local and dotted not in seen and self.context.imports.qualname(arg.value) is None:
                base = local[dotted]
                if _defines_init(base) or self._inherits_local_init(base, seen | {dotted}):
                    return True
        return False

    def _referenced(self, cls: cst.ClassDef, func: cst.FunctionDef) -> bool:
        """Anything in the file uses the name, other than `super().name()` calls in this
        class or in classes that do not derive from it (those cannot reach this method)."""
        name = func.name.value
        classes = local_classes(self.context.module)
        own_super = {
            id(attr)
            for other in [cls, *(c for c in classes.values() if not _derives_from(c, cls.name.value, classes))]
            for f in other.body.body
            if isinstance(f, cst.FunctionDef)
            for _, attr in _super_calls(f, any_statement=True)
        }
        finder = _NameUses(name)
        walk(self.context.module, finder)
        for attr in finder.attributes:
            if id(attr.attr) in own_super:
                continue
            if self.context.qualname(attr) is not None:
                continue  # a module path such as `nn.init`
            dotted = dotted_name(attr)
            if dotted is not None and dotted.split(".")[0] in ("nn", "torch"):
                continue
            return True
        if finder.strings:
            return True
        # class-level aliases such as `reset = init`
        for stmt in cls.body.body:
            if not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                names = _NameUses(name)
                walk(stmt, names)
                if names.names:
                    return True
        return False


# ------------------------------------------------------------------ syntax helpers


def _derives_from(cls: cst.ClassDef, name: str, classes: dict, seen: frozenset = frozenset()) -> bool:
    """Whether a local class has `name` among its bases, directly or through local classes."""
    for base in cls.bases:
        last = (dotted_name(base.value) or "").rsplit(".", 1)[-1]
        if last == name:
            return True
        if last in classes and last not in seen and _derives_from(classes[last], name, classes, seen | {last}):
            return True
    return False


def _defines(cls: cst.ClassDef, name: str) -> bool:
    finder = _ClassLevelNames()
    for stmt in cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ():
        walk(stmt, finder)
    return name in finder.names


def _defines_init(cls: cst.ClassDef) -> bool:
    for dec in cls.decorators:
        target = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
        dotted = dotted_name(target) or ""
        if dotted.split(".")[-1] in INIT_GENERATING_DECORATORS:
            return True
    return _defines(cls, INIT)


class _ClassLevelNames(Visitor):
    """Names bound at class level: defs and assignment targets, also under if/try."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.names.add(node.name.value)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.names.add(node.name.value)
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        if isinstance(node.target, cst.Name):
            self.names.add(node.target.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Name):
            self.names.add(node.target.value)


def _positional(func: cst.FunctionDef) -> list[cst.Param]:
    return [*func.params.posonly_params, *func.params.params]


def _has_required_extra(func: cst.FunctionDef) -> bool:
    params = [*_positional(func)[1:], *func.params.kwonly_params]
    return any(p.default is None for p in params)


def _is_super_call(node: cst.BaseExpression) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Name)
        and node.func.value == "super"
    )


def _visit_body(func: cst.FunctionDef, visitor: cst.CSTVisitor) -> None:
    walk(func.body, visitor)


class _BodyVisitor(Visitor):
    """Does not enter nested functions, lambdas or classes."""

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


class _CallFinder(_BodyVisitor):
    def __init__(self) -> None:
        self.calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)


class _SuperStatements(_BodyVisitor):
    """`super(...).<slip>(...)` calls; by default only those whose result is discarded."""

    def __init__(self, any_statement: bool) -> None:
        self.any_statement = any_statement
        self.found: list[tuple[cst.Call, cst.Name]] = []

    def _check(self, call: cst.BaseExpression) -> None:
        if (
            isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and _is_super_call(call.func.value)
            and classify(call.func.attr.value)
        ):
            self.found.append((call, call.func.attr))

    def visit_Expr(self, node: cst.Expr) -> None:
        if not self.any_statement:
            self._check(node.value)

    def visit_Call(self, node: cst.Call) -> None:
        if self.any_statement:
            self._check(node)


def _super_calls(func: cst.FunctionDef, any_statement: bool = False) -> list[tuple[cst.Call, cst.Name]]:
    finder = _SuperStatements(any_statement)
    _visit_body(func, finder)
    return finder.found


class _SelfWrites(_BodyVisitor):
    def __init__(self, self_name: str) -> None:
        self.self_name = self_name
        self.found = False

    def _target(self, node: cst.BaseExpression) -> None:
        if isinstance(node, (cst.Tuple, cst.List)):
            for el in node.elements:
                self._target(el.value)
        elif (
            isinstance(node, cst.Attribute)
            and isinstance(node.value, cst.Name)
            and node.value.value == self.self_name
        ):
            self.found = True

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._target(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._target(node.target)


def _sets_attributes(func: cst.FunctionDef) -> bool:
    params = _positional(func)
    if not params:
        return False
    finder = _SelfWrites(params[0].name.value)
    _visit_body(func, finder)
    return finder.found


class _ReturnsOrRaises(_BodyVisitor):
    def __init__(self) -> None:
        self.found = False

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            self.found = True

    def visit_Raise(self, node: cst.Raise) -> None:
        self.found = True


def _returns_or_raises(func: cst.FunctionDef) -> bool:
    finder = _ReturnsOrRaises()
    _visit_body(func, finder)
    return finder.found


class _NameUses(Visitor):
    """Attribute accesses `x.name`, string literals equal to `name`, and bare `name`s."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.attributes: list[cst.Attribute] = []
        self.strings: list[cst.SimpleString] = []
        self.names: list[cst.Name] = []

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if node.attr.value == self.name:
            self.attributes.append(node)
        walk(node.value, self)  # the attribute's own Name is not a bare name
        return False

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        try:
            value = node.evaluated_value
        except Exception:  # noqa: BLE001 - odd literals are not references
            return
        if value == self.name:
            self.strings.append(node)

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == self.name:
            self.names.append(node)
