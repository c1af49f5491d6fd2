"""
## What it does
Flags a counter attribute of a scheduler-like class (a class with `step`/`step_*`/`get_lr`
methods, or a subclass of torch's `LRScheduler`) that the LR formula reads but that nothing
ever advances. A counter is an attribute named like one (`T_cur`, `last_epoch`, `iters`,
`step_count`, `current_step`...) or an attribute initialised to an integer literal that a
step method resets. It counts as advanced when any method increments it (`+=`, `-=`,
`self.x = self.x + 1`), assigns it from something that changes (a method argument such as
`epoch`, another counter), when code outside the class writes it (`sched.T_cur += 1`),
or when torch's `LRScheduler.step()` advances it for a subclass (`last_epoch`,
`_step_count`). A subclass that overrides `step()` without calling `super().step()` loses
that, and its `last_epoch` is reported too.

## Why is this bad?
The formula is evaluated at the same point on every call, so the LR never moves (or moves
only through some other state), and a cosine restart guarded by `if self.T_cur == self.T_max`
never triggers. Training runs at a constant LR without any error.

## Example
```python
class CosineAnnealingWarmRestarts:
    def __init__(self, optimizer, T_max, eta_min=0, last_epoch=-1):
        self.T_cur = float(last_epoch)
        ...

    def get_lr(self):
        if self.T_cur == self.T_max:
            self.T_cur = 0
        return [self.eta_min + (b - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_max)) / 2
                for b in self.base_lrs]
```

## Use instead
```python
class CosineAnnealingWarmRestarts:
    ...

    def step(self):
        self.T_cur += 1
        if self.T_cur >= self.T_max:
            self.T_cur = 0
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
```

## Fix safety
There is no fix: where the increment belongs (in `step()`, per batch or per epoch) depends
on how the class is driven, so the rule only reports.

## Known false positives
A counter advanced somewhere the rule cannot see (another module, a parent class defined
elsewhere) looks never advanced. To stay quiet in those cases the rule skips classes with a
base class it cannot read (anything but torch's `LRScheduler`/`_LRScheduler`, local
classes and `object`; subclasses of a concrete torch scheduler such as `StepLR` are
skipped too), classes that `setattr` computed names outside initialisation, and counters
written anywhere in the file on another object or inside a nested function. It also skips
classes that never mention a learning rate (a trainer's or an environment's `step()`),
reads that only add an offset to a counter that does move (`self.iters + self.last_epoch`),
and attributes that are only compared in an `if` rather than used in the formula. A
counter that a step method resets to an integer literal without a guard is left to TL001
(`scheduler-counter-reset`), whose fix advances it. A scheduler meant to be rebuilt for
every epoch, with the counter passed to its constructor, is reported; suppress it with
`# trainlint: ignore[TL009]`.
"""

from __future__ import annotations

import ast
import re

import libcst as cst

from trainlint import screen as sc
from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import (
    SCHEDULER_BASE_NAMES,
    SCHEDULER_MODULE,
    attribute_writes,
    base_names,
    int_literal,
    is_scheduler_like,
    is_step_method,
    local_classes,
    methods,
    parameter_names,
    self_attribute,
)
from trainlint.rules.tl008_scheduler_lr_compounding import (
    COUNTER_NAME,
    is_init_like,
    is_steplike,
    kids,
    local_bindings,
    nodes,
    reads,
    subscript_key,
    terms,
)

# Counters that torch's LRScheduler.step() advances for its subclasses.
TORCH_ADVANCED = {"last_epoch", "_step_count"}
NEUTRAL_BASES = {"object", "abc.ABC", "ABC", "typing.Generic", "Generic"}
_BUILTIN_CASTS = {"float", "int", "round", "abs", "min", "max"}
_LR_NAME = re.compile(r"(?:^|_)lrs?(?:$|_|\d)|learning_rate", re.I)


