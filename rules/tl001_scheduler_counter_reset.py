"""
## What it does
In a scheduler-like class (one with a `step`, `step_*` or `get_lr` method, or a subclass of
a torch LR scheduler), flags a step method that assigns an integer literal to a counter
attribute that `__init__` initialised to an integer, such as `self.iters = 1`.

## Why is this bad?
The counter is meant to advance on every call (`self.iters += 1`). Assigning a constant
pins it: every `step()` computes the learning rate for the same iteration, so the schedule
never moves (or, if the formula also feeds the LR back into itself, decays for the wrong
reason). Nothing crashes and the loss still goes down, which is why this survives review.

## Example
```python
class WarmRestarts:
    def __init__(self, optimizer):
        self.iters = -1

    def step(self):
        self.iters = 1
        return self.base_lr * cosine(self.iters)
```

## Use instead
```python
class WarmRestarts:
    def __init__(self, optimizer):
        self.iters = -1

    def step(self):
        self.iters += 1
        return self.base_lr * cosine(self.iters)
```

## Fix safety
Unsafe. `self.iters = 1` becomes `self.iters += 1`, which changes every learning rate the
scheduler produces after the first call. That is the point of the fix, but a checkpoint
that stored the old counter will resume at a different point.

## Known false positives
Only unconditional resets are flagged: an assignment directly in the step method's body,
not inside an `if`, loop, `with` or `try`. So cycle restarts (`if self.iters >= self.period:
self.iters = 0`) and plateau bookkeeping (`num_bad_epochs = 0` when the metric improved) are
never flagged, and neither are assignments in `__init__`, `reset`-style methods, from a
parameter, or a reset that the same method then advances (a per-call count). The price is
that a constant reset hidden inside a branch is missed. A step method that resets a
counter unconditionally on purpose is flagged; suppress it with `# trainlint: ignore[TL001]`.
"""

from __future__ import annotations

import ast

import libcst as cst

from trainlint import screen as sc
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import (
    advances,
    attribute_writes,
    body_statements,
    int_literal,
    is_scheduler_like,
    is_step_method,
    methods,
)


