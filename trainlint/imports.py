"""A cheap import table: local names bound by import statements -> qualified names.

Built from a walk over statements only (expressions are never entered), so it costs a
small fraction of a parse. It ignores scoping: a name imported anywhere in the module is
resolved everywhere, which is what matters for spotting `torch` APIs.
"""

from __future__ import annotations

import libcst as cst


class ImportTable:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    @classmethod
    def of_module(cls, module: cst.Module) -> "ImportTable":
        table = cls()
        table._collect(module.body)
        return table

    def _collect(self, body) -> None:
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Import):
                        self._add_import(small)
                    elif isinstance(small, cst.ImportFrom):
                        self._add_import_from(small)
            else:
                for block in _blocks(stmt):
                    self._collect(block.body if isinstance(block, cst.IndentedBlock) else [block])

    def _add_import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted_name(alias.name)
            if full is None:
                continue
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.names[alias.asname.name.value] = full
            else:
                head = full.split(".")[0]
                self.names[head] = head

    def _add_import_from(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            return
        module = dotted_name(node.module)
        if module is None:
            return
        for alias in node.names:
            if not isinstance(alias.name, cst.Name):
                continue
            local = alias.name.value
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.names[local] = f"{module}.{alias.name.value}"

    def qualname(self, node: cst.BaseExpression) -> str | None:
        """`T.cuda.FloatTensor` -> `torch.cuda.FloatTensor` when `import torch as T`.

        Names not bound by an import resolve to None.
        """
        dotted = dotted_name(node)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        bound = self.names.get(head)
        if bound is None:
            return None
        return f"{bound}.{rest}" if rest else bound

    def matches(self, node: cst.BaseExpression, *qualnames: str) -> bool:
        return self.qualname(node) in qualnames

    def imports_module(self, prefix: str) -> bool:
        return any(q == prefix or q.startswith(prefix + ".") for q in self.names.values())


def dotted_name(node: cst.CSTNode) -> str | None:
    """`a.b.c` for a chain of Name/Attribute nodes, else None."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return None
    parts.append(node.value)
    return ".".join(reversed(parts))


def _blocks(stmt: cst.CSTNode):
    """The statement blocks directly inside a compound statement."""
    body = getattr(stmt, "body", None)
    if isinstance(body, cst.BaseSuite):
        yield body
    for attr in ("orelse", "finalbody"):
        other = getattr(stmt, attr, None)
        while other is not None:
            if isinstance(other, cst.BaseSuite):
                yield other
                break
            sub = getattr(other, "body", None)
            if isinstance(sub, cst.BaseSuite):
                yield sub
            other = getattr(other, "orelse", None) if isinstance(other, cst.If) else None
    for handler in getattr(stmt, "handlers", ()) or ():
        yield handler.body
    for case in getattr(stmt, "cases", ()) or ():
        yield case.body
