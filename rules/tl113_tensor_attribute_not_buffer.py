"""
## What it does
Flags a tensor created in an `nn.Module`'s constructor and stored as a plain attribute,
`self.m_list = torch.tensor(m_list)`, that is neither an `nn.Parameter` nor registered as
a buffer. The tensor may come from a torch factory or conversion (`torch.tensor`,
`torch.zeros`, `torch.arange`, `torch.from_numpy`, `torch.cuda.FloatTensor(...)`...),
possibly through arithmetic, casts (`.float()`, `.cuda()`, `.view(...)`) and a local
variable assigned on a straight line before the store. A tensor created with
`requires_grad=True` is reported as a parameter that the optimizer cannot see.

## Why is this bad?
A module only moves, casts and saves what it has registered. A plain tensor attribute
stays where it was created: after `model.to("cuda")` the first `forward` fails with
"Expected all tensors to be on the same device", `model.double()` leaves it in float32,
it is missing from `state_dict()` and DDP does not broadcast it. A tensor with
`requires_grad=True` stored this way is not in `parameters()`, so the optimizer never
updates it.

## Example
```python
class LDAMLoss(nn.Module):
    def __init__(self, cls_num_list, max_m=0.5):
        super().__init__()
        m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
        self.m_list = torch.tensor(m_list * (max_m / np.max(m_list)))
```

## Use instead
```python
class LDAMLoss(nn.Module):
    def __init__(self, cls_num_list, max_m=0.5):
        super().__init__()
        m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
        self.register_buffer("m_list", torch.tensor(m_list * (max_m / np.max(m_list))), persistent=False)
```
Use `persistent=True` (the default) to save the tensor in checkpoints; that changes the
`state_dict` keys, so strict loading of older checkpoints fails.

## Fix safety
Unsafe. The store becomes `self.register_buffer("x", <value>, persistent=False)`:
`state_dict()` and attribute access are unchanged, but the module now moves and casts
the tensor. That is the point of the fix, yet it is not identical behaviour: after
`model.half()` / `model.double()` a floating buffer changes dtype (and with it the
precision of the results), code that relied on the tensor staying on the CPU
(`self.x.numpy()` in `forward`) fails after `model.cuda()`, and `buffers()` now lists
it (EMA copies, DDP's buffer broadcast). The harness confirms the fix by moving and
casting the module. The edit is offered only for a plain statement `self.x = <value>` at
the top level of `__init__`, after the `super().__init__()` call, when nothing else in
the class writes `self.x`, the name is free (not a method, class attribute or
`nn.Module` attribute, and not written by a base or subclass in the same file), and the
class derives from `nn.Module` directly or through classes of the same file; otherwise
the rule reports without an edit. A tensor with
`requires_grad=True` is reported without an edit (it wants `nn.Parameter`, which changes
`parameters()` and `state_dict()`).

## Known false positives
The rule only follows values it can see: torch factories through the module's imports,
locals assigned on a straight line (plus the `if w is not None: w = torch.tensor(w)`
idiom), never arguments or helper calls. It stays quiet on classes that override
`_apply`, `to`, `cuda`, `cpu`, `float`, `double`, `half` or `type`, themselves or in a
base class of the same file (they move their tensors by hand, as ultralytics'
`BaseModel` does); on attributes registered anywhere in the class or its local bases
(`register_buffer`, `register_parameter`, `setattr(self, ...)`, `nn.Parameter(self.x)`)
or stored as an `nn.Parameter` there; on attributes that some other write sets to a
value that is not visibly a tensor, `None` or derived from the attribute itself (a float
in the other branch, a placeholder later replaced from an argument); on `weight`/`bias`/
`running_*`-style names in classes that extend a torch layer (they may be the layer's
own parameters or buffers); and on stores outside the constructor (caches built lazily
in `forward`). A store that is re-moved by hand elsewhere (`self.x = self.x.to(dev)` in
`forward`) is still reported, without an edit: the buffer is the idiomatic form. A constructor is `__init__`, or a misspelled one (`init`,
`_init_`...) when the class has no `__init__` (reported without an edit; TL007 renames
it). A tensor that is meant to stay on the CPU (an index used with NumPy) is flagged;
suppress it there. The receiver must be named `self`.
"""

from __future__ import annotations

import ast
import re
from functools import cached_property

import libcst as cst

from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import (
    AttributeWrite,
    Visitor,
    attribute_writes,
    base_names,
    binds,
    body_statements,
    is_nn_module,
    methods,
    reads_attribute,
    self_attribute,
)
from trainlint.rules._screens import nn_module_classes
from trainlint.screen import FUNCTIONS, flatten_targets
from trainlint.traverse import walk

