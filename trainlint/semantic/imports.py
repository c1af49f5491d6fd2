"""The file's import table, from CPython's `ast`: local names -> qualified names."""

from __future__ import annotations

import ast


class ImportTable:
    """Every import statement of the file, anywhere in it (scoping is ignored: a name
    imported anywhere resolves everywhere, which is what matters for spotting torch APIs).

    `import torch as T` binds `T -> torch`, `import torch.nn` binds `torch -> torch`,
    `from torch.nn import Linear as L` binds `L -> torch.nn.Linear`; relative and star
    imports bind nothing. A name bound by several imports keeps all of them, in source order.
    """

    def __init__(self, statements: list[ast.Import | ast.ImportFrom]) -> None:
        bound: dict[str, list[str]] = {}
        for node in statements:
            for local, qualified in _bindings(node):
                names = bound.setdefault(local, [])
                if qualified in names:
                    names.remove(qualified)
                names.append(qualified)
        self.bound: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in bound.items()}

    def qualname(self, node: ast.AST) -> str | None:
        """The qualified name of a Name/Attribute chain through the import that binds its
        head last in the file; None when no import binds the head."""
        dotted = dotted_name(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        bound = self.bound.get(head)
        if not bound:
            return None
        return f"{bound[-1]}.{rest}" if rest else bound[-1]

    def qualnames(self, node: ast.AST) -> frozenset[str]:
        """Every qualified name the chain may resolve to, through any import of its head."""
        dotted = dotted_name(node)
        if dotted is None:
            return frozenset()
        head, _, rest = dotted.partition(".")
        return frozenset(f"{b}.{rest}" if rest else b for b in self.bound.get(head, ()))

    def resolves_to(self, node: ast.AST, qualnames: frozenset[str] | set[str]) -> bool:
        return not self.qualnames(node).isdisjoint(qualnames)

    def binds(self, local: str, prefix: str) -> bool:
        """Whether the last import of `local` binds it to `prefix` or something under it."""
        bound = self.bound.get(local)
        return bool(bound) and (bound[-1] == prefix or bound[-1].startswith(prefix + "."))


def _bindings(node: ast.Import | ast.ImportFrom):
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.asname:
                yield alias.asname, alias.name
            else:
                head = alias.name.split(".")[0]
                yield head, head
        return
    if node.level or not node.module:
        return
    for alias in node.names:
        if alias.name != "*":
            yield alias.asname or alias.name, f"{node.module}.{alias.name}"


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
