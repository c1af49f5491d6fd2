"""What a rule may know about the file it is visiting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

import libcst as cst

from trainlint.imports import ImportTable
from trainlint.semantic import SemanticModel
from trainlint.traverse import walk

N = TypeVar("N", bound=cst.CSTNode)


@dataclass
class Context:
    module: cst.Module
    imports: ImportTable
    # The file's semantic model, where phase one built one (two-phase rules).
    model: SemanticModel | None = None
    # Ancestors of the node being visited, outermost first; maintained by the engine.
    stack: list[cst.CSTNode] = field(default_factory=list)
    _classes: dict[str, cst.ClassDef] | None = field(default=None, repr=False)
    _classes_using: dict[str, list[cst.ClassDef]] | None = field(default=None, repr=False)

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

    @property
    def classes(self) -> dict[str, cst.ClassDef]:
        """The module's top-level classes by name (the last one of each name)."""
        if self._classes is None:
            self._classes = {s.name.value: s for s in self.module.body if isinstance(s, cst.ClassDef)}
        return self._classes

    def classes_using(self, name: str) -> list[cst.ClassDef]:
        """The `classes` whose code uses the identifier `name` (as a name or an attribute);
        the names are collected once per file."""
        if self._classes_using is None:
            self._classes_using = {}
            for cls in self.classes.values():
                names = _Names()
                walk(cls, names)
                for used in names.found:
                    self._classes_using.setdefault(used, []).append(cls)
        return self._classes_using.get(name, [])


class _Names(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.found.add(node.value)
