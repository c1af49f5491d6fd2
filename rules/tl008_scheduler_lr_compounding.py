"""
## What it does
Flags a learning-rate schedule whose amplitude is fed back into itself, so that every step
multiplies the LR by the schedule's factor again:

- a step method (`step`, `step_*`, `get_lr`) of a scheduler-like class overwrites the
  attribute that holds the base, initial or maximum LR (`base_lr`, `base_lrs`,
  `initial_lr`, `max_lr`, `lr0`...) with a product of that same attribute and a factor
  that changes with the step counter (`self.base_lr = scale * self.base_lr * f(t)`);
- a closed-form schedule of the counter (a `(1 + cos(pi * t / T)) / 2` factor, a
  polynomial `(1 - t / T) ** p`, a warm-up ratio `t / W`) is scaled by the optimizer's
  *current* LR, `optimizer.param_groups[i]['lr']` or `group['lr']`, and the result is
  stored back into a param group's `'lr'` (in any function: a scheduler, a training loop,
  an `adjust_lr` helper) or returned by a scheduler's `get_lr()`.

## Why is this bad?
A closed-form schedule computes the LR at step `t` from a fixed amplitude:
`lr_t = base_lr * f(t)`. Once the result is stored back as the amplitude, step `t` computes
`base_lr * f(1) * f(2) * ... * f(t)`: the LR decays geometrically, far below the intended
curve after a few steps, and a cosine restart never returns to the peak. Training still
runs and the loss still falls, only much more slowly, so the bug goes unnoticed.

## Example
```python
class CosineAnnealingWarmbootingLR:
    def step(self):
        self.iters += 1
        self.base_lr = self.base_lr * (1 + math.cos(math.pi * self.iters / self.T)) / 2
        return self.base_lr

    def get_lr(self):
        return self.eta_min + (1 + math.cos(math.pi * self.T_cur / self.T_max)) / 2 * (
            self.optimizer.param_groups[0]["lr"] - self.eta_min
        )
```

## Use instead
```python
class CosineAnnealingWarmbootingLR:
    def step(self):
        self.iters += 1
        lr = self.base_lr * (1 + math.cos(math.pi * self.iters / self.T)) / 2
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def get_lr(self):
        return [
            self.eta_min + (1 + math.cos(math.pi * self.T_cur / self.T_max)) / 2 * (base_lr - self.eta_min)
            for base_lr in self.base_lrs
        ]
```

## Fix safety
There is no fix: the right amplitude (a stored `base_lrs`, `group['initial_lr']`, a
constructor argument) depends on the class, so the rule only reports.

## Known false positives
Chainable schedulers that deliberately update the current LR by a per-step ratio are not
flagged: a constant factor (`group['lr'] * self.gamma`), a user callback
(`group['lr'] * lmbda(epoch)`), and ratios of consecutive closed forms (torch's recursive
`CosineAnnealingLR` and `PolynomialLR`). A decay of the peak applied at a cycle restart
(inside an `if` that also resets the cycle counter), a current LR scaled after it was set
from a fixed value earlier in the same block (`g['lr'] = args.lr` then
`g['lr'] *= warmup`), and a scaled LR that is only logged or used locally are not flagged
either. What counts as "the counter" is syntactic: an attribute, parameter or local named
like one (`t`, `epoch`, `iters`, `T_cur`, `last_epoch`, `current_step`...), an attribute
that some method increments, and values computed from those. A schedule driven by a
differently named value, or hidden in a helper call (`self.lf(t)` scaled by the current
LR), is not reported, so some compounding schedules go unreported. A function that reads
the current LR and scales it once per run by an epoch-dependent factor on purpose would be
reported; suppress it with `# trainlint: ignore[TL008]`.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Iterator

import libcst as cst

from trainlint import screen as sc
from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import (
    attribute_writes,
    advances,
    is_scheduler_like,
    is_step_method,
    methods,
    parameter_names,
    self_attribute,
)

# ----------------------------------------------------------------- shared with TL009

# Names of attributes, parameters and locals that count steps, epochs or iterations.
COUNTER_NAME = re.compile(
    r"_*(?:t|t_?cur|cur|it|iter|iters|iteration|cur_?iter|curr_?iter|current_?iter"
    r"|iter_?(?:num|idx|count)|last_?iter|iters?_?batch|batch_?iters?"
    r"|epoch|last_?epoch|cur_?epoch|curr_?epoch|current_?epoch|epoch_?(?:num|idx|count)"
    r"|step|steps_?done|num_?steps_?done|step_?(?:count|num|idx)|cur_?step|curr_?step"
    r"|current_?step|last_?step|global_?step|batch_?step|num_?updates?|update_?count"
    r"|counter|count|cnt|timestep)",
    re.I,
)

# Attributes and param-group keys that hold the amplitude of a schedule.
_BASE_LR_CORE = (
    r"(?:base|init|initial|max|start|peak|orig|original|default|begin|top)_?(?:lr|learning_rate)s?"
    r"|lrs?_?(?:0|max|init|initial|base|start|peak|orig)|lr0s?"
)
BASE_LR_NAME = re.compile(rf"_*(?:{_BASE_LR_CORE})", re.I)

_INIT_LIKE = re.compile(r"__init__|__setstate__|load_state_dict|_?reset\w*|_?init\w*|setup|set_\w+")
_LR_METHOD = re.compile(r"_*(?:get|compute|calc|calculate|update|adjust|set|closed_form|get_closed_form)_?(?:lr|lrs|learning_rate)\w*", re.I)
_TRIG = {"cos", "sin"}


def is_steplike(name: str) -> bool:
    """Methods that run once per step: `step`, `step_*`, `get_lr`, and `_get_lr`-style getters."""
    return is_step_method(name) or (
        _LR_METHOD.fullmatch(name) is not None and not name.startswith("set")
    )


def is_init_like(name: str) -> bool:
    return _INIT_LIKE.fullmatch(name) is not None


def strip_key(node: cst.BaseExpression) -> str | None:
    """`'lr'` / `"lr"` -> lr."""
    if isinstance(node, cst.SimpleString):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def subscript_key(node: cst.Subscript) -> str | None:
    if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
        return None
    return strip_key(node.slice[0].slice.value)


_FIELDS: dict[type, tuple[str, ...]] = {}
_SKIPPED_FIELDS = {"lpar", "rpar", "comma", "semicolon", "leading_lines", "lines_after_decorators", "header", "footer"}


def kids(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The child nodes of node, in field order. Much cheaper than `node.children`, which
    runs a visitor; whitespace and parentheses are left out."""
    names = _FIELDS.get(type(node))
    if names is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(node)
            if not f.name.startswith("whitespace") and f.name not in _SKIPPED_FIELDS
        )
        _FIELDS[type(node)] = names
    out: list[cst.CSTNode] = []
    for name in names:
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, cst.CSTNode))
    return out


