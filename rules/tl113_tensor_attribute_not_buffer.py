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

import re
from dataclasses import dataclass

import libcst as cst

from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.semantic import ClassInfo, SemanticModel
from trainlint.semantic import vocabulary as vocab
from trainlint.semantic.stores import (
    Store, called, is_none, may_be_tensor, named_attributes, reads_self_attribute, stores,
)
from trainlint.semantic.tensors import GRAD, FunctionBody

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
# Class-level bindings that take an attribute's name (a simple statement, a `def`, a `class`).
CLASS_LEVEL = {"assign", "annotated", "augmented", "walrus", "def", "class"}
# A misspelled constructor (TL007's territory): underscores around letters of "init".
_INIT_LIKE = re.compile(r"_*[int]{3,6}_*")

# Names under which torch layers keep their parameters and buffers.
PARENT_STATE = re.compile(r"(?:^|_)(?:weight|bias)(?:_|$)|^running_|^num_batches_tracked$")


def _constructor_name(decorated: dict[str, bool]) -> tuple[str | None, bool]:
    """The constructor, `__init__`, or the single misspelled one when there is none, among
    the methods' names (each with whether it is decorated): (name, misspelled)."""
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


@dataclass(frozen=True)
class _TensorStore:
    anchor: object  # the `self.x = <tensor>` statement
    attr: str
    grad: bool  # created with `requires_grad=True`
    fixable: bool


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
    def candidates(cls, model: SemanticModel) -> list[_TensorStore]:
        out = []
        files = _File(model)
        for klass in model.classes:
            own = klass.methods
            name, misspelled = _constructor_name({n: bool(f.decorator_list) for n, f in own.items()})
            if name is not None and model.is_module(klass):
                out += _ModuleClass(files, klass, own[name], misspelled).tensor_stores()
        return out

    def check(self, candidate: _TensorStore, node: cst.Assign | cst.AnnAssign) -> None:
        attr = candidate.attr
        if candidate.grad:
            self.report(
                node,
                self.grad_message.format(attr=attr),
                help=f"wrap it: `self.{attr} = nn.Parameter(...)`",
                data={"attribute": attr},
            )
            return
        self.report(
            node,
            self.message.format(attr=attr),
            fix=self._fix(node, attr) if candidate.fixable else None,
            help=f'register it: `self.register_buffer("{attr}", ..., persistent=False)`',
            data={"attribute": attr},
        )

    def _fix(self, assign: cst.Assign, attr: str):
        call = cst.parse_expression(f'self.register_buffer("{attr}", __value__, persistent=False)')
        args = list(call.args)
        args[1] = args[1].with_changes(value=assign.value)
        return self.make_fix(
            f"Register `self.{attr}` as a non-persistent buffer",
            (assign, cst.Expr(value=call.with_changes(args=args))),
        )


class _File:
    """What the classes of one file share: their stores, and the subclasses of each."""

    def __init__(self, model: SemanticModel) -> None:
        self.model = model
        self._stores: dict[ClassInfo, dict[str, list[Store]]] = {}
        self._subclasses: dict[ClassInfo, list[ClassInfo]] | None = None

    def stores(self, klass: ClassInfo) -> dict[str, list[Store]]:
        found = self._stores.get(klass)
        if found is None:
            found = self._stores[klass] = stores(self.model, klass)
        return found

    def subclasses(self, klass: ClassInfo) -> list[ClassInfo]:
        """The top-level classes of the file that derive from klass through local classes."""
        if self._subclasses is None:
            self._subclasses = {}
            for other in self.model.top_level_classes.values():
                for ancestor in self.model.chain(other)[1:]:
                    self._subclasses.setdefault(ancestor, []).append(other)
        return self._subclasses.get(klass, [])


