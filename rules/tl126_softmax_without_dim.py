"""
## What it does
Flags `F.softmax`, `F.log_softmax` and `F.softmin` called without `dim`, and the modules
`nn.Softmax()`, `nn.LogSoftmax()` and `nn.Softmin()` built without it.

## Why is this bad?
Without `dim`, torch picks the dimension from the input's rank: dimension 0 for 0-, 1-
and 3-dimensional inputs, dimension 1 otherwise. For a `(batch, classes)` input that is
the class dimension, but for a `(batch, seq, classes)` input it is the *batch* dimension:
each probability is normalised across the samples of the batch, the loss trains on
nonsense, and the only sign is a `UserWarning` ("Implicit dimension choice for softmax
has been deprecated").

## Example
```python
import torch.nn.functional as F

def predict(logits):
    return F.softmax(logits)
```

## Use instead
```python
def predict(logits):
    return F.softmax(logits, dim=-1)
```

## Fix safety
Unsafe, and offered only where the input's rank is visible in the code and is 1 or 2
(`F.softmax(x.view(n, -1))`, `F.log_softmax(torch.flatten(x, 1))`, or a local assigned
from such a reshape): for those ranks the implicit dimension is the last one, so
`dim=-1` keeps the values and silences the warning. It is marked unsafe because the
reshape may be reached through code the rule cannot see. Elsewhere the rule reports
without a fix: the right dimension depends on what the input holds.

## Known false positives
Code that only ever passes 2-dimensional inputs computes the right values; the call is
still reported, since the warning fires on every call and the result changes silently
when the input gains a dimension. Tensor methods (`x.softmax()`) and `torch.softmax`
require `dim` and are not checked; `nn.Softmax2d` has no `dim`.
"""

from __future__ import annotations

import libcst as cst
from trainlint.rules._analysis import (
    call_argument,
    enclosing_function_statement,
    has_unpacked_arguments,
    int_literal,
    reaching_assignment,
)

from trainlint.rule import Applicability, Invalid, Rule, Valid

FUNCTIONS = {
    "torch.nn.functional.softmax": "F.softmax",
    "torch.nn.functional.log_softmax": "F.log_softmax",
    "torch.nn.functional.softmin": "F.softmin",
}
MODULES = {
    "torch.nn.Softmax": "nn.Softmax",
    "torch.nn.LogSoftmax": "nn.LogSoftmax",
    "torch.nn.Softmin": "nn.Softmin",
}


