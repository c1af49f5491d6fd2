"""Screen-side (CPython `ast`) counterparts of `_analysis` helpers.

Each one over-approximates its LibCST twin: where the twin answers yes, so does this, so
a screen built on them stays a necessary condition (see `trainlint.screen`).
"""

from __future__ import annotations

import ast

from trainlint.screen import AstIndex, dotted_name


def nn_module_classes(index: AstIndex) -> list[ast.ClassDef]:
    """Classes of the file that `_analysis.is_nn_module` may call an `nn.Module`: a base
    that resolves (through any import of its head) or is written as a `torch.nn` name,
    `nn.Module`/`Module`, an `nn.` name while some import binds `nn` to torch, or a
    top-level class of the file with that name that is one itself."""
    cached = index.memo.get("nn_module_classes")
    if cached is not None:
        return cached  # type: ignore[return-value]
    nn_is_torch = any(q.startswith("torch") for q in index.imports.get("nn", ()))

    def direct(base: ast.expr) -> bool:
        dotted = dotted_name(base)
        if dotted is None:
            return False
        for name in (dotted, *index.qualnames(base)):
            if name.startswith("torch.nn.") or name in ("nn.Module", "Module") or (
                nn_is_torch and name.startswith("nn.")
            ):
                return True
        return False

    classes = [c for c in index.nodes(ast.ClassDef) if c.bases]
    top: dict[str, list[ast.ClassDef]] = {}
    for stmt in index.tree.body:
        if isinstance(stmt, ast.ClassDef):
            top.setdefault(stmt.name, []).append(stmt)
    verdict: dict[int, bool] = {}

    def derives(cls: ast.ClassDef, seen: frozenset[str]) -> bool:
        known = verdict.get(id(cls))
        if known is not None:
            return known
        found = False
        for base in cls.bases:
            if direct(base):
                found = True
                break
            dotted = dotted_name(base)
            if dotted in top and dotted not in seen:
                if any(derives(c, seen | {dotted}) for c in top[dotted]):
                    found = True
                    break
        if not seen:
            verdict[id(cls)] = found
        return found

    out = [c for c in classes if derives(c, frozenset())]
    index.memo["nn_module_classes"] = out
    return out
