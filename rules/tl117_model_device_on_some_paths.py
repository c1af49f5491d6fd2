"""
## What it does
Flags a model moved to a device (`model.to(device)`, `model.cuda()`, `model =
model.to(device)`) only under a condition, in a function (or at module level) that moves
the batches of a loop to the same device on every path: `x.to(device)` (the same
argument) or `x.cuda()` in a loop, outside any `if`. The model is recognised by its
name or its constructor (see the loop rules' roles).

## Why is this bad?
On the path where the condition is false the model stays on the CPU while every batch
goes to the GPU, and the first forward pass fails with "Expected all tensors to be on the
same device". The typical case moves the model inside a multi-GPU branch
(`if torch.cuda.device_count() > 1: model = nn.DataParallel(model); model.to(device)`),
so the script works on the author's machine and fails on a single-GPU one; or a command
line flag (`if args.cuda: model.cuda()`) guards the model and not the data.

## Example
```python
if torch.cuda.device_count() > 1:
    model = nn.DataParallel(model)
    model.to(device)
for x, y in loader:
    x, y = x.to(device), y.to(device)
```

## Use instead
```python
if torch.cuda.device_count() > 1:
    model = nn.DataParallel(model)
model.to(device)
```
or move the batches under the same condition as the model.

## Fix safety
No fix: where the move belongs depends on the condition. Not observable by a probe.

## Known limitations
One function at a time: a model moved in one function and batches in another are not
compared. A move counts as done on every path when it is outside any `if`, or in every
branch of an `if`/`else` chain (loops, `with` and `try` bodies are taken as run). Guards
that test CUDA availability (`torch.cuda.is_available()`) are not reported: there the
device is usually the CPU on the other path, where the batches do not move either.
"""

from __future__ import annotations


import libcst as cst

from trainlint.imports import dotted_name
from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import names_in
from trainlint.rules._loops import MODEL, Roles, module_roles

MOVES = ("to", "cuda")
AVAILABILITY = "is_available"