class SchedulerCounterReset(Rule):
    __doc__ = __doc__
    code = "TL001"
    name = "scheduler-counter-reset"
    message = "`self.{attr}` is reset to {value} on every `{method}()` call, so it never advances"
    fix_applicability = Applicability.UNSAFE
    tokens = (("*step*", "*get_lr*", "*lr_scheduler*", "*lrscheduler*"),)

    VALID = [
        Valid(
            """
            class Sched:
                def __init__(self):
                    self.iters = -1
                def step(self, external_iter=None):
                    self.iters += 1
                    if external_iter is not None:
                        self.iters = external_iter
            """
        ),
        Valid(
            """
            class Sched:
                def __init__(self, period):
                    self.iters = 0
                    self.period = period
                def step(self):
                    self.iters += 1
                    if self.iters >= self.period:
                        self.iters = 0
            """
        ),
        Valid(
            """
            class Sched:
                def __init__(self):
                    self.iters = 0
                def reset(self):
                    self.iters = 0
                def step(self):
                    self.iters += 1
            """
        ),
        # ReduceLROnPlateau-style bookkeeping: resets under conditions on other state
        Valid(
            """
            class Plateau:
                def __init__(self):
                    self.num_bad_epochs = 0
                def step(self, metric):
                    if metric < self.best:
                        self.best = metric
                        self.num_bad_epochs = 0
                    else:
                        self.num_bad_epochs += 1
            """
        ),
        # a per-call count: reset, then advanced in the same method
        Valid(
            """
            class Sched:
                def __init__(self):
                    self.seen = 0
                def step(self, groups):
                    self.seen = 0
                    for g in groups:
                        self.seen += 1
            """
        ),
        # not scheduler-like: no step/get_lr method
        Valid(
            """
            class Meter:
                def __init__(self):
                    self.count = 0
                def update(self):
                    self.count = 1
            """
        ),
        # the attribute is not an integer counter
        Valid(
            """
            class Sched:
                def __init__(self):
                    self.mode = "cos"
                def step(self):
                    self.mode = 1
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            class CosineAnnealingWarmbootingLR:
                def __init__(self, base_lr=0.00001):
                    self.iters = -1
                    self.iters_batch = -1
                def step(self, external_iter=None):
                    self.iters = 1  # current iteration
                    if external_iter is not None:
                        self.iters = external_iter
                    return self.base_lr
                def step_batch(self):
                    self.iters_batch = 1
                    return self.base_lr
            """,
            fixed="""
            class CosineAnnealingWarmbootingLR:
                def __init__(self, base_lr=0.00001):
                    self.iters = -1
                    self.iters_batch = -1
                def step(self, external_iter=None):
                    self.iters += 1  # current iteration
                    if external_iter is not None:
                        self.iters = external_iter
                    return self.base_lr
                def step_batch(self):
                    self.iters_batch += 1
                    return self.base_lr
            """,
            line=6,
            count=2,
        ),
        Invalid(
            """
            import torch as T
            class Warm(T.optim.lr_scheduler.LRScheduler):
                def __init__(self, optimizer):
                    self.n = 0
                    super().__init__(optimizer)
                def get_lr(self):
                    self.n = 0
                    return [0.1 * self.n for _ in self.base_lrs]
            """,
            fixed="""
            import torch as T
            class Warm(T.optim.lr_scheduler.LRScheduler):
                def __init__(self, optimizer):
                    self.n = 0
                    super().__init__(optimizer)
                def get_lr(self):
                    self.n += 1
                    return [0.1 * self.n for _ in self.base_lrs]
            """,
            line=7,
        ),
    ]

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """A class with an `__init__` that sets `self.X` to an int, and a step method whose
        body (top level) assigns an int to the same `self.X`."""
        for klass in index.nodes(ast.ClassDef):
            defs = sc.methods(klass)
            steps = [f for f in defs if is_step_method(f.name)]
            if not steps:
                continue
            counters = {
                attr
                for f in defs
                if f.name == "__init__"
                for attr in _int_attribute_writes(sc.walk(f))
            }
            if counters and any(
                counters.intersection(_int_attribute_writes(step.body)) for step in steps
            ):
                return True
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not is_scheduler_like(node, self.context.imports, self.context.module):
            return
        writes = attribute_writes(node)
        counters = {
            attr
            for attr, ws in writes.items()
            if any(w.method == "__init__" and int_literal(w.value) is not None for w in ws)
        }
        step_methods = {name: f for name, f in methods(node).items() if is_step_method(name)}
        for attr in sorted(counters):
            for write in writes[attr]:
                if write.method not in step_methods or write.augmented:
                    continue
                value = int_literal(write.value)
                statement = write.statement
                if value is None or not isinstance(statement, cst.Assign) or len(statement.targets) != 1:
                    continue
                method = step_methods[write.method]
                if not _top_level(method, statement) or _advanced_in(method, attr, writes):
                    continue
                self.report(
                    write.statement,
                    self.message.format(attr=attr, value=value, method=write.method),
                    fix=self.make_fix(
                        f"Advance the counter: `self.{attr} += 1`",
                        (
                            write.statement,
                            cst.AugAssign(
                                target=write.target,
                                operator=cst.AddAssign(),
                                value=cst.Integer("1"),
                            ),
                        ),
                    ),
                    help=f"write `self.{attr} += 1` so the schedule moves forward",
                    data={"attribute": attr, "method": write.method},
                )


def _int_attribute_writes(nodes) -> set[str]:
    """X of every `self.X = <int>` (also unpacked, annotated or augmented) among nodes."""
    out = set()
    for node in nodes:
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in sc.flatten_targets(target)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        else:
            continue
        if sc.int_literal(node.value) is None:
            continue
        for t in targets:
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                out.add(t.attr)
    return out


def _top_level(method: cst.FunctionDef, small: cst.BaseSmallStatement) -> bool:
    """Whether the statement runs unconditionally: directly in the method's body."""
    return any(
        isinstance(line, cst.SimpleStatementLine) and small in line.body
        for line in body_statements(method)
    )


def _advanced_in(method: cst.FunctionDef, attr: str, writes) -> bool:
    return any(w.method == method.name.value and advances(w) for w in writes[attr])
