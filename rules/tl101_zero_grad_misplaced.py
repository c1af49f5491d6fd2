"""
## What it does
In a loop that calls `backward()` and an optimizer `step()`, flags

* (a) a loop whose gradients are never zeroed: no `optimizer.zero_grad()`,
  `model.zero_grad()`, `p.grad = None` or equivalent anywhere in the function, and
* (b) `optimizer.zero_grad()` placed between `backward()` and `optimizer.step()` of the
  same optimizer, all three plain statements of the same block.

## Why is this bad?
`backward()` adds into `.grad`; it does not overwrite it. Without zeroing, each step
applies the sum of every gradient since the start of training, the effective step size
grows without bound and training diverges or stalls. Zeroing between `backward()` and
`step()` is the opposite mistake: the step sees empty gradients, so the weights never
learn (only weight decay acts). Neither mistake raises an error.

## Example
```python
for x, y in loader:
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.zero_grad()
    optimizer.step()
```

## Use instead
```python
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
```

## Fix safety
Case (b) has a safe fix that moves the `zero_grad()` statement to just after the `step()`
statement. It is offered only when `backward()`, `zero_grad()` and `step()` are sibling
simple statements of one block and `zero_grad()` is a statement of its own line, so the
move keeps every other statement where it was; the step then uses the gradients that the
code computed, which is what the code was written to do. Case (a) is reported only: where
the zeroing belongs (before the forward pass, or after the step) depends on the loop.

## Known false positives
Only what is visible in one function is analysed; helper functions called from the loop
are not followed. To stay quiet where zeroing may happen out of sight, case (a) is not
reported when the function contains any zeroing at all (in any loop, branch or nested
function), calls a function or method whose name contains `zero`, `reset` or `clear`,
calls a function of the same file that zeroes gradients, or writes, deletes or mutates in
place a `.grad` attribute (`p.grad = None`, `p.grad.data.zero_()`). Gradient accumulation
(`if (i + 1) % k == 0: step(); zero_grad()`) is fine, and so are closure steps
(`optimizer.step(closure)`, LBFGS), whose closure does the zeroing. An optimizer built
inside the loop is a throwaway (numeric checks), not training, and is skipped; so are files
that import another framework (PaddlePaddle, MindSpore, ...) but not torch. The price: a
loop that zeroes only once, before training or once per epoch, is missed, and zeroing done
by a framework callback that the function never calls by name is not seen (a false
positive then). For case (b) the three calls must run under the same conditions (`with`
blocks aside), and a `model.zero_grad()` counts only when the optimizer is built from that
model's parameters or is the only optimizer stepped in the loop, since clearing another
model's gradients between a backward and a step (GAN training) is correct.
"""

from __future__ import annotations


import libcst as cst

from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor
from trainlint.rules._loops import (
    LoopEventRule,
    BACKWARD,
    MODEL,
    OPTIMIZER,
    OPTIMIZER_STEP,
    ZERO_GRAD,
    Event,
    Loop,
    LoopSites,
    call_name,
    constructor_of,
    first_argument,
    innermost_steps,
    mentions,
    move_after,
    single_call_statement,
)
from trainlint.traverse import walk


# ----------------------------------------------------------------------- zeroing scan

_ZEROING_WORDS = ("zero", "reset", "clear")


def _touches_grad(node: cst.CSTNode) -> bool:
    """`p.grad`, `p.grad.data`, `p.grad[...]`: a chain through a `.grad` attribute."""
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        if isinstance(node, cst.Attribute) and node.attr.value == "grad":
            return True
        node = node.value
    return False


