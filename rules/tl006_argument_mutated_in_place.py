"""
## What it does
Flags a function that changes an object its caller owns, in one of two ways:

- it mutates a parameter whose default is a mutable object (`steps=[]`, `cache={}`):
  a mutating method (`append`, `extend`, `insert`, `pop`, `update`, `setdefault`, `add`...),
  item assignment or deletion (`steps[0] = 1`, `del steps[0]`), or an augmented
  assignment (`steps += [x]`, which extends the list in place);
- it reorders a parameter in place: `steps.sort()`, `steps.reverse()`,
  `random.shuffle(steps)` or `numpy.random.shuffle(steps)` (names resolved through the
  module's imports, so `from random import shuffle` and `import numpy as np` count).

## Why is this bad?
A default is evaluated once, when the `def` runs; mutating it changes the default that
every later call sees, so the second scheduler or the second model built in a process
starts from the first one's leftovers. Reordering a parameter in place changes the
caller's list under it: a config's milestone list passed to a scheduler comes back
sorted, a dataset's index list passed to a helper comes back shuffled. Neither shows up
in a single run; both show up as "the second experiment behaves differently".

## Example
```python
class CosineAnnealingWarmbootingLR:
    def __init__(self, optimizer, epochs=0, eta_min=0.05, steps=[]):
        steps.sort()
        self.steps = [0] + [s for s in steps if s < epochs] + [epochs]
```

## Use instead
```python
class CosineAnnealingWarmbootingLR:
    def __init__(self, optimizer, epochs=0, eta_min=0.05, steps=()):
        steps = sorted(steps)
        self.steps = [0] + [s for s in steps if s < epochs] + [epochs]
```

## Fix safety
Unsafe. Only a reorder that stands as a statement of its own is rewritten to work on a
copy: `steps.sort(key=k, reverse=r)` becomes `steps = sorted(steps, key=k, reverse=r)`
(same stable order), `steps.reverse()` becomes `steps = steps[::-1]`, and
`random.shuffle(steps)` becomes `steps = list(steps)` followed by the unchanged
`random.shuffle(steps)` (`np.random.shuffle(steps)`: `steps = steps.copy()` first).
The caller's object is no longer changed, which is the point, but code that relied on
the in-place effect (a helper meant to sort its argument) changes behaviour, and
`sorted`/`list` turn a NumPy array or a deque into a list. The shuffle rewrite keeps the
permutation and the random stream identical; the shorter
`steps = random.sample(steps, len(steps))` was not used because it draws differently
(checked on CPython 3.11: a different permutation for every length above 1 and a
different generator state afterwards, since `sample` makes one extra draw). The fix is
withheld when the parameter may have been aliased before the reorder
(`self.steps = steps` followed by `steps.sort()` relies on the alias being sorted).
Other mutations are reported only; TL005 rewrites the mutable default itself.

## Known false positives
- A memo cache kept in a default on purpose (`def f(x, _cache={})`) is skipped when the
  parameter's name starts with `_` or mentions `cache`; other deliberate uses are still
  reported (a `memo=dict()` handed to `copy.deepcopy` is a bug: the ids it keys on are
  reused once objects die).
- A helper whose documented job is to reorder its argument in place is reported too.
- An unannotated tensor parameter sorted by a bare `x.sort()` statement is taken for a
  list (a tensor's `sort` returns a new tensor); annotate it `torch.Tensor` or pass
  `dim=` and the rule stays quiet.

Limits: the rule does not see mutations made by callees (`helper(steps)`), through
aliases (`s = steps; s.sort()`), inside nested functions, or of elements
(`steps[0].append(x)`). It stays quiet once the parameter has been rebound anywhere
before the mutation, or anywhere inside a loop around it; `if steps is None: steps = []`
and `steps = steps or []` keep the caller's object and do not count as rebinding. A
parameter that the function also fills (`out.append(x); out.sort()`) is treated as an
out-parameter and its reorders are not reported unless it has a mutable default.
`**kwargs` (a fresh dict per call), `self` and `cls` are never reported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

import libcst as cst

from trainlint import screen as sc
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import (
    Visitor,
    names_in,
)
from trainlint.traverse import walk

# Container methods that change the receiver (list, dict, set, deque, bytearray).
MUTATING_METHODS = {
    "append", "extend", "insert", "remove", "pop", "clear", "update", "setdefault",
    "popitem", "add", "discard", "difference_update", "intersection_update",
    "symmetric_difference_update", "appendleft", "extendleft", "popleft", "rotate",
}
REORDER_METHODS = {"sort", "reverse"}
SHUFFLES = {"random.shuffle": "stdlib", "numpy.random.shuffle": "numpy"}
MUTABLE_FACTORIES = {
    "list", "dict", "set", "bytearray", "OrderedDict", "defaultdict", "deque", "Counter",
}
# Calls that read an argument without keeping a reference to it.
NON_ALIASING_CALLS = {
    "len", "isinstance", "sorted", "list", "tuple", "set", "frozenset", "min", "max", "sum",
    "any", "all", "print", "bool", "str", "repr", "int", "float", "hash", "id", "type",
}
RECEIVER_NAMES = {"self", "cls", "mcs", "metacls"}
_SHUFFLES = frozenset(SHUFFLES)
_DISPLAYS = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)


def _ast_is_mutable_default(node: ast.AST) -> bool:
    """`is_mutable_default` on the stdlib tree."""
    if isinstance(node, _DISPLAYS):
        return True
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name):
            return func.id in MUTABLE_FACTORIES
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return func.value.id == "collections" and func.attr in MUTABLE_FACTORIES
    return False


def _ast_list_reorder_signature(method: str, call: ast.Call) -> bool:
    """`_list_reorder_signature` on the stdlib tree."""
    if method == "reverse":
        return not call.args and not call.keywords
    return not call.args and all(k.arg in ("key", "reverse") for k in call.keywords)


# ------------------------------------------------------------------ private helpers
# (candidates for rules/_analysis.py: is_mutable_default is shared with TL005, and
# the in-function event scan is a general "what happens to parameter p" analysis)


def is_mutable_default(node: cst.BaseExpression) -> bool:
    """`[]`, `{}`, `{1}`, comprehensions, `list()`, `collections.defaultdict(list)`..."""
    if isinstance(node, (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp, cst.SetComp)):
        return True
    if isinstance(node, cst.Call):
        func = node.func
        if isinstance(func, cst.Name):
            return func.value in MUTABLE_FACTORIES
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            return func.value.value == "collections" and func.attr.value in MUTABLE_FACTORIES
    return False


def _is_name(node: cst.CSTNode | None, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _flatten(node: cst.BaseExpression):
    if isinstance(node, (cst.Tuple, cst.List)):
        for el in node.elements:
            yield from _flatten(el.value)
    elif isinstance(node, cst.StarredElement):
        yield from _flatten(node.value)
    else:
        yield node


def _subscripts_param(node: cst.CSTNode, params: set[str]) -> bool:
    """`p[...]` for a parameter p."""
    return (
        isinstance(node, cst.Subscript)
        and isinstance(node.value, cst.Name)
        and node.value.value in params
    )


def _is_none_test(test: cst.BaseExpression, name: str) -> bool:
    """`name is None`, `not name`, `name == None`."""
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return _is_name(test.expression, name)
    if isinstance(test, cst.Comparison) and _is_name(test.left, name) and len(test.comparisons) == 1:
        comp = test.comparisons[0]
        return isinstance(comp.operator, (cst.Is, cst.Equal)) and _is_name(comp.comparator, "None")
    return False


def _keeps_identity(value: cst.BaseExpression, name: str) -> bool:
    """`name or []`, `[] if name is None else name`: the caller's object flows through."""
    if isinstance(value, cst.BooleanOperation) and isinstance(value.operator, cst.Or):
        return _is_name(value.left, name)
    if isinstance(value, cst.IfExp):
        return _is_name(value.body, name) or _is_name(value.orelse, name)
    return False


