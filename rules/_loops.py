"""Training-loop analysis shared by the TL1xx rules: the role of a name and ordered events.

*Roles* (pitfalls catalogue §0.1): a name or `self.<attr>` is an optimizer, scheduler,
scaler, loader, model or criterion when it is bound to the matching constructor anywhere
in the module (`opt = torch.optim.SGD(...)`, `self.sched = lr_scheduler.StepLR(...)`), or,
failing that, when its last component is spelled like one (`optimizer`, `lr_scheduler`,
`scaler`, `train_loader`, ...).

*Events*: the calls that make up a training step (`backward`, `optimizer.step`,
`zero_grad`, clipping, `scaler.unscale_`, `scheduler.step`) found in a loop body in source
order, each with the compound statements between the loop body and the call, so a rule can
tell straight-line order from order under a branch or in an inner loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator, Union

import libcst as cst

from trainlint.imports import ImportTable, dotted_name

Loop = Union[cst.For, cst.While]

OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
SCALER = "scaler"
LOADER = "loader"
MODEL = "model"
CRITERION = "criterion"

_NAME_ROLES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (SCHEDULER, re.compile(r"(?:^|_)(?:lr_?)?sched(?:uler)?s?(?:_|\d|$)", re.I)),
    (SCALER, re.compile(r"(?:^|_)(?:grad_?|amp_?|loss_?)?scaler(?:_|\d|$)", re.I)),
    (OPTIMIZER, re.compile(r"(?:^|_)(?:optimi[sz]ers?|optim|opt)(?:_|\d|$)", re.I)),
    (LOADER, re.compile(r"(?:^|_)(?:data_?)?loaders?(?:_|\d|$)|^(?:train|val|valid|test)?_?dl$", re.I)),
    (CRITERION, re.compile(r"(?:^|_)(?:criterion|loss_fn|loss_func(?:tion)?|lossfn)(?:_|\d|$)", re.I)),
    (MODEL, re.compile(r"(?:^|_)(?:model|net|network)s?(?:_|\d|$)", re.I)),
)

CLIP_FUNCTIONS = frozenset({"clip_grad_norm_", "clip_grad_value_", "clip_grad_norm"})


def constructor_role(qualname: str | None) -> str | None:
    """The role of an object built by calling `qualname`, if it is a known constructor."""
    if not qualname:
        return None
    last = qualname.rsplit(".", 1)[-1]
    if qualname.startswith("torch.optim.lr_scheduler.") or (
        qualname.startswith("transformers.") and "schedule" in last
    ):
        return SCHEDULER
    if qualname.startswith("torch.optim.") and last[:1].isupper():
        return OPTIMIZER
    if last == "GradScaler" and qualname.startswith("torch."):
        return SCALER
    if qualname in ("torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"):
        return LOADER
    if qualname.startswith("torch.nn.") and last.endswith("Loss"):
        return CRITERION
    return None


def role_from_name(dotted: str) -> str | None:
    last = dotted.rsplit(".", 1)[-1]
    for role, pattern in _NAME_ROLES:
        if pattern.search(last):
            return role
    return None


class Roles:
    """Roles of the names bound in one module, from constructor calls and spelling."""

    def __init__(self, module: cst.Module, imports: ImportTable) -> None:
        collector = _RoleBindings(imports)
        module.visit(collector)
        self.bound = {k: v for k, v in collector.bound.items() if v is not None}

    def of(self, expr: cst.BaseExpression) -> str | None:
        name = dotted_name(expr)
        if name is None:
            return None
        if name in self.bound:
            return self.bound[name]
        return role_from_name(name)


class _RoleBindings(cst.CSTVisitor):
    def __init__(self, imports: ImportTable) -> None:
        self.imports = imports
        # None marks a name bound to two different roles: it gets no role at all.
        self.bound: dict[str, str | None] = {}

    def visit_Assign(self, node: cst.Assign) -> None:
        if not isinstance(node.value, cst.Call):
            return
        role = constructor_role(self.imports.qualname(node.value.func))
        if role is None:
            return
        for target in node.targets:
            name = dotted_name(target.target)
            if name is not None:
                previous = self.bound.get(name, role)
                self.bound[name] = role if previous == role else None


BACKWARD = "backward"
OPTIMIZER_STEP = "optimizer_step"
SCHEDULER_STEP = "scheduler_step"
ZERO_GRAD = "zero_grad"
CLIP = "clip"
UNSCALE = "unscale"


@dataclass(frozen=True)
class Event:
    kind: str
    node: cst.CSTNode  # the call (or the `p.grad = None` statement)
    # The object acted on: the optimizer of a step / unscale_ / zero_grad, the tensor of a
    # backward (`scaler.scale(loss)` for a scaled one), None when unknown.
    target: str | None
    # Compound statements from the loop body down to the event, outermost first.
    path: tuple[cst.CSTNode, ...]
    # The statement of the loop body that contains the event.
    statement: cst.BaseStatement
    scaled: bool = False  # backward of `scaler.scale(...)`, or step through `scaler.step(opt)`

    @property
    def conditional(self) -> bool:
        """Runs only on some iterations: under an if/try/match or in an inner loop."""
        return any(not isinstance(n, cst.With) for n in self.path)

    @property
    def in_inner_loop(self) -> bool:
        return any(isinstance(n, (cst.For, cst.While)) for n in self.path)


def loop_events(loop: Loop, roles: Roles, imports: ImportTable) -> list[Event]:
    """The training-step events in the body of `loop`, in source order.

    Nested function and class definitions are not entered; inner loops are, and their
    events carry the inner loop in `path`.
    """
    return block_events(loop.body, roles, imports)


def block_events(block: cst.CSTNode, roles: Roles, imports: ImportTable) -> list[Event]:
    collector = _Events(roles, imports)
    body = getattr(block, "body", None)
    statements = body if isinstance(body, (list, tuple)) else [block]
    for statement in statements:
        collector.statement = statement
        statement.visit(collector)
    return collector.events


class _Events(cst.CSTVisitor):
    def __init__(self, roles: Roles, imports: ImportTable) -> None:
        self.roles = roles
        self.imports = imports
        self.events: list[Event] = []
        self.path: list[cst.CSTNode] = []
        self.statement: cst.BaseStatement | None = None

    def _add(self, kind: str, node: cst.CSTNode, target: str | None, scaled: bool = False) -> None:
        assert self.statement is not None
        self.events.append(Event(kind, node, target, tuple(self.path), self.statement, scaled))

    def _enter(self, node: cst.CSTNode) -> None:
        self.path.append(node)

    def _exit(self, node: cst.CSTNode) -> None:
        if self.path and self.path[-1] is node:
            self.path.pop()

    def visit_If(self, node: cst.If) -> None:
        self._enter(node)

    def leave_If(self, original_node: cst.If) -> None:
        self._exit(original_node)

    def visit_Try(self, node: cst.Try) -> None:
        self._enter(node)

    def leave_Try(self, original_node: cst.Try) -> None:
        self._exit(original_node)

    def visit_With(self, node: cst.With) -> None:
        self._enter(node)

    def leave_With(self, original_node: cst.With) -> None:
        self._exit(original_node)

    def visit_For(self, node: cst.For) -> None:
        self._enter(node)

    def leave_For(self, original_node: cst.For) -> None:
        self._exit(original_node)

    def visit_While(self, node: cst.While) -> None:
        self._enter(node)

    def leave_While(self, original_node: cst.While) -> None:
        self._exit(original_node)

    def visit_Match(self, node: cst.Match) -> None:
        self._enter(node)

    def leave_Match(self, original_node: cst.Match) -> None:
        self._exit(original_node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_Assign(self, node: cst.Assign) -> None:
        # `p.grad = None` clears a gradient as zero_grad(set_to_none=True) does.
        if isinstance(node.value, cst.Name) and node.value.value == "None":
            for target in node.targets:
                t = target.target
                if isinstance(t, cst.Attribute) and t.attr.value == "grad":
                    self._add(ZERO_GRAD, node, dotted_name(t.value))

    def leave_Call(self, original_node: cst.Call) -> None:
        # leave_, not visit_: in `scaler.step(opt)` inside `f(scaler.step(opt))` the inner
        # call runs first, and leave order is evaluation order for nested calls.
        event = self._classify(original_node)
        if event is not None:
            self._add(*event)

    def _classify(self, call: cst.Call) -> tuple | None:
        func = call.func
        qualname = self.imports.qualname(func)
        if qualname is not None and qualname.rsplit(".", 1)[-1] in CLIP_FUNCTIONS:
            return CLIP, call, None
        if not isinstance(func, cst.Attribute):
            if qualname == "torch.autograd.backward":
                return BACKWARD, call, None
            return None
        method, receiver = func.attr.value, func.value
        if method in CLIP_FUNCTIONS:
            return CLIP, call, dotted_name(receiver)
        if method == "backward":
            scaled = (
                isinstance(receiver, cst.Call)
                and isinstance(receiver.func, cst.Attribute)
                and receiver.func.attr.value == "scale"
                and self.roles.of(receiver.func.value) == SCALER
            )
            target = dotted_name(receiver.args[0].value) if scaled and receiver.args else None
            return BACKWARD, call, target if scaled else dotted_name(receiver), scaled
        if method == "zero_grad":
            return ZERO_GRAD, call, dotted_name(receiver)
        role = self.roles.of(receiver)
        if method == "unscale_" and role == SCALER:
            return UNSCALE, call, _first_argument(call)
        if method != "step":
            if method == "zero_" and isinstance(receiver, cst.Attribute) and receiver.attr.value == "grad":
                return ZERO_GRAD, call, dotted_name(receiver.value)
            return None
        if role == SCALER:
            return OPTIMIZER_STEP, call, _first_argument(call), True
        if role == OPTIMIZER:
            return OPTIMIZER_STEP, call, dotted_name(receiver)
        if role == SCHEDULER:
            return SCHEDULER_STEP, call, dotted_name(receiver)
        return None


def _first_argument(call: cst.Call) -> str | None:
    return dotted_name(call.args[0].value) if call.args else None


def loop_iterable(loop: cst.For) -> cst.BaseExpression:
    """What a `for` loop walks, unwrapped from enumerate/tqdm/iter/zip(first)/islice."""
    it = loop.iter
    while isinstance(it, cst.Call) and it.args:
        callee = dotted_name(it.func) or ""
        if callee.rsplit(".", 1)[-1] not in ("enumerate", "tqdm", "iter", "zip", "islice", "track"):
            break
        it = it.args[0].value
    return it


def is_batch_loop(loop: cst.CSTNode, roles: Roles) -> bool:
    """A `for` over a DataLoader (by binding or by name), possibly wrapped in enumerate/tqdm."""
    return isinstance(loop, cst.For) and roles.of(loop_iterable(loop)) == LOADER


def is_epoch_loop(loop: cst.CSTNode, roles: Roles) -> bool:
    """`for epoch in range(...)`, or any loop that contains a batch loop."""
    if isinstance(loop, cst.For):
        target = dotted_name(loop.target) or ""
        it = loop.iter
        if "epoch" in target.lower() and isinstance(it, cst.Call) and dotted_name(it.func) == "range":
            return True
    return any(is_batch_loop(inner, roles) for inner in inner_loops(loop))


def inner_loops(node: cst.CSTNode) -> Iterator[Loop]:
    """Loops nested in `node`'s body (any depth), not entering function or class definitions."""
    collector = _Loops()
    node.body.visit(collector)
    return iter(collector.loops)


class _Loops(cst.CSTVisitor):
    def __init__(self) -> None:
        self.loops: list[Loop] = []

    def visit_For(self, node: cst.For) -> None:
        self.loops.append(node)

    def visit_While(self, node: cst.While) -> None:
        self.loops.append(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False
