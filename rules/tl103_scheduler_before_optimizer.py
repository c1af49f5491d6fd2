"""
## What it does
Flags `scheduler.step()` called before `optimizer.step()` in the same iteration of a loop,
on one straight-line path: both in the same block, or the scheduler step at the top of an
epoch loop whose batch loop below it steps the optimizer.

## Why is this bad?
Since PyTorch 1.1 a scheduler's `step()` moves the learning rate to the value of the
*next* step, and the optimizer built with the scheduler already starts at the first value.
Stepping the scheduler first skips that first value and shifts the whole schedule (warm-up
included) one step early, so training ends without ever using the last value. PyTorch only
warns about it at run time. That run-time warning ("Detected call of `lr_scheduler.step()`
before `optimizer.step()`") also fires when the order is right but a `GradScaler` skipped
an optimizer step with inf/NaN gradients, so the warning alone proves nothing; this rule
looks at the order in the code, which is the reliable signal.

## Example
```python
for x, y in loader:
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    scheduler.step()
    optimizer.step()
```

## Use instead
```python
for x, y in loader:
    optimizer.zero_grad()
    criterion(model(x), y).backward()
    optimizer.step()
    scheduler.step()
```

## Fix safety
The fix is safe when offered: it moves the `scheduler.step()` statement to just after the
`optimizer.step()` statement (after `scaler.update()` when that follows directly), so each
step uses the learning rate the schedule meant for it. It is offered only when both are
sibling statements of one block, each on a line of its own, and nothing between them reads
the learning rate, the scheduler or the optimizer (logging `get_last_lr()`, `param_groups`,
a helper given the optimizer).

## Known false positives
Only what one function shows is analysed; a step hidden in a helper is not seen. Calls
with arguments (`scheduler.step(epoch)`, `ReduceLROnPlateau.step(val_loss)`) set the
schedule explicitly and are not flagged, nor is a scheduler stepped after the batch loop of
an epoch, nor one stepped under a different condition than the optimizer (a step guarded
only by the scheduler's presence, `if scheduler is not None:`, counts as unconditional).
Schedulers built from a class of the same file that is not a torch `LRScheduler` subclass
are skipped, since a hand-written `step()` may be meant to set the rate for the coming
step. A scheduler that comes from elsewhere (a parameter, a factory) is assumed to follow
torch's convention, unless the file defines such a hand-written class (a `step` method and
code that mentions `lr` or `param_groups`) or the name says it schedules something else
(`noise_scheduler`, `kl_scheduler`, `teacher_forcing_scheduler`...). When the scheduler's
optimizer is known from its constructor, only that optimizer's steps count. Files that
import another framework (PaddlePaddle, MindSpore, ...) but not torch are skipped.
"""

from __future__ import annotations

import re

import libcst as cst

from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import (
    Visitor,
    is_scheduler_like,
    is_torch_scheduler_subclass,
    local_classes,
)
from trainlint.rules._loops import (
    LoopEventRule,
    OPTIMIZER_STEP,
    SCALER,
    SCHEDULER,
    SCHEDULER_STEP,
    Event,
    Loop,
    LoopSites,
    Site,
    assignments,
    constructor_role,
    extends_by_loops,
    first_argument,
    move_after,
    single_call_statement,
)
from trainlint.traverse import walk


# Schedulers of something other than the learning rate (diffusion noise, KL weight, EMA
# decay, teacher forcing...): their order relative to the optimizer step is no bug.
_NOT_LR = re.compile(
    r"^_?(noise|beta|kl|temp|temperature|tau|ema|momentum|teacher|tf|mask|dropout|weight|"
    r"alpha|sigma|sample|sampling|diffusion|ddpm|ddim|timestep|prune|pruning|sparsity|"
    r"curriculum|batch|bs|data|loss)",
    re.IGNORECASE,
)

# A hand-written class with a `step` method that sets learning rates.
_LR_TEXT = re.compile(r"param_groups|\blr\b|learning_rate|\w*_lr\b")

# Names whose use between the two statements may read the learning rate.
_LR_READERS = frozenset({"lr", "param_groups", "get_last_lr", "get_lr", "_last_lr", "last_epoch"})


