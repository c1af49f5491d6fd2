"""Jupyter notebooks as Python: code cells joined in order, and fixed source written back.

The code cells become one module, so an import in the first cell resolves names in the
last. In a cell that does not compile as Python, IPython syntax (`%magic`, `!shell`,
`x = !cmd`, `obj?`) becomes a `pass` placeholder at the same indentation; cells that start
with a cell magic (`%%bash`, `%%time`, ...) are left out. Each cell is followed by a marker statement, so rows map back
to `(cell, row)` and a fixed module splits back into cells.

Fixes are written back only when the notebook's JSON layout can be reproduced byte for
byte (the layouts Jupyter and nbformat write), so outputs, metadata and other cells stay
identical; otherwise the fixes are refused with an error.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, replace

from trainlint.diagnostic import Diagnostic, Edit

_IPYTHON_LINE = re.compile(
    r"(?P<indent>[ \t]*)(?:[%!]|[A-Za-z_][\w.]*\s*=\s*[%!]|\??[A-Za-z_][\w.]*\?\??\s*$)"
)
_PLACEHOLDER = "pass  # trainlint-ipython-{}"
_PLACEHOLDER_LINE = re.compile(r"[ \t]*pass  # trainlint-ipython-(\d+)$")
_MARKER = "__trainlint_cell_{}__"
_MARKER_LINE = re.compile(r"__trainlint_cell_(\d+)__$")


class NotebookError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class _Cell:
    number: int  # 1-based position among all cells of the notebook
    text: str  # the source as stored
    as_list: bool  # source stored as a list of lines (the usual form) rather than one string


class Notebook:
    def __init__(self, data: bytes) -> None:
        try:
            self.raw = data.decode("utf-8-sig")
            self.json = json.loads(self.raw)
        except UnicodeDecodeError as exc:
            raise NotebookError(f"not a notebook: not UTF-8 ({exc.reason})") from None
        except json.JSONDecodeError as exc:
            raise NotebookError(
                f"not a notebook: invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"
            ) from None
        self.cells = self._code_cells()
        self._ipython: dict[int, str] = {}  # placeholder number -> original line
        self.rows: list[tuple[int, int] | None] = []  # module row - 1 -> (cell, row in cell)
        self.python = self._as_python()

    def _code_cells(self) -> list[_Cell]:
        cells = self.json.get("cells") if isinstance(self.json, dict) else None
        if not isinstance(cells, list):
            raise NotebookError("not a notebook: no list of 'cells' at the top level")
        found = []
        for number, cell in enumerate(cells, start=1):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            source = cell.get("source", "")
            if isinstance(source, list) and all(isinstance(s, str) for s in source):
                found.append(_Cell(number, "".join(source), True))
            elif isinstance(source, str):
                found.append(_Cell(number, source, False))
            else:
                raise NotebookError(f"not a notebook: cell {number} has a 'source' that is not text")
        return found

    def _as_python(self) -> str:
        out: list[str] = []
        for cell in self.cells:
            if cell.text.lstrip().startswith("%%"):
                continue
            lines = cell.text.split("\n")
            if cell.text.endswith("\n"):
                lines.pop()  # the empty string after the final newline is not a line
            plain = _compiles(cell.text)  # then a line starting with % continues an expression
            indent: str | None = None  # set while a `!cmd \` continues on the next line
            for row, line in enumerate(lines, start=1):
                ipython = None if plain else _IPYTHON_LINE.match(line)
                if indent is not None or ipython:
                    indent = ipython.group("indent") if indent is None else indent
                    self._ipython[len(self._ipython)] = line
                    line = indent + _PLACEHOLDER.format(len(self._ipython) - 1)
                    indent = indent if self._ipython[len(self._ipython) - 1].endswith("\\") else None
                out.append(line)
                self.rows.append((cell.number, row))
            out.append(_MARKER.format(cell.number))
            self.rows.append(None)
        return "".join(line + "\n" for line in out)

    # -------------------------------------------------------------- diagnostics

    def locate(self, d: Diagnostic) -> Diagnostic:
        """The diagnostic with its rows relative to its cell."""
        cell, row = self._cell_row(d.row)
        end_cell, end_row = self._cell_row(d.end_row)
        end_column = d.end_column
        if end_cell != cell:
            end_row, end_column = row, d.column
        edits = [self._edit(e, cell) for e in d.edits]
        return replace(
            d, row=row, end_row=end_row, end_column=end_column, cell=cell,
            edits=[] if None in edits else edits,
        )

    def _edit(self, e: Edit, cell: int) -> Edit | None:
        start, end = self._cell_row(e.row), self._cell_row(e.end_row)
        if start[0] != cell or end[0] != cell:
            return None  # an edit in another cell than the diagnostic's: not expressible
        return Edit(e.content, start[1], e.column, end[1], e.end_column)

    def _cell_row(self, row: int) -> tuple[int, int]:
        for index in range(min(row, len(self.rows)) - 1, -1, -1):
            if self.rows[index] is not None:
                return self.rows[index]
        return (self.cells[0].number if self.cells else 1), 1

    def source_lines(self, cell: int) -> list[str]:
        for c in self.cells:
            if c.number == cell:
                return c.text.split("\n")
        return []

    # -------------------------------------------------------------- write-back

    def with_python(self, fixed: str) -> bytes:
        """The notebook's bytes with code cells replaced by the fixed module's cells."""
        texts = self._split(fixed)
        cells = self.json["cells"]
        for cell in self.cells:
            if cell.number not in texts or texts[cell.number] == cell.text:
                continue
            text = texts[cell.number]
            cells[cell.number - 1]["source"] = (
                text.splitlines(keepends=True) if cell.as_list else text
            )
        return self._dump().encode("utf-8")

    def _split(self, fixed: str) -> dict[int, str]:
        texts: dict[int, str] = {}
        current: list[str] = []
        pending = dict(self._ipython)
        expected = iter(c.number for c in self.cells if not c.text.lstrip().startswith("%%"))
        for line in fixed.split("\n")[:-1] if fixed.endswith("\n") else fixed.split("\n"):
            marker = _MARKER_LINE.match(line)
            if marker is None:
                placeholder = _PLACEHOLDER_LINE.match(line)
                if placeholder is not None:
                    line = pending.pop(int(placeholder.group(1)), line)
                current.append(line)
                continue
            number = int(marker.group(1))
            if number != next(expected, None):
                raise NotebookError("cannot write the fixes: a fix moved code across cells")
            original = next(c for c in self.cells if c.number == number)
            texts[number] = "\n".join(current) + ("\n" if original.text.endswith("\n") else "")
            current = []
        if current or next(expected, None) is not None or pending:
            raise NotebookError("cannot write the fixes: a fix moved code across cells")
        return texts

    def _dump(self) -> str:
        for options in _LAYOUTS:
            for newline in ("\n", ""):
                if json.dumps(json.loads(self.raw), **options) + newline == self.raw:
                    return json.dumps(self.json, **options) + newline
        raise NotebookError(
            "cannot write the fixes: the notebook's JSON layout is not one trainlint can "
            "reproduce byte for byte (save it with Jupyter or nbformat first)"
        )


def _compiles(text: str) -> bool:
    try:
        compile(text, "<cell>", "exec", dont_inherit=True, flags=ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError):
        return False
    return True


_LAYOUTS = [
    {"indent": indent, "ensure_ascii": ascii_only, "sort_keys": sort}
    for indent in (1, 2, 4)
    for sort in (True, False)
    for ascii_only in (False, True)
]
