"""
## What it does
Flags `scheduler.step()` called at the wrong granularity for the scheduler it steps:

- an epoch-sized scheduler stepped once per batch, inside the loop over a DataLoader:
  `StepLR`/`MultiStepLR` whose `step_size`/`milestones` are epoch-named or small integer
  literals (≤ 300), `ExponentialLR` with a literal `gamma` below 0.99, `ReduceLROnPlateau`
  with an epoch-sized (or default) `patience`, and `CosineAnnealingLR`,
  `CosineAnnealingWarmRestarts`, `LinearLR`, `ConstantLR`, `PolynomialLR`, `OneCycleLR`,
  `CyclicLR` and the `transformers` `get_*_schedule*` functions when their length argument
  is epoch-named (`T_max=args.epochs`, `num_training_steps=EPOCHS`);
- an iteration-sized scheduler stepped once per epoch (in an epoch loop outside its batch
  loop, or after the batch loop of a function): `OneCycleLR` with `steps_per_epoch`,
  `CyclicLR` (its `step_size_up` defaults to 2000 iterations), and any torch scheduler above
  whose length argument is clearly counted in iterations (`len(loader) * epochs`,
  `steps_per_epoch * epochs`, `num_batches`, a literal ≥ 1000, or a name assigned once to
  such a value), and the `transformers` schedules whose step counts are `len(...)`-based or
  step-named (`num_training_steps=t_total`).

The scheduler's class comes from the binding of the name that is stepped (private helper
`scheduler_constructors`): an assignment in the same function, an enclosing function or the
module, `self.<attr> = ...` in any method of the class, or, for a parameter of the function,
the argument every call site in the module passes.

## Why is this bad?
An epoch scheduler stepped per batch runs its schedule `len(loader)` times too fast:
`StepLR(step_size=30, gamma=0.1)` stepped per batch divides the LR by ten every 30 batches and
the LR is effectively 0 within the first epoch; training silently stalls. The reverse is just
as silent: a `OneCycleLR` sized with `steps_per_epoch=len(loader)` but stepped once per epoch
never leaves its warm-up, and a cosine schedule over `len(loader) * epochs` steps barely moves
from the initial LR. `OneCycleLR` stepped past its `total_steps` also raises `ValueError`.

## Example
```python
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
for epoch in range(EPOCHS):
    for x, y in train_loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
```

## Use instead
```python
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
for epoch in range(EPOCHS):
    for x, y in train_loader:
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    scheduler.step()
```

## Fix safety
There is no fix: whether to move the call or to re-size the schedule (`len(loader) * epochs`)
is the author's choice.

## Known false positives
- Iteration-named arguments of torch schedulers (`T_max=opt.niter`, `step_size=lr_decay_iters`)
  are not trusted for a per-epoch report: CycleGAN-style code names epoch counts so.
- The rule trusts names and literals for the schedule's unit: a `StepLR(step_size=100)` that
  really means 100 iterations, stepped per batch on purpose, is reported. Arguments whose unit
  cannot be told (`step_size=args.lr_step`, `T_max=cfg.t`, a literal `T_max`) are skipped.
- A step in the batch loop under an `if` whose test reads the loop's target, a name the loop
  body assigns, `len(...)`, or a step/iteration/batch/epoch-named value is skipped:
  `if i == len(loader) - 1: scheduler.step()` steps once per epoch, and gradient accumulation
  steps every N batches. Tests such as `if phase == "train"` or `if scheduler is not None`
  do not count as conditions. A step with an argument (`scheduler.step(epoch + i / iters)`,
  the documented per-batch use of `CosineAnnealingWarmRestarts`) is skipped.
- Per-epoch reports need a batch loop inside the epoch loop (or `for epoch in range(...)`)
  and no `optimizer.step()` at the same level as the scheduler step (full-batch training
  steps both once per "epoch").
- Only what is visible in one function is judged: a step inside a helper called from the
  batch loop is not followed, and a scheduler built by a factory (`create_scheduler(...)`),
  rebound to different classes, or received through `*args` is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst
from trainlint.rules._loops import (
    LOADER,
    OPTIMIZER_STEP,
    SCHEDULER,
    SCHEDULER_STEP,
    Event,
    Roles,
    block_events,
    inner_loops,
    is_batch_loop,
    is_epoch_loop,
    loop_events,
    loop_iterable,
)

from trainlint.imports import dotted_name
from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor
from trainlint.traverse import walk

TORCH_SCHEDULERS = "torch.optim.lr_scheduler."
# the classes and functions whose length argument the rule knows
KNOWN = (
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "ReduceLROnPlateau",
    "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts",
    "LinearLR",
    "ConstantLR",
    "PolynomialLR",
    "OneCycleLR",
    "CyclicLR",
)
_LOOPS = (cst.For, cst.While)
_DEFS = (cst.FunctionDef, cst.ClassDef, cst.Lambda)

EPOCH, ITER, NAMED_ITER, SMALL = "epoch", "iter", "named-iter", "small"

_ITER_TOKENS = frozenset(
    {"steps", "iters", "iter", "iterations", "iteration", "niter", "niters", "nsteps", "batches", "updates"}
)
_WEAK_TOKENS = _ITER_TOKENS | {"step", "batch", "update", "it", "its"}
_TOKEN_SPLIT = re.compile(r"[_\W\d]+|(?<=[a-z])(?=[A-Z])")


class SchedulerStepGranularity(Rule):
    __doc__ = __doc__
    code = "TL104"
    name = "scheduler-step-granularity"
    message = "`{recv}.step()` runs at the wrong granularity for its scheduler"
    tokens = ((*(f"*{name}*" for name in KNOWN), "*_schedule*", "*get_scheduler*"),)

    @classmethod
    def screen(cls, index) -> bool:
        import ast

        if "step" not in index.called or not index.loops():
            return False
        seen = index.names | index.attributes
        seen = seen | {a.name for n in index.nodes(ast.ImportFrom) for a in n.names}
        return any(_constructor_name(name) for name in seen)

    VALID = [
        # the Use-instead shape
        Valid(
            """
            import torch
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
            for epoch in range(EPOCHS):
                for x, y in train_loader:
                    loss = criterion(model(x), y)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                scheduler.step()
            """
        ),
        # OneCycleLR stepped per batch, as intended
        Valid(
            """
            from torch.optim.lr_scheduler import OneCycleLR
            sched = OneCycleLR(opt, max_lr=0.1, epochs=EPOCHS, steps_per_epoch=len(train_loader))
            for epoch in range(EPOCHS):
                for x, y in train_loader:
                    opt.step()
                    sched.step()
            """
        ),
        # CosineAnnealingLR over all iterations, stepped per batch
        Valid(
            """
            from torch.optim import lr_scheduler
            sched = lr_scheduler.CosineAnnealingLR(opt, T_max=len(loader) * epochs)
            for epoch in range(epochs):
                for batch in loader:
                    opt.step()
                    sched.step()
            """
        ),
        # CosineAnnealingLR over epochs, stepped per epoch
        Valid(
            """
            from torch.optim import lr_scheduler
            sched = lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
            for epoch in range(args.epochs):
                for batch in loader:
                    opt.step()
                sched.step()
            """
        ),
        # iteration milestones stepped per batch (detectron style)
        Valid(
            """
            import torch
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[60000, 80000])
            for x, y in data_loader:
                opt.step()
                sched.step()
            """
        ),
        # unit unknown: step_size from the config
        Valid(
            """
            import torch
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step)
            for x, y in train_loader:
                opt.step()
                sched.step()
            """
        ),
        # stepped once per epoch from inside the batch loop
        Valid(
            """
            import torch
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)
            for epoch in range(90):
                for i, (x, y) in enumerate(train_loader):
                    opt.step()
                    if i == len(train_loader) - 1:
                        sched.step()
            """
        ),
        # the documented fractional-epoch step of CosineAnnealingWarmRestarts
        Valid(
            """
            import torch
            sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=n_epochs)
            iters = len(train_loader)
            for epoch in range(n_epochs):
                for i, batch in enumerate(train_loader):
                    opt.step()
                    sched.step(epoch + i / iters)
            """
        ),
        # full-batch training: the "epoch" loop steps the optimizer too
        Valid(
            """
            import torch
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.01, total_steps=num_steps)
            for epoch in range(num_steps):
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
                sched.step()
            """
        ),
        # the name is bound to two classes: unknown
        Valid(
            """
            import torch
            if args.onecycle:
                sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, epochs=E, steps_per_epoch=len(loader))
            else:
                sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)
            for epoch in range(E):
                for x, y in loader:
                    opt.step()
                    sched.step()
            """
        ),
        # a parameter whose argument the rule cannot see (no call site in the module)
        Valid(
            """
            import torch
            def train_one_epoch(model, train_loader, optimizer, scheduler):
                for x, y in train_loader:
                    optimizer.step()
                    scheduler.step()
            """
        ),
        # a factory-built scheduler
        Valid(
            """
            import torch
            scheduler = create_scheduler(args, optimizer)
            for x, y in train_loader:
                optimizer.step()
                scheduler.step()
            StepLR = torch.optim.lr_scheduler.StepLR
            """
        ),
        # ReduceLROnPlateau stepped per epoch with the validation loss
        Valid(
            """
            from torch.optim.lr_scheduler import ReduceLROnPlateau
            scheduler = ReduceLROnPlateau(optimizer, patience=3)
            for epoch in range(epochs):
                for x, y in train_loader:
                    optimizer.step()
                scheduler.step(val_loss)
            """
        ),
        # the torchvision fine-tuning tutorial: StepLR stepped per epoch in the phase loop
        Valid(
            """
            from torch.optim import lr_scheduler
            exp_lr_scheduler = lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
            for epoch in range(num_epochs):
                for phase in ["train", "val"]:
                    for inputs, labels in dataloaders[phase]:
                        if phase == "train":
                            loss.backward()
                            optimizer.step()
                    if phase == "train":
                        exp_lr_scheduler.step()
            """
        ),
        # gradient accumulation: stepped every `accum` batches (counter assigned in the loop)
        Valid(
            """
            import torch
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30)
            for x, y in train_loader:
                n += 1
                if n % accum == 0:
                    opt.step()
                    sched.step()
            """
        ),
        # a catch-up loop on resume: not an epoch loop with a batch loop inside
        Valid(
            """
            import torch
            scheduler = torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=len(loader) * E)
            for _ in range(start_iter):
                scheduler.step()
            """
        ),
        # CycleGAN-style: `niter` counts epochs there, stepped per epoch
        Valid(
            """
            from torch.optim import lr_scheduler
            scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=opt.niter, eta_min=0)
            for epoch in range(opt.niter + opt.niter_decay):
                for i, data in enumerate(dataset_loader):
                    optimizer.step()
                scheduler.step()
            """
        ),
        # an iteration loop that evaluates over a loader now and then
        Valid(
            """
            import torch
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=len(train_loader) * 10)
            for step in range(max_steps):
                train_step(model, next(batches), opt)
                if step % 1000 == 0:
                    for x, y in val_loader:
                        evaluate(model, x, y)
                sched.step()
            """
        ),
        # a warm-up stepped per batch only during the first epoch
        Valid(
            """
            import torch
            warmup = torch.optim.lr_scheduler.LinearLR(opt, 0.1, total_iters=warmup_epochs)
            for epoch in range(epochs):
                for x, y in train_loader:
                    opt.step()
                    if epoch < warmup_epochs:
                        warmup.step()
            """
        ),
    ]
    INVALID = [
        # the seed page's settings (EPOCHS = 50) with a StepLR stepped per batch
        Invalid(
            """
            import torch.optim as optim

            EPOCHS = 50
            optimizer = optim.AdamW(model.parameters(), lr=model_lr)
            lr_schedule = optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)

            for epoch in range(1, EPOCHS + 1):
                model.train()
                for batch_idx, (data, target) in enumerate(train_loader):
                    loss = criterion_train(model(data), target)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    lr_schedule.step()
            """,
            line=14,
        ),
        # OneCycleLR sized per batch, stepped per epoch; `import torch as T`
        Invalid(
            """
            import torch as T
            sched = T.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=0.1, epochs=EPOCHS, steps_per_epoch=len(train_loader)
            )
            for epoch in range(EPOCHS):
                for x, y in train_loader:
                    opt.zero_grad()
                    crit(net(x), y).backward()
                    opt.step()
                sched.step()
            """,
            line=10,
        ),
        # self.<attr> bound in __init__, stepped in a method's batch loop
        Invalid(
            """
            from torch.optim.lr_scheduler import MultiStepLR as Milestones

            class Trainer:
                def __init__(self, model, optimizer):
                    self.optimizer = optimizer
                    self.scheduler = Milestones(optimizer, milestones=[30, 60, 90])

                def train_epoch(self, train_loader):
                    for x, y in train_loader:
                        self.optimizer.step()
                        if self.scheduler is not None:
                            self.scheduler.step()
            """,
            line=12,
        ),
        # a parameter, resolved through its only call site; cosine over epochs per batch
        Invalid(
            """
            from torch.optim.lr_scheduler import CosineAnnealingLR

            def train_one_epoch(model, loader, optimizer, scheduler):
                for x, y in loader:
                    optimizer.step()
                    scheduler.step()

            def main():
                scheduler = CosineAnnealingLR(optimizer, T_max=args.epochs)
                for epoch in range(args.epochs):
                    train_one_epoch(model, train_loader, optimizer, scheduler=scheduler)
            """,
            line=6,
        ),
        # per-iteration transformers schedule stepped after the batch loop of a function
        Invalid(
            """
            from transformers import get_linear_schedule_with_warmup

            lr_scheduler = get_linear_schedule_with_warmup(
                optimizer, num_warmup_steps=500, num_training_steps=len(train_dataloader) * num_epochs
            )

            def train(model, train_dataloader, optimizer):
                for batch in train_dataloader:
                    model(**batch).loss.backward()
                    optimizer.step()
                    optimizer.zero_grad()
                lr_scheduler.step()
            """,
            line=12,
        ),
        # the torchvision fine-tuning tutorial, with the step moved into the batch loop
        Invalid(
            """
            from torch.optim import lr_scheduler

            def train_model(model, criterion, optimizer, dataloaders, num_epochs=25):
                exp_lr_scheduler = lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
                for epoch in range(num_epochs):
                    for phase in ["train", "val"]:
                        for inputs, labels in dataloaders[phase]:
                            optimizer.zero_grad()
                            loss = criterion(model(inputs), labels)
                            if phase == "train":
                                loss.backward()
                                optimizer.step()
                                exp_lr_scheduler.step()
            """,
            line=13,
        ),
        # OneCycleLR stepped per epoch of a `trange` loop; the batch loop is in a helper
        Invalid(
            """
            import torch
            from tqdm import trange
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=config["lr"] * 10, steps_per_epoch=len(train_loader),
                epochs=config["epochs"],
            )
            for epoch in trange(config["epochs"], desc="Training Epochs"):
                train_loss = train(model, train_loader, loss_fn, optimizer)
                scheduler.step()
            """,
            line=9,
        ),
        # a cosine over a total-step count computed from len(loader), stepped per epoch
        Invalid(
            """
            import torch
            def fit(model, train_dl, opt, epochs):
                total_steps = epochs * len(train_dl)
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
                for epoch in range(epochs):
                    for xb, yb in train_dl:
                        opt.step()
                    sched.step()
            """,
            line=8,
        ),
        # ExponentialLR stepped per batch
        Invalid(
            """
            from torch.optim.lr_scheduler import ExponentialLR
            scheduler = ExponentialLR(optimizer, gamma=0.95)
            for x, y in dataloader:
                optimizer.step()
                scheduler.step()
            """,
            line=5,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._roles: Roles | None = None
        self._index: _Index | None = None  # built in visit_Module

    # ------------------------------------------------------------------ entry

    # The index is filled during the engine's single traversal (the visit_/leave_ methods
    # below forward to it); the analysis runs when the module is left.

    def visit_Module(self, node: cst.Module) -> None:
        self._index = _Index(self.context.imports)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._index.visit_ClassDef(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._index.leave_ClassDef(original_node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._index.visit_FunctionDef(node)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._index.leave_FunctionDef(original_node)

    def visit_For(self, node: cst.For) -> None:
        self._index.visit_For(node)

    def leave_For(self, original_node: cst.For) -> None:
        self._index.leave_For(original_node)

    def visit_While(self, node: cst.While) -> None:
        self._index.visit_While(node)

    def leave_While(self, original_node: cst.While) -> None:
        self._index.leave_While(original_node)

    def visit_Global(self, node: cst.Global) -> None:
        self._index.visit_Global(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._index.visit_Assign(node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._index.visit_AnnAssign(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._index.visit_AugAssign(node)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._index.visit_NamedExpr(node)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        self._index.visit_WithItem(node)

    def visit_Call(self, node: cst.Call) -> None:
        self._index.visit_Call(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        node = original_node
        imports = self.context.imports
        index = self._index
        # every resolution ends at a constructor call in this module
        if not index.steps or not index.has_constructor:
            return
        roles = Roles(node, imports)
        self._roles = roles
        loops: dict[int, tuple] = {}
        functions: dict[int, tuple] = {}
        for call, loop, funcs, cls in index.steps:
            if roles.of(call.func.value) != SCHEDULER:
                continue
            if loop is not None:
                loops.setdefault(id(loop), (loop, funcs, cls))
            elif funcs:
                functions.setdefault(id(funcs[-1]), (funcs[-1], funcs, cls))
        for loop, chain, cls in loops.values():
            self._loop(loop, chain, cls)
        for func, chain, cls in functions.values():
            self._function_level(func, chain, cls)

    def _loop(self, loop: cst.CSTNode, chain, cls) -> None:
        roles, imports = self._roles, self.context.imports
        events = loop_events(loop, roles, imports)
        steps = [e for e in events if e.kind == SCHEDULER_STEP and not e.in_inner_loop]
        if not steps:
            return
        if _is_batch_loop(loop, roles):
            loader = self.context.code(loop_iterable(loop))
            for event in steps:
                self._per_batch(event, loop, loader, chain, cls)
        elif _is_epoch_loop(loop, roles):
            if any(e.kind == OPTIMIZER_STEP and not e.in_inner_loop for e in events):
                return
            for event in steps:
                self._per_epoch(event, chain, cls)

    def _function_level(self, func: cst.FunctionDef, chain, cls) -> None:
        """`scheduler.step()` in a function body after its batch loop: once per pass over the data."""
        if not isinstance(func.body, cst.IndentedBlock):
            return
        events = block_events(func.body, self._roles, self.context.imports)
        outside = [e for e in events if not any(isinstance(n, _LOOPS) for n in e.path)]
        if any(e.kind == OPTIMIZER_STEP for e in outside):
            return
        body = list(func.body.body)
        for event in outside:
            if event.kind != SCHEDULER_STEP:
                continue
            before = body[: body.index(event.statement)] if event.statement in body else []
            if any(_is_batch_loop(loop, self._roles) for stmt in before for loop in _loops_in(stmt)):
                self._per_epoch(event, chain, cls)

    # ---------------------------------------------------------------- verdicts

    def _per_batch(self, event: Event, loop: cst.For, loader: str, chain, cls) -> None:
        call = event.node
        receiver = call.func.value
        recv = self.context.code(receiver)
        if not _runs_every_batch(event, recv, loop):
            return
        built = scheduler_constructors(receiver, chain, cls, self._index, self.context.imports)
        if not built:
            return
        plateau = all(q.endswith(".ReduceLROnPlateau") for q, _ in built)
        if call.args and not plateau:
            return
        sizes = [_sizing(q, c, self.context, self._index.name_values) for q, c in built]
        if not all(s.epoch for s in sizes):
            return
        cls_name = _class_names(built)
        effect = (
            "its patience runs out after a few batches instead of epochs"
            if plateau
            else f"the LR schedule runs len({loader}) times too fast"
        )
        self.report(
            call,
            f"`{_step_text(call, recv)}` runs once per batch (loop over `{loader}`), but its "
            f"{cls_name} schedule counts epochs ({sizes[0].epoch}): {effect}",
            help=f"call `{recv}.step()` once per epoch, after the batch loop, or size the "
            f"schedule in iterations (`len({loader}) * epochs`)",
        )

    def _per_epoch(self, event: Event, chain, cls) -> None:
        call = event.node
        receiver = call.func.value
        recv = self.context.code(receiver)
        for node in event.path:
            if isinstance(node, cst.If) and _switches_granularity(node.test):
                return
        built = scheduler_constructors(receiver, chain, cls, self._index, self.context.imports)
        if not built:
            return
        sizes = [_sizing(q, c, self.context, self._index.name_values) for q, c in built]
        if not all(s.iteration for s in sizes):
            return
        cls_name = _class_names(built)
        self.report(
            call,
            f"`{_step_text(call, recv)}` runs once per epoch, but its {cls_name} schedule counts "
            f"iterations ({sizes[0].iteration}): the LR schedule barely advances",
            help=f"call `{recv}.step()` right after `optimizer.step()`, inside the batch loop",
        )


# --------------------------------------------------------------- constructor lookup


def _constructor_name(last: str) -> bool:
    return last in KNOWN or (last.startswith("get_") and "schedule" in last)


def is_scheduler_constructor(qualname: str | None) -> bool:
    if not qualname:
        return False
    last = qualname.rsplit(".", 1)[-1]
    if qualname.startswith(TORCH_SCHEDULERS):
        return True
    return qualname.startswith(("transformers.", "diffusers.")) and _constructor_name(last)


_UNKNOWN = object()


@dataclass
class _Scope:
    func: cst.FunctionDef | None
    cls: cst.ClassDef | None


class _Index(Visitor):
    """One pass over the module: bindings of names and attributes by scope, parameters,
    call sites by callee name, and the candidate `<x>.step(...)` calls with their innermost
    loop (within their function), enclosing functions and class."""

    def __init__(self, imports, module: cst.Module | None = None) -> None:
        self.imports = imports
        self.assigns: dict[tuple, list] = {}
        self.name_values: dict[str, list] = {}  # plain names, every scope together
        self.params: dict[int, list[str]] = {}
        self.calls: dict[str, list[tuple[cst.Call, tuple, cst.ClassDef | None]]] = {}
        self.methods: set[int] = set()
        self.steps: list[tuple[cst.Call, cst.CSTNode | None, tuple, cst.ClassDef | None]] = []
        self.has_constructor = False
        self._funcs: list[cst.FunctionDef] = []
        self._classes: list[cst.ClassDef] = []
        self._loops: list[list[cst.CSTNode]] = [[]]  # one stack per function scope
        self._globals: dict[int, set[str]] = {}
        if module is not None:
            walk(module, self)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._classes.append(node)
        if isinstance(node.body, cst.IndentedBlock):
            for stmt in node.body.body:
                if isinstance(stmt, cst.FunctionDef):
                    self.methods.add(id(stmt))

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        p = node.params
        self.params[id(node)] = [
            x.name.value for x in (*p.posonly_params, *p.params, *p.kwonly_params)
        ] + [x.name.value for x in (p.star_arg, p.star_kwarg) if isinstance(x, cst.Param)]
        self._funcs.append(node)
        self._loops.append([])

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._funcs.pop()
        self._loops.pop()

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_For(self, node: cst.For) -> None:
        self._bind(node.target, _UNKNOWN)
        self._loops[-1].append(node)

    def leave_For(self, original_node: cst.For) -> None:
        self._loops[-1].pop()

    def visit_While(self, node: cst.While) -> None:
        self._loops[-1].append(node)

    def leave_While(self, original_node: cst.While) -> None:
        self._loops[-1].pop()

    def _cls(self) -> cst.ClassDef | None:
        return self._classes[-1] if self._classes else None

    def key(self, text: str, funcs: tuple, cls) -> tuple:
        if text.startswith("self."):
            return ("class", id(cls), text)
        if "." in text:
            return ("dotted", text)
        func = funcs[-1] if funcs else None
        if func is None or text in self._globals.get(id(func), ()):
            return ("module", text)
        return ("func", id(func), text)

    def _bind(self, target: cst.BaseExpression, value) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._bind(element.value, _UNKNOWN)
            return
        if isinstance(target, cst.StarredElement):
            self._bind(target.value, _UNKNOWN)
            return
        if isinstance(target, cst.Name):
            self.name_values.setdefault(target.value, []).append(value)
        text = dotted_name(target)
        if text is not None:
            funcs = tuple(self._funcs)
            self.assigns.setdefault(self.key(text, funcs, self._cls()), []).append(value)

    def visit_Global(self, node: cst.Global) -> None:
        if self._funcs:
            self._globals.setdefault(id(self._funcs[-1]), set()).update(
                n.name.value for n in node.names
            )

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._bind(node.target, _UNKNOWN)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind(node.target, _UNKNOWN)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind(node.asname.name, _UNKNOWN)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        name = None
        if isinstance(func, cst.Name):
            name = func.value
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            name = func.attr.value
        if name is not None:
            self.calls.setdefault(name, []).append((node, tuple(self._funcs), self._cls()))
        if isinstance(func, cst.Attribute) and func.attr.value == "step":
            loop = self._loops[-1][-1] if self._loops[-1] else None
            self.steps.append((node, loop, tuple(self._funcs), self._cls()))
        elif not self.has_constructor:
            self.has_constructor = is_scheduler_constructor(self.imports.qualname(func))


def scheduler_constructors(
    receiver: cst.BaseExpression, funcs: tuple, cls, index: _Index, imports, follow_params: bool = True
) -> list[tuple[str, cst.Call]] | None:
    """The scheduler constructor calls (qualname, call) that `receiver` may be bound to.

    None when unknown: not bound in view, bound to anything but a scheduler constructor
    (`None` aside), or a parameter whose call sites do not all pass such a binding.
    """
    text = dotted_name(receiver)
    if text is None:
        return None
    values = None
    if text.startswith("self.") or "." in text:
        values = index.assigns.get(index.key(text, funcs, cls))
    else:
        for depth in range(len(funcs) - 1, -1, -1):
            func = funcs[depth]
            values = index.assigns.get(("func", id(func), text))
            if values:
                break
            if text in index.params.get(id(func), ()):
                if depth != len(funcs) - 1 or not follow_params:
                    return None
                return _through_call_sites(func, text, index, imports)
        else:
            values = index.assigns.get(("module", text))
    return _constructors(values, imports)


def _constructors(values, imports) -> list[tuple[str, cst.Call]] | None:
    if not values:
        return None
    out = []
    for value in values:
        if isinstance(value, cst.Name) and value.value == "None":
            continue
        if not isinstance(value, cst.Call):
            return None
        qualname = imports.qualname(value.func)
        if not is_scheduler_constructor(qualname):
            return None
        out.append((qualname, value))
    return out or None


def _through_call_sites(func: cst.FunctionDef, param: str, index: _Index, imports):
    """Resolve a parameter from the arguments of every call of `func` in the module."""
    p = func.params
    positional = [x.name.value for x in (*p.posonly_params, *p.params)]
    if param in (x.name.value for x in (p.star_arg, p.star_kwarg) if isinstance(x, cst.Param)):
        return None
    is_method = id(func) in index.methods
    sites = index.calls.get(func.name.value, [])
    out: list[tuple[str, cst.Call]] = []
    for call, funcs, cls in sites:
        callee = call.func
        if is_method != isinstance(callee, cst.Attribute):
            continue  # `obj.train(...)` is not a call of the function `train`, and vice versa
        if is_method and callee.value.value not in ("self", "cls"):
            continue
        arg = _argument(call, param, positional, 1 if is_method else 0)
        if arg is None:
            return None
        built = scheduler_constructors(arg, funcs, cls, index, imports, follow_params=False)
        if not built:
            return None
        out += built
    return out or None


def _argument(call: cst.Call, param: str, positional: list[str], skip: int):
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == param:
            return arg.value
    if param not in positional:
        return None
    at = positional.index(param) - skip
    if at < 0:
        return None
    plain = []
    for arg in call.args:
        if arg.star:
            return None
        if arg.keyword is None:
            plain.append(arg.value)
    return plain[at] if at < len(plain) else None


# ------------------------------------------------------------------------ sizing


@dataclass
class _Sizing:
    epoch: str | None = None  # why it is sized in epochs ("step_size=30")
    iteration: str | None = None  # why it is sized in iterations


# class -> (argument, position, literal ints count as epochs, default when absent)
_LENGTH_ARGS: dict[str, tuple[str, int, bool, str | None]] = {
    "StepLR": ("step_size", 1, True, None),
    "MultiStepLR": ("milestones", 1, True, None),
    "ReduceLROnPlateau": ("patience", 3, True, SMALL),
    "CosineAnnealingLR": ("T_max", 1, False, None),
    "CosineAnnealingWarmRestarts": ("T_0", 1, False, None),
    "LinearLR": ("total_iters", 3, False, None),
    "ConstantLR": ("total_iters", 2, False, None),
    "PolynomialLR": ("total_iters", 1, False, None),
    "CyclicLR": ("step_size_up", 3, False, ITER),
}


def _sizing(qualname: str, call: cst.Call, context, names: dict) -> _Sizing:
    """How the scheduler built by `call` is sized; `names` maps a local name to its values.

    Iteration sizing of a torch scheduler needs strong evidence (`len(...)`, `*_per_epoch`,
    `num_batches`, a literal >= 1000, or a name assigned once to such a value): names alone
    mislead (CycleGAN's `niter` and `lr_decay_iters` count epochs)."""
    last = qualname.rsplit(".", 1)[-1]
    out = _Sizing()
    if qualname.startswith(TORCH_SCHEDULERS):
        if last == "ExponentialLR":
            gamma = _arg(call, "gamma", 1)
            value = _float_literal(gamma)
            if value is not None and 0 < value < 0.99:
                out.epoch = f"gamma={context.code(gamma)}"
            return out
        if last == "OneCycleLR":
            total = _arg(call, "total_steps", 2)
            per_epoch = _arg(call, "steps_per_epoch", 4)
            if per_epoch is not None:
                if _int_value(per_epoch) == 1:
                    out.epoch = "steps_per_epoch=1"
                else:
                    out.iteration = f"steps_per_epoch={context.code(per_epoch)}"
            elif total is not None:
                scale = _scale(total, False, names)
                detail = f"total_steps={context.code(total)}"
                if scale == ITER:
                    out.iteration = detail
                elif scale == EPOCH:
                    out.epoch = detail
            return out
        spec = _LENGTH_ARGS.get(last)
        if spec is None:
            return out
        name, position, literals, default = spec
        value = _arg(call, name, position)
        if value is None:
            scale = default
            detail = f"{name} left at its default"
        else:
            scale = _scale(value, literals, names)
            detail = f"{name}={_short(context.code(value))}"
        if scale in (EPOCH, SMALL):
            out.epoch = detail
        elif scale == ITER:
            out.iteration = detail
        return out
    # transformers / diffusers: get_*_schedule*(optimizer, num_warmup_steps, num_training_steps)
    if last == "get_scheduler":
        positions = {"num_warmup_steps": 2, "num_training_steps": 3}
    elif last == "get_wsd_schedule":
        positions = {"num_warmup_steps": 1, "num_decay_steps": 2, "num_training_steps": 3}
    elif "with_warmup" in last and "constant" not in last:
        positions = {"num_warmup_steps": 1, "num_training_steps": 2}
    else:
        positions = {"num_warmup_steps": 1, "num_training_steps": 99}  # keyword only
    found = {n: _arg(call, n, at) for n, at in positions.items()}
    scales = {n: _scale(v, False, names) for n, v in found.items() if v is not None}
    # the transformers API counts optimizer steps, so step-named values count too
    iters = sorted(
        (n for n, scale in scales.items() if scale in (ITER, NAMED_ITER)),
        key=lambda n: n != "num_training_steps",
    )
    epochs = [n for n, scale in scales.items() if scale == EPOCH]
    if iters and not epochs:
        out.iteration = f"{iters[0]}={_short(context.code(found[iters[0]]))}"
    elif "num_training_steps" in epochs and not iters:
        out.epoch = f"num_training_steps={_short(context.code(found['num_training_steps']))}"
    return out


def _arg(call: cst.Call, name: str, position: int) -> cst.BaseExpression | None:
    plain = []
    for arg in call.args:
        if arg.star:
            return None
        if arg.keyword is not None:
            if arg.keyword.value == name:
                return arg.value
        else:
            plain.append(arg.value)
    return plain[position] if position < len(plain) else None


def _scale(expr: cst.BaseExpression, literals: bool, names: dict, depth: int = 0) -> str | None:
    """Whether a length argument counts epochs or iterations, from its names and literals:
    ITER (strong evidence), NAMED_ITER (iteration-named only), EPOCH (epoch-named), SMALL
    (small int literals, when `literals`), or None."""
    words, has_len, ints, others = _words(expr)
    tokens = [t for w in words for t in _tokens(w)]
    lowered = {w.lower() for w in words}
    if has_len or "batches" in tokens or any(i >= 1000 for i in ints):
        return ITER
    if "per" in tokens and "epoch" in tokens and any(t in _ITER_TOKENS for t in tokens):
        return ITER
    if depth == 0:
        for leaf in _plain_names(expr):
            values = names.get(leaf)
            if (
                values
                and len(values) == 1
                and isinstance(values[0], cst.BaseExpression)
                and _scale(values[0], False, names, 1) == ITER
            ):
                return ITER
    if any(t in _ITER_TOKENS for t in tokens) or "t_total" in lowered:
        return NAMED_ITER
    if any("epoch" in t for t in tokens) and not any(t in _WEAK_TOKENS for t in tokens):
        return EPOCH
    if literals and ints and not words and not others and all(0 < i <= 300 for i in ints):
        return SMALL
    return None


def _plain_names(expr: cst.CSTNode) -> list[str]:
    """Bare names read by an expression (not attribute parts, not called functions)."""
    out: list[str] = []

    class _Walk(Visitor):
        def visit_Attribute(self, node: cst.Attribute) -> bool:
            return False

        def visit_Call(self, node: cst.Call) -> bool:
            for arg in node.args:
                walk(arg.value, self)
            return False

        def visit_Name(self, node: cst.Name) -> None:
            out.append(node.value)

    walker = _Walk()
    if isinstance(expr, cst.Name):
        return [expr.value]
    for child in expr.children:
        walk(child, walker)
    return out


def _tokens(word: str) -> list[str]:
    return [t.lower() for t in _TOKEN_SPLIT.split(word) if t]


def _words(expr: cst.CSTNode):
    """Identifiers and string keys, whether `len()` is called, int literals, other leaves."""
    words: list[str] = []
    ints: list[int] = []
    state = {"len": False, "other": False}

    class _Walk(Visitor):
        def visit_Name(self, node: cst.Name) -> None:
            words.append(node.value)

        def visit_Attribute(self, node: cst.Attribute) -> None:
            words.append(node.attr.value)

        def visit_Call(self, node: cst.Call) -> None:
            if isinstance(node.func, cst.Name) and node.func.value == "len":
                state["len"] = True

        def visit_SimpleString(self, node: cst.SimpleString) -> None:
            value = node.evaluated_value
            if isinstance(value, str):
                words.append(value)

        def visit_Integer(self, node: cst.Integer) -> None:
            try:
                ints.append(int(node.value.replace("_", ""), 0))
            except ValueError:
                state["other"] = True

        def visit_Float(self, node: cst.Float) -> None:
            state["other"] = True

    walk(expr, _Walk())
    # `visit_Attribute` also sees the attribute's Name child; `int(...)` etc. are words too
    return words, state["len"], ints, state["other"]


def _float_literal(expr) -> float | None:
    if isinstance(expr, (cst.Float, cst.Integer)):
        try:
            return float(expr.value.replace("_", ""))
        except ValueError:
            return None
    return None


def _int_value(expr) -> int | None:
    if isinstance(expr, cst.Integer):
        try:
            return int(expr.value.replace("_", ""), 0)
        except ValueError:
            return None
    return None


def _short(code: str) -> str:
    code = " ".join(code.split())
    return code if len(code) <= 40 else code[:37] + "..."


def _step_text(call: cst.Call, recv: str) -> str:
    return f"{recv}.step({'...' if call.args else ''})"


def _class_names(built: list[tuple[str, cst.Call]]) -> str:
    names = sorted({q.rsplit(".", 1)[-1] for q, _ in built})
    return "/".join(f"`{n}`" for n in names)


# ------------------------------------------------------------------ loops and conditions


def _is_batch_loop(loop: cst.CSTNode, roles: Roles) -> bool:
    """`_loops.is_batch_loop`, plus `for x in dataloaders[phase]` (the torchvision tutorial)."""
    if is_batch_loop(loop, roles):
        return True
    if not isinstance(loop, cst.For):
        return False
    it = loop_iterable(loop)
    return isinstance(it, cst.Subscript) and roles.of(it.value) == LOADER


def _is_epoch_loop(loop: cst.CSTNode, roles: Roles) -> bool:
    """`_loops.is_epoch_loop`, plus `for epoch in trange(...)` / `tqdm(range(...))` and loops
    over `dataloaders[phase]` inside."""
    if isinstance(loop, cst.For):
        # `for step in range(max_steps)` that evaluates over a loader now and then is an
        # iteration loop, whatever it contains
        words = _words(loop.target)[0] + _words(loop_iterable(loop))[0]
        if any(t in _WEAK_TOKENS for w in words for t in _tokens(w)):
            return False
    if is_epoch_loop(loop, roles):
        return True
    if any(_is_batch_loop(inner, roles) for inner in inner_loops(loop)):
        return True
    if not isinstance(loop, cst.For) or "epoch" not in (dotted_name(loop.target) or "").lower():
        return False
    it = loop_iterable(loop)
    return isinstance(it, cst.Call) and (dotted_name(it.func) or "").rsplit(".", 1)[-1] in (
        "range",
        "trange",
    )


def _runs_every_batch(event: Event, recv: str, loop: cst.For) -> bool:
    """The step is not under a condition that can pick some batches only.

    `if scheduler` / `if scheduler is not None` and tests that read nothing the batch loop
    changes (`if phase == "train"`, `if args.sched`) are fine; a test that reads the loop's
    target, a name the loop body assigns, or a step/iteration/batch/epoch-named value
    (`if i == len(loader) - 1`, `if (step + 1) % accum == 0`, `if epoch < warmup`) is not.
    """
    varying: set[str] | None = None
    for node in event.path:
        if isinstance(node, cst.With):
            continue
        if not isinstance(node, cst.If):
            return False
        if _tests_only(node.test, recv):
            if not any(n is event.node for n in _nodes(node.body)):
                return False  # in the else branch
            continue
        if varying is None:
            varying = _assigned_in(loop)
        words, has_len, _, _ = _words(node.test)
        if has_len or any(w in varying for w in words):
            return False
        if any(t in _WEAK_TOKENS or "epoch" in t or t in ("i", "idx") for w in words for t in _tokens(w)):
            return False
    return True


def _assigned_in(loop: cst.For) -> set[str]:
    """Names bound by the loop target and anywhere in its body (`x = ...`, `n += 1`)."""
    out: set[str] = set()

    class _Targets(Visitor):
        def _add(self, target: cst.CSTNode) -> None:
            for node in _nodes(target):
                if isinstance(node, cst.Name):
                    out.add(node.value)

        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            self._add(node.target)

        def visit_AugAssign(self, node: cst.AugAssign) -> None:
            self._add(node.target)

        def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
            self._add(node.target)

        def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
            self._add(node.target)

        def visit_For(self, node: cst.For) -> None:
            self._add(node.target)

        def visit_WithItem(self, node: cst.WithItem) -> None:
            if node.asname is not None:
                self._add(node.asname.name)

    walk(loop, _Targets())
    return out



def _tests_only(test: cst.BaseExpression, recv: str) -> bool:
    """`if sched`, `if sched is not None`, `if self.sched:`."""
    if dotted_name(test) == recv:
        return True
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1:
        comp = test.comparisons[0]
        return (
            dotted_name(test.left) == recv
            and isinstance(comp.operator, cst.IsNot)
            and isinstance(comp.comparator, cst.Name)
            and comp.comparator.value == "None"
        )
    return False


def _switches_granularity(test: cst.BaseExpression) -> bool:
    """A condition that picks per-batch vs per-epoch stepping (`isinstance`, `step_per_batch`)."""
    words, _, _, _ = _words(test)
    if "isinstance" in words:
        return True
    return any(t in _WEAK_TOKENS or "sched" in t for w in words for t in _tokens(w))


def _nodes(root: cst.CSTNode) -> Iterator[cst.CSTNode]:
    out: list[cst.CSTNode] = []

    class _All(Visitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            out.append(node)
            return not isinstance(node, _DEFS)

    walk(root, _All())
    return iter(out)


def _loops_in(stmt: cst.CSTNode) -> list[cst.CSTNode]:
    out: list[cst.CSTNode] = []

    class _Loops(Visitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, _LOOPS):
                out.append(node)
            return not isinstance(node, _DEFS)

    walk(stmt, _Loops())
    return out
