"""
## What it does
Flags a tensor created as `torch.uint8` (`dtype=torch.uint8` in any factory, `.byte()`,
`.type(torch.uint8)`, `.to(torch.uint8)`, `torch.ByteTensor(...)`) that is used as a mask:
the condition of `torch.where(cond, a, b)` / `x.where(cond, y)`, the mask of
`masked_fill(_)`, `masked_select` or `masked_scatter(_)`, or a boolean index `x[mask]`.
The tensor is followed from its creation to the mask position either directly or through a
local variable of the same function.

## Why is this bad?
Masks have been `torch.bool` since PyTorch 1.2; uint8 masks survive only as a deprecated
path. On torch 2.13, `masked_fill`, `masked_select`, `masked_scatter` and index assignment
of a scalar (`x[mask] = 0`) raise `RuntimeError: ... only supports boolean masks`, while
`torch.where` and `x[mask]` still run but warn ("where received a uint8 condition tensor",
"indexing with dtype torch.uint8 is now deprecated") and will raise in a future release.
uint8 masks also invite real bugs: `~mask` on a uint8 tensor gives 254/255, which is
"true" everywhere, instead of the logical negation.

## Example
```python
def forward(self, x, target):
    index = torch.zeros_like(x, dtype=torch.uint8)
    index.scatter_(1, target.view(-1, 1), 1)
    index_float = index.type(torch.cuda.FloatTensor)
    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(0, 1))
    return torch.where(index, x - batch_m.view(-1, 1), x)
```

## Use instead
```python
def forward(self, x, target):
    index = torch.zeros_like(x, dtype=torch.bool)
    index.scatter_(1, target.view(-1, 1), 1)
    index_float = index.type(torch.cuda.FloatTensor)
    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(0, 1))
    return torch.where(index, x - batch_m.view(-1, 1), x)
```

## Fix safety
The fix changes the creation site: `dtype=torch.uint8` becomes `dtype=torch.bool`,
`.byte()` and a lone `.type(torch.uint8)` / `.to(torch.uint8)` become `.bool()`, and
`torch.ByteTensor(...)` becomes `torch.BoolTensor(...)` (the legacy constructor is kept, so
`torch.ByteTensor(3, 4)` still means a size and the `torch.cuda` variant still allocates on
the GPU; `torch.tensor(...)` would read `3` as data). A `1 - mask` on the way to the mask
position, the uint8 idiom for negation, becomes `~mask`, since `-` raises on bool tensors.

The fix is safe when the tensor is known to hold only 0 and 1 (`zeros`, `ones`, `full` with
0 or 1, a literal of 0s and 1s, a `fill_(0)`, or `.byte()` of a comparison or another
boolean expression) and every use of it is a mask position, a conversion that gives the
same values for a 0/1 tensor (`.float()`, `.long()`, `.type(T)`, `.to(dtype)`, `.sum()`), a
shape query, or a write of the literal 0 or 1 (`scatter_(dim, index, 1)`, `fill_(0)`,
`m[i] = 1`). Otherwise it is unsafe: `~mask` changes from bitwise to logical negation
(which is usually the bug being fixed), `.byte()` of a float tensor truncates (0.5 becomes
0) where `.bool()` does not, and code that receives the tensor may depend on its dtype.
When another use of the tensor would raise on bool (`(1 - mask) * x`, `-mask`), or the
tensor comes from a local alias of `torch.ByteTensor`, the diagnostic is reported without
a fix.

## Known false positives
A uint8 tensor really meant as an index *into* another tensor (a lookup table,
`palette[label_map]`) is flagged too: torch reads any uint8 index as a mask, so the code is
wrong either way, but the right fix there is `.long()`, not `.bool()`.

The rule follows a tensor through straight-line code only. A local assigned in a branch or
loop other than the one that uses it, rebound anywhere in a loop that uses it, read in a
nested function, passed through another function, stored on `self` (a mask buffer built in
`__init__` and used in `forward`), or combined with `&`/`|` is not followed, so those
masks are missed rather than guessed.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Sequence

import libcst as cst

from trainlint import screen as sc
from trainlint.rule import Applicability, Fix, Invalid, Rule, Valid
from trainlint.rules._analysis import BindingTargets, Visitor
from trainlint.traverse import walk

# ----------------------------------------------------------------------------- vocabulary

UINT8 = "torch.uint8"
BYTE_TENSOR_TYPES = {"torch.ByteTensor", "torch.cuda.ByteTensor"}
# Names whose presence precedes any uint8 creation (`torch.uint8`, `.byte()`, `ByteTensor`).
MARKERS = {"uint8", "byte", "ByteTensor"}

MASKED_METHODS = {"masked_fill", "masked_fill_", "masked_select", "masked_scatter", "masked_scatter_"}

# Methods whose result has the receiver's dtype (a uint8 receiver stays uint8).
DTYPE_PRESERVING = {
    "cuda", "cpu", "clone", "detach", "contiguous", "view", "view_as", "reshape",
    "reshape_as", "unsqueeze", "squeeze", "expand", "expand_as", "repeat", "t",
    "transpose", "permute", "flatten", "pin_memory", "narrow", "flip", "roll",
}
# Attribute reads with the same property.
DTYPE_PRESERVING_ATTRS = {"data", "T", "mT"}

# Conversions that give identical values for a 0/1 tensor whether it is uint8 or bool.
VALUE_CONVERSIONS = {"float", "double", "half", "bfloat16", "long", "int", "short", "bool", "byte"}
# Methods of a 0/1 tensor whose result does not depend on uint8 vs bool.
DTYPE_BLIND_METHODS = {"sum", "nonzero", "count_nonzero", "size", "dim", "numel", "argwhere"}
DTYPE_BLIND_ATTRS = {"shape", "device", "ndim", "is_cuda"}

ZERO_ONE_FACTORIES = {
    "torch.zeros", "torch.ones", "torch.zeros_like", "torch.ones_like", "torch.eye",
}
ZERO_ONE_METHODS = {"new_zeros", "new_ones"}
FULL_FACTORIES = {"torch.full", "torch.full_like"}
TORCH_DTYPES = {
    "float", "float32", "float64", "double", "float16", "half", "bfloat16", "int", "int32",
    "int64", "long", "int16", "short", "int8", "uint8", "bool",
}
LITERAL_FACTORIES = {"torch.tensor", "torch.as_tensor"}

BOOLEAN_METHODS = {
    "bool", "eq", "ne", "gt", "ge", "lt", "le", "logical_not", "logical_and", "logical_or",
    "logical_xor", "isnan", "isinf", "isfinite", "isposinf", "isneginf", "isclose", "signbit",
    "eq_", "ne_", "gt_", "ge_", "lt_", "le_",
}
BOOLEAN_FUNCTIONS = {
    f"torch.{n}"
    for n in (
        "eq", "ne", "gt", "ge", "lt", "le", "logical_not", "logical_and", "logical_or",
        "logical_xor", "isnan", "isinf", "isfinite", "isposinf", "isneginf", "isclose",
        "isin", "signbit",
    )
}

MAX_HOPS = 3

_UINT8_TYPES = frozenset({UINT8, *BYTE_TENSOR_TYPES})
_UINT8 = frozenset({UINT8})


# ----------------------------------------------------------------------------- screen


class _Screen:
    """A mask position whose expression leads, through the steps `_origin` follows and
    plain assignments of names (any scope, any order), to a uint8 creation."""

    def __init__(self, index: sc.AstIndex) -> None:
        self.index = index
        self.aliases: set[str] = set()  # names bound to a ByteTensor type

    def run(self) -> bool:
        index = self.index
        if not self._may_create():
            return False
        bindings = [
            (t.id, v)
            for t, v, stmt in sc.assignments(index)
            if isinstance(t, ast.Name)
            and v is not None
            and not isinstance(stmt, ast.AugAssign)
            and (not isinstance(stmt, ast.Assign) or len(stmt.targets) == 1)
        ]
        self.aliases = {name for name, value in bindings if self._byte_type_expr(value)}
        tainted: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, value in bindings:
                if name not in tainted and self._reaches_creation(value, tainted):
                    tainted.add(name)
                    changed = True
        for expr in self._mask_expressions():
            if self._reaches_creation(expr, tainted):
                return True
        return False

    def _may_create(self) -> bool:
        """A cheap first look: `.byte()`, or a uint8 / ByteTensor name or string."""
        index = self.index
        if "byte" in index.called or not index.strings.isdisjoint(BYTE_TENSOR_TYPES):
            return True
        if any(
            n.attr in ("uint8", "ByteTensor") and index.resolves_to(n, _UINT8_TYPES)
            for n in index.nodes(ast.Attribute)
        ):
            return True
        direct = {k for k, bound in index.imports.items() if not bound.isdisjoint(_UINT8_TYPES)}
        return not index.names.isdisjoint(direct)

    def _uint8(self, node: ast.AST) -> bool:
        return self.index.resolves_to(node, _UINT8)

    def _byte_type(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in BYTE_TENSOR_TYPES
        return self.index.resolves_to(node, BYTE_TENSOR_TYPES)

    def _byte_type_expr(self, node: ast.AST) -> bool:
        if isinstance(node, ast.IfExp):
            return self._byte_type_expr(node.body) and self._byte_type_expr(node.orelse)
        return not isinstance(node, ast.Constant) and self._byte_type(node)

    def _creation(self, call: ast.Call) -> bool:
        """Whether `_creation` may accept the call."""
        func = call.func
        if self._byte_type(func) or (isinstance(func, ast.Name) and func.id in self.aliases):
            return True
        if any(k.arg == "dtype" and self._uint8(k.value) for k in call.keywords):
            return True
        if not isinstance(func, ast.Attribute):
            return False
        method = func.attr
        if method == "byte":
            return not call.args and not call.keywords and not (
                isinstance(func.value, ast.Name) and func.value.id in ("self", "cls")
            )
        if method in ("type", "to"):
            values = [*call.args, *(k.value for k in call.keywords if k.arg in (None, "dtype"))]
            return any(
                self._uint8(v) or (method == "type" and self._byte_type(v)) for v in values
            )
        return False

    def _reaches_creation(self, expr: ast.AST, tainted: set[str]) -> bool:
        """`_origin`'s walk back from expr, with every name in `tainted` taken to hold a
        uint8 tensor."""
        while True:
            if isinstance(expr, ast.Call):
                if self._creation(expr):
                    return True
                func = expr.func
                if isinstance(func, ast.Attribute) and (
                    func.attr in DTYPE_PRESERVING or func.attr in ("fill_", "zero_", "to")
                ):
                    expr = func.value
                    continue
                return False
            if isinstance(expr, ast.Attribute) and expr.attr in DTYPE_PRESERVING_ATTRS:
                expr = expr.value
            elif isinstance(expr, ast.Subscript):
                expr = expr.value
            elif isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.Invert):
                expr = expr.operand
            elif isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Sub):
                expr = expr.right
            elif isinstance(expr, ast.Name):
                return expr.id in tainted
            else:
                return False

    def _mask_expressions(self):
        """What `_call_masks` and `_subscript_masks` may check."""
        for call in self.index.nodes(ast.Call):
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "where" or name in MASKED_METHODS:
                yield from call.args[:2]
                yield from (k.value for k in call.keywords if k.arg in ("condition", "mask"))
        for node in self.index.nodes(ast.Subscript):
            key = node.slice
            for element in key.elts if isinstance(key, ast.Tuple) else [key]:
                if not isinstance(element, (ast.Slice, ast.Constant)):
                    yield element


# ----------------------------------------------------------------------------- records


@dataclass
class Creation:
    """A node that makes a uint8 tensor, and how to turn it into a bool one."""

    node: cst.CSTNode  # the reported node: the factory / method call / constructor
    what: str  # for the message
    zero_one: bool  # values known to be 0 or 1
    edit: tuple[cst.CSTNode, cst.CSTNode] | None


@dataclass
class Use:
    kind: str  # "where", "masked", "index", "index-assign"
    api: str  # e.g. "torch.where", "masked_fill"


@dataclass
class Trace:
    """Where a mask expression comes from."""

    creation: Creation
    local: str | None  # the local the creation is assigned to, if any
    local_path: list[cst.CSTNode] | None  # ancestors of that assignment
    clean: bool  # every step from creation to mask gives the same result on a bool tensor
    zero_one: bool  # the tensor holds only 0 and 1
    negations: tuple[cst.BinaryOperation, ...] = ()  # `1 - m` steps, rewritten to `~m`


@dataclass
class Finding:
    creation: Creation
    local: str | None
    local_path: list[cst.CSTNode] | None
    uses: list[Use] = field(default_factory=list)
    clean: bool = True
    zero_one: bool = True
    negations: list[cst.BinaryOperation] = field(default_factory=list)


# ----------------------------------------------------------------------------- the rule


class Uint8Mask(Rule):
    __doc__ = __doc__
    code = "TL003"
    name = "uint8-mask"
    message = "uint8 tensor used as a mask; create it as `torch.bool`"
    fix_applicability = Applicability.UNSAFE
    tokens = (("*uint8*", "*bytetensor*", "byte"),)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        return _Screen(index).run()

    VALID = [
        # uint8 as image data
        Valid(
            """
            import torch
            def to_image(x):
                img = (x * 255).clamp(0, 255).byte()
                torch.save(img, "out.pt")
                return img.cpu().numpy()
            """
        ),
        Valid(
            """
            import torch
            def quantise(x):
                return x.to(torch.uint8)
            """
        ),
        Valid(
            """
            import torch
            def collate(batch):
                tensor = torch.zeros((len(batch), 3, 32, 32), dtype=torch.uint8)
                for i, img in enumerate(batch):
                    tensor[i] += img
                return tensor
            """
        ),
        # already a bool mask
        Valid(
            """
            import torch
            def f(x):
                index = torch.zeros_like(x, dtype=torch.bool)
                return torch.where(index, x - 1, x)
            """
        ),
        # converted to bool before the mask position
        Valid(
            """
            import torch
            def f(x, m):
                m = m.byte()
                m = m.bool()
                return x[m], x.masked_fill(m, 0)
            """
        ),
        Valid("import torch\ndef f(x, m):\n    return x[m.byte().bool()]\n"),
        # rebound in a branch: unknown, stay quiet
        Valid(
            """
            import torch
            def f(x, flag):
                m = torch.zeros_like(x, dtype=torch.uint8)
                if flag:
                    m = x > 0
                return x[m]
            """
        ),
        # rebound later in a loop that uses it
        Valid(
            """
            import torch
            def f(x, ys):
                m = torch.ones_like(x, dtype=torch.uint8)
                for y in ys:
                    x = torch.where(m, x, y)
                    m = y > 0
                return x
            """
        ),
        # single-argument torch.where is nonzero(), fine with uint8; numpy's where is not torch
        Valid(
            """
            import torch
            import numpy as np
            def f(x):
                m = (x > 0).byte()
                idx = torch.where(m)
                return idx, np.where(m.numpy(), 1, 0)
            """
        ),
        # the uint8 tensor is the indexed data or the filled tensor, not the mask
        Valid(
            """
            import torch
            def f(img, keep):
                img = img.byte()
                return img[keep], img.masked_fill(keep, 0), torch.where(keep, img, 0)
            """
        ),
        # a different variable of the same name in another function
        Valid(
            """
            import torch
            def make(x):
                m = torch.zeros_like(x, dtype=torch.uint8)
                return m
            def use(x, m):
                return x[m]
            """
        ),
        # dtype chosen at run time
        Valid(
            """
            import torch
            def f(x, cls, nc):
                cls = cls.to(torch.uint8 if nc <= 256 else torch.int32)
                return cls
            """
        ),
        # `.to(dtype)` after `.byte()` gives another dtype
        Valid("import torch\ndef f(x, m):\n    return x[m.byte().to(torch.bool)]\n"),
        # torchvision keypoint loss: uint8 then `torch.where(valid)[0]`, an index tensor
        Valid(
            """
            import torch
            def keypoint_loss(valid, logits, targets):
                valid = torch.cat(valid, dim=0).to(dtype=torch.uint8)
                valid = torch.where(valid)[0]
                return logits[valid], targets[valid]
            """
        ),
        # a reader object's `.byte()` is not a tensor
        Valid(
            """
            class Reader:
                def op(self, handlers):
                    code = self.byte()
                    return handlers[code]
            """
        ),
        # uint8 masks passed on to another function are not followed
        Valid(
            """
            import torch
            def f(x, crop):
                masks = (x > 0.5).byte()
                return crop(masks)[0]
            """
        ),
        # a closure reading the local: not followed
        Valid(
            """
            import torch
            def f(x):
                m = torch.zeros_like(x, dtype=torch.uint8)
                def g():
                    return x[m]
                return g
            """
        ),
        # a lambda or comprehension variable shadows the local
        Valid(
            """
            import torch
            def f(x, masks):
                m = x.byte()
                return [x[m] for m in masks]
            """
        ),
    ]
    INVALID = [
        # the seed: LDAMLoss.forward
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class LDAMLoss(nn.Module):
                def forward(self, x, target):
                    index = torch.zeros_like(x, dtype=torch.uint8)
                    index_float = index.type(torch.cuda.FloatTensor)
                    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(1,0))
                    batch_m = batch_m.view((16, 1))
                    x_m = x - batch_m
                    output = torch.where(index, x_m, x)
                    return F.cross_entropy(self.s * output, target, weight=self.weight)
            """,
            fixed="""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class LDAMLoss(nn.Module):
                def forward(self, x, target):
                    index = torch.zeros_like(x, dtype=torch.bool)
                    index_float = index.type(torch.cuda.FloatTensor)
                    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(1,0))
                    batch_m = batch_m.view((16, 1))
                    x_m = x - batch_m
                    output = torch.where(index, x_m, x)
                    return F.cross_entropy(self.s * output, target, weight=self.weight)
            """,
            line=7,
            count=1,
        ),
        # the original LDAM code, with scatter_ of the literal 1
        Invalid(
            """
            import torch as T
            def forward(x, target, m_list):
                index = T.zeros_like(x, dtype=T.uint8)
                index.scatter_(1, target.data.view(-1, 1), 1)
                index_float = index.type(T.FloatTensor)
                batch_m = T.matmul(m_list[None, :], index_float.transpose(0, 1))
                return T.where(index, x - batch_m.view((-1, 1)), x)
            """,
            fixed="""
            import torch as T
            def forward(x, target, m_list):
                index = T.zeros_like(x, dtype=T.bool)
                index.scatter_(1, target.data.view(-1, 1), 1)
                index_float = index.type(T.FloatTensor)
                batch_m = T.matmul(m_list[None, :], index_float.transpose(0, 1))
                return T.where(index, x - batch_m.view((-1, 1)), x)
            """,
            line=3,
        ),
        # names imported from torch; masked_fill raises
        Invalid(
            """
            from torch import where, uint8, zeros
            def f(x, n):
                pad = zeros(n, dtype=uint8)
                y = x.masked_fill(pad, 0.0)
                return where(pad, y, x)
            """,
            fixed="""
            from torch import where, uint8, zeros
            def f(x, n):
                pad = zeros(n, dtype=bool)
                y = x.masked_fill(pad, 0.0)
                return where(pad, y, x)
            """,
        ),
        # .byte() of a comparison used as an index: safe
        Invalid(
            """
            import torch
            def select(scores, thr):
                keep = (scores > thr).byte()
                return scores[keep], keep.sum()
            """,
            fixed="""
            import torch
            def select(scores, thr):
                keep = (scores > thr).bool()
                return scores[keep], keep.sum()
            """,
        ),
        # .byte() of unknown values: unsafe (0.5 -> 0 as uint8, True as bool)
        Invalid(
            """
            def f(x, w):
                m = w.byte()
                return x.masked_select(m)
            """,
            fixed="""
            def f(x, w):
                m = w.bool()
                return x.masked_select(m)
            """,
        ),
        # inline ByteTensor constructor and .type(torch.uint8)
        Invalid(
            """
            import torch
            def f(x, lengths):
                x = x.masked_fill_(torch.ByteTensor([[0, 1], [1, 1]]), 0)
                m = (x > 0).type(torch.uint8).cuda()
                x[m] = 0
                return x
            """,
            fixed="""
            import torch
            def f(x, lengths):
                x = x.masked_fill_(torch.BoolTensor([[0, 1], [1, 1]]), 0)
                m = (x > 0).bool().cuda()
                x[m] = 0
                return x
            """,
            count=2,
        ),
        # returned to the caller: unsafe, still fixed at the creation site
        Invalid(
            """
            import torch
            def f(x, y):
                m = torch.ones(x.shape, dtype=torch.uint8)
                return x[m], m
            """,
            fixed="""
            import torch
            def f(x, y):
                m = torch.ones(x.shape, dtype=torch.bool)
                return x[m], m
            """,
        ),
        # `1 - m` outside a mask position would raise on bool: report only
        Invalid(
            """
            import torch
            def f(x, y):
                m = torch.ones(x.shape, dtype=torch.uint8)
                return x[m] + ((1 - m) * y).sum()
            """,
            line=3,
        ),
        # PyTorch-YOLOv3: a local alias of the ByteTensor types; report only
        Invalid(
            """
            import torch
            def build_targets(pred_boxes, x, b, best_n):
                ByteTensor = torch.cuda.ByteTensor if pred_boxes.is_cuda else torch.ByteTensor
                obj_mask = ByteTensor(4, 3).fill_(0)
                obj_mask[b, best_n] = 1
                return x[obj_mask], obj_mask.float()
            """,
            line=4,
        ),
        # `1 - mask`, the uint8 idiom for negation, raises on bool: rewritten to `~mask`
        Invalid(
            """
            def attend(scores, pad):
                mask = (pad != 0).byte()
                return scores.masked_fill(1 - mask, -1e9)
            """,
            fixed="""
            def attend(scores, pad):
                mask = (pad != 0).bool()
                return scores.masked_fill(~mask, -1e9)
            """,
        ),
        # `~` of a uint8 mask is bitwise (254/255, all true): the fix makes it logical
        Invalid(
            """
            def filter_empty(target, bbox):
                is_empty = (bbox[:, 0] >= bbox[:, 2]) | (bbox[:, 1] >= bbox[:, 3])
                return target[~is_empty.byte()]
            """,
            fixed="""
            def filter_empty(target, bbox):
                is_empty = (bbox[:, 0] >= bbox[:, 2]) | (bbox[:, 1] >= bbox[:, 3])
                return target[~is_empty.bool()]
            """,
        ),
        # module-level script code, `from torch import uint8 as u8`
        Invalid(
            """
            import torch as T
            from torch import uint8 as u8
            x = T.randn(3)
            m = T.tensor([1, 0, 1], dtype=u8)
            print(x[m])
            """,
            fixed="""
            import torch as T
            from torch import uint8 as u8
            x = T.randn(3)
            m = T.tensor([1, 0, 1], dtype=T.bool)
            print(x[m])
            """,
            line=4,
        ),
        # inside a loop body, tensor method where, .to(uint8) with a device
        Invalid(
            """
            import torch
            def f(xs, dev):
                out = []
                for x in xs:
                    valid = (x != 0).to(dev, torch.uint8)
                    out.append(x.where(valid, torch.zeros_like(x)))
                return out
            """,
            fixed="""
            import torch
            def f(xs, dev):
                out = []
                for x in xs:
                    valid = (x != 0).to(dev, torch.bool)
                    out.append(x.where(valid, torch.zeros_like(x)))
                return out
            """,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self.findings: dict[int, Finding] = {}
        self.flow = _Flow()
        self._torch_alias: str | None | bool = False
        # A creation always precedes (in traversal order) a use reached through a local,
        # so names are only followed once a uint8 marker has been seen.
        self._marker_seen = False
        self._module_aliases: dict[str, cst.BaseExpression] | None = None

    def visit_Name(self, node: cst.Name) -> None:
        if not self._marker_seen and node.value in MARKERS:
            self._marker_seen = True

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if not self._marker_seen and "ByteTensor" in node.value:
            self._marker_seen = True

    # --------------------------------------------------------------- mask positions

    def visit_Call(self, node: cst.Call) -> None:
        for expr, use in self._call_masks(node):
            self._check(expr, use, [*self.context.stack, node])

    def visit_Subscript(self, node: cst.Subscript) -> None:
        assigned = self._is_index_target(node)
        masks = self._subscript_masks(node, assigned)
        if not masks or (not assigned and self._is_annotation()):
            return
        for expr, use in masks:
            self._check(expr, use, [*self.context.stack, node])

    def _is_annotation(self) -> bool:
        return any(isinstance(n, cst.Annotation) for n in self.context.stack)

    def _is_index_target(self, node: cst.Subscript) -> bool:
        parent = self.context.parent()
        return (isinstance(parent, cst.AssignTarget) and parent.target is node) or (
            isinstance(parent, cst.AugAssign) and parent.target is node
        )

    def _call_masks(self, node: cst.Call) -> list[tuple[cst.BaseExpression, Use]]:
        func = node.func
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
        elif isinstance(func, cst.Name):
            attr = func.value
        else:
            return []
        if attr != "where" and attr not in MASKED_METHODS:
            return []
        qual = self.context.qualname(func)
        if qual is not None and not qual.startswith("torch."):
            return []  # numpy.where, pandas...
        if qual is None and not isinstance(func, cst.Attribute):
            return []
        # function form (torch.where, torch.masked_fill, torch.Tensor.where): the tensor is
        # an argument; method form (x.where, x.masked_fill): the receiver is the tensor
        function_form = qual is not None
        unbound_method = function_form and qual.startswith("torch.Tensor.")
        if attr == "where":
            if function_form and not unbound_method and len(node.args) < 3:
                return []  # torch.where(cond) is nonzero(): uint8 is fine there
            cond = _argument(node, 1 if unbound_method else 0, "condition")
            api = "torch.where" if function_form and not unbound_method else "Tensor.where"
            return [(cond, Use("where", api))] if cond is not None else []
        mask = _argument(node, 1 if function_form else 0, "mask")
        return [(mask, Use("masked", attr))] if mask is not None else []

    @staticmethod
    def _subscript_masks(
        node: cst.Subscript, assigned: bool
    ) -> list[tuple[cst.BaseExpression, Use]]:
        out = []
        for element in node.slice:
            if isinstance(element.slice, cst.Index) and element.slice.star is None:
                value = element.slice.value
                if isinstance(value, (cst.Integer, cst.SimpleString, cst.Slice)):
                    continue
                kind = "index-assign" if assigned else "index"
                out.append((value, Use(kind, "indexing")))
        return out

    # --------------------------------------------------------------- tracking

    def _check(self, expr: cst.BaseExpression, use: Use, path: list[cst.CSTNode]) -> None:
        trace = self._origin(expr, path, 0)
        if trace is None:
            return
        creation = trace.creation
        finding = self.findings.get(id(creation.node))
        if finding is None:
            finding = Finding(creation, trace.local, trace.local_path)
            self.findings[id(creation.node)] = finding
        finding.uses.append(use)
        finding.clean &= trace.clean
        finding.zero_one &= trace.zero_one
        finding.negations += [n for n in trace.negations if n not in finding.negations]

    def _origin(self, expr, path, hops: int) -> Trace | None:
        """Follow expr back to a uint8 creation through dtype-preserving steps and locals."""
        clean = True  # every step gives identical results on a 0/1 bool tensor
        filled: bool | None = None  # values set by an in-place fill on the way (0/1 or not)
        negations: list[cst.BinaryOperation] = []
        while True:
            creation = self._creation(expr, path)
            if creation is not None:
                zero_one = creation.zero_one if filled is None else filled
                return Trace(creation, None, None, clean, zero_one, tuple(negations))
            if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
                method = expr.func.attr.value
                if method in ("fill_", "zero_"):
                    if filled is None:
                        filled = method == "zero_" or (
                            len(expr.args) == 1 and _is_zero_one(expr.args[0].value)
                        )
                elif not (
                    method in DTYPE_PRESERVING or (method == "to" and _device_only_to(expr))
                ):
                    return None
                expr = expr.func.value
                continue
            if isinstance(expr, cst.Attribute) and expr.attr.value in DTYPE_PRESERVING_ATTRS:
                expr = expr.value
                continue
            if isinstance(expr, cst.Subscript):
                expr = expr.value
                continue
            if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.BitInvert):
                clean = False  # ~ is bitwise on uint8 (gives 254/255), logical on bool
                expr = expr.expression
                continue
            if (
                isinstance(expr, cst.BinaryOperation)
                and isinstance(expr.operator, cst.Subtract)
                and _int_value(expr.left) == 1
            ):
                # `1 - mask`, the uint8 idiom for negation, raises on bool: the fix rewrites
                # it to `~mask`, which gives the same mask for 0/1 values
                negations.append(expr)
                expr = expr.right
                continue
            if isinstance(expr, cst.Name) and hops < MAX_HOPS and self._marker_seen:
                reached = self.flow.reaching_assignment(expr.value, path)
                if reached is None:
                    return None
                value, value_path = reached
                inner = self._origin(value, value_path, hops + 1)
                if inner is None:
                    return None
                zero_one = inner.zero_one if filled is None else filled
                negations += inner.negations
                if inner.local is None:
                    # the creation (or a dtype-preserving chain on it) is assigned here
                    return Trace(
                        inner.creation, expr.value, value_path, clean and inner.clean,
                        zero_one, tuple(negations),
                    )
                # a second local in between: its uses are not checked, so never safe
                return Trace(
                    inner.creation, inner.local, inner.local_path, False, zero_one,
                    tuple(negations),
                )
            return None

    # --------------------------------------------------------------- creation sites

    def _creation(self, expr: cst.BaseExpression, path) -> Creation | None:
        if not isinstance(expr, cst.Call):
            return None
        func = expr.func
        qual = self.context.qualname(func)
        # torch.ByteTensor(...), torch.cuda.ByteTensor(...)
        if qual in BYTE_TENSOR_TYPES:
            return Creation(
                expr,
                f"`{self.context.code(func)}(...)`",
                _zero_one_literal_args(expr),
                self._rename_byte_tensor(func),
            )
        method = func.attr.value if isinstance(func, cst.Attribute) else None
        if method is None:
            # ByteTensor = torch.cuda.ByteTensor if cuda else torch.ByteTensor; ByteTensor(n)
            if qual is None and isinstance(func, cst.Name) and self._is_byte_alias(func, path):
                return Creation(
                    expr,
                    f"`{func.value}(...)`, an alias of `torch.ByteTensor`",
                    _zero_one_literal_args(expr),
                    None,  # the alias may also make data tensors: no fix
                )
        # x.byte() (not `self.byte()`: a reader class reading one byte)
        if (
            method == "byte"
            and qual is None
            and not expr.args
            and not (isinstance(func.value, cst.Name) and func.value.value in ("self", "cls"))
        ):
            return Creation(
                expr, "`.byte()`", self._is_boolean(func.value, path, 0), (func.attr, cst.Name("bool"))
            )
        # x.type(torch.uint8) / x.to(torch.uint8) / x.to(dev, torch.uint8) / x.type(torch.ByteTensor)
        if method in ("type", "to") and qual is None:
            for arg in expr.args:
                if arg.keyword is not None and arg.keyword.value != "dtype":
                    continue
                if self._is_uint8(arg.value) or (method == "type" and self._is_byte_type(arg.value)):
                    return Creation(
                        expr,
                        f"`.{method}({self.context.code(arg.value)})`",
                        self._is_boolean(func.value, path, 0),
                        self._type_to_bool_edit(expr, arg),
                    )
            return None
        # any torch function or tensor method with dtype=torch.uint8
        dtype = _keyword(expr, "dtype")
        if dtype is None or not self._is_uint8(dtype):
            return None
        if qual is not None and qual.startswith("torch."):
            zero_one = (
                qual in ZERO_ONE_FACTORIES
                or (qual in FULL_FACTORIES and _is_zero_one(_argument(expr, 1, "fill_value")))
                or (qual in LITERAL_FACTORIES and _zero_one_literal_args(expr))
            )
        elif qual is None and method is not None:
            zero_one = method in ZERO_ONE_METHODS or (
                method == "new_full" and _is_zero_one(_argument(expr, 1, "fill_value"))
            )
        else:
            return None
        return Creation(expr, "`dtype=torch.uint8`", zero_one, self._dtype_edit(dtype))

    def _is_uint8(self, node: cst.BaseExpression) -> bool:
        return self.context.qualname(node) == UINT8

    def _is_byte_type(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.SimpleString):
            return node.evaluated_value in BYTE_TENSOR_TYPES
        return self.context.qualname(node) in BYTE_TENSOR_TYPES

    def _is_byte_type_expr(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.IfExp):
            return self._is_byte_type_expr(node.body) and self._is_byte_type_expr(node.orelse)
        return not isinstance(node, cst.SimpleString) and self._is_byte_type(node)

    def _is_byte_alias(self, func: cst.Name, path) -> bool:
        if not self._marker_seen:
            return False
        reached = self.flow.reaching_assignment(func.value, path)
        if reached is not None:
            return self._is_byte_type_expr(reached[0])
        if self._module_aliases is None:
            self._module_aliases = self.flow.module_aliases(
                self.context.module, self._is_byte_type_expr
            )
        value = self._module_aliases.get(func.value)
        return value is not None and self._is_byte_type_expr(value)

    def _is_boolean(self, expr: cst.BaseExpression, path, hops: int) -> bool:
        """Whether expr certainly evaluates to a bool tensor (so its .byte() holds only 0/1)."""
        if isinstance(expr, cst.Comparison):
            return all(
                not isinstance(c.operator, (cst.In, cst.NotIn, cst.Is, cst.IsNot))
                for c in expr.comparisons
            )
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.BitInvert):
            return self._is_boolean(expr.expression, path, hops)
        if isinstance(expr, cst.BinaryOperation) and isinstance(
            expr.operator, (cst.BitAnd, cst.BitOr, cst.BitXor)
        ):
            return self._is_boolean(expr.left, path, hops) and self._is_boolean(
                expr.right, path, hops
            )
        if isinstance(expr, cst.Call):
            func = expr.func
            qual = self.context.qualname(func)
            if qual in BOOLEAN_FUNCTIONS:
                return True
            if isinstance(func, cst.Attribute) and qual is None:
                method = func.attr.value
                if method in BOOLEAN_METHODS:
                    return True
                if method in DTYPE_PRESERVING:
                    return self._is_boolean(func.value, path, hops)
            return False
        if isinstance(expr, cst.Name) and hops < MAX_HOPS:
            reached = self.flow.reaching_assignment(expr.value, path)
            return reached is not None and self._is_boolean(reached[0], reached[1], hops + 1)
        return False

    # --------------------------------------------------------------- fixes

    def _torch(self) -> str | None:
        """A local name bound to the torch module, if the file has one."""
        if self._torch_alias is False:
            names = sorted(k for k, v in self.context.imports.names.items() if v == "torch")
            self._torch_alias = "torch" if "torch" in names else (names[0] if names else None)
        return self._torch_alias  # type: ignore[return-value]

    def _bool_dtype(self, uint8: cst.BaseExpression) -> cst.BaseExpression | None:
        """`torch.uint8` -> `torch.bool`, `T.uint8` -> `T.bool`; a bare `uint8` needs a torch name."""
        if isinstance(uint8, cst.Attribute):
            return uint8.with_changes(attr=cst.Name("bool"))
        torch = self._torch()
        if torch is not None:
            return cst.Attribute(cst.Name(torch), cst.Name("bool")).with_changes(
                lpar=uint8.lpar, rpar=uint8.rpar
            )
        return None

    def _dtype_edit(self, uint8: cst.BaseExpression):
        new = self._bool_dtype(uint8)
        if new is None:
            # `from torch import uint8` and no name for torch itself: factories and `.to`
            # accept Python's `bool` as torch.bool
            new = cst.Name("bool").with_changes(lpar=uint8.lpar, rpar=uint8.rpar)
        return (uint8, new)

    def _type_to_bool_edit(self, call: cst.Call, arg: cst.Arg):
        func = call.func
        assert isinstance(func, cst.Attribute)
        value = arg.value
        if self._is_byte_type(value):
            # .type(torch.ByteTensor) also chooses the device (CPU): keep it, rename the type
            if isinstance(value, cst.SimpleString):
                return (value, value.with_changes(value=value.value.replace("ByteTensor", "BoolTensor")))
            return self._rename_byte_tensor(value)
        if len(call.args) == 1:
            # .type(torch.uint8) / .to(torch.uint8) -> .bool()
            return (call, call.with_changes(func=func.with_changes(attr=cst.Name("bool")), args=()))
        if func.attr.value == "type":
            new = self._bool_dtype(value)  # `.type(bool)` is rejected: needs torch.bool
            return None if new is None else (value, new)
        return self._dtype_edit(value)

    def _rename_byte_tensor(self, node: cst.BaseExpression):
        if isinstance(node, cst.Attribute):
            return (node.attr, cst.Name("BoolTensor"))
        torch = self._torch()
        qual = self.context.qualname(node)
        if torch is None or qual is None:
            return None  # `from torch import ByteTensor` only: BoolTensor is not imported
        dotted = torch + qual[len("torch"):].replace("ByteTensor", "BoolTensor")
        return (node, cst.parse_expression(dotted).with_changes(lpar=node.lpar, rpar=node.rpar))

    # --------------------------------------------------------------- safety of the fix

    def _uses(self, name: str, assign_path: list[cst.CSTNode]) -> tuple[bool, bool]:
        """(every use keeps results identical for a 0/1 bool tensor, some use raises on bool)."""
        scope = next(
            (n for n in reversed(assign_path) if isinstance(n, (cst.FunctionDef, cst.Module))),
            None,
        )
        if scope is None:
            return False, True
        checker = _UseChecker(name, self)
        walk(scope, checker)
        params = _params(scope) if isinstance(scope, cst.FunctionDef) else []
        return checker.bindings == 1 and name not in params and checker.ok, checker.hostile

    # --------------------------------------------------------------- reporting

    def leave_Module(self, node: cst.Module) -> None:
        for finding in self.findings.values():
            self._report(finding)

    def _report(self, finding: Finding) -> None:
        creation = finding.creation
        uses = finding.uses
        worst = next((u for u in uses if u.kind in ("masked", "index-assign")), uses[0])
        if worst.kind == "masked":
            effect = f"`{worst.api}` raises on a uint8 mask on torch 2.13 (only boolean masks are supported)"
        elif worst.kind == "index-assign":
            effect = (
                "index assignment through a uint8 mask raises on torch 2.13 for a scalar value "
                "and warns (deprecated) otherwise"
            )
        elif worst.kind == "where":
            effect = (
                f"`{worst.api}` with a uint8 condition is deprecated (torch 2.13 warns and "
                "converts it to bool)"
            )
        else:
            effect = (
                "indexing with a uint8 tensor is deprecated (torch 2.13 warns and reads it as "
                "a boolean mask)"
            )
        subject = f"`{finding.local}`" if finding.local else "A tensor"
        message = f"{subject} is created as uint8 ({creation.what}) and used as a mask; {effect}"
        fix = None
        safe, hostile = finding.clean and finding.zero_one, False
        if finding.local is not None:
            uses_ok, hostile = self._uses(finding.local, finding.local_path)
            safe = safe and uses_ok
        if creation.edit is not None and not hostile:
            # `1 - mask` raises on bool: the fix negates with `~mask` instead
            edits = [creation.edit] + [
                (n, cst.UnaryOperation(cst.BitInvert(), n.right, lpar=n.lpar, rpar=n.rpar))
                for n in finding.negations
            ]
            applicability = Applicability.SAFE if safe else Applicability.UNSAFE
            fix = Fix("Create the mask as `torch.bool`", applicability, tuple(edits))
        self.report(
            creation.node,
            message,
            fix=fix,
            help=(
                "create masks as `torch.bool` (`dtype=torch.bool`, `.bool()`, "
                "`torch.BoolTensor`), and negate them with `~mask`, not `1 - mask`"
            ),
        )


