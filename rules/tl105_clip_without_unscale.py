"""
## What it does
Flags `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_` called after
`scaler.scale(loss).backward()` (a `torch.amp.GradScaler`) with no `scaler.unscale_(optimizer)`
before the clip in the same iteration.

## Why is this bad?
After `scaler.scale(loss).backward()` every gradient is multiplied by the loss scale
(65536 at the start, then whatever the scaler has grown or shrunk it to). Clipping those
gradients compares the *scaled* norm (or values) with your threshold, so the threshold
means nothing: with `max_norm=1.0` the true gradients are clipped to about `1/65536`, the
clip fires on every step, and training silently crawls. `scaler.step(optimizer)` unscales
only afterwards. The AMP recipe ("Working with Unscaled Gradients") is to call
`scaler.unscale_(optimizer)` first; `scaler.step` then knows the gradients are already
unscaled and does not divide them again.

## Example
```python
scaler.scale(loss).backward()
torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD)
scaler.step(optimizer)
scaler.update()
```

## Use instead
```python
scaler.scale(loss).backward()
scaler.unscale_(optimizer)
torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD)
scaler.step(optimizer)
scaler.update()
```

## Fix safety
Safe: it inserts `scaler.unscale_(optimizer)` as its own statement just before the clip
statement, with the same indentation, and only when all of this is visible in one loop body
or function body: the scaled backward always runs before the clip; the clip's statement is a
line of its own in an indented block; `scaler.step(optimizer)` through the same scaler
follows and always runs after the clip (no `continue`, `break`, `return` or `raise`
between them), which names the optimizer; and no `unscale_` call appears anywhere in that
body (a second `unscale_` before `update()` raises `RuntimeError`). Gradient accumulation
that clips on every micro-batch but steps only every N batches therefore gets a report
without a fix. Otherwise the fix is the documented recipe: `step` skips its own unscaling,
and the inf/NaN check still happens.

## Known false positives
- The rule looks at one function (or loop body) at a time. A clip in a helper called between
  backward and step, an `unscale_` done in a helper, or a scaler passed in as a parameter
  with an unusual name are not seen. Any call whose name contains `unscale` before the clip
  (`self._unscale_grads()`, `accelerator.unscale_gradients()`) silences the rule.
- Any `unscale_` before the clip in the same body silences the rule, even under another
  `if` or for another optimizer (a GAN that unscales the discriminator's gradients but not
  the generator's is missed).
- A clip whose `if` branch differs from the one holding `scaler.step(...)`, or that is followed
  by a plain `optimizer.step()`, is taken to be on the non-AMP path and is not reported (code
  that clips and then bypasses the scaler has a bigger problem, A2). A clip after
  `scaler.step(...)` in the same iteration sees unscaled gradients and is left to TL106.
- Only torch's own clip functions count: `accelerator.clip_grad_norm_` (Accelerate unscales
  for you), Lightning's `clip_gradients`, DeepSpeed and FSDP's `model.clip_grad_norm_`
  method are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from trainlint.rules._loops import (
    BACKWARD,
    CLIP,
    CLIP_FUNCTIONS,
    OPTIMIZER_STEP,
    Event,
    Roles,
    block_events,
)

from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor
from trainlint.traverse import walk

_SUITES = (cst.IndentedBlock, cst.SimpleStatementSuite, cst.Module)
_EXITS = (cst.Continue, cst.Break, cst.Return, cst.Raise)
_LOOPS = (cst.For, cst.While)


class ClipWithoutUnscale(Rule):
    __doc__ = __doc__
    code = "TL105"
    name = "clip-without-unscale"
    message = (
        "`{clip}` clips gradients still multiplied by `{scaler}`'s loss scale (no "
        "`{scaler}.unscale_(...)` since `{scaler}.scale(...).backward()`), so its threshold "
        "is meaningless"
    )
    fix_applicability = Applicability.SAFE
    tokens = ("*clip_grad*", "scale")

    @classmethod
    def screen(cls, index) -> bool:
        import ast

        called = index.called
        if "backward" not in called or "scale" not in called:
            return False
        if CLIP_FUNCTIONS & (called | index.attributes):
            return True
        # `from torch.nn.utils import clip_grad_norm_ as clip`
        return any(
            alias.name in CLIP_FUNCTIONS
            for node in index.nodes(ast.ImportFrom)
            for alias in node.names
        )

    VALID = [
        # the AMP recipe
        Valid(
            """
            import torch
            scaler = torch.amp.GradScaler("cuda")
            for x, y in loader:
                optimizer.zero_grad()
                with torch.autocast("cuda"):
                    loss = criterion(model(x), y)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
            """
        ),
        # unscale_ under the same condition as the clip (yolov5, timm's NativeScaler)
        Valid(
            """
            import torch
            for i, (x, y) in enumerate(train_loader):
                scaler.scale(loss).backward()
                if i % accumulate == 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
                    scaler.step(optimizer)
                    scaler.update()
            """
        ),
        # unscale_ under its own `if`, before a clip under another one: silent (conservative)
        Valid(
            """
            from torch.nn.utils import clip_grad_norm_
            def step(self, loss):
                self.scaler.scale(loss).backward()
                if self.clip:
                    self.scaler.unscale_(self.optimizer)
                if self.clip:
                    clip_grad_norm_(self.params, self.clip)
                self.scaler.step(self.optimizer)
            """
        ),
        # no GradScaler: plain backward
        Valid(
            """
            import torch
            for x, y in loader:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            """
        ),
        # the scaled backward is in the other branch of the `if`
        Valid(
            """
            import torch
            for x, y in loader:
                if use_amp:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    scaler.step(optimizer)
                else:
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
            """
        ),
        # Accelerate unscales inside its own clip_grad_norm_
        Valid(
            """
            for batch in dataloader:
                accelerator.backward(loss)
                scaler.scale(aux).backward()
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            """
        ),
        # `.scale(...)` of something that is not a GradScaler
        Valid(
            """
            import torch
            for x, y in loader:
                transform.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            """
        ),
        # the clip runs before the backward of this iteration
        Valid(
            """
            import torch
            for x, y in loader:
                torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
            """
        ),
        # correlated branches: the clip is on the plain path (the scaler steps in the other branch)
        Valid(
            """
            import torch
            for x, y in loader:
                if use_amp:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                if use_amp:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
            """
        ),
        # the clip is followed by a plain optimizer.step(): not a scaler-driven path
        Valid(
            """
            import torch
            for x, y in loader:
                if use_amp:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                if not use_amp:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
            """
        ),
        # clip after scaler.step: the step unscaled the gradients (misplaced clip is TL106)
        Valid(
            """
            import torch
            for x, y in loader:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.update()
            """
        ),
        # unscaling done by a helper the rule cannot see into, named so
        Valid(
            """
            import torch
            def train_step(self, loss):
                self.grad_scaler.scale(loss).backward()
                self._unscale_grads()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.grad_scaler.step(self.optimizer)
            """
        ),
        # the backward and the clip are in different functions
        Valid(
            """
            import torch
            def backward(self, loss):
                self.scaler.scale(loss).backward()

            def step(self):
                torch.nn.utils.clip_grad_norm_(self.params, 1.0)
                self.scaler.step(self.optimizer)
            """
        ),
    ]
    INVALID = [
        # the seed page's settings (use_amp = True, CLIP_GRAD = 5.0) in its training loop
        Invalid(
            """
            import torch
            from torch.cuda.amp import GradScaler

            CLIP_GRAD = 5.0
            use_amp = True
            scaler = GradScaler()

            def train(model, device, train_loader, optimizer, epoch):
                model.train()
                for batch_idx, (data, target) in enumerate(train_loader):
                    data, target = data.to(device), target.to(device)
                    output = model(data)
                    optimizer.zero_grad()
                    if use_amp:
                        with torch.cuda.amp.autocast():
                            loss = torch.nan_to_num(criterion_train(output, target))
                        scaler.scale(loss).backward()
                        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD)
                        # Unscales gradients and calls or skips optimizer.step()
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss = criterion_train(output, target)
                        loss.backward()
                        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD)
                        optimizer.step()
            """,
            fixed="""
            import torch
            from torch.cuda.amp import GradScaler

            CLIP_GRAD = 5.0
            use_amp = True
            scaler = GradScaler()

            def train(model, device, train_loader, optimizer, epoch):
                model.train()
                for batch_idx, (data, target) in enumerate(train_loader):
                    data, target = data.to(device), target.to(device)
                    output = model(data)
                    optimizer.zero_grad()
                    if use_amp:
                        with torch.cuda.amp.autocast():
                            loss = torch.nan_to_num(criterion_train(output, target))
                        scaler.scale(loss).backward()
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD)
                        # Unscales gradients and calls or skips optimizer.step()
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        loss = criterion_train(output, target)
                        loss.backward()
                        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD)
                        optimizer.step()
            """,
            line=18,
            count=1,
        ),
        # aliased imports; clip under an `if`, step after it; comment and blank line kept on top
        Invalid(
            """
            import torch as T
            from torch.nn.utils import clip_grad_norm_ as clip

            amp_scaler = T.amp.GradScaler("cuda")
            for epoch in range(epochs):
                for x, y in loader:
                    with T.autocast("cuda"):
                        loss = crit(net(x), y)
                    amp_scaler.scale(loss).backward()

                    # keep the updates small
                    if max_norm > 0:
                        norm = clip(net.parameters(), max_norm)
                    amp_scaler.step(opt)
                    amp_scaler.update()
                    opt.zero_grad()
            """,
            fixed="""
            import torch as T
            from torch.nn.utils import clip_grad_norm_ as clip

            amp_scaler = T.amp.GradScaler("cuda")
            for epoch in range(epochs):
                for x, y in loader:
                    with T.autocast("cuda"):
                        loss = crit(net(x), y)
                    amp_scaler.scale(loss).backward()

                    # keep the updates small
                    if max_norm > 0:
                        amp_scaler.unscale_(opt)
                        norm = clip(net.parameters(), max_norm)
                    amp_scaler.step(opt)
                    amp_scaler.update()
                    opt.zero_grad()
            """,
            line=13,
        ),
        # a train-step method on self, clip_grad_value_ via `from torch import nn`
        Invalid(
            """
            from torch import nn

            class Trainer:
                def train_step(self, batch):
                    loss = self.model(batch)
                    self.scaler.scale(loss).backward()

                    # clip
                    nn.utils.clip_grad_value_(self.model.parameters(), 0.5)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
            """,
            fixed="""
            from torch import nn

            class Trainer:
                def train_step(self, batch):
                    loss = self.model(batch)
                    self.scaler.scale(loss).backward()

                    # clip
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_value_(self.model.parameters(), 0.5)
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
            """,
            line=9,
        ),
        # gradient accumulation: clip on every micro-batch, step every N -> report, no fix
        Invalid(
            """
            import torch
            for i, (x, y) in enumerate(loader):
                scaler.scale(loss / accum).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                if (i + 1) % accum == 0:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
            """,
            line=4,
        ),
        # scaled backward only on the AMP path, clip on both: report, no fix
        Invalid(
            """
            import torch
            for x, y in loader:
                if use_amp:
                    scaler.scale(loss).backward()
                else:
                    loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                if use_amp:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
            """,
            line=7,
        ),
        # micro-batches in an inner loop, clip after it; `continue` between clip and step: no fix
        Invalid(
            """
            import torch
            for batch in loader:
                for chunk in batch.split(4):
                    scaler.scale(model(chunk)).backward()
                total = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                if not torch.isfinite(total):
                    continue
                scaler.step(optimizer)
                scaler.update()
            """,
            line=5,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._roles: Roles | None = None
        self._units: dict[int, cst.CSTNode] = {}

    # ------------------------------------------------------------------ units
    # A unit is a body that runs as one piece per call or per iteration: the module, a
    # function body, a loop body. A clip is judged in the innermost unit containing it; the
    # engine's single traversal finds the clips, and only their units are analysed.

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
        if last not in CLIP_FUNCTIONS:
            qualname = self.context.qualname(func)
            if not qualname or qualname.rsplit(".", 1)[-1] not in CLIP_FUNCTIONS:
                return
        unit: cst.CSTNode = self.context.module
        for ancestor in reversed(self.context.stack):
            if isinstance(ancestor, (cst.For, cst.While, cst.FunctionDef)):
                unit = ancestor.body
                break
            if isinstance(ancestor, (cst.ClassDef, cst.Lambda)):
                return
        self._units.setdefault(id(unit), unit)

    def leave_Module(self, original_node: cst.Module) -> None:
        for unit in self._units.values():
            self._unit(unit)

    def _unit(self, block: cst.CSTNode) -> None:
        if self._roles is None:
            self._roles = Roles(self.context.module, self.context.imports)
        events = block_events(block, self._roles, self.context.imports)
        clips = [
            e
            for e in events
            if e.kind == CLIP
            and not any(isinstance(n, _LOOPS) for n in e.path)
            and self._is_torch_clip(e.node)
        ]
        if not clips:
            return
        backwards = [e for e in events if e.kind == BACKWARD and e.scaled]
        if not backwards:
            return
        all_steps = [e for e in events if e.kind == OPTIMIZER_STEP]
        layout = _Layout(block, {id(e.node) for e in events})
        for clip in clips:
            self._judge(clip, backwards, all_steps, layout)

    def _is_torch_clip(self, call: cst.Call) -> bool:
        qualname = self.context.qualname(call.func)
        if qualname is not None:
            return qualname.startswith("torch.")
        dotted = dotted_name(call.func) or ""
        return dotted.startswith(("torch.nn.utils.", "nn.utils."))

    # ---------------------------------------------------------------- judging

    def _judge(
        self, clip: Event, backwards: list[Event], all_steps: list[Event], layout: _Layout
    ) -> None:
        at = layout.order[id(clip.node)]
        steps = [s for s in all_steps if s.scaled]
        # The clip is on the non-AMP path when the scaler's step is in another branch of the
        # clip's `if`, or when the next step after the clip is a plain `optimizer.step()`
        # (that would be A2, the scaler bypassed, not this rule's business).
        if any(layout.exclusive(s.node, clip.node) for s in steps):
            return
        following = [
            s
            for s in all_steps
            if layout.order[id(s.node)] > at and not layout.exclusive(s.node, clip.node)
        ]
        if following and not following[0].scaled:
            return
        before = [
            b
            for b in backwards
            if layout.order[id(b.node)] < at and not layout.exclusive(b.node, clip.node)
        ]
        if not before:
            return
        if any(order < at for order in layout.unscales):
            return
        backward = before[-1]
        # `scaler.step(opt)` between the backward and the clip has unscaled the gradients
        # already (a clip after the step is TL106's business)
        since = layout.order[id(backward.node)]
        if any(since < layout.order[id(s.node)] < at for s in steps):
            return
        scaler = self.context.code(_scaler_of(backward.node))
        after = [
            s
            for s in steps
            if layout.order[id(s.node)] > at
            and self.context.code(s.node.func.value) == scaler
            and not layout.exclusive(s.node, clip.node)
        ]
        step = after[0] if after else None
        optimizer = _optimizer_of(step.node) if step is not None else None
        optimizer_text = self.context.code(optimizer) if optimizer is not None else None
        clip_name = (self.context.qualname(clip.node.func) or dotted_name(clip.node.func) or "")
        clip_name = clip_name.rsplit(".", 1)[-1] or "clip_grad_norm_"

        fix = None
        if (
            step is not None
            and optimizer is not None
            and dotted_name(optimizer) is not None
            and not layout.unscales
            and any(layout.dominates(b.node, clip.node) for b in before if _same_scaler(self, b, scaler))
            and layout.runs_after(step.node, clip.node)
        ):
            fix = self._insert_unscale(clip, layout, f"{scaler}.unscale_({optimizer_text})")
        target = optimizer_text or "optimizer"
        self.report(
            clip.node,
            self.message.format(clip=clip_name, scaler=scaler),
            fix=fix,
            help=f"call `{scaler}.unscale_({target})` just before `{clip_name}(...)`",
            data={"scaler": scaler, "optimizer": optimizer_text},
        )

    def _insert_unscale(self, clip: Event, layout: _Layout, text: str):
        found = layout.leaf(clip.node)
        if found is None:
            return None
        suite, line = found
        if not isinstance(suite, (cst.IndentedBlock, cst.Module)):
            return None
        if not isinstance(line, cst.SimpleStatementLine) or not _contains(line.body[0], clip.node):
            return None
        # another event on the same line (`...backward(); clip(...)`) would move with it
        if layout.shares_leaf(clip.node):
            return None
        new = cst.SimpleStatementLine(
            body=[cst.Expr(cst.parse_expression(text))], leading_lines=line.leading_lines
        )
        replacement = cst.FlattenSentinel([new, line.with_changes(leading_lines=())])
        return self.make_fix(f"Insert `{text}` before the clip", (line, replacement))


def _same_scaler(rule: Rule, backward: Event, scaler: str) -> bool:
    return rule.context.code(_scaler_of(backward.node)) == scaler


def _scaler_of(backward_call: cst.Call) -> cst.BaseExpression:
    """`scaler` in `scaler.scale(loss).backward()`."""
    return backward_call.func.value.func.value


def _optimizer_of(step_call: cst.Call) -> cst.BaseExpression | None:
    """`opt` in `scaler.step(opt)`, when it is the plain first positional argument."""
    args = step_call.args
    if not args or args[0].keyword is not None or args[0].star:
        return None
    return args[0].value


def _contains(root: cst.CSTNode, target: cst.CSTNode) -> bool:
    found = []

    class _Find(Visitor):
        def on_visit(self, node: cst.CSTNode) -> bool:
            if node is target:
                found.append(node)
            return not found

    walk(root, _Find())
    return bool(found)


# ------------------------------------------------------------------ block layout
# Proposed for rules/_loops.py: where each event sits in the nesting of statement blocks, so
# that rules can tell "always runs before", "always runs after" and "mutually exclusive
# branches" apart (Event.path names the compound statements but not which branch).


@dataclass(frozen=True)
class _Level:
    suite: cst.CSTNode  # IndentedBlock / SimpleStatementSuite / Module
    index: int  # which statement of the suite holds the node
    kind: tuple[type, ...]  # node types from the owning statement down to the suite


class _Layout(Visitor):
    """For wanted nodes of one unit: pre-order position and the chain of blocks down to them."""

    def __init__(self, root: cst.CSTNode, wanted: set[int]) -> None:
        self.wanted = wanted
        self.order: dict[int, int] = {}
        self.chains: dict[int, tuple[_Level, ...]] = {}
        self.unscales: list[int] = []  # positions of calls whose name contains "unscale"
        self._nodes: list[cst.CSTNode] = []
        self._levels: list[list] = []  # [suite, index, kind]
        self._count = 0
        self._root = root
        walk(root, self)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if node is not self._root and isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        parent = self._nodes[-1] if self._nodes else None
        if (
            isinstance(node, (cst.BaseStatement, cst.BaseSmallStatement))
            and self._levels
            and self._levels[-1][0] is parent
        ):
            self._levels[-1][1] += 1
        if isinstance(node, _SUITES):
            self._levels.append([node, -1, self._kind()])
        self._count += 1
        if id(node) in self.wanted:
            self.order[id(node)] = self._count
            self.chains[id(node)] = tuple(_Level(s, i, k) for s, i, k in self._levels)
        if isinstance(node, cst.Call) and "unscale" in _callee_name(node):
            self.unscales.append(self._count)
        self._nodes.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self._nodes.pop()
        if isinstance(original_node, _SUITES):
            self._levels.pop()

    def _kind(self) -> tuple[type, ...]:
        """Types from the statement that owns the suite being entered down to the suite."""
        kind: list[type] = []
        for node in reversed(self._nodes):
            if isinstance(node, _SUITES):
                break
            kind.append(type(node))
        # the outermost entry is the statement that sits in the enclosing suite
        return tuple(reversed(kind))

    # ----------------------------------------------------------------- queries

    def _split(self, a: cst.CSTNode, b: cst.CSTNode):
        """First level where the chains of a and b part: (k, level_a, level_b)."""
        ca, cb = self.chains[id(a)], self.chains[id(b)]
        for k, (la, lb) in enumerate(zip(ca, cb)):
            if la.suite is not lb.suite or la.index != lb.index:
                return k, ca, cb
        return None, ca, cb

    def exclusive(self, a: cst.CSTNode, b: cst.CSTNode) -> bool:
        """a and b are in different branches of one if/elif/else, match or except chain."""
        k, ca, cb = self._split(a, b)
        if k is None:
            return False
        la, lb = ca[k], cb[k]
        if la.suite is lb.suite:
            return False  # different statements of one block: sequential
        ka, kb = set(la.kind), set(lb.kind)
        if ka <= {cst.If, cst.Else} and kb <= {cst.If, cst.Else}:
            return True
        if cst.MatchCase in ka and cst.MatchCase in kb:
            return True
        branch = {cst.ExceptHandler, cst.ExceptStarHandler, cst.Else}
        return cst.Try in ka | kb and bool(ka & branch) and bool(kb & branch)

    def dominates(self, first: cst.CSTNode, then: cst.CSTNode) -> bool:
        """Whenever `then` runs, `first` has run before it (structurally)."""
        k, cf, ct = self._split(first, then)
        if k is None:
            return self.order[id(first)] < self.order[id(then)]
        lf, lt = cf[k], ct[k]
        if lf.suite is not lt.suite or lf.index >= lt.index:
            return False
        return all(level.kind == (cst.With,) for level in cf[k + 1 :])

    def runs_after(self, later: cst.CSTNode, first: cst.CSTNode) -> bool:
        """Whenever `first` runs, `later` runs after it, with no exit statement between."""
        k, cl, cf = self._split(later, first)
        if k is None:
            return self.order[id(later)] > self.order[id(first)]
        ll, lf = cl[k], cf[k]
        if ll.suite is not lf.suite or ll.index <= lf.index:
            return False
        if not all(level.kind == (cst.With,) for level in cl[k + 1 :]):
            return False
        # statements after `first` at each of its levels, then those before `later`
        between: list[cst.CSTNode] = []
        for level in cf[k + 1 :]:
            between += _statements(level.suite)[level.index + 1 :]
        between += _statements(lf.suite)[lf.index + 1 : ll.index]
        for level in cl[k + 1 :]:
            between += _statements(level.suite)[: level.index]
        leaf = _statements(cf[-1].suite)[cf[-1].index]
        return not any(_exits(node) for node in [*between, leaf])

    def leaf(self, node: cst.CSTNode):
        chain = self.chains.get(id(node))
        if not chain:
            return None
        last = chain[-1]
        return last.suite, _statements(last.suite)[last.index]

    def shares_leaf(self, node: cst.CSTNode) -> bool:
        """Another wanted node (event) sits in the same statement line."""
        mine = self.chains[id(node)]
        return any(oid != id(node) and other == mine for oid, other in self.chains.items())


def _statements(suite: cst.CSTNode) -> list[cst.CSTNode]:
    return list(suite.body)


def _callee_name(call: cst.Call) -> str:
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return ""


def _exits(node: cst.CSTNode) -> bool:
    found = []

    class _Find(Visitor):
        def on_visit(self, n: cst.CSTNode) -> bool:
            if isinstance(n, _EXITS):
                found.append(n)
            return not found and not isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda))

    walk(node, _Find())
    return bool(found)