class SchedulerCounterNeverAdvanced(Rule):
    __doc__ = __doc__
    code = "TL009"
    name = "scheduler-counter-never-advanced"
    message = "`self.{attr}` is read by {method}() but never advanced; increment it in step()"
    message_override = (
        "`self.{attr}` is read by {method}() but never advanced: step() overrides "
        "LRScheduler.step() without calling it; call `super().step()` or increment it in step()"
    )
    tokens = (("*step*", "*get_lr*", "*lrscheduler*"),)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """A class with a step-like method that reads `<first parameter>.X`, where X is
        named like a counter or is set to an integer literal somewhere (a reset state)."""
        int_set: set[str] | None = None
        for klass in index.nodes(ast.ClassDef):
            for func in sc.methods(klass):
                if not is_steplike(func.name) or is_init_like(func.name):
                    continue
                args = func.args
                params = [*args.posonlyargs, *args.args, *args.kwonlyargs]
                params += [a for a in (args.vararg, args.kwarg) if a is not None]
                if not params:
                    continue
                self_name = params[0].arg  # as `parameter_names(func)[0]`
                for node in sc.walk(func):
                    if not (
                        isinstance(node, ast.Attribute)
                        and isinstance(node.value, ast.Name)
                        and node.value.id == self_name
                    ):
                        continue
                    if COUNTER_NAME.fullmatch(node.attr):
                        return True
                    if int_set is None:
                        int_set = _ast_int_attributes(index)
                    if node.attr in int_set:
                        return True
        return False

    VALID = [
        # last_epoch is advanced by torch's LRScheduler.step()
        Valid(
            """
            import math
            from torch.optim.lr_scheduler import LRScheduler
            class Cosine(LRScheduler):
                def get_lr(self):
                    return [b * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2 for b in self.base_lrs]
            """
        ),
        # ... also through a local base class, and through torch's private name
        Valid(
            """
            import torch
            class Base(torch.optim.lr_scheduler._LRScheduler):
                pass
            class Warm(Base):
                def get_lr(self):
                    return [b * self.last_epoch / self.warmup for b in self.base_lrs]
            """
        ),
        # a torch subclass recomputing its cycle counter from last_epoch on every call
        Valid(
            """
            import math
            from torch.optim.lr_scheduler import _LRScheduler
            class Cyclic(_LRScheduler):
                def __init__(self, optimizer, T_0, last_epoch=-1):
                    self.T_0 = T_0
                    self.T_cur = last_epoch
                    super().__init__(optimizer, last_epoch)
                def get_lr(self):
                    self.T_cur = self.last_epoch % self.T_0
                    return [b * (1 + math.cos(math.pi * self.T_cur / self.T_0)) / 2 for b in self.base_lrs]
            """
        ),
        # step() overridden, but torch's step still runs through super()
        Valid(
            """
            from torch.optim.lr_scheduler import _LRScheduler
            class GradualWarmup(_LRScheduler):
                def get_lr(self):
                    return [b * self.last_epoch / self.total for b in self.base_lrs]
                def step(self, epoch=None, metrics=None):
                    if self.finished and self.after_scheduler:
                        return self.after_scheduler.step(epoch)
                    return super(GradualWarmup, self).step(epoch)
            """
        ),
        # a local base class advances the counter
        Valid(
            """
            class Base:
                def __init__(self):
                    self.t = 0
                def step(self):
                    self.t += 1
                    self.apply(self.get_lr())
            class Linear(Base):
                def get_lr(self):
                    return self.base * self.t / self.total
            """
        ),
        # derived from another counter, or assigned from the step argument
        Valid(
            """
            import math
            class Sched:
                def __init__(self, optimizer, T_0, last_epoch=-1):
                    self.last_epoch = last_epoch
                    self.T_cur = last_epoch
                def step(self, epoch=None):
                    if epoch is None:
                        epoch = self.last_epoch + 1
                    self.T_cur = epoch % self.T_0
                    self.last_epoch = epoch
                def get_lr(self):
                    return [b * (1 + math.cos(math.pi * self.T_cur / self.T_0)) / 2 for b in self.base_lrs]
            """
        ),
        # torch's CosineAnnealingWarmRestarts: T_cur = T_cur + 1, and a wrap-around
        Valid(
            """
            import math
            from torch.optim.lr_scheduler import LRScheduler
            class CosineAnnealingWarmRestarts(LRScheduler):
                def __init__(self, optimizer, T_0, last_epoch=-1):
                    self.T_cur = last_epoch
                    super().__init__(optimizer, last_epoch)
                def get_lr(self):
                    return [b * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2 for b in self.base_lrs]
                def step(self, epoch=None):
                    if epoch is None:
                        self.T_cur = self.T_cur + 1
                        if self.T_cur >= self.T_i:
                            self.T_cur = self.T_cur % self.T_i
            """
        ),
        # advanced by the training loop in the same file
        Valid(
            """
            class Sched:
                def __init__(self):
                    self.iters = 0
                def get_lr(self):
                    return self.base_lr * self.iters / 100
            sched = Sched()
            for batch in range(10):
                sched.iters += 1
            """
        ),
        # a parent class we cannot read (timm's Scheduler) may advance it
        Valid(
            """
            from .scheduler import Scheduler
            class Poly(Scheduler):
                def _get_lr(self, t):
                    return [v * (1 - self.t_in_epochs) for v in self.base_values]
                def get_lr(self):
                    return self.base * self.current_step
            """
        ),
        # not about learning rates: an environment's step() returning its counter
        Valid(
            """
            class Env:
                def __init__(self):
                    self.t = 0
                def step(self, action):
                    return self.obs(action), self.t
            """
        ),
        # a counter that is only compared (not part of the formula) is left alone
        Valid(
            """
            class Sched:
                def __init__(self):
                    self.cnt = 0
                def step(self):
                    if self.cnt > 10:
                        print("late")
                    return self.base_lr
            """
        ),
        # the seed page's first snippet: last_epoch is an offset added to a counter that moves
        Valid(
            """
            import math
            class CosineAnnealingWarmbootingLR:
                def __init__(self, optimizer):
                    self.optimizer = optimizer
                    self.iters = -1
                    self.last_epoch = 0
                    self.base_lr = [group['lr'] for group in optimizer.param_groups]
                def step(self, external_iter=None):
                    self.iters += 1
                    if external_iter is not None:
                        self.iters = external_iter
                    iters = self.iters + self.last_epoch
                    for group, lr in zip(self.optimizer.param_groups, self.base_lr):
                        group['lr'] = lr * (1 + math.cos(iters * math.pi / self.gap)) / 2
            """
        ),
        # an unguarded literal reset is TL001's report
        Valid(
            """
            class Sched:
                def __init__(self):
                    self.iters = -1
                def step(self):
                    self.iters = 1
                    return self.base_lr * self.iters / self.total
            """
        ),
        # hyper-parameters are not counters
        Valid(
            """
            class Sched:
                def __init__(self, total, warmup=5):
                    self.warmup = 5
                    self.total = total
                    self.t = 0
                def step(self):
                    self.t += 1
                    return self.base_lr * min(1, self.t / self.warmup) * (1 - self.t / self.total)
            """
        ),
    ]
    INVALID = [
        # the seed page, second snippet
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
            line=9,
            count=1,
        ),
        # a torch subclass: last_epoch is advanced by the parent, T_cur is not
        Invalid(
            """
            import torch as T
            class Restarts(T.optim.lr_scheduler.LRScheduler):
                def __init__(self, optimizer, T_0):
                    self.T_0 = T_0
                    self.T_cur = 0
                    super().__init__(optimizer)
                def get_lr(self):
                    lrs = []
                    for b in self.base_lrs:
                        lrs.append(b * (1 - self.T_cur / self.T_0) * 0.9 ** self.last_epoch)
                    return lrs
            """,
            line=5,
            count=1,
        ),
        # an int-initialised state variable that is reset under a guard but never advanced
        Invalid(
            """
            from torch.optim.lr_scheduler import _LRScheduler
            class Warm(_LRScheduler):
                def __init__(self, optimizer, period):
                    self.pos = 0
                    self.period = period
                    super().__init__(optimizer)
                def get_lr(self):
                    if self.pos >= self.period:
                        self.pos = 0
                    ratio = self.pos / self.period
                    return [b * ratio for b in self.base_lrs]
            """,
            line=4,
        ),
        # step() overridden without super().step(): torch no longer advances last_epoch
        Invalid(
            """
            from torch.optim import lr_scheduler
            class Warmup(lr_scheduler.LRScheduler):
                def __init__(self, optimizer, warmup):
                    self.warmup = warmup
                    super().__init__(optimizer)
                def get_lr(self):
                    return [b * min(1.0, (self.last_epoch + 1) / self.warmup) for b in self.base_lrs]
                def step(self):
                    for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
                        group['lr'] = lr
            """,
            line=7,
        ),
        # a plain class that writes the LR into the optimizer itself
        Invalid(
            """
            class Linear:
                def __init__(self, optimizer, total):
                    self.optimizer = optimizer
                    self.current_step = 0
                    self.total = total
                def step(self):
                    for g in self.optimizer.param_groups:
                        g['lr'] = g['initial_lr'] * (1 - self.current_step / self.total)
            """,
            line=4,
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        module, imports = self.context.module, self.context.imports
        if not is_scheduler_like(node, imports, module):
            return
        lineage = _lineage(node, imports, module)
        if lineage is None:
            return
        related, ancestors, torch_parent = lineage
        if not torch_parent and not any(_mentions_lr(c) for c in related):
            return  # a `step` method alone (a trainer, an RL environment) is not a scheduler
        writes: dict = {}
        for cls in related:
            for attr, ws in attribute_writes(cls).items():
                writes.setdefault(attr, []).extend(ws)
        if _sets_computed_names(related):
            return
        parent_advances = torch_parent and _torch_step_runs(ancestors)
        if torch_parent:
            for attr in TORCH_ADVANCED:  # initialised by LRScheduler.__init__
                writes.setdefault(attr, [])
        cache = self.__dict__.setdefault("_external", {})
        if id(module) not in cache:
            cache[id(module)] = _external_writes(module)
        external = cache[id(module)]
        hyper = {
            a
            for a, ws in writes.items()
            if all(is_init_like(w.method) for w in ws) and not (torch_parent and a in TORCH_ADVANCED)
        }
        own_methods = methods(node)
        moving = {
            a
            for a, ws in writes.items()
            if any(_advancing(w, a, hyper) for w in ws)
            or a in external
            or (parent_advances and a in TORCH_ADVANCED)
        }
        candidates = _formula_reads(node, moving)
        reported: set[str] = set()
        for attr, (method, read) in candidates.items():
            if attr in reported or attr not in writes or attr in moving:
                continue
            ws = writes[attr]
            if not (COUNTER_NAME.fullmatch(attr) or _reset_state_variable(ws)):
                continue
            if _left_to_tl001(ws, own_methods, attr):
                continue
            reported.add(attr)
            if attr in TORCH_ADVANCED and torch_parent:
                message = self.message_override.format(attr=attr, method=method)
            else:
                message = self.message.format(attr=attr, method=method)
            # report where the counter is set up (its first write in __init__), else the read
            init_writes = [w for w in ws if w.method == "__init__" and w.method in own_methods]
            self.report(
                init_writes[0].statement if init_writes else read,
                message,
                help=f"add `self.{attr} += 1` to step(), once per scheduler step",
            )


# ---------------------------------------------------------------------- helpers


def _lineage(cls: cst.ClassDef, imports, module: cst.Module):
    """(the class, its local ancestors and local descendants; whether torch's LRScheduler is
    an ancestor), or None when some ancestor cannot be read."""
    local = local_classes(module)
    related: list[cst.ClassDef] = [cls]
    torch_parent = False
    todo = [cls]
    seen = {id(cls)}
    while todo:
        current = todo.pop()
        for base in base_names(current, imports):
            last = base.split(".")[-1]
            if last in SCHEDULER_BASE_NAMES and (
                base.startswith(SCHEDULER_MODULE + ".") or base == last or "lr_scheduler" in base
            ):
                torch_parent = True
                if base in local and id(local[base]) not in seen:
                    seen.add(id(local[base]))
                    related.append(local[base])
                    todo.append(local[base])
            elif base in local:
                if id(local[base]) not in seen:
                    seen.add(id(local[base]))
                    related.append(local[base])
                    todo.append(local[base])
            elif base in NEUTRAL_BASES:
                continue
            else:
                return None
    ancestors = list(related)
    # local descendants may advance a counter that the base class reads
    changed = True
    while changed:
        changed = False
        for other in local.values():
            if id(other) in seen:
                continue
            if any(b in local and id(local[b]) in seen for b in base_names(other, imports)):
                seen.add(id(other))
                related.append(other)
                changed = True
    return related, ancestors, torch_parent


def _torch_step_runs(ancestors: list[cst.ClassDef]) -> bool:
    """Whether torch's `LRScheduler.step()` still runs for the class: no local class on the
    way up overrides `step` without calling the parent's (`super().step()`)."""
    for cls in ancestors:
        if cls.name.value in SCHEDULER_BASE_NAMES:
            return True  # torch's own base, linted in torch's sources
        step = methods(cls).get("step")
        if step is not None:
            return _calls_parent_step(step)
    return True


def _calls_parent_step(func: cst.FunctionDef) -> bool:
    for n in nodes(func.body, nested_functions=True):
        if isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute) and n.func.attr.value == "step":
            receiver = n.func.value
            if isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Name) and receiver.func.value == "super":
                return True
            if isinstance(receiver, (cst.Name, cst.Attribute)) and n.args and isinstance(n.args[0].value, cst.Name) and n.args[0].value.value == "self":
                return True  # LRScheduler.step(self, ...)
    return False