def nodes(root: cst.CSTNode, *, nested_functions: bool = False) -> Iterator[cst.CSTNode]:
    """Pre-order walk of root; nested functions and lambdas are skipped unless asked."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if node is not root and not nested_functions and isinstance(node, (cst.FunctionDef, cst.Lambda)):
            continue
        stack.extend(reversed(kids(node)))


@dataclass
class Reads:
    names: set[str] = field(default_factory=set)
    attrs: set[str] = field(default_factory=set)  # self.<attr>
    # counters read on other objects: `self.trainer.global_step`, `state.epoch`
    foreign_counters: set[str] = field(default_factory=set)


def reads(expr: cst.CSTNode, self_name: str = "self") -> Reads:
    """Names and `self` attributes read in expr (attribute names and keywords excluded)."""
    out = Reads()
    stack: list[cst.CSTNode] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, cst.Attribute):
            attr = self_attribute(node, self_name)
            if attr is not None:
                out.attrs.add(attr)
            else:
                if COUNTER_NAME.fullmatch(node.attr.value):
                    out.foreign_counters.add(node.attr.value)
                stack.append(node.value)
            continue
        if isinstance(node, cst.Name):
            out.names.add(node.value)
            continue
        if isinstance(node, cst.Arg):
            stack.append(node.value)
            continue
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            continue
        stack.extend(kids(node))
    return out


def local_bindings(func: cst.FunctionDef) -> dict[str, list[cst.BaseExpression | None]]:
    """Every binding of a local name in func: the bound value, the iterable of a `for`,
    the right-hand side of an unpacking, what is appended to a list, or None when unknown
    (with-as, except-as...)."""
    out: dict[str, list[cst.BaseExpression | None]] = {}

    def bind(target: cst.CSTNode, value: cst.BaseExpression | None) -> None:
        if isinstance(target, cst.Name):
            out.setdefault(target.value, []).append(value)
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                bind(el.value, value)
        elif isinstance(target, cst.StarredElement):
            bind(target.value, value)

    for node in nodes(func.body):
        if isinstance(node, cst.Assign):
            for t in node.targets:
                bind(t.target, node.value)
        elif isinstance(node, cst.AnnAssign):
            bind(node.target, node.value)
        elif isinstance(node, cst.AugAssign):
            if isinstance(node.target, cst.Name):
                out.setdefault(node.target.value, []).append(
                    cst.BinaryOperation(node.target, cst.Add(), node.value)
                )
        elif isinstance(node, (cst.For, cst.CompFor)):
            bind(node.target, node.iter)
        elif isinstance(node, cst.NamedExpr):
            bind(node.target, node.value)
        elif isinstance(node, cst.AsName):
            bind(node.name, None)
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in ("append", "extend", "insert")
            and isinstance(node.func.value, cst.Name)
        ):
            # `lrs.append(x)`: x flows into lrs
            for arg in node.args:
                out.setdefault(node.func.value.value, []).append(arg.value)
    return out


def time_attributes(writes: dict) -> set[str]:
    """Attributes that change with the step: counter names, attributes advanced somewhere,
    and attributes assigned outside initialisation from a value that reads one of those."""
    attrs = {a for a in writes if COUNTER_NAME.fullmatch(a)}
    attrs |= {a for a, ws in writes.items() if any(advances(w) for w in ws)}
    changed = True
    while changed:
        changed = False
        for attr, ws in writes.items():
            if attr in attrs:
                continue
            for w in ws:
                if is_init_like(w.method) or w.value is None:
                    continue
                if reads(w.value).attrs & attrs:
                    attrs.add(attr)
                    changed = True
                    break
    return attrs


class FunctionTime:
    """Which expressions of one function change with the step counter."""

    def __init__(self, func: cst.FunctionDef, time_attrs: set[str], self_name: str | None) -> None:
        self.self_name = self_name or "self"
        self.time_attrs = time_attrs
        self.bindings = local_bindings(func)
        params = [p for p in parameter_names(func) if p != self_name]
        self.params = set(params)
        self.time_names = {n for n in [*params, *self.bindings] if COUNTER_NAME.fullmatch(n)}
        changed = True
        while changed:
            changed = False
            for name, values in self.bindings.items():
                if name in self.time_names:
                    continue
                if any(v is not None and self._reads_time(v) for v in values):
                    self.time_names.add(name)
                    changed = True

    def _reads_time(self, expr: cst.CSTNode) -> bool:
        r = reads(expr, self.self_name)
        return bool(
            r.names & self.time_names
            or r.foreign_counters
            or any(a in self.time_attrs or COUNTER_NAME.fullmatch(a) for a in r.attrs)
        )

    def reads_time(self, expr: cst.CSTNode) -> bool:
        return self._reads_time(expr)

    def single_value(self, name: str) -> cst.BaseExpression | None:
        values = self.bindings.get(name, [])
        return values[0] if len(values) == 1 else None


# --------------------------------------------------------------------- expressions


def factors(expr: cst.BaseExpression) -> tuple[list[cst.BaseExpression], list[cst.BaseExpression]]:
    """Numerator and denominator operands of a product/quotient chain."""
    if isinstance(expr, cst.BinaryOperation):
        if isinstance(expr.operator, cst.Multiply):
            ln, ld = factors(expr.left)
            rn, rd = factors(expr.right)
            return ln + rn, ld + rd
        if isinstance(expr.operator, cst.Divide):
            ln, ld = factors(expr.left)
            rn, rd = factors(expr.right)
            return ln + rd, ld + rn
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        return factors(expr.expression)
    return [expr], []


def terms(expr: cst.BaseExpression) -> list[cst.BaseExpression]:
    """Operands of a sum/difference chain."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract)):
        return terms(expr.left) + terms(expr.right)
    return [expr]


