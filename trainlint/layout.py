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

import inspect
import re
from dataclasses import dataclass
from itertools import accumulate

import libcst as cst
from libcst._nodes.internal import CodegenState
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

from trainlint.diagnostic import Edit
from trainlint.rule import Fix

_NEWLINE = re.compile(r"\r\n?|\n")  # PositionProvider's line breaks
_NEEDS_PARENT: dict[type, bool] = {}


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
class _Found:
    """A wanted node: its part, the nodes from the part's top node down to it, and its
    `PositionProvider` range as offsets in the part's code."""

    part: int
    path: list[cst.CSTNode]
    start: int
    end: int


@dataclass
class _Unit:
    """A node that a fix regenerates: a replaced node, or the nearest ancestor whose code
    does not depend on its own parent."""

    node: cst.CSTNode
    part: int
    below: set[int]  # ids of the nodes from it down to the replaced ones


class _Syntactic:
    """`record_syntactic_position` of `_Recorder` (a plain context manager: it is entered
    for most nodes, and a generator-based one costs several times more)."""

    __slots__ = ("state", "node", "start_node", "end_node", "start")

    def __init__(self, state: _Recorder, node, start_node, end_node) -> None:
        self.state, self.node, self.start_node, self.end_node = state, node, start_node, end_node

    def __enter__(self) -> None:
        self.start = len(self.state.tokens)

    def __exit__(self, *exc) -> None:
        ranges = self.state.ranges
        start = self.start if self.start_node is None else ranges[self.start_node][0]
        end = len(self.state.tokens) if self.end_node is None else ranges[self.end_node][1]
        ranges[self.node] = (start, end)


class _Recorder(CodegenState):
    """A part's codegen that notes, as token counts, where every node starts and ends
    (`PositionProvider`'s syntactic ranges), the path down to each wanted node, and the
    whole span and indentation of every node on those paths."""

    def __init__(self, module: cst.Module, wanted: set[int]) -> None:
        super().__init__(module.default_indent, module.default_newline)
        self.wanted = wanted
        self.ranges: dict[cst.CSTNode, tuple[int, int]] = {}
        self.paths: dict[int, list[cst.CSTNode]] = {}
        self.spans: dict[int, tuple[int, int, tuple[str, ...]]] = {}
        self._stack: list[cst.CSTNode] = []
        self._open: list[tuple[int, tuple[str, ...]]] = []  # start and indentation
        self._on_path: set[int] = set()
        self._indent: tuple[str, ...] = ()

    def increase_indent(self, value: str) -> None:
        self.indent_tokens.append(value)
        self._indent = tuple(self.indent_tokens)

    def decrease_indent(self) -> None:
        self.indent_tokens.pop()
        self._indent = tuple(self.indent_tokens)

    def before_codegen(self, node: cst.CSTNode) -> None:
        self._stack.append(node)
        self._open.append((len(self.tokens), self._indent))
        if id(node) in self.wanted:
            self.paths[id(node)] = list(self._stack)
            self._on_path.update(map(id, self._stack))

    def after_codegen(self, node: cst.CSTNode) -> None:
        self._stack.pop()
        start, indent = self._open.pop()
        end = len(self.tokens)
        self.ranges.setdefault(node, (start, end))  # a syntactic range may be there already
        if id(node) in self._on_path:
            self.spans[id(node)] = (start, end, indent)

    def record_syntactic_position(self, node, *, start_node=None, end_node=None) -> _Syntactic:
        return _Syntactic(self, node, start_node, end_node)