def _mentions_lr(cls: cst.ClassDef) -> bool:
    """Whether the class touches learning rates: `param_groups`, or a name, attribute or key
    that says lr / learning_rate."""
    for n in nodes(cls, nested_functions=True):
        if isinstance(n, cst.Name) and (n.value == "param_groups" or _LR_NAME.search(n.value)):
            return True
        if isinstance(n, cst.SimpleString) and _LR_NAME.search(n.value.strip("'\"")):
            return True
    return False


def _sets_computed_names(classes: list[cst.ClassDef]) -> bool:
    """`setattr(self, name, v)` or `self.__dict__.update(...)` outside initialisation."""
    for cls in classes:
        for name, func in methods(cls).items():
            if is_init_like(name):
                continue
            for n in nodes(func.body):
                if isinstance(n, cst.Call):
                    f = n.func
                    if isinstance(f, cst.Name) and f.value == "setattr":
                        if len(n.args) < 2 or not isinstance(n.args[1].value, cst.SimpleString):
                            return True
                    if isinstance(f, cst.Attribute) and f.attr.value == "__setattr__":
                        if not n.args or not isinstance(n.args[0].value, cst.SimpleString):
                            return True
                    if (
                        isinstance(f, cst.Attribute)
                        and f.attr.value == "update"
                        and isinstance(f.value, cst.Attribute)
                        and f.value.attr.value == "__dict__"
                    ):
                        return True
    return False


