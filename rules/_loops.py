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
from trainlint.rules._analysis import Visitor
from trainlint.traverse import walk

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
        walk(module, collector)
        self.bound = {k: v for k, v in collector.bound.items() if v is not None}

    def of(self, expr: cst.BaseExpression) -> str | None:
        name = dotted_name(expr)
        if name is None:
            return None
        if name in self.bound:
            return self.bound[name]
        return role_from_name(name)


class _RoleBindings(Visitor):
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
        walk(statement, collector)
    return collector.events


class _Events(Visitor):
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
    walk(node.body, collector)
    return iter(collector.loops)


class _Loops(Visitor):
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


# ------------------------------------------------------------------ statements in loops


_ROLES_CACHE: list = [None, None]


def module_roles(module: cst.Module, imports: ImportTable) -> Roles:
    """`Roles` of a module, built once per module however many rules ask."""
    if _ROLES_CACHE[0] is not module:
        _ROLES_CACHE[:] = [module, Roles(module, imports)]
    return _ROLES_CACHE[1]


@dataclass(frozen=True)
class Site:
    """Where an event sits inside a loop."""

    suite: cst.CSTNode  # the innermost block (IndentedBlock / SimpleStatementSuite)
    statement: cst.CSTNode  # the direct child of `suite` that holds the event
    # Ids of the enclosing blocks from the loop body down, leaving out `with` blocks: two
    # events with equal guards run under the same conditions in the same iteration.
    guards: tuple[int, ...]
    # Owners of the blocks in `guards`, in the same order.
    owners: tuple[cst.CSTNode, ...]


class _Parents(Visitor):
    def __init__(self, parents: dict[int, cst.CSTNode]) -> None:
        self.parents = parents
        self.stack: list[cst.CSTNode] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.stack:
            self.parents[id(node)] = self.stack[-1]
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()


class LoopSites:
    """Parent links of the loops a rule visits (built once per outermost loop)."""

    def __init__(self) -> None:
        self.parents: dict[int, cst.CSTNode] = {}

    def _ensure(self, loop: Loop) -> None:
        if id(loop.body) not in self.parents:
            walk(loop, _Parents(self.parents))

    def site(self, loop: Loop, node: cst.CSTNode) -> Site | None:
        self._ensure(loop)
        suite = statement = None
        chain: list[tuple[cst.CSTNode, cst.CSTNode]] = []
        while node is not loop:
            parent = self.parents.get(id(node))
            if parent is None:
                return None
            if isinstance(parent, (cst.IndentedBlock, cst.SimpleStatementSuite)):
                if suite is None:
                    suite, statement = parent, node
                owner = self.parents.get(id(parent))
                if not isinstance(owner, cst.With):
                    chain.append((parent, owner))
            node = parent
        if suite is None:
            return None
        chain.reverse()
        return Site(suite, statement, tuple(id(s) for s, _ in chain), tuple(o for _, o in chain))

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self.parents.get(id(node))


def single_call_statement(statement: cst.CSTNode, call: cst.CSTNode) -> bool:
    """`statement` is a line holding only the expression statement `call`."""
    return (
        isinstance(statement, cst.SimpleStatementLine)
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and statement.body[0].value is call
    )


def _owns_comments(lines) -> bool:
    return any(line.comment is not None for line in lines)


def move_after(
    moved: cst.SimpleStatementLine, anchor: cst.SimpleStatementLine, suite: cst.IndentedBlock
) -> tuple[tuple[cst.CSTNode, object], ...]:
    """Edits that move `moved` to just after `anchor` (a later sibling in `suite`).

    Comment lines above `moved` travel with it; blank lines stay where they were when the
    two statements are adjacent (the edit is then a swap of the two lines).
    """
    body = list(suite.body)
    adjacent = body.index(anchor) == body.index(moved) + 1
    comments = _owns_comments(moved.leading_lines) or _owns_comments(anchor.leading_lines)
    if adjacent and not comments:
        return (
            (moved, anchor.with_changes(leading_lines=moved.leading_lines)),
            (anchor, moved.with_changes(leading_lines=anchor.leading_lines)),
        )
    keep = moved.leading_lines if _owns_comments(moved.leading_lines) else ()
    keep = tuple(keep)
    while keep and keep[0].comment is None:
        keep = keep[1:]
    return (
        (moved, cst.RemovalSentinel.REMOVE),
        (anchor, cst.FlattenSentinel([anchor, moved.with_changes(leading_lines=keep)])),
    )


