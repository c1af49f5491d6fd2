"""
## What it does
Flags `m.forward(...)` where `m` is known to be an `nn.Module` instance and the call is
not the module's own class talking to itself. A receiver counts as a module when:
- it is `self.<attr>` and every assignment of `self.<attr>` in the class (and its local
  base classes) stores a module constructor (or `None`): a `torch.nn` layer or container,
  a `nn.Module` subclass defined in the same file, a `torchvision.models` builder, or
  `timm.create_model(...)`, optionally followed by `.to(...)`, `.cuda()`, `.eval()` and
  the like;
- it is a name whose every binding in its scope (the function that binds it, else the
  module) is such a constructor, or a parameter annotated with a module type
  (`model: nn.Module`, `net: MyNet`).

## Why is this bad?
`m(x)` runs `Module.__call__`, which runs the forward pre-hooks, `forward`, and the
forward hooks. `m.forward(x)` skips all of them, silently: FSDP/FSDP2 then does not
all-gather the sharded parameters (garbage, NaNs or shape errors), and hook-based tools
(quantization observers, pruning masks, activation checkpointing wrappers, profilers,
`register_forward_hook` feature extractors) do nothing.

## Example
```python
class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torchvision.models.resnet18()
        self.head = nn.Linear(1000, 10)

    def forward(self, x):
        return self.head.forward(self.backbone.forward(x))
```

## Use instead
```python
    def forward(self, x):
        return self.head(self.backbone(x))
```

## Fix safety
Safe: `m.forward(args)` becomes `m(args)` with the same arguments, which runs the same
`forward` plus the module's hooks; with no hooks registered the result is identical.
The rewrite is offered only for receivers known to be modules whose class does not
override `__call__` (a local class that does is not reported at all).

## Known false positives
A deliberate hook bypass (a wrapper that must not re-enter its own hooks) should keep
`.forward` and carry `# trainlint: ignore[TL112]`.

Not flagged, by design: `super().forward(x)`, `super(C, self).forward(x)`,
`Base.forward(self, x)` and `autograd.Function.forward(ctx, ...)` (the receiver is a
class), `self.forward(x)`, receivers of unknown type even when they are called `model`
or `net` (in real code `self.net.forward()` is often an OpenCV DNN network and
`backend.forward()` an inference runtime), parameters without a module annotation,
modules taken from containers (`self.layers[i].forward(x)`, `for m in self.blocks:`),
and modules built in the class's own methods (`m = cls(); m.forward(x)`). Attributes are
followed within one class and its base classes in the same file; an attribute assigned
a constructor result by an outside function is not known to be a module.
"""

from __future__ import annotations

import ast

import libcst as cst
from trainlint.rules._analysis import (
    Visitor,
    attribute_writes,
    base_names,
    is_nn_module,
    local_classes,
    methods,
)

from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.traverse import walk

