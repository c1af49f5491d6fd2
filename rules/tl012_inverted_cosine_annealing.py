"""
## What it does
Flags the factor `(1 - cos(pi * t / T)) / 2` (or `0.5 * (1 - cos(...))`, with `math`,
`numpy` or `torch` cosines) when it scales a learning rate the way cosine annealing does,
inside a class or function whose name says cosine, annealing or decay.

It fires only when all of these hold:
- the cosine's argument grows with the step: `pi` times something that is not a constant
  (`pi * t / T`, `iters * pi / gap`), not the one-step increment `pi / T_max` of torch's
  recursive form;
- the factor multiplies, directly or through a local bound once, an LR-like amplitude:
  a name such as `base_lr`, `lr`, `max_lr`, `eta_max`, `group["lr"]`, or a difference
  `base_lr - eta_min` whose subtrahend is a minimum or a literal, and nothing on the way
  subtracts the term or negates it (`base_lr - amp * (1 - cos) / 2` decays correctly);
- an enclosing class or function (or the lambda's variable) is named with cos, cosine,
  anneal or decay;
- the code is not in a warm-up: not inside `if t < warmup:` (or after a returning
  `if t >= warmup:`), not assigned to a warm-up-named variable, and, when an enclosing
  name says warm-up or ramp, provably past the warm-up (the `else` of `if t < warmup:`, or
  after an `if t < warmup: return ...`).

## Why is this bad?
`(1 - cos(pi * t / T)) / 2` goes from 0 at `t = 0` to 1 at `t = T`, so the learning rate
*rises* from its minimum to its maximum over each cycle: the opposite of cosine annealing,
whose factor is `(1 + cos(pi * t / T)) / 2` (1 at the start, 0 at the end). Training runs
with a tiny learning rate at the start of each cycle and the largest one at its end, where
the schedule was meant to settle; nothing fails, the model is just worse.

## Example
```python
class CosineAnnealingLR:
    def step(self):
        self.t += 1
        f = (1 - math.cos(math.pi * self.t / self.T)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * f
```

## Use instead
```python
class CosineAnnealingLR:
    def step(self):
        self.t += 1
        f = (1 + math.cos(math.pi * self.t / self.T)) / 2
        return self.eta_min + (self.base_lr - self.eta_min) * f
```

## Fix safety
Unsafe: the fix turns `1 - cos(...)` into `1 + cos(...)`, which reverses the schedule. That
is the intent when the schedule was meant to anneal, and wrong when a rising curve was
wanted under a misleading name; `trainlint --fix --verify` applies it only when the
harness sees the learning rate become non-increasing within each cycle.

## Known false positives
A rising cosine ramp that lives in a class or function named after cosine annealing, with
an LR-like amplitude, and is not marked as a warm-up by any name or `if t < warmup` test
(for example a one-cycle phase `self.max_lr * (1 - cos(...)) / 2` selected by
`if self.phase == 0`) is reported. Interpolations between endpoints named by the caller
(`start + (end - start) * (1 - cos(...)) / 2`, `(max_lr - initial_lr) * ...`) are not.

Not seen: a factor returned bare from a function later passed to `LambdaLR` (torch's own
`SWALR._cosine_anneal` returns `(1 - cos(pi * t)) / 2` as an interpolation weight, which
is correct), factors kept in attributes or passed through helper functions, and cosines
whose `pi` is spelled through a module constant.
"""

from __future__ import annotations

import ast
import re

import libcst as cst

from trainlint import screen as sc
from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import BindingTargets, Visitor
from trainlint.traverse import walk