def additively_contains(expr: cst.BaseExpression, test) -> bool:
    """Whether expr is, or is a sum with a term that is, something satisfying test."""
    return any(test(t) for t in terms(expr))


def func_name(call: cst.Call) -> str | None:
    f = call.func
    if isinstance(f, cst.Name):
        return f.value
    if isinstance(f, cst.Attribute):
        return f.attr.value
    return None


# -------------------------------------------------------------------------- the rule


class SchedulerLrCompounding(Rule):
    __doc__ = __doc__
    code = "TL008"
    name = "scheduler-lr-compounding"
    message = (
        "`{target}` is multiplied into itself on every `{method}()` call, so the LR decays "
        "geometrically; compute the LR into a local from the stored base LR and leave "
        "`{target}` unchanged"
    )
    message_current = (
        "`{method}()` scales a closed-form schedule by the optimizer's current LR (`{read}`), "
        "so the LR is multiplied into itself on every step and decays geometrically; compute "
        "it from the stored base LR instead (`self.base_lrs[i]`, `group['initial_lr']` or the "
        "configured LR)"
    )
    tokens = (("*lr*", "*learning_rate*"),)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """(b) needs `param_groups` and a `['lr']` subscript; (a) a step method of a class
        that writes `X.<base lr>` (or an item of it), or a base-LR key of a param group."""
        groups = "param_groups" in index.attributes
        if groups and "lr" in index.strings:
            for func in index.functions():
                if _ast_may_scale_current_lr(func):
                    return True
        for klass in index.nodes(ast.ClassDef):
            for func in sc.methods(klass):
                if not is_steplike(func.name) or is_init_like(func.name):
                    continue
                for node in sc.walk(func):
                    if isinstance(node, ast.Assign):
                        targets = node.targets
                    elif isinstance(node, ast.AugAssign):
                        targets = [node.target]
                    else:
                        continue
                    if any(_ast_amplitude_target(t, groups) for t in targets):
                        return True
        return False

    VALID = [
        # torch's ExponentialLR: a chainable constant factor
        Valid(
            """
            from torch.optim.lr_scheduler import LRScheduler
            class ExponentialLR(LRScheduler):
                def get_lr(self):
                    if self.last_epoch == 0:
                        return [group["lr"] for group in self.optimizer.param_groups]
                    return [group["lr"] * self.gamma for group in self.optimizer.param_groups]
            """
        ),
        # torch's recursive CosineAnnealingLR: a ratio of consecutive cosines
        Valid(
            """
            import math
            from torch.optim.lr_scheduler import LRScheduler
            class CosineAnnealingLR(LRScheduler):
                def get_lr(self):
                    if self.last_epoch == 0:
                        return [group["lr"] for group in self.optimizer.param_groups]
                    elif (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
                        return [
                            group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                            for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)
                        ]
                    return [
                        (1 + math.cos(math.pi * self.last_epoch / self.T_max))
                        / (1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max))
                        * (group["lr"] - self.eta_min)
                        + self.eta_min
                        for group in self.optimizer.param_groups
                    ]
            """
        ),
        # torch's PolynomialLR: a ratio of consecutive polynomials, then group['lr'] * factor
        Valid(
            """
            from torch.optim.lr_scheduler import LRScheduler
            class PolynomialLR(LRScheduler):
                def get_lr(self):
                    decay_factor = (
                        (1.0 - self.last_epoch / self.total_iters)
                        / (1.0 - (self.last_epoch - 1) / self.total_iters)
                    ) ** self.power
                    return [group["lr"] * decay_factor for group in self.optimizer.param_groups]
            """
        ),
        # torch's MultiplicativeLR and MultiStepLR
        Valid(
            """
            class MultiplicativeLR:
                def get_lr(self):
                    return [group["lr"] * lmbda(self.last_epoch) for lmbda, group in zip(self.lr_lambdas, self.optimizer.param_groups)]
            class MultiStepLR:
                def get_lr(self):
                    return [group["lr"] * self.gamma ** self.milestones[self.last_epoch] for group in self.optimizer.param_groups]
            """
        ),
        # the seed's correct variant: the LR is computed from the saved base LR
        Valid(
            """
            import math
            class CosineAnnealingWarmbootingLR:
                def __init__(self, optimizer, epochs=0, eta_min=0.05):
                    self.optimizer = optimizer
                    self.iters = -1
                    self.base_lr = [group['lr'] for group in optimizer.param_groups]
                def step(self):
                    self.iters += 1
                    iters = self.iters
                    for group, lr in zip(self.optimizer.param_groups, self.base_lr):
                        group['lr'] = lr * ((1 + math.cos(iters * math.pi / self.gap)) / 2)
                    return self.optimizer.param_groups[0]['lr']
                def step_batch(self):
                    self.iters_batch += 1
                    rate = self.iters_batch / self.warmup_iters
                    for group, lr in zip(self.optimizer.param_groups, self.base_lr):
                        group['lr'] = lr * rate
            """
        ),
        # writes in __init__ run once
        Valid(
            """
            class Sched:
                def __init__(self, optimizer, scale):
                    self.base_lr = optimizer.param_groups[0]['lr']
                    self.base_lr = self.base_lr * scale
                def step(self):
                    self.t += 1
                    return self.base_lr * (1 + math.cos(math.pi * self.t / self.T)) / 2
            """
        ),
        # the peak decays once per restart, under the test of the cycle counter
        Valid(
            """
            import math
            class WarmRestarts:
                def step(self):
                    self.T_cur += 1
                    if self.T_cur >= self.T_i:
                        self.T_cur = 0
                        self.cycle += 1
                        self.max_lr = self.max_lr * self.decay ** self.cycle
                    return self.max_lr * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
            """
        ),
        # a constant decay of the stored peak
        Valid(
            """
            class Sched:
                def step(self):
                    self.max_lr *= self.gamma
                    self.t += 1
            """
        ),
        # the current LR is only read for logging, the LR comes from base_lrs
        Valid(
            """
            import math
            def adjust_learning_rate(optimizer, epoch, args):
                old = optimizer.param_groups[0]['lr']
                lr = args.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / args.epochs))
                for group in optimizer.param_groups:
                    group['lr'] = lr
                print(old, lr)
            """
        ),
        # the current LR plus a closed-form increment is additive, not scaled
        Valid(
            """
            import math
            class Sched:
                def get_lr(self):
                    return [group['lr'] + 0.1 * math.cos(self.last_epoch) for group in self.optimizer.param_groups]
            """
        ),
        # a custom optimizer that scales group['lr'] locally and never stores it back
        Valid(
            """
            import torch
            class CosineOptimizer(torch.optim.Optimizer):
                def step(self, closure=None):
                    for group in self.param_groups:
                        for p in group['params']:
                            step = self.state[p]['step']
                            lr = group['lr'] * 0.5 * (1 + torch.cos(torch.tensor(step / group['T_max'] * torch.pi)))
                            p.data.add_(-lr * p.grad)
                            self.state[p]['step'] += 1
            """
        ),
        # the LR is reset from the configured value first, then scaled by the warm-up ratio
        Valid(
            """
            def adjust_lr(optimizer, epoch, args):
                for g in optimizer.param_groups:
                    g['lr'] = args.lr
                    if epoch < args.warmup:
                        g['lr'] = g['lr'] * (epoch + 1) / args.warmup
            """
        ),
        # the current LR times a closed form, only logged
        Valid(
            """
            import math
            def log_lr(optimizer, epoch):
                lr = optimizer.param_groups[0]['lr'] * math.cos(math.pi * epoch / 10)
                print(lr)
                return lr
            """
        ),
        # the same hook scaling the configured LR
        Valid(
            """
            class Model:
                def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure):
                    optimizer.step(closure=optimizer_closure)
                    if self.trainer.global_step < 500:
                        lr_scale = min(1.0, float(self.trainer.global_step + 1) / 500.0)
                        for pg in optimizer.param_groups:
                            pg["lr"] = lr_scale * self.hparams.learning_rate
            """
        ),
    ]
    INVALID = [
        # the seed page, third snippet: base_lr overwritten in step() and step_batch()
        Invalid(
            """
            import math
            class CosineAnnealingWarmbootingLR:
                def __init__(self, base_lr=0.00001, epochs=0, eta_min=0.05, steps=[], step_scale=0.8, lf=None, batchs=0, warmup_epoch=0, epoch_scale=1.0):
                    self.warmup_iters = batchs * warmup_epoch
                    self.eta_min = eta_min
                    self.iters = -1
                    self.iters_batch = -1
                    self.base_lr = base_lr
                    self.step_scale = step_scale
                    self.steps = [warmup_epoch] + [i for i in steps if (i < epochs and i > warmup_epoch)] + [epochs]
                    self.gap = 0
                    self.last_epoch = 0
                    self.lf = lf
                    self.epoch_scale = epoch_scale
                def step(self, external_iter=None):
                    self.iters = 1
                    if external_iter is not None:
                        self.iters = external_iter
                    iters = self.iters - self.warmup_iters
                    last_epoch = self.last_epoch
                    scale = 1.0
                    for i in range(len(self.steps)-1):
                        if (iters <= self.steps[i+1]):
                            self.gap = self.steps[i+1] - self.steps[i]
                            iters = iters - self.steps[i]
                            last_epoch = self.steps[i]
                            if i != len(self.steps)-2:
                                self.gap *= self.epoch_scale
                            break
                        scale *= self.step_scale
                    if self.lf is None:
                        self.base_lr = scale * self.base_lr * ((((1 - math.cos(iters * math.pi / self.gap)) / 2) ** 1.0) * (1.0 - self.eta_min) + self.eta_min)
                    else:
                        self.base_lr = scale * self.base_lr * self.lf(iters, self.gap)
                    self.last_epoch = last_epoch
                    return self.base_lr
                def step_batch(self):
                    self.iters_batch = 1
                    if self.iters_batch < self.warmup_iters:
                        rate = self.iters_batch / self.warmup_iters
                        self.base_lr = self.base_lr * rate
                        return self.base_lr
                    else:
                        return None
            """,
            line=32,
            count=3,
        ),
        # the seed page, second snippet: closed form scaled by the current LR
        Invalid(
            """
            import math
            class CosineAnnealingWarmbootingLR:
                def __init__(self, optimizer, T_max, T_mult=1, eta_min=0, last_epoch=-1):
                    self.optimizer = optimizer
                    self.T_max = T_max
                    self.T_mult = T_mult
                    self.eta_min = eta_min
                    self.last_epoch = last_epoch
                    self.T_cur = float(self.last_epoch)
                def get_lr(self):
                    if self.T_cur == self.T_max:
                        self.T_cur = 0
                        self.T_max *= self.T_mult
                    return self.eta_min + (1 + math.cos(math.pi * self.T_cur / self.T_max)) / 2 * (self.optimizer.param_groups[0]['lr'] - self.eta_min)
            """,
            line=14,
        ),
        # the current LR read into a local first; numpy's cos
        Invalid(
            """
            import numpy as np
            class Cosine:
                def step(self, epoch):
                    lr_max = self.optimizer.param_groups[0]["lr"]
                    for g in self.optimizer.param_groups:
                        g["lr"] = self.lo + (lr_max - self.lo) * (1 + np.cos(np.pi * epoch / self.T)) / 2
            """,
            line=6,
        ),
        # a warm-up ratio applied to group['lr'] in a training-script function; torch aliased
        Invalid(
            """
            import torch as T
            def warmup_lr(optimizer, it, warmup_iters):
                for group in optimizer.param_groups:
                    group['lr'] = group['lr'] * it / warmup_iters
            """,
            line=4,
        ),
        # a polynomial decay of the current LR, read through enumerate
        Invalid(
            """
            from torch.optim.lr_scheduler import _LRScheduler as Base
            class Poly(Base):
                def get_lr(self):
                    out = []
                    for i, group in enumerate(self.optimizer.param_groups):
                        out.append(group['lr'] * (1 - self.last_epoch / self.max_iter) ** 0.9)
                    return out
            """,
            line=6,
        ),
        # base_lrs rebuilt from itself by a comprehension
        Invalid(
            """
            from math import cos, pi
            class Sched:
                def step(self):
                    self.epoch += 1
                    self.base_lrs = [lr * 0.5 * (1 + cos(pi * self.epoch / self.T)) for lr in self.base_lrs]
            """,
            line=5,
        ),
        # an augmented assignment of the initial LR in a param group
        Invalid(
            """
            class Warmup:
                def step(self):
                    self.n += 1
                    for group in self.optimizer.param_groups:
                        group['initial_lr'] *= self.n / self.warmup
            """,
            line=5,
        ),
        # a training loop (not a scheduler class) that anneals the current LR
        Invalid(
            """
            import math
            class Trainer:
                def train(self, n_epochs):
                    for epoch in range(n_epochs):
                        if epoch > 1:
                            for param_group in self.optimizer.param_groups:
                                param_group['lr'] = param_group['lr'] * 0.5 * (1 + math.cos(epoch * math.pi / 15))
                        self.train_one_epoch()
            """,
            line=7,
        ),
        # a custom optimizer that stores the annealed LR back into its own param groups
        Invalid(
            """
            import numpy as np
            from torch.optim import Adam
            class CosineAdam(Adam):
                def step(self, closure=None):
                    for group in self.param_groups:
                        step = group.setdefault('step', 0)
                        group['step'] = step + 1
                        group['lr'] = group['lr'] * 0.5 * (1 + np.cos(np.pi * step / self.T_max))
                    return super().step(closure)
            """,
            line=8,
        ),
        # an augmented multiplication by a warm-up ratio, via a local
        Invalid(
            """
            class Warm:
                def step(self):
                    self.current_step += 1
                    ratio = self.current_step / self.warmup_steps
                    for group in self.optimizer.param_groups:
                        group['lr'] *= ratio
            """,
            line=6,
        ),
        # a warm-up in a LightningModule hook, counted by the trainer
        Invalid(
            """
            import lightning as L
            class Model(L.LightningModule):
                def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure):
                    optimizer.step(closure=optimizer_closure)
                    if self.trainer.global_step < 500:
                        lr_scale = min(1.0, float(self.trainer.global_step + 1) / 500.0)
                        for pg in optimizer.param_groups:
                            pg["lr"] = lr_scale * pg["lr"]
            """,
            line=8,
        ),
    ]

    # ------------------------------------------------------------------ traversal

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        module, imports = self.context.module, self.context.imports
        if not is_scheduler_like(node, imports, module):
            return
        time_attrs = self._time_attrs(node)
        for name, func in methods(node).items():
            if not is_steplike(name) or is_init_like(name):
                continue
            self_name = _first_param(func)
            if self_name is None:
                continue
            self._check_amplitude_writes(func, FunctionTime(func, time_attrs, self_name), self_name)

    def visit_Subscript(self, node: cst.Subscript) -> None:
        if subscript_key(node) == "lr":
            marked = self.__dict__.setdefault("_lr_functions", set())
            for func in self.context.enclosing_all(cst.FunctionDef):
                marked.add(id(func))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        """(b) runs on every function that subscripts 'lr': a scheduler method, a training
        loop, an `adjust_lr` helper."""
        if id(node) not in self.__dict__.get("_lr_functions", ()):
            return
        stack = self.context.stack
        cls = stack[-2] if len(stack) >= 2 and isinstance(stack[-2], cst.ClassDef) else None
        self_name = _first_param(node) if cls is not None else None
        time_attrs: set[str] = set()
        returns_count = False
        if cls is not None and self_name is not None:
            time_attrs = self._time_attrs(cls)
            returns_count = (
                is_steplike(node.name.value)
                and not is_init_like(node.name.value)
                and is_scheduler_like(cls, self.context.imports, self.context.module)
            )
        ft = FunctionTime(node, time_attrs, self_name)
        self._check_current_lr(node, ft, returns_count)

    def _time_attrs(self, cls: cst.ClassDef) -> set[str]:
        cache = self.__dict__.setdefault("_time_cache", {})
        if id(cls) not in cache:
            cache[id(cls)] = time_attributes(attribute_writes(cls))
        return cache[id(cls)]

    # ------------------------------------------------------ (a) amplitude written back

    def _check_amplitude_writes(self, func: cst.FunctionDef, ft: FunctionTime, self_name: str) -> None:
        method = func.name.value
        groups = _param_group_names(func)
        for stmt, target, guards in _writes_with_guards(func):
            label = _amplitude_target(target, self_name, groups)
            if label is None:
                continue

            def is_amplitude(e: cst.BaseExpression, aliases=frozenset()) -> bool:
                return _same_amplitude(e, target, self_name) or (
                    isinstance(e, cst.Name) and e.value in aliases
                )

            if isinstance(stmt, cst.AugAssign):
                if not isinstance(stmt.operator, (cst.MultiplyAssign, cst.DivideAssign)):
                    continue
                compounding = ft.reads_time(stmt.value)
            else:
                compounding = _scaled_by_time(stmt.value, is_amplitude, ft)
            if not compounding or _in_restart_block(guards, stmt, self_name):
                continue
            self.report(stmt, self.message.format(target=label, method=method))

    # ----------------------------------------------- (b) closed form x current LR

    def _check_current_lr(self, func: cst.FunctionDef, ft: FunctionTime, returns_count: bool) -> None:
        groups = _param_group_names(func)

        def is_current_read(e: cst.BaseExpression) -> bool:
            return _is_current_lr_read(e, groups)

        current_locals: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, values in ft.bindings.items():
                if name in current_locals or name in groups:
                    continue
                if any(v is not None and _contains_current(v, groups, current_locals) for v in values):
                    current_locals.add(name)
                    changed = True

        def is_current(e: cst.BaseExpression) -> bool:
            e = _unwrap_call(e)
            return is_current_read(e) or (isinstance(e, cst.Name) and e.value in current_locals)

        dominators = _dominating_statements(func)
        # where the LR lands: stores into a param group's 'lr', and get_lr()'s return value
        sinks: list[tuple[cst.CSTNode, cst.BaseExpression]] = []
        for n in nodes(func.body):
            if isinstance(n, cst.Assign) and any(is_current_read(t.target) for t in n.targets):
                if _contains_current(n.value, groups, current_locals) and not _after_fresh_store(
                    n, dominators, groups, current_locals
                ):
                    sinks.append((n, n.value))
            elif isinstance(n, cst.AugAssign) and is_current_read(n.target):
                if isinstance(n.operator, (cst.MultiplyAssign, cst.DivideAssign)) and _time_factor(
                    [n.value], [], ft
                ) and not _after_fresh_store(n, dominators, groups, current_locals):
                    self._report_current(func, n, n.target)
                    return
            elif returns_count and isinstance(n, cst.Return) and n.value is not None:
                sinks.append((n, n.value))
        if not sinks:
            return
        # follow locals back from the sinks
        exprs = [v for _, v in sinks]
        seen: set[str] = set()
        i = 0
        while i < len(exprs):
            for name in reads(exprs[i]).names:
                if name in seen or name in groups:
                    continue
                seen.add(name)
                exprs.extend(v for v in ft.bindings.get(name, []) if v is not None)
            i += 1
        for expr in exprs:
            for node in _maximal_arithmetic(expr):
                for term in terms(node):
                    num, den = factors(term)
                    holders = [f for f in num if additively_contains(f, is_current)]
                    if not holders:
                        continue
                    other_num = [f for f in num if not any(f is h for h in holders)]
                    if _time_factor(other_num, den, ft):
                        read = next(
                            (m for h in holders for m in nodes(h) if isinstance(m, cst.Subscript) and is_current_read(m)),
                            None,
                        )
                        self._report_current(func, node, read)
                        return

    def _report_current(self, func: cst.FunctionDef, node: cst.CSTNode, read: cst.CSTNode | None) -> None:
        self.report(
            node,
            self.message_current.format(
                method=func.name.value,
                read=" ".join(self.context.code(read).split()) if read is not None else "param_groups[i]['lr']",
            ),
        )


