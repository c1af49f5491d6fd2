"""
## What it does
Flags a tensor made by a constant factory (`torch.zeros`, `zeros_like`, `ones`, `ones_like`,
`full`, `full_like`, `empty`, `empty_like`, or the `x.new_zeros(...)`-style methods) that is
then used as a mask in the same function (the condition of `torch.where` / `t.where`, the
mask of `masked_fill(_)`, `masked_select` or `masked_scatter(_)`, or a boolean index
`y[mask]`) while nothing writes it in between.

The diagnostic points at the mask argument of the use, one per use site.

## Why is this bad?
A mask that is created and never filled is constant: a zeros mask is all `False`, a ones
mask all `True`, an `empty` mask holds whatever was in memory. `torch.where(index, x_m, x)`
then always returns `x`, `masked_fill` changes nothing (or everything), and a boolean index
selects nothing (or everything). Nothing crashes; the model silently trains with a
different loss. The typical cause is a lost line, like the `index.scatter_(...)` that marks
each sample's target class in LDAM's loss.

## Example
```python
def forward(self, x, target):
    index = torch.zeros_like(x, dtype=torch.uint8)
    index_float = index.type(torch.cuda.FloatTensor)
    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(0, 1))
    x_m = x - batch_m.view((-1, 1))
    output = torch.where(index, x_m, x)
    return F.cross_entropy(self.s * output, target)
```

## Use instead
```python
def forward(self, x, target):
    index = torch.zeros_like(x, dtype=torch.bool)
    index.scatter_(1, target.view(-1, 1), True)
    index_float = index.float()
    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(0, 1))
    x_m = x - batch_m.view((-1, 1))
    output = torch.where(index, x_m, x)
    return F.cross_entropy(self.s * output, target)
```

## Fix safety
There is no fix: only the author knows what the mask should contain. The message names
the write that is usually missing (`index.scatter_(1, target.view(-1, 1), 1)` when the
function has a target/label parameter).

## Known false positives
The analysis is straight-line and deliberately conservative, so it rarely misfires, and
misses many real cases:

- The creation must be a plain assignment among the function's top-level statements, and
  the only binding of the name before the use; masks created inside `if`/`for`/`with`/`try`
  blocks are not followed. A use inside a compound statement is followed only when that
  whole statement never writes the mask.
- Anything that might write the mask counts as a write: an in-place method anywhere in a
  chain (`mask[:, 0].fill_(1)`), item or attribute assignment, `|=`, rebinding, passing the
  mask (or a view of it) to any call other than a non-in-place `torch.*` /
  `torch.nn.functional.*` function or a masking method, storing it in a container or an
  attribute, closures and lambdas that mention it, and the same through local aliases
  (`m = mask.view(-1)`).
- Reading is not writing: `index.type(...)`, `index.float()`, arithmetic, comparisons and
  other masking calls leave the mask constant.
- Boolean indexing is flagged only when the mask's dtype is known to be `bool`/`uint8`
  (an integer zeros tensor used as an index is a legitimate gather).
- `full(shape, value)` with a value that is not a literal is skipped: a uniform mask chosen
  at run time (`torch.full_like(x, use_margin, dtype=torch.bool)`) can be deliberate.
- A constant mask can be intended as a placeholder (`keep = torch.ones(n, dtype=bool)`
  kept for a later edit); such code is pointless rather than wrong, and is still flagged.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import libcst as cst

from trainlint import screen as sc
from ._analysis import (
    Visitor,
    MUTATING_METHODS,
    body_statements,
    is_inplace_tensor_method,
    parameter_names,
    statements_between,
    straight_line_origin,
)
from trainlint.imports import dotted_name
from trainlint.rule import Invalid, Rule, Valid
from trainlint.traverse import walk

# --------------------------------------------------------------------------- creators

TORCH_CREATORS = {
    "torch.zeros": "zeros",
    "torch.zeros_like": "zeros",
    "torch.ones": "ones",
    "torch.ones_like": "ones",
    "torch.full": "full",
    "torch.full_like": "full",
    "torch.empty": "empty",
    "torch.empty_like": "empty",
}
METHOD_CREATORS = {
    "new_zeros": "zeros",
    "new_ones": "ones",
    "new_full": "full",
    "new_empty": "empty",
}
# Methods that may follow the factory without changing which elements are set.
TRANSPARENT_METHODS = {"cuda", "cpu", "to", "type", "bool", "byte", "long", "int", "float",
                       "half", "double", "detach", "contiguous", "requires_grad_"}
MASK_DTYPES = {"torch.bool", "torch.uint8", "torch.BoolTensor", "torch.ByteTensor",
               "torch.cuda.BoolTensor", "torch.cuda.ByteTensor"}
OTHER_DTYPES = {"torch.float", "torch.float32", "torch.float64", "torch.double", "torch.half",
                "torch.float16", "torch.bfloat16", "torch.long", "torch.int64", "torch.int",
                "torch.int32", "torch.int16", "torch.int8", "torch.short",
                "torch.FloatTensor", "torch.LongTensor", "torch.cuda.FloatTensor",
                "torch.cuda.LongTensor", "torch.DoubleTensor", "torch.IntTensor"}

MASK_METHODS = {"masked_fill", "masked_fill_", "masked_select", "masked_scatter",
                "masked_scatter_"}
TARGET_PARAMS = ("target", "targets", "label", "labels", "y")

# Calls that only read their tensor arguments.
READ_ONLY_BUILTINS = {"len", "print", "isinstance", "type", "repr", "str", "id", "hash"}
READ_ONLY_METHODS = MASK_METHODS | {
    "where", "matmul", "mm", "bmm", "mul", "sub", "div", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_and", "logical_or", "logical_xor", "type_as", "view_as", "reshape_as",
    "expand_as", "copy_", "format",
}
PURE_TORCH_NAMESPACES = ("torch.nn.functional.", "torch.linalg.", "torch.fft.", "torch.special.")
# Results of these never share the mask's storage.
FRESH_METHODS = {"size", "dim", "numel", "sum", "mean", "any", "all", "item", "tolist",
                 "nonzero", "clone", "count_nonzero", "argmax", "argmin"}
FRESH_ATTRIBUTES = {"shape", "ndim", "dtype", "device", "is_cuda", "requires_grad"}


@dataclass(frozen=True)
class Creation:
    kind: str  # zeros | ones | full | empty
    factory: str  # as written in the message: "zeros_like"
    mask_dtype: bool | None  # True: bool/uint8; False: another dtype; None: unknown
    fill: bool | None  # the truth value of every element (zeros/ones/full literal)


@dataclass(frozen=True)
class Use:
    node: cst.BaseExpression  # the mask expression at the use
    name: cst.Name
    negated: bool
    mask_dtype: bool | None  # a conversion at the use (`index.bool()`)
    user: str
    boolean_index: bool


class MaskNeverPopulated(Rule):
    __doc__ = __doc__
    code = "TL010"
    name = "mask-never-populated"
    message = "A mask created by a constant factory is used before anything writes it"
    tokens = ((*sorted(q.rsplit(".", 1)[1] for q in TORCH_CREATORS), *sorted(METHOD_CREATORS)),)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """A function that binds a local at the top level of its body to a constant factory
        (`m = torch.zeros(...)`, `m = x.new_ones(...).bool()`) and mentions it in an index
        or in the arguments of a `where`/`masked_*` call."""
        for func in index.functions():
            created = {
                stmt.targets[0].id
                for stmt in func.body
                if isinstance(stmt, ast.Assign)
                and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)
                and _ast_creation(stmt.value, index)
            }
            if not created:
                continue
            for node in sc.walk(func):
                if isinstance(node, ast.Subscript):
                    places = [node.slice]
                elif isinstance(node, ast.Call) and _ast_mask_call(node, index):
                    places = [*node.args, *(k.value for k in node.keywords)]
                else:
                    continue
                for place in places:
                    if any(isinstance(n, ast.Name) and n.id in created for n in sc.walk(place)):
                        return True
        return False

    def __init__(self, context) -> None:
        super().__init__(context)
        self._created: dict[int, frozenset[str]] = {}

    VALID = [
        # the correct LDAM: scatter_ right after the creation
        Valid(
            """
            import torch
            import torch.nn.functional as F

            class LDAMLoss(torch.nn.Module):
                def forward(self, x, target):
                    index = torch.zeros_like(x, dtype=torch.uint8)
                    index.scatter_(1, target.data.view(-1, 1), 1)
                    index_float = index.type(torch.cuda.FloatTensor)
                    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(0, 1))
                    x_m = x - batch_m.view((-1, 1))
                    output = torch.where(index, x_m, x)
                    return F.cross_entropy(self.s * output, target)
            """
        ),
        Valid(
            """
            import torch
            def f(x, idx):
                keep = torch.zeros(x.size(0), dtype=torch.bool)
                keep[idx] = True
                return x[keep]
            """
        ),
        Valid(
            """
            import torch
            def f(x, a, b):
                mask = torch.zeros_like(x, dtype=torch.bool)
                mask |= a > 0
                mask &= b > 0
                return x.masked_fill(mask, 0.0)
            """
        ),
        # near-misses from transformers' logits processors and data collators
        Valid(
            """
            import torch
            def f(scores, eos_id):
                top = torch.argmax(scores, dim=-1)
                m = torch.zeros_like(scores, dtype=torch.bool)
                m[top == eos_id, :eos_id] = True
                return scores.masked_fill(m, -float("inf"))
            """
        ),
        Valid(
            """
            import torch
            def f(inputs, labels, special, span):
                masked = torch.full(labels.shape, 0, dtype=torch.bool)
                for i in range(labels.size(0)):
                    masked[i, span[i]:span[i] + 3] = 1
                masked.masked_fill_(special, value=0.0)
                inputs[masked] = 0
                labels[~masked] = -100
                return inputs, labels
            """
        ),
        # written inside a branch or a loop: cannot tell, stay quiet
        Valid(
            """
            import torch
            def f(x, boxes):
                valid = torch.ones(len(boxes), dtype=torch.bool)
                for i, b in enumerate(boxes):
                    if b.sum() == 0:
                        valid[i] = False
                return boxes[valid]
            """
        ),
        # written through a slice, a view alias, a helper call, or fill_
        Valid(
            """
            import torch
            def f(x, y):
                m = torch.zeros(4, 4, dtype=torch.bool)
                m[:, 0].fill_(True)
                return torch.where(m, x, y)
            """
        ),
        Valid(
            """
            import torch
            def f(x, t):
                m = torch.zeros_like(x, dtype=torch.bool)
                flat = m.view(-1)
                flat[t] = True
                return x.masked_fill(m, 0)
            """
        ),
        Valid(
            """
            import torch
            def f(x):
                m = torch.zeros_like(x, dtype=torch.bool)
                populate(m, x)
                return torch.where(m, x, 0)
            """
        ),
        Valid(
            """
            import torch
            def f(x, a, b):
                m = torch.empty(x.shape, dtype=torch.bool)
                torch.gt(a, b, out=m)
                return x[m]
            """
        ),
        # rebound before the use
        Valid(
            """
            import torch
            def f(x):
                m = torch.zeros_like(x, dtype=torch.bool)
                m = x > 0
                return x[m]
            """
        ),
        # integer zeros used as an index is a gather, not a mask
        Valid(
            """
            import torch
            def f(x, n):
                idx = torch.zeros(n, dtype=torch.long)
                return x[idx]
            """
        ),
        Valid(
            """
            import torch
            def f(x):
                idx = torch.zeros_like(x)
                return x[idx]
            """
        ),
        # created inside a branch: unknown
        Valid(
            """
            import torch
            def f(x, t, train):
                if train:
                    m = torch.zeros_like(x, dtype=torch.bool)
                else:
                    m = t > 0
                return torch.where(m, x, 0)
            """
        ),
        # used inside a lambda that may run after the write
        Valid(
            """
            import torch
            def f(x, t):
                m = torch.zeros_like(x, dtype=torch.bool)
                g = lambda: torch.where(m, x, 0)
                m.scatter_(1, t.view(-1, 1), True)
                return g()
            """
        ),
        # a constant inline condition is not a created-then-forgotten mask
        Valid(
            """
            import torch
            def f(x):
                return torch.where(torch.zeros_like(x, dtype=torch.bool), x, 0)
            """
        ),
        # full() with a run-time value: a uniform switch, possibly on purpose
        Valid(
            """
            import torch
            def f(x, a, use_a):
                m = torch.full_like(x, use_a, dtype=torch.bool)
                return torch.where(m, a, x)
            """
        ),
        # numpy arrays are out of scope
        Valid(
            """
            import numpy as np
            def f(x):
                m = np.zeros(x.shape, dtype=bool)
                return np.where(m, x, 0)
            """
        ),
        # the chained call writes it at creation
        Valid(
            """
            import torch
            def f(x, t):
                m = torch.zeros_like(x).scatter_(1, t.view(-1, 1), 1).bool()
                return torch.where(m, x, 0)
            """
        ),
        # a write inside the compound statement that holds the use
        Valid(
            """
            import torch
            def f(xs, x):
                m = torch.zeros_like(x, dtype=torch.bool)
                for t in xs:
                    x = torch.where(m, x, t)
                    m |= t > 0
                return x
            """
        ),
    ]
    INVALID = [
        # the seed: LDAMLoss.forward without its scatter_ line
        Invalid(
            """
            import numpy as np
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class LDAMLoss(nn.Module):
                def forward(self, x, target):
                    index = torch.zeros_like(x, dtype=torch.uint8)
                    index_float = index.type(torch.cuda.FloatTensor)
                    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(1,0)) # 0,1
                    batch_m = batch_m.view((16, 1)) # size=(batch_size, 1) (-1,1)
                    x_m = x - batch_m
                    output = torch.where(index, x_m, x)
                    if self.weight is not None:
                        output = output * self.weight[None, :]
                    target = torch.flatten(target)
                    logit = output * self.s
                    return F.cross_entropy(logit, target, weight=self.weight)
            """,
            line=13,
            count=1,
        ),
        # aliased import, `from torch import where`, `.float()` read
        Invalid(
            """
            import torch as T
            from torch import where, zeros_like

            def margin(x, labels, m):
                index = zeros_like(x, dtype=T.bool)
                x_m = x - m * index.float()
                return where(index, x_m, x)
            """,
            line=7,
        ),
        # ones mask: all True; method forms; two uses, one report each
        Invalid(
            """
            import torch
            def f(scores, boxes):
                keep = torch.ones(scores.size(0), dtype=torch.bool)
                scores = scores.masked_fill(~keep, 0.0)
                return boxes[keep], scores
            """,
            line=4,
            count=2,
        ),
        # x.new_zeros(...) and the method form of where
        Invalid(
            """
            import torch
            def f(x, y):
                mask = x.new_zeros(x.shape, dtype=torch.bool)
                return x.where(mask, y)
            """,
            line=4,
        ),
        # full(..., False) is bool; use inside an `if` that never writes it
        Invalid(
            """
            import torch
            def f(x, flag):
                m = torch.full(x.shape, False)
                if flag:
                    x = x[m]
                return x
            """,
            line=5,
        ),
        # the torch.masked_select function form, and an empty_like mask
        Invalid(
            """
            import torch
            def f(x, v):
                m = torch.empty_like(x, dtype=torch.bool)
                return torch.masked_select(x, m)
            """,
            line=4,
        ),
    ]

    # ------------------------------------------------------------------ visitors

    def visit_Call(self, node: cst.Call) -> None:
        use = self._call_use(node)
        if use is not None:
            self._check(use)

    def visit_Subscript(self, node: cst.Subscript) -> None:
        for element in node.slice:
            if isinstance(element.slice, cst.Index):
                use = _mask_expression(element.slice.value, self.context)
                if use is not None:
                    name, negated, dtype = use
                    if not self._may_be_created(name.value):
                        continue
                    code = self.context.code(node)
                    user = f"boolean indexing `{code}`" if len(code) <= 40 else "boolean indexing"
                    self._check(Use(element.slice.value, name, negated, dtype, user, True))

    # ------------------------------------------------------------------ uses

    def _call_use(self, node: cst.Call) -> Use | None:
        func = node.func
        qual = self.context.qualname(func)
        mask_arg: cst.BaseExpression | None = None
        if qual == "torch.where":
            mask_arg = _argument(node, 0, "condition")
            user = "torch.where()"
        elif qual in ("torch.masked_fill", "torch.masked_select", "torch.masked_scatter"):
            mask_arg = _argument(node, 1, "mask")
            user = f"{qual}()"
        elif qual is None and isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "where":
                mask_arg = _argument(node, 0, "condition")
            elif method in MASK_METHODS:
                mask_arg = _argument(node, 0, "mask")
            user = f"{method}()"
        if mask_arg is None:
            return None
        found = _mask_expression(mask_arg, self.context)
        if found is None:
            return None
        name, negated, dtype = found
        return Use(mask_arg, name, negated, dtype, user, False)

    # ------------------------------------------------------------------ analysis

    def _may_be_created(self, name: str) -> bool:
        """Whether `_check` can find a creation for `name` at the current node: the
        innermost function has a top-level `name = <constant factory>`. Saves the walk
        over the statements before the use for the many indexes that are not masks."""
        located = self._locate(None)
        if located is None:
            return False
        func = located[0]
        created = self._created.get(id(func))
        if created is None:
            created = self._created[id(func)] = frozenset(
                small.targets[0].target.value
                for stmt in body_statements(func)
                if isinstance(stmt, cst.SimpleStatementLine)
                for small in stmt.body
                if isinstance(small, cst.Assign)
                and len(small.targets) == 1
                and isinstance(small.targets[0].target, cst.Name)
                and _usable_creation(_creation(small.value, self.context))
            )
        return name in created

    def _check(self, use: Use) -> None:
        if not self._may_be_created(use.name.value):
            return
        located = self._locate(use)
        if located is None:
            return
        func, statement = located
        name = use.name.value
        origin = straight_line_origin(func, name, statement)
        if origin is None:
            return
        creation = _creation(origin.value, self.context)
        if not _usable_creation(creation):
            return  # `full(shape, flag)`: a uniform mask chosen at run time can be deliberate
        if use.boolean_index:
            dtype = use.mask_dtype if use.mask_dtype is not None else creation.mask_dtype
            if dtype is not True:
                return
        # the creation line's other small statements, the statements in between, and the
        # statement holding the use (minus the use itself)
        region: list[cst.CSTNode] = [
            small for small in origin.statement.body if not _assigns_from(small, origin.value)
        ]
        region += statements_between(func, origin.statement, statement)
        region.append(statement)
        if _may_write(region, name, use.node, self.context):
            return
        self.report(use.node, self._message(func, use, creation))

    def _locate(self, use: Use) -> tuple[cst.FunctionDef, cst.BaseStatement] | None:
        """The innermost function and its top-level statement that holds the use."""
        stack = self.context.stack
        for i in range(len(stack) - 1, -1, -1):
            node = stack[i]
            if isinstance(node, cst.FunctionDef):
                if i + 2 < len(stack) and isinstance(stack[i + 1], cst.IndentedBlock):
                    return node, stack[i + 2]
                return None
            if isinstance(
                node,
                (cst.Lambda, cst.ClassDef, cst.GeneratorExp, cst.ListComp, cst.SetComp,
                 cst.DictComp),
            ):
                return None  # deferred or separately scoped: cannot tell when it runs
        return None

    def _message(self, func: cst.FunctionDef, use: Use, creation: Creation) -> str:
        name = use.name.value
        if creation.kind == "empty" or creation.fill is None:
            state = "the mask holds uninitialised memory"
        else:
            value = creation.fill != use.negated
            state = f"the mask is all {value}"
            if use.negated:
                state = f"`{name}` is all {not value}, so the mask is all {value}"
        if creation.kind == "ones" or (creation.kind == "full" and creation.fill):
            hint = f"did you forget to clear the entries to exclude, e.g. `{name}[idx] = False`?"
        elif creation.kind == "empty":
            hint = f"did you forget to fill it, e.g. `{name}.fill_(False)` then `{name}.scatter_(...)`?"
        else:
            target = next((p for p in TARGET_PARAMS if p in parameter_names(func)), None)
            write = (
                f"{name}.scatter_(1, {target}.view(-1, 1), 1)" if target else f"{name}.scatter_(...)"
            )
            hint = f"did you forget `{write}`?"
        return (
            f"`{name}` is created by {creation.factory}() and used as a mask by {use.user} "
            f"without being written in between: {state} ({hint})"
        )


# ------------------------------------------------------------------------ helpers


def _argument(call: cst.Call, position: int, keyword: str) -> cst.BaseExpression | None:
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    if any(a.star for a in call.args):
        return None
    return positional[position].value if position < len(positional) else None


def _mask_expression(expr, context) -> tuple[cst.Name, bool, bool | None] | None:
    """`m`, `~m`, `m.bool()`, `m.byte()`, `m.to(torch.bool)` -> (m, negated, dtype)."""
    negated = False
    dtype: bool | None = None
    while True:
        if isinstance(expr, cst.Name):
            if context.qualname(expr) is not None:
                return None  # an imported name, not a local
            return expr, negated, dtype
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.BitInvert):
            negated = not negated
            expr = expr.expression
            continue
        if (
            isinstance(expr, cst.Call)
            and isinstance(expr.func, cst.Attribute)
            and expr.func.attr.value in ("bool", "byte", "to", "type")
        ):
            converted = _conversion_dtype(expr, context)
            if converted is None and not _is_device_argument(expr):
                return None
            if dtype is None:
                dtype = converted
            expr = expr.func.value
            continue
        return None


def _dtype_of(expr: cst.BaseExpression | None, context) -> bool | None:
    if expr is None:
        return None
    if isinstance(expr, cst.Name) and expr.value == "bool" and context.qualname(expr) is None:
        return True
    qual = context.qualname(expr)
    if qual in MASK_DTYPES:
        return True
    if qual in OTHER_DTYPES:
        return False
    return None


def _conversion_dtype(call: cst.Call, context) -> bool | None:
    """The dtype after `.bool()`, `.long()`, `.to(torch.bool)`...; None: unchanged/unknown."""
    method = call.func.attr.value
    if method in ("bool", "byte"):
        return True
    if method in ("long", "int", "float", "half", "double"):
        return False
    if method in ("to", "type"):
        for arg in call.args:
            if arg.keyword is None or arg.keyword.value == "dtype":
                found = _dtype_of(arg.value, context)
                if found is not None:
                    return found
    return None


def _creation(value: cst.BaseExpression, context) -> Creation | None:
    """`torch.zeros_like(x, dtype=torch.bool)`, optionally followed by conversions."""
    conversions: list[cst.Call] = []
    while (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in TRANSPARENT_METHODS
        and context.qualname(value.func) is None
    ):
        conversions.append(value)
        value = value.func.value
    if not isinstance(value, cst.Call):
        return None
    qual = context.qualname(value.func)
    if qual in TORCH_CREATORS:
        kind, factory = TORCH_CREATORS[qual], qual.rsplit(".", 1)[1]
        like = factory.endswith("_like")
        fill_position = 1  # full(size, value) and full_like(input, value)
    elif (
        qual is None
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in METHOD_CREATORS
    ):
        factory = value.func.attr.value
        kind, like = METHOD_CREATORS[factory], True  # dtype follows the receiver
        fill_position = 1
    else:
        return None
    dtype_arg = next(
        (a.value for a in value.args if a.keyword is not None and a.keyword.value == "dtype"),
        None,
    )
    mask_dtype = _dtype_of(dtype_arg, context)
    fill: bool | None = {"zeros": False, "ones": True}.get(kind)
    if kind == "full":
        fill_value = _argument(value, fill_position, "fill_value")
        fill = _truth(fill_value)
        if dtype_arg is None and isinstance(fill_value, cst.Name) and fill is not None:
            mask_dtype = True  # full(size, True/False) is a bool tensor
    if dtype_arg is None and mask_dtype is None and not like and kind != "full":
        mask_dtype = False  # the default floating dtype
    for call in reversed(conversions):  # innermost first
        converted = _conversion_dtype(call, context)
        if converted is not None:
            mask_dtype = converted
        elif call.func.attr.value in ("to", "type") and any(
            a.keyword is None or a.keyword.value == "dtype" for a in call.args
        ):
            if not _is_device_argument(call):
                mask_dtype = None
    return Creation(kind, factory, mask_dtype, fill)


def _usable_creation(creation: Creation | None) -> bool:
    return creation is not None and not (creation.kind == "full" and creation.fill is None)


_TORCH_CREATORS = frozenset(TORCH_CREATORS)
_MASK_FUNCTIONS = frozenset({"torch.where", "torch.masked_fill", "torch.masked_select", "torch.masked_scatter"})


def _ast_creation(value: ast.AST, index: sc.AstIndex) -> bool:
    """Whether `_creation` may accept value (on the stdlib tree)."""
    while (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in TRANSPARENT_METHODS
    ):
        value = value.func.value
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    if isinstance(func, ast.Attribute) and func.attr in METHOD_CREATORS:
        return True
    return index.resolves_to(func, _TORCH_CREATORS)


def _ast_mask_call(call: ast.Call, index: sc.AstIndex) -> bool:
    """A call `_call_use` may read a mask from."""
    func = call.func
    if isinstance(func, ast.Attribute) and (func.attr == "where" or func.attr in MASK_METHODS):
        return True
    return index.resolves_to(func, _MASK_FUNCTIONS)


def _is_device_argument(call: cst.Call) -> bool:
    return all(
        isinstance(a.value, cst.SimpleString)
        or (a.keyword is not None and a.keyword.value in ("device", "non_blocking"))
        or "device" in (dotted_name(a.value) or "").lower()
        for a in call.args
    )


def _truth(node: cst.BaseExpression | None) -> bool | None:
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return node.value == "True"
    if isinstance(node, (cst.Integer, cst.Float)):
        try:
            return float(node.value.replace("_", "")) != 0
        except ValueError:
            return None
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return _truth(node.expression)
    return None


def _assigns_from(small: cst.BaseSmallStatement, value: cst.BaseExpression) -> bool:
    return isinstance(small, cst.Assign) and small.value is value


# ----------------------------------------------------------------- write analysis


def _may_write(region, name: str, skip: cst.CSTNode, context) -> bool:
    """Whether anything in region may write the tensor bound to `name` or rebind it.

    Over-approximates: local names assigned from a chain rooted at the mask
    (`m = mask.view(-1)`) are aliases, and any use of the mask or an alias that is not a
    known read counts as a write. `skip` (the use under test) is ignored.
    """
    aliases = {name}
    while True:
        finder = _WriteFinder(aliases, name, skip, context)
        for node in region:
            walk(node, finder)
            if finder.writes:
                return True
        if finder.new_aliases <= aliases:
            return False
        aliases |= finder.new_aliases


class _WriteFinder(Visitor):
    def __init__(self, aliases: set[str], name: str, skip: cst.CSTNode, context) -> None:
        self.aliases = aliases
        self.name = name
        self.skip = skip
        self.context = context
        self.stack: list[cst.CSTNode] = []
        self.writes = False
        self.new_aliases: set[str] = set()

    def on_visit(self, node: cst.CSTNode) -> bool:
        if node is self.skip or self.writes:
            return False
        if isinstance(node, cst.Name) and node.value in self.aliases and self._is_variable(node):
            if self._classify(node):
                self.writes = True
                return False
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if self.stack and self.stack[-1] is original_node:
            self.stack.pop()

    def _is_variable(self, node: cst.Name) -> bool:
        parent = self.stack[-1] if self.stack else None
        if isinstance(parent, cst.Attribute) and parent.attr is node:
            return False
        if isinstance(parent, cst.Arg) and parent.keyword is node:
            return False
        if isinstance(parent, (cst.Param, cst.FunctionDef, cst.ClassDef, cst.ImportAlias)):
            return False
        return True

    def _classify(self, node: cst.Name) -> bool:
        """True when this occurrence may write the mask."""
        if any(isinstance(n, (cst.Lambda, cst.FunctionDef, cst.ClassDef)) for n in self.stack):
            return True  # a closure may run later and write it
        expr: cst.CSTNode = node
        fresh = False
        depth = len(self.stack) - 1
        while depth >= 0:
            parent = self.stack[depth]
            if isinstance(parent, cst.Attribute) and parent.value is expr:
                if parent.attr.value in FRESH_ATTRIBUTES:
                    fresh = True
            elif isinstance(parent, cst.Subscript) and parent.value is expr:
                pass
            elif isinstance(parent, cst.Call) and parent.func is expr:
                if isinstance(expr, cst.Attribute):
                    method = expr.attr.value
                    if method in MUTATING_METHODS or is_inplace_tensor_method(method):
                        return True
                    if method in FRESH_METHODS:
                        fresh = True
            else:
                break
            expr = parent
            depth -= 1
        if depth < 0:
            return True
        parent = self.stack[depth]
        if isinstance(parent, cst.Expr):
            return False
        if isinstance(parent, cst.AssignTarget):
            return not (isinstance(expr, cst.Name) and expr.value != self.name)
        if isinstance(parent, (cst.AugAssign, cst.AnnAssign)) and parent.target is expr:
            return True
        if isinstance(parent, cst.AugAssign):
            return False
        if isinstance(parent, (cst.Assign, cst.AnnAssign)):
            targets = (
                [t.target for t in parent.targets] if isinstance(parent, cst.Assign)
                else [parent.target]
            )
            if not all(isinstance(t, cst.Name) for t in targets):
                return True  # stored into an attribute, item or tuple: escapes
            if not fresh:
                self.new_aliases.update(t.value for t in targets)
            return False
        if isinstance(parent, cst.Arg):
            call = self.stack[depth - 1] if depth >= 1 else None
            return not (isinstance(call, cst.Call) and self._reads_arguments(call))
        if isinstance(parent, cst.Element):
            container = self.stack[depth - 1] if depth >= 1 else None
            arg = self.stack[depth - 2] if depth >= 2 else None
            call = self.stack[depth - 3] if depth >= 3 else None
            return not (
                isinstance(container, (cst.List, cst.Tuple))
                and isinstance(arg, cst.Arg)
                and isinstance(call, cst.Call)
                and self._reads_arguments(call)
            )
        if isinstance(
            parent,
            (cst.BinaryOperation, cst.Comparison, cst.ComparisonTarget, cst.UnaryOperation,
             cst.Index, cst.If, cst.While, cst.Assert, cst.FormattedStringExpression),
        ):
            return False
        if isinstance(parent, cst.IfExp) and parent.test is expr:
            return False
        return True

    def _reads_arguments(self, call: cst.Call) -> bool:
        """Whether the call certainly leaves its tensor arguments unchanged."""
        if any(a.keyword is not None and a.keyword.value == "out" for a in call.args):
            return False
        func = call.func
        qual = self.context.qualname(func)
        if qual is not None:
            head, _, last = qual.rpartition(".")
            if last.endswith("_"):
                return False
            return head == "torch" or qual.startswith(PURE_TORCH_NAMESPACES)
        if isinstance(func, cst.Name):
            return func.value in READ_ONLY_BUILTINS
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            if method == "set_":
                return False
            return method in READ_ONLY_METHODS or (
                is_inplace_tensor_method(method) and method not in MUTATING_METHODS
            )
        return False