# ----------------------------------------------------------------------------- uses


class _UseChecker(Visitor):
    """Counts bindings of a local and checks that no read of it tells bool from uint8."""

    def __init__(self, name: str, rule: Uint8Mask) -> None:
        self.name = name
        self.rule = rule
        self.stack: list[cst.CSTNode] = []
        self.mask_exprs: set[int] = set()
        self.bindings = 0
        self.ok = True
        self.hostile = False  # a use that raises on a bool tensor (`1 - m`, `-m`)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Call):
            self.mask_exprs |= {id(e) for e, _ in self.rule._call_masks(node)}
        elif isinstance(node, cst.Subscript):
            self.mask_exprs |= {id(e) for e, _ in self.rule._subscript_masks(node, False)}
        elif isinstance(node, cst.Name) and node.value == self.name:
            self._classify(node)
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()

    def _up(self, n: int) -> cst.CSTNode | None:
        return self.stack[-n] if len(self.stack) >= n else None

    def _classify(self, node: cst.Name) -> None:
        parent, grand = self._up(1), self._up(2)
        if (isinstance(parent, cst.AssignTarget) and parent.target is node) or (
            isinstance(parent, cst.AnnAssign) and parent.target is node and parent.value is not None
        ):
            self.bindings += 1
            return
        if isinstance(parent, cst.Attribute) and parent.attr is node:
            return  # `other.name`: not the local
        if isinstance(parent, cst.Arg) and parent.keyword is node:
            return  # `f(name=...)`
        if isinstance(parent, cst.Param) and parent.name is node:
            return  # a parameter of a nested function: its reads are checked all the same
        if id(node) in self.mask_exprs:
            return
        if isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Subtract):
            if not (parent.right is node and _int_value(parent.left) == 1 and id(parent) in self.mask_exprs):
                self.hostile = True  # bool tensors do not support `-`
                self.ok = False
            return  # `1 - m` in a mask position: rewritten to `~m` by the fix
        if isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Minus):
            self.hostile = True
            self.ok = False
            return
        if isinstance(parent, cst.AugAssign) and parent.target is node:
            self.hostile = isinstance(parent.operator, cst.SubtractAssign) or self.hostile
            self.ok = False
            return
        if isinstance(parent, cst.Attribute) and parent.value is node:
            attr = parent.attr.value
            if isinstance(grand, cst.Call) and grand.func is parent:
                if not _value_preserving_call(grand, attr, self.rule):
                    self.ok = False
                return
            if attr not in DTYPE_BLIND_ATTRS:
                self.ok = False
            return
        if isinstance(parent, cst.Subscript) and parent.value is node:
            # `name[i] = 0` / `name[i] = 1` keeps a 0/1 tensor 0/1
            assign = self._up(3)
            if (
                isinstance(grand, cst.AssignTarget)
                and grand.target is parent
                and isinstance(assign, cst.Assign)
                and _is_zero_one(assign.value)
            ):
                return
        self.ok = False