class SoftmaxWithoutDim(Rule):
    __doc__ = __doc__
    code = "TL126"
    name = "softmax-without-dim"
    message = (
        "`{func}` without `dim`: the dimension is chosen from the input's rank (0 for 1-D "
        "and 3-D inputs), and torch warns that the implicit choice is deprecated"
    )
    fix_applicability = Applicability.UNSAFE
    tokens = (("*softmax*", "*softmin*"),)

    VALID = [
        Valid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn

            def heads(x):
                a = F.softmax(x, dim=-1)
                b = F.log_softmax(x, 1)
                c = F.softmin(x, dim=None)
                d = nn.Softmax(dim=1)
                e = nn.LogSoftmax(-1)
                f = torch.softmax(x, -1)
                g = x.softmax(-1)
                h = nn.Softmax2d()
                return a, b, c, d, e, f, g, h
            """
        ),
        # Unpacked arguments may carry `dim`; another library's softmax.
        Valid(
            """
            import torch.nn.functional as F
            from mylib import softmax

            def heads(x, *args, **kwargs):
                return F.softmax(x, *args), F.softmax(x, **kwargs), softmax(x)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn.functional as F

            def predict(logits):
                return F.softmax(logits)
            """,
            line=4,
        ),
        # Modules; aliased imports; a rank-2 input gets the fix, directly or through a local.
        Invalid(
            """
            import torch
            from torch import nn
            from torch.nn.functional import log_softmax as lsm

            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.act = nn.Softmax()
                    self.log = torch.nn.LogSoftmax()

                def forward(self, x):
                    flat = x.view(x.size(0), -1)
                    a = lsm(flat)
                    b = torch.nn.functional.softmin(torch.flatten(x, 1), _stacklevel=5)
                    return self.act(a) + b
            """,
            fixed="""
            import torch
            from torch import nn
            from torch.nn.functional import log_softmax as lsm

            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.act = nn.Softmax()
                    self.log = torch.nn.LogSoftmax()

                def forward(self, x):
                    flat = x.view(x.size(0), -1)
                    a = lsm(flat, dim=-1)
                    b = torch.nn.functional.softmin(torch.flatten(x, 1), dim=-1, _stacklevel=5)
                    return self.act(a) + b
            """,
            line=8,
            count=4,
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        qualname = self.context.qualname(node.func)
        if qualname in FUNCTIONS:
            label, position = FUNCTIONS[qualname], 1
        elif qualname in MODULES:
            label, position = MODULES[qualname], 0
        else:
            return
        if has_unpacked_arguments(node) or call_argument(node, "dim", position) is not None:
            return
        fix = None
        if qualname in FUNCTIONS and node.args and self._rank_one_or_two(node.args[0].value):
            fix = self.make_fix("Pass `dim=-1`", (node, node.with_changes(args=_with_dim(node.args))))
        self.report(
            node,
            self.message.format(func=label),
            fix=fix,
            help="pass `dim=-1` for the last (class) dimension",
        )

    def _rank_one_or_two(self, value: cst.BaseExpression) -> bool:
        if isinstance(value, cst.Name):
            found = enclosing_function_statement(self.context.stack)
            if found is None:
                return False
            func, statement = found
            reaching = reaching_assignment(func, value.value, statement)
            if reaching is None or reaching.path:
                return False
            value = reaching.value
        return self._reshaped_to_rank_one_or_two(value)

    def _reshaped_to_rank_one_or_two(self, value: cst.BaseExpression) -> bool:
        if not isinstance(value, cst.Call) or has_unpacked_arguments(value):
            return False
        qualname = self.context.qualname(value.func)
        if qualname == "torch.flatten":
            start = call_argument(value, "start_dim", 1)
            end = call_argument(value, "end_dim", 2)
            return end is None and start is not None and int_literal(start) == 1
        if not isinstance(value.func, cst.Attribute) or qualname is not None:
            return False
        method = value.func.attr.value
        if method == "flatten":
            start = call_argument(value, "start_dim", 0)
            end = call_argument(value, "end_dim", 1)
            return end is None and (start is None or int_literal(start) in (0, 1))
        if method in ("view", "reshape"):
            args = value.args
            if len(args) == 1 and isinstance(args[0].value, (cst.Tuple, cst.List)):
                elements = args[0].value.elements
                return 1 <= len(elements) <= 2 and not any(
                    isinstance(e, cst.StarredElement) for e in elements
                )
            return 1 <= len(args) <= 2 and all(a.keyword is None for a in args) and not (
                len(args) == 1 and _may_be_shape_or_dtype(args[0].value)
            )
        return False


def _may_be_shape_or_dtype(node: cst.BaseExpression) -> bool:
    """A single argument of `view` that is not an int literal may be a whole shape
    (`x.view(shape)`) or a dtype."""
    return int_literal(node) is None


def _with_dim(args) -> list[cst.Arg]:
    """`args` with `dim=-1` after the input (before any other keyword)."""
    dim = cst.Arg(
        keyword=cst.Name("dim"),
        value=cst.UnaryOperation(cst.Minus(), cst.Integer("1")),
        equal=cst.AssignEqual(
            whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")
        ),
    )
    first = args[0]
    if len(args) == 1:
        return [first.with_changes(comma=cst.MaybeSentinel.DEFAULT), dim.with_changes(comma=first.comma)]
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    return [first, dim.with_changes(comma=comma), *args[1:]]
