"""From a node of CPython's `ast` to the LibCST node of the same type and span.

Positions are resolved one top-level statement at a time, and only for the statements that
hold an anchor: a CPython statement and the LibCST statement it belongs to start on the same
line, and a top-level statement's code does not depend on what precedes it, so the positions
of the statement alone, shifted by its first line, are its positions in the module.
"""

from __future__ import annotations

import ast
import bisect
import re

import libcst as cst
from libcst.metadata import CodeRange

from trainlint.layout import positions_of

# ast types whose LibCST counterpart has another name
_CST_TYPE: dict[type, type] = {
    ast.AsyncFunctionDef: cst.FunctionDef,
    ast.AsyncFor: cst.For,
    ast.AsyncWith: cst.With,
}
_NEWLINE = re.compile(r"\r\n|\r|\n")

Key = tuple[type, int, int]  # LibCST type, line, column of the start


class Anchors:
    def __init__(self, module: cst.Module, tree: ast.Module, text: str) -> None:
        self.module = module
        self.text = text
        self._lines: list[str] | None = None
        # per LibCST top-level statement: its first line (decorators included), and the
        # line where LibCST's position of it starts (after the decorators)
        self._firsts: list[int] = []
        self._starts: list[int] = []
        previous_end = 0
        for stmt in tree.body:
            first = min([stmt.lineno, *(d.lineno for d in getattr(stmt, "decorator_list", ()))])
            if first > previous_end:  # statements sharing a line (`a; b`) are one LibCST line
                self._firsts.append(first)
                self._starts.append(stmt.lineno)
            previous_end = stmt.end_lineno or stmt.lineno
        self._aligned = len(self._starts) == len(module.body)
        self._by_statement: dict[int, dict[Key, list[tuple[int, int, cst.CSTNode]]]] = {}

    def find(self, anchor: ast.AST) -> tuple[cst.CSTNode, cst.CSTNode | None]:
        """The LibCST node for `anchor`, and the top-level statement holding it (None when
        the file's statements could not be aligned and the whole module was resolved)."""
        line, column = anchor.lineno, self._column(anchor.lineno, anchor.col_offset)
        end = (anchor.end_lineno, self._column(anchor.end_lineno, anchor.end_col_offset))
        index = bisect.bisect_right(self._firsts, line) - 1 if self._aligned else -1
        nodes = self._nodes(index)
        kind = _CST_TYPE.get(type(anchor)) or getattr(cst, type(anchor).__name__)
        found = nodes.get((kind, line, column))
        if not found:
            raise LookupError(f"no LibCST {kind.__name__} at {line}:{column + 1}")
        exact = [node for *span, node in found if tuple(span) == end]
        top = self.module.body[index] if index >= 0 else None
        return (exact or [node for *_, node in found])[0], top

    def _nodes(self, index: int) -> dict[Key, list[tuple[int, int, cst.CSTNode]]]:
        nodes = self._by_statement.get(index)
        if nodes is None:
            nodes = self._by_statement[index] = {}
            if index < 0:
                spans, shift = positions_of(self.module), 0
            else:
                module = self.module
                stmt = module.body[index]
                spans = positions_of(module.with_changes(header=(), body=(stmt,), footer=()))
                shift = self._starts[index] - spans[stmt].start.line
            for node, span in spans.items():
                start, end = span.start, span.end
                key = (type(node), start.line + shift, start.column)
                nodes.setdefault(key, []).append((end.line + shift, end.column, node))
        return nodes

    def _column(self, line: int, offset: int) -> int:
        """A UTF-8 byte offset in the line (CPython's columns) as characters (LibCST's)."""
        if self._lines is None:
            self._lines = _NEWLINE.split(self.text)
        text = self._lines[line - 1]
        if text.isascii():
            return offset
        return len(text.encode("utf-8")[:offset].decode("utf-8"))
