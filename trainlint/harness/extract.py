"""Probe targets: scheduler-like classes and nn.Modules, cut out with what they need; and
the order of the AMP calls in a training loop, for the clipping probe.

The module's top level never runs: the probe source keeps only the imports, constants,
functions and classes that the target references (transitively), and drops everything
else (a training script's `main()` call, dataset construction, `if __name__ == ...`).
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from trainlint.imports import ImportTable
from trainlint.rules._analysis import (
    is_nn_module,
    is_scheduler_like,
    methods,
    names_in,
    parameter_names,
)
from trainlint.rules._loops import (
    BACKWARD,
    CLIP,
    OPTIMIZER_STEP,
    UNSCALE,
    Roles,
    loop_events,
)

LOSS_TARGET_NAMES = {"target", "targets", "label", "labels", "y", "gt"}


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "scheduler" | "loss" | "module"
    first_row: int
    last_row: int


def find_targets(module: cst.Module) -> list[Target]:
    imports = ImportTable.of_module(module)
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    out = []
    for stmt in module.body:
        if not isinstance(stmt, cst.ClassDef):
            continue
        kind = _kind(stmt, imports, module)
        if kind:
            span = positions[stmt]
            out.append(Target(stmt.name.value, kind, span.start.line, span.end.line))
    return out


def _kind(cls: cst.ClassDef, imports: ImportTable, module: cst.Module) -> str | None:
    found = methods(cls)
    if is_nn_module(cls, imports, module):
        params = parameter_names(found["forward"])[1:] if "forward" in found else []
        if "forward" in found and ("loss" in cls.name.value.lower() or LOSS_TARGET_NAMES & set(params)):
            return "loss"
        return "module"
    if is_scheduler_like(cls, imports, module):
        return "scheduler"
    return None


def loop_at(module: cst.Module, row: int) -> int | None:
    """Index (in source order) of the innermost loop whose lines include `row`."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    found = None
    for index, loop in enumerate(_all_loops(module)):
        span = positions[loop]
        if span.start.line <= row <= span.end.line:
            found = index
    return found


def amp_sequence(module: cst.Module, loop_index: int) -> list[str]:
    """The order of scaled backward, unscale_, clip and scaled step in one loop's body."""
    loops = _all_loops(module)
    if loop_index >= len(loops):
        return []
    imports = ImportTable.of_module(module)
    names = {BACKWARD: "backward", UNSCALE: "unscale", CLIP: "clip", OPTIMIZER_STEP: "step"}
    return [
        names[e.kind]
        for e in loop_events(loops[loop_index], Roles(module, imports), imports)
        if e.kind in names and not e.in_inner_loop and (e.scaled or e.kind in (UNSCALE, CLIP))
    ]


def _all_loops(module: cst.Module) -> list[cst.CSTNode]:
    found: list[cst.CSTNode] = []

    class Loops(cst.CSTVisitor):
        def visit_For(self, node: cst.For) -> None:
            found.append(node)

        def visit_While(self, node: cst.While) -> None:
            found.append(node)

    module.visit(Loops())
    return found


def probe_source(module: cst.Module, target: str) -> str:
    """The target class with the top-level definitions and imports it needs, nothing else."""
    defs: dict[str, cst.CSTNode] = {}
    for stmt in module.body:
        for name in _defined_names(stmt):
            defs.setdefault(name, stmt)
    wanted: list[cst.CSTNode] = []
    needed: set[str] = set()
    queue = [target]
    while queue:
        name = queue.pop()
        stmt = defs.get(name)
        if stmt is None or stmt in wanted:
            continue
        wanted.append(stmt)
        for used in names_in(stmt):
            if used not in needed:
                needed.add(used)
                queue.append(used)
    # Dropped statements become blank lines, so line numbers in tracebacks match the file.
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    lines = module.code.splitlines(keepends=True)
    previous_end = 0
    for stmt in module.body:
        end = positions[stmt].end.line
        region = range(previous_end, end)  # 0-based line indexes, leading comments included
        previous_end = end
        if stmt in wanted:
            continue
        replacement = ""
        if isinstance(stmt, cst.SimpleStatementLine):
            imports = [s for s in stmt.body if isinstance(s, (cst.Import, cst.ImportFrom))]
            trimmed = [t for t in (_only_needed(s, needed) for s in imports) if t is not None]
            if trimmed:
                replacement = module.code_for_node(
                    cst.SimpleStatementLine(body=trimmed)
                ).strip("\n")
        for i in region:
            lines[i] = "\n"
        lines[region[-1]] = replacement + "\n"
    return "".join(lines)


def _only_needed(node, needed: set[str]):
    if isinstance(node.names, cst.ImportStar):
        return None
    aliases = [a for a in node.names if _bound_name(a) in needed]
    if not aliases:
        return None
    aliases[-1] = aliases[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return node.with_changes(names=aliases)


def _bound_name(alias: cst.ImportAlias) -> str:
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    name = alias.name
    while isinstance(name, cst.Attribute):
        name = name.value
    return name.value


def _defined_names(stmt: cst.CSTNode) -> list[str]:
    if isinstance(stmt, (cst.ClassDef, cst.FunctionDef)):
        return [stmt.name.value]
    if isinstance(stmt, cst.SimpleStatementLine):
        out = []
        for small in stmt.body:
            if isinstance(small, cst.Assign):
                out += [t.target.value for t in small.targets if isinstance(t.target, cst.Name)]
            elif isinstance(small, cst.AnnAssign) and isinstance(small.target, cst.Name):
                out.append(small.target.value)
        return out
    return []