def _external_writes(module: cst.Module) -> set[str]:
    """Attributes written on some object other than `self` (`sched.T_cur += 1`), through
    `setattr(x, "name", ...)`, or on `self` inside a nested function."""
    out: set[str] = set()

    def target_attrs(t: cst.CSTNode):
        if isinstance(t, (cst.Tuple, cst.List)):
            for el in t.elements:
                yield from target_attrs(el.value)
        elif isinstance(t, cst.Attribute):
            yield t

    for n in nodes(module, nested_functions=True):
        targets = []
        if isinstance(n, cst.Assign):
            targets = [t.target for t in n.targets]
        elif isinstance(n, (cst.AugAssign, cst.AnnAssign)):
            targets = [n.target]
        elif isinstance(n, cst.Call) and isinstance(n.func, cst.Name) and n.func.value == "setattr":
            if len(n.args) >= 2:
                key = n.args[1].value
                if isinstance(key, cst.SimpleString) and isinstance(key.evaluated_value, str):
                    out.add(key.evaluated_value)
        for t in targets:
            for a in target_attrs(t):
                if not (isinstance(a.value, cst.Name) and a.value.value == "self"):
                    out.add(a.attr.value)
    # writes to self.<x> inside functions nested in methods
    for cls in [s for s in nodes(module, nested_functions=True) if isinstance(s, cst.ClassDef)]:
        for func in methods(cls).values():
            for inner in nodes(func.body, nested_functions=True):
                if isinstance(inner, (cst.FunctionDef, cst.Lambda)):
                    for n in nodes(inner, nested_functions=True):
                        if isinstance(n, (cst.Assign, cst.AugAssign)):
                            ts = [t.target for t in n.targets] if isinstance(n, cst.Assign) else [n.target]
                            for t in ts:
                                for a in target_attrs(t):
                                    out.add(a.attr.value)
    return out


