"""Whether a failure depends on what a fix changed: the failing lines, or the values they read.

A fix may only be refuted for a failure that goes through its edit: a frame on an edited
line, or a line that reads a name (or `self.` attribute) assigned, directly or through other
assignments, from an edited line. A failure anywhere else comes from the probe's inputs.
"""

from __future__ import annotations

import ast
import difflib
import re

IDENTIFIER = re.compile(r"self\.\w+|\b[A-Za-z_]\w*\b")


class Edits:
    def __init__(self, without_fix: str, with_fix: str):
        self.lines = _changed_lines(without_fix, with_fix)
        self.text = with_fix.splitlines()
        self.tainted = _tainted(with_fix, self.lines)

    def touch(self, failing_lines: list[int]) -> bool:
        for line in failing_lines:
            if line in self.lines:
                return True
            if 0 < line <= len(self.text) and self.tainted & set(IDENTIFIER.findall(self.text[line - 1])):
                return True
        return False


def _changed_lines(before: str, after: str) -> set[int]:
    """1-based line numbers of `after` that are not in `before`."""
    matcher = difflib.SequenceMatcher(None, before.splitlines(), after.splitlines(), autojunk=False)
    changed: set[int] = set()
    for tag, _, _, start, end in matcher.get_opcodes():
        if tag != "equal":
            changed.update(range(start + 1, end + 1))
    return changed


def _tainted(source: str, edited: set[int]) -> set[str]:
    """Names and `self.` attributes whose value comes from an edited line."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    assignments = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            written = {w for t in targets for w in _written(t)}
            read = {_name(n) for n in ast.walk(node.value)} - {None}
            lines = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
            assignments.append((written, read, lines))
    tainted: set[str] = set()
    for written, _, lines in assignments:
        if lines & edited:
            tainted |= written
    for _ in range(10):  # to a fixed point; chains in one class are short
        grown = set(tainted)
        for written, read, _ in assignments:
            if read & tainted:
                grown |= written
        if grown == tainted:
            break
        tainted = grown
    return tainted


def _written(target: ast.AST) -> list[str]:
    if isinstance(target, (ast.Tuple, ast.List)):
        return [w for t in target.elts for w in _written(t)]
    if isinstance(target, (ast.Subscript, ast.Starred)):
        return _written(target.value)
    name = _name(target)
    return [name] if name else []


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return f"self.{node.attr}"
    return None
