"""What the user's own project passes to a class: its call sites, read with `ast`.

`LDAMLoss(cls_num_list=cls_num_list, max_m=0.5, s=30, weight=per_cls_weights)` in a
training script says that `weight` is a tensor and `max_m` is 0.5; the probe builds its
constructor arguments from that before it guesses from names. Only the values' kinds (a
tensor, a list, a number) and literals are taken, never the user's data.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

MAX_FILES = 3000
SKIPPED_DIRS = {"site-packages", "node_modules", "__pycache__", "build", "dist"}
TENSOR_FACTORIES = {
    "tensor", "Tensor", "FloatTensor", "LongTensor", "DoubleTensor", "as_tensor", "from_numpy",
    "ones", "zeros", "rand", "randn", "full", "linspace", "arange", "ones_like", "zeros_like",
}
TENSOR_METHODS = {"cuda", "to", "float", "double", "half", "long", "cpu", "detach", "clone", "type"}


class ProjectFiles:
    """The Python sources of one project, read once per run."""

    def __init__(self, root: Path):
        self.root = root
        self._texts: list[tuple[Path, str]] | None = None

    def texts(self) -> list[tuple[Path, str]]:
        if self._texts is None:
            self._texts = []
            for directory, dirs, files in os.walk(self.root):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS
                                 and not (Path(directory, d) / "pyvenv.cfg").exists())
                for name in sorted(files):
                    if name.endswith(".py") and len(self._texts) < MAX_FILES:
                        path = Path(directory, name)
                        try:
                            self._texts.append((path, path.read_text(encoding="utf-8", errors="replace")))
                        except OSError:
                            continue
        return self._texts


def hints_for(project: ProjectFiles | None, class_name: str) -> dict[str, dict]:
    """Parameter (or `#index` for a positional argument) -> {"value": literal} or {"kind": ...},
    from the first call site that gives it, in path order."""
    if project is None:
        return {}
    out: dict[str, dict] = {}
    for path, text in project.texts():
        if class_name + "(" not in text:
            continue
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        for scope in _scopes(tree):
            for call in _calls_in(scope, class_name):
                arguments = [(f"#{i}", a) for i, a in enumerate(call.args) if not isinstance(a, ast.Starred)]
                arguments += [(k.arg, k.value) for k in call.keywords if k.arg]
                for name, value in arguments:
                    if name not in out:
                        hint = _classify(value, scope, call.lineno, depth=0)
                        if hint:
                            out[name] = {**hint, "from": f"{path.name}:{call.lineno}"}
    return out


def _scopes(tree: ast.Module):
    yield tree
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _calls_in(scope, class_name: str):
    """Calls of `class_name` directly in this scope (not in nested functions)."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call) and _callee(node.func) == class_name:
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _callee(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _classify(node: ast.expr, scope, before: int, depth: int) -> dict | None:
    if depth > 3:
        return None
    try:
        return {"value": ast.literal_eval(node)}
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, (ast.List, ast.Tuple, ast.ListComp)):
        return {"kind": "list"}
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult) and (
            isinstance(node.left, ast.List) or isinstance(node.right, ast.List)):
        return {"kind": "list"}  # [1.0] * classes
    if isinstance(node, ast.Name):
        assigned = _last_assignment(scope, node.id, before)
        return _classify(assigned, scope, before, depth + 1) if assigned is not None else None
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in TENSOR_METHODS:
            receiver = _classify(func.value, scope, before, depth + 1)
            return receiver if receiver and receiver.get("kind") == "tensor" else {"kind": "tensor"}
        name = _callee(func)
        if name in TENSOR_FACTORIES and _root_name(func) in ("torch", None):
            return {"kind": "tensor"}
        if name in ("array", "asarray") and _root_name(func) in ("np", "numpy"):
            return {"kind": "list"}
        if name in ("list", "sorted"):
            return {"kind": "list"}
        if name in ("len", "int"):
            return {"kind": "int"}
        if name == "float":
            return {"kind": "float"}
    return None


def _root_name(func: ast.expr) -> str | None:
    """`torch` for `torch.nn.functional.x`; None for a bare name."""
    if not isinstance(func, ast.Attribute):
        return None
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


def _last_assignment(scope, name: str, before: int) -> ast.expr | None:
    found = None
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and node.lineno < before:
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                if found is None or node.lineno > found[0]:
                    found = (node.lineno, node.value)
    return found[1] if found else None