def mentions(node: cst.CSTNode, dotted: str) -> bool:
    """`node` uses the name `dotted` (or an attribute of it)."""
    found = []

    class _Find(Visitor):
        def visit_Attribute(self, n: cst.Attribute) -> bool:
            name = dotted_name(n)
            if name is None:
                return True
            if name == dotted or name.startswith(dotted + "."):
                found.append(n)
            return False

        def visit_Name(self, n: cst.Name) -> None:
            if n.value == dotted:
                found.append(n)

    walk(node, _Find())
    return bool(found)


_ASSIGN_CACHE: list = [None, None]


def assignments(module: cst.Module) -> dict[str, list[cst.Call]]:
    """Every `name = f(...)` / `self.x = f(...)` in the module: dotted target -> calls."""
    if _ASSIGN_CACHE[0] is not module:
        out: dict[str, list[cst.Call]] = {}

        class _Assigns(Visitor):
            def visit_Assign(self, node: cst.Assign) -> None:
                if isinstance(node.value, cst.Call):
                    for target in node.targets:
                        name = dotted_name(target.target)
                        if name is not None:
                            out.setdefault(name, []).append(node.value)

        walk(module, _Assigns())
        _ASSIGN_CACHE[:] = [module, out]
    return _ASSIGN_CACHE[1]


def constructor_of(
    module: cst.Module, imports: ImportTable, name: str, role: str
) -> cst.Call | None:
    """The first call in the module that builds `name` as an object of `role`."""
    calls = [
        c
        for c in assignments(module).get(name, [])
        if constructor_role(imports.qualname(c.func)) == role
    ]
    return calls[0] if calls else None


def first_argument(call: cst.Call, keyword: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    if call.args and call.args[0].keyword is None and call.args[0].star == "":
        return call.args[0].value
    return None


def innermost_steps(events: list[Event]) -> bool:
    """No inner loop holds both a backward and an optimizer step by itself."""
    kinds: dict[int, set[str]] = {}
    for event in events:
        for node in event.path:
            if isinstance(node, (cst.For, cst.While)):
                kinds.setdefault(id(node), set()).add(event.kind)
    return not any({BACKWARD, OPTIMIZER_STEP} <= k for k in kinds.values())


_FOREIGN = ("paddle", "mindspore", "tensorflow", "jax", "mxnet", "oneflow", "jittor", "megengine")


def foreign_framework(imports: ImportTable) -> bool:
    """The file imports another deep-learning framework and not torch: its `step()`,
    `backward()` and schedulers follow their own conventions."""
    heads = {q.split(".", 1)[0] for q in imports.names.values()}
    return "torch" not in heads and any(f in heads for f in _FOREIGN)


def extends_by_loops(site: Site, base: tuple[int, ...]) -> bool:
    """`site` lies in `base`'s block, or in loops nested in it (no branch in between)."""
    n = len(base)
    return site.guards[:n] == base and all(
        isinstance(o, (cst.For, cst.While)) for o in site.owners[n:]
    )


def call_name(call: cst.Call) -> str | None:
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


class LoopEventRule:
    """Mixin for a Rule that judges every `for`/`while` loop by its training-step events:
    it implements `check_loop(loop, events)`; files of other frameworks are skipped."""

    _roles: Roles | None = None

    @property
    def roles(self) -> Roles:
        if self._roles is None:
            self._roles = module_roles(self.context.module, self.context.imports)
        return self._roles

    def visit_For(self, node: cst.For) -> None:
        self._loop(node)

    def visit_While(self, node: cst.While) -> None:
        self._loop(node)

    def _loop(self, loop: Loop) -> None:
        if not foreign_framework(self.context.imports):
            self.check_loop(loop, loop_events(loop, self.roles, self.context.imports))

    def check_loop(self, loop: Loop, events: list[Event]) -> None:
        raise NotImplementedError
