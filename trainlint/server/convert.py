"""trainlint's diagnostics and edits as Language Server Protocol objects.

trainlint counts rows and columns from 1, columns in characters; LSP counts from 0, and
columns in the code units the client and server agreed on (UTF-16 unless negotiated),
which pygls's position codec converts.
"""

from __future__ import annotations

import re

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec, ServerTextPosition

from trainlint.diagnostic import Diagnostic, Edit
from trainlint.docs import rule_url

SOURCE = "trainlint"
_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


class Positions:
    """Converts 1-based character rows and columns of one text to client positions."""

    def __init__(self, text: str, codec: PositionCodec) -> None:
        self.lines = _LINES.findall(text)
        self.codec = codec

    def position(self, row: int, column: int) -> types.Position:
        if row > len(self.lines):
            return types.Position(line=len(self.lines), character=0)
        return self.codec.position_to_client_units(self.lines, ServerTextPosition(row - 1, column - 1))

    def range(self, row: int, column: int, end_row: int, end_column: int) -> types.Range:
        return types.Range(start=self.position(row, column), end=self.position(end_row, end_column))


def diagnostic(d: Diagnostic, positions: Positions) -> types.Diagnostic:
    url = rule_url(d.code)
    return types.Diagnostic(
        range=positions.range(d.row, d.column, d.end_row, d.end_column),
        message=d.message if not d.help else f"{d.message}\nhelp: {d.help}",
        severity=types.DiagnosticSeverity.Error if d.is_error else types.DiagnosticSeverity.Warning,
        code=d.code,
        code_description=types.CodeDescription(href=url) if url else None,
        source=SOURCE,
        data={"help": d.help} if d.help else None,
    )


def text_edits(edits: list[Edit], positions: Positions) -> list[types.TextEdit]:
    return [
        types.TextEdit(range=positions.range(e.row, e.column, e.end_row, e.end_column), new_text=e.content)
        for e in edits
    ]


def replacement(before: str, after: str, positions: Positions) -> list[types.TextEdit]:
    """One edit turning `before` (the text `positions` describes) into `after`: the span
    between their common prefix and common suffix."""
    if before == after:
        return []
    head = 0
    limit = min(len(before), len(after))
    while head < limit and before[head] == after[head]:
        head += 1
    tail = 0
    while tail < limit - head and before[-1 - tail] == after[-1 - tail]:
        tail += 1
    end = len(before) - tail
    if before[head - 1 : head + 1] == "\r\n":  # never split a CRLF: no position lies inside
        head -= 1
    if before[end - 1 : end + 1] == "\r\n":
        end, tail = end + 1, tail - 1
    return [
        types.TextEdit(
            range=positions.range(*_row_col(before, head), *_row_col(before, end)),
            new_text=after[head : len(after) - tail],
        )
    ]


def _row_col(text: str, offset: int) -> tuple[int, int]:
    """1-based (row, column) of a character offset, counting lines as LSP does."""
    lines = _LINES.findall(text[:offset])
    if not lines or lines[-1][-1:] in ("\n", "\r"):
        return len(lines) + 1, 1
    return len(lines), len(lines[-1]) + 1