class Layout:
    """A module's code, top-level part by part (as `Module._codegen_impl` generates it)."""

    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self.nodes = (*module.header, *module.body, *module.footer)
        self._code: dict[int, str] = {}  # the code of the parts generated so far
        self._rows: list[int] | None = None  # "\n" before each part
        self._position_rows: list[int] = []  # PositionProvider's line breaks before each part
        self._found: dict[int, _Found] = {}
        self._spans: dict[int, _Span] = {}
        self._elsewhere: dict[int, CodeRange] = {}  # wanted nodes in no part (the module)

    # -- the code, part by part

    def _part_code(self, index: int) -> str:
        code = self._code.get(index)
        if code is None:
            code = self._code[index] = self.module.code_for_node(self.nodes[index])
        return code

    def _count_rows(self) -> None:
        if self._rows is None:
            parts = [self._part_code(i) for i in range(len(self.nodes))]
            self._rows = [0, *accumulate(part.count("\n") for part in parts)]
            self._position_rows = [0, *accumulate(len(_NEWLINE.findall(p)) for p in parts)]

    @property
    def dropped(self) -> int:
        """Characters of the last part missing from the module's code: its last newline,
        when the module has no trailing newline."""
        if self.module.has_trailing_newline or not self.nodes:
            return 0
        return 2 if self._part_code(len(self.nodes) - 1).endswith("\r\n") else 1

    # -- measuring: one codegen per part that holds wanted nodes

    def measure(self, nodes: list[tuple[cst.CSTNode, cst.CSTNode | None]]) -> None:
        """Finds and measures the nodes, each given with the top-level statement to look
        in first (or None); then `position` and `edits` answer for them."""
        index_of = {id(node): i for i, node in enumerate(self.nodes)}
        by_part: dict[int, set[int]] = {}
        unhinted: set[int] = set()
        for node, near in nodes:
            if id(node) in self._found:
                continue
            index = index_of.get(id(near)) if near is not None else None
            if index is None:
                unhinted.add(id(node))
            else:
                by_part.setdefault(index, set()).add(id(node))
        missed = self._record(by_part) | unhinted
        # the other parts' code is needed anyway (for the rows): look there first
        for pass_over in (set(self._code), ()):
            for index in range(len(self.nodes)):
                if not missed:
                    return
                if index not in pass_over:
                    missed = self._record_part(index, missed)
        full = positions_of(self.module)  # the module itself is no part
        for node, _ in nodes:
            if id(node) in missed:
                self._elsewhere[id(node)] = full[node]

    def _record(self, by_part: dict[int, set[int]]) -> set[int]:
        """Generates each part, noting its wanted nodes; returns the ids not found there."""
        missed: set[int] = set()
        for index, wanted in by_part.items():
            missed |= self._record_part(index, wanted)
        return missed

    def _record_part(self, index: int, wanted: set[int]) -> set[int]:
        recorder = _Recorder(self.module, wanted)
        self.nodes[index]._codegen(recorder)
        self._code[index] = "".join(recorder.tokens)
        if not recorder.paths:
            return wanted
        offsets = [0, *accumulate(map(len, recorder.tokens))]
        for node_id, path in recorder.paths.items():
            start, end = recorder.ranges[path[-1]]
            self._found[node_id] = _Found(index, path, offsets[start], offsets[end])
        for node_id, (start, end, indent) in recorder.spans.items():
            self._spans[node_id] = _Span(offsets[start], offsets[end], indent)
        return wanted - recorder.paths.keys()

    def position(self, node: cst.CSTNode) -> CodeRange:
        """The node's `PositionProvider` range (after `measure`)."""
        found = self._found.get(id(node))
        if found is None:
            return self._elsewhere[id(node)]
        self._count_rows()
        code, rows = self._code[found.part], self._position_rows[found.part]
        return CodeRange(_position(code, found.start, rows), _position(code, found.end, rows))

    # -- fixes as edits

    def edits(self, fix: Fix) -> list[Edit]:
        """The fix as text edits on the module's code, one per node it regenerates (after
        `measure` of the replaced nodes)."""
        units = self._units(fix)
        if units is None:
            return self._whole_module_edits(fix)
        replacements = {id(old): new for old, new in fix.edits}
        last = len(self.nodes) - 1
        out = []
        for unit in units:
            span = self._spans[id(unit.node)]
            code = self._render(unit, replacements, span.indent)
            end = span.end
            if self.dropped and unit.part == last and end == len(self._code[last]):
                end -= self.dropped
                code = code[: len(code) - self.dropped]
            edit = self._edit(unit.part, span.start, end, code)
            if edit is not None:
                out.append(edit)
        return sorted(out, key=lambda e: (e.row, e.column))

    def _units(self, fix: Fix) -> list[_Unit] | None:
        """The nodes to regenerate for the fix; None when a replaced node is in no part,
        or the module's last part, without its newline, goes away."""
        chosen: list[tuple[int, list[cst.CSTNode], int]] = []
        for old, new in fix.edits:
            found = self._found.get(id(old))
            if found is None:
                return None
            down = found.path
            depth = len(down) - 1
            # a removed node, a sequence in its place, or a node with a default comma...
            # changes its parent's code
            if not isinstance(new, cst.CSTNode) or _needs_parent(type(new)) or _needs_parent(type(old)):
                depth -= 1
                while depth > 0 and _needs_parent(type(down[depth])):
                    depth -= 1
            if depth < 0:  # a top-level part removed or split: the module's own sequence
                if self.dropped and found.part == len(self.nodes) - 1:
                    return None
                depth = 0
            chosen.append((found.part, down, depth))
        outermost = {id(down[depth]) for _, down, depth in chosen}
        units: dict[int, _Unit] = {}
        for index, down, _ in chosen:
            top = next(d for d, node in enumerate(down) if id(node) in outermost)
            unit = units.setdefault(id(down[top]), _Unit(down[top], index, set()))
            unit.below.update(id(node) for node in down[top:])
        return list(units.values())

    def _render(self, unit: _Unit, replacements: dict, indent: tuple[str, ...]) -> str:
        """The unit's new code, generated where it stands."""
        if len(unit.below) == 1:  # the replaced node itself
            new = replacements[id(unit.node)]
        else:
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
        part = self._code[index]
        old = part[start:end]
        head = _common_prefix(old, new)
        if head == len(old) == len(new):
            return None
        tail = _common_prefix(old[head:][::-1], new[head:][::-1])
        self._count_rows()
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


def _position(code: str, offset: int, rows: int) -> CodePosition:
    """PositionProvider's position of an offset in a part's code (lines end at "\\r\\n",
    "\\r" or "\\n"), given the line breaks before the part."""
    breaks = code.count("\n", 0, offset) + code.count("\r", 0, offset) - code.count("\r\n", 0, offset)
    line_start = max(code.rfind("\n", 0, offset), code.rfind("\r", 0, offset)) + 1
    return CodePosition(rows + breaks + 1, offset - line_start)


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


def positions_of(module: cst.Module):
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
