"""
## What it does
Flags a layer with state, or an `nn.Parameter`, constructed inside the `forward` method
of an `nn.Module` (also `forward_*` and `_forward*` helpers such as timm's
`forward_features`): `nn.Linear(64, 10)(x)`, `conv = torch.nn.Conv2d(...)` in forward,
`w = nn.Parameter(torch.randn(d))`. It also flags the mode-dependent modules
`nn.Dropout*`, `nn.AlphaDropout`, `nn.FeatureAlphaDropout`, `nn.RReLU` and the batch
norms built there, and `nn.Module` subclasses of the same file whose own construction
creates such state.

Layers counted as stateful: linear, bilinear and convolution layers (and their lazy
forms), batch, group, layer and RMS norms (unless built with `affine=False` /
`elementwise_affine=False` and, for batch norms, `track_running_stats=False`), instance
norms built with `affine=True` or `track_running_stats=True`, embeddings, recurrent
layers and cells, transformer layers, `MultiheadAttention`, `PReLU` and
`AdaptiveLogSoftmaxWithLoss`.

## Why is this bad?
A module built in `forward` is a new object on every call: its weights are drawn afresh
each time, never reach the optimizer (which was given `model.parameters()` before
training), are never saved in the `state_dict`, and stay on the CPU when the model is
moved. The outputs are random and nothing learns. A dropout or batch norm built there is
always in training mode, so `model.eval()` has no effect on it.

## Example
```python
class Head(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        x = nn.Dropout(0.1)(x)
        return nn.Linear(self.dim, 10)(x)
```

## Use instead
```python
class Head(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.drop = nn.Dropout(0.1)
        self.fc = nn.Linear(dim, 10)

    def forward(self, x):
        return self.fc(self.drop(x))
```
Parameter-free operations are better written functionally (`F.relu(x)`,
`F.max_pool2d(x, 2)`), and dropout as `F.dropout(x, p, training=self.training)`.

## Fix safety
There is no fix: hoisting the constructor into `__init__` needs its arguments there
(they often depend on the input's shape) and a name for the new attribute.

## Known false positives
Not flagged, by design:
- Parameter-free modules (`nn.ReLU()`, `nn.Flatten()`, pooling, padding, `nn.Upsample`,
  `nn.Identity()`) and containers (`nn.Sequential(...)`; their stateful elements are
  reported themselves): building them per call is wasteful but computes the same thing.
- Loss modules (`nn.CrossEntropyLoss(weight=w)(logits, y)`): they learn nothing, and a
  `weight` tensor is the caller's.
- Lazy initialisation: a constructor whose result is stored on the module
  (`self.proj = nn.Linear(...)`, `self.layers[k] = ...`, `self.add_module(...)`,
  `self.register_parameter(...)`, `setattr(self, ...)`, `self.blocks.append(...)`),
  directly or through a local that is stored so later in the method. The module then
  owns it (an optimizer built before the first call still misses it).
- Constructors inside functions, lambdas or classes nested in `forward` (factories), in
  `__init__` and other methods, in plain functions, and in classes that are not
  `nn.Module` subclasses in the same file (a subclass of a third-party base class such as
  `LightningModule` is not recognised).
A module built in forward on purpose with fixed weights (a test, a throwaway probe)
needs `# trainlint: ignore[TL111]`. An `nn.Parameter(x)` made only to get a leaf tensor
that requires grad (an input-gradient probe) is reported; `x.detach().requires_grad_()`
says that without the rule firing.
"""

from __future__ import annotations

import ast

import libcst as cst

from trainlint import screen as sc
from trainlint.imports import dotted_name
from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor, base_names, is_nn_module, local_classes
from trainlint.rules._screens import nn_module_classes
from trainlint.traverse import walk

