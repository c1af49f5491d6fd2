"""
## What it does
Flags `.view(...)` called on a tensor whose memory layout is visibly non-contiguous, when
the new shape has fewer dimensions than any legal view of that layout could have. The
layouts: the result of `transpose`, `permute`, `t()`, `.T`/`.mT`, `swapaxes`/`swapdims`,
`movedim`, `expand`/`expand_as` (method or `torch.` function), a plain slice of one, or
an element-wise result of one (`pred.t().eq(y)`, `.float()` and `.to(...)` keep the
input's layout), with no `.contiguous()` in between. The tensor is followed through a
function's straight-line local assignments, so the classic top-k accuracy helper is
found:

```python
_, pred = output.topk(maxk, 1, True, True)
pred = pred.t()
correct = pred.eq(target.view(1, -1).expand_as(pred))
correct_k = correct[:k].view(-1).float().sum(0)
```

A permutation such as `permute(0, 2, 3, 1)` keeps some dimensions adjacent in memory
(`2, 3`); a view may merge those, but it needs at least one dimension per run of adjacent
ones (three here). A view asking for fewer (`.view(n, -1)`) must merge dimensions that are
no longer adjacent. For `transpose(a, b)` the rank comes from a visible `view`/`reshape`
of the receiver, or is taken as the smallest rank the dimensions allow.

## Why is this bad?
`view` never copies: it only reinterprets the strides, so it raises `RuntimeError: view
size is not compatible with input tensor's size and stride` when the new shape needs
dimensions to be merged that are no longer adjacent in memory. The code runs for years on
one layout and breaks when a torch version or an upstream change alters the strides (the
accuracy helper above broke that way: `eq` on a transposed tensor keeps its transposed
layout).

## Example
```python
def merge_heads(x, b, t, d):
    return x.transpose(1, 2).view(b, t, d)
```

## Use instead
```python
def merge_heads(x, b, t, d):
    return x.transpose(1, 2).reshape(b, t, d)
```
or `.contiguous().view(...)`.

## Fix safety
Safe: `reshape` returns exactly the view that `view` would return whenever a view is
possible, so every input on which the original ran gives an identical result (the same
storage, shared the same way); it copies only where `view` would have raised.

## Known false positives
The rule does not know sizes: a merge of dimensions of size 1 is legal, and is reported
(except after a `squeeze`/`unsqueeze`, a sign that size-1 dimensions are being moved).
Nor does it know layouts it cannot see: `F.interpolate` and convolutions keep a
channels-last input channels-last, so `permute(0, 2, 3, 1)` (NCHW to NHWC) is only
counted when the permuted tensor visibly comes from a `view`/`reshape`.
Views that only split dimensions, or keep as many dimensions as the layout has runs, are
not reported, even where they merge the wrong dimensions (a false negative): over the
corpora that kept the rule from flagging the many legal `x.transpose(1, 2).view(b, c, h,
w)` reshapes of vision models. `x.view(dtype)` and `x.view(shape)` with a shape held in
a variable are not checked. Layouts that come from another function, an attribute or a
branch are not followed, and a `transpose` of a tensor of unknown rank is taken at the
smallest rank its dimensions allow, so `(attn @ v).transpose(1, 2).view(b, t, c)` (rank 4)
is missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from trainlint.rules._analysis import (
    enclosing_function_statement,
    int_literal,
    reaching_assignment,
    shape_length,
)

from trainlint.rule import Applicability, Invalid, Rule, Valid

SWAPPING_METHODS = {"transpose", "swapaxes", "swapdims"}
MOVING_METHODS = {"movedim", "moveaxis"}
SWAPPING_ATTRIBUTES = {"T", "mT", "H", "mH"}
EXPANDING_METHODS = {"expand", "expand_as"}
# methods whose result keeps the receiver's layout (TensorIterator's `preserve_format`)
LAYOUT_KEEPING_METHODS = {
    "eq", "ne", "lt", "le", "gt", "ge", "float", "double", "half", "bfloat16", "int", "long",
    "bool", "byte", "to", "type", "type_as", "detach", "clone", "cpu", "cuda", "abs", "neg",
    "exp", "log", "sigmoid", "tanh", "relu", "mul", "add", "sub", "div",
}
RESHAPING_METHODS = {"view", "reshape"}
MAX_HOPS = 6


@dataclass(frozen=True)
class Layout:
    """A tensor that is not contiguous: what made it so, and the fewest dimensions a
    `view` of it can have without raising."""

    cause: str
    min_dims: int


class ViewOnNonContiguous(Rule):
    __doc__ = __doc__
    code = "TL123"
    name = "view-on-non-contiguous"
    message = (
        "`.view` of the result of `{cause}`, which is not contiguous: `view` raises when the "
        "new shape merges dimensions that are no longer adjacent in memory"
    )
    fix_applicability = Applicability.SAFE
    tokens = (
        "view",
        ("transpose", "permute", "swapaxes", "swapdims", "movedim", "moveaxis", "*expand*", "t", "T", "mT", "H", "mH"),
    )

    VALID = [
        Valid(
            """
            def heads(x, b, t, d):
                a = x.transpose(1, 2).reshape(b, t, d)
                c = x.transpose(1, 2).contiguous().view(b, t, d)
                y = x.permute(0, 2, 1)
                y = y.contiguous()
                e = y.view(b, -1)
                f = x.view(b, t, -1).transpose(1, 2)
                return a, c, e, f
            """
        ),
        # Views that only split dimensions, or merge ones still adjacent in memory; a
        # module attribute named `t`; a shape held in a variable.
        Valid(
            """
            def f(self, x, b, c, h, w, dim, shape):
                a = x.transpose(1, 2).view(b, c, h, w)
                p = x.permute(0, 2, 3, 1).view(1, -1, dim)
                q = x.permute([1, 0, 2, 3]).view(b, c, h, w)
                t = self.t(x)
                r = t.view(b, c, -1)
                s = x.t().view(shape)
                u = x.squeeze(0).transpose(1, 0).view(-1)
                return a, p, q, r, s, u
            """
        ),
        # F.interpolate keeps a channels-last input channels-last: NCHW -> NHWC is then
        # contiguous.
        Valid(
            """
            import torch.nn.functional as F

            def resize(x, t, h, w, c):
                y = x.reshape(t, h, w, c).permute(0, 3, 1, 2)
                y = F.interpolate(y, size=(h // 2, w // 2), mode="bilinear")
                return y.permute(0, 2, 3, 1).view(-1, c)
            """
        ),
        # A fresh tensor, a dtype view, a name rebound in a branch.
        Valid(
            """
            import torch

            def f(x, flag):
                a = torch.zeros(4, 4).view(-1)
                b = x.t().view(torch.float16)
                y = x.t()
                if flag:
                    y = x.clone()
                return a, b, y.view(-1)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            def merge_heads(x, b, t, h, d):
                y = x.view(b, h, t, d).transpose(1, 2)
                return y.view(b, t, h * d)
            """,
            fixed="""
            def merge_heads(x, b, t, h, d):
                y = x.view(b, h, t, d).transpose(1, 2)
                return y.reshape(b, t, h * d)
            """,
            line=3,
        ),
        # The top-k accuracy helper: a transposed prediction compared, then sliced.
        Invalid(
            """
            def accuracy(output, target, topk=(1,)):
                maxk = max(topk)
                _, pred = output.topk(maxk, 1, True, True)
                pred = pred.t()
                correct = pred.eq(target.view(1, -1).expand_as(pred))
                res = []
                for k in topk:
                    correct_k = correct[:k].view(-1).float().sum(0)
                    res.append(correct_k)
                return res
            """,
            fixed="""
            def accuracy(output, target, topk=(1,)):
                maxk = max(topk)
                _, pred = output.topk(maxk, 1, True, True)
                pred = pred.t()
                correct = pred.eq(target.view(1, -1).expand_as(pred))
                res = []
                for k in topk:
                    correct_k = correct[:k].reshape(-1).float().sum(0)
                    res.append(correct_k)
                return res
            """,
            line=8,
        ),
        # torch functions, `.T`, `expand`, a cast in between.
        Invalid(
            """
            import torch as T

            def f(x, n):
                a = T.transpose(x, 0, 1).view(-1)
                b = x.T.float().view(n * 2)
                c = x[:, None].expand(-1, n).view(-1)
                d = x.permute(0, 3, 1, 2).view(n, -1)
                e = x.transpose(1, 2).view(n, -1)
                return a, b, c, d, e
            """,
            fixed="""
            import torch as T

            def f(x, n):
                a = T.transpose(x, 0, 1).reshape(-1)
                b = x.T.float().reshape(n * 2)
                c = x[:, None].expand(-1, n).reshape(-1)
                d = x.permute(0, 3, 1, 2).reshape(n, -1)
                e = x.transpose(1, 2).reshape(n, -1)
                return a, b, c, d, e
            """,
            line=4,
            count=5,
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "view"):
            return
        dims = shape_length(node)
        if dims is None:
            return
        layout = self._layout(func.value, None, MAX_HOPS)
        if layout is None or dims >= layout.min_dims:
            return
        fix = self.make_fix("Use `.reshape`", (func, func.with_changes(attr=cst.Name("reshape"))))
        self.report(
            node,
            self.message.format(cause=layout.cause),
            fix=fix,
            help="use `.reshape(...)` (a view where one is possible, a copy otherwise) or `.contiguous().view(...)`",
        )

    # --------------------------------------------------------------------- layouts

    def _layout(
        self, expr: cst.BaseExpression, statement: cst.BaseStatement | None, hops: int
    ) -> Layout | None:
        """How `expr` is visibly non-contiguous, or None."""
        if hops == 0:
            return None
        if isinstance(expr, cst.Attribute):
            if expr.attr.value in SWAPPING_ATTRIBUTES and not _is_self(expr.value):
                return Layout(f".{expr.attr.value}", 2)
            return None
        if isinstance(expr, cst.Subscript):
            plain_slices = all(
                isinstance(e.slice, cst.Slice) for e in expr.slice
            )
            return self._layout(expr.value, statement, hops - 1) if plain_slices else None
        if isinstance(expr, cst.Name):
            reaching = self._reaching(expr.value, statement)
            if reaching is None:
                return None
            return self._layout(reaching.value, reaching.statement, hops - 1)
        if not isinstance(expr, cst.Call) or any(a.star for a in expr.args):
            return None
        qualname = self.context.qualname(expr.func)
        if qualname is not None:
            if qualname.startswith("torch.") and expr.args:
                method = qualname[len("torch."):]
                return self._reordered(method, expr.args[0].value, expr.args[1:], statement, hops)
            return None
        if not isinstance(expr.func, cst.Attribute) or _is_self(expr.func.value):
            return None
        method = expr.func.attr.value
        if method in LAYOUT_KEEPING_METHODS:
            return self._layout(expr.func.value, statement, hops - 1)
        return self._reordered(method, expr.func.value, expr.args, statement, hops)

    def _reordered(self, method, receiver, args, statement, hops) -> Layout | None:
        """The layout made by `receiver.<method>(*args)` when it permutes or expands."""
        if method == "t" and not args:
            return Layout("t", 2)
        if method in EXPANDING_METHODS and args:
            return Layout(method, 2)
        if _squeezed(receiver):
            return None  # dimensions of size 1 are being moved: merging them is legal
        values = [int_literal(a.value) for a in args if a.keyword is None]
        if method == "permute":
            if len(args) == 1 and isinstance(args[0].value, (cst.Tuple, cst.List)):
                values = [int_literal(e.value) for e in args[0].value.elements]
            if None in values or not values:
                return None
            rank = len(values)
            order = [v % rank for v in values]
            if order == [0, *range(2, rank), 1] and self._rank(receiver, statement, hops) is None:
                return None  # NCHW -> NHWC of a tensor that may be channels-last already
            return Layout(method, _runs(order))
        if method not in SWAPPING_METHODS | MOVING_METHODS or len(values) != 2 or None in values:
            return None
        rank = self._rank(receiver, statement, hops)
        first, second = values
        if rank is None:
            if first < 0 and second < 0:
                rank = max(-first, -second)
            elif first >= 0 and second >= 0:
                rank = max(first, second) + 1
            else:
                return None
        if not (-rank <= first < rank and -rank <= second < rank):
            return None
        order = list(range(rank))
        first, second = first % rank, second % rank
        if method in SWAPPING_METHODS:
            order[first], order[second] = order[second], order[first]
        else:
            order.insert(second, order.pop(first))
        return Layout(method, _runs(order))

    def _rank(self, expr: cst.BaseExpression, statement, hops: int) -> int | None:
        """The number of dimensions of `expr` when it comes from a visible reshape."""
        if hops == 0:
            return None
        if isinstance(expr, cst.Name):
            reaching = self._reaching(expr.value, statement)
            return None if reaching is None else self._rank(reaching.value, reaching.statement, hops - 1)
        if (
            isinstance(expr, cst.Call)
            and isinstance(expr.func, cst.Attribute)
            and expr.func.attr.value in RESHAPING_METHODS
            and self.context.qualname(expr.func) is None
        ):
            return shape_length(expr)
        return None

    def _reaching(self, name: str, statement: cst.BaseStatement | None):
        found = enclosing_function_statement(self.context.stack)
        if found is None:
            return None
        func, use = found
        reaching = reaching_assignment(func, name, statement or use)
        return None if reaching is None or reaching.path else reaching


def _squeezed(node: cst.BaseExpression) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in ("squeeze", "unsqueeze")
    )


def _is_self(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value in ("self", "cls")


def _runs(order: list[int]) -> int:
    """How many runs of consecutive dimensions (`2, 3` in `0, 2, 3, 1`) the order has: the
    fewest dimensions a view can merge it into."""
    return 1 + sum(1 for a, b in zip(order, order[1:]) if b != a + 1)
