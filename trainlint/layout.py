"""Where reported nodes are in a module's code, and fixes as text edits on that code.

Positions (`PositionProvider`) and the code of a fixed module both take a codegen of the
whole module, which costs about as much as parsing it. A reported node lies in one
top-level part of the module (a header comment line, a statement, a footer line): only
the parts that hold reported nodes are generated again, once, noting where nodes start
and end. A fix becomes one edit per replaced node: the node's own span in the code, and
its replacement generated in the node's place (with the indentation there). So locating
and fixing cost what the reports touch, not the module.
"""

from __future__ import annotations

import bisect
import dataclasses
import inspect
import re
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate
from typing import Iterable, Iterator

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

from trainlint.diagnostic import Edit
from trainlint.rule import Fix

_NEWLINE = re.compile(r"\r\n?|\n")  # PositionProvider's line breaks
_FIELDS: dict[type, tuple[str, ...]] = {}
_NEEDS_PARENT: dict[type, bool] = {}


def _cst_children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """Every child node (whitespace and comments included), without a visitor."""
    names = _FIELDS.get(type(node))
    if names is None:
        names = _FIELDS[type(node)] = tuple(f.name for f in dataclasses.fields(node))
    out: list[cst.CSTNode] = []
    for name in names:
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, cst.CSTNode))
    return out


def _needs_parent(kind: type) -> bool:
    """Whether nodes of this type generate different code depending on their parent: their
    `_codegen_impl` takes arguments from it (a default comma, `elif` for `if`...)."""
    known = _NEEDS_PARENT.get(kind)
    if known is None:
        parameters = inspect.signature(kind._codegen_impl).parameters
        known = _NEEDS_PARENT[kind] = len(parameters) > 2  # more than (self, state)
    return known


@dataclass
class _Span:
    """A node's whitespace-inclusive span in its part's code, and the indentation there."""

    start: int
    end: int
    indent: tuple[str, ...]


@dataclass
class Unit:
    """A node that a fix regenerates: a replaced node, or the nearest ancestor whose code
    does not depend on its own parent."""

    node: cst.CSTNode
    part: int
    below: set[int]  # ids of the nodes from it down to the replaced ones


class _Recorder(CodegenState):
    """A part's codegen that notes, as token counts, where every node starts and ends
    (`PositionProvider`'s syntactic ranges, whose line and column are computed only for
    the nodes asked for) and, for the wanted units, their whole span and indentation."""

    def __init__(self, module: cst.Module, units: set[int]) -> None:
        super().__init__(module.default_indent, module.default_newline)
        self.units = units
        self.ranges: dict[cst.CSTNode, tuple[int, int]] = {}
        self.spans: dict[int, tuple[int, int, tuple[str, ...]]] = {}
        self._open: list[int] = []

    def before_codegen(self, node: cst.CSTNode) -> None:
        self._open.append(len(self.tokens))

    def after_codegen(self, node: cst.CSTNode) -> None:
        start, end = self._open.pop(), len(self.tokens)
        self.ranges.setdefault(node, (start, end))  # a syntactic range may be there already
        if id(node) in self.units:
            self.spans[id(node)] = (start, end, tuple(self.indent_tokens))

    @contextmanager
    def record_syntactic_position(
        self, node: cst.CSTNode, *, start_node: cst.CSTNode | None = None, end_node: cst.CSTNode | None = None
    ) -> Iterator[None]:
        start = len(self.tokens)
        try:
            yield
        finally:
            end = len(self.tokens)
            if start_node is not None:
                start = self.ranges[start_node][0]
            if end_node is not None:
                end = self.ranges[end_node][1]
            self.ranges[node] = (start, end)


