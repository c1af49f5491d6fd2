"""A read-only traversal of LibCST trees, for the engine's single pass and rules' own walks.

LibCST's `node.visit(visitor)` rebuilds every node of the tree (and validates it) even
for a visitor that changes nothing, which costs about as much as parsing. `walk` calls
the same `on_visit`/`on_leave` methods on the same nodes in the same order, and rebuilds
nothing. The order of each node type's children is LibCST's own: it is read once per
type from the node's `_visit_and_replace_children`, with a visitor that records which
attribute it visits and enters none.
"""

from __future__ import annotations

import operator
from typing import Callable

import libcst as cst

_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}
# Fields that `_visit_and_replace_children` visits only when set (so a first instance
# without them does not show where they go): (type name, field).
_CONDITIONAL_FIELDS = {("FormattedStringExpression", "format_spec"),
                       ("TemplatedStringExpression", "format_spec")}


class _FieldOrder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.fields: list[str] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        return False

    def on_leave(self, original_node: cst.CSTNode) -> None:
        pass

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        self.fields.append(attribute)

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        pass


def _child_fields(node: cst.CSTNode) -> tuple[str, ...]:
    kind = type(node)
    fields = _CHILD_FIELDS.get(kind)
    if fields is None or any(
        name == kind.__name__ and field not in fields and getattr(node, field) is not None
        for name, field in _CONDITIONAL_FIELDS
    ):
        recorder = _FieldOrder()
        node._visit_and_replace_children(recorder)
        fields = _CHILD_FIELDS[kind] = tuple(dict.fromkeys(recorder.fields))
        _GETTERS.pop(kind, None)
    return fields


_GETTERS: dict[type, Callable[[cst.CSTNode], tuple]] = {}


def _children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The children of node, in LibCST's visiting order."""
    kind = type(node)
    getter = _GETTERS.get(kind)
    if getter is None or kind.__name__ in _CONDITIONAL_TYPES:
        fields = _child_fields(node)
        getter = _GETTERS.get(kind)
        if getter is None:
            if len(fields) == 1:
                one = operator.attrgetter(fields[0])
                getter = _GETTERS[kind] = lambda n: (one(n),)
            else:
                getter = _GETTERS[kind] = operator.attrgetter(*fields) if fields else lambda n: ()
    out: list[cst.CSTNode] = []
    for value in getter(node):
        cls = value.__class__
        if cls is tuple or cls is list:
            out.extend(value)
            continue
        is_node = _IS_NODE.get(cls)
        if is_node is None:  # isinstance on CSTNode, an ABC, is slow: ask once per class
            is_node = _IS_NODE[cls] = issubclass(cls, cst.CSTNode)
        if is_node:
            out.append(value)
    return out


_IS_NODE: dict[type, bool] = {}


def walk(root: cst.CSTNode, visitor: cst.CSTVisitor) -> None:
    """`root.visit(visitor)` for a visitor that only reads (see above), without recursion."""
    on_visit, on_leave = visitor.on_visit, visitor.on_leave
    empty = iter(())
    stack = [(root, iter(_children(root)) if on_visit(root) else empty)]
    while stack:
        node, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            on_leave(node)
        else:
            stack.append((child, iter(_children(child)) if on_visit(child) else empty))


_CONDITIONAL_TYPES = {name for name, _ in _CONDITIONAL_FIELDS}
