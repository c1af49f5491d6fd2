"""Located diagnostics, the engine's output."""

from __future__ import annotations

from dataclasses import dataclass, field

from trainlint.rule import Applicability, Fix

INTERNAL_CODE = "TL000"


@dataclass(frozen=True)
class Edit:
    content: str
    row: int
    column: int
    end_row: int
    end_column: int


@dataclass
class Diagnostic:
    path: str
    code: str
    name: str
    message: str
    row: int
    column: int
    end_row: int
    end_column: int
    fix: Fix | None = None
    help: str | None = None
    edits: list[Edit] = field(default_factory=list)
    data: dict | None = None
    cell: int | None = None  # notebooks: the cell's position; rows count from its start

    @property
    def sort_key(self) -> tuple:
        return (self.path, self.cell or 0, self.row, self.column, self.code)

    @property
    def cell_message(self) -> str:
        """The message, naming the notebook cell for formats that have no place for it."""
        return self.message if self.cell is None else f"cell {self.cell}: {self.message}"

    @property
    def full_message(self) -> str:
        return self.cell_message if not self.help else f"{self.cell_message}\nhelp: {self.help}"

    @property
    def is_error(self) -> bool:
        return self.code == INTERNAL_CODE

    def fixable(self, unsafe: bool) -> bool:
        if self.fix is None:
            return False
        return unsafe or self.fix.applicability is Applicability.SAFE


def internal(path: str, message: str, row: int = 1, column: int = 1) -> Diagnostic:
    return Diagnostic(path, INTERNAL_CODE, "error", message, row, column, row, column)