def _ast_int_attributes(index: sc.AstIndex) -> set[str]:
    """Attributes assigned an integer literal anywhere (`x.n = 0`, also unpacked)."""
    out = set()
    for target, value, _ in sc.assignments(index):
        if sc.int_literal(value) is not None:
            out.update(t.attr for t in sc.flatten_targets(target) if isinstance(t, ast.Attribute))
    return out


def _reset_state_variable(ws) -> bool:
    """Initialised to an int literal in `__init__` and reset to one in a step method."""
    return any(w.method == "__init__" and int_literal(w.value) is not None for w in ws) and any(
        is_steplike(w.method) and not w.augmented and int_literal(w.value) is not None for w in ws
    )


def _advancing(write, attr: str, hyper: set[str]) -> bool:
    """Whether a write can move the counter forward: an increment, or (outside
    initialisation) an assignment from anything but literals, the counter itself and
    hyper-parameters."""
    stmt = write.statement
    if write.augmented:
        return isinstance(stmt.operator, (cst.AddAssign, cst.SubtractAssign))
    if write.method == "__init__":
        return False
    value = write.value
    if value is None:
        return False
    if isinstance(stmt, cst.Assign) and (
        len(stmt.targets) != 1 or not isinstance(stmt.targets[0].target, cst.Attribute)
    ):
        return True  # unpacking or chained assignment: too complex to judge
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Add, cst.Subtract)):
        if self_attribute(value.left) == attr or self_attribute(value.right) == attr:
            return True
    return not _static(value, attr, hyper)