def _ast_is_lr_key(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Subscript)
        and isinstance(node.slice, ast.Constant)
        and node.slice.value == "lr"
    )


def _ast_may_scale_current_lr(func: ast.AST) -> bool:
    """Whether `_check_current_lr` can find a sink in func: a store into an `['lr']` item
    (`g['lr'] = ...`, `g['lr'] *= ...`), or, in a step method, a returned value that reaches
    an `['lr']` item through the function's local bindings."""
    nodes = list(sc.walk(func))
    if not any(_ast_is_lr_key(n) for n in nodes):
        return False
    bindings: dict[str, list[ast.AST]] = {}

    def bind(target: ast.AST, value: ast.AST | None) -> None:
        for t in sc.flatten_targets(target):
            if isinstance(t, ast.Name) and value is not None:
                bindings.setdefault(t.id, []).append(value)

    returns: list[ast.AST] = []
    for node in nodes:
        if isinstance(node, ast.Assign):
            if any(_ast_is_lr_key(t) for t in node.targets):
                return True
            for t in node.targets:
                bind(t, node.value)
        elif isinstance(node, ast.AugAssign):
            if _ast_is_lr_key(node.target) and isinstance(node.op, (ast.Mult, ast.Div)):
                return True
            bind(node.target, node.value)
        elif isinstance(node, ast.AnnAssign):
            bind(node.target, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            bind(node.target, node.iter)
        elif isinstance(node, ast.NamedExpr):
            bind(node.target, node.value)
        elif isinstance(node, (ast.Return, ast.Yield)) and node.value is not None:
            returns.append(node.value)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("append", "extend", "insert")
            and isinstance(node.func.value, ast.Name)
        ):
            bindings.setdefault(node.func.value.id, []).extend(node.args)
    if not returns or not is_steplike(func.name) or is_init_like(func.name):
        return False
    pending, seen = list(returns), set()
    while pending:
        for node in sc.walk(pending.pop()):
            if _ast_is_lr_key(node):
                return True
            name = node.id if isinstance(node, ast.Name) else node.arg if isinstance(node, ast.arg) else None
            if name is not None and name not in seen:
                seen.add(name)
                pending.extend(bindings.get(name, ()))
    return False


