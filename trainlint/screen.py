"""A cheap structural view of a file (CPython's `ast`), consulted before the LibCST parse.

`ast.parse` costs a fraction of `libcst.parse_module`, and the engine parses with CPython
anyway (it is the syntax check). A rule whose text prefilter matched may declare a
`screen(index)` that looks at this view and returns False when the rule certainly cannot
report on the file; the engine then skips the rule, and skips the LibCST parse altogether
when no rule is left.

A screen is a *necessary* condition, like the text prefilter: it may let through files on
which the rule then reports nothing, never the other way round. Write it as a loose,
syntactic over-approximation of what the rule's visitor looks for: ignore scoping and
order (a name imported anywhere resolves everywhere, to every module it is ever bound to),
and remember the differences between the two trees:

- `async def` is `ast.AsyncFunctionDef` (LibCST: `FunctionDef` with `asynchronous`);
- `True`, `False`, `None` are `ast.Constant` (LibCST: `Name`), and `True` is an `int`:
  use `int_literal`, which rejects bools;
- keyword arguments are in `Call.keywords` (`**kw` has `arg=None`), not in `Call.args`;
- parentheses leave no trace, adjacent string literals are one `Constant`;
- the index holds no expression contexts (`Load`, `Store`) and no operators (`Add`,
  `Eq`...): test `BinOp.op` etc. on their parent nodes.

The tests check every rule's screen against its INVALID examples, and the whole run
against a run without prefilter and screens (tests/test_speed_equivalence.py).
"""

from __future__ import annotations

import ast
from functools import cached_property
from typing import Iterable, Iterator, TypeVar

A = TypeVar("A", bound=ast.AST)

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)

# Fields that hold no nodes worth indexing: expression contexts and operators (singletons of
# no interest), identifiers, strings and numbers. Skipping them makes the walk about twice
# as fast as `ast.walk`.
_SKIPPED_FIELDS = frozenset({
    "ctx", "op", "ops", "type_comment", "kind", "id", "attr", "name", "asname", "module",
    "level", "arg", "conversion", "is_async", "rest", "kwd_attrs", "tag", "simple",
})
_SKIPPED_BY_TYPE = {
    ast.Constant: {"value"}, ast.MatchSingleton: {"value"}, ast.Global: {"names"},
    ast.Nonlocal: {"names"}, ast.TypeIgnore: {"lineno"},
}
# type -> (fields holding lists of nodes, fields holding one node or None)
_SHAPES: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _shape(node: ast.AST) -> tuple[tuple[str, ...], tuple[str, ...]]:
    kind = node.__class__
    skipped = _SKIPPED_FIELDS | _SKIPPED_BY_TYPE.get(kind, set())
    names = [f for f in kind._fields if f not in skipped]
    # a sequence field of the grammar is always a list, an optional one never is
    lists = tuple(f for f in names if isinstance(getattr(node, f, None), list))
    singles = tuple(f for f in names if f not in lists)
    shape = _SHAPES[kind] = (lists, singles)
    return shape


def _children(stack: list) -> Iterator[ast.AST]:
    """Pops the stack until empty, yielding each node and pushing its children."""
    pop, push, extend = stack.pop, stack.append, stack.extend
    shapes = _SHAPES
    AST = ast.AST
    while stack:
        node = pop()
        shape = shapes.get(node.__class__)
        if shape is None:
            if not isinstance(node, AST):
                continue  # None in an optional field or in `Dict.keys`
            shape = _shape(node)
        yield node
        lists, singles = shape
        for field in lists:
            extend(getattr(node, field))
        for field in singles:
            value = getattr(node, field)
            if value is not None:
                push(value)