class Layout:
    """A module's code, top-level part by part (as `Module._codegen_impl` generates it)."""

    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.nodes = (*module.header, *module.body, *module.footer)
        self._parts: list[str] | None = None
        self._rows: list[int] = []  # "\n" before each part
        self._position_rows: list[int] = []  # PositionProvider's lines before each part
        self._where: dict[int, tuple[int, list[cst.CSTNode]]] = {}  # see _find
        self._absent: set[int] = set()  # looked for, in no part
        self._ranges: dict[int, CodeRange] = {}
        self._spans: dict[int, _Span] = {}

    # -- the code, part by part

    @property
    def parts(self) -> list[str]:
        if self._parts is None:
            code_for = self.module.code_for_node
            self._parts = [code_for(n) for n in self.nodes]
            self._rows = [0, *accumulate(part.count("\n") for part in self._parts)]
            self._position_rows = [0, *accumulate(len(_NEWLINE.findall(p)) for p in self._parts)]
        return self._parts

    @property
    def dropped(self) -> int:
        """Characters of the parts missing from the module's code: its last newline, when
        the module has no trailing newline."""
        parts = self.parts
        if self.module.has_trailing_newline or not parts:
            return 0
        return 2 if parts[-1].endswith("\r\n") else 1

    # -- finding nodes

    def find(self, nodes: list[tuple[cst.CSTNode, cst.CSTNode | None]]) -> None:
        """Looks up where each node is (see `_find`), in one pass; each node comes with a
        top-level statement to look in first (or None)."""
        index_of = {id(node): i for i, node in enumerate(self.nodes)}
        first = [index_of[id(near)] for _, near in nodes if near is not None and id(near) in index_of]
        order = [*dict.fromkeys(first), *range(len(self.nodes))]
        self._search({id(node) for node, _ in nodes}, order)

    def _find(self, wanted: set[int]) -> dict[int, tuple[int, list[cst.CSTNode]]]:
        """id of each wanted node found in a part -> (the part's index, the nodes from the
        part's top node down to it)."""
        missing = {i for i in wanted if i not in self._where and i not in self._absent}
        if missing:
            self._search(missing, range(len(self.nodes)))
        return {i: self._where[i] for i in wanted if i in self._where}

    def _search(self, wanted: set[int], order: Iterable[int]) -> None:
        wanted = set(wanted)
        seen: set[int] = set()
        for index in order:
            if not wanted:
                return
            if index in seen:
                continue
            seen.add(index)
            path: list[cst.CSTNode] = []
            stack: list[tuple[cst.CSTNode, int]] = [(self.nodes[index], 0)]
            while stack:
                node, depth = stack.pop()
                del path[depth:]
                path.append(node)
                if id(node) in wanted:
                    self._where[id(node)] = (index, list(path))
                    wanted.discard(id(node))
                    if not wanted:
                        return
                stack.extend((child, depth + 1) for child in _cst_children(node))
        self._absent |= wanted

    # -- measuring: one codegen per part involved

    def measure(self, nodes: list[cst.CSTNode], units: Iterable[Unit] = ()) -> None:
        """Positions of the nodes and spans of the units, for `position` and `edits`."""
        where = self._find({id(n) for n in nodes})
        if len(where) < len({id(n) for n in nodes}):  # the module itself: no part holds it
            full = _positions(self.module)
            for node in nodes:
                self._ranges[id(node)] = full[node]
        by_part: dict[int, tuple[list[cst.CSTNode], set[int]]] = {}
        for node in nodes:
            if id(node) in where and id(node) not in self._ranges:
                by_part.setdefault(where[id(node)][0], ([], set()))[0].append(node)
        for unit in units:
            if id(unit.node) not in self._spans:
                by_part.setdefault(unit.part, ([], set()))[1].add(id(unit.node))
        parts = self.parts
        for index, (located, spanned) in by_part.items():
            recorder = _Recorder(self.module, spanned)
            self.nodes[index]._codegen(recorder)
            offsets = [0, *accumulate(map(len, recorder.tokens))]
            breaks = [0, *(m.end() for m in _NEWLINE.finditer(parts[index]))]
            rows = self._position_rows[index]

            def position(token: int) -> CodePosition:
                offset = offsets[token]
                line = bisect.bisect_right(breaks, offset) - 1
                return CodePosition(rows + line + 1, offset - breaks[line])

            for node in located:
                start, end = recorder.ranges[node]
                self._ranges[id(node)] = CodeRange(position(start), position(end))
            for uid, (start, end, indent) in recorder.spans.items():
                self._spans[uid] = _Span(offsets[start], offsets[end], indent)

    def position(self, node: cst.CSTNode) -> CodeRange:
        """The node's `PositionProvider` range (after `measure`)."""
        return self._ranges[id(node)]

    # -- fixes as edits

    def units(self, fix: Fix) -> list[Unit] | None:
        """The nodes to regenerate for the fix; None when a replaced node is in no part,
        or the module's last part, without its newline, goes away."""
        where = self._find({id(old) for old, _ in fix.edits})
        chosen: list[tuple[int, list[cst.CSTNode], int]] = []
        for old, new in fix.edits:
            if id(old) not in where:
                return None
            index, down = where[id(old)]
            depth = len(down) - 1
            # a removed node, a sequence in its place, or a node with a default comma...
            # changes its parent's code
            if not isinstance(new, cst.CSTNode) or _needs_parent(type(new)) or _needs_parent(type(old)):
                depth -= 1
                while depth > 0 and _needs_parent(type(down[depth])):
                    depth -= 1
            if depth < 0:  # a top-level part removed or split: the module's own sequence
                if self.dropped and index == len(self.nodes) - 1:
                    return None
                depth = 0
            chosen.append((index, down, depth))
        outermost = {id(down[depth]) for _, down, depth in chosen}
        units: dict[int, Unit] = {}
        for index, down, _ in chosen:
            top = next(d for d, node in enumerate(down) if id(node) in outermost)
            unit = units.setdefault(id(down[top]), Unit(down[top], index, set()))
            unit.below.update(id(node) for node in down[top:])
        return list(units.values())

    def edits(self, fix: Fix, units: list[Unit] | None) -> list[Edit]:
        """The fix as text edits on the module's code, one per unit (after `measure` of
        the units; see `units`)."""
        if units is None:
            return self._whole_module_edits(fix)
        replacements = {id(old): new for old, new in fix.edits}
        parts = self.parts
        out = []
        for unit in units:
            span = self._spans[id(unit.node)]
            code = self._render(unit, replacements, span.indent)
            start, end, part = span.start, span.end, parts[unit.part]
            if self.dropped and unit.part == len(parts) - 1 and end == len(part):
                end -= self.dropped
                code = code[: len(code) - self.dropped]
            edit = self._edit(unit.part, start, end, code)
            if edit is not None:
                out.append(edit)
        return sorted(out, key=lambda e: (e.row, e.column))

    def _render(self, unit: Unit, replacements: dict, indent: tuple[str, ...]) -> str:
        """The unit's new code, generated where it stands."""
        new = unit.node.visit(Replace(replacements, unit.below))
        if isinstance(new, cst.RemovalSentinel):
            return ""
        state = CodegenState(self.module.default_indent, self.module.default_newline)
        for node in new.nodes if isinstance(new, cst.FlattenSentinel) else (new,):
            state.indent_tokens = list(indent)
            node._codegen(state)
        return "".join(state.tokens)

    def _edit(self, index: int, start: int, end: int, new: str) -> Edit | None:
        """The text at start:end of part `index` replaced by new, less what both begin
        and end with."""
        part = self.parts[index]
        old = part[start:end]
        head = _common_prefix(old, new)
        if head == len(old) == len(new):
            return None
        tail = _common_prefix(old[head:][::-1], new[head:][::-1])
        row, column = _row_col(part, start + head)
        end_row, end_column = _row_col(part, end - tail)
        rows = self._rows[index]
        return Edit(new[head : len(new) - tail], rows + row, column, rows + end_row, end_column)

    def _whole_module_edits(self, fix: Fix) -> list[Edit]:
        """The fix applied to the whole module, as one edit (a rare shape of fix)."""
        before = self.module.code
        after = self.module.visit(Replace({id(old): new for old, new in fix.edits})).code
        head = _common_prefix(before, after)
        if head == len(before) == len(after):
            return []
        tail = _common_prefix(before[head:][::-1], after[head:][::-1])
        (r1, c1), (r2, c2) = _row_col(before, head), _row_col(before, len(before) - tail)
        return [Edit(after[head : len(after) - tail], r1, c1, r2, c2)]


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix of a and b (halving: C-speed comparisons)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _row_col(text: str, offset: int) -> tuple[int, int]:
    """1-based row and column of an offset, lines ending at "\n" (rows count from 1)."""
    row = text.count("\n", 0, offset) + 1
    return row, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _positions(module: cst.Module):
    """`MetadataWrapper(module).resolve(PositionProvider)`, without the wrapper's pass of
    batchable providers, which walks the whole tree even when there are none."""
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    try:
        return PositionProvider()._gen(wrapper)
    except AttributeError:  # a LibCST without this internal API
        return wrapper.resolve(PositionProvider)


class Replace(cst.CSTTransformer):
    """Replaces nodes by identity. With `path` (the ids of the replaced nodes and of every
    node above one), subtrees off the path are left as they are, not rebuilt."""

    def __init__(self, replacements: dict[int, object], path: set[int] | None = None) -> None:
        self.replacements = replacements
        self.path = path

    def on_visit(self, node) -> bool:
        return self.path is None or id(node) in self.path

    def on_leave(self, original_node, updated_node):
        return self.replacements.get(id(original_node), updated_node)