# Always stateful (parameters or buffers), whatever the arguments.
PARAMETRISED = frozenset(
    """Linear Bilinear LazyLinear Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d
    ConvTranspose3d LazyConv1d LazyConv2d LazyConv3d LazyConvTranspose1d LazyConvTranspose2d
    LazyConvTranspose3d Embedding EmbeddingBag RNN LSTM GRU RNNCell LSTMCell GRUCell
    Transformer TransformerEncoder TransformerDecoder TransformerEncoderLayer
    TransformerDecoderLayer MultiheadAttention PReLU AdaptiveLogSoftmaxWithLoss""".split()
)
# Behave differently in train() and eval().
MODE_DEPENDENT = frozenset(
    "Dropout Dropout1d Dropout2d Dropout3d AlphaDropout FeatureAlphaDropout RReLU".split()
)
# Norms: class -> the switches that create state, as (keyword, position, default).
_AFFINE_BN = (("affine", 3, True), ("track_running_stats", 4, True))
_AFFINE_IN = (("affine", 3, False), ("track_running_stats", 4, False))
NORMS: dict[str, tuple[tuple[str, int, bool], ...]] = {
    **{n: _AFFINE_BN for n in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm")},
    # the lazy forms take no num_features: every switch moves one place to the left
    **{n: tuple((k, p - 1, d) for k, p, d in _AFFINE_BN)
       for n in ("LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d")},
    **{n: _AFFINE_IN for n in ("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d")},
    **{n: tuple((k, p - 1, d) for k, p, d in _AFFINE_IN)
       for n in ("LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d")},
    "LayerNorm": (("elementwise_affine", 2, True),),
    "RMSNorm": (("elementwise_affine", 2, True),),
    "GroupNorm": (("affine", 3, True),),
}
BATCH_NORMS = frozenset(n for n in NORMS if "BatchNorm" in n)
PARAMETER_NAMES = {"torch.nn.Parameter", "torch.nn.parameter.Parameter",
                   "torch.nn.UninitializedParameter", "torch.nn.parameter.UninitializedParameter"}
LAYER_NAMES = PARAMETRISED | frozenset(NORMS)
STATEFUL_NAMES = LAYER_NAMES | MODE_DEPENDENT
# Calls on `self` (or one of its attributes) that hand an object to the module.
REGISTERING = {"add_module", "register_module", "register_parameter", "register_buffer",
               "append", "extend", "insert", "update", "setdefault", "__setitem__"}
NN_NON_MODULE_PARTS = {"functional", "init", "utils", "quantized", "intrinsic", "qat",
                       "quantizable", "attention"}



def is_forward_name(name: str) -> bool:
    return name == "forward" or name.startswith(("forward_", "_forward"))


class ModuleCreatedInForward(Rule):
    __doc__ = __doc__
    code = "TL111"
    name = "module-created-in-forward"
    message = (
        "`{ctor}(...)` is constructed inside `{method}`: a new layer with fresh random "
        "weights on every call, never trained or saved; build it in `__init__`"
    )
    message_mode = (
        "`{ctor}(...)` is constructed inside `{method}`: a fresh module is always in "
        "training mode and ignores `model.eval()`; build it in `__init__`"
    )
    message_parameter = (
        "`{ctor}(...)` is created inside `{method}`: a new tensor on every call that the "
        "module does not own, so the optimizer never updates it and it is not saved; "
        "create it in `__init__`"
    )
    fix_applicability = None
    tokens = ("*forward*", (*sorted(STATEFUL_NAMES), "Parameter", "register_parameter"))

    VALID = [
        # Built in __init__, used in forward; functional and parameter-free calls.
        Valid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    self.w = nn.Parameter(torch.zeros(4))

                def forward(self, x):
                    x = F.relu(self.fc(x)) + self.w
                    x = nn.ReLU()(x)
                    x = nn.Flatten()(x)
                    x = nn.MaxPool1d(2)(x)
                    return nn.Sequential(nn.GELU(), nn.Identity())(x)
            """
        ),
        # Losses built in forward learn nothing.
        Valid(
            """
            import torch.nn as nn

            class Criterion(nn.Module):
                def forward(self, logits, y, w=None):
                    return nn.CrossEntropyLoss(weight=w)(logits, y) + nn.MSELoss()(logits, y)
            """
        ),
        # Lazy initialisation: the new module is stored on self.
        Valid(
            """
            import torch
            from torch import nn

            class Lazy(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.proj = None
                    self.blocks = nn.ModuleList()

                def forward(self, x):
                    if self.proj is None:
                        self.proj = nn.Linear(x.shape[-1], 8).to(x.device)
                    if not hasattr(self, "scale"):
                        scale = nn.Parameter(torch.ones(8))
                        self.register_parameter("scale", scale)
                    head = nn.Linear(8, 2)
                    setattr(self, "head", head)
                    self.add_module("norm", nn.LayerNorm(8))
                    self.blocks.append(nn.Conv1d(8, 8, 1))
                    return self.proj(x)
            """
        ),
        # Factories nested in forward, other methods, non-module classes.
        Valid(
            """
            import torch
            from torch import nn

            class Net(nn.Module):
                def forward(self, x):
                    def make(d):
                        return nn.Linear(d, d)
                    build = lambda: nn.Dropout(0.1)
                    return x

                def reset(self, d):
                    self.fc = nn.Linear(d, d)
                    return nn.Linear(d, d)

            class Builder:
                def forward(self, d):
                    return nn.Linear(d, d)

            def forward(x):
                return nn.Linear(4, 4)(x)
            """
        ),
        # Norms built without any state are plain functions.
        Valid(
            """
            from torch import nn

            class Net(nn.Module):
                def forward(self, x):
                    x = nn.InstanceNorm2d(8)(x)
                    x = nn.LayerNorm(8, elementwise_affine=False)(x)
                    x = nn.GroupNorm(2, 8, affine=False)(x)
                    return nn.BatchNorm1d(8, affine=False, track_running_stats=False)(x)
            """
        ),
        # A local module class without state; a name that is not torch's.
        Valid(
            """
            from torch import nn

            class Act(nn.Module):
                def forward(self, x):
                    return x.clamp(min=0)

            class Linear:
                def __init__(self, d):
                    self.d = d

            class Net(nn.Module):
                def forward(self, x):
                    x = Act()(x)
                    return Linear(4).d * x
            """
        ),
        # A local module that holds only a buffer computed from its arguments.
        Valid(
            """
            import torch
            from torch import nn

            class Sinusoid(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.register_buffer("freq", torch.arange(d) / d)

                def forward(self, t):
                    return torch.sin(t[:, None] * self.freq)

            class Net(nn.Module):
                def forward(self, t):
                    return Sinusoid(8)(t)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn

            class Head(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.dim = dim

                def forward(self, x):
                    x = nn.Dropout(0.1)(x)
                    return nn.Linear(self.dim, 10)(x)
            """,
            line=9,
            count=2,
        ),
        # An `async def` forward (the screen once looked at plain `def`s only).
        Invalid(
            """
            import torch.nn as nn

            class Head(nn.Module):
                async def forward(self, x):
                    return nn.Linear(3, 4)(x)
            """,
            line=5,
        ),
        # A layer class imported under another name (the screen follows the alias).
        Invalid(
            """
            from torch.nn import Module, Linear as dense

            class Head(Module):
                def forward(self, x):
                    return dense(3, 4)(x)
            """,
            line=5,
        ),
        # Aliases, a Parameter bound to a local, helper forward methods, a local
        # module class with state, and a BatchNorm whose flags are not literal.
        Invalid(
            """
            import torch as T
            from torch.nn import Conv2d, Parameter
            from torch import nn as tnn

            class Block(T.nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.fc = tnn.Linear(d, d)

            class Net(tnn.Module):
                def forward_features(self, x):
                    conv = Conv2d(3, 8, 3)
                    return conv(x)

                def forward(self, x, affine):
                    w = Parameter(T.randn(8))
                    x = T.nn.BatchNorm2d(8, affine=affine)(x) * w
                    return Block(8)(self.forward_features(x))
            """,
            line=12,
            count=4,
        ),
        # A local stored on self only in another method does not count as lazy init.
        Invalid(
            """
            from torch import nn

            class Net(nn.Module):
                def forward(self, x):
                    emb = nn.Embedding(10, 4)
                    return emb(x)

                def keep(self, emb):
                    self.emb = emb
            """,
            line=5,
        ),
        # A local module class whose parameter is registered by name.
        Invalid(
            """
            import torch
            from torch import nn

            class Scale(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.register_parameter("g", nn.Parameter(torch.ones(d)))

            class Net(nn.Module):
                def forward(self, x):
                    return Scale(x.shape[-1])(x)
            """,
            line=11,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._class_kind: dict[int, bool] = {}
        self._local_state: dict[str, bool] | None = None

    @classmethod
    def screen(cls, index) -> bool:
        """A forward-like method of a class that may be an `nn.Module` calls a stateful
        layer, a Parameter or a class of the file that may be an `nn.Module`."""
        modules = nn_module_classes(index)
        forwards = [
            f for c in modules for f in c.body
            if isinstance(f, sc.FUNCTIONS) and is_forward_name(f.name)
        ]
        if not forwards:
            return False
        candidates = set(STATEFUL_NAMES) | {"Parameter", "UninitializedParameter"}
        candidates |= {  # `from torch.nn import Linear as L`
            local for local, quals in index.imports.items()
            if any(q.rpartition(".")[2] in candidates for q in quals)
        }
        candidates |= {c.name for c in modules}
        if not candidates & index.called:
            return False
        for func in forwards:
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and _ast_callee(node.func) in candidates:
                    return True
        return False

    def visit_Call(self, node: cst.Call) -> None:
        kind = self._kind(node)
        if kind is None:
            return
        method = self._forward_method()
        if method is None or self._stored_on_self(node, method):
            return
        ctor = self.context.code(node.func)
        template = {
            "mode": self.message_mode,
            "parameter": self.message_parameter,
        }.get(kind, self.message)
        self.report(
            node,
            template.format(ctor=ctor, method=method.name.value),
            help="create it once in `__init__` (`self.<name> = ...`) and call that attribute",
        )

    # ----------------------------------------------------------------- what is built

    def _kind(self, call: cst.Call) -> str | None:
        """"layer", "mode" or "parameter" when the call builds something with state."""
        qualname = self.context.qualname(call.func)
        if qualname is None:
            if isinstance(call.func, cst.Name) and self._local_stateful(call.func.value):
                return "layer"
            return None
        if qualname in PARAMETER_NAMES:
            return "parameter"
        parts = qualname.split(".")
        if len(parts) < 3 or parts[:2] != ["torch", "nn"] or NN_NON_MODULE_PARTS.intersection(parts[2:-1]):
            return None
        last = parts[-1]
        if last in PARAMETRISED:
            return "layer"
        if last in MODE_DEPENDENT:
            return "mode"
        if last in NORMS:
            if not _norm_has_state(call, NORMS[last]):
                return None
            return "mode" if last in BATCH_NORMS else "layer"
        return None

    def _local_stateful(self, name: str) -> bool:
        if self._local_state is None:
            self._local_state = {}
            local = local_classes(self.context.module)
            for cls_name in local:
                self._stateful_class(cls_name, local, set())
        return self._local_state.get(name, False)

    def _stateful_class(self, name: str, local: dict[str, cst.ClassDef], seen: set[str]) -> bool:
        """A local nn.Module subclass that builds a stateful layer or a Parameter in its
        class body or methods, or derives from a stateful torch.nn class or one such."""
        assert self._local_state is not None
        if name in self._local_state:
            return self._local_state[name]
        if name in seen:
            return False
        seen.add(name)
        cls = local[name]
        result = False
        if is_nn_module(cls, self.context.imports, self.context.module):
            for base in base_names(cls, self.context.imports):
                last = base.split(".")[-1]
                if base.startswith(("torch.nn.", "nn.")) and last in LAYER_NAMES:
                    result = True
                elif base in local and self._stateful_class(base, local, seen):
                    result = True
            if not result:
                finder = _Constructs(self)
                walk(cls.body, finder)
                result = finder.found
        self._local_state[name] = result
        return result

    # ------------------------------------------------------------------ where

    def _forward_method(self) -> cst.FunctionDef | None:
        """The forward-like method of an nn.Module that directly contains the call
        (nested functions, lambdas and classes excluded)."""
        stack = self.context.stack
        for k in range(len(stack) - 1, -1, -1):
            node = stack[k]
            if isinstance(node, (cst.Lambda, cst.ClassDef)):
                return None
            if isinstance(node, cst.FunctionDef):
                if k < 2 or not isinstance(stack[k - 2], cst.ClassDef):
                    return None
                if not is_forward_name(node.name.value):
                    return None
                cls = stack[k - 2]
                key = id(cls)
                if key not in self._class_kind:
                    self._class_kind[key] = is_nn_module(cls, self.context.imports, self.context.module)
                return node if self._class_kind[key] else None
        return None

    def _stored_on_self(self, call: cst.Call, method: cst.FunctionDef) -> bool:
        params = [*method.params.posonly_params, *method.params.params]
        if not params:
            return False
        owner = params[0].name.value
        stack = self.context.stack
        start = next(k for k in range(len(stack)) if stack[k] is method)
        chain = [*stack[start + 1 :], call]
        local: str | None = None
        for k, node in enumerate(chain):
            if isinstance(node, cst.Call) and node is not call and _registers(node, owner):
                return True
            if isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
                targets = (
                    [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                )
                if any(_rooted_at(t, owner) for t in targets):
                    return True
                if isinstance(node, cst.Assign) and len(targets) == 1 and isinstance(targets[0], cst.Name):
                    local = targets[0].value
        if local is None:
            return False
        finder = _StoresLocal(local, owner)
        walk(method.body, finder)
        return finder.found


# ------------------------------------------------------------------------- helpers


def _ast_callee(func: ast.expr) -> str | None:
    """The last name of a callee, or None for a method of `self` (`self.LayerNorm(x)`),
    which calls an existing submodule."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        root = func.value
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id == "self":
            return None
        return func.attr
    return None


def _flag(call: cst.Call, switch: tuple[str, int, bool]) -> bool:
    """The value a constructor gives one boolean switch: literal False is False, a missing
    argument is the default, anything else counts as True."""
    keyword, position, default = switch
    positional = [a for a in call.args if a.keyword is None and not a.star]
    value: cst.BaseExpression | None = None
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == keyword:
            value = arg.value
    if value is None and len(positional) > position:
        value = positional[position].value
    if value is None:
        if any(a.star for a in call.args):
            return True
        return default
    return not (isinstance(value, cst.Name) and value.value == "False")


def _norm_has_state(call: cst.Call, switches: tuple[tuple[str, int, bool], ...]) -> bool:
    return any(_flag(call, s) for s in switches)


def _rooted_at(node: cst.CSTNode, owner: str) -> bool:
    """`self.x`, `self.x[k]`, `self.a.b` (and tuples containing one)."""
    if isinstance(node, (cst.Tuple, cst.List)):
        return any(_rooted_at(el.value, owner) for el in node.elements)
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        node = node.value
    return isinstance(node, cst.Name) and node.value == owner


def _registers(call: cst.Call, owner: str) -> bool:
    func = call.func
    if isinstance(func, cst.Name) and func.value == "setattr":
        return bool(call.args) and _rooted_at(call.args[0].value, owner)
    return (
        isinstance(func, cst.Attribute)
        and func.attr.value in REGISTERING
        and _rooted_at(func.value, owner)
    )


class _StoresLocal(Visitor):
    """Whether a local is stored on the module somewhere in a method."""

    def __init__(self, name: str, owner: str) -> None:
        self.name, self.owner = name, owner
        self.found = False

    def _mentions(self, node: cst.CSTNode) -> bool:
        return isinstance(node, cst.Name) and node.value == self.name

    def visit_Assign(self, node: cst.Assign) -> None:
        if any(_rooted_at(t.target, self.owner) for t in node.targets) and self._contains(node.value):
            self.found = True

    def visit_Call(self, node: cst.Call) -> None:
        if _registers(node, self.owner) and any(self._contains(a.value) for a in node.args):
            self.found = True

    def _contains(self, node: cst.CSTNode) -> bool:
        if self._mentions(node):
            return True
        # `self.x = local.to(device)`, `self.x = (local, other)`
        finder = _NameFinder(self.name)
        walk(node, finder)
        return finder.found


class _NameFinder(Visitor):
    def __init__(self, name: str) -> None:
        self.name = name
        self.found = False

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == self.name:
            self.found = True


class _Constructs(Visitor):
    """Finds a stateful torch.nn constructor, a Parameter or `self.register_parameter` in
    a class body (buffers alone do not count: a module holding only a buffer computed from
    its arguments gives the same result when rebuilt on every call)."""

    def __init__(self, rule: ModuleCreatedInForward) -> None:
        self.rule = rule
        self.found = False

    def visit_Call(self, node: cst.Call) -> bool:
        qualname = self.rule.context.qualname(node.func)
        if qualname is not None:
            last = qualname.split(".")[-1]
            if qualname in PARAMETER_NAMES or (
                qualname.startswith("torch.nn.") and last in LAYER_NAMES
            ):
                self.found = True
        elif (
            isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "register_parameter"
            and dotted_name(node.func.value) == "self"
        ):
            self.found = True
        return not self.found