def _value_preserving_call(call: cst.Call, method: str, rule: Uint8Mask) -> bool:
    """`name.<method>(...)` gives the same result for a 0/1 uint8 and a bool tensor."""
    if method in VALUE_CONVERSIONS:
        return not call.args
    if method in DTYPE_BLIND_METHODS:
        return True
    if method == "type":
        return len(call.args) == 1  # .type() without an argument returns the type's name
    if method == "to":
        return any(_dtype_like(arg, rule) for arg in call.args)
    if method == "scatter_":
        return len(call.args) == 3 and _is_zero_one(_argument(call, 2, "value"))
    if method == "fill_":
        return len(call.args) == 1 and _is_zero_one(call.args[0].value)
    if method == "zero_":
        return not call.args
    return False


def _dtype_like(arg: cst.Arg, rule: Uint8Mask) -> bool:
    if arg.keyword is not None:
        return arg.keyword.value == "dtype"
    qual = rule.context.qualname(arg.value)
    if qual is not None and qual.startswith("torch.") and qual.split(".")[-1] in TORCH_DTYPES:
        return True
    name = arg.value.attr.value if isinstance(arg.value, cst.Attribute) else (
        arg.value.value if isinstance(arg.value, cst.Name) else ""
    )
    return name.endswith("dtype")


