"""Analysis shared by the rules: classes, attributes of `self`, and locals inside one function.

Everything here is syntactic and local to one module. Dataflow is straight-line only: a
local assigned or touched inside a branch, loop, `with` or `try` is treated as unknown, so
rules built on it stay quiet rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import libcst as cst

from trainlint.imports import ImportTable, dotted_name
from trainlint.traverse import walk

# --------------------------------------------------------------------------- visitors


class Visitor(cst.CSTVisitor):
    """`cst.CSTVisitor` whose `visit_<Type>`/`leave_<Type>` methods are looked up once per
    node type, not by a formatted name for every node visited (LibCST's way, about a third
    of the cost of a `trainlint.traverse.walk`)."""

    def on_visit(self, node: cst.CSTNode) -> bool:
        visit = _handlers(type(self), type(node))[0]
        return visit is None or visit(self, node) is not False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        leave = _handlers(type(self), type(original_node))[1]
        if leave is not None:
            leave(self, original_node)


_HANDLERS: dict[tuple[type, type], tuple[Callable | None, Callable | None]] = {}


def _handlers(visitor: type, kind: type) -> tuple[Callable | None, Callable | None]:
    found = _HANDLERS.get((visitor, kind))
    if found is None:
        name = kind.__name__
        found = _HANDLERS[visitor, kind] = (
            getattr(visitor, f"visit_{name}", None), getattr(visitor, f"leave_{name}", None)
        )
    return found


# --------------------------------------------------------------------------- classes

SCHEDULER_MODULE = "torch.optim.lr_scheduler"
SCHEDULER_BASE_NAMES = {"_LRScheduler", "LRScheduler"}
STEP_METHOD_NAMES = {"step", "get_lr", "_get_closed_form_lr"}


def methods(cls: cst.ClassDef) -> dict[str, cst.FunctionDef]:
    out: dict[str, cst.FunctionDef] = {}
    if isinstance(cls.body, cst.IndentedBlock):
        for stmt in cls.body.body:
            if isinstance(stmt, cst.FunctionDef):
                out[stmt.name.value] = stmt
    return out


def is_step_method(name: str) -> bool:
    return name in STEP_METHOD_NAMES or name.startswith("step_")


def local_classes(module: cst.Module) -> dict[str, cst.ClassDef]:
    return {s.name.value: s for s in module.body if isinstance(s, cst.ClassDef)}


def base_names(cls: cst.ClassDef, imports: ImportTable) -> list[str]:
    """Each base as its qualified name when imported, else as written (`nn.Module`)."""
    out = []
    for arg in cls.bases:
        if arg.keyword is None:
            name = imports.qualname(arg.value) or dotted_name(arg.value)
            if name:
                out.append(name)
    return out


def _derives(cls, imports, module, test, seen=None) -> bool:
    seen = seen or set()
    local = local_classes(module)
    for base in base_names(cls, imports):
        if test(base):
            return True
        if base in local and base not in seen:
            seen.add(base)
            if _derives(local[base], imports, module, test, seen):
                return True
    return False


def is_torch_scheduler_subclass(cls: cst.ClassDef, imports: ImportTable, module: cst.Module) -> bool:
    def test(base: str) -> bool:
        return base.startswith(SCHEDULER_MODULE + ".") or base.split(".")[-1] in SCHEDULER_BASE_NAMES

    return _derives(cls, imports, module, test)


def is_scheduler_like(cls: cst.ClassDef, imports: ImportTable, module: cst.Module) -> bool:
    return any(is_step_method(m) for m in methods(cls)) or is_torch_scheduler_subclass(
        cls, imports, module
    )


def is_nn_module(cls: cst.ClassDef, imports: ImportTable, module: cst.Module) -> bool:
    """Subclass of `torch.nn.Module` or of any `torch.nn` class (layers, losses)."""

    def test(base: str) -> bool:
        return base.startswith("torch.nn.") or base in ("nn.Module", "Module") or (
            base.startswith("nn.") and imports.names.get("nn", "").startswith("torch")
        )

    return _derives(cls, imports, module, test)


# --------------------------------------------------------------------- attributes


def self_attribute(node: cst.CSTNode, self_name: str = "self") -> str | None:
    """`self.x` -> "x"."""
    if (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == self_name
    ):
        return node.attr.value
    return None


@dataclass(frozen=True)
class AttributeWrite:
    method: str
    statement: cst.CSTNode  # the Assign / AugAssign / AnnAssign node
    target: cst.Attribute
    value: cst.BaseExpression | None
    augmented: bool


def attribute_writes(cls: cst.ClassDef) -> dict[str, list[AttributeWrite]]:
    """Every `self.X = ...` / `self.X op= ...` in the class's methods, by attribute.

    Nested functions are not entered (they have their own `self`), except one named like
    the method; classes nested in a method are. Only statements can assign, so only the
    statements are walked, in source order.
    """
    out: dict[str, list[AttributeWrite]] = {}
    for name, func in methods(cls).items():
        for small in _small_statements(func.body, name):
            if isinstance(small, cst.Assign):
                for target in small.targets:
                    for t in _flatten_targets(target.target):
                        if self_attribute(t):
                            out.setdefault(t.attr.value, []).append(
                                AttributeWrite(name, small, t, small.value, False)
                            )
            elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                if self_attribute(small.target):
                    out.setdefault(small.target.attr.value, []).append(
                        AttributeWrite(name, small, small.target, small.value, isinstance(small, cst.AugAssign))
                    )
    return out


def _small_statements(suite: cst.CSTNode, method: str) -> Iterator[cst.BaseSmallStatement]:
    """The small statements under a suite, in source order, entering compound statements,
    classes and functions named `method`."""
    if isinstance(suite, (cst.SimpleStatementSuite, cst.SimpleStatementLine)):
        yield from suite.body
        return
    for stmt in suite.body if isinstance(suite, cst.IndentedBlock) else ():
        if isinstance(stmt, cst.SimpleStatementLine):
            yield from stmt.body
        elif isinstance(stmt, cst.FunctionDef):
            if stmt.name.value == method:
                yield from _small_statements(stmt.body, method)
        else:
            for block in _suites(stmt):
                yield from _small_statements(block, method)


def _suites(stmt: cst.CSTNode) -> Iterator[cst.BaseSuite]:
    """The suites of a compound statement, in source order."""
    if isinstance(stmt, (cst.If, cst.For, cst.While, cst.With, cst.ClassDef, cst.Else, cst.Finally)):
        yield stmt.body
        orelse = getattr(stmt, "orelse", None)
        if orelse is not None:
            yield from _suites(orelse)
    elif isinstance(stmt, (cst.Try, cst.TryStar)):
        yield stmt.body
        for handler in stmt.handlers:
            yield handler.body
        if stmt.orelse is not None:
            yield stmt.orelse.body
        if stmt.finalbody is not None:
            yield stmt.finalbody.body
    elif isinstance(stmt, cst.Match):
        for case in stmt.cases:
            yield case.body
    else:
        raise TypeError(f"unexpected compound statement {type(stmt).__name__}")


def _flatten_targets(node: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    if isinstance(node, (cst.Tuple, cst.List)):
        for el in node.elements:
            yield from _flatten_targets(el.value)
    else:
        yield node


def advances(write: AttributeWrite) -> bool:
    """`self.x += n`, `self.x -= n`, or `self.x = self.x + ...` / `... + self.x`."""
    if write.augmented:
        return isinstance(write.statement.operator, (cst.AddAssign, cst.SubtractAssign))
    value = write.value
    attr = write.target.attr.value
    return (
        isinstance(value, cst.BinaryOperation)
        and isinstance(value.operator, (cst.Add, cst.Subtract))
        and (self_attribute(value.left) == attr or self_attribute(value.right) == attr)
    )


def int_literal(node: cst.CSTNode | None) -> int | None:
    """The value of `3`, `-1`, `(0)`; None for anything else."""
    if isinstance(node, cst.Integer):
        return int(node.value.replace("_", ""), 0)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        inner = int_literal(node.expression)
        return None if inner is None else -inner
    return None


# --------------------------------------------------------------------- functions


def parameter_names(func: cst.FunctionDef) -> list[str]:
    p = func.params
    params = [*p.posonly_params, *p.params, *p.kwonly_params]
    for star in (p.star_arg, p.star_kwarg):
        if isinstance(star, cst.Param):
            params.append(star)
    return [param.name.value for param in params]


def body_statements(func: cst.FunctionDef) -> list[cst.BaseStatement]:
    body = func.body
    return list(body.body) if isinstance(body, cst.IndentedBlock) else [body]


def names_in(node: cst.CSTNode) -> set[str]:
    collector = _Names()
    walk(node, collector)
    return collector.names


class _Names(Visitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)


# ------------------------------------------------------------ locals, straight-line

MUTATING_METHODS = {
    "append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse", "update",
    "setdefault", "popitem", "add", "discard", "difference_update", "intersection_update",
    "symmetric_difference_update",
}


def is_inplace_tensor_method(name: str) -> bool:
    """`scatter_`, `fill_`, `masked_fill_`...: torch's trailing-underscore convention."""
    return name.endswith("_") and not name.startswith("_")


