"""Analysis shared by the rules: classes, attributes of `self`, and locals inside one function.

Everything here is syntactic and local to one module. Dataflow is straight-line only: a
local assigned or touched inside a branch, loop, `with` or `try` is treated as unknown, so
rules built on it stay quiet rather than guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator

import libcst as cst

from trainlint.imports import ImportTable, dotted_name
from trainlint.traverse import walk

# ------------------------------------------------------------------- text prefilters


def mutable_default_pattern(constructors: str = r"list|dict|set") -> re.Pattern[str]:
    """Necessary text for a mutable parameter default: `=[`, `={` or `=list(` on a `def` or
    `lambda` line, or on a line of a multi-line signature (ending in `,` or `):`)."""
    mutable = rf"=\s*(?:\[|\{{|(?:{constructors})\s*\()"
    return re.compile(
        rf"(?:\bdef\s+\w+\s*\(|\blambda\b)[^\n]*{mutable}"
        rf"|^[^\n=]*\b\w+\s*(?::[^=\n]+)?{mutable}[^\n]*(?:,|\)\s*(?:->[^\n]*)?:)[ \t]*(?:#[^\n]*)?$",
        re.M,
    )


def mutable_default_anchor(constructors: str = r"list|dict|set") -> re.Pattern[str]:
    """The `=[` / `={` / `=list(` part of `mutable_default_pattern`, alone."""
    return re.compile(rf"=\s*(?:\[|\{{|(?:{constructors})\s*\()")


_DEF_HEAD = re.compile(r"\bdef\s+\w+\s*\Z")
_WORDS_AND_SPACES = re.compile(r"[\s\w]*")
_COMMA_END = re.compile(r",[ \t]*(?:#[^\n]*)?$", re.M)
_PAREN_END = re.compile(r"\)\s*(?:->[^\n]*)?:[ \t]*(?:#[^\n]*)?$", re.M)


def may_have_mutable_default(text: str, anchor: re.Pattern[str]) -> bool:
    """A cheap necessary condition for `mutable_default_pattern(...).search(text)`, where
    `anchor` is the matching `mutable_default_anchor(...)`.

    The pattern backtracks over every line of the file (seconds on a large corpus). Here
    only the few `=[`-like spots are looked at: the `=` is preceded on its line by
    `lambda`, or by a `(` that ends `def name`, or it is the first `=` on its line and
    after it the line ends with `,` or with `)` and a `:` (a signature's end), comments
    allowed. Every match of the pattern passes this test (it may accept a little more).
    """
    for m in anchor.finditer(text):
        eq = m.start()
        line_start = text.rfind("\n", 0, eq) + 1
        before = text[line_start:eq]
        if "lambda" in before:
            return True
        paren = before.find("(")
        while paren >= 0:
            if _ends_def_head(text, line_start + paren):
                return True
            paren = before.find("(", paren + 1)
        if "=" in before:
            continue
        end = text.find("\n", m.end())
        if end < 0:
            end = len(text)
        for char, tail in ((",", _COMMA_END), (")", _PAREN_END)):
            i = text.find(char, m.end(), end)
            while i >= 0:
                if tail.match(text, i):
                    return True
                i = text.find(char, i + 1, end)
    return False


def _ends_def_head(text: str, paren: int) -> bool:
    """Whether `def name` (any whitespace) ends right before position `paren`."""
    lo = paren - 256
    while True:
        lo = max(lo, 0)
        if _DEF_HEAD.search(text, lo, paren):
            return True
        # a match ending at paren is all words and spaces, so it can only start before lo
        # when everything from lo to paren is
        if lo == 0 or _WORDS_AND_SPACES.fullmatch(text, lo, paren) is None:
            return False
        lo -= 4096


# Characters that Python's case-insensitive matching equates with an ASCII letter although
# `str.lower()` does not turn them into it (long s, dotless i, Kelvin sign...).
_FOLDING_EXCEPTIONS = ("\u017f", "\u0131", "\u0130", "\u212a")


def windowed_search(pattern: re.Pattern[str], text: str, anchors: tuple[str, ...], width: int) -> bool:
    """`pattern.search(text) is not None`, computed around the anchors only.

    For a pattern whose every match contains one of `anchors` (lowercase; compared
    case-insensitively) and is at most `width` characters long. Lookbehinds see the whole
    text; the windows leave `width` characters on each side of an anchor for lookaheads.
    A case-insensitive pattern scans every position of the text with every alternative,
    which is slow; the anchors are found with `str.find`.
    """
    lowered = text.lower()
    if len(lowered) != len(text) or any(c in text for c in _FOLDING_EXCEPTIONS):
        return pattern.search(text) is not None
    n = len(text)
    for anchor in anchors:
        i = lowered.find(anchor)
        while i >= 0:
            if pattern.search(text, max(0, i - width), min(n, i + len(anchor) + width)):
                return True
            i = lowered.find(anchor, i + 1)
    return False


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
    try:
        return _attribute_writes(cls)
    except TypeError:  # a compound statement this LibCST has and _suites does not know
        return _attribute_writes_by_visitor(cls)


def _attribute_writes(cls: cst.ClassDef) -> dict[str, list[AttributeWrite]]:
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
    classes and functions named `method` (as `_AttrWrites` walks)."""
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


def _attribute_writes_by_visitor(cls: cst.ClassDef) -> dict[str, list[AttributeWrite]]:
    """The plain implementation of `attribute_writes` (a full walk), for the tests."""
    out: dict[str, list[AttributeWrite]] = {}
    for name, func in methods(cls).items():
        collector = _AttrWrites(name)
        walk(func, collector)
        for write in collector.writes:
            out.setdefault(write.target.attr.value, []).append(write)
    return out


class _AttrWrites(Visitor):
    def __init__(self, method: str) -> None:
        self.method = method
        self.writes: list[AttributeWrite] = []

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            for t in _flatten_targets(target.target):
                if self_attribute(t):
                    self.writes.append(AttributeWrite(self.method, node, t, node.value, False))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if self_attribute(node.target):
            self.writes.append(AttributeWrite(self.method, node, node.target, node.value, False))

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self_attribute(node.target):
            self.writes.append(AttributeWrite(self.method, node, node.target, node.value, True))

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return node.name.value == self.method  # nested functions have their own `self`


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