def _ast_amplitude_target(target: ast.AST, groups: bool) -> bool:
    """Whether `_amplitude_target` may accept target (any receiver for `self`)."""
    if isinstance(target, ast.Subscript):
        key = target.slice
        if groups and isinstance(key, ast.Constant) and isinstance(key.value, str):
            if BASE_LR_NAME.fullmatch(key.value):
                return True
        target = target.value
    return isinstance(target, ast.Attribute) and BASE_LR_NAME.fullmatch(target.attr) is not None


def _time_factor(num: list, den: list, ft: "FunctionTime") -> bool:
    """Whether num/den (the factors besides the current LR) form an absolute closed form of
    the counter: a warm-up ratio `t / W`, a cosine of `t` or a power of `f(t)`, but not a
    ratio of two such (a chainable per-step factor)."""
    warmup_ratio = any(_linear_in_time(f, ft) for f in num) and not any(ft.reads_time(f) for f in den)
    trig = any(_contains_trig_of_time(f, ft) for f in num) and not any(
        _contains_trig_of_time(f, ft) for f in den
    )
    power = not any(ft.reads_time(f) for f in den)
    return warmup_ratio or any(_absolute_closed_form(f, ft, 0, trig=trig, power=power) for f in num)


def _dominating_statements(func: cst.FunctionDef) -> dict[int, list[cst.CSTNode]]:
    """For each small statement, the small statements that run before it on every path
    through its enclosing blocks (earlier statements of the same or an enclosing block)."""
    out: dict[int, list[cst.CSTNode]] = {}

    def block(stmts, before: list) -> None:
        before = list(before)
        for stmt in stmts:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    out[id(small)] = list(before)
                    before.append(small)
            else:
                for child in _child_blocks(stmt):
                    block(child, before)

    block(_suite(func.body), [])
    return out


