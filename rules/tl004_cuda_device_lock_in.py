"""
## What it does
Flags code that pins tensors to the GPU where the device should follow the model or the
data: the legacy CUDA constructors `torch.cuda.FloatTensor(...)` (and the other
`torch.cuda.<X>Tensor` types), casts with `.type(torch.cuda.FloatTensor)` or
`.type("torch.cuda.FloatTensor")` inside a `nn.Module` or a loss, `.cuda()` calls inside
the methods of a `nn.Module` or inside a loss (a function or class whose name contains
"loss"), and `torch.set_default_tensor_type(torch.cuda.FloatTensor)`.

## Why is this bad?
A module or loss that creates its tensors on `cuda` by itself crashes on a machine
without a GPU (`Torch not compiled with CUDA enabled`), lands on the wrong GPU under
DDP or after `model.to("cuda:1")`, and cannot be tested on the CPU. A tensor stored as a
plain attribute does not follow `model.to(device)` either, so the device has to be
hard-coded in the first place. The legacy `torch.cuda.*Tensor` constructors are also
deprecated and warn on every call.

## Example
```python
class LDAMLoss(nn.Module):
    def __init__(self, cls_num_list, max_m=0.5):
        super().__init__()
        m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
        m_list = torch.cuda.FloatTensor(m_list * (max_m / np.max(m_list)))
        self.m_list = m_list

    def forward(self, x, target):
        index = torch.zeros_like(x, dtype=torch.uint8)
        index_float = index.type(torch.cuda.FloatTensor)
        ...
```

## Use instead
```python
class LDAMLoss(nn.Module):
    def __init__(self, cls_num_list, max_m=0.5):
        super().__init__()
        m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
        m_list = torch.tensor(m_list * (max_m / np.max(m_list)), dtype=torch.float32)
        self.register_buffer("m_list", m_list, persistent=False)

    def forward(self, x, target):
        index = torch.zeros_like(x, dtype=torch.uint8)
        index_float = index.float()
        ...
```
A buffer moves with `model.to(device)`; a tensor made in `forward` should take its
device from an input: `torch.tensor(data, device=x.device)`, `y.to(x.device)`.

## Fix safety
Unsafe: the fixed code creates CPU tensors where the original created CUDA tensors, and
relies on the module being moved (`model.to(device)`) to put them on the GPU.
- `torch.cuda.FloatTensor(data)` becomes `torch.tensor(data, dtype=torch.float32)`, and
  a constructor called with sizes (integer literals, several arguments, `x.size()`,
  `x.shape`) becomes `torch.empty(..., dtype=...)`. Offered only where the tensor then
  belongs to a module: the value stored in `self.X` in `__init__` (or the misspelled
  `init`), directly or through a local that a later top-level `self.X = local` stores, an
  `nn.Parameter(...)`, or a `register_buffer` argument. The store `self.X = ...` is
  rewritten to `self.register_buffer("X", ..., persistent=False)` so the tensor moves with
  the module; `persistent=False` keeps `state_dict` unchanged, and `register_buffer`
  accepts `None`, so `if weight is not None: weight = ...` followed by
  `self.weight = weight` is covered. The store is rewritten only in a class that derives
  directly from `nn.Module`, after the `super().__init__()` call, when nothing else in the
  class writes `self.X`.
- In the same places, `torch.FloatTensor(w).cuda()` loses its `.cuda()`.
- `.type(torch.cuda.FloatTensor)` becomes `.float()` (`.long()`, `.double()`, ...), which
  keeps the receiver's device. Offered in `nn.Module` methods and losses outside
  constructors (where the module-owned cases above apply) when the receiver is not visibly
  a fresh CPU tensor (`torch.from_numpy(a).type(...)` is reported only).
Everything else (constructors and `.cuda()` in `forward`, `set_default_tensor_type`) is
reported without an edit: the right device there is the input's (`x.device`), which
the rule cannot name with certainty.

## Known false positives
A module that is CUDA-only by design (a wrapper around a CUDA kernel) is flagged unless
its code says so; suppress with `# trainlint: ignore[TL004]`.

The rule stays quiet, rather than guess, on code that visibly chose CUDA on purpose:
anything under an `if`/conditional expression/`while` (either branch) whose test
mentions a device (`torch.cuda.is_available()`, `x.is_cuda`, `self.use_cuda`, `args.gpu`,
`device.type == "cpu"`), after an early `return`/`raise` or an `assert` on such a test,
inside `with torch.cuda.device(...)`-style blocks, under decorators that mention CUDA or
a GPU (`@unittest.skipIf(not TEST_CUDA)`, `@onlyCUDA`), in functions or methods whose
name mentions cuda/gpu/device or that override `to`/`_apply`/`type`, and on
`.cuda(rank)` / `.cuda(device=d)` with a non-literal device (the caller chose the GPU).
Test functions (`test_*`) are not losses even when their name mentions one. This is why
torch's own sources are quiet: `torch.cuda.*Tensor` appears there only as type
references (type maps in `torch/_dynamo`, `isinstance` checks, messages), which are not
constructor calls, and its `.cuda()` calls in modules live in CUDA-guarded tests, take a
rank, or sit in device-moving overrides.

Not flagged by design: `.cuda()` and `.type(torch.cuda.*)` in a training script, in
`main()` or in any function that is neither a loss nor a `nn.Module` method (the script's
own choice of device). A `nn.Module` is recognised by its bases in the same file, so a
subclass of a Lightning or other third-party module is missed; values are followed only
along straight-line code, so a store after a loop or an `if` other than
`if x is not None:` is reported without a fix.
"""

from __future__ import annotations

import ast
import re

import libcst as cst

from trainlint import screen as sc

from trainlint.rules._analysis import (
    Visitor,
    attribute_writes,
    base_names,
    binds,
    body_statements,
    is_nn_module,
    methods,
)
from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.traverse import walk