class _ZeroScan(Visitor):
    """Zeroing anywhere below a node, nested functions included.

    `targets` collects the receivers of `X.zero_grad` (dotted, or None when unknown);
    `generic` is set by anything else that may clear gradients.
    """

    def __init__(self, helpers: frozenset[str] = frozenset()) -> None:
        self.helpers = helpers
        self.targets: list[str | None] = []
        self.generic = False
        self.called: set[str] = set()

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "zero_grad":
            self.targets.append(dotted_name(node.value))

    def _target(self, target: cst.CSTNode) -> None:
        if isinstance(target, (cst.Tuple, cst.List)):
            for element in target.elements:
                self._target(element.value)
        elif _touches_grad(target):
            self.generic = True

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._target(target.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._target(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._target(node.target)

    def visit_Del(self, node: cst.Del) -> None:
        self._target(node.target)

    def visit_Call(self, node: cst.Call) -> None:
        name = call_name(node)
        if name is None:
            return
        self.called.add(name)
        named = name != "zero_grad" and any(w in name.lower() for w in _ZEROING_WORDS)
        in_place_on_grad = (
            name.endswith("_")
            and isinstance(node.func, cst.Attribute)
            and _touches_grad(node.func.value)
        )
        if named or name in self.helpers or in_place_on_grad:
            self.generic = True


_HELPERS_CACHE: list = [None, None]


def zeroing_helpers(module: cst.Module) -> frozenset[str]:
    """Names of the file's functions and methods that clear gradients, directly or through
    another such function of the file."""
    if _HELPERS_CACHE[0] is module:
        return _HELPERS_CACHE[1]
    functions: dict[str, list[_ZeroScan]] = {}

    class _Defs(Visitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
            scan = _ZeroScan()
            walk(node.body, scan)
            functions.setdefault(node.name.value, []).append(scan)

    walk(module, _Defs())
    zeroing = {n for n, scans in functions.items() if any(s.generic or s.targets for s in scans)}
    changed = True
    while changed:
        changed = False
        for name, scans in functions.items():
            if name not in zeroing and any(s.called & zeroing for s in scans):
                zeroing.add(name)
                changed = True
    result = frozenset(zeroing)
    _HELPERS_CACHE[:] = [module, result]
    return result


# ------------------------------------------------------------------------------- rule


class ZeroGradMisplaced(LoopEventRule, Rule):
    __doc__ = __doc__
    code = "TL101"
    name = "zero-grad-misplaced"
    message = "`{zero}` runs between `backward()` and `{step}`: the step sees cleared gradients"
    message_missing = (
        "`{step}` runs in a loop with `backward()` but gradients are never zeroed: "
        "each step applies the sum of all earlier gradients"
    )
    fix_applicability = Applicability.SAFE
    tokens = ("*backward*", "step")

    VALID = [
        # The canonical order.
        Valid(
            """
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            """
        ),
        # Zeroing after the step.
        Valid(
            """
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            """
        ),
        # Gradient accumulation.
        Valid(
            """
            def train(model, loader, optimizer, k=4):
                for i, (x, y) in enumerate(loader):
                    loss = model(x, y) / k
                    loss.backward()
                    if (i + 1) % k == 0:
                        optimizer.step()
                        optimizer.zero_grad()
            """
        ),
        # LBFGS: the closure zeroes.
        Valid(
            """
            import torch
            opt = torch.optim.LBFGS(model.parameters())
            for _ in range(20):
                def closure():
                    opt.zero_grad()
                    loss = model(x).sum()
                    loss.backward()
                    return loss
                opt.step(closure)
            """
        ),
        Valid(
            """
            for _ in range(20):
                loss.backward()
                opt.step(closure)
            """
        ),
        # model.zero_grad() and p.grad = None count as zeroing.
        Valid(
            """
            for x, y in loader:
                model.zero_grad()
                loss = model(x, y)
                loss.backward()
                optimizer.step()
            """
        ),
        Valid(
            """
            for x, y in loader:
                loss = model(x, y)
                loss.backward()
                optimizer.step()
                for p in model.parameters():
                    p.grad = None
            """
        ),
        Valid(
            """
            for x, y in loader:
                loss = model(x, y)
                loss.backward()
                optimizer.step()
                for w in params:
                    w.grad.data.zero_()
            """
        ),
        # Zeroing in a helper of the same file, or in one whose name says so.
        Valid(
            """
            def clean(opt):
                opt.zero_grad()

            def train(loader, model, optimizer):
                for x, y in loader:
                    clean(optimizer)
                    model(x, y).backward()
                    optimizer.step()
            """
        ),
        Valid(
            """
            def train(loader, model, optimizer, trainer):
                for x, y in loader:
                    trainer.reset_gradients()
                    model(x, y).backward()
                    optimizer.step()
            """
        ),
        # Zeroing once per epoch in the outer loop: not flagged (conservative).
        Valid(
            """
            def fit(model, loader, optimizer, epochs):
                for epoch in range(epochs):
                    optimizer.zero_grad()
                    for x, y in loader:
                        model(x, y).backward()
                        optimizer.step()
            """
        ),
        # GAN: D's gradients are cleared after G's backward, before G's step (correct).
        Valid(
            """
            for real in loader:
                opt_d.zero_grad()
                loss_d = d_loss(netD, netG, real)
                loss_d.backward()
                opt_d.step()
                opt_g.zero_grad()
                loss_g = g_loss(netD, netG)
                loss_g.backward()
                netD.zero_grad()
                opt_g.step()
            """
        ),
        # A second backward after the zeroing: zero_grad is between *its* pair correctly.
        Valid(
            """
            for x in loader:
                opt_d.zero_grad()
                loss_d.backward()
                opt_d.step()
                opt_g.zero_grad()
                loss_g.backward()
                opt_g.step()
            """
        ),
        # Clearing under a condition between backward and step: not straight-line.
        Valid(
            """
            for x in loader:
                opt.zero_grad()
                loss.backward()
                if skip_update:
                    opt.zero_grad()
                opt.step()
            """
        ),
        # A throwaway optimizer built in the loop (a numeric check, not training).
        Valid(
            """
            import torch
            for i in range(10):
                model(x).sum().backward()
                opt = torch.optim.SGD(model.parameters(), lr=0.01)
                opt.step()
            """
        ),
        # Another framework's conventions (PaddlePaddle).
        Valid(
            """
            import paddle
            for batch in loader:
                loss = model(batch)
                loss.backward()
                optimizer.step()
            """
        ),
        # No optimizer step in the loop (adversarial example on the input).
        Valid(
            """
            for _ in range(steps):
                loss = model(x_adv).sum()
                loss.backward()
                x_adv = x_adv + alpha * x_adv.grad.sign()
            """
        ),
    ]
    INVALID = [
        # (b) misplaced, the fix swaps the two adjacent lines.
        Invalid(
            """
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.zero_grad()
                optimizer.step()
            """,
            fixed="""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            """,
            line=6,
        ),
        # (b) not adjacent, with AMP, alias import, model.zero_grad() and a comment.
        Invalid(
            """
            import torch as T
            from torch.optim import AdamW as Opt

            def train(net, loader, scaler):
                opt = Opt(net.parameters())
                for x, y in loader:
                    scaler.scale(net(x, y)).backward()

                    # start clean
                    net.zero_grad()  # all params
                    T.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    scaler.step(opt)
                    scaler.update()
            """,
            fixed="""
            import torch as T
            from torch.optim import AdamW as Opt

            def train(net, loader, scaler):
                opt = Opt(net.parameters())
                for x, y in loader:
                    scaler.scale(net(x, y)).backward()
                    T.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                    scaler.step(opt)
                    # start clean
                    net.zero_grad()  # all params
                    scaler.update()
            """,
            line=10,
        ),
        # (b) inside a block that is itself conditional, siblings there: fixed.
        Invalid(
            """
            for i, batch in enumerate(train_loader):
                loss = model(batch)
                if loss is not None:
                    loss.backward()
                    optim.zero_grad()
                    optim.step()
            """,
            fixed="""
            for i, batch in enumerate(train_loader):
                loss = model(batch)
                if loss is not None:
                    loss.backward()
                    optim.step()
                    optim.zero_grad()
            """,
        ),
        # (b) zero_grad shares its line with another statement: reported, not fixed.
        Invalid(
            """
            for x, y in loader:
                loss = model(x, y)
                loss.backward()
                optimizer.zero_grad(); n += 1
                optimizer.step()
            """,
            line=4,
        ),
        # (b) across a `with` block: reported, not fixed.
        Invalid(
            """
            from apex import amp
            for x, y in loader:
                with amp.scale_loss(model(x, y), optimizer) as scaled:
                    scaled.backward()
                optimizer.zero_grad()
                optimizer.step()
            """,
            line=5,
        ),
        # (a) missing.
        Invalid(
            """
            from torch import optim

            def train(model, loader, epochs):
                optimizer = optim.Adam(model.parameters(), lr=1e-3)
                for epoch in range(epochs):
                    for x, y in loader:
                        loss = model(x, y)
                        loss.backward()
                        optimizer.step()
            """,
            line=9,
        ),
        # (a) missing in an accumulation loop.
        Invalid(
            """
            for i, (x, y) in enumerate(train_loader):
                loss = model(x, y) / accum
                loss.backward()
                if (i + 1) % accum == 0:
                    self.optimizer.step()
            """,
            line=5,
        ),
        # (a) one of two optimizers is never zeroed.
        Invalid(
            """
            while step < total:
                opt_d.zero_grad()
                loss_d(batch).backward()
                opt_d.step()
                loss_g(batch).backward()
                opt_g.step()
            """,
            line=6,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._sites = LoopSites()
        self._seen: set[int] = set()

    @classmethod
    def screen(cls, index) -> bool:
        called = index.called
        return "backward" in called and "step" in called and bool(index.loops())

    def check_loop(self, loop: Loop, events: list[Event]) -> None:
        kinds = {e.kind for e in events}
        if BACKWARD not in kinds or OPTIMIZER_STEP not in kinds:
            return
        self._misplaced(loop, events)
        if innermost_steps(events):
            self._missing(loop, events)

    # (b) ---------------------------------------------------------------------------

    def _misplaced(self, loop: Loop, events: list[Event]) -> None:
        steppers = {e.target for e in events if e.kind == OPTIMIZER_STEP}
        last_backward: Event | None = None
        zeros: list[Event] = []
        for event in events:
            if event.kind == BACKWARD:
                last_backward, zeros = event, []
            elif event.kind == ZERO_GRAD and last_backward is not None:
                zeros.append(event)
            elif event.kind == OPTIMIZER_STEP and last_backward is not None and zeros:
                for zero in zeros:
                    if self._clears(zero, event, steppers):
                        self._report_misplaced(loop, last_backward, zero, event)

    def _clears(self, zero: Event, step: Event, steppers: set[str | None]) -> bool:
        """`zero` clears the gradients that `step` is about to use."""
        call = zero.node
        if not (
            isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value == "zero_grad"
        ):
            return False
        if zero.target is None or step.target is None:
            return False
        if zero.target == step.target:
            return True
        if self.roles.of(call.func.value) != MODEL:
            return False
        ctor = constructor_of(self.context.module, self.context.imports, step.target, OPTIMIZER)
        if ctor is not None:
            params = first_argument(ctor, "params")
            return params is not None and mentions(params, zero.target)
        return len(steppers) == 1

    def _report_misplaced(self, loop: Loop, backward: Event, zero: Event, step: Event) -> None:
        if id(zero.node) in self._seen:
            return
        sites = [self._sites.site(loop, e.node) for e in (backward, zero, step)]
        if any(s is None for s in sites):
            return
        b, z, o = sites
        if not (b.guards == z.guards == o.guards):
            return  # not one straight line (`with` blocks do not count)
        self._seen.add(id(zero.node))
        zero_code = self.context.code(zero.node)
        step_code = self.context.code(step.node)
        fix = None
        if (
            b.suite is z.suite is o.suite
            and isinstance(z.suite, cst.IndentedBlock)
            and single_call_statement(z.statement, zero.node)
            and isinstance(o.statement, cst.SimpleStatementLine)
            and isinstance(b.statement, cst.SimpleStatementLine)
        ):
            fix = self.make_fix(
                f"Move `{zero_code}` to just after `{step_code}`",
                *move_after(z.statement, o.statement, z.suite),
            )
        self.report(
            zero.node,
            self.message.format(zero=_short(zero_code), step=_short(step_code)),
            fix=fix,
            help=f"call `{_short(zero_code)}` after `{_short(step_code)}` "
            "(or before the forward pass)",
        )

    # (a) ---------------------------------------------------------------------------

    def _missing(self, loop: Loop, events: list[Event]) -> None:
        steps: dict[str | None, Event] = {}
        for event in events:
            if event.kind != OPTIMIZER_STEP:
                continue
            call = event.node
            if not event.scaled and isinstance(call, cst.Call) and call.args:
                continue  # `opt.step(closure)`: the closure zeroes
            steps.setdefault(event.target, event)
        built = _assigned_names(loop)
        steps = {t: e for t, e in steps.items() if t not in built}
        if not steps:
            return
        scope = self._scope()
        scan = _ZeroScan(zeroing_helpers(self.context.module))
        walk(scope, scan)
        if scan.generic:
            return
        zeroed = set(scan.targets)
        if any(target not in steps for target in zeroed):
            # A model, an unknown receiver, or an optimizer not stepped here (it may alias
            # the one that is) is zeroed: assume it covers every optimizer of the loop.
            return
        for target, step in steps.items():
            if target is None or target in zeroed or id(step.node) in self._seen:
                continue
            self._seen.add(id(step.node))
            step_code = _short(self.context.code(step.node))
            zero = f"{target}.zero_grad()"
            self.report(
                step.node,
                self.message_missing.format(step=step_code),
                help=f"call `{zero}` once per iteration, before the forward pass "
                f"or right after `{step_code}`",
            )

    def _scope(self) -> cst.CSTNode:
        functions = self.context.enclosing_all(cst.FunctionDef)
        return functions[-1] if functions else self.context.module


def _assigned_names(loop: Loop) -> set[str]:
    """Names bound by `=` anywhere in the loop body."""
    names: set[str] = set()

    class _Binds(Visitor):
        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            name = dotted_name(node.target)
            if name is not None:
                names.add(name)

    walk(loop.body, _Binds())
    return names


def _short(code: str) -> str:
    code = " ".join(code.split())
    return code if len(code) <= 40 else code.split("(", 1)[0] + "(...)"