def _suite(body: cst.CSTNode) -> list:
    if isinstance(body, cst.IndentedBlock):
        return list(body.body)
    return []


def _child_blocks(stmt: cst.CSTNode):
    if isinstance(stmt, cst.SimpleStatementSuite):
        # `if x: a = 1; b = 2` on one line: treat as its own block
        return []
    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
        return []
    blocks = []
    for child in kids(stmt):
        if isinstance(child, cst.IndentedBlock):
            blocks.append(list(child.body))
        elif isinstance(child, (cst.Else, cst.If, cst.Finally, cst.ExceptHandler, cst.ExceptStarHandler)):
            blocks.extend(_child_blocks(child))
    return blocks


def _after_fresh_store(stmt: cst.CSTNode, dominators, groups: set[str], current_locals: set[str]) -> bool:
    """Whether an earlier statement on every path sets a param group's 'lr' from something
    other than the current LR (`g['lr'] = args.lr`), so that scaling it afterwards is fine."""
    for prev in dominators.get(id(stmt), []):
        if isinstance(prev, cst.Assign) and any(_is_current_lr_read(t.target, groups) for t in prev.targets):
            if not _contains_current(prev.value, groups, current_locals):
                return True
    return False


# ---------------------------------------------------------------------- helpers


def _first_param(func: cst.FunctionDef) -> str | None:
    names = parameter_names(func)
    if not names or any(
        isinstance(d.decorator, cst.Name) and d.decorator.value == "staticmethod" for d in func.decorators
    ):
        return None
    return names[0]


