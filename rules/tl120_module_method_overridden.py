"""
## What it does
Flags a method of an `nn.Module` subclass that overrides one of `nn.Module`'s own methods,
`train`, `eval`, `to`, `cuda`, `parameters`, `zero_grad` or `state_dict`, in a way that
breaks the calls PyTorch and training code make to it:

- a signature that cannot take those calls: `def train(self, loader, epochs)` cannot be
  called as `model.train()` nor as `self.train(False)` (what `model.eval()` does), a
  `def eval(self, loader)` cannot be called as `model.eval()`, a `def state_dict(self)`
  cannot take the `destination=`, `prefix=` and `keep_vars=` its parent module passes;
- a `train` or `eval` that never sets the mode: no `super().train(...)`, no `.train(...)` or
  `.eval()` call and no assignment to `.training` in its body, so the call runs without
  switching dropout and batch norm between training and evaluation.

## Why is this bad?
`nn.Module.eval()` is `self.train(False)`, and `train(mode)` calls `train(mode)` on every
submodule; `state_dict()` calls each submodule's `state_dict` with keywords. A model that
reuses one of these names for its own training loop or evaluation routine breaks them:
`model.eval()` raises a `TypeError`, or, when the new method happens to accept the
argument (`def train(self, epochs=10)`), silently runs a training loop with
`epochs=False` and leaves the model in training mode. The same goes for a parent module
calling a child that redefined these names.

## Example
```python
from torch import nn

class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)

    def train(self, loader, epochs):
        for _ in range(epochs):
            for x, y in loader:
                ...
```

## Use instead
```python
class Classifier(nn.Module):
    ...
    def fit(self, loader, epochs):
        self.train()
        for _ in range(epochs):
            ...
```
An override that keeps the signature and calls `super()` is fine:
```python
    def train(self, mode=True):
        super().train(mode)
        self.backbone.bn.eval()
        return self
```

## Fix safety
No fix: renaming the method means renaming its callers too. Not observable by a probe.

## Known limitations
Only classes recognised as `nn.Module` subclasses in the same file are checked (bases
`nn.Module`, any `torch.nn` class, or a local subclass of one); a method decorated as a
static or class method, a property or anything else is not looked at. The check of the
mode is by names: a call to any `.train(...)` or `.eval()` counts, whatever the receiver.
"""

from __future__ import annotations


import libcst as cst

from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor, accepts_call, is_nn_module, methods
from trainlint.traverse import walk

# method -> the calls it must accept: (positional count, keywords, who makes that call)
CALLS: dict[str, tuple[tuple[int, tuple[str, ...], str], ...]] = {
    "train": ((0, (), "`model.train()`"), (1, (), "`model.eval()` (it calls `self.train(False)`)")),
    "eval": ((0, (), "`model.eval()`"),),
    "to": ((1, (), "`model.to(device)`"),),
    "cuda": ((0, (), "`model.cuda()`"), (1, (), "`model.cuda(device)`")),
    "parameters": ((0, (), "`model.parameters()`"),),
    "zero_grad": ((0, (), "`model.zero_grad()`"),),
    "state_dict": (
        (0, (), "`model.state_dict()`"),
        (
            0,
            ("destination", "prefix", "keep_vars"),
            "a parent module's `state_dict()` (it passes `destination=`, `prefix=`, `keep_vars=`)",
        ),
    ),
}
MODE_METHODS = ("train", "eval")


