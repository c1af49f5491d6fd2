"""A class's attribute stores as statements: `self.x = v`, `self.x: T = v`, `self.x op= v`."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterator

from trainlint.semantic.model import ClassInfo, SelfAccess, SemanticModel

_STATEMENTS = {ast.Assign: "assign", ast.AnnAssign: "annotated", ast.AugAssign: "augmented"}


@dataclass(frozen=True, eq=False)
class Store:
    access: SelfAccess
    kind: str  # assign, annotated or augmented

    @property
    def attr(self) -> str:
        return self.access.attr

    @property
    def statement(self) -> ast.stmt:
        return self.access.statement

    @property
    def value(self) -> ast.expr | None:
        """The statement's value: the whole right-hand side, also for `self.x, y = ...`."""
        return self.statement.value

    @property
    def sole_target(self) -> bool:
        """`self.x = v` with nothing else assigned."""
        return self.kind != "assign" or len(self.statement.targets) == 1


def stores(model: SemanticModel, cls: ClassInfo) -> dict[str, list[Store]]:
    """The stores of the methods of cls (the last definition of each name) by attribute, in
    source order: the receiver spelled `self`, the target plain or in a tuple or list (not
    starred), in the method or in a function nested in it under the method's own name;
    `del`, `for` and `with` targets are not stores."""
    out: dict[str, list[Store]] = {}
    for access in model.self_writes(cls):
        kind = _STATEMENTS.get(type(access.statement))
        method = access.method
        if (
            kind is None
            or cls.methods.get(method.name) is not method
            or not _spelled_self(access.node)
            or not any(t is access.node for t in _targets(access.statement))
            or model.place(access.statement).function.name != method.name
        ):
            continue
        out.setdefault(access.attr, []).append(Store(access, kind))
    return out


def reads_self_attribute(node: ast.AST, attr: str) -> bool:
    """Whether `self.<attr>` is read anywhere in node."""
    return any(
        isinstance(n, ast.Attribute) and n.attr == attr and _spelled_self(n) for n in ast.walk(node)
    )


def named_attributes(call: ast.Call) -> set[str]:
    """The attribute names a call's arguments spell: string constants and `self.<attr>`."""
    args = [a.value if isinstance(a, ast.Starred) else a for a in call.args]
    out = set()
    for arg in [*args, *(k.value for k in call.keywords)]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            out.add(arg.value)
        elif isinstance(arg, ast.Attribute) and _spelled_self(arg):
            out.add(arg.attr)
    return out


def called(model: SemanticModel, node: ast.expr | None) -> str | None:
    """The qualified name of the function node calls, when node is a call."""
    return model.imports.qualname(node.func) if isinstance(node, ast.Call) else None


def is_none(node: ast.expr | None) -> bool:
    """No value, or the constant `None`."""
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


def may_be_tensor(node: ast.expr | None) -> bool:
    """Whether node has a shape a tensor-valued expression has (a call, an operation, an
    index, a name)."""
    return isinstance(node, (ast.Call, ast.BinOp, ast.UnaryOp, ast.Subscript, ast.Name))


def _spelled_self(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id == "self"


def _targets(stmt: ast.stmt) -> Iterator[ast.expr]:
    for target in getattr(stmt, "targets", None) or [stmt.target]:
        yield from _flatten(target)


def _flatten(node: ast.expr) -> Iterator[ast.expr]:
    if isinstance(node, (ast.Tuple, ast.List)):
        for element in node.elts:
            yield from _flatten(element)
    else:
        yield node