class SchedulerBeforeOptimizer(LoopEventRule, Rule):
    __doc__ = __doc__
    code = "TL103"
    name = "scheduler-before-optimizer"
    message = (
        "`{sched}` runs before `{step}` in the same iteration: the schedule's first "
        "learning rate is skipped and every later one comes a step early"
    )
    message_epoch = (
        "`{sched}` runs at the top of the epoch, before the batch loop's `{step}`: the "
        "schedule's first learning rate is skipped and every later one comes an epoch early"
    )
    fix_applicability = Applicability.SAFE
    tokens = ("*sched*", "step")

    VALID = [
        Valid(
            """
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
                scheduler.step()
            """
        ),
        # Per-epoch scheduler after the batch loop.
        Valid(
            """
            from torch.optim.lr_scheduler import StepLR
            scheduler = StepLR(optimizer, 30)
            for epoch in range(100):
                for x, y in loader:
                    optimizer.zero_grad()
                    model(x, y).backward()
                    optimizer.step()
                scheduler.step()
            """
        ),
        # ReduceLROnPlateau stepped with the validation loss, before the next epoch.
        Valid(
            """
            import torch
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
            for epoch in range(100):
                plateau.step(val_loss)
                for x, y in loader:
                    model(x, y).backward()
                    optimizer.step()
            """
        ),
        # Explicit epoch argument.
        Valid(
            """
            for epoch in range(100):
                lr_scheduler.step(epoch)
                train_one_epoch(model, loader, optimizer)
            """
        ),
        # AMP order.
        Valid(
            """
            for x, y in loader:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
            """
        ),
        # Under a different condition than the optimizer step.
        Valid(
            """
            for i, (x, y) in enumerate(loader):
                if i % 100 == 0:
                    scheduler.step()
                model(x, y).backward()
                optimizer.step()
            """
        ),
        # The scheduler belongs to another optimizer that was stepped before it.
        Valid(
            """
            from torch.optim import lr_scheduler
            sched_g = lr_scheduler.StepLR(opt_g, 10)
            for x in loader:
                loss_g.backward()
                opt_g.step()
                sched_g.step()
                loss_d.backward()
                opt_d.step()
            """
        ),
        # Another framework's conventions (PaddlePaddle).
        Valid(
            """
            import paddle
            for batch in loader:
                model(batch).backward()
                lr_scheduler.step()
                optimizer.step()
                optimizer.clear_grad()
            """
        ),
        # A file that defines its own learning-rate scheduler: an unknown `scheduler`
        # may be one of those.
        Valid(
            """
            class Poly:
                def __init__(self, optimizer, base_lr):
                    self.optimizer, self.base_lr, self.t = optimizer, base_lr, 0
                def step(self):
                    self.t += 1
                    for g in self.optimizer.param_groups:
                        g["lr"] = self.base_lr * (1 - self.t / 1000) ** 0.9

            def train(loader, model, optimizer, scheduler):
                for x, y in loader:
                    scheduler.step()
                    model(x, y).backward()
                    optimizer.step()
            """
        ),
        # Not a learning-rate scheduler (by its name, when its class is unknown).
        Valid(
            """
            for x in loader:
                kl_scheduler.step()
                loss = recon(x) + kl_scheduler.weight * kl(x)
                loss.backward()
                optimizer.step()
            """
        ),
        # A hand-written scheduler of this file that sets the LR for the coming step.
        Valid(
            """
            class Warmup:
                def __init__(self, optimizer):
                    self.optimizer, self.t = optimizer, 0
                def step(self):
                    self.t += 1
                    for g in self.optimizer.param_groups:
                        g['lr'] = min(1.0, self.t / 100) * 0.1

            scheduler = Warmup(optimizer)
            for x, y in loader:
                scheduler.step()
                model(x, y).backward()
                optimizer.step()
            """
        ),
        # An optimizer step earlier in the iteration (rotated loop).
        Valid(
            """
            for x, y in loader:
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                model(x, y).backward()
            """
        ),
    ]
    INVALID = [
        # Siblings, adjacent: swapped.
        Invalid(
            """
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=1000)
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                scheduler.step()
                optimizer.step()
            """,
            fixed="""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=1000)
            for x, y in loader:
                optimizer.zero_grad()
                criterion(model(x), y).backward()
                optimizer.step()
                scheduler.step()
            """,
            line=7,
        ),
        # Not adjacent, AMP, aliased import: moved after scaler.update().
        Invalid(
            """
            from torch.optim import lr_scheduler as LS

            def train(model, loader, opt, scaler):
                warm = LS.LinearLR(opt, start_factor=0.1)
                for x, y in loader:
                    warm.step()
                    opt.zero_grad()
                    scaler.scale(model(x, y)).backward()
                    scaler.step(opt)
                    scaler.update()
                    log(x)
            """,
            fixed="""
            from torch.optim import lr_scheduler as LS

            def train(model, loader, opt, scaler):
                warm = LS.LinearLR(opt, start_factor=0.1)
                for x, y in loader:
                    opt.zero_grad()
                    scaler.scale(model(x, y)).backward()
                    scaler.step(opt)
                    scaler.update()
                    warm.step()
                    log(x)
            """,
            line=6,
        ),
        # The LR is logged between the two: reported without a fix.
        Invalid(
            """
            for x, y in train_loader:
                lr_scheduler.step()
                print(lr_scheduler.get_last_lr())
                model(x, y).backward()
                optimizer.step()
            """,
            line=2,
        ),
        # Guarded by the scheduler's presence only: still every iteration (no fix).
        Invalid(
            """
            def train(epoch, loader, model, optimizer, scheduler, device):
                for i, (img, label) in enumerate(loader):
                    model.zero_grad()
                    loss = model(img.to(device)).mean()
                    loss.backward()
                    if scheduler is not None:
                        scheduler.step()
                    optimizer.step()
            """,
            line=7,
        ),
        # A class with an unrelated `step` method does not hide the finding.
        Invalid(
            """
            class Env:
                def step(self, action):
                    return self.state, 0.0, False

            def train(loader, model, optimizer, scheduler):
                for x, y in loader:
                    optimizer.zero_grad()
                    model(x, y).backward()
                    scheduler.step()
                    optimizer.step()
            """,
            fixed="""
            class Env:
                def step(self, action):
                    return self.state, 0.0, False

            def train(loader, model, optimizer, scheduler):
                for x, y in loader:
                    optimizer.zero_grad()
                    model(x, y).backward()
                    optimizer.step()
                    scheduler.step()
            """,
            line=9,
        ),
        # Pre-1.1 idiom: stepped at the top of the epoch loop (reported, no fix).
        Invalid(
            """
            from transformers import get_linear_schedule_with_warmup
            sched = get_linear_schedule_with_warmup(optimizer, 100, 1000)
            for epoch in range(10):
                sched.step()
                for x, y in loader:
                    optimizer.zero_grad()
                    model(x, y).backward()
                    optimizer.step()
            """,
            line=4,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._sites = LoopSites()
        self._seen: set[int] = set()
        self._custom_file: bool | None = None

    @classmethod
    def screen(cls, index) -> bool:
        import ast

        if "step" not in index.called or not index.loops():
            return False
        if any("sched" in n.lower() for n in index.names | index.attributes):
            return True
        for node in (*index.nodes(ast.ImportFrom), *index.nodes(ast.Import)):
            module = getattr(node, "module", None) or ""
            if "sched" in module or module.startswith("transformers"):
                return True
            if any("sched" in a.name or a.name.startswith("transformers") for a in node.names):
                return True
        return False

    def check_loop(self, loop: Loop, events: list[Event]) -> None:
        for i, event in enumerate(events):
            if event.kind != SCHEDULER_STEP or id(event.node) in self._seen:
                continue
            call = event.node
            if not isinstance(call, cst.Call) or call.args:
                continue
            if any(e.kind == OPTIMIZER_STEP for e in events[:i]):
                continue
            kind, owner = self._scheduler(event.target)
            if kind == "custom":
                continue
            for later in events[i + 1 :]:
                if later.kind != OPTIMIZER_STEP:
                    continue
                if owner is not None and later.target is not None and later.target != owner:
                    continue
                self._judge(loop, event, later)
                break

    def _scheduler(self, name: str | None) -> tuple[str, str | None]:
        """("torch" | "custom" | "unknown", the optimizer it was built on, when known)."""
        if name is None:
            return "unknown", None
        module, imports = self.context.module, self.context.imports
        classes = local_classes(module)
        kinds = set()
        owner = None
        for call in assignments(module).get(name, []):
            callee = dotted_name(call.func)
            if constructor_role(imports.qualname(call.func)) == SCHEDULER:
                kinds.add("torch")
            elif callee in classes:
                cls = classes[callee]
                if is_torch_scheduler_subclass(cls, imports, module):
                    kinds.add("torch")
                elif is_scheduler_like(cls, imports, module):
                    kinds.add("custom")
                else:
                    continue
            else:
                continue
            arg = first_argument(call, "optimizer")
            owner = dotted_name(arg) if arg is not None else None
        if "custom" in kinds:
            return "custom", None
        if "torch" in kinds:
            return "torch", owner
        if self._has_custom_scheduler() or _NOT_LR.search(name.rsplit(".", 1)[-1]):
            return "custom", None
        return "unknown", None

    def _has_custom_scheduler(self) -> bool:
        if self._custom_file is None:
            module, imports = self.context.module, self.context.imports
            self._custom_file = any(
                "step" in _method_names(cls)
                and not is_torch_scheduler_subclass(cls, imports, module)
                and _LR_TEXT.search(module.code_for_node(cls)) is not None
                for cls in local_classes(module).values()
            )
        return self._custom_file

    def _judge(self, loop: Loop, sched: Event, step: Event) -> None:
        s = self._sites.site(loop, sched.node)
        o = self._sites.site(loop, step.node)
        if s is None or o is None:
            return
        # `if scheduler is not None: scheduler.step()` runs whenever there is a scheduler.
        guards = tuple(
            g for g, owner in zip(s.guards, s.owners, strict=True) if not _presence_test(owner, sched.target)
        )
        same_iteration = guards == o.guards
        epoch_top = not same_iteration and extends_by_loops(o, guards)
        if not (same_iteration or epoch_top):
            return
        self._seen.add(id(sched.node))
        sched_code = self.context.code(sched.node)
        step_code = " ".join(self.context.code(step.node).split())
        fix = self._fix(s, o, sched, step) if same_iteration else None
        message = self.message if same_iteration else self.message_epoch
        self.report(
            sched.node,
            message.format(sched=sched_code, step=step_code),
            fix=fix,
            help=f"call `{sched_code}` after `{step_code}`"
            + ("" if same_iteration else ", after the batch loop"),
        )

    def _fix(self, s: Site, o: Site, sched: Event, step: Event):
        suite = s.suite
        if not (
            suite is o.suite
            and isinstance(suite, cst.IndentedBlock)
            and single_call_statement(s.statement, sched.node)
            and single_call_statement(o.statement, step.node)
        ):
            return None
        body = list(suite.body)
        start, end = body.index(s.statement), body.index(o.statement)
        watched = {n for n in (sched.target, step.target) if n}
        if any(_reads_lr(stmt, watched) for stmt in body[start + 1 : end]):
            return None
        anchor = o.statement
        if end + 1 < len(body) and self._is_scaler_update(body[end + 1]):
            anchor = body[end + 1]
        return self.make_fix(
            f"Move `{self.context.code(sched.node)}` after the optimizer step",
            *move_after(s.statement, anchor, suite),
        )

    def _is_scaler_update(self, stmt: cst.CSTNode) -> bool:
        if not (isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1):
            return False
        expr = stmt.body[0]
        return (
            isinstance(expr, cst.Expr)
            and isinstance(expr.value, cst.Call)
            and isinstance(expr.value.func, cst.Attribute)
            and expr.value.func.attr.value == "update"
            and self.roles.of(expr.value.func.value) == SCALER
        )


def _presence_test(owner: cst.CSTNode, name: str | None) -> bool:
    """`owner` is `if name:` / `if name is not None:` (the body runs when `name` exists)."""
    if not isinstance(owner, cst.If) or name is None:
        return False
    test = owner.test
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        comparison = test.comparisons[0]
        if not (
            isinstance(comparison.operator, (cst.IsNot, cst.NotEqual))
            and isinstance(comparison.comparator, cst.Name)
            and comparison.comparator.value == "None"
        ):
            return False
        test = test.left
    return dotted_name(test) == name


def _method_names(cls: cst.ClassDef) -> set[str]:
    body = cls.body.body if isinstance(cls.body, cst.IndentedBlock) else ()
    return {s.name.value for s in body if isinstance(s, cst.FunctionDef)}


def _reads_lr(stmt: cst.CSTNode, watched: set[str]) -> bool:
    """`stmt` may read the learning rate, the scheduler or the optimizer.

    The optimizer's own `zero_grad()` and `scaler.unscale_(optimizer)` do not read the rate.
    """
    found: list[bool] = []

    class _Reads(Visitor):
        def visit_Call(self, node: cst.Call) -> bool:
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("zero_grad", "unscale_"):
                return False
            return True

        def visit_Attribute(self, node: cst.Attribute) -> bool:
            if node.attr.value in _LR_READERS:
                found.append(True)
            name = dotted_name(node)
            if name is not None:
                if any(name == w or name.startswith(w + ".") for w in watched):
                    found.append(True)
                return False
            return True

        def visit_Name(self, node: cst.Name) -> None:
            if node.value in watched or node.value in _LR_READERS:
                found.append(True)

        def visit_SimpleString(self, node: cst.SimpleString) -> None:
            if "lr" in node.value.lower():
                found.append(True)

    walk(stmt, _Reads())
    return bool(found)
