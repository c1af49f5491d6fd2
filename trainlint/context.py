"""What a rule may know about the file it is visiting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import libcst as cst

from trainlint.imports import ImportTable
from trainlint.semantic import SemanticModel

N = TypeVar("N", bound=cst.CSTNode)


@dataclass
class Context:
    module: cst.Module
    imports: ImportTable
    # The file's semantic model, where phase one built one (two-phase rules).
    model: SemanticModel | None = None
    # Ancestors of the node being visited, outermost first; maintained by the engine.
    stack: list[cst.CSTNode] = field(default_factory=list)

    def qualname(self, node: cst.BaseExpression) -> str | None:
        return self.imports.qualname(node)

    def enclosing(self, kind: type[N]) -> N | None:
        for node in reversed(self.stack):
            if isinstance(node, kind):
                return node
        return None

    def enclosing_all(self, kind: type[N]) -> list[N]:
        """Every enclosing node of a kind, innermost first."""
        return [n for n in reversed(self.stack) if isinstance(n, kind)]

    def parent(self) -> cst.CSTNode | None:
        return self.stack[-1] if self.stack else None

    def code(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)