class ModelDeviceOnSomePaths(Rule):
    __doc__ = __doc__
    code = "TL117"
    name = "model-device-on-some-paths"
    message = (
        "`{move}` runs only when `{condition}`, but the batches are moved on every path "
        "(`{batch}`): otherwise the model stays on the CPU and the forward pass fails"
    )
    tokens = (("to", "cuda"),)

    VALID = [
        # Moved on every path: unconditionally, or in both branches.
        Valid(
            """
            import torch
            from torch import nn

            if torch.cuda.device_count() > 1:
                model = nn.DataParallel(model)
            model.to(device)
            for x, y in loader:
                x, y = x.to(device), y.to(device)

            def main(args, model):
                if args.distributed:
                    model.cuda(args.gpu)
                else:
                    model = nn.DataParallel(model).cuda()
                for images, target in loader:
                    images = images.cuda()
            """
        ),
        # Batches moved under the same condition.
        Valid(
            """
            def train(args, model, loader):
                if args.cuda:
                    model.cuda()
                for data, target in loader:
                    if args.cuda:
                        data, target = data.cuda(), target.cuda()
                    model(data)
            """
        ),
        # A guard on CUDA availability; another device than the batches'; a dtype.
        Valid(
            """
            import torch

            def train(model, loader, device):
                if torch.cuda.is_available():
                    model.cuda()
                if use_half:
                    model.to(other_device)
                for x in loader:
                    x = x.cuda()
                    x = x.to(device)
                    x = x.to(torch.float16)
            """
        ),
        # Batches moved outside any loop (a single example), not as batches.
        Valid(
            """
            def predict(model, x, args):
                if args.gpu:
                    model.cuda()
                x = x.cuda()
                return model(x)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch import nn

            device = torch.device("cuda:0")
            if torch.cuda.device_count() > 1:
                model = nn.DataParallel(model)
                model.to(device)
            for x, y in loader:
                x, y = x.to(device), y.to(device)
            """,
            line=7,
        ),
        # A flag guards the model, not the data; an assignment form in an elif chain.
        Invalid(
            """
            def train(args, model, loader):
                if args.cuda:
                    model = model.cuda()
                elif args.mps:
                    pass
                for epoch in range(10):
                    for data, target in loader:
                        data = data.cuda()
                        target = target.cuda(non_blocking=True)
                        model(data)
            """,
            line=3,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        # the scopes being visited (module, functions), innermost last
        self.scopes: list[_Scope] = []

    @property
    def roles(self) -> Roles:
        return module_roles(self.context.module, self.context.imports)

    def visit_Module(self, node: cst.Module) -> None:
        self.scopes.append(_Scope(node, node))

    def leave_Module(self, original_node: cst.Module) -> None:
        self._check(self.scopes.pop())

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scopes.append(_Scope(node, node.body))

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._check(self.scopes.pop())

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in MOVES:
            return
        if func.attr.value == "to" and not node.args:
            return
        scope = self.scopes[-1]
        guard, in_loop, statement = None, False, None
        for ancestor in reversed(self.context.stack):
            if ancestor is scope.node:
                break
            if isinstance(ancestor, (cst.ClassDef, cst.Lambda)):
                return  # a class body or a lambda: not this scope's straight code
            if isinstance(ancestor, (cst.SimpleStatementLine, cst.SimpleStatementSuite)) and statement is None:
                statement = ancestor
            elif isinstance(ancestor, cst.If) and guard is None:
                guard = ancestor
            elif isinstance(ancestor, (cst.For, cst.While)):
                in_loop = True
        if statement is None:
            return
        move = _Move(node, statement, guard)
        if self.roles.of(func.value) == MODEL or (self._assigns_model(statement) and not _in_args(node, statement)):
            scope.model_moves.append(move)
        elif in_loop and guard is None and _is_local(func.value):
            scope.batch_moves.append(move)

    def _assigns_model(self, statement: cst.SimpleStatementLine | cst.SimpleStatementSuite) -> bool:
        return any(
            isinstance(small, cst.Assign) and any(self.roles.of(t.target) == MODEL for t in small.targets)
            for small in statement.body
        )

    def _check(self, scope: _Scope) -> None:
        if not scope.model_moves or not scope.batch_moves:
            return
        if _on_every_path(_statements(scope.body), {id(m.statement) for m in scope.model_moves}):
            return
        for move in scope.model_moves:
            if move.guard is None or AVAILABILITY in names_in(move.guard.test):
                continue
            batch = next((b for b in scope.batch_moves if b.kind == move.kind), None)
            if batch is None:
                continue
            self.report(
                move.call,
                self.message.format(
                    move=self.context.code(move.call),
                    condition=self.context.code(move.guard.test),
                    batch=self.context.code(batch.call),
                ),
                help="move the model outside the condition, or the batches under the same one",
            )


class _Scope:
    """A module or function body being visited, and the moves seen in it so far."""

    def __init__(self, node: cst.CSTNode, body: cst.CSTNode) -> None:
        self.node = node
        self.body = body
        self.model_moves: list[_Move] = []
        self.batch_moves: list[_Move] = []


class _Move:
    def __init__(self, call: cst.Call, statement: cst.CSTNode, guard: cst.If | None) -> None:
        self.call = call
        self.statement = statement
        self.guard = guard  # the innermost `if` around the move, None when there is none
        self.kind = _kind(call)


def _kind(call: cst.Call) -> str:
    """`cuda`, or `to:<first argument>`: moves of the same kind go to the same device."""
    method = call.func.attr.value
    if method == "cuda":
        return "cuda"
    first = call.args[0].value if call.args and call.args[0].keyword is None else None
    return f"to:{dotted_name(first) if first is not None else ''}"


def _is_local(receiver: cst.BaseExpression) -> bool:
    """A batch tensor: a plain name (`x`) or an entry of one (`batch["x"]`)."""
    if isinstance(receiver, cst.Subscript):
        receiver = receiver.value
    return isinstance(receiver, cst.Name)


def _in_args(call: cst.Call, statement: cst.SimpleStatementLine | cst.SimpleStatementSuite) -> bool:
    """Whether `call` is the outermost call of an assignment's value chain (`model =
    Net().to(device)`): False; nested in an argument: True."""
    for small in statement.body:
        if isinstance(small, cst.Assign) and small.value is call:
            return False
    return True


def _on_every_path(block, moves: set[int]) -> bool:
    """Some statement of `block` moves the model on every path through it."""
    for stmt in block:
        if id(stmt) in moves:
            return True
        if isinstance(stmt, cst.If):
            if _branches_move(stmt, moves):
                return True
        elif isinstance(stmt, (cst.For, cst.While, cst.With, cst.Try)):
            if _on_every_path(_statements(stmt.body), moves):
                return True
    return False


def _branches_move(node: cst.If, moves: set[int]) -> bool:
    if not _on_every_path(_statements(node.body), moves):
        return False
    orelse = node.orelse
    if orelse is None:
        return False
    if isinstance(orelse, cst.If):
        return _branches_move(orelse, moves)
    return _on_every_path(_statements(orelse.body), moves)


def _statements(suite: cst.CSTNode) -> list[cst.CSTNode]:
    """The statements of a block; a one-line suite (`if c: model.cuda()`) is its own."""
    if isinstance(suite, (cst.Module, cst.IndentedBlock)):
        return list(suite.body)
    return [suite]