COS_FUNCTIONS = {"math.cos", "numpy.cos", "torch.cos", "cmath.cos"}
PI_CONSTANTS = {"math.pi", "numpy.pi", "torch.pi", "numpy.PI"}
# Calls the factor may go through and remain the same factor (clamping, conversion).
PASSTHROUGH_CALLS = {"max", "min", "float", "abs"}
WRAPPER_CALLS = {"float", "torch.tensor", "torch.as_tensor", "numpy.array", "numpy.float32"}
ONE = re.compile(r"1(\.0*)?$")
MIN_TOKENS = {
    "min", "minimum", "floor", "end", "final", "last", "target", "low", "lower", "bottom",
    "stop",
}
WARM_TOKENS = ("warmup", "ramp", "rampup", "warmstart")
MAX_HOPS = 2
_COS_FUNCTIONS = frozenset(COS_FUNCTIONS)


def tokens(name: str) -> list[str]:
    """`CosineAnnealingLR` -> [cosine, annealing, lr]; `base_lr` -> [base, lr]."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [t for t in re.split(r"[_\W\d]+", name.lower()) if t]


def is_cosine_name(name: str) -> bool:
    for t in tokens(name):
        if re.match(r"(cos|cosine|cosin)(lr|annealing|anneal|decay|schedule|scheduler)?$", t):
            return True
        if "anneal" in t or t.startswith("decay") or t.startswith("sgdr"):
            return True
    return False


def is_warmup_name(name: str) -> bool:
    toks = tokens(name)
    for i, t in enumerate(toks):
        if any(w in t for w in WARM_TOKENS):
            return True
        if t == "warm" and i + 1 < len(toks) and toks[i + 1] == "up":
            return True
    return False


def _name_of(node: cst.CSTNode) -> str | None:
    """The identifier that names a value: `self.base_lrs[i]` -> base_lrs, `g["lr"]` -> lr."""
    if isinstance(node, cst.Subscript):
        if len(node.slice) == 1 and isinstance(node.slice[0].slice, cst.Index):
            index = node.slice[0].slice.value
            if isinstance(index, cst.SimpleString):
                value = index.evaluated_value
                return value if isinstance(value, str) else None
        return _name_of(node.value)
    if isinstance(node, cst.Attribute):
        return node.attr.value
    if isinstance(node, cst.Name):
        return node.value
    return None


def _is_lr_name(name: str) -> bool:
    toks = tokens(name)
    if any(t in MIN_TOKENS or any(w in t for w in WARM_TOKENS) for t in toks):
        return False
    if any(t in ("lr", "lrs") or t.endswith("lr") or t.endswith("lrs") for t in toks):
        return True
    joined = "_".join(toks)
    return "learning_rate" in joined or "eta_max" in joined or "etamax" in joined


def _is_min_like(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.Integer, cst.Float)):
        return True
    name = _name_of(node)
    if name is None:
        return False
    toks = tokens(name)
    return any(t in MIN_TOKENS for t in toks) or "etamin" in toks


def lr_like(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """The LR-like amplitude inside a multiplicand, or None."""
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Multiply):
            return lr_like(node.left) or lr_like(node.right)
        if isinstance(node.operator, cst.Divide):
            return lr_like(node.left)
        if isinstance(node.operator, cst.Subtract):
            # an annealing amplitude `max - min`, not an interpolation `end - start`
            if lr_like(node.left) is not None and _is_min_like(node.right):
                return node
        return None
    name = _name_of(node)
    if name is not None and _is_lr_name(name):
        return node
    return None


class InvertedCosineAnnealing(Rule):
    __doc__ = __doc__
    code = "TL012"
    name = "inverted-cosine-annealing"
    message = (
        "`1 - cos(...)` grows from 0 to 1, so the LR scaled by {amp} rises over each cycle "
        "in `{scope}`; cosine annealing decays with `(1 + cos(...)) / 2`"
    )
    fix_applicability = Applicability.UNSAFE
    tokens = ("cos",)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """`1 - cos(<one argument>)` with a cosine function, and a function, class or
        lambda-holding variable named like cosine annealing."""
        found = False
        for node in index.nodes(ast.BinOp):
            left, right = node.left, node.right
            if (
                isinstance(node.op, ast.Sub)
                and isinstance(left, ast.Constant)
                and type(left.value) in (int, float)
                and left.value == 1
                and isinstance(right, ast.Call)
                and len(right.args) + len(right.keywords) == 1
                and index.resolves_to(right.func, _COS_FUNCTIONS)
            ):
                found = True
                break
        if not found:
            return False
        named = [f.name for f in index.functions()] + [c.name for c in index.nodes(ast.ClassDef)]
        for assign in index.nodes(ast.Assign):
            if isinstance(assign.value, ast.Lambda):
                for target in assign.targets:
                    named += [
                        n.id if isinstance(n, ast.Name) else n.attr if isinstance(n, ast.Attribute) else n.value
                        for n in sc.walk(target)
                        if isinstance(n, (ast.Name, ast.Attribute))
                        or (isinstance(n, ast.Constant) and isinstance(n.value, str))
                    ]
        return any(is_cosine_name(n) for n in named)

    VALID = [
        # the correct annealing factor
        Valid(
            """
            import math

            class CosineAnnealingLR:
                def get_lr(self):
                    return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * self.t / self.T)) / 2
            """
        ),
        # torch's recursive form: the one-step increment `pi / T_max` at a restart
        Valid(
            """
            import math

            class CosineAnnealingLR:
                def get_lr(self):
                    return [
                        group["lr"] + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                        for base_lr, group in zip(self.base_lrs, self.optimizer.param_groups)
                    ]
            """
        ),
        # a warm-up ramp named as such
        Valid(
            """
            import math

            def cosine_warmup(step, warmup_steps, base_lr):
                return base_lr * (1 - math.cos(math.pi * step / warmup_steps)) / 2
            """
        ),
        Valid(
            """
            import math

            class CosineDecay:
                def lr_at(self, step):
                    if step < self.warmup_steps:
                        warmup_factor = 0.5 * (1 - math.cos(math.pi * step / self.warmup_steps))
                        return self.base_lr * warmup_factor
                    return self.base_lr
            """
        ),
        # transformers' WSD schedule: a cosine warm-up inside `if step < num_warmup_steps`
        Valid(
            """
            import math

            def _get_wsd_cosine_decay_lambda(current_step, *, num_warmup_steps, lr):
                if current_step < num_warmup_steps:
                    progress = float(current_step) / float(max(1, num_warmup_steps))
                    factor = 0.5 * (1.0 - math.cos(math.pi * progress))
                    return factor * lr
                return lr
            """
        ),
        # yolov5/ultralytics `one_cycle`: interpolation between caller-given endpoints
        Valid(
            """
            import math

            def one_cycle_cosine(y1=0.0, y2=1.0, steps=100):
                return lambda x: ((1 - math.cos(x * math.pi / steps)) / 2) * (y2 - y1) + y1
            """
        ),
        Valid(
            """
            import math

            def cosine_anneal(start_lr, end_lr, pct):
                return start_lr + (end_lr - start_lr) * (1 - math.cos(math.pi * pct)) / 2
            """
        ),
        # torch's SWALR._cosine_anneal: the factor is an interpolation weight, returned bare
        Valid(
            """
            import math

            class SWALR:
                @staticmethod
                def _cosine_anneal(t):
                    return (1 - math.cos(math.pi * t)) / 2
            """
        ),
        # subtracted from the maximum: this decays, correctly
        Valid(
            """
            import math

            def cosine_lr(t, T, base_lr, eta_min):
                drop = (base_lr - eta_min) * (1 - math.cos(math.pi * t / T)) / 2
                return base_lr - drop
            """
        ),
        Valid(
            """
            import math

            def cosine_lr(t, T, base_lr):
                return base_lr * (1 - (1 - math.cos(math.pi * t / T)) / 2)
            """
        ),
        # a name that does not say cosine/annealing/decay
        Valid(
            """
            import math

            def schedule(t, T, base_lr):
                return base_lr * (1 - math.cos(math.pi * t / T)) / 2
            """
        ),
        # not an LR: a momentum / KL-weight ramp, a Hann window
        Valid(
            """
            import math
            import numpy as np

            class CosineMomentum:
                def step(self):
                    self.momentum = self.base_momentum * (1 - math.cos(math.pi * self.t / self.T)) / 2

            def kl_anneal(step, total, max_beta):
                return max_beta * 0.5 * (1 - math.cos(math.pi * step / total))

            def cosine_window(n, length):
                return 0.5 * (1 - np.cos(2 * np.pi * n / length))
            """
        ),
        # ignite's CosineAnnealingScheduler: start_value -> end_value, given by the caller
        Valid(
            """
            import math

            class CosineAnnealingScheduler:
                def get_param(self):
                    cycle_progress = self.event_index / self.cycle_size
                    return self.start_value + ((self.end_value - self.start_value) / 2) * (1 - math.cos(math.pi * cycle_progress))
            """
        ),
        # BYOL-style target decay: interpolation through a local
        Valid(
            """
            import math

            def target_decay(self, step):
                progress = min(step / self.total_steps, 1.0)
                interpolation = 0.5 * (1.0 - math.cos(math.pi * progress))
                return self.base_decay + (self.final_decay - self.base_decay) * interpolation
            """
        ),
        # a warm-up scheduler: the cosine ramp is its warm-up, before the returning branch
        Valid(
            """
            import math

            class CosineWarmupLR:
                def get_lr(self):
                    if self.last_epoch >= self.warmup_steps:
                        return self.base_lrs
                    return [lr * (1 - math.cos(math.pi * self.last_epoch / self.warmup_steps)) / 2 for lr in self.base_lrs]
            """
        ),
        Valid(
            """
            import math

            class CosineLR:
                def get_lr(self):
                    if self.last_epoch >= self.warmup_steps:
                        return [self.eta_min + (lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T)) / 2 for lr in self.base_lrs]
                    return [lr * (1 - math.cos(math.pi * self.last_epoch / self.warmup_steps)) / 2 for lr in self.base_lrs]
            """
        ),
        # a warm-up ramp to a peak given separately (one-cycle phase 1)
        Valid(
            """
            import math

            class OneCycleCosine:
                def lr_at(self, t):
                    return self.initial_lr + (self.max_lr - self.initial_lr) * (1 - math.cos(math.pi * t / self.T)) / 2
            """
        ),
        # `1 + cos`
        Valid(
            """
            import torch

            def cosine_decay(lr, t, T):
                return lr * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * t / T)))
            """
        ),
    ]
    INVALID = [
        # the seed: the "checked" CosineAnnealingWarmbootingLR.step
        Invalid(
            """
            import math

            class CosineAnnealingWarmbootingLR:
                def step(self, external_iter=None):
                    iters = self.iters - self.warmup_iters
                    scale = 1.0
                    if self.lf is None:
                        self.base_lr= scale * self.base_lr * ((((1 - math.cos(iters * math.pi / self.gap)) / 2) ** 1.0) * (1.0 - self.eta_min) + self.eta_min)
                    else:
                        self.base_lr = scale * self.base_lr * self.lf(iters, self.gap)
                    return self.base_lr
            """,
            fixed="""
            import math

            class CosineAnnealingWarmbootingLR:
                def step(self, external_iter=None):
                    iters = self.iters - self.warmup_iters
                    scale = 1.0
                    if self.lf is None:
                        self.base_lr= scale * self.base_lr * ((((1 + math.cos(iters * math.pi / self.gap)) / 2) ** 1.0) * (1.0 - self.eta_min) + self.eta_min)
                    else:
                        self.base_lr = scale * self.base_lr * self.lf(iters, self.gap)
                    return self.base_lr
            """,
            line=8,
            count=1,
        ),
        # through a local factor, `from math import cos, pi`
        Invalid(
            """
            from math import cos, pi

            class CosineAnnealingLR:
                def get_lr(self):
                    f = (1 - cos(pi * self.T_cur / self.T_max)) / 2
                    return [self.eta_min + (base_lr - self.eta_min) * f for base_lr in self.base_lrs]
            """,
            fixed="""
            from math import cos, pi

            class CosineAnnealingLR:
                def get_lr(self):
                    f = (1 + cos(pi * self.T_cur / self.T_max)) / 2
                    return [self.eta_min + (base_lr - self.eta_min) * f for base_lr in self.base_lrs]
            """,
            line=5,
        ),
        # `0.5 * (1 - np.cos(...))` after the warm-up branch
        Invalid(
            """
            import numpy as np

            def cosine_schedule_with_warmup(step, warmup, total, max_lr, min_lr=0.0):
                if step < warmup:
                    return max_lr * step / warmup
                else:
                    return min_lr + 0.5 * (max_lr - min_lr) * (1 - np.cos(np.pi * (step - warmup) / (total - warmup)))
            """,
            fixed="""
            import numpy as np

            def cosine_schedule_with_warmup(step, warmup, total, max_lr, min_lr=0.0):
                if step < warmup:
                    return max_lr * step / warmup
                else:
                    return min_lr + 0.5 * (max_lr - min_lr) * (1 + np.cos(np.pi * (step - warmup) / (total - warmup)))
            """,
            line=7,
        ),
        # torch.cos through `import torch as T`, `(1 - cos) * 0.5`, group["lr"]
        Invalid(
            """
            import math
            import torch as T

            class LinearDecayThenCos:
                def step(self):
                    for group in self.optimizer.param_groups:
                        group["lr"] = group["initial_lr"] * (1. - T.cos(T.tensor(math.pi * self.t / self.T))) * 0.5
            """,
            fixed="""
            import math
            import torch as T

            class LinearDecayThenCos:
                def step(self):
                    for group in self.optimizer.param_groups:
                        group["lr"] = group["initial_lr"] * (1. + T.cos(T.tensor(math.pi * self.t / self.T))) * 0.5
            """,
            line=7,
        ),
        # past a warm-up branch that returns, in a warm-up-named class
        Invalid(
            """
            import math

            class CosineWarmupLR:
                def get_lr(self):
                    if self.last_epoch < self.warmup_steps:
                        return [lr * self.last_epoch / self.warmup_steps for lr in self.base_lrs]
                    t = self.last_epoch - self.warmup_steps
                    return [lr * (1 - math.cos(math.pi * t / self.T)) / 2 for lr in self.base_lrs]
            """,
            fixed="""
            import math

            class CosineWarmupLR:
                def get_lr(self):
                    if self.last_epoch < self.warmup_steps:
                        return [lr * self.last_epoch / self.warmup_steps for lr in self.base_lrs]
                    t = self.last_epoch - self.warmup_steps
                    return [lr * (1 + math.cos(math.pi * t / self.T)) / 2 for lr in self.base_lrs]
            """,
            line=8,
        ),
        # a lambda named after the schedule
        Invalid(
            """
            import math

            cosine_lr = lambda e, lr, T: lr * (1 - math.cos(math.pi * e / T)) / 2
            """,
            fixed="""
            import math

            cosine_lr = lambda e, lr, T: lr * (1 + math.cos(math.pi * e / T)) / 2
            """,
            line=3,
        ),
    ]

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not self._is_one_minus_cos(node):
            return
        ancestors = list(self.context.stack)
        scope = self._scope_names(ancestors)
        if not any(is_cosine_name(n) for n in scope):
            return
        region = _warmup_region(ancestors, node)
        if region == "warmup":
            return
        if any(is_warmup_name(n) for n in scope) and region != "after":
            return
        amp = self._amplitude(node, ancestors)
        if amp is None:
            return
        where = self._scope_label(ancestors) or scope[0]
        op = node.operator
        fix = self.make_fix(
            "Use `1 + cos(...)` so the factor decays from 1 to 0",
            (
                node,
                node.with_changes(
                    operator=cst.Add(
                        whitespace_before=op.whitespace_before,
                        whitespace_after=op.whitespace_after,
                    )
                ),
            ),
        )
        self.report(
            node,
            self.message.format(amp=f"`{self.context.code(amp).strip()}`", scope=where),
            fix=fix,
            help="write the annealing factor as `(1 + cos(pi * t / T)) / 2`",
        )

    # ---------------------------------------------------------------- matching

    def _is_one_minus_cos(self, node: cst.BinaryOperation) -> bool:
        if not isinstance(node.operator, cst.Subtract):
            return False
        left = node.left
        if not (isinstance(left, (cst.Integer, cst.Float)) and ONE.match(left.value) and not left.lpar):
            return False
        right = node.right
        if not isinstance(right, cst.Call) or self.context.qualname(right.func) not in COS_FUNCTIONS:
            return False
        if len(right.args) != 1:
            return False
        return self._grows_with_step(right.args[0].value)

    def _grows_with_step(self, arg: cst.BaseExpression) -> bool:
        """`pi * t / T` (pi times something that varies), not `pi / T_max`."""
        arg = self._unwrap(arg)
        numerator: list[cst.BaseExpression] = []
        denominator: list[cst.BaseExpression] = []
        self._factors(arg, numerator, denominator)
        if not any(self._is_pi(f) for f in numerator):
            return False
        return any(not self._is_pi(f) and not isinstance(f, (cst.Integer, cst.Float)) for f in numerator)

    def _factors(self, node, numerator, denominator) -> None:
        node = self._unwrap(node)
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
            self._factors(node.left, numerator, denominator)
            self._factors(node.right, numerator, denominator)
        elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
            self._factors(node.left, numerator, denominator)
            self._factors(node.right, denominator, numerator)
        else:
            numerator.append(node)

    def _unwrap(self, node: cst.BaseExpression) -> cst.BaseExpression:
        while (
            isinstance(node, cst.Call)
            and len(node.args) == 1
            and node.args[0].keyword is None
            and (self.context.qualname(node.func) or dotted_name(node.func)) in WRAPPER_CALLS
        ):
            node = node.args[0].value
        return node

    def _is_pi(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.Float):
            return node.value.startswith("3.14")
        return self.context.qualname(node) in PI_CONSTANTS

    # ------------------------------------------------------------------ names

    def _scope_names(self, ancestors: list[cst.CSTNode]) -> list[str]:
        """Enclosing function, class and lambda-variable names, innermost first."""
        names: list[str] = []
        for i in range(len(ancestors) - 1, -1, -1):
            a = ancestors[i]
            if isinstance(a, (cst.FunctionDef, cst.ClassDef)):
                names.append(a.name.value)
            elif isinstance(a, cst.Lambda) and i > 0:
                owner = ancestors[i - 1]
                if isinstance(owner, cst.Assign) and owner.value is a:
                    for t in owner.targets:
                        name = _name_of(t.target)
                        if name:
                            names.append(name)
        return names

    def _scope_label(self, ancestors: list[cst.CSTNode]) -> str:
        """`CosineAnnealingLR.get_lr` for the innermost function and its classes."""
        return ".".join(
            a.name.value for a in ancestors if isinstance(a, (cst.ClassDef, cst.FunctionDef))
        )

    # -------------------------------------------------------------- data flow

    def _amplitude(self, node: cst.CSTNode, ancestors: list[cst.CSTNode]) -> cst.CSTNode | None:
        """The LR-like amplitude the factor scales, following locals bound once."""
        func = next((a for a in reversed(ancestors) if isinstance(a, cst.FunctionDef)), None)
        hits: list[cst.CSTNode] = []
        pending = [(node, ancestors, 0)]
        while pending:
            start, path, hops = pending.pop()
            outcome, value = _walk_up(start, path)
            if outcome == "flip":
                return None
            if outcome == "hit":
                hits.append(value)
            elif outcome == "var":  # bound to a local: follow its uses
                name, assign, hit = value
                if hit is not None:
                    hits.append(hit)
                if func is None or hops >= MAX_HOPS or _bindings(func, name) != 1:
                    continue
                for use, use_path in _uses(func, name, assign):
                    pending.append((use, use_path, hops + 1))
        return hits[0] if hits else None


def _walk_up(node: cst.CSTNode, ancestors: list[cst.CSTNode]):
    """Follow the factor outwards through arithmetic.

    Returns ("flip", None) when the factor is subtracted or negated (the result decays) or
    lands in a warm-up-named target, ("hit", amplitude) when it multiplies an LR-like
    amplitude, ("var", (name, assignment, amplitude or None)) when the expression is bound
    to a plain local, ("none", None) otherwise.
    """
    cur = node
    hit = None
    i = len(ancestors) - 1
    while i >= 0:
        p = ancestors[i]
        if isinstance(p, cst.BinaryOperation):
            op = p.operator
            if isinstance(op, cst.Multiply):
                other = p.right if cur is p.left else p.left
                hit = hit or lr_like(other)
            elif isinstance(op, (cst.Divide, cst.Power)):
                if cur is not p.left:
                    break
            elif isinstance(op, cst.Subtract):
                if cur is not p.left:
                    return "flip", None
            elif not isinstance(op, cst.Add):
                break
        elif isinstance(p, cst.UnaryOperation):
            if isinstance(p.operator, cst.Minus):
                return "flip", None
            if not isinstance(p.operator, cst.Plus):
                break
        elif isinstance(p, cst.Arg) and i > 0:
            call = ancestors[i - 1]
            if not (
                isinstance(call, cst.Call)
                and p.keyword is None
                and dotted_name(call.func) in PASSTHROUGH_CALLS
            ):
                break
            cur = call
            i -= 2
            continue
        elif isinstance(p, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
            targets = (
                [t.target for t in p.targets] if isinstance(p, cst.Assign) else [p.target]
            )
            for t in targets:
                name = _name_of(t)
                if name and is_warmup_name(name):
                    return "flip", None  # a warm-up value: treat as "do not report"
            if isinstance(p, cst.AugAssign):
                if isinstance(p.operator, cst.SubtractAssign):
                    return "flip", None
                if isinstance(p.operator, cst.MultiplyAssign):
                    hit = hit or lr_like(p.target)
                break
            if (
                isinstance(p, cst.Assign)
                and len(p.targets) == 1
                and isinstance(p.targets[0].target, cst.Name)
            ):
                return "var", (p.targets[0].target.value, p, hit)
            break
        else:
            break
        cur = p
        i -= 1
    return ("hit", hit) if hit is not None else ("none", None)


def _warmup_region(ancestors: list[cst.CSTNode], node: cst.CSTNode) -> str | None:
    """"warmup" inside a warm-up branch, "after" past one, else None.

    Past one means the `else` of `if t < warmup:` (or the body of `if t >= warmup:`), or a
    statement that follows, in the same block, an `if t < warmup:` whose body returns.
    """
    region = None
    chain = [*ancestors, node]
    for i, a in enumerate(ancestors):
        nxt = chain[i + 1]
        if isinstance(a, cst.IndentedBlock):
            past = _past_returning_branch(a, nxt)
            if past is True:
                return "warmup"  # after `if t >= warmup: return ...`
            if past is False:
                region = "after"  # after `if t < warmup: return ...`
            continue
        if isinstance(a, (cst.If, cst.While)):
            test, body = a.test, a.body
        elif isinstance(a, cst.IfExp):
            test, body = a.test, a.body
        else:
            continue
        if nxt is test:
            continue
        if not any(is_warmup_name(n) for n in _identifiers(test)):
            continue
        body_is_warm = _body_is_warmup(test)
        if body_is_warm is None:
            return "warmup"  # a test about warm-up we cannot read: stay quiet
        in_body = nxt is body
        if in_body == body_is_warm:
            return "warmup"
        region = "after"
    return region


def _past_returning_branch(block: cst.IndentedBlock, stmt: cst.CSTNode) -> bool | None:
    """Whether stmt follows a returning `if` about warm-up in block.

    False after `if t < warmup: return ...` (stmt runs after the warm-up), True after
    `if t >= warmup: return ...` (stmt runs during it), None when neither precedes stmt.
    """
    found = None
    for earlier in block.body:
        if earlier is stmt:
            return found
        if (
            isinstance(earlier, cst.If)
            and earlier.orelse is None
            and any(is_warmup_name(n) for n in _identifiers(earlier.test))
            and _ends_in_return(earlier.body)
        ):
            body_is_warm = _body_is_warmup(earlier.test)
            if body_is_warm is None:
                return True  # unclear: treat what follows as possibly warm-up
            found = not body_is_warm
    return found


def _ends_in_return(suite: cst.BaseSuite) -> bool:
    if isinstance(suite, cst.SimpleStatementSuite):
        last = suite.body[-1] if suite.body else None
    else:
        stmt = suite.body[-1] if suite.body else None
        last = stmt.body[-1] if isinstance(stmt, cst.SimpleStatementLine) and stmt.body else None
    return isinstance(last, (cst.Return, cst.Raise))


def _body_is_warmup(test: cst.BaseExpression) -> bool | None:
    """For `t < warmup` True, for `t >= warmup` False, None when unclear."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    comp = test.comparisons[0]
    left_warm = any(is_warmup_name(n) for n in _identifiers(test.left))
    right_warm = any(is_warmup_name(n) for n in _identifiers(comp.comparator))
    if left_warm == right_warm:
        return None
    op = comp.operator
    if isinstance(op, (cst.LessThan, cst.LessThanEqual)):
        below = True
    elif isinstance(op, (cst.GreaterThan, cst.GreaterThanEqual)):
        below = False
    else:
        return None
    # `t < warmup`: the body is the warm-up; `warmup > t`: same
    return below if right_warm else not below