# torch.<name>(...) that creates a tensor.
FACTORIES = {
    "tensor", "as_tensor", "asarray", "from_numpy", "frombuffer", "zeros", "ones", "empty",
    "full", "arange", "range", "linspace", "logspace", "eye", "rand", "randn", "randint",
    "randperm", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like",
    "randn_like", "randint_like", "stack", "cat", "concat", "concatenate", "hstack",
    "vstack", "tril_indices", "triu_indices", "hann_window", "hamming_window",
    "blackman_window", "bartlett_window", "kaiser_window", "normal", "bernoulli",
    "Tensor", "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor",
    "IntTensor", "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor",
}
# torch.<name>(tensor, ...) that returns a tensor.
TENSOR_FUNCTIONS = {
    "log", "log2", "log10", "log1p", "exp", "sqrt", "rsqrt", "abs", "sin", "cos", "tan",
    "tanh", "sigmoid", "tril", "triu", "diag", "diag_embed", "diagflat", "flip", "roll",
    "cumsum", "cumprod", "outer", "matmul", "mm", "clamp", "clip", "pow", "reciprocal",
    "round", "floor", "ceil", "sign", "neg", "unsqueeze", "squeeze", "reshape", "transpose",
    "permute", "t", "flatten", "softmax", "log_softmax", "repeat_interleave", "kron",
    "cartesian_prod", "polar", "complex", "view_as_real", "view_as_complex", "erf",
    "erfinv", "atan2", "fmod", "remainder", "mul", "div", "add", "sub", "maximum",
    "minimum", "einsum",
}
# tensor.<name>(...) that returns a tensor.
TENSOR_METHODS = {
    "float", "double", "half", "bfloat16", "long", "int", "short", "char", "byte", "bool",
    "cuda", "cpu", "to", "type", "view", "view_as", "reshape", "reshape_as", "unsqueeze",
    "squeeze", "t", "transpose", "permute", "contiguous", "clone", "detach", "expand",
    "expand_as", "repeat", "repeat_interleave", "flatten", "sqrt", "rsqrt", "exp", "log",
    "abs", "neg", "mul", "div", "add", "sub", "pow", "clamp", "clamp_", "sum", "mean",
    "cumsum", "cumprod", "tril", "triu", "flip", "roll", "softmax", "log_softmax",
    "fill_", "zero_", "normal_", "uniform_", "mul_", "div_", "add_", "sub_", "fill_diagonal_",
    "masked_fill", "masked_fill_", "index_select", "gather", "reciprocal", "sigmoid", "tanh",
    "requires_grad_", "pin_memory", "share_memory_", "diag", "outer", "matmul",
    "unsqueeze_", "squeeze_", "t_", "transpose_",
}
ARITHMETIC = (
    cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo,
    cst.Power, cst.MatrixMultiply,
)
PARAMETER_CLASSES = {
    "torch.nn.Parameter", "torch.nn.parameter.Parameter", "torch.nn.Buffer",
    "torch.nn.parameter.Buffer", "torch.nn.UninitializedParameter",
    "torch.nn.parameter.UninitializedParameter", "torch.nn.UninitializedBuffer",
    "torch.nn.parameter.UninitializedBuffer",
}
NN_MODULE = {"torch.nn.Module", "torch.nn.modules.module.Module"}
# Overrides that move or cast the module's tensors by hand.
DEVICE_OVERRIDES = {"_apply", "to", "cuda", "cpu", "float", "double", "half", "type", "to_empty"}
REGISTERING = {"register_buffer", "register_parameter", "setattr", "register_module"}
# Names `register_buffer` refuses because nn.Module already has them.
MODULE_ATTRS = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children compile cpu
    cuda double dump_patches eval extra_repr float forward get_buffer get_extra_state
    get_parameter get_submodule half ipu load_state_dict modules mtia named_buffers
    named_children named_modules named_parameters parameters register_backward_hook
    register_buffer register_forward_hook register_forward_pre_hook
    register_full_backward_hook register_full_backward_pre_hook
    register_load_state_dict_post_hook register_load_state_dict_pre_hook register_module
    register_parameter register_state_dict_post_hook register_state_dict_pre_hook
    requires_grad_ set_extra_state set_submodule share_memory state_dict to to_empty train
    type xpu zero_grad training""".split()
)
# A misspelled constructor (TL007's territory): underscores around letters of "init".
_INIT_LIKE = re.compile(r"_*[int]{3,6}_*")

TENSOR, GRAD, OPTIONAL = "tensor", "grad", "optional"
# Names under which torch layers keep their parameters and buffers.
PARENT_STATE = re.compile(r"(?:^|_)(?:weight|bias)(?:_|$)|^running_|^num_batches_tracked$")


class _Registered(Visitor):
    """Attributes the class registers or wraps: `register_buffer("x", ...)`,
    `setattr(self, "x", ...)`, `nn.Parameter(self.x)`, `register_buffer("y", self.x)`."""

    def __init__(self, rule: TensorAttributeNotBuffer) -> None:
        self.rule = rule
        self.names: set[str] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else (
            func.value if isinstance(func, cst.Name) else None
        )
        qual = self.rule.context.qualname(func)
        if name in REGISTERING or qual in PARAMETER_CLASSES:
            for arg in node.args:
                if isinstance(arg.value, cst.SimpleString):
                    try:
                        value = arg.value.evaluated_value
                    except Exception:  # noqa: BLE001
                        continue
                    if isinstance(value, str):
                        self.names.add(value)
                attr = self_attribute(arg.value)
                if attr:
                    self.names.add(attr)


def _constructor(own: dict[str, cst.FunctionDef]) -> tuple[cst.FunctionDef | None, bool]:
    """`__init__`, or the single misspelled one when there is none; (func, misspelled)."""
    name, misspelled = _constructor_name({n: bool(f.decorators) for n, f in own.items()})
    return (own[name], misspelled) if name is not None else (None, False)


def _constructor_name(decorated: dict[str, bool]) -> tuple[str | None, bool]:
    """`_constructor` on the methods' names (each with whether it is decorated)."""
    if "__init__" in decorated:
        return "__init__", False
    candidates = [
        n for n, d in decorated.items() if n != "__init__" and _INIT_LIKE.fullmatch(n)
        and "i" in n and "n" in n and not d and n.strip("_") not in ("int", "tin")
        and _underscores(n) not in ((1, 0), (0, 1))  # `_init` / `init_` are helpers
    ]
    return (candidates[0], True) if len(candidates) == 1 else (None, False)