def _static(value: cst.BaseExpression, attr: str, hyper: set[str]) -> bool:
    """Literals, arithmetic over them, the counter itself and hyper-parameters."""
    for n in nodes(value, nested_functions=True):
        if isinstance(n, cst.Call):
            if not (isinstance(n.func, cst.Name) and n.func.value in _BUILTIN_CASTS):
                return False
        elif isinstance(n, (cst.Lambda, cst.Await, cst.Yield, cst.NamedExpr)):
            return False
    r = reads(value)
    if r.names - _BUILTIN_CASTS - {"self", "True", "False", "None"}:
        return False
    return all(a == attr or a in hyper for a in r.attrs)


def _left_to_tl001(ws, own_methods: dict, attr: str) -> bool:
    """TL001 reports an unguarded `self.x = <int>` in a step method when `__init__` set x to
    an int; its fix makes the counter advance, so this rule stays quiet."""
    if not any(w.method == "__init__" and int_literal(w.value) is not None for w in ws):
        return False
    for w in ws:
        if w.method not in own_methods or not is_step_method(w.method) or w.augmented:
            continue
        stmt = w.statement
        if not isinstance(stmt, cst.Assign) or len(stmt.targets) != 1 or int_literal(w.value) is None:
            continue
        if not _guarded_by(own_methods[w.method], stmt, attr):
            return True
    return False


