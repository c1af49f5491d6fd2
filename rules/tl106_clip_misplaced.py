"""
## What it does
Flags gradient clipping (`torch.nn.utils.clip_grad_norm_`, `clip_grad_value_`, the
deprecated `clip_grad_norm`, or a `.clip_grad_norm_()` method such as Accelerate's) that
runs outside the window between `backward()` and the optimizer `step()` of the same
iteration: before the `backward()`, or after the `step()`.

## Why is this bad?
Clipping rewrites the `.grad` tensors in place, so it only affects the update when it runs
after `backward()` has produced this step's gradients and before `optimizer.step()` reads
them. Clipping before `backward()` clips the previous (or already zeroed) gradients, and
clipping after `step()` changes gradients that have already been used. Either way the
model trains unclipped, and the exploding gradients the clip was added for come back.

## Example
```python
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    loss.backward()
    optimizer.step()
```

## Use instead
```python
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
```
With a `GradScaler`, call `scaler.unscale_(optimizer)` before the clip (TL105 checks that).

## Fix safety
There is no fix: where the clip belongs is clear, but moving a call that may also return
a norm for logging changes what is logged, so the rule reports only.

## Known false positives
Only straight-line order in one loop body is judged: the clip, and the `backward()` and
`step()` it is compared with, must sit in the same block, or the clip in a block nested in
theirs (`if args.clip: ...`), or the `backward()` and `step()` in a batch loop nested in
the clip's block (a clip at the top or the end of an epoch, outside the batch loop). A
clip before the `backward()` is flagged only when no `backward()` or `step()` precedes it
in the iteration, and a clip after the `step()` only when none follows it, so rotated
loops (`step()` at the top of the next iteration) and multi-optimizer steps are left
alone. A clip with `max_norm=inf` (or a literal of a million or more) only measures the
norm for logging and is never flagged. Clipping and steps inside helper functions are not
seen, and files that import another framework but not torch are skipped. The deprecated
`clip_grad_norm` name counts as a clip, but the name itself is not reported: renaming it
belongs to TorchFix's deprecated-symbol checks, and a rename fix would clash with this
rule's report-only contract.
"""

from __future__ import annotations

import ast

import libcst as cst

from trainlint.imports import dotted_name
from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._loops import (
    LoopEventRule,
    BACKWARD,
    CLIP,
    CLIP_FUNCTIONS,
    OPTIMIZER_STEP,
    Event,
    Loop,
    LoopSites,
    Site,
    extends_by_loops,
)


_INFINITE = {"inf", "math.inf", "torch.inf", "np.inf", "numpy.inf"}