def _underscores(name: str) -> tuple[int, int]:
    return len(name) - len(name.lstrip("_")), len(name) - len(name.rstrip("_"))


class _Assignments(Visitor):
    def __init__(self) -> None:
        self.found: list[cst.CSTNode] = []

    def visit_Assign(self, node: cst.Assign) -> None:
        self.found.append(node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self.found.append(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self.found.append(node)


def _may_be_tensor(value: cst.BaseExpression | None) -> bool:
    return isinstance(
        value, (cst.Call, cst.BinaryOperation, cst.UnaryOperation, cst.Subscript, cst.Name)
    )


def _is_super_init(stmt: cst.BaseStatement) -> bool:
    """`super().__init__(...)`, `super(C, self).__init__(...)`, `Base.__init__(self, ...)`."""
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    for small in stmt.body:
        if (
            isinstance(small, cst.Expr)
            and isinstance(small.value, cst.Call)
            and isinstance(small.value.func, cst.Attribute)
            and small.value.func.attr.value == "__init__"
        ):
            return True
    return False


def _none_test(test: cst.BaseExpression, name: str) -> bool:
    """`name is not None`."""
    return (
        isinstance(test, cst.Comparison)
        and isinstance(test.left, cst.Name)
        and test.left.value == name
        and len(test.comparisons) == 1
        and isinstance(test.comparisons[0].operator, cst.IsNot)
        and isinstance(test.comparisons[0].comparator, cst.Name)
        and test.comparisons[0].comparator.value == "None"
    )


class TensorAttributeNotBuffer(Rule):
    __doc__ = __doc__
    code = "TL113"
    name = "tensor-attribute-not-buffer"
    message = (
        "Tensor `self.{attr}` is a plain attribute, not a buffer: `.to()`, `.cuda()`, "
        "`.double()` and `state_dict()` skip it"
    )
    grad_message = (
        "`self.{attr}` is a tensor with `requires_grad=True` but not an `nn.Parameter`: "
        "`parameters()` and the optimizer never see it"
    )
    fix_applicability = Applicability.UNSAFE
    tokens = ("class", "*torch*")

    VALID = [
        # Buffers, Parameters, registered later, plain values.
        Valid(
            """
            import torch
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self, n, w):
                    super().__init__()
                    self.register_buffer("m", torch.zeros(n), persistent=False)
                    self.p = nn.Parameter(torch.zeros(n))
                    self.q = torch.zeros(n)
                    self.q = nn.Parameter(self.q)
                    self.r = torch.ones(n)
                    self.register_buffer("r_buf", self.r)
                    self.w = w
                    self.k = None
                    self.n = n
                    self.shape = torch.Size([n])
                    self.dtype = torch.float32
            """
        ),
        # Not a Module; stores outside the constructor (lazy caches).
        Valid(
            """
            import torch
            from torch import nn

            class Meter:
                def __init__(self, n):
                    self.total = torch.zeros(n)

            class Pos(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.cache = None

                def forward(self, x):
                    if self.cache is None:
                        self.cache = torch.arange(x.size(1), device=x.device)
                    return x + self.cache
            """
        ),
        # Values the rule cannot see: arguments, helpers, a local bound in a loop.
        Valid(
            """
            import torch
            from torch import nn

            class Net(nn.Module):
                def __init__(self, weight, n):
                    super().__init__()
                    self.weight = weight
                    self.table = build_table(n)
                    for i in range(n):
                        t = torch.zeros(i)
                    self.t = t
                    self.size = torch.zeros(n).size(0)
                    self.items = torch.arange(n).tolist()
            """
        ),
        # Near-misses from real code: a float in one branch (yolov5's export wrapper), a
        # placeholder replaced from an argument (torch's equalization observer), a buffer
        # name of the torch layer it extends (lazy batch norm), a local base class that
        # moves tensors by hand (ultralytics' BaseModel).
        Valid(
            """
            import torch
            from torch import nn
            from torch.nn.modules.batchnorm import _NormBase

            class iOSModel(torch.nn.Module):
                def __init__(self, model, im):
                    super().__init__()
                    b, c, h, w = im.shape
                    if w == h:
                        self.normalize = 1. / w
                    else:
                        self.normalize = torch.tensor([1. / w, 1. / h, 1. / w, 1. / h])

            class Observer(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.equalization_scale = torch.tensor(1)

                def set_equalization_scale(self, scale):
                    self.equalization_scale = scale

            class LazyNorm(_NormBase):
                def __init__(self):
                    super().__init__(0, 1e-5, 0.1, False, False)
                    self.num_batches_tracked = torch.tensor(0, dtype=torch.long)

            class BaseModel(nn.Module):
                def _apply(self, fn):
                    self = super()._apply(fn)
                    self.stride = fn(self.stride)
                    return self

            class DetectionModel(BaseModel):
                def __init__(self):
                    super().__init__()
                    self.stride = torch.Tensor([32])
            """
        ),
        # A class that moves its tensors by hand.
        Valid(
            """
            import torch
            from torch import nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.anchors = torch.zeros(3, 2)

                def _apply(self, fn):
                    self.anchors = fn(self.anchors)
                    return super()._apply(fn)
            """
        ),
    ]
    INVALID = [
        # A direct store after super().__init__().
        Invalid(
            """
            import numpy as np
            import torch
            import torch.nn as nn

            class LDAMLoss(nn.Module):
                def __init__(self, cls_num_list, max_m=0.5):
                    super().__init__()
                    m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
                    m_list = m_list * (max_m / np.max(m_list))
                    self.m_list = torch.tensor(m_list, dtype=torch.float32)  # margins

                def forward(self, x):
                    return x - self.m_list[None, :]
            """,
            fixed="""
            import numpy as np
            import torch
            import torch.nn as nn

            class LDAMLoss(nn.Module):
                def __init__(self, cls_num_list, max_m=0.5):
                    super().__init__()
                    m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
                    m_list = m_list * (max_m / np.max(m_list))
                    self.register_buffer("m_list", torch.tensor(m_list, dtype=torch.float32), persistent=False)  # margins

                def forward(self, x):
                    return x - self.m_list[None, :]
            """,
            line=10,
        ),
        # The seed page's LDAM loss: misspelled constructor, a CUDA tensor through a local,
        # and the optional weight. Reported without an edit.
        Invalid(
            """
            import numpy as np
            import torch
            import torch.nn as nn

            class LDAMLoss(nn.Module):
                def init(self, cls_num_list, max_m=0.5, weight=None, s=30):
                    super(LDAMLoss, self).init()
                    m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
                    m_list = m_list * (max_m / np.max(m_list))
                    m_list = torch.cuda.FloatTensor(m_list)
                    self.m_list = m_list
                    assert s > 0
                    self.s = s
                    if weight is not None:
                        weight = torch.FloatTensor(weight).cuda()
                    self.weight = weight
                    self.cls_num_list = cls_num_list
            """,
            line=11,
            count=2,
        ),
        # Aliased imports, arithmetic and casts, `from torch import ...`, a local.
        Invalid(
            """
            import torch as T
            from torch import arange, from_numpy
            from torch.nn import Module

            class Pos(Module):
                def __init__(self, n, table):
                    super(Pos, self).__init__()
                    pos = arange(n).float() / n
                    self.pos = pos
                    self.scale = 2 * T.ones(1)
                    self.table = from_numpy(table).cuda()
            """,
            fixed="""
            import torch as T
            from torch import arange, from_numpy
            from torch.nn import Module

            class Pos(Module):
                def __init__(self, n, table):
                    super(Pos, self).__init__()
                    pos = arange(n).float() / n
                    self.register_buffer("pos", pos, persistent=False)
                    self.register_buffer("scale", 2 * T.ones(1), persistent=False)
                    self.register_buffer("table", from_numpy(table).cuda(), persistent=False)
            """,
            line=9,
            count=3,
        ),
        # A factory called only under an alias, through a chain of locals.
        Invalid(
            """
            import torch.nn as nn
            from torch import randn as gaussian

            class Noise(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    noise = gaussian(n)
                    scaled = noise * 0.1
                    self.noise = scaled
            """,
            fixed="""
            import torch.nn as nn
            from torch import randn as gaussian

            class Noise(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    noise = gaussian(n)
                    scaled = noise * 0.1
                    self.register_buffer("noise", scaled, persistent=False)
            """,
            line=9,
        ),
        # Report only: before super().__init__(), in a branch, written again in forward,
        # a name that nn.Module already has, a subclass of a torch layer; and a tensor
        # that wants to be a Parameter.
        Invalid(
            """
            import torch
            from torch import nn

            class A(nn.Module):
                def __init__(self, n, flag):
                    self.early = torch.zeros(n)
                    super().__init__()
                    if flag:
                        self.mask = torch.ones(n).bool()
                    self.pe = torch.zeros(n)
                    self.training = torch.zeros(1)
                    self.w = torch.randn(n, requires_grad=True)

                def forward(self, x):
                    self.pe = self.pe.to(x.device)
                    return x + self.pe

            class B(nn.Linear):
                def __init__(self, n):
                    super().__init__(n, n)
                    self.scale = torch.ones(n)
            """,
            line=6,
            count=6,
        ),
    ]

    @classmethod
    def screen(cls, index) -> bool:
        """The rule's own analysis, loosened, on the ast: the constructor of some
        `nn.Module` class stores in `self.<attr>` a value that may be a fresh tensor (see
        `_Screen`)."""
        if not any(c.bases for c in index.nodes(ast.ClassDef)):
            return False
        modules = nn_module_classes(index)
        if not modules or not _may_call_factory(index):
            return False
        screen = _Screen(index)
        return any(screen.may_report(c) for c in modules)

    # ------------------------------------------------------------------ visiting

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        own = methods(node)
        ctor, misspelled = _constructor(own)
        if ctor is None:
            return
        ctx = self.context
        if not is_nn_module(node, ctx.imports, ctx.module):
            return
        writes = attribute_writes(node)
        self._tops: dict[int, dict[int, cst.BaseStatement]] = {}
        ctor_name = ctor.name.value
        # Candidates first (cheap): a visible tensor stored in the constructor.
        candidates = []
        for attr, attr_writes in writes.items():
            for write in attr_writes:
                if write.method != ctor_name or write.augmented or not _may_be_tensor(write.value):
                    continue
                stmt = self._top(ctor, write.statement)
                kind = self._tensor(write.value, ctor, stmt) if stmt is not None else None
                if kind is not None:
                    candidates.append((attr, write, stmt, kind))
                    break
        if not candidates:
            return
        chain, foreign = self._chain(node)
        if any(DEVICE_OVERRIDES & methods(klass).keys() for klass in chain):
            return
        registered = _Registered(self)
        for klass in chain:
            walk(klass.body, registered)
        inherited: dict[str, list[AttributeWrite]] = {}
        for klass in chain[1:]:
            for attr, ws in attribute_writes(klass).items():
                inherited.setdefault(attr, []).extend(ws)
        for attr, write, stmt, kind in candidates:
            attr_writes = writes[attr]
            if attr in registered.names:
                continue
            if foreign and PARENT_STATE.search(attr):
                continue  # may be a parameter or buffer of a torch layer it extends
            if any(self._is_parameter(w.value) for w in attr_writes + inherited.get(attr, [])):
                continue
            if not all(w is write or self._tensor_like(w, attr, own) for w in attr_writes):
                continue  # sometimes a float, a list...: a buffer cannot hold it
            self._report(node, attr, write, attr_writes, kind, ctor, stmt, misspelled)

    def _top(self, func: cst.FunctionDef, node: cst.CSTNode) -> cst.BaseStatement | None:
        """The top-level statement of func that contains the assignment node (cached)."""
        index = self._tops.get(id(func))
        if index is None:
            index = {}
            for stmt in body_statements(func):
                collector = _Assignments()
                walk(stmt, collector)
                for small in collector.found:
                    index[id(small)] = stmt
            self._tops[id(func)] = index
        return index.get(id(node))

    def _report(self, cls, attr, write: AttributeWrite, attr_writes, kind, ctor, stmt, misspelled):
        if kind == GRAD:
            self.report(
                write.statement,
                self.grad_message.format(attr=attr),
                help=f"wrap it: `self.{attr} = nn.Parameter(...)`",
                data={"attribute": attr},
            )
            return
        fix = None
        if not misspelled and len(attr_writes) == 1:
            fix = self._fix(cls, attr, write, ctor, stmt)
        self.report(
            write.statement,
            self.message.format(attr=attr),
            fix=fix,
            help=f'register it: `self.register_buffer("{attr}", ..., persistent=False)`',
            data={"attribute": attr},
        )

    # ----------------------------------------------------------------- analysis

    def _chain(self, cls: cst.ClassDef) -> tuple[list[cst.ClassDef], bool]:
        """cls and its ancestors in this module (nearest first), and whether some ancestor
        is a class from elsewhere other than `nn.Module` itself."""
        local = self.context.classes
        chain, todo, seen, foreign = [], [cls], {cls.name.value}, False
        while todo:
            klass = todo.pop(0)
            chain.append(klass)
            for base in base_names(klass, self.context.imports):
                if base in local:
                    if base not in seen:
                        seen.add(base)
                        todo.append(local[base])
                elif base not in NN_MODULE and base not in ("nn.Module", "Module", "object"):
                    foreign = True
        return chain, foreign

    def _tensor_like(self, write: AttributeWrite, attr: str, own) -> bool:
        """Whether a write stores something a buffer can hold: a visible tensor, `None`, or
        a value computed from the attribute itself (`self.x.to(device)`)."""
        value = write.value
        if value is None or (isinstance(value, cst.Name) and value.value == "None"):
            return True
        if write.augmented:
            return True
        func = own.get(write.method)
        stmt = self._top(func, write.statement) if func is not None else None
        if stmt is not None and self._tensor(value, func, stmt) is not None:
            return True
        return reads_attribute(value, attr)

    def _is_parameter(self, value: cst.BaseExpression | None) -> bool:
        return isinstance(value, cst.Call) and self.context.qualname(value.func) in PARAMETER_CLASSES

    def _torch_name(self, func: cst.BaseExpression) -> tuple[str, str] | None:
        """('', 'zeros') for torch.zeros, ('cuda', 'FloatTensor') for torch.cuda.FloatTensor."""
        qual = self.context.qualname(func)
        if qual is None:
            return None
        parts = qual.split(".")
        if parts[0] != "torch":
            return None
        if len(parts) == 2:
            return "", parts[1]
        if len(parts) == 3 and parts[1] == "cuda":
            return "cuda", parts[2]
        return None

    def _tensor(
        self, node: cst.BaseExpression, func: cst.FunctionDef, stmt: cst.BaseStatement, depth: int = 0
    ) -> str | None:
        """TENSOR / GRAD / OPTIONAL when node visibly evaluates to a fresh tensor."""
        if depth > 6:
            return None
        if isinstance(node, cst.Call):
            f = node.func
            name = self._torch_name(f)
            if name is not None:
                space, fn = name
                if fn in FACTORIES and (space == "" or fn.endswith("Tensor")):
                    return GRAD if _requires_grad(node) else TENSOR
                if space == "" and fn in TENSOR_FUNCTIONS and node.args:
                    return self._tensor(node.args[0].value, func, stmt, depth + 1)
                return None
            if isinstance(f, cst.Attribute) and f.attr.value in TENSOR_METHODS:
                inner = self._tensor(f.value, func, stmt, depth + 1)
                if inner is None:
                    return None
                if f.attr.value == "requires_grad_" and not any(
                    isinstance(a.value, cst.Name) and a.value.value == "False" for a in node.args
                ):
                    return GRAD
                return inner
            return None
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, ARITHMETIC):
            kinds = [self._tensor(node.left, func, stmt, depth + 1), self._tensor(node.right, func, stmt, depth + 1)]
            kinds = [k for k in kinds if k is not None]
            return (GRAD if GRAD in kinds else TENSOR) if kinds else None
        if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
            return self._tensor(node.expression, func, stmt, depth + 1)
        if isinstance(node, cst.Subscript):
            return self._tensor(node.value, func, stmt, depth + 1)
        if isinstance(node, cst.Name):
            origin = self._origin(func, node.value, stmt)
            if origin is None:
                return None
            value, origin_stmt, optional = origin
            kind = self._tensor(value, func, origin_stmt, depth + 1)
            if kind is None:
                return None
            return OPTIONAL if optional and kind == TENSOR else kind
        return None

    def _origin(self, func: cst.FunctionDef, name: str, use: cst.BaseStatement):
        """The last `name = value` on the straight line before `use` (a top-level statement
        of func): (value, its statement, optional). `optional` marks the
        `if name is not None: name = value` idiom. None when unknown."""
        origin = None
        for stmt in body_statements(func):
            if stmt is use:
                if not isinstance(use, cst.SimpleStatementLine) and binds(use, name):
                    return None
                return origin
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if (
                        isinstance(small, cst.Assign)
                        and len(small.targets) == 1
                        and isinstance(small.targets[0].target, cst.Name)
                        and small.targets[0].target.value == name
                    ):
                        origin = (small.value, stmt, False)
                    elif binds(small, name):
                        origin = None
            elif binds(stmt, name):
                origin = self._optional(stmt, name)
        return None

    def _optional(self, stmt: cst.BaseStatement, name: str):
        if not (isinstance(stmt, cst.If) and stmt.orelse is None and _none_test(stmt.test, name)):
            return None
        body = stmt.body
        if not isinstance(body, cst.IndentedBlock) or len(body.body) != 1:
            return None
        inner = body.body[0]
        if not isinstance(inner, cst.SimpleStatementLine) or len(inner.body) != 1:
            return None
        small = inner.body[0]
        if (
            isinstance(small, cst.Assign)
            and len(small.targets) == 1
            and isinstance(small.targets[0].target, cst.Name)
            and small.targets[0].target.value == name
        ):
            return (small.value, stmt, True)
        return None

    # ----------------------------------------------------------------------- fix

    def _fix(self, cls: cst.ClassDef, attr: str, write: AttributeWrite, ctor, stmt):
        assign = write.statement
        if not (
            isinstance(assign, cst.Assign)
            and isinstance(stmt, cst.SimpleStatementLine)
            and len(stmt.body) == 1
            and stmt.body[0] is assign
            and len(assign.targets) == 1
        ):
            return None
        body = body_statements(ctor)
        index = body.index(stmt)
        if not any(_is_super_init(s) for s in body[:index]):
            return None
        if attr in MODULE_ATTRS or attr.startswith("_") and attr in ("_buffers", "_parameters", "_modules"):
            return None
        if not self._name_free(cls, attr):
            return None
        receiver = write.target.value
        call = cst.parse_expression(f'{receiver.value}.register_buffer("{attr}", __value__, persistent=False)')
        args = list(call.args)
        args[1] = args[1].with_changes(value=write.value)
        call = call.with_changes(args=args)
        return self.make_fix(
            f'Register `self.{attr}` as a non-persistent buffer',
            (assign, cst.Expr(value=call)),
        )

    def _name_free(self, cls: cst.ClassDef, attr: str) -> bool:
        """No class in the local chain defines or writes `attr` (besides the store), and
        the chain ends in `nn.Module` itself."""
        chain, foreign = self._chain(cls)
        if foreign:
            return False
        for other in self.context.classes_using(attr):
            if other is not cls and cls in self._chain(other)[0] and attr in attribute_writes(other):
                return False  # a subclass in this file writes it too
        for klass in chain:
            if isinstance(klass.body, cst.IndentedBlock):
                for stmt in klass.body.body:
                    if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and stmt.name.value == attr:
                        return False
                    if isinstance(stmt, cst.SimpleStatementLine) and binds(stmt, attr):
                        return False
            if klass is not cls and attr in attribute_writes(klass):
                return False
        return True


def _requires_grad(call: cst.Call) -> bool:
    return any(
        a.keyword is not None
        and a.keyword.value == "requires_grad"
        and not (isinstance(a.value, cst.Name) and a.value.value == "False")
        for a in call.args
    )


class _Screen:
    """`TensorAttributeNotBuffer`'s candidates on CPython's ast, answering yes wherever
    the rule may report: it follows the same constructor, stores and tensor values, but
    lets every binding of a local in the constructor count and skips the rule's later
    exclusions, except a class that moves its tensors by hand."""

    def __init__(self, index) -> None:
        self.index = index

    # A function's statements are those within its lines (a walk costs more).

    @cached_property
    def assignments(self) -> list[tuple[int, ast.Assign | ast.AnnAssign]]:
        """(line, statement) of the file's assignments whose value may be a tensor: a
        call, an operation, a subscript or a name."""
        return [
            (n.lineno, n)
            for kind in (ast.Assign, ast.AnnAssign)
            for n in self.index.nodes(kind)
            if isinstance(n.value, _MAY_BE_TENSOR)
        ]

    def may_report(self, klass: ast.ClassDef) -> bool:
        own = {s.name: s for s in klass.body if isinstance(s, FUNCTIONS)}
        if DEVICE_OVERRIDES & own.keys():
            return False
        name, _ = _constructor_name({n: bool(f.decorator_list) for n, f in own.items()})
        if name is None:
            return False
        first, last = own[name].lineno, own[name].end_lineno
        inside = [n for line, n in self.assignments if first <= line <= last]
        # `None` lets every local count: most stores fail even so
        stored = [n.value for n in inside if _stores_self(n) and self._tensor(n.value, None, 0)]
        if not stored:
            return False
        tensors = self._tensor_locals(inside)
        return any(self._tensor(v, tensors, 0) for v in stored)

    def _tensor_locals(self, statements: list[ast.Assign | ast.AnnAssign]) -> set[str]:
        """Locals that some `name = value` among statements may bind to a tensor
        (`_origin`, with every binding counted)."""
        bound: dict[str, list[ast.expr]] = {}
        for n in statements:
            if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
                bound.setdefault(n.targets[0].id, []).append(n.value)
        tensors: set[str] = set()
        grown = True
        while grown:
            grown = False
            for name, values in bound.items():
                if name not in tensors and any(self._tensor(v, tensors, 0) for v in values):
                    tensors.add(name)
                    grown = True
        return tensors

    def _tensor(self, node: ast.expr, tensors: set[str] | None, depth: int) -> bool:
        """Whether the rule's `_tensor` may call node a fresh tensor, the locals in
        `tensors` (all of them when None) being tensors."""
        if depth > 6:
            return False
        if isinstance(node, ast.Call):
            func = node.func
            for qual in self.index.qualnames(func):
                if _factory(qual):
                    return True
                space, _, fn = qual.partition(".")
                if space == "torch" and fn in TENSOR_FUNCTIONS and any(
                    self._tensor(a, tensors, depth + 1) for a in _first_arguments(node)
                ):
                    return True
            return isinstance(func, ast.Attribute) and func.attr in TENSOR_METHODS and (
                self._tensor(func.value, tensors, depth + 1)
            )
        if isinstance(node, ast.BinOp):
            return isinstance(node.op, _ARITHMETIC) and (
                self._tensor(node.left, tensors, depth + 1) or self._tensor(node.right, tensors, depth + 1)
            )
        if isinstance(node, ast.UnaryOp):
            return isinstance(node.op, ast.USub) and self._tensor(node.operand, tensors, depth + 1)
        if isinstance(node, ast.Subscript):
            return self._tensor(node.value, tensors, depth + 1)
        return isinstance(node, ast.Name) and (tensors is None or node.id in tensors)


def _may_call_factory(index) -> bool:
    """Whether some call may be a torch factory: one named like a factory, or a name
    imported as one."""
    called = index.called
    if not called.isdisjoint(FACTORIES):
        return True
    return any(name in called and any(map(_factory, quals)) for name, quals in index.imports.items())


def _factory(qual: str) -> bool:
    """`torch.zeros`, `torch.cuda.FloatTensor`: a call that `_tensor` takes for a fresh tensor."""
    parts = qual.split(".")
    if parts[0] != "torch":
        return False
    return len(parts) == 2 and parts[1] in FACTORIES or (
        len(parts) == 3 and parts[1] == "cuda" and parts[2] in FACTORIES and parts[2].endswith("Tensor")
    )


def _stores_self(node: ast.Assign | ast.AnnAssign) -> bool:
    """`self.x = ...` / `self.x: T = ...`, also unpacked (`self.x, y = ...`)."""
    if isinstance(node, ast.AnnAssign):
        return _is_self_attribute(node.target)
    return any(_is_self_attribute(t) for target in node.targets for t in flatten_targets(target))


def _is_self_attribute(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"


def _first_arguments(call: ast.Call) -> list[ast.expr]:
    """What LibCST may list first among the call's arguments: the first positional one
    (unstarred) or the first keyword one."""
    first = [a.value if isinstance(a, ast.Starred) else a for a in call.args[:1]]
    return first + [k.value for k in call.keywords[:1]]


_MAY_BE_TENSOR = (ast.Call, ast.BinOp, ast.UnaryOp, ast.Subscript, ast.Name)
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.MatMult)