def _guarded_by(func: cst.FunctionDef, stmt: cst.CSTNode, attr: str) -> bool:
    def walk(node: cst.CSTNode, tests: tuple) -> bool | None:
        if node is stmt:
            return any(attr in reads(t).attrs for t in tests)
        if isinstance(node, (cst.If, cst.While)):
            tests = tests + (node.test,)
        for child in kids(node):
            found = walk(child, tests)
            if found is not None:
                return found
        return None

    return bool(walk(func.body, ()))


def _formula_reads(cls: cst.ClassDef, moving: set[str]) -> dict[str, tuple[str, cst.Attribute]]:
    """`self` attributes read in the LR formula of the class's step methods: returned or
    yielded values, values stored under an `lr` name or key, and locals flowing into them.
    Maps each attribute to (method, first read). A read that is only an offset added to a
    counter that does move (`self.iters + self.last_epoch`) is left out."""
    out: dict[str, tuple[str, cst.Attribute]] = {}
    for name, func in methods(cls).items():
        if not is_steplike(name) or is_init_like(name):
            continue
        params = parameter_names(func)
        if not params:
            continue
        self_name = params[0]
        moving_params = {p for p in params[1:] if COUNTER_NAME.fullmatch(p)}
        sinks = _sinks(func)
        sink_ids: set[int] = set()
        for s in sinks:
            sink_ids |= {id(n) for n in nodes(s)}
        offsets: set[int] = set()
        for n in nodes(func.body):
            if (
                id(n) in sink_ids
                and isinstance(n, cst.BinaryOperation)
                and isinstance(n.operator, (cst.Add, cst.Subtract))
            ):
                parts = terms(n)
                if any(
                    self_attribute(t, self_name) in moving
                    or (isinstance(t, cst.Name) and t.value in moving_params)
                    for t in parts
                ):
                    offsets |= {id(t) for t in parts}
        for n in nodes(func.body):
            if id(n) in sink_ids and isinstance(n, cst.Attribute) and id(n) not in offsets:
                attr = self_attribute(n, self_name)
                if attr is not None and attr not in out:
                    out[attr] = (name, n)
    return out


def _is_lr_target(t: cst.CSTNode) -> bool:
    if isinstance(t, cst.Subscript):
        key = subscript_key(t)
        if key is not None:
            return bool(_LR_NAME.search(key))
        return _is_lr_target(t.value)
    if isinstance(t, cst.Name):
        return bool(_LR_NAME.search(t.value))
    if isinstance(t, cst.Attribute):
        return bool(_LR_NAME.search(t.attr.value))
    if isinstance(t, (cst.Tuple, cst.List)):
        return any(_is_lr_target(el.value) for el in t.elements)
    return False


def _sinks(func: cst.FunctionDef) -> list[cst.CSTNode]:
    sinks: list[cst.CSTNode] = []
    appends: dict[str, list[cst.CSTNode]] = {}
    for n in nodes(func.body):
        if isinstance(n, cst.Return) and n.value is not None:
            sinks.append(n.value)
        elif isinstance(n, (cst.Yield,)) and n.value is not None:
            sinks.append(n.value)
        elif isinstance(n, cst.Assign):
            if any(_is_lr_target(t.target) for t in n.targets):
                sinks.append(n.value)
        elif isinstance(n, (cst.AugAssign, cst.AnnAssign)):
            if n.value is not None and _is_lr_target(n.target):
                sinks.append(n.value)
        elif isinstance(n, cst.Call) and isinstance(n.func, cst.Attribute):
            f = n.func
            if f.attr.value in ("append", "extend", "insert") and isinstance(f.value, cst.Name):
                appends.setdefault(f.value.value, []).extend(a.value for a in n.args)
                if _LR_NAME.search(f.value.value):
                    sinks.extend(a.value for a in n.args)
            elif _LR_NAME.search(f.attr.value):
                sinks.extend(a.value for a in n.args)
    # locals flowing into a sink
    bindings = local_bindings(func)
    seen: set[str] = set()
    i = 0
    while i < len(sinks):
        for name in reads(sinks[i]).names:
            if name in seen:
                continue
            seen.add(name)
            sinks.extend(v for v in bindings.get(name, []) if v is not None)
            sinks.extend(appends.get(name, []))
        i += 1
    return sinks