NN_MODULES = frozenset(
    """AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveAvgPool3d AdaptiveLogSoftmaxWithLoss
    AdaptiveMaxPool1d AdaptiveMaxPool2d AdaptiveMaxPool3d AlphaDropout AvgPool1d AvgPool2d
    AvgPool3d BCELoss BCEWithLogitsLoss BatchNorm1d BatchNorm2d BatchNorm3d Bilinear CELU
    CTCLoss ChannelShuffle CircularPad1d CircularPad2d CircularPad3d ConstantPad1d
    ConstantPad2d ConstantPad3d Conv1d Conv2d Conv3d ConvTranspose1d ConvTranspose2d
    ConvTranspose3d CosineEmbeddingLoss CosineSimilarity CrossEntropyLoss CrossMapLRN2d
    DataParallel DistributedDataParallel Dropout Dropout1d Dropout2d Dropout3d ELU Embedding
    EmbeddingBag FeatureAlphaDropout Flatten Fold FractionalMaxPool2d FractionalMaxPool3d
    GELU GLU GRU GRUCell GaussianNLLLoss GroupNorm Hardshrink Hardsigmoid Hardswish Hardtanh
    HingeEmbeddingLoss HuberLoss Identity InstanceNorm1d InstanceNorm2d InstanceNorm3d
    KLDivLoss L1Loss LPPool1d LPPool2d LPPool3d LSTM LSTMCell LayerNorm LazyBatchNorm1d
    LazyBatchNorm2d LazyBatchNorm3d LazyConv1d LazyConv2d LazyConv3d LazyConvTranspose1d
    LazyConvTranspose2d LazyConvTranspose3d LazyInstanceNorm1d LazyInstanceNorm2d
    LazyInstanceNorm3d LazyLinear LeakyReLU Linear LinearCrossEntropyLoss LocalResponseNorm
    LogSigmoid LogSoftmax MSELoss MarginRankingLoss MaxPool1d MaxPool2d MaxPool3d
    MaxUnpool1d MaxUnpool2d MaxUnpool3d Mish ModuleDict ModuleList MultiLabelMarginLoss
    MultiLabelSoftMarginLoss MultiMarginLoss MultiheadAttention NLLLoss NLLLoss2d PReLU
    PairwiseDistance PixelShuffle PixelUnshuffle PoissonNLLLoss RMSNorm RNN RNNCell RReLU
    ReLU ReLU6 ReflectionPad1d ReflectionPad2d ReflectionPad3d ReplicationPad1d
    ReplicationPad2d ReplicationPad3d SELU Sequential SiLU Sigmoid SmoothL1Loss
    SoftMarginLoss Softmax Softmax2d Softmin Softplus Softshrink Softsign SyncBatchNorm Tanh
    Tanhshrink Threshold Transformer TransformerDecoder TransformerDecoderLayer
    TransformerEncoder TransformerEncoderLayer TripletMarginLoss
    TripletMarginWithDistanceLoss Unflatten Unfold Upsample UpsamplingBilinear2d
    UpsamplingNearest2d ZeroPad1d ZeroPad2d ZeroPad3d""".split()
)
# Paths under torch.nn whose capitalised names are not (plain) modules.
NN_NON_MODULE_PARTS = {"functional", "init", "utils", "attention", "parameter", "quantized",
                       "intrinsic", "qat", "quantizable", "grad"}
TORCHVISION_NON_BUILDERS = {"get_weight", "get_model_weights", "list_models",
                            "get_model_builder", "get_enum", "Weights", "WeightsEnum"}
MODULE_FACTORIES = {"timm.create_model", "timm.models.create_model"}
# Methods of nn.Module that return the module itself.
CHAIN_METHODS = {"to", "cuda", "cpu", "xpu", "eval", "train", "float", "double", "half",
                 "bfloat16", "requires_grad_", "to_empty", "share_memory", "apply", "type"}
MODULE_ANNOTATIONS = {"torch.nn.Module", "torch.nn.modules.module.Module"}