# ----------------------------------------------------------------------------- dataflow


class _Flow:
    """Straight-line reaching assignments, with the names bound by each statement cached.

    A generalisation of `straight_line_origin` in rules/_analysis.py to uses nested in
    blocks (loop bodies, `with`, `if` branches), with the same conservative stance.
    """

    def __init__(self) -> None:
        self._bound: dict[int, tuple[cst.CSTNode, frozenset[str]]] = {}

    def bound(self, node: cst.CSTNode) -> frozenset[str]:
        hit = self._bound.get(id(node))
        if hit is None or hit[0] is not node:
            collector = _BoundNames()
            walk(node, collector)
            hit = (node, frozenset(collector.names))
            self._bound[id(node)] = hit
        return hit[1]

    def reaching_assignment(
        self, name: str, path: Sequence[cst.CSTNode]
    ) -> tuple[cst.BaseExpression, list[cst.CSTNode]] | None:
        """The value of the one assignment `name = value` that reaches the end of `path`.

        `path` is the chain of ancestors of a use, outermost first. The search walks back
        through the enclosing blocks in statement order and gives up (None) when the
        nearest earlier binding is not a plain single-target assignment, when it sits in a
        compound statement, when a loop, `with` or `try` around the use also binds the
        name, or when the search reaches the enclosing function, lambda or comprehension
        that binds it. Returns the value and the path to it.
        """
        path = list(path)
        for i in range(len(path) - 1, -1, -1):
            node = path[i]
            if i + 1 >= len(path):
                continue
            child = path[i + 1]
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                return None
            if isinstance(node, (cst.Lambda, cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)):
                if name in self.bound(node) or (
                    isinstance(node, cst.Lambda) and name in _lambda_params(node)
                ):
                    return None
                continue
            if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
                smalls = list(node.body)
                k = _index(smalls, child)
                if k is None:
                    return None
                for small in reversed(smalls[:k]):
                    hit = _assigned(small, name)
                    if hit is not None:
                        return hit, path[: i + 1] + [small]
                    if name in self.bound(small):
                        return None
            elif isinstance(node, (cst.IndentedBlock, cst.Module)):
                body = list(node.body)
                k = _index(body, child)
                if k is None:
                    return None
                for stmt in reversed(body[:k]):
                    if isinstance(stmt, cst.SimpleStatementLine):
                        for small in reversed(stmt.body):
                            hit = _assigned(small, name)
                            if hit is not None:
                                return hit, path[: i + 1] + [stmt, small]
                            if name in self.bound(small):
                                return None
                    elif name in self.bound(stmt):
                        return None
            elif isinstance(node, cst.BaseCompoundStatement) and not isinstance(node, cst.If):
                # leaving a loop, `with` or `try`: a binding anywhere in it may reach the use
                if name in self.bound(node):
                    return None
        return None

    def module_aliases(self, module: cst.Module, is_alias) -> dict[str, cst.BaseExpression]:
        """Module-level names bound once, by a plain assignment whose value passes is_alias.

        Bindings inside module-level functions and classes are local to them and do not
        count (a `global` statement rebinding such a name is not seen).
        """
        values: dict[str, cst.BaseExpression] = {}
        counts: dict[str, int] = {}
        for stmt in module.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Assign) and len(small.targets) == 1:
                        target = small.targets[0].target
                        if isinstance(target, cst.Name):
                            counts[target.value] = counts.get(target.value, 0) + 1
                            if is_alias(small.value):
                                values[target.value] = small.value
        if not values:
            return {}
        out = {n: v for n, v in values.items() if counts[n] == 1}
        for stmt in module.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if not isinstance(small, cst.Assign):
                        for name in self.bound(small) & set(out):
                            del out[name]
            elif not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                for name in self.bound(stmt) & set(out):
                    del out[name]
        return out