class AstIndex:
    """Nodes of one stdlib `ast` tree grouped by type, the names that occur in it, and the
    module's imports. `text` is the decoded source (for rules that screen comments)."""

    def __init__(self, tree: ast.Module, text: str = "") -> None:
        self.tree = tree
        self.text = text
        by_type: dict[type, list[ast.AST]] = {}
        get = by_type.get
        shapes = _SHAPES
        AST = ast.AST
        stack: list = [tree]
        pop, push, extend = stack.pop, stack.append, stack.extend
        while stack:  # _children, inlined: this loop is the index's whole cost
            node = pop()
            kind = node.__class__
            shape = shapes.get(kind)
            if shape is None:
                if not isinstance(node, AST):
                    continue
                shape = _shape(node)
            found = get(kind)
            if found is None:
                found = by_type[kind] = []
            found.append(node)
            lists, singles = shape
            for field in lists:
                extend(getattr(node, field))
            for field in singles:
                value = getattr(node, field)
                if value is not None:
                    push(value)
        self._by_type = by_type
        # results several screens derive from the same index (see `rules/_screens.py`)
        self.memo: dict[str, object] = {}

    def nodes(self, kind: type[A]) -> list[A]:
        """Every node of exactly this type (no subclasses), in no particular order."""
        return self._by_type.get(kind, [])  # type: ignore[return-value]

    def functions(self) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
        return [*self.nodes(ast.FunctionDef), *self.nodes(ast.AsyncFunctionDef)]

    def loops(self) -> list[ast.For | ast.AsyncFor | ast.While]:
        return [*self.nodes(ast.For), *self.nodes(ast.AsyncFor), *self.nodes(ast.While)]

    @cached_property
    def names(self) -> frozenset[str]:
        """Every identifier used as a plain name."""
        return frozenset(n.id for n in self.nodes(ast.Name))

    @cached_property
    def attributes(self) -> frozenset[str]:
        """Every attribute name accessed (`x.attr`)."""
        return frozenset(n.attr for n in self.nodes(ast.Attribute))

    @cached_property
    def called(self) -> frozenset[str]:
        """The last name of every callee: `step` for `opt.step()`, `f` for `f()`."""
        out = set()
        for call in self.nodes(ast.Call):
            func = call.func
            if isinstance(func, ast.Attribute):
                out.add(func.attr)
            elif isinstance(func, ast.Name):
                out.add(func.id)
        return frozenset(out)

    @cached_property
    def strings(self) -> frozenset[str]:
        """Every string constant."""
        return frozenset(n.value for n in self.nodes(ast.Constant) if isinstance(n.value, str))

    # ------------------------------------------------------------------ imports

    @cached_property
    def imports(self) -> dict[str, frozenset[str]]:
        """Local name -> every qualified name an import anywhere in the file binds it to.

        The multi-valued counterpart of `trainlint.imports.ImportTable` (which keeps the
        last binding): `import torch as T` gives `T -> {torch}`, `import torch.nn` gives
        `torch -> {torch}`, `from torch import where as w` gives `w -> {torch.where}`.
        Relative and star imports bind nothing, as there.
        """
        out: dict[str, set[str]] = {}
        for node in self.nodes(ast.Import):
            for alias in node.names:
                if alias.asname:
                    out.setdefault(alias.asname, set()).add(alias.name)
                else:
                    head = alias.name.split(".")[0]
                    out.setdefault(head, set()).add(head)
        for node in self.nodes(ast.ImportFrom):
            if node.level or not node.module:
                continue
            for alias in node.names:
                if alias.name == "*":
                    continue
                out.setdefault(alias.asname or alias.name, set()).add(f"{node.module}.{alias.name}")
        return {k: frozenset(v) for k, v in out.items()}

    def qualnames(self, node: ast.AST) -> frozenset[str]:
        """Every qualified name a `Name`/`Attribute` chain may resolve to through the
        imports (empty when its head is not bound by an import)."""
        dotted = dotted_name(node)
        if dotted is None:
            return frozenset()
        head, _, rest = dotted.partition(".")
        bound = self.imports.get(head)
        if not bound:
            return frozenset()
        return frozenset(f"{b}.{rest}" if rest else b for b in bound)

    def resolves_to(self, node: ast.AST, qualnames: Iterable[str] | frozenset[str]) -> bool:
        """Whether node may resolve to one of `qualnames` (a set, for speed)."""
        return not self.qualnames(node).isdisjoint(qualnames)


# ---------------------------------------------------------------------- helpers


def dotted_name(node: ast.AST) -> str | None:
    """`a.b.c` for a chain of Name/Attribute nodes, else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def int_literal(node: ast.AST | None) -> int | None:
    """The value of `3`, `-1`, `(0)` (as `rules._analysis.int_literal` reads LibCST's
    `Integer`): bools, floats and `+1` are not integer literals."""
    sign = 1
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        sign, node = -sign, node.operand
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return sign * node.value
    return None


def flatten_targets(node: ast.AST) -> Iterator[ast.AST]:
    """The names, attributes and subscripts of an assignment target, unpacking tuples,
    lists and starred targets."""
    stack = [node]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Tuple, ast.List)):
            stack.extend(node.elts)
        elif isinstance(node, ast.Starred):
            stack.append(node.value)
        else:
            yield node


def assignments(index: AstIndex) -> Iterator[tuple[ast.AST, ast.AST | None, ast.stmt]]:
    """(target, value, statement) for every `Assign` target (not unpacked), `AnnAssign` and
    `AugAssign` of the file."""
    for node in index.nodes(ast.Assign):
        for target in node.targets:
            yield target, node.value, node
    for node in index.nodes(ast.AnnAssign):
        yield node.target, node.value, node
    for node in index.nodes(ast.AugAssign):
        yield node.target, node.value, node


def walk(node: ast.AST) -> Iterator[ast.AST]:
    """`ast.walk` without contexts and operators (see AstIndex), depth first."""
    return _children([node])


def span(node: ast.AST) -> tuple[int, int]:
    """The lines a statement covers, decorators included."""
    start = node.lineno
    for decorator in getattr(node, "decorator_list", ()):
        start = min(start, decorator.lineno)
    return start, node.end_lineno or start


def methods(cls: ast.ClassDef) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """The functions defined directly in the class body."""
    return [s for s in cls.body if isinstance(s, FUNCTIONS)]