def _is_param_groups(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Attribute) and expr.attr.value == "param_groups"


def _param_group_names(func: cst.FunctionDef) -> set[str]:
    """Loop variables bound to the optimizer's param groups, directly or via enumerate/zip."""
    out: set[str] = set()
    for node in nodes(func.body):
        if not isinstance(node, (cst.For, cst.CompFor)):
            continue
        it, target = node.iter, node.target
        if _is_param_groups(it) and isinstance(target, cst.Name):
            out.add(target.value)
        elif isinstance(it, cst.Call) and isinstance(it.func, cst.Name) and isinstance(target, cst.Tuple):
            elts = [e.value for e in target.elements]
            if it.func.value == "enumerate" and it.args and _is_param_groups(it.args[0].value):
                if len(elts) == 2 and isinstance(elts[1], cst.Name):
                    out.add(elts[1].value)
            elif it.func.value == "zip" and len(elts) == len(it.args):
                for arg, el in zip(it.args, elts):
                    if _is_param_groups(arg.value) and isinstance(el, cst.Name):
                        out.add(el.value)
    return out


def _is_current_lr_read(e: cst.BaseExpression, groups: set[str]) -> bool:
    """`<x>.param_groups[i]['lr']` or `group['lr']` for a param-group loop variable."""
    if not isinstance(e, cst.Subscript) or subscript_key(e) != "lr":
        return False
    v = e.value
    if isinstance(v, cst.Name):
        return v.value in groups
    return isinstance(v, cst.Subscript) and _is_param_groups(v.value)


def _contains_current(expr: cst.CSTNode, groups: set[str], current_locals: set[str]) -> bool:
    for n in nodes(expr):
        if isinstance(n, cst.Subscript) and _is_current_lr_read(n, groups):
            return True
        if isinstance(n, cst.Name) and n.value in current_locals:
            return True
    return False


def _unwrap_call(e: cst.BaseExpression) -> cst.BaseExpression:
    """`float(x)` -> x."""
    while isinstance(e, cst.Call) and func_name(e) in ("float", "Decimal") and len(e.args) == 1:
        e = e.args[0].value
    return e


def _maximal_arithmetic(root: cst.CSTNode) -> Iterator[cst.BinaryOperation]:
    """Binary operations that are not an operand of another binary operation."""
    stack: list[tuple[cst.CSTNode, bool]] = [(root, False)]
    while stack:
        node, inside = stack.pop()
        is_bin = isinstance(node, cst.BinaryOperation)
        if is_bin and not inside:
            yield node
        if isinstance(node, (cst.FunctionDef, cst.Lambda)) and node is not root:
            continue
        child_inside = is_bin or (inside and isinstance(node, cst.UnaryOperation))
        for child in reversed(kids(node)):
            stack.append((child, child_inside))


def _is_trig_of_time(node: cst.CSTNode, ft: FunctionTime) -> bool:
    return (
        isinstance(node, cst.Call)
        and func_name(node) in _TRIG
        and any(ft.reads_time(a.value) for a in node.args)
    )


def _contains_trig_of_time(node: cst.CSTNode, ft: FunctionTime) -> bool:
    return any(_is_trig_of_time(n, ft) for n in nodes(node))


def _absolute_closed_form(
    expr: cst.BaseExpression, ft: FunctionTime, depth: int, *, trig: bool = True, power: bool = True
) -> bool:
    """A factor that computes the schedule from the absolute step: cos/sin of the counter
    (outside a ratio of two such), `(f(t)) ** p` (outside a ratio), or `t / W`."""
    if depth > 3:
        return False
    if isinstance(expr, cst.Name):
        value = ft.single_value(expr.value)
        return value is not None and _absolute_closed_form(value, ft, depth + 1, trig=trig, power=power)
    if isinstance(expr, cst.Call) and func_name(expr) in ("min", "max") and isinstance(expr.func, cst.Name):
        return any(_absolute_closed_form(a.value, ft, depth + 1, trig=trig, power=power) for a in expr.args)
    # cos/sin of the counter that is not divided by another cos/sin of the counter
    ratio_trig: set[int] = set()
    ratio_pow: set[int] = set()
    for n in nodes(expr):
        if isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.Divide):
            if _contains_trig_of_time(n.left, ft) and _contains_trig_of_time(n.right, ft):
                ratio_trig |= {id(m) for m in nodes(n)}
            if ft.reads_time(n.left) and ft.reads_time(n.right):
                ratio_pow |= {id(m) for m in nodes(n)}
    for n in nodes(expr):
        if trig and _is_trig_of_time(n, ft) and id(n) not in ratio_trig:
            return True
        if (
            power
            and isinstance(n, cst.BinaryOperation)
            and isinstance(n.operator, cst.Power)
            and ft.reads_time(n.left)
            and id(n.left) not in ratio_pow
        ):
            return True
    # a warm-up ratio t / W as the factor itself
    num, den = factors(expr)
    if den and any(ft.reads_time(f) for f in num) and not any(ft.reads_time(f) for f in den):
        return True
    if not den and len(num) == 1 and num[0] is not expr:
        return _absolute_closed_form(num[0], ft, depth + 1, trig=trig, power=power)
    return False