def _identifiers(node: cst.CSTNode) -> list[str]:
    out: list[str] = []

    class _Collect(Visitor):
        def visit_Name(self, n: cst.Name) -> None:
            out.append(n.value)

        def visit_SimpleString(self, n: cst.SimpleString) -> None:
            pass

    walk(node, _Collect())
    return out


def _bindings(func: cst.FunctionDef, name: str) -> int:
    count = 0

    class _Count(BindingTargets):
        def bind(self, bound: str) -> None:
            nonlocal count
            count += bound == name

        def visit_Param(self, node: cst.Param) -> None:
            self._add(node.name)

    walk(func, _Count())
    return count


def _uses(func: cst.FunctionDef, name: str, assign: cst.CSTNode):
    """Each load of `name` in func (outside the binding itself), with its ancestors."""
    found: list[tuple[cst.CSTNode, list[cst.CSTNode]]] = []

    class _Find(Visitor):
        def __init__(self) -> None:
            self.path: list[cst.CSTNode] = []

        def on_visit(self, node: cst.CSTNode) -> bool:
            if isinstance(node, cst.Name) and node.value == name:
                parent = self.path[-1] if self.path else None
                is_attr = isinstance(parent, cst.Attribute) and parent.attr is node
                is_kw = isinstance(parent, cst.Arg) and parent.keyword is node
                is_target = isinstance(parent, cst.AssignTarget)
                if not (is_attr or is_kw or is_target):
                    found.append((node, list(self.path)))
            if isinstance(node, (cst.FunctionDef, cst.Lambda, cst.ClassDef)) and node is not func:
                return False
            self.path.append(node)
            return True

        def on_leave(self, original_node: cst.CSTNode) -> None:
            if self.path and self.path[-1] is original_node:
                self.path.pop()

    walk(func, _Find())
    return found
