"""
## What it does
Flags three leftovers of torch < 0.4:

- `Variable(x, volatile=True)`: the `volatile` flag;
- any other `torch.autograd.Variable(...)` wrapper;
- `x.cuda(async=True)`, `x.to(device, async=True)`, `x.copy_(y, async=True)`,
  `x.type(t, async=True)`: the keyword that torch 0.4 renamed `non_blocking`.

A file with `async=` does not parse on Python 3.7 or later (`async` is a keyword), so
every other tool, and trainlint before this rule, reports only a syntax error for the
whole file. trainlint parses such a file anyway, reads `async` as the keyword argument it
was meant to be, and lints the rest of the file as usual, with positions unchanged.

## Why is this bad?
Since torch 0.4, tensors and Variables are one type: `Variable(x)` returns `x.detach()`
(a new tensor sharing `x`'s storage, cut from its graph; checked on torch 2.13) and
`volatile=True` is ignored with a warning ("volatile was removed and now has no effect.
Use `with torch.no_grad():` instead"). Evaluation code that relied on it now builds an
autograd graph for every batch, and runs out of memory or slows down for no visible
reason. `async=True` stopped the whole file from running on Python 3.7.

## Example
```python
from torch.autograd import Variable

def evaluate(model, loader):
    for images, labels in loader:
        images = Variable(images.cuda(async=True), volatile=True)
        output = model(images)
```

## Use instead
```python
import torch

def evaluate(model, loader):
    with torch.no_grad():
        for images, labels in loader:
            output = model(images.cuda(non_blocking=True))
```

## Fix safety
Safe for `async=` -> `non_blocking=`: the same argument under its current name (torch
0.4 and later accept nothing else). `Variable(...)` and `volatile=True` are reported
without a fix: what replaces `volatile` is a `torch.no_grad()` block whose extent only
the author knows, and the wrapper becomes `x`, `x.detach()` or `x.requires_grad_()`
depending on whether `x` has a graph that must (not) be cut.

## Known false positives
Plain wrappers of fresh tensors (`Variable(torch.randn(3))`) compute the same as the
tensor itself: they are reported as legacy code, harmless today (22 such calls in
torch's own test helpers and `named_optimizer.py`, none in the standard corpus or
transformers). `async=`
keywords of other methods than `cuda`, `to`, `copy_` and `type` are left alone (the file is
still parsed, but the keyword is not torch's), and so are parameters and variables named
`async`, which leave the file unparsable.
"""

from __future__ import annotations

import libcst as cst
from trainlint.rules._analysis import call_argument

from trainlint.rule import Applicability, Invalid, Rule, Valid

VARIABLES = {"torch.autograd.Variable", "torch.autograd.variable.Variable"}
ASYNC_METHODS = {"cuda", "to", "copy_", "type"}


class LegacyAutogradFlags(Rule):
    __doc__ = __doc__
    code = "TL128"
    name = "legacy-autograd-flags"
    message = (
        "`async=` was renamed `non_blocking=` in torch 0.4, and is a syntax error since "
        "Python 3.7"
    )
    message_volatile = (
        "`volatile=True` has had no effect since torch 0.4: this code builds an autograd "
        "graph; use `with torch.no_grad():`"
    )
    message_variable = (
        "`Variable(...)` is a torch < 0.4 wrapper: today it returns a detached alias of its "
        "argument (`x.detach()`), and tensors track gradients themselves"
    )
    fix_applicability = Applicability.SAFE
    tokens = (("async", "Variable"),)

    VALID = [
        Valid(
            """
            import torch

            def evaluate(model, loader):
                with torch.no_grad():
                    for images, labels in loader:
                        output = model(images.cuda(non_blocking=True))
                        target = labels.to("cuda", non_blocking=True)
            """
        ),
        # Another library's Variable; a class of the file named so.
        Valid(
            """
            from tensorflow import Variable as TFVariable

            class Variable:
                pass

            v = TFVariable(1.0)
            w = Variable()
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch.autograd import Variable

            def evaluate(model, loader):
                for images, labels in loader:
                    images = Variable(images, volatile=True)
                    output = model(images)
            """,
            line=6,
        ),
        # A wrapper, a module-qualified spelling, an `async=` keyword (with the file
        # parsed and linted although Python rejects it).
        Invalid(
            """
            import torch.autograd as autograd

            def train_step(model, x, y):
                x = autograd.Variable(x.cuda(async=True))
                y = y.to("cuda", async = True)
                return model(x), y
            """,
            fixed="""
            import torch.autograd as autograd

            def train_step(model, x, y):
                x = autograd.Variable(x.cuda(non_blocking=True))
                y = y.to("cuda", non_blocking = True)
                return model(x), y
            """,
            line=4,
            count=3,
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        if self.context.qualname(node.func) in VARIABLES:
            volatile = call_argument(node, "volatile")
            if volatile is not None:
                self.report(
                    node,
                    self.message_volatile,
                    help="wrap the evaluation in `with torch.no_grad():` and drop the `Variable`",
                )
            else:
                self.report(
                    node,
                    self.message_variable,
                    help="use the tensor itself, `x.detach()` where the graph must be cut, or `x.requires_grad_()`",
                )
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in ASYNC_METHODS):
            return
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "async":
                fix = self.make_fix(
                    "Rename `async=` to `non_blocking=`",
                    (arg, arg.with_changes(keyword=cst.Name("non_blocking"))),
                )
                self.report(arg, fix=fix, help="write `non_blocking=`")
