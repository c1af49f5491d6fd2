"""Whether an expression in a function visibly creates a tensor: a torch factory, followed
through torch functions, tensor methods, arithmetic, indexing, and the locals assigned on
a straight line of the function's body before it."""

from __future__ import annotations

import ast
import bisect

from trainlint.semantic import vocabulary as vocab
from trainlint.semantic.model import Function, SemanticModel

TENSOR = "tensor"
GRAD = "grad"  # created with `requires_grad=True` (or `.requires_grad_()`)
OPTIONAL = "optional"  # a tensor, or None (`if w is not None: w = torch.tensor(w)`)

_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)
# Binding kinds that end a straight line of a local; `del`, `global`, a nested `def` and
# an `import` without `as` do not.
_REBINDING = {"assign", "augmented", "annotated", "for-target", "with-target", "walrus", "except"}
_DEPTH = 6


class FunctionBody:
    """A function's top-level statements as lines: statements joined by `;` make one line,
    a compound statement is one line with everything in it."""

    def __init__(self, model: SemanticModel, function: Function) -> None:
        self.model = model
        self.function = function
        self.lines: list[list[ast.stmt]] = []
        previous = None
        for stmt in function.body:
            if previous is not None and not _compound(previous) and stmt.lineno == previous.end_lineno:
                self.lines[-1].append(stmt)
            else:
                self.lines.append([stmt])
            previous = stmt
        self._starts = [line[0].lineno for line in self.lines]

    def line_of(self, stmt: ast.stmt) -> int:
        """The index of the line holding stmt, a statement anywhere in the body."""
        return bisect.bisect_right(self._starts, stmt.lineno) - 1

    def alone(self, stmt: ast.stmt) -> bool:
        """Whether stmt is a top-level statement with a line to itself."""
        line = self.lines[self.line_of(stmt)]
        return line == [stmt]

    def calls_init_before(self, stmt: ast.stmt) -> bool:
        """Whether a line before stmt's calls an `__init__` (`super().__init__()`,
        `Base.__init__(self)`) as a statement of its own."""
        return any(
            isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
            and isinstance(s.value.func, ast.Attribute) and s.value.func.attr == "__init__"
            for line in self.lines[: self.line_of(stmt)]
            for s in line
        )

    def tensor(self, node: ast.expr, stmt: ast.stmt) -> str | None:
        """TENSOR, GRAD or OPTIONAL when node, in statement stmt, visibly evaluates to a
        fresh tensor; None when unknown."""
        return self._tensor(node, self.line_of(stmt), 0)

    def _tensor(self, node: ast.expr, line: int, depth: int) -> str | None:
        if depth > _DEPTH:
            return None
        if isinstance(node, ast.Call):
            return self._call(node, line, depth)
        if isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
            kinds = [self._tensor(node.left, line, depth + 1), self._tensor(node.right, line, depth + 1)]
            kinds = [k for k in kinds if k is not None]
            return (GRAD if GRAD in kinds else TENSOR) if kinds else None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return self._tensor(node.operand, line, depth + 1)
        if isinstance(node, ast.Subscript):
            return self._tensor(node.value, line, depth + 1)
        if isinstance(node, ast.Name):
            origin = self._origin(node.id, line)
            if origin is None:
                return None
            value, origin_line, optional = origin
            kind = self._tensor(value, origin_line, depth + 1)
            return OPTIONAL if optional and kind == TENSOR else kind
        return None

    def _call(self, node: ast.Call, line: int, depth: int) -> str | None:
        qualname = self.model.imports.qualname(node.func)
        if qualname is not None and _torch_function(qualname):
            if qualname in vocab.TENSOR_FACTORIES:
                return GRAD if _requires_grad(node) else TENSOR
            first = _first_argument(node)
            if qualname in vocab.TENSOR_FUNCTIONS and first is not None:
                return self._tensor(first, line, depth + 1)
            return None
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr in vocab.TENSOR_METHODS):
            return None
        inner = self._tensor(func.value, line, depth + 1)
        if inner is not None and func.attr == "requires_grad_" and not any(
            _is_false(a) for a in _arguments(node)
        ):
            return GRAD
        return inner

    def _origin(self, name: str, line: int) -> tuple[ast.expr, int, bool] | None:
        """The value of the last `name = value` on a line before `line`: (value, its line,
        optional), optional marking `if name is not None: name = value`. None when a
        later line rebinds name otherwise, or line itself is a compound statement that
        binds it."""
        scope = self.model.scope_of(self.function)
        found = [
            (self.line_of(b.statement), b) for b in self.model.bindings(scope, name)
            if b.kind in _REBINDING or (b.kind == "import" and b.node.asname)
        ]
        if any(at == line for at, _ in found) and _compound(self.lines[line][0]):
            return None
        before = [(at, b) for at, b in found if at < line]
        if not before:
            return None
        at, binding = before[-1]
        if binding.guards:
            return _optional(self.lines[at][0], name, at)
        stmt = binding.statement
        if binding.kind == "assign" and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            return stmt.value, at, False
        return None


def _optional(stmt: ast.stmt, name: str, line: int) -> tuple[ast.expr, int, bool] | None:
    """`if name is not None:` with the one indented line `name = value`, no else."""
    if not (isinstance(stmt, ast.If) and not stmt.orelse and _not_none_test(stmt.test, name)):
        return None
    body = stmt.body
    if len(body) != 1 or body[0].lineno <= stmt.test.end_lineno:
        return None  # several statements, or on the `if` line itself
    inner = body[0]
    if isinstance(inner, ast.Assign) and len(inner.targets) == 1 and _is_name(inner.targets[0], name):
        return inner.value, line, True
    return None


def _not_none_test(test: ast.expr, name: str) -> bool:
    return (
        isinstance(test, ast.Compare)
        and _is_name(test.left, name)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.IsNot)
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value is None
    )


def _torch_function(qualname: str) -> bool:
    """`torch.<name>` or `torch.cuda.<name>`: what `_call` judges by its name alone."""
    parts = qualname.split(".")
    return parts[0] == "torch" and (len(parts) == 2 or (len(parts) == 3 and parts[1] == "cuda"))


def _requires_grad(call: ast.Call) -> bool:
    return any(k.arg == "requires_grad" and not _is_false(k.value) for k in call.keywords)


def _arguments(call: ast.Call) -> list[ast.expr]:
    return [a.value if isinstance(a, ast.Starred) else a for a in call.args] + [
        k.value for k in call.keywords
    ]


def _first_argument(call: ast.Call) -> ast.expr | None:
    """The first argument as written, positional, starred or keyword."""
    first = [*call.args[:1], *call.keywords[:1]]
    if not first:
        return None
    node = min(first, key=lambda n: (n.lineno, n.col_offset))
    return node.value if isinstance(node, (ast.Starred, ast.keyword)) else node


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _compound(stmt: ast.stmt) -> bool:
    return hasattr(stmt, "body")