@dataclass
class _Event:
    kind: str  # "bind", "keep" (binding that keeps the caller's object), "mutate", "reorder", "alias"
    name: str
    index: int
    node: cst.CSTNode
    loops: tuple[cst.CSTNode, ...] = ()
    statement: cst.CSTNode | None = None  # for reorders: the Expr standing alone, if any
    line: cst.CSTNode | None = None  # the enclosing SimpleStatementLine / suite
    shuffle: str | None = None  # "stdlib" / "numpy" for shuffle calls


@dataclass
class _Scan(Visitor):
    """What happens to each parameter inside one function body, in evaluation order.

    Nested functions, lambdas and classes are not entered; a parameter mentioned inside
    them counts as an alias (it may be captured).
    """

    params: set[str]
    qualname: object  # Context.qualname
    events: list[_Event] = field(default_factory=list)
    stack: list[cst.CSTNode] = field(default_factory=list)
    loops: list[cst.CSTNode] = field(default_factory=list)
    quiet_names: set[int] = field(default_factory=set)  # Name nodes already classified
    keep_values: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        super().__init__()

    # -- bookkeeping
    def on_visit(self, node: cst.CSTNode) -> bool:
        descend = super().on_visit(node)
        self.stack.append(node)  # on_leave runs even when the children are skipped
        if isinstance(node, (cst.For, cst.While)):
            self.loops.append(node)
        return descend

    def on_leave(self, original_node: cst.CSTNode) -> None:
        super().on_leave(original_node)
        self.stack.pop()
        if self.loops and self.loops[-1] is original_node:
            self.loops.pop()

    def _add(self, kind: str, name: str, node: cst.CSTNode, **kw) -> None:
        self.events.append(
            _Event(kind, name, len(self.events), node, tuple(self.loops), **kw)
        )

    def _nested_scope(self, node: cst.CSTNode) -> bool:
        for name in names_in(node) & self.params:
            self._add("alias", name, node)
        return False

    visit_FunctionDef = _nested_scope
    visit_Lambda = _nested_scope
    visit_ClassDef = _nested_scope

    # -- bindings and item writes
    def _targets(self, stmt: cst.CSTNode, target: cst.BaseExpression, value=None) -> None:
        for t in _flatten(target):
            if isinstance(t, cst.Name) and t.value in self.params:
                self.quiet_names.add(id(t))
                keep = (value is not None and _keeps_identity(value, t.value)) or self._in_none_guard(
                    t.value
                )
                if keep and value is not None and not isinstance(target, (cst.Tuple, cst.List)):
                    self.keep_values.add(id(value))
                self._add("keep" if keep else "bind", t.value, stmt)
            elif _subscripts_param(t, self.params):
                self.quiet_names.add(id(t.value))
                self._add("mutate", t.value.value, stmt)

    def _in_none_guard(self, name: str) -> bool:
        """The binding sits in the body of `if name is None:` (not its else branch)."""
        for i in range(len(self.stack) - 1, -1, -1):
            node = self.stack[i]
            if isinstance(node, cst.If):
                inner = self.stack[i + 1] if i + 1 < len(self.stack) else None
                return inner is node.body and _is_none_test(node.test, name)
            if isinstance(node, (cst.For, cst.While, cst.With, cst.Try)):
                return False
        return False

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            for el in _flatten(t.target):
                if isinstance(el, cst.Name):
                    self.quiet_names.add(id(el))
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            name = node.targets[0].target.value
            if name in self.params and _keeps_identity(node.value, name):
                self.keep_values.add(id(node.value))

    def leave_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._targets(node, t.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        for el in _flatten(node.target):
            if isinstance(el, cst.Name):
                self.quiet_names.add(id(el))

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._targets(node, node.target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        target = node.target
        if isinstance(target, cst.Name) and target.value in self.params:
            self.quiet_names.add(id(target))
            self._add("mutate", target.value, node)
        elif _subscripts_param(target, self.params):
            self.quiet_names.add(id(target.value))
            self._add("mutate", target.value.value, node)

    def visit_Del(self, node: cst.Del) -> None:
        for t in _flatten(node.target):
            if isinstance(t, cst.Name) and t.value in self.params:
                self.quiet_names.add(id(t))
                self._add("bind", t.value, node)
            elif _subscripts_param(t, self.params):
                self.quiet_names.add(id(t.value))
                self._add("mutate", t.value.value, node)

    def visit_For(self, node: cst.For) -> None:
        for t in _flatten(node.target):
            if isinstance(t, cst.Name) and t.value in self.params:
                self.quiet_names.add(id(t))
                self._add("bind", t.value, node)
        if isinstance(node.iter, cst.Name):
            self.quiet_names.add(id(node.iter))

    def visit_AsName(self, node: cst.AsName) -> None:
        for t in _flatten(node.name):
            if isinstance(t, cst.Name) and t.value in self.params:
                self.quiet_names.add(id(t))
                self._add("bind", t.value, node)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        if isinstance(node.target, cst.Name) and node.target.value in self.params:
            self.quiet_names.add(id(node.target))
            self._add("bind", node.target.value, node)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        # comprehension targets are local to the comprehension
        for t in _flatten(node.target):
            if isinstance(t, cst.Name):
                self.quiet_names.add(id(t))

    # -- calls
    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            name, method = func.value.value, func.attr.value
            if name in self.params:
                self.quiet_names.add(id(func.value))
                if method in REORDER_METHODS:
                    if _list_reorder_signature(method, node):
                        self._add("reorder", name, node, **self._statement(node))
                    else:
                        self._add("alias", name, node)  # some other type's method
                elif method in MUTATING_METHODS:
                    self._add("mutate", name, node)
                return
        kind = SHUFFLES.get(self.qualname(func) or "")
        if (
            kind
            and len(node.args) == 1
            and node.args[0].keyword is None
            and not node.args[0].star
            and isinstance(node.args[0].value, cst.Name)
            and node.args[0].value.value in self.params
        ):
            arg = node.args[0].value
            self.quiet_names.add(id(arg))
            self._add("reorder", arg.value, node, shuffle=kind, **self._statement(node))

    def _statement(self, call: cst.Call) -> dict:
        """The Expr statement that is exactly `call`, and the line or suite holding it."""
        if len(self.stack) >= 2:
            expr, line = self.stack[-1], self.stack[-2]
            if (
                isinstance(expr, cst.Expr)
                and expr.value is call
                and isinstance(line, (cst.SimpleStatementLine, cst.SimpleStatementSuite))
            ):
                return {"statement": expr, "line": line}
        return {}

    # -- reads
    def visit_Name(self, node: cst.Name) -> None:
        if node.value not in self.params or id(node) in self.quiet_names:
            return
        if not self._harmless_read(node):
            self._add("alias", node.value, node)

    def _harmless_read(self, node: cst.Name) -> bool:
        """Whether this read cannot leave a second reference to the object behind."""
        child: cst.CSTNode = node
        for i in range(len(self.stack) - 1, -1, -1):
            parent = self.stack[i]
            if id(parent) in self.keep_values or id(child) in self.keep_values:
                return True
            if isinstance(parent, (cst.Attribute, cst.Subscript)):
                return parent.value is child  # p.attr, p.method(...), p[i], p[:]
            if isinstance(parent, (cst.Comparison, cst.FormattedStringExpression)):
                return True
            if isinstance(parent, (cst.If, cst.While, cst.Assert, cst.IfExp)):
                return parent.test is child
            if isinstance(parent, (cst.UnaryOperation, cst.BooleanOperation)):
                child = parent
                continue
            if isinstance(parent, cst.Arg):
                call = self.stack[i - 1] if i else None
                return (
                    isinstance(call, cst.Call)
                    and isinstance(call.func, cst.Name)
                    and call.func.value in NON_ALIASING_CALLS
                )
            if isinstance(parent, cst.CompFor):
                comp = next(
                    (
                        n
                        for n in reversed(self.stack[:i])
                        if isinstance(n, (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp))
                    ),
                    None,
                )
                return parent.iter is child and not isinstance(comp, cst.GeneratorExp)
            return False
        return False


def _list_reorder_signature(method: str, call: cst.Call) -> bool:
    """`list.sort(*, key=None, reverse=False)` / `list.reverse()`; tensors take `dim=`, arrays `axis`."""
    if method == "reverse":
        return not call.args
    return all(
        arg.keyword is not None and arg.keyword.value in ("key", "reverse") and not arg.star
        for arg in call.args
    )


def _copy_hint(name: str, event: _Event) -> str:
    if event.shuffle == "numpy":
        return f"shuffle a copy: `{name} = {name}.copy()` first"
    if event.shuffle:
        return f"shuffle a copy: `{name} = list({name})` first"
    if event.node.func.attr.value == "reverse":
        return f"reverse a copy: `{name} = {name}[::-1]`"
    return f"sort a copy: `{name} = sorted({name})`"


def _annotation_text(param: cst.Param) -> str:
    if param.annotation is None:
        return ""
    return cst.Module(body=[]).code_for_node(param.annotation.annotation)


# ------------------------------------------------------------------------- the rule


class ArgumentMutatedInPlace(Rule):
    __doc__ = __doc__
    code = "TL006"
    name = "argument-mutated-in-place"
    message = "`{func}` changes an object its caller owns"
    fix_applicability = Applicability.UNSAFE
    tokens = (("def", "lambda"),)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """A function with a mutable default that is not a deliberate cache, or a reorder
        (`p.sort()`, `p.reverse()`, `random.shuffle(p)`) of a name that is a parameter of
        some function."""
        reordered: set[str] = set()
        for call in index.nodes(ast.Call):
            func = call.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                if func.attr in REORDER_METHODS and _ast_list_reorder_signature(func.attr, call):
                    reordered.add(func.value.id)
            if (
                len(call.args) == 1
                and not call.keywords
                and isinstance(call.args[0], ast.Name)
                and index.resolves_to(func, _SHUFFLES)
            ):
                reordered.add(call.args[0].id)
        for func in index.functions():
            args = func.args
            positional = [*args.posonlyargs, *args.args]
            if reordered and any(
                a.arg in reordered and a.arg not in RECEIVER_NAMES
                for a in (*positional, *args.kwonlyargs)
            ):
                return True
            defaults = [
                *zip(positional[len(positional) - len(args.defaults):], args.defaults),
                *zip(args.kwonlyargs, args.kw_defaults),
            ]
            for arg, default in defaults:
                name = arg.arg
                if (
                    default is not None
                    and name not in RECEIVER_NAMES
                    and not (name.startswith("_") or "cache" in name.lower())
                    and _ast_is_mutable_default(default)
                ):
                    return True
        return False

    VALID = [
        # out-parameter filled on purpose, no default
        Valid("def collect(x, out):\n    out.append(x)\n"),
        # filled and then sorted: still an out-parameter
        Valid("def collect(xs, out):\n    out.extend(xs)\n    out.sort()\n"),
        # rebound to a copy before the reorder
        Valid("def f(steps):\n    steps = sorted(steps)\n    steps.sort()\n"),
        Valid("def f(steps):\n    steps = list(steps)\n    steps.reverse()\n"),
        Valid("def f(steps):\n    steps = steps[:]\n    steps.sort()\n"),
        Valid(
            """
            import copy, random
            def f(steps):
                steps = copy.copy(steps)
                random.shuffle(steps)
            """
        ),
        # rebound on one branch only: stay quiet
        Valid(
            """
            def f(steps, copy_it):
                if copy_it:
                    steps = list(steps)
                steps.sort()
            """
        ),
        # rebound later inside the loop around the mutation
        Valid(
            """
            def f(steps=[]):
                for _ in range(3):
                    steps.append(1)
                    steps = []
            """
        ),
        # mutable default, rebound before the mutation
        Valid("def f(steps=[]):\n    steps = list(steps)\n    steps.append(1)\n    return steps\n"),
        Valid("def f(steps=[]):\n    steps = steps + [1]\n    return steps\n"),
        # mutable default read but never mutated (TL005's business)
        Valid("def f(steps=[]):\n    return sorted(steps)\n"),
        # never on self / cls
        Valid(
            """
            class Sched:
                def step(self):
                    self.steps.sort()
                def reset(this, history=[]):
                    this.append(1)
                @classmethod
                def make(cls, items):
                    cls.reverse()
            """
        ),
        # in-place tensor ops are the tensor API, not this rule
        Valid(
            """
            import torch
            def init(x, tensor):
                x.add_(1)
                torch.nn.init.uniform_(tensor)
            """
        ),
        # tensor sort is not in place
        Valid("def f(x):\n    x.sort(dim=-1, descending=True)\n"),
        Valid("import torch\ndef f(x: torch.Tensor):\n    x.sort()\n"),
        Valid("def f(arr):\n    arr.sort(0)\n"),
        # **kwargs is a fresh dict on every call
        Valid("def f(a, **kwargs):\n    kwargs.pop('b', None)\n    kwargs.update(c=1)\n"),
        # a shuffle that is not random's or numpy's
        Valid("def f(rng, steps):\n    rng.shuffle(steps)\n"),
        Valid("def shuffle(x):\n    return x\ndef f(steps):\n    shuffle(steps)\n"),
        # deliberate memo caches
        Valid("def fib(n, _memo={}):\n    _memo[n] = n\n    return _memo[n]\n"),
        Valid("def get(key, cache={}):\n    cache.setdefault(key, 0)\n    return cache\n"),
        # a local that shadows nothing
        Valid("def f(n):\n    steps = []\n    steps.append(n)\n    steps.sort()\n    return steps\n"),
        # a nested function's own parameter is its own business
        Valid("def outer(steps):\n    def inner(steps=None):\n        return steps\n    return inner\n"),
        # the default itself is immutable; appending to it is a caller-owned out-parameter
        Valid("def f(x, out=None):\n    if out is None:\n        out = []\n    out.append(x)\n    return out\n"),
    ]
    INVALID = [
        # the seed: a scheduler sorts its (shared default / caller's) milestone list
        Invalid(
            """
            import math
            class CosineAnnealingWarmbootingLR:
                def __init__(self, optimizer, epochs=0, eta_min=0.05, steps=[], step_scale=0.8, lf=None, batchs=0, warmup_epoch=0, epoch_scale=1.0):
                    self.warmup_iters = batchs * warmup_epoch
                    self.optimizer = optimizer
                    self.eta_min = eta_min
                    self.iters = -1
                    steps.sort()
                    self.steps = [warmup_epoch] + [i for i in steps if (i < epochs and i > warmup_epoch)] + [epochs]

                def step(self, external_iter=None):
                    self.iters += 1
            """,
            fixed="""
            import math
            class CosineAnnealingWarmbootingLR:
                def __init__(self, optimizer, epochs=0, eta_min=0.05, steps=[], step_scale=0.8, lf=None, batchs=0, warmup_epoch=0, epoch_scale=1.0):
                    self.warmup_iters = batchs * warmup_epoch
                    self.optimizer = optimizer
                    self.eta_min = eta_min
                    self.iters = -1
                    steps = sorted(steps)
                    self.steps = [warmup_epoch] + [i for i in steps if (i < epochs and i > warmup_epoch)] + [epochs]

                def step(self, external_iter=None):
                    self.iters += 1
            """,
            line=8,
            count=1,
        ),
        # after TL005's rewrite the caller's list is still sorted
        Invalid(
            """
            class MultiStep:
                def __init__(self, optimizer, milestones=None):
                    if milestones is None:
                        milestones = []
                    milestones.sort(key=int, reverse=False)  # ascending
                    self.milestones = milestones
            """,
            fixed="""
            class MultiStep:
                def __init__(self, optimizer, milestones=None):
                    if milestones is None:
                        milestones = []
                    milestones = sorted(milestones, key=int, reverse=False)  # ascending
                    self.milestones = milestones
            """,
            line=5,
        ),
        Invalid(
            "def warm(steps=None):\n    steps = steps or []\n    steps.reverse()\n    return steps[0]\n",
            fixed="def warm(steps=None):\n    steps = steps or []\n    steps = steps[::-1]\n    return steps[0]\n",
            line=3,
        ),
        # random.shuffle resolved through `from random import shuffle as ...`
        Invalid(
            """
            from random import shuffle as mix
            def split(indices, ratio):
                mix(indices)  # shuffle
                cut = int(len(indices) * ratio)
                return indices[:cut], indices[cut:]
            """,
            fixed="""
            from random import shuffle as mix
            def split(indices, ratio):
                indices = list(indices)
                mix(indices)  # shuffle
                cut = int(len(indices) * ratio)
                return indices[:cut], indices[cut:]
            """,
            line=3,
        ),
        # numpy's shuffle through `import numpy as np`, in a one-line suite
        Invalid(
            """
            import numpy as np
            def epoch_order(order, shuffle=True):
                if shuffle: np.random.shuffle(order)
                return order
            """,
            fixed="""
            import numpy as np
            def epoch_order(order, shuffle=True):
                if shuffle: order = order.copy(); np.random.shuffle(order)
                return order
            """,
            line=3,
        ),
        # aliased before the sort: reported, but the rewrite would unsort self.steps
        Invalid(
            "class S:\n    def __init__(self, steps):\n        self.steps = steps\n        steps.sort()\n",
            line=4,
        ),
        # `steps or []` keeps the caller's list: still reordered in place
        Invalid(
            "def f(steps=[]):\n    steps = steps or []\n    steps.sort()\n",
            fixed="def f(steps=[]):\n    steps = steps or []\n    steps = sorted(steps)\n",
            line=3,
        ),
        # a reorder used as an expression: reported, not rewritten
        Invalid("import random\ndef f(xs):\n    return random.shuffle(xs) or xs\n", line=3),
        # case (a): mutations of a shared default
        Invalid("def add(x, seen=[]):\n    seen.append(x)\n    return seen\n", line=2),
        Invalid("def add(x, seen=set()):\n    seen.add(x)\n    return len(seen)\n", line=2),
        Invalid("def tally(k, counts={}):\n    counts[k] = counts.get(k, 0) + 1\n    return counts\n", line=2),
        Invalid("def drop(k, d={'a': 1}):\n    del d[k]\n    return d\n", line=2),
        Invalid("def more(x, steps=[]):\n    steps += [x]\n    return steps\n", line=2),
        Invalid(
            """
            import collections
            def group(k, v, table=collections.defaultdict(list)):
                table.setdefault(k, []).append(v)
                return table
            """,
            line=3,
        ),
        # both cases on one parameter: the first filling is reported, the sort too
        Invalid(
            "def add(x, steps=[]):\n    steps.append(x)\n    steps.sort()\n    return steps\n",
            fixed="def add(x, steps=[]):\n    steps.append(x)\n    steps = sorted(steps)\n    return steps\n",
            line=2,
            count=2,
        ),
        # mmengine's BaseDataset: a deepcopy memo kept across calls (ids get reused)
        Invalid(
            """
            import copy
            class Dataset:
                def _copy_without_annotation(self, memo=dict()):
                    other = object.__new__(type(self))
                    memo[id(self)] = other
                    for key, value in self.__dict__.items():
                        other.__dict__[key] = copy.deepcopy(value, memo)
                    return other
            """,
            line=5,
        ),
        # a loop around the mutation with no rebinding in it
        Invalid(
            "def f(steps=[]):\n    for i in range(3):\n        steps.insert(0, i)\n    return steps\n",
            line=3,
        ),
        # a static method's first parameter is an ordinary parameter
        Invalid(
            """
            class Util:
                @staticmethod
                def order(steps):
                    steps.sort()
                    return steps
            """,
            fixed="""
            class Util:
                @staticmethod
                def order(steps):
                    steps = sorted(steps)
                    return steps
            """,
            line=4,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        # functions that may reorder a parameter: a second walk of their body is needed
        self._reorders: set[int] = set()

    def visit_Call(self, node: cst.Call) -> None:
        """Marks the enclosing function of anything `_Scan` could take for a reorder."""
        func = node.func
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            may_reorder = (attr in REORDER_METHODS and isinstance(func.value, cst.Name)) or (
                attr == "shuffle"
            )
        else:
            may_reorder = isinstance(func, cst.Name) and func.value in self.context.imports.names
        if may_reorder:
            enclosing = self.context.enclosing(cst.FunctionDef)
            if enclosing is not None:
                self._reorders.add(id(enclosing))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        params = self._candidate_params(node)
        if not params:
            return
        # Only reorders and fills of a shared default are reported: skip the scan of a
        # function with neither (the stack is the same as on entry).
        if id(node) not in self._reorders and not any(
            p.default is not None
            and is_mutable_default(p.default)
            and not (name.startswith("_") or "cache" in name.lower())
            for name, p in params.items()
        ):
            return
        scan = _Scan(set(params), self.context.qualname)
        walk(node.body, scan)
        by_name: dict[str, list[_Event]] = {}
        for event in scan.events:
            by_name.setdefault(event.name, []).append(event)
        for name, events in by_name.items():
            self._check_param(node, params[name], events)

    def _candidate_params(self, func: cst.FunctionDef) -> dict[str, cst.Param]:
        p = func.params
        positional = [*p.posonly_params, *p.params]
        stack = self.context.stack
        in_class = len(stack) >= 2 and isinstance(stack[-1], cst.IndentedBlock) and isinstance(
            stack[-2], cst.ClassDef
        )
        static = any(
            isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod"
            for d in func.decorators
        )
        if in_class and not static and positional:
            positional = positional[1:]
        out = {}
        for param in [*positional, *p.kwonly_params]:
            name = param.name.value
            if name in RECEIVER_NAMES or "Tensor" in _annotation_text(param):
                continue
            out[name] = param
        return out

    def _check_param(self, func: cst.FunctionDef, param: cst.Param, events: list[_Event]) -> None:
        name = param.name.value
        shared_default = param.default is not None and is_mutable_default(param.default)
        deliberate = shared_default and (name.startswith("_") or "cache" in name.lower())
        if deliberate:
            shared_default = False
        bindings = [e for e in events if e.kind == "bind"]
        # filled before any rebinding: an out-parameter (or a shared default, case a)
        fills = any(
            e.kind == "mutate" and not any(b.index < e.index for b in bindings) for e in events
        )
        keeps = [e for e in events if e.kind == "keep"]
        reported_fill = False
        for event in events:
            if event.kind not in ("mutate", "reorder"):
                continue
            if any(b.index < event.index for b in bindings):
                break  # rebound (maybe to a copy) before: conservative from here on
            if any(set(b.loops) & set(event.loops) for b in bindings):
                continue
            if event.kind == "reorder":
                if deliberate or (fills and not shared_default):
                    continue
                default_reaches = shared_default and not any(k.index < event.index for k in keeps)
                self._report_reorder(func, param, event, events, default_reaches)
            elif shared_default and not reported_fill:
                if any(k.index < event.index for k in keeps):
                    continue
                reported_fill = True
                self._report_fill(func, param, event)

    # -- reports
    def _op(self, node: cst.CSTNode) -> str:
        text = " ".join(self.context.code(node).split())
        return text if len(text) <= 40 else text[:37] + "..."

    def _report_fill(self, func: cst.FunctionDef, param: cst.Param, event: _Event) -> None:
        name = param.name.value
        default = self._op(param.default)
        self.report(
            event.node,
            f"`{func.name.value}` mutates its shared default `{name}={default}` "
            f"(`{self._op(event.node)}`): the change persists into every later call",
            help=f"default `{name}` to `None` (TL005) or work on a copy: `{name} = list({name})`",
        )

    def _report_reorder(
        self,
        func: cst.FunctionDef,
        param: cst.Param,
        event: _Event,
        events: list[_Event],
        shared_default: bool,
    ) -> None:
        name = param.name.value
        also = f" (and its shared default `{self._op(param.default)}`)" if shared_default else ""
        message = (
            f"`{func.name.value}` reorders the caller's list `{name}` in place "
            f"(`{self._op(event.node)}`){also}"
        )
        fix = None
        aliased = any(e.kind == "alias" and e.index < event.index for e in events)
        if event.statement is not None and not aliased:
            fix = self._fix(name, event)
        self.report(
            event.node,
            message,
            fix=fix,
            help=_copy_hint(name, event),
            data={"parameter": name},
        )

    def _fix(self, name: str, event: _Event):
        call = event.node
        expr = event.statement
        assert isinstance(call, cst.Call) and isinstance(expr, cst.Expr)

        def assign(value: cst.BaseExpression, semicolon=cst.MaybeSentinel.DEFAULT) -> cst.Assign:
            return cst.Assign(
                targets=[cst.AssignTarget(target=cst.Name(name))], value=value, semicolon=semicolon
            )

        if event.shuffle is None:
            method = call.func.attr.value
            if method == "sort":
                args = [cst.Arg(cst.Name(name))]
                if call.args:
                    args[0] = args[0].with_changes(
                        comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
                    )
                    args += list(call.args)
                value = cst.Call(func=cst.Name("sorted"), args=args)
                text = f"`{name} = sorted({name}, ...)`"
            else:
                value = cst.Subscript(
                    value=cst.Name(name),
                    slice=[
                        cst.SubscriptElement(
                            cst.Slice(lower=None, upper=None, step=cst.UnaryOperation(cst.Minus(), cst.Integer("1")))
                        )
                    ],
                )
                text = f"`{name} = {name}[::-1]`"
            return self.make_fix(
                f"Reorder a copy: {text}", (expr, assign(value, expr.semicolon))
            )
        # shuffle: copy first, then shuffle the copy exactly as before (same random stream)
        if event.shuffle == "numpy":
            copy = cst.Call(func=cst.Attribute(value=cst.Name(name), attr=cst.Name("copy")))
            text = f"{name}.copy()"
        else:
            copy = cst.Call(func=cst.Name("list"), args=[cst.Arg(cst.Name(name))])
            text = f"list({name})"
        message = f"Shuffle a copy: `{name} = {text}` first"
        line = event.line
        if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
            first = cst.SimpleStatementLine(body=[assign(copy)], leading_lines=line.leading_lines)
            second = line.with_changes(leading_lines=[])
            return self.make_fix(message, (line, cst.FlattenSentinel([first, second])))
        return self.make_fix(message, (expr, cst.FlattenSentinel([assign(copy), expr])))