@dataclass(frozen=True)
class LocalOrigin:
    statement: cst.SimpleStatementLine
    value: cst.BaseExpression


def straight_line_origin(
    func: cst.FunctionDef, name: str, use_statement: cst.BaseStatement
) -> LocalOrigin | None:
    """The single `name = value` that reaches `use_statement`, a top-level statement of func.

    None when `name` is bound more than once before the use, bound inside a compound
    statement, or not bound by a plain assignment at all.
    """
    origin: LocalOrigin | None = None
    for stmt in body_statements(func):
        if stmt is use_statement:
            return origin
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and any(
                    isinstance(t.target, cst.Name) and t.target.value == name for t in small.targets
                ):
                    if len(small.targets) != 1 or origin is not None:
                        return None
                    origin = LocalOrigin(stmt, small.value)
                elif binds(small, name):
                    return None
        elif binds(stmt, name):
            return None
    return None


class BindingTargets(Visitor):
    """Calls `bind(name)` for every name an assignment, `for`, comprehension, `as` or `:=`
    target binds, unpacking tuples, lists and starred targets. Subclasses decide what to
    record and which other constructs (imports, parameters, nested scopes) count."""

    def bind(self, name: str) -> None:
        raise NotImplementedError

    def _add(self, target: cst.CSTNode | None) -> None:
        if isinstance(target, cst.Name):
            self.bind(target.value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._add(el.value)
        elif isinstance(target, cst.StarredElement):
            self._add(target.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._add(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._add(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._add(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._add(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._add(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._add(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._add(node.target)


def binds(node: cst.CSTNode, name: str) -> bool:
    """Whether node (re)binds `name` anywhere: assignment, for target, with-as, import..."""
    finder = _Binds(name)
    walk(node, finder)
    return finder.found


class _Binds(Visitor):
    def __init__(self, name: str) -> None:
        self.name = name
        self.found = False

    def _check(self, target: cst.CSTNode | None) -> None:
        if target is not None and any(
            isinstance(t, cst.Name) and t.value == self.name for t in _flatten_targets(target)
        ):
            self.found = True

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._check(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._check(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._check(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._check(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._check(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._check(node.target)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


def statements_between(
    func: cst.FunctionDef, first: cst.BaseStatement, last: cst.BaseStatement
) -> list[cst.BaseStatement]:
    """Top-level statements of func strictly after `first` and strictly before `last`."""
    body = body_statements(func)
    try:
        i, j = body.index(first), body.index(last)
    except ValueError:
        return []
    return body[i + 1 : j]


def touches(node: cst.CSTNode, name: str) -> list[cst.CSTNode]:
    """Places in node that may change the object bound to local `name` or rebind it.

    Counted: in-place methods (`name.scatter_(...)`, `name.append(...)`), item or attribute
    assignment (`name[i] = v`), augmented assignment, rebinding, and passing `name` to any
    call (the callee may write it).
    """
    finder = _Touches(name)
    walk(node, finder)
    return finder.found


class _Touches(Visitor):
    def __init__(self, name: str) -> None:
        self.name = name
        self.found: list[cst.CSTNode] = []

    def _is_name(self, node: cst.CSTNode) -> bool:
        return isinstance(node, cst.Name) and node.value == self.name

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and self._is_name(func.value):
            method = func.attr.value
            if method in MUTATING_METHODS or is_inplace_tensor_method(method):
                self.found.append(node)
        if any(self._is_name(arg.value) for arg in node.args):
            self.found.append(node)

    def _target(self, stmt: cst.CSTNode, target: cst.CSTNode) -> None:
        for t in _flatten_targets(target):
            if self._is_name(t) or (
                isinstance(t, (cst.Subscript, cst.Attribute)) and self._is_name(t.value)
            ):
                self.found.append(stmt)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._target(node, t.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._target(node, node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._target(node, node.target)

    def visit_For(self, node: cst.For) -> None:
        self._target(node, node.target)


# ------------------------------------------------------ calls and reaching assignments


def call_argument(call: cst.Call, keyword: str, position: int | None = None) -> cst.BaseExpression | None:
    """The value passed for a parameter, by keyword or (with `position`) positionally;
    None when it is not passed or could be inside `*args`/`**kwargs`."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    if position is not None:
        for index, arg in enumerate(call.args):
            if arg.keyword is not None or arg.star:
                break
            if index == position:
                return arg.value
    return None


def has_unpacked_arguments(call: cst.Call) -> bool:
    return any(arg.star for arg in call.args)


def enclosing_function_statement(
    stack: list[cst.CSTNode],
) -> tuple[cst.FunctionDef, cst.BaseStatement] | None:
    """The innermost function around the node whose ancestors are `stack`, and the
    statement of its body that contains the node."""
    for k in range(len(stack) - 1, -1, -1):
        if isinstance(stack[k], cst.FunctionDef):
            if k + 2 < len(stack) and isinstance(stack[k + 1], cst.IndentedBlock):
                return stack[k], stack[k + 2]
            return None
    return None


@dataclass(frozen=True)
class ReachingAssignment:
    statement: cst.BaseStatement
    value: cst.BaseExpression
    # where the name sits in an unpacking target: `out, (h, c) = lstm(x)` gives (0,) for
    # `out` and (1, 0) for `h`; () for a plain `name = value`
    path: tuple[int, ...]


def reaching_assignment(
    func: cst.FunctionDef, name: str, use_statement: cst.BaseStatement
) -> ReachingAssignment | None:
    """The last assignment of `name` among the top-level statements of func before
    `use_statement` (`pred = pred.t()` after `_, pred = out.topk(k)` is the one that
    reaches). None when `name` is bound some other way after it (inside a compound
    statement, by a `for`, an augmented assignment...) or not at all."""
    found: ReachingAssignment | None = None
    for stmt in body_statements(func):
        if stmt is use_statement:
            return found
        if not binds(stmt, name):
            continue
        found = None
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if not binds(small, name):
                    continue
                found = None
                if isinstance(small, cst.Assign) and len(small.targets) == 1:
                    found = _assigned(stmt, small.targets[0].target, small.value, name)
    return None


def _assigned(
    stmt: cst.BaseStatement, target: cst.BaseExpression, value: cst.BaseExpression, name: str
) -> ReachingAssignment | None:
    path = _target_path(target, name)
    return None if path is None else ReachingAssignment(stmt, value, path)


def _target_path(target: cst.BaseExpression, name: str) -> tuple[int, ...] | None:
    if isinstance(target, cst.Name):
        return () if target.value == name else None
    if isinstance(target, (cst.Tuple, cst.List)):
        for index, element in enumerate(target.elements):
            if isinstance(element, cst.StarredElement):
                return None
            inner = _target_path(element.value, name)
            if inner is not None:
                return (index, *inner)
    return None


def shape_length(call: cst.Call) -> int | None:
    """How many dimensions `x.view(...)`/`x.reshape(...)` asks for: `view(b, -1)` and
    `view((b, -1))` give 2. None when unknown: a shape or dtype in a variable (`view(shape)`),
    unpacked or keyword arguments."""
    args = call.args
    if not args or any(a.star or a.keyword is not None for a in args):
        return None
    if len(args) == 1:
        value = args[0].value
        if isinstance(value, (cst.Tuple, cst.List)):
            elements = value.elements
            return None if any(isinstance(e, cst.StarredElement) for e in elements) else len(elements)
        return 1 if _one_number(value) else None
    return len(args)


def _one_number(node: cst.BaseExpression) -> bool:
    """An int literal or a product (`b * t`): one dimension, where a bare name could be a
    whole shape."""
    return int_literal(node) is not None or (
        isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply)
    )


def built_by(module: cst.Module, imports: ImportTable, func: cst.BaseExpression) -> list[cst.Call]:
    """The constructor calls of the object a local name or `self.<name>` holds: every
    `name = C(...)` / `self.name = C(...)` in the file, when they all call the same imported
    class C; empty otherwise (or when the object is bound some other way only)."""
    from trainlint.rules._loops import assignments

    if isinstance(func, cst.Name):
        dotted = func.value
    elif self_attribute(func) is not None:
        dotted = f"self.{func.attr.value}"
    else:
        return []
    calls = assignments(module).get(dotted, [])
    kinds = {imports.qualname(c.func) for c in calls}
    return calls if len(kinds) == 1 and None not in kinds else []


RECURRENT_LAYERS = {"torch.nn.RNN", "torch.nn.LSTM", "torch.nn.GRU"}


def recurrent_layers(module: cst.Module, imports: ImportTable, func: cst.BaseExpression) -> list[cst.Call]:
    """The `nn.RNN`/`LSTM`/`GRU(...)` constructor calls of the layer `func(x)` calls."""
    calls = built_by(module, imports, func)
    return calls if calls and imports.qualname(calls[0].func) in RECURRENT_LAYERS else []


def is_true(node: cst.BaseExpression | None) -> bool:
    return isinstance(node, cst.Name) and node.value == "True"


# ------------------------------------------------------------ signatures (rule pack 3)


def is_static_or_class_method(func: cst.FunctionDef) -> bool:
    return any(
        (dotted_name(d.decorator) or "").rsplit(".", 1)[-1] in ("staticmethod", "classmethod")
        for d in func.decorators
    )


def accepts_call(func: cst.FunctionDef, positional: int, keywords: tuple[str, ...] = ()) -> bool:
    """Whether a call with `positional` positional arguments and these keyword arguments
    binds to `func`'s parameters without a TypeError; for a method, the arguments after
    `self` (static methods take them all)."""
    p = func.params
    ordered = [*p.posonly_params, *p.params]
    if ordered and not is_static_or_class_method(func):
        ordered = ordered[1:]
    if positional > len(ordered) and not isinstance(p.star_arg, cst.Param):
        return False
    filled = {param.name.value for param in ordered[:positional]}
    keywordable = {param.name.value for param in [*p.params, *p.kwonly_params]}
    for keyword in keywords:
        if keyword in filled:
            return False
        if keyword in keywordable:
            filled.add(keyword)
        elif p.star_kwarg is None:
            return False
    required = [q for q in [*ordered, *p.kwonly_params] if q.default is None]
    return all(q.name.value in filled for q in required)


def returned_names(func: cst.FunctionDef) -> set[str]:
    """Names returned by `func` itself (not by nested functions): `return model`, and each
    element of `return model, optimizer`."""
    finder = _Returns()
    walk(func.body, finder)
    return finder.names


class _Returns(Visitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Return(self, node: cst.Return) -> None:
        value = node.value
        values = [el.value for el in value.elements] if isinstance(value, cst.Tuple) else [value]
        for expr in values:
            if isinstance(expr, cst.Name):
                self.names.add(expr.value)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


def append_keyword(call: cst.Call, keyword: str, value: cst.BaseExpression) -> cst.Call:
    """`call` with `keyword=value` added after its last argument, in the call's layout: a
    call with a trailing comma keeps it, and one argument per line stays so."""
    new = cst.Arg(
        keyword=cst.Name(keyword),
        value=value,
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
    )
    args = list(call.args)
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    if isinstance(last.comma, cst.Comma):
        if len(args) > 1 and isinstance(args[-2].comma, cst.Comma):
            separator = args[-2].comma
        elif isinstance(call.whitespace_before_args, cst.ParenthesizedWhitespace):
            separator = cst.Comma(whitespace_after=call.whitespace_before_args)
    new = new.with_changes(comma=last.comma, whitespace_after_arg=last.whitespace_after_arg)
    last = last.with_changes(comma=separator, whitespace_after_arg=cst.SimpleWhitespace(""))
    return call.with_changes(args=[*args[:-1], last, new])