# torch.cuda.<Kind>Tensor -> (dtype attribute of torch, cast method)
CUDA_TYPES = {
    "Float": ("float32", "float"),
    "Double": ("float64", "double"),
    "Half": ("float16", "half"),
    "BFloat16": ("bfloat16", "bfloat16"),
    "Long": ("int64", "long"),
    "Int": ("int32", "int"),
    "Short": ("int16", "short"),
    "Char": ("int8", "char"),
    "Byte": ("uint8", "byte"),
    "Bool": ("bool", "bool"),
}
CUDA_TYPE_RE = re.compile(r"torch\.cuda\.(\w+)Tensor")

# A test, decorator, `with` item or function name mentioning one of these chose the
# device on purpose.
DEVICE_WORD = re.compile(r"cuda|gpu|cpu|device|mps|accelerat", re.I)

# Calls that create a tensor (on the CPU unless given `device=`).
TORCH_FACTORIES = {
    "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "arange",
    "linspace", "logspace", "eye", "rand", "randn", "randint", "randperm", "stack", "cat",
    "Tensor", "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor",
    "IntTensor", "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor",
}
# Tensor methods whose result is again a tensor (for following a value to its store).
TENSOR_METHODS = {
    "float", "double", "half", "bfloat16", "long", "int", "short", "char", "byte", "bool",
    "cuda", "view", "reshape", "unsqueeze", "squeeze", "t", "transpose", "permute",
    "contiguous", "clone", "detach", "expand", "repeat", "flatten", "sqrt", "exp", "log",
    "abs", "neg", "mul", "div", "add", "sub", "pow", "clamp", "sum", "mean", "type",
    "requires_grad_", "fill_", "zero_", "normal_", "uniform_",
}
ARITHMETIC = (
    cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Modulo,
    cst.Power, cst.MatrixMultiply,
)
# numpy functions that never return a Python int: their result is data, not a size.
NUMPY_DATA = {
    "array", "asarray", "asanyarray", "ascontiguousarray", "stack", "concatenate",
    "vstack", "hstack", "zeros", "ones", "full", "arange", "linspace", "logspace", "eye",
    "load", "sqrt", "exp", "log", "log2", "log10", "power", "divide", "true_divide",
    "reciprocal", "mean", "std", "var", "cos", "sin", "tanh", "cumsum", "float32",
    "float64", "clip",
}
# Overrides of nn.Module's own device-moving methods.
DEVICE_METHODS = {"to", "_apply", "to_empty", "type"}
PARAMETER_CLASSES = {"torch.nn.Parameter", "torch.nn.parameter.Parameter"}
NN_MODULE = {"torch.nn.Module", "torch.nn.modules.module.Module", "nn.Module"}
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
    type xpu zero_grad training _apply _backward_hooks _backward_pre_hooks _buffers
    _call_impl _compiled_call_impl _forward_hooks _forward_hooks_always_called
    _forward_hooks_with_kwargs _forward_pre_hooks _forward_pre_hooks_with_kwargs
    _get_backward_hooks _get_backward_pre_hooks _get_name _is_full_backward_hook
    _load_from_state_dict _load_state_dict_post_hooks _load_state_dict_pre_hooks
    _maybe_warn_non_full_backward_hook _modules _named_members _non_persistent_buffers_set
    _parameters _register_load_state_dict_pre_hook _register_state_dict_hook
    _replicate_for_data_parallel _save_to_state_dict _slow_forward _state_dict_hooks
    _state_dict_pre_hooks _version _wrapped_call_impl""".split()
)

HELP_DEVICE = (
    "take the device from an input (`.to(<tensor>.device)`, "
    "`torch.tensor(..., device=<tensor>.device)`), or register the tensor as a buffer in "
    "`__init__` so that it moves with the module"
)


class CudaDeviceLockIn(Rule):
    __doc__ = __doc__
    code = "TL004"
    name = "cuda-device-lock-in"
    message = "Hard-coded CUDA device: fails without a GPU and ignores where the model was moved"
    fix_applicability = Applicability.UNSAFE
    tokens = ("*cuda*",)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """A name that may resolve to a `torch.cuda.<X>Tensor` type or a string naming one
        (constructors, `.type(...)` casts, `set_default_tensor_type`), or a `.cuda()` call
        without a device argument inside a class with bases or a loss."""
        for value in index.strings:
            if _cuda_kind(value) is not None:
                return True
        cuda_calls = [
            call
            for call in index.nodes(ast.Call)
            if isinstance(call.func, ast.Attribute)
            and call.func.attr == "cuda"
            and not _ast_device_argument(call)
        ]
        if cuda_calls:
            scopes = [sc.span(c) for c in index.nodes(ast.ClassDef) if c.bases]
            scopes += [
                sc.span(f)
                for f in [*index.functions(), *index.nodes(ast.ClassDef)]
                if _is_loss_name(f.name)
            ]
            if any(a <= call.lineno <= b for call in cuda_calls for a, b in scopes):
                return True
        if "cuda" not in index.attributes and not any(
            q == "torch.cuda" or q.startswith("torch.cuda.")
            for bound in index.imports.values()
            for q in bound
        ):
            return False
        for node in index.nodes(ast.Attribute):
            if node.attr.endswith("Tensor") and any(
                _cuda_kind(q) is not None for q in index.qualnames(node)
            ):
                return True
        direct = {
            local
            for local, bound in index.imports.items()
            if any(_cuda_kind(q) is not None for q in bound)
        }
        return not index.names.isdisjoint(direct)

    VALID = [
        # The device comes from the input.
        Valid(
            """
            import torch
            from torch import nn

            class Loss(nn.Module):
                def forward(self, x, target):
                    m = torch.tensor([1.0, 2.0], device=x.device)
                    return (x * m.to(x.device)).sum()
            """
        ),
        # Guarded by an availability test, a flag or the tensor's own device.
        Valid(
            """
            import torch
            from torch import nn

            class Net(nn.Module):
                def __init__(self, use_cuda=False):
                    super().__init__()
                    self.use_cuda = use_cuda

                def forward(self, x):
                    if torch.cuda.is_available():
                        x = x.cuda()
                    if self.use_cuda:
                        w = torch.cuda.FloatTensor([1.0])
                    if x.is_cuda:
                        x = x.type(torch.cuda.FloatTensor)
                    y = x.cuda() if args.gpu else x
                    return x
            """
        ),
        # Early exit on a device test: the rest of the function is CUDA-only on purpose.
        Valid(
            """
            import torch

            def focal_loss(x):
                if not torch.cuda.is_available():
                    return x.sum()
                return x.cuda().sum()
            """
        ),
        # `.cuda()` in a training script and in plain functions is the script's choice.
        Valid(
            """
            import torch

            def main():
                model = Net().cuda()
                for x, y in loader:
                    x, y = x.cuda(), y.cuda()
                    out = model(x)

            model = Net()
            model.cuda()
            """
        ),
        # Type references are not constructors.
        Valid(
            """
            import torch
            from typing import Union
            BoolTypeTensor = Union[torch.BoolTensor, torch.cuda.BoolTensor]
            TYPES = {torch.cuda.FloatTensor: "float"}

            def check(x):
                assert isinstance(x, torch.cuda.FloatTensor)
                return x.type() == "torch.cuda.FloatTensor"
            """
        ),
        # Methods about devices, CUDA-only tests, explicit CUDA contexts.
        Valid(
            """
            import torch
            import unittest
            from torch import nn

            class Wrapper(nn.Module):
                def cuda(self, device=None):
                    self.buf = self.buf.cuda(device)
                    return super().cuda(device)

                def to_gpu(self):
                    self.net.cuda()

            class T(unittest.TestCase):
                @unittest.skipIf(not torch.cuda.is_available(), "no CUDA")
                def test_loss(self):
                    class M(nn.Module):
                        def forward(self, x):
                            return x.cuda()

            def loss_on(x, i):
                with torch.cuda.device(i):
                    return x.cuda().sum()
            """
        ),
        # set_default_tensor_type with a CPU type or a parameter.
        Valid(
            """
            import torch
            torch.set_default_tensor_type(torch.DoubleTensor)

            def set_default_tensor_type(tensor_type):
                torch.set_default_tensor_type(tensor_type)
            """
        ),
        # A cuda-named local flag decides the tensor type.
        Valid(
            """
            import torch
            cuda = torch.cuda.is_available()
            Tensor = torch.cuda.FloatTensor if cuda else torch.FloatTensor
            torch.set_default_tensor_type("torch.cuda.FloatTensor" if cuda else "torch.FloatTensor")
            """
        ),
        # Near-misses from real code: the caller passes the GPU (`.cuda(rank)`), an override
        # of `nn.Module.to`, a test about losses, the CPU branch of an `is_cuda` test.
        Valid(
            """
            import torch
            import torch.nn as nn

            class SimpleMegatronLM(nn.Module):
                def __init__(self, linear_size, rank=None):
                    super().__init__()
                    self.fc1 = nn.Linear(*linear_size[0])
                    if rank is not None:
                        self.fc1.cuda(rank)

            class PreTrainedModel(nn.Module):
                def to(self, *args, **kwargs):
                    for module in self.modules():
                        module.cuda()
                    return super().to(*args, **kwargs)

            def _test_output_unused_in_loss(self, module_cls):
                return module_cls().cuda()

            def project(input1):
                if input1.is_cuda:
                    return torch.cuda.FloatTensor(input1.size()).zero_()
                else:
                    return torch.cuda.FloatTensor(input1.size())
            """
        ),
        # Not a Module method, not a loss.
        Valid(
            """
            class Trainer:
                def fit(self, model, batch):
                    model.cuda()
                    return batch.cuda()
            """
        ),
    ]

    INVALID = [
        # The seed: LDAMLoss with the misspelled `init`.
        Invalid(
            """
            import numpy as np
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

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

                def forward(self, x, target):
                    index = torch.zeros_like(x, dtype=torch.uint8)
                    index_float = index.type(torch.cuda.FloatTensor)
                    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(1,0))
                    batch_m = batch_m.view((-1, 1))
                    return F.cross_entropy(x - batch_m, target, weight=self.weight)
            """,
            fixed="""
            import numpy as np
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class LDAMLoss(nn.Module):
                def init(self, cls_num_list, max_m=0.5, weight=None, s=30):
                    super(LDAMLoss, self).init()
                    m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
                    m_list = m_list * (max_m / np.max(m_list))
                    m_list = torch.tensor(m_list, dtype=torch.float32)
                    self.register_buffer("m_list", m_list, persistent=False)
                    assert s > 0
                    self.s = s
                    if weight is not None:
                        weight = torch.FloatTensor(weight)
                    self.register_buffer("weight", weight, persistent=False)
                    self.cls_num_list = cls_num_list

                def forward(self, x, target):
                    index = torch.zeros_like(x, dtype=torch.uint8)
                    index_float = index.float()
                    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(1,0))
                    batch_m = batch_m.view((-1, 1))
                    return F.cross_entropy(x - batch_m, target, weight=self.weight)
            """,
            line=11,
            count=3,
        ),
        # Aliased import, direct store, sizes, Parameter and register_buffer arguments.
        Invalid(
            """
            import torch as T
            from torch import nn

            class Head(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.scale = T.cuda.LongTensor([1, 2, 3])  # per-level scale
                    self.h = T.cuda.FloatTensor(n, 4)
                    self.w = nn.Parameter(T.randn(n).cuda())
                    self.register_buffer("b", T.zeros(n).cuda())

                def forward(self, x):
                    return x * self.w
            """,
            fixed="""
            import torch as T
            from torch import nn

            class Head(nn.Module):
                def __init__(self, n):
                    super().__init__()
                    self.register_buffer("scale", T.tensor([1, 2, 3], dtype=T.int64), persistent=False)  # per-level scale
                    self.register_buffer("h", T.empty(n, 4, dtype=T.float32), persistent=False)
                    self.w = nn.Parameter(T.randn(n))
                    self.register_buffer("b", T.zeros(n))

                def forward(self, x):
                    return x * self.w
            """,
            line=7,
            count=4,
        ),
        # `from torch.cuda import ...` and the string form of `.type`.
        Invalid(
            """
            import torch
            from torch.cuda import LongTensor

            def dice_loss(pred, target):
                idx = LongTensor([0, 1])
                target = target.type('torch.cuda.LongTensor')
                return (pred[:, idx] - target).abs().mean()
            """,
            fixed="""
            import torch
            from torch.cuda import LongTensor

            def dice_loss(pred, target):
                idx = LongTensor([0, 1])
                target = target.long()
                return (pred[:, idx] - target).abs().mean()
            """,
            line=5,
            count=2,
        ),
        # `.cuda()` in forward: report only.
        Invalid(
            """
            import torch
            from torch import nn

            class Attention(nn.Module):
                def forward(self, x):
                    mask = torch.ones(x.size(0)).cuda()
                    pos = torch.arange(x.size(1)).cuda()
                    return x * mask + pos
            """,
            line=6,
            count=2,
        ),
        # A global default, in both spellings; a CPU-born receiver is reported only.
        Invalid(
            """
            import torch

            torch.set_default_tensor_type(torch.cuda.FloatTensor)
            torch.set_default_tensor_type('torch.cuda.HalfTensor')

            def smooth_loss(labels):
                return torch.from_numpy(labels).type(torch.cuda.FloatTensor)
            """,
            line=3,
            count=3,
        ),
        # A store that is not straight-line, a non-Module loss class, a module-valued
        # `.cuda()`: report only.
        Invalid(
            """
            import torch
            from torch import nn

            class FocalLoss:
                def __init__(self, alpha, beta):
                    self.alpha = torch.cuda.FloatTensor(alpha)
                    self.beta = beta.type(torch.cuda.FloatTensor)

            class Net(nn.Module):
                def __init__(self, w):
                    super().__init__()
                    self.body = Body().cuda()
                    for i in range(2):
                        w = torch.cuda.FloatTensor(w)
                    self.w = w
            """,
            line=6,
            count=4,
        ),
    ]

    INVALID += [
        # Real variants of weighted losses: a `register_buffer` argument loses its `.cuda()`;
        # an attribute written twice, a conditional expression and a weight handed to a
        # torch loss are reported only.
        Invalid(
            """
            import torch
            import torch.nn as nn

            class LabelCriterion(nn.Module):
                def __init__(self, weight=None):
                    super().__init__()
                    if weight is not None:
                        self.register_buffer('weight', torch.FloatTensor(weight).cuda())
                    else:
                        self.weight = None

            class EntropyLoss2d(nn.Module):
                def __init__(self, use_weights=False, weight=None, n=4):
                    super().__init__()
                    if use_weights:
                        self.weight = torch.FloatTensor(weight).cuda()
                    else:
                        self.weight = None
                    self.alpha = torch.FloatTensor(weight).cuda() if weight is not None else [1.] * n
                    class_weights = torch.FloatTensor(weight).cuda()
                    self.nll = nn.NLLLoss(weight=class_weights)
            """,
            fixed="""
            import torch
            import torch.nn as nn

            class LabelCriterion(nn.Module):
                def __init__(self, weight=None):
                    super().__init__()
                    if weight is not None:
                        self.register_buffer('weight', torch.FloatTensor(weight))
                    else:
                        self.weight = None

            class EntropyLoss2d(nn.Module):
                def __init__(self, use_weights=False, weight=None, n=4):
                    super().__init__()
                    if use_weights:
                        self.weight = torch.FloatTensor(weight).cuda()
                    else:
                        self.weight = None
                    self.alpha = torch.FloatTensor(weight).cuda() if weight is not None else [1.] * n
                    class_weights = torch.FloatTensor(weight).cuda()
                    self.nll = nn.NLLLoss(weight=class_weights)
            """,
            line=8,
            count=4,
        ),
    ]

    # ------------------------------------------------------------------ visiting

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        qual = self.context.qualname(func)
        if qual is not None:
            kind = _cuda_kind(qual)
            if kind is not None:
                self._constructor(node, kind)
                return
            if qual == "torch.set_default_tensor_type":
                arg = _first_arg(node, "t")
                if arg is not None and self._cuda_type_arg(arg) is not None:
                    if not self._guarded():
                        self.report(
                            node,
                            "`torch.set_default_tensor_type` with a CUDA type makes every new "
                            "tensor a CUDA tensor: the program fails without a GPU",
                            help="create tensors on the device of the model or the data; "
                            "`torch.set_default_dtype` sets only the dtype",
                        )
                return
        if not isinstance(func, cst.Attribute):
            return
        if func.attr.value == "type":
            arg = _first_arg(node, "dtype")
            kind = self._cuda_type_arg(arg) if arg is not None else None
            if kind is not None:
                self._type_cast(node, kind)
        elif func.attr.value == "cuda":
            self._cuda_call(node)

    # ------------------------------------------------------------------ the three forms

    def _constructor(self, node: cst.Call, kind: str) -> None:
        if self._guarded():
            return
        dtype, _ = CUDA_TYPES[kind]
        torch_name = self._torch_name()
        new = None
        if torch_name is not None:
            new = _constructor_replacement(node, torch_name, dtype, self._resolver())
        fix = self._owned_fix(node, new, f"Create the tensor with `torch.{dtype}` on the CPU "
                              "and let it move with the module") if new is not None else None
        self.report(
            node,
            f"`torch.cuda.{kind}Tensor(...)` creates the tensor on the current GPU: the code "
            "fails without CUDA and ignores the device of the model and its inputs",
            fix=fix,
            help=f"use `torch.tensor(..., dtype=torch.{dtype}, device=...)` with the device of "
            "an input, or a buffer registered in `__init__`",
        )

    def _type_cast(self, node: cst.Call, kind: str) -> None:
        where = self._where()
        if where is None or self._guarded():
            return
        _, method = CUDA_TYPES[kind]
        func = node.func
        assert isinstance(func, cst.Attribute)
        new = node.with_changes(func=func.with_changes(attr=cst.Name(method)), args=[])
        only_arg = len(node.args) == 1
        fix = None
        if only_arg:
            message = f"Cast with `.{method}()`, which keeps the tensor's device"
            if self._in_constructor():
                if self._tensorish(func.value):
                    fix = self._owned_fix(node, new, message)
            elif not self._in_any_constructor() and not self._cpu_born(func.value):
                fix = self.make_fix(message, (node, new))
        self.report(
            node,
            f"`.type(torch.cuda.{kind}Tensor)` in {where} moves the tensor to the GPU: the "
            "code fails without CUDA and ignores the device of the inputs",
            fix=fix,
            help=f"use `.{method}()` to change only the dtype, or `.to(<tensor>.device)`",
        )

    def _cuda_call(self, node: cst.Call) -> None:
        func = node.func
        assert isinstance(func, cst.Attribute)
        receiver = func.value
        if isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Name) and (
            receiver.func.value == "super"
        ):
            return
        if self.context.qualname(receiver) in ("torch", "torch.nn", "torch.Tensor"):
            return
        if _device_argument(node):
            return
        where = self._where()
        if where is None or self._guarded():
            return
        fix = None
        if self._in_constructor():
            new = _unwrap(node, receiver)
            owner = self._owner(node)
            if owner is not None and (owner[0] == "wrapped" or self._tensorish(receiver)):
                fix = self._owned_fix(node, new, "Drop `.cuda()`: the tensor moves with the module")
        self.report(
            node,
            f"`.cuda()` in {where} pins the tensor to the GPU: the code fails without CUDA "
            "and ignores the device the model was moved to",
            fix=fix,
            help=HELP_DEVICE,
        )

    # ------------------------------------------------------------------ where we are

    def _method(self) -> tuple[cst.ClassDef, cst.FunctionDef] | None:
        """The innermost class and the method of it that encloses the node."""
        stack = self.context.stack
        for i in range(len(stack) - 1, -1, -1):
            if isinstance(stack[i], cst.ClassDef):
                for inner in stack[i + 1 :]:
                    if isinstance(inner, cst.FunctionDef):
                        return stack[i], inner
                return None
        return None

    def _where(self) -> str | None:
        """'`C.f` of a nn.Module' / 'a loss', or None when the node is in neither."""
        found = self._method()
        if found is not None:
            cls, method = found
            if is_nn_module(cls, self.context.imports, self.context.module):
                return f"`{cls.name.value}.{method.name.value}` of a `nn.Module`"
        for node in reversed(self.context.stack):
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)) and _is_loss_name(node.name.value):
                return f"the loss `{node.name.value}`"
        return None

    def _in_constructor(self) -> bool:
        found = self._method()
        if found is None:
            return False
        cls, method = found
        if not is_nn_module(cls, self.context.imports, self.context.module):
            return False
        name = method.name.value
        return name == "__init__" or (name == "init" and "__init__" not in methods(cls))

    def _in_any_constructor(self) -> bool:
        """In `__init__`/`init` of any class: the value becomes state that must not stay behind."""
        found = self._method()
        return found is not None and found[1].name.value in ("__init__", "init")

    def _guarded(self) -> bool:
        """Whether the code around the node chose CUDA on purpose (see the docs)."""
        stack = self.context.stack
        for i, node in enumerate(stack):
            if isinstance(node, (cst.If, cst.While)) and _mentions_device(node.test):
                return True
            if isinstance(node, cst.IfExp) and _mentions_device(node.test):
                return True
            if isinstance(node, cst.With) and any(_mentions_device(it.item) for it in node.items):
                return True
            if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
                if DEVICE_WORD.search(node.name.value) or node.name.value in DEVICE_METHODS:
                    return True
                if any(_mentions_device(d.decorator) for d in node.decorators):
                    return True
            if isinstance(node, (cst.IndentedBlock, cst.Module)) and i + 1 < len(stack):
                child = stack[i + 1]
                for stmt in node.body:
                    if stmt is child:
                        break
                    if _exits_on_device(stmt):
                        return True
        return False

    # ------------------------------------------------------------------ names and values

    def _torch_name(self) -> str | None:
        names = self.context.imports.names
        if names.get("torch") == "torch":
            return "torch"
        for local, qual in names.items():
            if qual == "torch":
                return local
        return None

    def _cuda_type_arg(self, node: cst.BaseExpression) -> str | None:
        qual = self.context.qualname(node)
        if qual is not None:
            return _cuda_kind(qual)
        if isinstance(node, cst.SimpleString):
            return _cuda_kind(node.evaluated_value if isinstance(node.evaluated_value, str) else "")
        return None

    def _is_torch_call(self, node: cst.CSTNode, names: set[str]) -> bool:
        if not isinstance(node, cst.Call):
            return False
        qual = self.context.qualname(node.func) or ""
        head, _, last = qual.rpartition(".")
        return head in ("torch", "torch.cuda") and last in names

    def _tensorish(self, node: cst.BaseExpression) -> bool:
        """A value that is certainly a tensor: a torch factory, maybe through tensor methods."""
        while True:
            if self._is_torch_call(node, TORCH_FACTORIES):
                return True
            if (
                isinstance(node, cst.Call)
                and isinstance(node.func, cst.Attribute)
                and node.func.attr.value in TENSOR_METHODS
            ):
                node = node.func.value
                continue
            return False

    def _cpu_born(self, node: cst.BaseExpression) -> bool:
        """A fresh tensor made on the CPU (a factory without `device=`)."""
        while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and (
            node.func.attr.value in TENSOR_METHODS - {"cuda", "type"}
        ):
            node = node.func.value
        return self._is_torch_call(node, TORCH_FACTORIES) and not any(
            a.keyword is not None and a.keyword.value == "device" for a in node.args
        ) and not (self.context.qualname(node.func) or "").startswith("torch.cuda.")

    def _resolver(self):
        """name -> the value of its latest plain top-level binding before the node, or None."""
        func = self.context.enclosing(cst.FunctionDef)
        if func is None:
            return lambda name: None
        anchor = self._top_statement(func)
        body = body_statements(func)

        def resolve(name: str) -> cst.BaseExpression | None:
            if anchor is None or anchor not in body:
                return None
            if binds(anchor, name) and not isinstance(anchor, cst.SimpleStatementLine):
                return None
            value = None
            for stmt in body[: body.index(anchor)]:
                if isinstance(stmt, cst.SimpleStatementLine):
                    for small in stmt.body:
                        if (
                            isinstance(small, cst.Assign)
                            and len(small.targets) == 1
                            and isinstance(small.targets[0].target, cst.Name)
                            and small.targets[0].target.value == name
                        ):
                            value = small.value
                        elif binds(small, name):
                            value = None
                elif binds(stmt, name):
                    value = None
            return value

        return resolve

    def _top_statement(self, func: cst.FunctionDef) -> cst.BaseStatement | None:
        """The statement of func's body that contains the node being visited."""
        stack = self.context.stack
        for i, node in enumerate(stack):
            if node is func.body and i + 1 < len(stack):
                return stack[i + 1]
        return None

    # ------------------------------------------------------------------ module ownership

    def _owner(self, node: cst.CSTNode):
        """How the value of node ends up owned by the module in `__init__`.

        ("wrapped",): it is the tensor of `nn.Parameter(...)` or of `self.register_buffer`.
        ("assign", assign): it is the (tensor) value of a plain single-target assignment.
        None: anything else.
        """
        stack = self.context.stack
        child: cst.CSTNode = node
        for i in range(len(stack) - 1, -1, -1):
            anc = stack[i]
            if isinstance(anc, cst.Attribute) and anc.value is child:
                child = anc
                continue
            if isinstance(anc, cst.Call):
                if isinstance(anc.func, cst.Attribute) and anc.func is child and (
                    anc.func.attr.value in TENSOR_METHODS
                ):
                    child = anc
                    continue
                return None
            if isinstance(anc, cst.BinaryOperation) and isinstance(anc.operator, ARITHMETIC):
                child = anc
                continue
            if isinstance(anc, cst.UnaryOperation) and isinstance(anc.operator, cst.Minus):
                child = anc
                continue
            if isinstance(anc, cst.Arg) and i > 0 and isinstance(stack[i - 1], cst.Call):
                call = stack[i - 1]
                if _wraps(self.context, call, anc):
                    return ("wrapped",)
                return None
            if isinstance(anc, cst.Assign):
                if anc.value is child and len(anc.targets) == 1:
                    return ("assign", anc)
                return None
            return None
        return None

    def _owned_fix(self, node: cst.CSTNode, new: cst.CSTNode, message: str):
        """The fix for a value that must move with the module, or None."""
        if not self._in_constructor():
            return None
        owner = self._owner(node)
        if owner is None:
            return None
        if owner[0] == "wrapped":
            return self.make_fix(message, (node, new))
        assign = owner[1]
        cls, method = self._method()  # type: ignore[misc]
        self_name = _self_name(method)
        if self_name is None or not self._direct_module(cls):
            return None
        if self._nested_scope(method):
            return None
        target = assign.targets[0].target
        top = self._top_statement(method)
        body = body_statements(method)
        if top is None or top not in body:
            return None
        if _attr_of(target, self_name) is not None:
            attr = _attr_of(target, self_name)
            if not self._can_register(cls, method, attr, body.index(top)):
                return None
            value = assign.value.visit(_ReplaceOne(node, new))
            return self.make_fix(
                f"{message}; register `self.{attr}` as a buffer",
                (assign, _register(self_name, attr, value, assign)),
            )
        if not isinstance(target, cst.Name):
            return None
        local = target.value
        line = self.context.enclosing(cst.SimpleStatementLine)
        if line is None or _rebinds_after(line, assign, local):
            return None
        if top is not line:
            if not (
                isinstance(top, cst.If)
                and top.orelse is None
                and _is_not_none(top.test, local)
                and isinstance(top.body, cst.IndentedBlock)
                and line in top.body.body
            ):
                return None
            rest = list(top.body.body)
            if any(binds(s, local) for s in rest[rest.index(line) + 1 :]):
                return None
        start = body.index(top)
        for index in range(start + 1, len(body)):
            stmt = body[index]
            store = _store_of(stmt, self_name, local)
            if store is not None:
                small, attr = store
                if attr is None:  # already `self.register_buffer(..., local, ...)`
                    return self.make_fix(message, (node, new))
                if not self._can_register(cls, method, attr, index):
                    return None
                if sum(_self_stores(s, self_name, local) for s in body[start + 1 :]) != 1:
                    return None  # `self.p = m; self.q = m`: one buffer would leave an alias
                return self.make_fix(
                    f"{message}; register `self.{attr}` as a buffer",
                    (node, new),
                    (small, _register(self_name, attr, small.value, small)),
                )
            if binds(stmt, local):
                return None
        return None

    def _direct_module(self, cls: cst.ClassDef) -> bool:
        bases = base_names(cls, self.context.imports)
        return bool(bases) and all(b in NN_MODULE for b in bases)

    def _nested_scope(self, method: cst.FunctionDef) -> bool:
        stack = self.context.stack
        inside = stack[stack.index(method) + 1 :]
        return any(
            isinstance(n, (cst.FunctionDef, cst.Lambda, cst.ClassDef, cst.ListComp,
                           cst.SetComp, cst.DictComp, cst.GeneratorExp))
            for n in inside
        )

    def _can_register(
        self, cls: cst.ClassDef, method: cst.FunctionDef, attr: str, index: int
    ) -> bool:
        """Whether `self.<attr>` can become a buffer at the index-th statement of method."""
        if attr in MODULE_ATTRS:
            return False
        if len(attribute_writes(cls).get(attr, [])) != 1:
            return False
        if isinstance(cls.body, cst.IndentedBlock):
            for stmt in cls.body.body:
                if binds(stmt, attr) and not isinstance(stmt, cst.FunctionDef):
                    return False
        body = body_statements(method)
        return any(_calls_super_init(s) for s in body[:index])


# ---------------------------------------------------------------------- helpers


def _cuda_kind(text: str) -> str | None:
    m = CUDA_TYPE_RE.fullmatch(text)
    if m is not None and m.group(1) in CUDA_TYPES:
        return m.group(1)
    return None


def _is_loss_name(name: str) -> bool:
    """`LDAMLoss`, `focal_loss`; not a test about losses (`test_output_unused_in_loss`)."""
    lowered = name.lower()
    return "loss" in lowered and not lowered.lstrip("_").startswith("test")


def _device_argument(call: cst.Call) -> bool:
    """`.cuda(rank)`, `.cuda(device=self.device)`: the caller chose the GPU."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value != "device":
            continue
        if not isinstance(arg.value, (cst.Integer, cst.SimpleString)):
            return True
    return False


def _ast_device_argument(call: ast.Call) -> bool:
    """`_device_argument` on the stdlib tree: an argument that is not a literal."""
    values = [*call.args, *(k.value for k in call.keywords if k.arg in (None, "device"))]
    return any(
        not (isinstance(v, ast.Constant) and type(v.value) in (int, str, bytes)) for v in values
    )


def _first_arg(call: cst.Call, keyword: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.star:
            return None
        if arg.keyword is None or arg.keyword.value == keyword:
            return arg.value
    return None


def _mentions_device(node: cst.CSTNode) -> bool:
    finder = _DeviceWords()
    walk(node, finder)
    return finder.found


class _DeviceWords(Visitor):
    def __init__(self) -> None:
        self.found = False

    def visit_Name(self, node: cst.Name) -> None:
        if DEVICE_WORD.search(node.value):
            self.found = True

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        if DEVICE_WORD.search(node.value):
            self.found = True

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


def _exits_on_device(stmt: cst.BaseStatement) -> bool:
    """`if <device test>: ... return/raise` or `assert <device test>`."""
    if isinstance(stmt, cst.If) and _mentions_device(stmt.test):
        body = stmt.body.body if isinstance(stmt.body, cst.IndentedBlock) else [stmt.body]
        last = body[-1] if body else None
        smalls = last.body if isinstance(last, (cst.SimpleStatementLine, cst.SimpleStatementSuite)) else []
        if isinstance(stmt.body, cst.SimpleStatementSuite):
            smalls = stmt.body.body
        return any(isinstance(s, (cst.Return, cst.Raise, cst.Continue, cst.Break)) for s in smalls)
    if isinstance(stmt, cst.SimpleStatementLine):
        return any(isinstance(s, cst.Assert) and _mentions_device(s.test) for s in stmt.body)
    return False


def _unwrap(call: cst.Call, receiver: cst.BaseExpression) -> cst.BaseExpression:
    """`x.cuda()` -> `x`, keeping parentheses written around the call."""
    if call.lpar:
        return receiver.with_changes(
            lpar=[*call.lpar, *receiver.lpar], rpar=[*receiver.rpar, *call.rpar]
        )
    return receiver


def _is_int_literal(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Integer) or (
        isinstance(node, cst.UnaryOperation) and isinstance(node.expression, cst.Integer)
    )


def _is_size(node: cst.BaseExpression) -> bool:
    if _is_int_literal(node):
        return True
    if isinstance(node, cst.Attribute) and node.attr.value == "shape":
        return True
    if isinstance(node, cst.Call) and (dotted_name(node.func) or "").split(".")[-1] == "Size":
        return True
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "size"
        and not node.args
    )


def _is_data(node: cst.BaseExpression, resolve, depth: int = 0) -> bool:
    """Whether node is certainly a sequence or array (data), never an int (a size)."""
    if depth > 4:
        return False
    if isinstance(node, (cst.List, cst.ListComp)):
        return True
    if isinstance(node, cst.Tuple):
        return bool(node.elements)
    if isinstance(node, cst.Float):
        return True
    if isinstance(node, cst.BinaryOperation):
        if isinstance(node.operator, cst.Divide):
            return True
        return _is_data(node.left, resolve, depth + 1) or _is_data(node.right, resolve, depth + 1)
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus):
        return _is_data(node.expression, resolve, depth + 1)
    if isinstance(node, cst.Call):
        name = dotted_name(node.func) or ""
        head, _, last = name.rpartition(".")
        if head in ("np", "numpy") and last in NUMPY_DATA:
            return not (node.args and _is_int_literal(node.args[0].value) and last == "array")
        if isinstance(node.func, cst.Name) and node.func.value in ("list", "tuple"):
            return True
        if isinstance(node.func, cst.Attribute) and node.func.attr.value in ("tolist", "numpy", "astype"):
            return True
        return False
    if isinstance(node, cst.Name) and depth == 0:
        value = resolve(node.value)
        return value is not None and _is_data(value, resolve, depth + 1)
    return False


def _constructor_replacement(call: cst.Call, torch_name: str, dtype: str, resolve):
    """`torch.cuda.FloatTensor(data)` -> `torch.tensor(data, dtype=torch.float32)`,
    `torch.cuda.FloatTensor(2, 3)` -> `torch.empty(2, 3, dtype=...)`; None when unsure."""
    if any(a.keyword is not None or a.star for a in call.args):
        return None
    args = list(call.args)
    if len(args) == 1 and _is_data(args[0].value, resolve):
        factory = "tensor"
    elif args and (len(args) > 1 or _is_size(args[0].value)) and all(
        not isinstance(a.value, (cst.List, cst.Tuple, cst.ListComp)) for a in args
    ):
        factory = "empty"
    else:
        return None
    template = cst.parse_expression(f"{torch_name}.{factory}(_, dtype={torch_name}.{dtype})")
    assert isinstance(template, cst.Call)
    kept = [
        a if a.comma is not cst.MaybeSentinel.DEFAULT
        else a.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        for a in args
    ]
    return template.with_changes(
        args=[*kept, template.args[-1]],
        lpar=call.lpar,
        rpar=call.rpar,
        whitespace_before_args=call.whitespace_before_args,
    )


def _wraps(context, call: cst.Call, arg: cst.Arg) -> bool:
    """`nn.Parameter(<arg>)` or `self.register_buffer(name, <arg>)`."""
    if context.qualname(call.func) in PARAMETER_CLASSES:
        return call.args and call.args[0] is arg
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value == "register_buffer":
        if arg.keyword is not None:
            return arg.keyword.value == "tensor"
        return len(call.args) > 1 and call.args[1] is arg
    return False


def _self_name(method: cst.FunctionDef) -> str | None:
    params = [*method.params.posonly_params, *method.params.params]
    return params[0].name.value if params else None


def _attr_of(node: cst.CSTNode, self_name: str) -> str | None:
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and (
        node.value.value == self_name
    ):
        return node.attr.value
    return None


def _is_not_none(test: cst.BaseExpression, name: str) -> bool:
    return (
        isinstance(test, cst.Comparison)
        and isinstance(test.left, cst.Name)
        and test.left.value == name
        and len(test.comparisons) == 1
        and isinstance(test.comparisons[0].operator, cst.IsNot)
        and isinstance(test.comparisons[0].comparator, cst.Name)
        and test.comparisons[0].comparator.value == "None"
    )


def _rebinds_after(line: cst.SimpleStatementLine, assign: cst.Assign, name: str) -> bool:
    smalls = list(line.body)
    return any(binds(s, name) for s in smalls[smalls.index(assign) + 1 :])


def _store_of(stmt: cst.BaseStatement, self_name: str, local: str):
    """(`self.X = local` node, "X") or (register_buffer call, None) when stmt stores local."""
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return None
    small = stmt.body[0]
    if (
        isinstance(small, cst.Assign)
        and len(small.targets) == 1
        and isinstance(small.value, cst.Name)
        and small.value.value == local
    ):
        attr = _attr_of(small.targets[0].target, self_name)
        return (small, attr) if attr is not None else None
    if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
        call = small.value
        func = call.func
        if (
            _attr_of(func, self_name) == "register_buffer"
            and len(call.args) > 1
            and isinstance(call.args[1].value, cst.Name)
            and call.args[1].value.value == local
        ):
            return (small, None)
    return None


def _self_stores(node: cst.CSTNode, self_name: str, local: str) -> int:
    """How many `self.X = local` assignments node contains."""
    counter = _SelfStores(self_name, local)
    walk(node, counter)
    return counter.count


class _SelfStores(Visitor):
    def __init__(self, self_name: str, local: str) -> None:
        self.self_name, self.local, self.count = self_name, local, 0

    def visit_Assign(self, node: cst.Assign) -> None:
        if isinstance(node.value, cst.Name) and node.value.value == self.local:
            self.count += sum(
                _attr_of(t.target, self.self_name) is not None for t in node.targets
            )


def _register(self_name: str, attr: str, value: cst.BaseExpression, old: cst.Assign) -> cst.Expr:
    """`self.register_buffer("attr", value, persistent=False)` replacing the assignment."""
    template = cst.parse_expression(f'{self_name}.register_buffer("{attr}", _, persistent=False)')
    assert isinstance(template, cst.Call)
    args = list(template.args)
    args[1] = args[1].with_changes(value=value)
    return cst.Expr(value=template.with_changes(args=args), semicolon=old.semicolon)


def _calls_super_init(stmt: cst.BaseStatement) -> bool:
    finder = _SuperInit()
    walk(stmt, finder)
    return finder.found


class _SuperInit(Visitor):
    def __init__(self) -> None:
        self.found = False

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("__init__", "init"):
            receiver = func.value
            if isinstance(receiver, cst.Call) and dotted_name(receiver.func) == "super":
                self.found = True
            elif dotted_name(receiver) in ("nn.Module", "torch.nn.Module", "Module"):
                self.found = True


class _ReplaceOne(cst.CSTTransformer):
    def __init__(self, old: cst.CSTNode, new: cst.CSTNode) -> None:
        self.old, self.new = old, new

    def on_leave(self, original_node, updated_node):
        return self.new if original_node is self.old else updated_node