class ClipMisplaced(LoopEventRule, Rule):
    __doc__ = __doc__
    code = "TL106"
    name = "clip-misplaced"
    message = "`{clip}` runs {where}: {why}"
    fix_applicability = None
    tokens = ("*clip_grad*", "*backward*", "step")

    VALID = [
        Valid(
            """
            import torch
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            """
        ),
        # AMP: unscale, clip, step.
        Valid(
            """
            from torch.nn.utils import clip_grad_value_
            for x, y in loader:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                clip_grad_value_(model.parameters(), 0.5)
                scaler.step(optimizer)
                scaler.update()
            """
        ),
        # Accumulation: the clip sits with the step under the same condition.
        Valid(
            """
            import torch
            for i, (x, y) in enumerate(loader):
                loss.backward()
                if (i + 1) % k == 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad()
            """
        ),
        # Norm measured after the step for logging only.
        Valid(
            """
            import math, torch
            for x, y in loader:
                loss.backward()
                optimizer.step()
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf)
                optimizer.zero_grad()
            """
        ),
        Valid(
            """
            from torch.nn.utils import clip_grad_norm_
            for x, y in loader:
                loss.backward()
                optimizer.step()
                norm = clip_grad_norm_(model.parameters(), max_norm=float("inf"))
            """
        ),
        # Rotated loop: the step of the previous iteration's gradients comes first.
        Valid(
            """
            import torch
            for x, y in loader:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
                criterion(model(x), y).backward()
            """
        ),
        # Two optimizers: the clip lies between G's backward and G's step.
        Valid(
            """
            import torch
            for real in loader:
                loss_d.backward()
                opt_d.step()
                loss_g.backward()
                torch.nn.utils.clip_grad_norm_(netG.parameters(), 1.0)
                opt_g.step()
            """
        ),
        # The backward is conditional: not straight-line.
        Valid(
            """
            import torch
            for x, y in loader:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                if loss is not None:
                    loss.backward()
                optimizer.step()
            """
        ),
        # Another framework's conventions (PaddlePaddle).
        Valid(
            """
            import paddle
            for x, y in loader:
                paddle.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                loss.backward()
                optimizer.step()
            """
        ),
        # No backward in the loop.
        Valid(
            """
            import torch
            for _ in range(n):
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
            """
        ),
    ]
    INVALID = [
        # Before backward.
        Invalid(
            """
            import torch
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                loss.backward()
                optimizer.step()
            """,
            line=5,
        ),
        # After the step, alias import, conditional clip.
        Invalid(
            """
            import torch as T
            from torch.nn.utils import clip_grad_norm_ as clip

            def train(model, loader, opt, args):
                for x, y in loader:
                    opt.zero_grad()
                    T.nn.functional.cross_entropy(model(x), y).backward()
                    opt.step()
                    if args.clip > 0:
                        clip(model.parameters(), args.clip)
            """,
            line=10,
        ),
        # clip_grad_value_ before the scaled backward.
        Invalid(
            """
            from torch.nn import utils
            for x, y in loader:
                utils.clip_grad_value_(model.parameters(), 0.1)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            """,
            line=3,
        ),
        # The deprecated alias, after the step.
        Invalid(
            """
            from torch.nn.utils import clip_grad_norm
            while True:
                loss.backward()
                optimizer.step()
                clip_grad_norm(model.parameters(), 5)
            """,
            line=5,
        ),
        # At the end of the epoch, after the batch loop.
        Invalid(
            """
            import torch.nn as nn
            for epoch in range(epochs):
                for x, y in loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            """,
            line=8,
        ),
        # A method (Accelerate) before backward.
        Invalid(
            """
            for batch in train_dataloader:
                with accelerator.accumulate(model):
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                    accelerator.backward(model(**batch).loss)
                    optimizer.step()
            """,
            line=3,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._sites = LoopSites()
        self._seen: set[int] = set()

    @classmethod
    def screen(cls, index) -> bool:
        called = index.called
        if "backward" not in called or "step" not in called:
            return False
        if not index.loops():
            return False
        if CLIP_FUNCTIONS & called:
            return True
        return any(
            alias.asname in called
            for node in index.nodes(ast.ImportFrom)
            for alias in node.names
            if alias.name in CLIP_FUNCTIONS and alias.asname
        )

    def check_loop(self, loop: Loop, events: list[Event]) -> None:
        if not any(e.kind == CLIP for e in events):
            return
        for i, clip in enumerate(events):
            if clip.kind != CLIP or id(clip.node) in self._seen or _measures_only(clip.node):
                continue
            site = self._sites.site(loop, clip.node)
            if site is None:
                continue
            before, after = events[:i], events[i + 1 :]
            steps = (BACKWARD, OPTIMIZER_STEP)
            if not any(e.kind in steps for e in before):
                pair = self._pair(loop, site, after)
                if pair is not None:
                    self._report(clip, "before `backward()`", pair)
            elif not any(e.kind in steps for e in after):
                pair = self._pair(loop, site, before)
                if pair is not None:
                    self._report(clip, "after the optimizer step", pair)

    def _pair(self, loop: Loop, clip: Site, events: list[Event]) -> tuple[Event, Event] | None:
        """A backward followed by a step in `events`, both on the clip's straight line."""
        backward = None
        for event in events:
            if event.kind not in (BACKWARD, OPTIMIZER_STEP):
                continue
            site = self._sites.site(loop, event.node)
            if site is None or not any(
                extends_by_loops(site, clip.guards[:n]) for n in range(len(clip.guards) + 1)
            ):
                continue
            if event.kind == BACKWARD and backward is None:
                backward = event
            elif event.kind == OPTIMIZER_STEP and backward is not None:
                return backward, event
        return None

    def _report(self, clip: Event, where: str, pair: tuple[Event, Event]) -> None:
        self._seen.add(id(clip.node))
        call = clip.node
        func = call.func
        name = func.attr.value if isinstance(func, cst.Attribute) else self.context.code(func)
        backward, step = (" ".join(self.context.code(e.node).split()) for e in pair)
        if where.startswith("before"):
            why = "it clips stale gradients and the gradients this step uses stay unclipped"
        else:
            why = "the step has already used the unclipped gradients"
        self.report(
            call,
            self.message.format(clip=f"{name}()", where=where, why=why),
            help=f"call `{name}(...)` after `{_short(backward)}` and before `{_short(step)}`"
            + (" (after `scaler.unscale_(...)`)" if pair[1].scaled else ""),
        )


def _short(code: str) -> str:
    return code if len(code) <= 40 else code.split("(", 1)[0] + "(...)"


def _measures_only(call: cst.Call) -> bool:
    """`clip_grad_norm_(ps, inf)`: computes the norm without clipping."""
    value = None
    for i, arg in enumerate(call.args):
        if arg.keyword is not None:
            if arg.keyword.value == "max_norm":
                value = arg.value
        elif i == 1:
            value = arg.value
    if value is None:
        return False
    if dotted_name(value) in _INFINITE:
        return True
    if isinstance(value, (cst.Integer, cst.Float)):
        try:
            return float(value.value.replace("_", "")) >= 1e6
        except ValueError:
            return False
    if isinstance(value, cst.Call) and dotted_name(value.func) == "float" and value.args:
        inner = value.args[0].value
        return isinstance(inner, cst.SimpleString) and str(inner.evaluated_value).lower() in (
            "inf",
            "+inf",
        )
    return False