class ForwardCalledDirectly(Rule):
    __doc__ = __doc__
    code = "TL112"
    name = "forward-called-directly"
    message = (
        "`{receiver}.forward(...)` bypasses the module's hooks (forward hooks, FSDP "
        "parameter gathering, quantization observers); call `{receiver}(...)`"
    )
    fix_applicability = Applicability.SAFE
    tokens = ("*forward*",)

    VALID = [
        # The class's own forward, a parent's forward, and static Function.forward.
        Valid(
            """
            import torch
            from torch import nn

            class Base(nn.Module):
                def forward(self, x):
                    return x

            class Net(Base):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)

                def forward(self, x):
                    y = super().forward(x)
                    y = super(Net, self).forward(y)
                    y = Base.forward(self, y)
                    return self.fc(y)

                def predict(self, x):
                    return self.forward(x)

            class Square(torch.autograd.Function):
                @staticmethod
                def forward(ctx, x):
                    return x * x

            y = Square.forward(None, torch.ones(2))
            z = torch.autograd.Function.forward(None, torch.ones(2))
            """
        ),
        # Receivers of unknown type: an OpenCV network, a runtime backend, a parameter.
        Valid(
            """
            import cv2

            class Detector:
                def __init__(self, weights, backend):
                    self.net = cv2.dnn.readNetFromONNX(weights)
                    self.backend = backend

                def __call__(self, im):
                    self.net.setInput(im)
                    y = self.net.forward()
                    return self.backend.forward(y)

            def run(model, x):
                return model.forward(x)
            """
        ),
        # An attribute that is sometimes a module and sometimes something else.
        Valid(
            """
            from torch import nn

            class Wrapper(nn.Module):
                def __init__(self, module=None):
                    super().__init__()
                    self.module = nn.Identity()
                    if module is not None:
                        self.module = module

                def forward(self, x):
                    return self.module.forward(x)
            """
        ),
        # A name rebound to something else, or bound by a loop.
        Valid(
            """
            from torch import nn

            def main(x, checkpoint):
                model = nn.Linear(4, 4)
                model = load(checkpoint)
                y = model.forward(x)
                for m in [nn.Linear(4, 4)]:
                    y = m.forward(y)
                return [m.forward(y) for m in (nn.ReLU(),)]
            """
        ),
        # A local module class that overrides __call__, and a reference to forward.
        Valid(
            """
            import inspect
            from torch import nn

            class Special(nn.Module):
                def __call__(self, x):
                    return self.forward(x) * 2

                def forward(self, x):
                    return x

            m = Special()
            y = m.forward(1)
            n = nn.Linear(2, 2)
            sig = inspect.signature(n.forward)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torchvision
            from torch import nn

            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.backbone = torchvision.models.resnet18()
                    self.head = nn.Linear(1000, 10)

                def forward(self, x):
                    return self.head.forward(self.backbone.forward(x))
            """,
            fixed="""
            import torchvision
            from torch import nn

            class Classifier(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.backbone = torchvision.models.resnet18()
                    self.head = nn.Linear(1000, 10)

                def forward(self, x):
                    return self.head(self.backbone(x))
            """,
            line=11,
            count=2,
        ),
        # Aliased imports, a local module class, method chains, keyword and starred
        # arguments, a module-level model used from a function, an annotated parameter.
        Invalid(
            """
            import torch as T
            from torch.nn import Sequential, Linear

            class Net(T.nn.Module):
                def forward(self, x):
                    return x

            model = Net().to("cpu").eval()
            net = Sequential(Linear(2, 2))

            def evaluate(batch, **kw):
                out = model.forward(batch, **kw)
                return net.forward(*out)

            def run(m: T.nn.Module, x):
                return m.forward(input=x)
            """,
            fixed="""
            import torch as T
            from torch.nn import Sequential, Linear

            class Net(T.nn.Module):
                def forward(self, x):
                    return x

            model = Net().to("cpu").eval()
            net = Sequential(Linear(2, 2))

            def evaluate(batch, **kw):
                out = model(batch, **kw)
                return net(*out)

            def run(m: T.nn.Module, x):
                return m(input=x)
            """,
            line=12,
            count=3,
        ),
        # An attribute set in a base class, `None` elsewhere; a Trainer holding a model.
        Invalid(
            """
            import torch.nn as nn

            class Base(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.encoder = nn.LSTM(8, 8) if True else None

            class Model(Base):
                def reset(self):
                    self.encoder = None

                def forward(self, x):
                    return self.encoder.forward(x)

            class Trainer:
                def __init__(self):
                    self.model = Model()

                def step(self, x):
                    return self.model.forward(x)
            """,
            fixed="""
            import torch.nn as nn

            class Base(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.encoder = nn.LSTM(8, 8) if True else None

            class Model(Base):
                def reset(self):
                    self.encoder = None

                def forward(self, x):
                    return self.encoder(x)

            class Trainer:
                def __init__(self):
                    self.model = Model()

                def step(self, x):
                    return self.model(x)
            """,
            line=13,
            count=2,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._writes: dict[int, dict] = {}
        self._local: dict[str, cst.ClassDef] | None = None
        self._class_ok: dict[int, bool] = {}

    @classmethod
    def screen(cls, index) -> bool:
        for call in index.nodes(ast.Call):
            func = call.func
            if not (isinstance(func, ast.Attribute) and func.attr == "forward"):
                continue
            receiver = func.value
            # `self.forward(x)` and `cls.forward(...)` are never reported
            if isinstance(receiver, ast.Attribute) or (
                isinstance(receiver, ast.Name) and receiver.id not in ("self", "cls")
            ):
                return True
        return False

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value == "forward"):
            return
        receiver = func.value
        if isinstance(receiver, cst.Name):
            known = self._name_is_module(receiver.value)
        elif isinstance(receiver, cst.Attribute) and isinstance(receiver.value, cst.Name):
            known = self._self_attribute_is_module(receiver.value.value, receiver.attr.value)
        else:
            return
        if not known:
            return
        text = self.context.code(receiver)
        fix = self.make_fix(f"Call `{text}(...)`", (node, node.with_changes(func=receiver)))
        self.report(
            node,
            self.message.format(receiver=text),
            fix=fix,
            help=f"`{text}(...)` runs the same forward and the hooks registered on `{text}`",
        )

    # ------------------------------------------------------------ self attributes

    def _self_attribute_is_module(self, owner: str, attr: str) -> bool:
        method, cls = self._enclosing_method()
        if method is None or cls is None:
            return False
        params = [*method.params.posonly_params, *method.params.params]
        if not params or params[0].name.value != owner or _is_static(method):
            return False
        if self._rebinds_between(method, owner):
            return False
        values = self._attribute_values(cls, attr, set())
        if values is None or not values:
            return False
        ctors = [v for v in values if not _is_none(v)]
        return bool(ctors) and all(self._module_value(v, cls) for v in values)

    def _attribute_values(self, cls: cst.ClassDef, attr: str, seen: set[str]):
        """Every value stored in self.<attr> by the class and its local bases; None when a
        store is not a plain assignment."""
        key = id(cls)
        if key not in self._writes:
            self._writes[key] = attribute_writes(cls)
        values = []
        for write in self._writes[key].get(attr, []):
            if write.augmented or write.value is None:
                return None
            values.append(write.value)
        local = self._local_classes()
        for base in base_names(cls, self.context.imports):
            if base in local and base not in seen:
                seen.add(base)
                inherited = self._attribute_values(local[base], attr, seen)
                if inherited is None:
                    return None
                values += inherited
        return values

    def _enclosing_method(self) -> tuple[cst.FunctionDef | None, cst.ClassDef | None]:
        """The method (directly in a class body) that lexically encloses the call."""
        stack = self.context.stack
        for k in range(len(stack) - 1, -1, -1):
            node = stack[k]
            if isinstance(node, cst.ClassDef):
                return None, None
            if isinstance(node, cst.FunctionDef) and k >= 2 and isinstance(stack[k - 2], cst.ClassDef):
                return node, stack[k - 2]
        return None, None

    def _rebinds_between(self, method: cst.FunctionDef, name: str) -> bool:
        """A nested function or lambda between the method and the call takes `name`."""
        stack = self.context.stack
        inner = stack[next(k for k in range(len(stack)) if stack[k] is method) + 1 :]
        return any(
            isinstance(node, (cst.FunctionDef, cst.Lambda)) and name in _param_names(node)
            for node in inner
        )

    # ------------------------------------------------------------------- names

    def _name_is_module(self, name: str) -> bool:
        scopes = [n for n in reversed(self.context.stack) if isinstance(n, (cst.FunctionDef, cst.Lambda))]
        enclosing_class = self._enclosing_method()[1]
        for scope in scopes:
            params = _params(scope)
            if name in params:
                annotation = params[name].annotation
                return annotation is not None and self._module_annotation(annotation.annotation)
            if isinstance(scope, cst.Lambda):
                continue
            values = _scope_bindings(scope.body, name)
            if values is None:
                return False
            if values:
                return all(self._module_value(v, enclosing_class) for v in values)
        values = _scope_bindings(self.context.module, name)
        if not values:
            return False
        return all(self._module_value(v, enclosing_class) for v in values)

    def _module_annotation(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
            return False
        qualname = self.context.qualname(node)
        if qualname is not None:
            return qualname in MODULE_ANNOTATIONS or self._torch_nn_class(qualname)
        if isinstance(node, cst.Name):
            cls = self._local_classes().get(node.value)
            return cls is not None and self._local_module_class(cls)
        return False

    # ------------------------------------------------------------------ values

    def _module_value(self, value: cst.BaseExpression, enclosing: cst.ClassDef | None) -> bool:
        """`value` certainly evaluates to an nn.Module (or None, in a conditional)."""
        if isinstance(value, cst.IfExp):
            branches = [value.body, value.orelse]
            return any(not _is_none(b) for b in branches) and all(
                _is_none(b) or self._module_value(b, enclosing) for b in branches
            )
        while (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Attribute)
            and value.func.attr.value in CHAIN_METHODS
            and isinstance(value.func.value, cst.Call)
        ):
            value = value.func.value
        if not isinstance(value, cst.Call):
            return _is_none(value)
        qualname = self.context.qualname(value.func)
        if qualname is not None:
            return (
                self._torch_nn_class(qualname)
                or _torchvision_builder(qualname)
                or qualname in MODULE_FACTORIES
            )
        if isinstance(value.func, cst.Name):
            cls = self._local_classes().get(value.func.value)
            return cls is not None and cls is not enclosing and self._local_module_class(cls)
        return False

    @staticmethod
    def _torch_nn_class(qualname: str) -> bool:
        parts = qualname.split(".")
        return (
            len(parts) >= 3
            and parts[:2] == ["torch", "nn"]
            and parts[-1] in NN_MODULES
            and not NN_NON_MODULE_PARTS.intersection(parts[2:-1])
        )

    def _local_classes(self) -> dict[str, cst.ClassDef]:
        if self._local is None:
            self._local = local_classes(self.context.module)
        return self._local

    def _local_module_class(self, cls: cst.ClassDef) -> bool:
        """An nn.Module subclass of this file that does not override __call__."""
        key = id(cls)
        if key not in self._class_ok:
            imports, module = self.context.imports, self.context.module
            self._class_ok[key] = is_nn_module(cls, imports, module) and not self._overrides_call(
                cls, set()
            )
        return self._class_ok[key]

    def _overrides_call(self, cls: cst.ClassDef, seen: set[str]) -> bool:
        if "__call__" in methods(cls):
            return True
        local = self._local_classes()
        for base in base_names(cls, self.context.imports):
            if base in local and base not in seen:
                seen.add(base)
                if self._overrides_call(local[base], seen):
                    return True
        return False


# ----------------------------------------------------------------------- helpers


def _is_none(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.Name) and node.value == "None"


def _is_static(func: cst.FunctionDef) -> bool:
    for dec in func.decorators:
        name = dotted_name(dec.decorator) or ""
        if name.split(".")[-1] in ("staticmethod", "classmethod"):
            return True
    return False


def _params(func: cst.FunctionDef | cst.Lambda) -> dict[str, cst.Param]:
    p = func.params
    out = {x.name.value: x for x in (*p.posonly_params, *p.params, *p.kwonly_params)}
    for star in (p.star_arg, p.star_kwarg):
        if isinstance(star, cst.Param):
            out[star.name.value] = star
    return out


def _param_names(func: cst.FunctionDef | cst.Lambda) -> set[str]:
    return set(_params(func))


def _torchvision_builder(qualname: str) -> bool:
    if not qualname.startswith("torchvision.models."):
        return False
    last = qualname.rsplit(".", 1)[1]
    return last not in TORCHVISION_NON_BUILDERS and not last.endswith("Weights") and not last.startswith("_")


def _scope_bindings(body: cst.CSTNode, name: str) -> list[cst.BaseExpression] | None:
    """The values assigned to `name` in one scope (nested functions and classes excluded);
    None when some binding is not a plain single-target assignment."""
    finder = _ScopeBindings(name)
    if isinstance(body, cst.Module):
        for stmt in body.body:
            walk(stmt, finder)
    else:
        walk(body, finder)
    return None if finder.unknown else finder.values


class _ScopeBindings(Visitor):
    def __init__(self, name: str) -> None:
        self.name = name
        self.values: list[cst.BaseExpression] = []
        self.unknown = False

    def _targets(self, target: cst.CSTNode) -> bool:
        if isinstance(target, cst.Name):
            return target.value == self.name
        if isinstance(target, (cst.Tuple, cst.List)):
            return any(self._targets(el.value) for el in target.elements)
        if isinstance(target, cst.StarredElement):
            return self._targets(target.value)
        return False

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            if isinstance(t.target, cst.Name) and t.target.value == self.name:
                if len(node.targets) == 1:
                    self.values.append(node.value)
                else:
                    self.unknown = True
            elif self._targets(t.target):
                self.unknown = True

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if self._targets(node.target) and node.value is not None:
            self.values.append(node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self._targets(node.target):
            self.unknown = True

    def visit_For(self, node: cst.For) -> None:
        if self._targets(node.target):
            self.unknown = True

    def visit_CompFor(self, node: cst.CompFor) -> None:
        if self._targets(node.target):
            self.unknown = True

    def visit_AsName(self, node: cst.AsName) -> None:
        if self._targets(node.name):
            self.unknown = True

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        if self._targets(node.target):
            self.unknown = True

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        bound = node.asname.name if node.asname else node.name
        if isinstance(bound, cst.Name) and bound.value == self.name or isinstance(bound, cst.Attribute) and (dotted_name(bound) or "").split(".")[0] == self.name:
            self.unknown = True

    def visit_Global(self, node: cst.Global) -> None:
        if any(n.name.value == self.name for n in node.names):
            self.unknown = True

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        if any(n.name.value == self.name for n in node.names):
            self.unknown = True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        if node.name.value == self.name:
            self.unknown = True
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        if node.name.value == self.name:
            self.unknown = True
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False