class ModuleMethodOverridden(Rule):
    __doc__ = __doc__
    code = "TL120"
    name = "module-method-overridden"
    message = "`{cls}.{method}{signature}` overrides `nn.Module.{method}` but cannot be called as {call}"
    message_mode = (
        "`{cls}.{method}` overrides `nn.Module.{method}` without setting the mode: "
        "no `super().{method}(...)` and no `.training` assignment, so `model.{method}()` "
        "leaves dropout and batch norm as they were"
    )
    tokens = ("def", tuple(CALLS))

    VALID = [
        # Overrides that keep the signature and call super().
        Valid(
            """
            from torch import nn

            class Backbone(nn.Module):
                def train(self, mode=True):
                    super().train(mode)
                    for m in self.modules():
                        if isinstance(m, nn.BatchNorm2d):
                            m.eval()
                    return self

                def eval(self):
                    return self.train(False)

                def to(self, *args, **kwargs):
                    self.anchors = self.anchors.to(*args, **kwargs)
                    return super().to(*args, **kwargs)

                def cuda(self, device=None):
                    return super().cuda(device)

                def parameters(self, recurse=True):
                    return super().parameters(recurse)

                def zero_grad(self, set_to_none=True):
                    super().zero_grad(set_to_none)

                def state_dict(self, *args, destination=None, prefix="", keep_vars=False):
                    return super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
            """
        ),
        # Mode set by hand, through a base class by name, or through keyword catch-alls.
        Valid(
            """
            import torch.nn as nn

            class Frozen(nn.Module):
                def train(self, mode: bool = True, /):
                    self.training = mode
                    for child in self.children():
                        child.train(mode)
                    return self

            class Wrapper(nn.Sequential):
                def train(self, *args):
                    nn.Sequential.train(self, *args)
                    return self

                def state_dict(self, **kwargs):
                    return {k: v for k, v in super().state_dict(**kwargs).items() if "aux" not in k}
            """
        ),
        # Not a Module: a trainer class may name its methods as it likes.
        Valid(
            """
            class Trainer:
                def train(self, loader, epochs):
                    pass

                def eval(self, loader):
                    pass
            """
        ),
        # Static methods and other names.
        Valid(
            """
            from torch import nn

            class Net(nn.Module):
                @staticmethod
                def to(x, device):
                    return x.to(device)

                def fit(self, loader, epochs):
                    self.train()
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn

            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 2)

                def train(self, loader, epochs):
                    for _ in range(epochs):
                        for x, y in loader:
                            pass
            """,
            line=8,
        ),
        # A training loop whose parameters all have defaults: `eval()` runs it.
        Invalid(
            """
            import torch

            class Net(torch.nn.Module):
                def train(self, epochs=10):
                    for _ in range(epochs):
                        self.step()

                def eval(self, loader):
                    return [self(x) for x in loader]
            """,
            line=4,
            count=2,
        ),
        # A submodule's state_dict that its parent cannot call; `to` that needs two arguments.
        Invalid(
            """
            from torch.nn import Module

            class Base(Module):
                pass

            class Head(Base):
                def state_dict(self):
                    return {"w": self.w}

                def to(self, device, dtype):
                    return super().to(device, dtype)

                def zero_grad(self, optimizer):
                    optimizer.zero_grad()
            """,
            line=7,
            count=3,
        ),
    ]

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        found = [(name, func) for name, func in methods(node).items() if name in CALLS and not func.decorators]
        if not found or not is_nn_module(node, self.context.imports, self.context.module):
            return
        for name, func in found:
            self._check(node.name.value, name, func)

    def _check(self, cls: str, method: str, func: cst.FunctionDef) -> None:
        for positional, keywords, call in CALLS[method]:
            if not accepts_call(func, positional, keywords):
                signature = self.context.code(func.params)
                self.report(
                    func.name,
                    self.message.format(cls=cls, method=method, signature=f"({signature})", call=call),
                    help=f"rename the method (e.g. `fit`/`evaluate`), or keep `nn.Module.{method}`'s signature",
                )
                return
        if method in MODE_METHODS and not _sets_mode(func):
            self.report(
                func.name,
                self.message_mode.format(cls=cls, method=method),
                help=f"call `super().{method}(...)` in the override, or rename it",
            )


def _sets_mode(func: cst.FunctionDef) -> bool:
    finder = _ModeSetter()
    walk(func.body, finder)
    return finder.found


class _ModeSetter(Visitor):
    def __init__(self) -> None:
        self.found = False

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in MODE_METHODS:
            self.found = True

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        target = node.target
        if isinstance(target, cst.Attribute) and target.attr.value == "training":
            self.found = True