class _BoundNames(BindingTargets):
    """Names (re)bound inside a node, nested functions and classes excluded (but named)."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def bind(self, name: str) -> None:
        self.names.add(name)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            if alias.asname is None:
                head = alias.name
                while isinstance(head, cst.Attribute):
                    head = head.value
                self._add(head)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                if alias.asname is None:
                    self._add(alias.name)

    def visit_Global(self, node: cst.Global) -> None:
        for item in node.names:
            self.names.add(item.name.value)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        for item in node.names:
            self.names.add(item.name.value)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.names.add(node.name.value)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.names.add(node.name.value)
        return False


def _assigned(small: cst.CSTNode, name: str) -> cst.BaseExpression | None:
    if isinstance(small, cst.Assign) and len(small.targets) == 1:
        target = small.targets[0].target
        if isinstance(target, cst.Name) and target.value == name:
            return small.value
    if (
        isinstance(small, cst.AnnAssign)
        and isinstance(small.target, cst.Name)
        and small.target.value == name
        and small.value is not None
    ):
        return small.value
    return None


def _index(items: list, node: cst.CSTNode) -> int | None:
    for k, item in enumerate(items):
        if item is node:
            return k
    return None


def _lambda_params(node: cst.Lambda) -> set[str]:
    p = node.params
    names = {x.name.value for x in (*p.posonly_params, *p.params, *p.kwonly_params)}
    for star in (p.star_arg, p.star_kwarg):
        if isinstance(star, cst.Param):
            names.add(star.name.value)
    return names


def _params(func: cst.FunctionDef) -> list[str]:
    p = func.params
    names = [x.name.value for x in (*p.posonly_params, *p.params, *p.kwonly_params)]
    for star in (p.star_arg, p.star_kwarg):
        if isinstance(star, cst.Param):
            names.append(star.name.value)
    return names


# ----------------------------------------------------------------------------- arguments


def _argument(call: cst.Call, position: int, keyword: str) -> cst.BaseExpression | None:
    if any(a.star for a in call.args):
        return None
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    positional = [a for a in call.args if a.keyword is None]
    if position < len(positional):
        return positional[position].value
    return None


def _keyword(call: cst.Call, keyword: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    return None


DEVICE_STRINGS = {"cuda", "cpu", "mps", "xpu", "meta"}


def _device_only_to(call: cst.Call) -> bool:
    """`.to(device)`, `.to(x.device, non_blocking=True)`, `.to("cuda")`: keeps the dtype."""
    if not call.args:
        return False
    for arg in call.args:
        if arg.keyword is not None:
            if arg.keyword.value not in ("device", "non_blocking", "copy", "memory_format"):
                return False
            continue
        value = arg.value
        if isinstance(value, cst.SimpleString):
            text = value.evaluated_value
            if not isinstance(text, str) or text.split(":")[0] not in DEVICE_STRINGS:
                return False
            continue
        if isinstance(value, cst.Attribute):
            name = value.attr.value
        elif isinstance(value, cst.Name):
            name = value.value
        else:
            return False
        if "device" not in name.lower() and name != "dev":
            return False
    return True


def _int_value(node: cst.CSTNode | None) -> int | None:
    if isinstance(node, cst.Integer):
        try:
            return int(node.value.replace("_", ""), 0)
        except ValueError:
            return None
    return None


def _is_zero_one(node: cst.BaseExpression | None) -> bool:
    if isinstance(node, cst.Integer):
        return _int_value(node) in (0, 1)
    if isinstance(node, cst.Name):
        return node.value in ("True", "False")
    return False


def _zero_one_literal(node: cst.BaseExpression) -> bool:
    if isinstance(node, (cst.List, cst.Tuple)):
        return bool(node.elements) and all(_zero_one_literal(e.value) for e in node.elements)
    return _is_zero_one(node)


def _zero_one_literal_args(call: cst.Call) -> bool:
    """`torch.ByteTensor([[0, 1], [1, 0]])`, `torch.tensor([1, 0], dtype=...)`."""
    positional = [a for a in call.args if a.keyword is None]
    return (
        len(positional) == 1
        and isinstance(positional[0].value, (cst.List, cst.Tuple))
        and _zero_one_literal(positional[0].value)
    )