def _linear_in_time(expr: cst.BaseExpression, ft: FunctionTime, depth: int = 0) -> bool:
    """`t`, `self.last_epoch + 1`: a sum of plain names, attributes and numbers that reads
    the counter (a local counts when its only value is such a sum)."""
    parts = terms(expr)
    if not all(isinstance(p, (cst.Name, cst.Attribute, cst.Integer, cst.Float)) for p in parts):
        return False
    for p in parts:
        if isinstance(p, cst.Name) and COUNTER_NAME.fullmatch(p.value) and p.value in ft.time_names:
            return True
        if isinstance(p, cst.Name) and p.value in ft.bindings:
            value = ft.single_value(p.value)
            if value is not None and depth < 3 and _linear_in_time(value, ft, depth + 1):
                return True
        elif ft.reads_time(p):
            return True
    return False


def _scaled_by_time(value: cst.BaseExpression, is_amplitude, ft: FunctionTime) -> bool:
    """Whether value multiplies the amplitude by a factor that reads the counter."""
    # comprehension over the amplitude: [lr * f(t) for lr in self.base_lrs]
    if isinstance(value, (cst.ListComp, cst.GeneratorExp)):
        aliases = set()
        comp = value.for_in
        while comp is not None:
            if _iterates_amplitude(comp.iter, is_amplitude):
                aliases |= _target_names(comp.target)
            comp = comp.inner_for_in
        if not aliases:
            return False
        return _scaled_by_time(value.elt, lambda e, a=frozenset(aliases): is_amplitude(e, a), ft)
    if isinstance(value, cst.Call) and func_name(value) in ("min", "max", "float") and isinstance(value.func, cst.Name):
        return any(_scaled_by_time(a.value, is_amplitude, ft) for a in value.args)
    for term in terms(value):
        num, den = factors(term)
        holders = [f for f in num if additively_contains(f, is_amplitude)]
        if not holders:
            continue
        others = [f for f in num + den if not any(f is h for h in holders)]
        if any(ft.reads_time(f) for f in others):
            return True
    return False


def _iterates_amplitude(it: cst.BaseExpression, is_amplitude) -> bool:
    if is_amplitude(it):
        return True
    if isinstance(it, cst.Call) and func_name(it) in ("zip", "enumerate"):
        return any(is_amplitude(a.value) for a in it.args)
    return False


def _target_names(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        out: set[str] = set()
        for el in target.elements:
            out |= _target_names(el.value)
        return out
    return set()


def _amplitude_target(target: cst.BaseExpression, self_name: str, groups: set[str]) -> str | None:
    """`self.base_lr`, `self.base_lrs[i]`, `group['initial_lr']` -> a label; else None."""
    attr = self_attribute(target, self_name)
    if attr is not None:
        return f"{self_name}.{attr}" if BASE_LR_NAME.fullmatch(attr) else None
    if isinstance(target, cst.Subscript):
        attr = self_attribute(target.value, self_name)
        if attr is not None:
            return f"{self_name}.{attr}" if BASE_LR_NAME.fullmatch(attr) else None
        key = subscript_key(target)
        if key is not None and BASE_LR_NAME.fullmatch(key) and (
            (isinstance(target.value, cst.Name) and target.value.value in groups)
            or (isinstance(target.value, cst.Subscript) and _is_param_groups(target.value.value))
        ):
            return f"['{key}']"
    return None


def _same_amplitude(e: cst.BaseExpression, target: cst.BaseExpression, self_name: str) -> bool:
    """Whether e reads the amplitude stored in target (`self.X` for target `self.X[i]` too)."""
    e = _unwrap_call(e)
    if isinstance(target, cst.Subscript) and self_attribute(target.value, self_name) is None:
        # group['initial_lr']: the same subscript of the same name
        return (
            isinstance(e, cst.Subscript)
            and subscript_key(e) == subscript_key(target)
            and e.value.deep_equals(target.value)
        )
    attr = self_attribute(target.value if isinstance(target, cst.Subscript) else target, self_name)
    if isinstance(e, cst.Subscript):
        e = e.value
    return self_attribute(e, self_name) == attr


def _writes_with_guards(func: cst.FunctionDef):
    """(statement, target, enclosing if-blocks) for every Assign/AugAssign in func."""
    out = []

    def walk(node: cst.CSTNode, guards: tuple) -> None:
        if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)) and node is not func:
            return
        if isinstance(node, cst.Assign):
            for t in node.targets:
                out.append((node, t.target, guards))
        elif isinstance(node, cst.AugAssign):
            out.append((node, node.target, guards))
        if isinstance(node, cst.If):
            walk(node.test, guards)
            walk(node.body, guards + ((node, node.body),))
            if node.orelse is not None:
                walk(node.orelse, guards + ((node, node.orelse),))
            return
        for child in kids(node):
            walk(child, guards)

    walk(func.body, ())
    return out


def _in_restart_block(guards: tuple, stmt: cst.CSTNode, self_name: str) -> bool:
    """Inside an `if` whose branch also writes an attribute that the test reads (a cycle
    restart: `if self.T_cur >= self.T_i: self.T_cur = 0; self.max_lr *= decay`)."""
    for if_node, branch in guards:
        tested = reads(if_node.test, self_name).attrs
        if not tested:
            continue
        for n in nodes(branch):
            if n is stmt:
                continue
            targets = []
            if isinstance(n, cst.Assign):
                targets = [t.target for t in n.targets]
            elif isinstance(n, (cst.AugAssign, cst.AnnAssign)):
                targets = [n.target]
            for t in targets:
                if self_attribute(t, self_name) in tested:
                    return True
    return False