class _ModuleClass:
    """An `nn.Module` class with a constructor: the tensors its constructor stores, and
    what rules each out."""

    def __init__(self, file: _File, klass: ClassInfo, ctor, misspelled: bool) -> None:
        self.file = file
        self.model = file.model
        self.klass = klass
        self.ctor = ctor
        self.misspelled = misspelled
        self.stores = file.stores(klass)
        self._bodies: dict[int, FunctionBody] = {}

    def body(self, function) -> FunctionBody:
        found = self._bodies.get(id(function))
        if found is None:
            found = self._bodies[id(function)] = FunctionBody(self.model, function)
        return found

    def tensor_stores(self) -> list[_TensorStore]:
        found = self._constructor_tensors()
        if not found:
            return []
        chain = self.model.chain(self.klass)
        if any(DEVICE_OVERRIDES & klass.methods.keys() for klass in chain):
            return []
        foreign = any(
            base not in self.model.top_level_classes and base not in vocab.MODULE
            and base not in vocab.MODULE_AS_WRITTEN and base != "object"
            for klass in chain for base in self.model.base_names(klass)
        )
        registered = self._registered(chain)
        inherited: dict[str, list[Store]] = {}
        for klass in chain[1:]:
            for attr, writes in self.file.stores(klass).items():
                inherited.setdefault(attr, []).extend(writes)
        out = []
        for store, kind in found:
            attr = store.attr
            writes = self.stores[attr]
            if attr in registered:
                continue
            if foreign and PARENT_STATE.search(attr):
                continue  # may be a parameter or buffer of a torch layer it extends
            if any(called(self.model, w.value) in vocab.PARAMETERS_AND_BUFFERS for w in writes + inherited.get(attr, [])):
                continue
            if not all(w is store or self._tensor_like(w) for w in writes):
                continue  # sometimes a float, a list...: a buffer cannot hold it
            grad = kind == GRAD
            fixable = not grad and not self.misspelled and len(writes) == 1 and self._fixable(store, chain, foreign)
            out.append(_TensorStore(store.statement, attr, grad, fixable))
        return out

    def _constructor_tensors(self) -> list[tuple[Store, str]]:
        """Per attribute, the first store of the constructor whose value is a visible tensor."""
        body = self.body(self.ctor)
        found = []
        for writes in self.stores.values():
            for store in writes:
                if store.access.method is not self.ctor or store.kind == "augmented" or not may_be_tensor(store.value):
                    continue
                kind = body.tensor(store.value, store.statement)
                if kind is not None:
                    found.append((store, kind))
                    break
        return found

    def _registered(self, chain: list[ClassInfo]) -> set[str]:
        """Attributes the classes register or wrap: `register_buffer("x", ...)`,
        `setattr(self, "x", ...)`, `nn.Parameter(self.x)`, `register_buffer("y", self.x)`."""
        names: set[str] = set()
        for klass in chain:
            for call in self.model.calls_in(self.model.scope_of(klass.node)):
                if call.callee in REGISTERING or call.qualname in vocab.PARAMETERS_AND_BUFFERS:
                    names |= named_attributes(call.node)
        return names

    def _tensor_like(self, store: Store) -> bool:
        """Whether a store holds something a buffer can hold: a visible tensor, `None`, or
        a value computed from the attribute itself (`self.x.to(device)`)."""
        value = store.value
        if is_none(value) or store.kind == "augmented":
            return True
        if self.body(store.access.method).tensor(value, store.statement) is not None:
            return True
        return reads_self_attribute(value, store.attr)

    def _fixable(self, store: Store, chain: list[ClassInfo], foreign: bool) -> bool:
        """`self.x = <value>` alone on a line of the constructor's body, after the parent's
        `__init__` call, to a name no other definition takes."""
        body = self.body(self.ctor)
        stmt = store.statement
        if store.kind != "assign" or not store.sole_target or not body.alone(stmt):
            return False
        if not body.calls_init_before(stmt):
            return False
        attr = store.attr
        if attr in MODULE_ATTRS or attr in ("_buffers", "_parameters", "_modules"):
            return False
        return not foreign and self._name_free(attr, chain)

    def _name_free(self, attr: str, chain: list[ClassInfo]) -> bool:
        """No class in the local chain defines or writes `attr` (besides the store), and
        no subclass in the file writes it."""
        if any(attr in self.file.stores(sub) for sub in self.file.subclasses(self.klass)):
            return False
        for klass in chain:
            scope = self.model.scope_of(klass.node)
            if any(
                not b.guards and (b.kind in CLASS_LEVEL or (b.kind == "import" and b.node.asname))
                for b in self.model.bindings(scope, attr)
            ):
                return False
            if klass is not self.klass and attr in self.file.stores(klass):
                return False
        return True
