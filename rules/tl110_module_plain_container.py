"""
## What it does
Flags an `nn.Module` that keeps submodules or `nn.Parameter`s in a plain Python list,
tuple or dict attribute: `self.layers = [nn.Linear(d, d) for _ in range(n)]`,
`self.heads = {"cls": nn.Linear(d, k)}`, `self.ws = [nn.Parameter(...)]`, an empty
`self.blocks = []` later filled with `self.blocks.append(Block(...))`, or a local list
of layers stored with `self.layers = layers`.

## Why is this bad?
`nn.Module` registers only what is assigned to it directly or through its containers.
Modules and parameters hidden in a plain list are invisible to `parameters()` (the
optimizer never updates them, or fails with "optimizer got an empty parameter list"), to
`.to(device)` / `.cuda()` (a device mismatch in `forward`), to `state_dict()` (they are
not saved), and to `train()` / `eval()` (dropout and batch norm inside stay in training
mode).

## Example
```python
class MLP(nn.Module):
    def __init__(self, d, n):
        super().__init__()
        self.layers = [nn.Linear(d, d) for _ in range(n)]
```

## Use instead
```python
class MLP(nn.Module):
    def __init__(self, d, n):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d, d) for _ in range(n)])
```
Use `nn.ModuleDict` for a dict, and `nn.ParameterList` / `nn.ParameterDict` for
parameters.

## Fix safety
Unsafe. Wrapping the container registers its contents: `state_dict()` gains keys
(`layers.0.weight`...), so strict loading of checkpoints saved before the fix fails, and
the optimizer now sees more parameters (which is the point). The container types also
differ from `list`/`dict` (`ModuleDict` has no `get`, `ModuleList` no `remove`), so the
fix is offered only when every use of the attribute in the class is one the container
supports (indexing, iteration, `len`, `append`/`extend`/`insert`, `keys`/`items`/
`values`...), every element is visibly a module (or every one a Parameter), dict keys are
string literals that are valid submodule names, and the module spells `nn` through its
own imports (`nn.ModuleList` when `torch.nn` is imported as a name, `torch.nn.ModuleList`
with `import torch` only). Otherwise the rule reports without an edit.

## Known false positives
Containers whose elements are all stateless activations, pooling layers or losses built
without class weights (`[nn.ReLU(), nn.GELU()]`, `{"ce": nn.CrossEntropyLoss()}`) are not
flagged: nothing in them needs registering. The rule stays quiet when the list is
registered some other way: passed to a call other than `len`/`enumerate`/`zip`/...
(`nn.Sequential(*self.layers)`, `nn.ModuleList(self.layers)`, a helper), iterated in a
loop that calls `add_module`/`register_module`/`register_parameter`/`setattr`, filled by
a method that also calls one of those (`self.blocks.append(b)` next to
`self.add_module(str(i), b)`, as transformers' MaskFormer does), aliased into another
name, written elsewhere as anything but a plain container, or when the class overrides
`parameters`, `children`, `modules`, `state_dict` or `_apply`. A module deliberately kept
out of registration (a frozen teacher hidden in a list) is flagged when it is constructed
in place; suppress it there. Elements are recognised only as `torch.nn` constructors
(through the module's imports), `nn.Module` classes of the same file, and locals bound
only to those; `[nn.Linear(d, d)] * n` and tuple-unpacking stores are not followed, and
the receiver must be named `self`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

import libcst as cst

from trainlint import screen as sc
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import (
    Visitor,
    is_nn_module,
    local_classes,
    methods,
    parameter_names,
)
from trainlint.rules._screens import nn_module_classes
from trainlint.traverse import walk

MODULE, STATELESS, PARAMETER = "module", "stateless", "parameter"
PARAMETER_CLASSES = {
    "torch.nn.Parameter", "torch.nn.parameter.Parameter",
    "torch.nn.UninitializedParameter", "torch.nn.parameter.UninitializedParameter",
}
NOT_MODULES = {"Buffer", "UninitializedBuffer", "Module"}
# Modules with no parameters, no buffers and no train/eval behaviour.
STATELESS_MODULES = {
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Sigmoid",
    "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign", "Softmax",
    "Softmax2d", "LogSoftmax", "Softmin", "LogSigmoid", "Tanhshrink", "Softshrink",
    "Hardshrink", "Threshold", "GLU", "Identity", "Flatten", "Unflatten", "MaxPool1d",
    "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "AdaptiveMaxPool3d", "LPPool1d", "LPPool2d", "Upsample", "UpsamplingNearest2d",
    "UpsamplingBilinear2d", "PixelShuffle", "PixelUnshuffle", "ChannelShuffle",
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d",
    "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d",
    "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d",
    "CircularPad2d", "CircularPad3d",
}
# Calls that only read a list they are given.
READING_CALLS = {
    "len", "enumerate", "zip", "reversed", "iter", "print", "isinstance", "repr", "str",
    "range", "min", "max", "any", "all", "sorted", "getattr", "hasattr",
}
REGISTERING_CALLS = {"add_module", "register_module", "register_parameter", "setattr"}
# Methods whose override shows that the class manages registration itself.
REGISTRATION_OVERRIDES = {
    "parameters", "named_parameters", "children", "named_children", "modules",
    "named_modules", "state_dict", "_apply",
}
CONTAINER_METHODS = {
    "ModuleList": {"append", "extend", "insert", "pop"},
    "ModuleDict": {"keys", "items", "values", "pop", "update", "clear"},
    "ParameterList": {"append", "extend"},
    "ParameterDict": {
        "keys", "items", "values", "pop", "update", "clear", "get", "setdefault", "copy",
        "popitem",
    },
}
# Attribute names a ModuleDict / ParameterDict key may not take (add_module refuses them).
RESERVED_KEYS = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children clear
    compile copy cpu cuda double dump_patches eval extra_repr float forward fromkeys get
    get_buffer get_extra_state get_parameter get_submodule half ipu items keys
    load_state_dict modules mtia named_buffers named_children named_modules
    named_parameters parameters pop popitem register_backward_hook register_buffer
    register_forward_hook register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule setdefault share_memory state_dict to to_empty train
    training type update values xpu zero_grad""".split()
)
ADDING_METHODS = {"append", "insert", "extend", "update"}


# ------------------------------------------------------------------ uses of self.<attr>


@dataclass
class Use:
    kind: str  # write, augment, method, setitem, index, iter, arg, contains, alias, other
    node: cst.CSTNode
    method: str | None = None
    value: cst.BaseExpression | None = None
    call: cst.Call | None = None
    callee: str | None = None


class _SelfUses(Visitor):
    """Every `self.<attr>` in a method, classified by what its parent does with it."""

    def __init__(self, self_name: str, method: str) -> None:
        self.self_name = self_name
        self.method = method
        self.stack: list[cst.CSTNode] = []
        self.found: dict[str, list[tuple[Use, str]]] = {}

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and (
            node.value.value == self.self_name
        ):
            self.found.setdefault(node.attr.value, []).append((self._classify(node), self.method))
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()

    def _classify(self, node: cst.Attribute) -> Use:
        stack = self.stack
        parent = stack[-1] if stack else None
        grand = stack[-2] if len(stack) > 1 else None
        if isinstance(parent, cst.AssignTarget) and isinstance(grand, cst.Assign):
            if len(grand.targets) == 1:
                return Use("write", grand, value=grand.value)
            return Use("other", grand)
        if isinstance(parent, cst.AnnAssign) and parent.target is node:
            return Use("write", parent, value=parent.value) if parent.value else Use("index", parent)
        if isinstance(parent, cst.AugAssign) and parent.target is node:
            ok = isinstance(parent.operator, cst.AddAssign)
            return Use("augment" if ok else "other", parent, value=parent.value)
        if isinstance(parent, cst.Attribute) and parent.value is node:
            if isinstance(grand, cst.Call) and grand.func is parent:
                return Use("method", grand, method=parent.attr.value, call=grand)
            return Use("other", parent)
        if isinstance(parent, cst.Subscript) and parent.value is node:
            if isinstance(grand, cst.AssignTarget):
                assign = stack[-3] if len(stack) > 2 else None
                if isinstance(assign, cst.Assign) and len(assign.targets) == 1:
                    return Use("setitem", parent, value=assign.value)
                return Use("other", parent)
            if isinstance(grand, cst.Del):
                return Use("other", parent)
            return Use("index", parent)
        if isinstance(parent, (cst.For, cst.CompFor)) and parent.iter is node:
            return Use("iter", parent)
        if isinstance(parent, cst.Arg) and isinstance(grand, cst.Call):
            func = grand.func
            callee = func.value if isinstance(func, cst.Name) else (
                func.attr.value if isinstance(func, cst.Attribute) else None
            )
            return Use("arg", grand, call=grand, callee=callee)
        if isinstance(parent, cst.ComparisonTarget) and isinstance(
            parent.operator, (cst.In, cst.NotIn)
        ):
            return Use("contains", parent)
        if isinstance(parent, (cst.Assign, cst.AnnAssign, cst.NamedExpr)):
            return Use("alias", parent)
        return Use("other", parent or node)


def _self_name(func: cst.FunctionDef) -> str | None:
    params = [*func.params.posonly_params, *func.params.params]
    return params[0].name.value if params else None


# ------------------------------------------------------------------ locals in a method


class _LocalRefs(Visitor):
    """References to a local name in one function (nested scopes included, as uses)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.stack: list[cst.CSTNode] = []
        self.refs: list[tuple[cst.Name, list[cst.CSTNode]]] = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Name) and node.value == self.name:
            parent = self.stack[-1] if self.stack else None
            if not (
                (isinstance(parent, cst.Attribute) and parent.attr is node)
                or (isinstance(parent, cst.Arg) and parent.keyword is node)
            ):
                self.refs.append((node, list(self.stack[-3:])))
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()


def _local_bindings(func: cst.FunctionDef, name: str) -> list[cst.BaseExpression] | None:
    """Values of every `name = value` in func; None if name is bound any other way."""
    if name in parameter_names(func):
        return None
    finder = _LocalRefs(name)
    walk(func.body, finder)
    values = []
    for ref, ctx in finder.refs:
        parent = ctx[-1] if ctx else None
        grand = ctx[-2] if len(ctx) > 1 else None
        if isinstance(parent, cst.AssignTarget) and parent.target is ref:
            if not isinstance(grand, cst.Assign) or len(grand.targets) != 1:
                return None
            values.append(grand.value)
        elif _binds_otherwise(ref, parent):
            return None
    return values


def _binds_otherwise(ref: cst.Name, parent: cst.CSTNode | None) -> bool:
    if isinstance(parent, (cst.For, cst.CompFor)) and parent.target is ref:
        return True
    if isinstance(parent, (cst.AugAssign, cst.AnnAssign, cst.NamedExpr)) and parent.target is ref:
        return True
    if isinstance(parent, cst.AsName) and parent.name is ref:
        return True
    if isinstance(parent, (cst.Tuple, cst.List, cst.StarredElement, cst.Element)):
        return True  # possibly an unpacking target; be quiet
    return isinstance(parent, (cst.Param, cst.ImportAlias, cst.FunctionDef, cst.ClassDef))


# ------------------------------------------------------------------------------ rule


@dataclass
class Container:
    shape: str  # "list" or "dict"
    values: list[cst.BaseExpression | None]  # None: an element the rule cannot see
    keys: list[cst.BaseExpression | None]
    empty: bool = False


class ModulePlainContainer(Rule):
    __doc__ = __doc__
    code = "TL110"
    name = "module-plain-container"
    message = (
        "`self.{attr}` keeps {what} in a plain {shape}: `parameters()`, `.to()`, "
        "`state_dict()` and `train()`/`eval()` do not see them"
    )
    fix_applicability = Applicability.UNSAFE
    tokens = ("class", ("nn", "*module*"))

    VALID = [
        # Registered containers, and plain lists that are wrapped or registered later.
        Valid(
            """
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self, d, n):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(d, d) for _ in range(n)])
                    self.heads = nn.ModuleDict({"a": nn.Linear(d, 1)})
                    self.ws = nn.ParameterList([nn.Parameter(torch.zeros(d))])
                    self.blocks = [nn.Linear(d, d) for _ in range(n)]
                    self.body = nn.Sequential(*self.blocks)
                    self.extra = [nn.Conv2d(d, d, 3), nn.BatchNorm2d(d)]
                    self.extra = nn.ModuleList(self.extra)
                    layers = [nn.Linear(d, d) for _ in range(n)]
                    self.net = nn.Sequential(*layers)
                    self.others = [nn.Linear(d, d)]
                    for i, m in enumerate(self.others):
                        self.add_module(f"other{i}", m)
            """
        ),
        # Plain data: tensors, ints, strings, already registered submodules, classes.
        Valid(
            """
            import torch
            from torch import nn

            class Net(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.fc1 = nn.Linear(d, d)
                    self.fc2 = nn.Linear(d, d)
                    self.order = [self.fc1, self.fc2]
                    self.sizes = [d, d * 2]
                    self.anchors = [torch.zeros(2), torch.ones(2)]
                    self.kinds = {"lin": nn.Linear, "conv": nn.Conv2d}
                    self.names = ("a", "b")
            """
        ),
        # Stateless activations need no registration; not a Module; forward.
        Valid(
            """
            from torch import nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.acts = [nn.ReLU(), nn.GELU(), nn.Identity()]
                    self.losses = {"ce": nn.CrossEntropyLoss(reduction="sum"), "l1": nn.L1Loss()}

            class Builder:
                def __init__(self, d):
                    self.layers = [nn.Linear(d, d)]

            class Lazy(nn.Module):
                def forward(self, x):
                    self.cache = [nn.Linear(4, 4)]
                    return x
            """
        ),
        # A list handed to a helper, aliased, or a class that registers by hand.
        Valid(
            """
            from torch import nn
            from mylib import register_all

            class A(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.layers = [nn.Linear(d, d)]
                    register_all(self, self.layers)

            class B(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.layers = [nn.Linear(d, d)]
                    self.seq = nn.ModuleList()
                    self.seq.extend(self.layers)

            class C(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.layers = [nn.Linear(d, d)]
                def parameters(self, recurse=True):
                    for layer in self.layers:
                        yield from layer.parameters()
            """
        ),
        # A local list that ends up wrapped, or used for something else.
        Valid(
            """
            from torch import nn

            class Net(nn.Module):
                def __init__(self, d, n):
                    super().__init__()
                    layers = []
                    for _ in range(n):
                        layers.append(nn.Linear(d, d))
                    self.layers = layers
                    self.body = nn.Sequential(*layers)
                    blocks = [nn.Linear(d, d)]
                    self.blocks = nn.ModuleList(blocks)
            """
        ),
        # Registered by hand next to the append (transformers' MaskFormer MLP).
        Valid(
            """
            from torch import nn

            class MLP(nn.Module):
                def __init__(self, dims):
                    super().__init__()
                    self.layers = []
                    for i, d in enumerate(dims):
                        layer = nn.Linear(d, d)
                        self.layers.append(layer)
                        self.add_module(str(i), layer)
            """
        ),
        # Appends of things that are not modules (a cache of tensors).
        Valid(
            """
            import torch
            from torch import nn

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.history = []

                def forward(self, x):
                    self.history.append(x.detach())
                    return x
            """
        ),
    ]
    INVALID = [
        # A list comprehension of layers.
        Invalid(
            """
            import torch.nn as nn

            class MLP(nn.Module):
                def __init__(self, d, n):
                    super().__init__()
                    self.layers = [nn.Linear(d, d) for _ in range(n)]

                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x)
                    return x
            """,
            fixed="""
            import torch.nn as nn

            class MLP(nn.Module):
                def __init__(self, d, n):
                    super().__init__()
                    self.layers = nn.ModuleList([nn.Linear(d, d) for _ in range(n)])

                def forward(self, x):
                    for layer in self.layers:
                        x = layer(x)
                    return x
            """,
            line=6,
        ),
        # Dicts of heads, lists of Parameters, a tuple; `import torch as T` only.
        Invalid(
            """
            import torch as T

            class Heads(T.nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.heads = {"cls": T.nn.Linear(d, 10), "box": T.nn.Linear(d, 4)}
                    self.ws = [T.nn.Parameter(T.zeros(d)) for _ in range(3)]
                    self.pair = T.nn.Conv2d(d, d, 1), T.nn.BatchNorm2d(d)

                def forward(self, x):
                    return {k: h(x) for k, h in self.heads.items()}, self.ws[0], self.pair[1]
            """,
            fixed="""
            import torch as T

            class Heads(T.nn.Module):
                def __init__(self, d):
                    super().__init__()
                    self.heads = T.nn.ModuleDict({"cls": T.nn.Linear(d, 10), "box": T.nn.Linear(d, 4)})
                    self.ws = T.nn.ParameterList([T.nn.Parameter(T.zeros(d)) for _ in range(3)])
                    self.pair = T.nn.ModuleList((T.nn.Conv2d(d, d, 1), T.nn.BatchNorm2d(d)))

                def forward(self, x):
                    return {k: h(x) for k, h in self.heads.items()}, self.ws[0], self.pair[1]
            """,
            line=6,
            count=3,
        ),
        # An empty list filled by appends (through a local), local classes, `from torch.nn
        # import ...`; a local list stored as an attribute.
        Invalid(
            """
            from torch import nn
            from torch.nn import Conv2d, Dropout

            class Block(nn.Module):
                def __init__(self, c):
                    super().__init__()
                    self.conv = Conv2d(c, c, 3)

            class Net(nn.Module):
                def __init__(self, c, n):
                    super().__init__()
                    self.blocks = []
                    for _ in range(n):
                        block = Block(c)
                        self.blocks.append(block)
                    drops = []
                    for _ in range(n):
                        drops.append(Dropout(0.1))
                    self.drops = drops

                def forward(self, x):
                    for b, d in zip(self.blocks, self.drops):
                        x = d(b(x))
                    return x
            """,
            fixed="""
            from torch import nn
            from torch.nn import Conv2d, Dropout

            class Block(nn.Module):
                def __init__(self, c):
                    super().__init__()
                    self.conv = Conv2d(c, c, 3)

            class Net(nn.Module):
                def __init__(self, c, n):
                    super().__init__()
                    self.blocks = nn.ModuleList()
                    for _ in range(n):
                        block = Block(c)
                        self.blocks.append(block)
                    drops = []
                    for _ in range(n):
                        drops.append(Dropout(0.1))
                    self.drops = nn.ModuleList(drops)

                def forward(self, x):
                    for b, d in zip(self.blocks, self.drops):
                        x = d(b(x))
                    return x
            """,
            line=12,
            count=2,
        ),
        # Report only: `.get` on the dict, non-literal keys, mixed elements, a list used
        # with `remove`; no `nn` import at all (`from torch.nn import Module`).
        Invalid(
            """
            import torch.nn as nn

            class Net(nn.Module):
                def __init__(self, d, names):
                    super().__init__()
                    self.heads = {"a": nn.Linear(d, 1)}
                    self.by_name = {n: nn.Linear(d, 1) for n in names}
                    self.mixed = [nn.Linear(d, d), make_block(d)]
                    self.pool = [nn.Linear(d, d), nn.Linear(d, d)]
                    self.pool.remove(self.pool[0])

                def forward(self, x):
                    return self.heads.get("a")(x)
            """,
            line=6,
            count=4,
        ),
        Invalid(
            """
            from torch import nn

            class Net(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    layers = [nn.Linear(d, d), nn.LayerNorm(d)]
                    self.layers = layers
            """,
            fixed="""
            from torch import nn

            class Net(nn.Module):
                def __init__(self, d):
                    super().__init__()
                    layers = [nn.Linear(d, d), nn.LayerNorm(d)]
                    self.layers = nn.ModuleList(layers)
            """,
            line=7,
        ),
        Invalid(
            """
            from torch.nn import Module, Linear

            class Net(Module):
                def __init__(self, d):
                    super().__init__()
                    self.layers = [Linear(d, d)]
            """,
            line=6,
        ),
    ]

    @classmethod
    def screen(cls, index) -> bool:
        """The rule's own analysis, loosened, on the ast: some `nn.Module` class stores in
        `self.<attr>` only containers (or names), and some element stored or added may be
        a module or parameter (see `_Screen`)."""
        if not any(c.bases for c in index.nodes(ast.ClassDef)):
            return False
        modules = nn_module_classes(index)
        if not modules:
            return False
        screen = _Screen(index)
        return any(screen.may_report(c) for c in modules)

    # ------------------------------------------------------------------ visiting

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        own = methods(node)
        if REGISTRATION_OVERRIDES & own.keys():
            return
        ctx = self.context
        if not is_nn_module(node, ctx.imports, ctx.module):
            return
        self._module_classes = {
            name for name, c in local_classes(ctx.module).items()
            if is_nn_module(c, ctx.imports, ctx.module)
        }
        uses: dict[str, list[tuple[Use, str, cst.FunctionDef]]] = {}
        for name, func in own.items():
            self_name = _self_name(func)
            if self_name is None:
                continue
            finder = _SelfUses(self_name, name)
            walk(func.body, finder)
            for attr, found in finder.found.items():
                uses.setdefault(attr, []).extend((u, m, func) for u, m in found)
        for attr, attr_uses in uses.items():
            self._check(attr, attr_uses)

    def _check(self, attr: str, uses: list[tuple[Use, str, cst.FunctionDef]]) -> None:
        writes = [(u, m, f) for u, m, f in uses if u.kind == "write"]
        if not writes:
            return
        containers = []
        for use, method, func in writes:
            container = self._container(use.value, func, use.node)
            if container is None:
                return  # written as something else somewhere: registered, or not a list
            containers.append((use, method, func, container))
        if any(self._registers_elsewhere(u, m, f) for u, m, f in uses):
            return
        # A method that builds the container and also calls `add_module(str(i), layer)`
        # (transformers' pattern) registers the same objects by hand.
        for func in {id(f): f for u, _m, f in uses if u.kind in ("write", "method", "augment", "setitem")}.values():
            callees = _Callees()
            walk(func.body, callees)
            if REGISTERING_CALLS & callees.names:
                return
        added = self._added_values(uses)
        for use, method, func, container in containers:
            if method == "forward":
                continue
            values = [(v, func) for v in container.values] + added
            kinds = [self._kind(v, f) for v, f in values]
            if not any(k in (MODULE, PARAMETER) for k in kinds):
                continue
            fix = None
            if len(writes) == 1:
                fix = self._fix(attr, use, container, kinds, uses, func)
            what = (
                "parameters" if PARAMETER in kinds and MODULE not in kinds
                else "modules and parameters" if PARAMETER in kinds else "modules"
            )
            shape = "dict" if container.shape == "dict" else (
                "tuple" if isinstance(use.value, cst.Tuple) else "list"
            )
            self.report(
                use.value,
                self.message.format(attr=attr, what=what, shape=shape),
                fix=fix,
                help=f"wrap it: `{self._container_name(container, kinds) or 'nn.ModuleList'}(...)`",
                data={"attribute": attr},
            )

    # ----------------------------------------------------------------- analysis

    def _container(
        self, value: cst.BaseExpression | None, func: cst.FunctionDef, store: cst.CSTNode
    ) -> Container | None:
        if isinstance(value, (cst.List, cst.Tuple)):
            vals = [
                None if isinstance(el, cst.StarredElement) else el.value for el in value.elements
            ]
            return Container("list", vals, [], empty=not vals)
        if isinstance(value, (cst.ListComp, cst.GeneratorExp)):
            return Container("list", [value.elt], [])
        if isinstance(value, cst.Dict):
            vals, keys = [], []
            for el in value.elements:
                if isinstance(el, cst.DictElement):
                    vals.append(el.value)
                    keys.append(el.key)
                else:
                    vals.append(None)
                    keys.append(None)
            return Container("dict", vals, keys, empty=not vals)
        if isinstance(value, cst.DictComp):
            return Container("dict", [value.value], [value.key])
        if (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Name)
            and value.func.value in ("list", "tuple", "dict")
            and self.context.qualname(value.func) is None
        ):
            shape = "dict" if value.func.value == "dict" else "list"
            if not value.args:
                return Container(shape, [], [], empty=True)
            if len(value.args) == 1 and not value.args[0].keyword and not value.args[0].star:
                inner = self._container(value.args[0].value, func, store)
                if inner is not None and not inner.empty and inner.shape == shape:
                    return inner
            return Container(shape, [None], [None])
        if isinstance(value, cst.Name):
            return self._local_container(value.value, func, store)
        return None

    def _local_container(self, name: str, func: cst.FunctionDef, store: cst.CSTNode) -> Container | None:
        """`L = [...]` / `L = []` + `L.append(...)` in func, then `self.A = L`; L used for
        nothing else."""
        bindings = _local_bindings(func, name)
        if not bindings or len(bindings) != 1:
            return None
        origin = bindings[0]
        if isinstance(origin, cst.Name):
            return None
        base = self._container(origin, func, store)
        if base is None:
            return None
        finder = _LocalRefs(name)
        walk(func.body, finder)
        values = list(base.values)
        stores = 0
        for ref, ctx in finder.refs:
            parent = ctx[-1] if ctx else None
            grand = ctx[-2] if len(ctx) > 1 else None
            if isinstance(parent, cst.AssignTarget) and parent.target is ref:
                continue  # the binding
            if isinstance(parent, cst.Assign) and parent.value is ref and parent is store:
                stores += 1
                continue
            if (
                isinstance(parent, cst.Attribute)
                and parent.value is ref
                and isinstance(grand, cst.Call)
                and grand.func is parent
                and parent.attr.value in ("append", "insert", "extend")
                and base.shape == "list"
            ):
                values += self._call_values(parent.attr.value, grand)
                continue
            if isinstance(parent, cst.AugAssign) and parent.target is ref and isinstance(
                parent.operator, cst.AddAssign
            ):
                values += self._display_values(parent.value)
                continue
            if isinstance(parent, cst.Arg) and isinstance(grand, cst.Call) and isinstance(
                grand.func, cst.Name
            ) and grand.func.value == "len":
                continue
            return None  # used some other way: maybe wrapped
        if stores != 1:
            return None
        return Container(base.shape, values, base.keys, empty=False)

    def _call_values(self, method: str, call: cst.Call) -> list[cst.BaseExpression | None]:
        args = [a for a in call.args if a.keyword is None and not a.star]
        if method == "append" and len(args) == 1:
            return [args[0].value]
        if method == "insert" and len(args) == 2:
            return [args[1].value]
        if method == "extend" and len(args) == 1:
            return self._display_values(args[0].value)
        return [None]

    def _display_values(self, node: cst.BaseExpression) -> list[cst.BaseExpression | None]:
        if isinstance(node, (cst.List, cst.Tuple)):
            return [None if isinstance(e, cst.StarredElement) else e.value for e in node.elements]
        if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
            return [node.elt]
        return [None]

    def _added_values(self, uses) -> list[tuple[cst.BaseExpression | None, cst.FunctionDef]]:
        """Values added to self.<attr> after its creation (appends, `+=`, item stores),
        each with the method it is added in."""
        out: list[tuple[cst.BaseExpression | None, cst.FunctionDef]] = []
        for use, _method, func in uses:
            if use.kind == "method" and use.method in ADDING_METHODS:
                if use.method == "update":
                    out.append((None, func))
                else:
                    out += [(v, func) for v in self._call_values(use.method, use.call)]
            elif use.kind == "augment":
                out += [(v, func) for v in self._display_values(use.value)]
            elif use.kind == "setitem":
                out.append((use.value, func))
        return out

    def _registers_elsewhere(self, use: Use, method: str, func: cst.FunctionDef) -> bool:
        if use.kind == "alias":
            return True
        if use.kind == "arg":
            if use.callee in READING_CALLS and use.callee not in ("getattr", "hasattr"):
                return self._registering_loop(use.call, func)
            return use.callee not in READING_CALLS
        if use.kind == "iter":
            return self._registering_loop(use.node, func)
        if use.kind == "method" and use.method in ("copy",):
            return True
        return False

    def _registering_loop(self, node: cst.CSTNode, func: cst.FunctionDef) -> bool:
        """Whether node is (the iterable of) a `for` whose body registers things."""
        finder = _ForOf(node)
        walk(func.body, finder)
        loop = finder.loop
        if loop is None:
            return False
        caller = _Callees()
        walk(loop.body, caller)
        return bool(REGISTERING_CALLS & caller.names)

    def _kind(self, node: cst.BaseExpression | None, func: cst.FunctionDef, depth: int = 0) -> str | None:
        if node is None or depth > 3:
            return None
        if isinstance(node, cst.Call):
            qual = self.context.qualname(node.func)
            if qual is not None:
                return _constructed(qual, _unweighted(node))
            if isinstance(node.func, cst.Name) and node.func.value in self._module_classes:
                return MODULE
            return None
        if isinstance(node, cst.IfExp):
            a, b = self._kind(node.body, func, depth + 1), self._kind(node.orelse, func, depth + 1)
            return a if a == b else None
        if isinstance(node, cst.Name):
            values = _local_bindings(func, node.value)
            if not values:
                return None
            kinds = {self._kind(v, func, depth + 1) for v in values}
            return kinds.pop() if len(kinds) == 1 else None
        return None

    # ----------------------------------------------------------------------- fix

    def _container_name(self, container: Container, kinds) -> str | None:
        if all(k in (MODULE, STATELESS) for k in kinds):
            return "nn.ModuleDict" if container.shape == "dict" else "nn.ModuleList"
        if all(k == PARAMETER for k in kinds):
            return "nn.ParameterDict" if container.shape == "dict" else "nn.ParameterList"
        return None

    def _fix(self, attr, use: Use, container: Container, kinds, uses, func):
        wanted = self._container_name(container, kinds)
        if wanted is None:
            return None
        cls_name = wanted.split(".")[1]
        spelled = self._spell(cls_name)
        if spelled is None:
            return None
        if container.shape == "dict" and not all(_valid_key(k) for k in container.keys):
            return None
        if container.shape == "dict" and any(
            u.kind == "setitem" and not _valid_key(_subscript_key(u.node)) for u, _m, _f in uses
        ):
            return None
        supported = CONTAINER_METHODS[cls_name]
        for u, _method, _func in uses:
            if u.kind in ("write", "index", "iter", "setitem"):
                continue
            if u.kind == "augment" and cls_name in ("ModuleList", "ParameterList"):
                continue
            if u.kind == "contains" and container.shape == "dict":
                continue
            if u.kind == "method" and u.method in supported:
                continue
            if u.kind == "arg" and u.callee in ("len", "enumerate", "zip", "reversed", "iter"):
                continue
            return None
        value = use.value
        func_expr = cst.parse_expression(spelled)
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
            new = value.with_changes(func=func_expr)  # list(...) / dict(...)
        elif container.empty and isinstance(value, (cst.List, cst.Dict, cst.Tuple)):
            new = cst.Call(func=func_expr)
        else:
            arg = value
            if isinstance(arg, cst.Tuple) and not arg.lpar:
                arg = arg.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
            new = cst.Call(func=func_expr, args=[cst.Arg(value=arg)])
        return self.make_fix(f"Wrap `self.{attr}` in `{spelled}`", (value, new))

    def _spell(self, cls_name: str) -> str | None:
        """`nn.ModuleList`, `torch.nn.ModuleList` or `ModuleList` as the module's top-level
        imports allow; None when none of them is bound."""
        names = _top_level_imports(self.context.module)
        for local, qual in names.items():
            if qual == "torch.nn":
                return f"{local}.{cls_name}"
        for local, qual in names.items():
            if qual == "torch":
                return f"{local}.nn.{cls_name}"
        for local, qual in names.items():
            if qual in (f"torch.nn.{cls_name}", f"torch.nn.modules.container.{cls_name}"):
                return local
        return None


class _ForOf(Visitor):
    """The `for` statement whose iterable is (or directly contains) node."""

    def __init__(self, node: cst.CSTNode) -> None:
        self.node = node
        self.loop: cst.For | None = None

    def visit_For(self, node: cst.For) -> None:
        it = node.iter
        if it is self.node or (
            isinstance(it, cst.Call)
            and any(a.value is self.node for a in it.args)
        ) or (isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and it.func.value is self.node):
            self.loop = node


class _Callees(Visitor):
    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Name):
            self.names.add(func.value)
        elif isinstance(func, cst.Attribute):
            self.names.add(func.attr.value)


def _unweighted(call: cst.Call) -> bool:
    """A loss constructed without positional arguments or class weights holds no state."""
    return all(
        a.keyword is not None and a.keyword.value not in ("weight", "pos_weight") for a in call.args
    )


def _subscript_key(node: cst.CSTNode) -> cst.BaseExpression | None:
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        index = node.slice[0].slice
        if isinstance(index, cst.Index):
            return index.value
    return None


def _valid_key(key: cst.BaseExpression | None) -> bool:
    """A string literal usable as a submodule name."""
    if not isinstance(key, cst.SimpleString):
        return False
    try:
        value = key.evaluated_value
    except Exception:  # noqa: BLE001
        return False
    return isinstance(value, str) and bool(value) and "." not in value and value not in RESERVED_KEYS


def _top_level_imports(module: cst.Module) -> dict[str, str]:
    """Names bound by imports at module level (also under top-level if/try/with)."""
    from trainlint.imports import ImportTable

    table = ImportTable()

    def collect(body) -> None:
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Import):
                        table._add_import(small)
                    elif isinstance(small, cst.ImportFrom):
                        table._add_import_from(small)
            elif isinstance(stmt, (cst.If, cst.Try, cst.With)):
                blocks = [stmt.body]
                if isinstance(stmt, cst.Try):
                    blocks += [h.body for h in stmt.handlers]
                    if stmt.orelse is not None:
                        blocks.append(stmt.orelse.body)
                elif isinstance(stmt, cst.If) and stmt.orelse is not None:
                    blocks.append(stmt.orelse.body if isinstance(stmt.orelse, cst.Else) else cst.IndentedBlock(body=[stmt.orelse]))
                for block in blocks:
                    if isinstance(block, cst.IndentedBlock):
                        collect(block.body)

    collect(module.body)
    return table.names


class _Screen:
    """`ModulePlainContainer`'s analysis on CPython's ast, answering yes wherever the rule
    may report: it follows the same writes, containers and element kinds, but lets every
    binding of a name count and ignores the ways a container gets registered later."""

    def __init__(self, index) -> None:
        self.index = index
        self.local = {s.name for s in index.tree.body if isinstance(s, ast.ClassDef)}

    def may_report(self, klass: ast.ClassDef) -> bool:
        own = {s.name: s for s in klass.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
        if REGISTRATION_OVERRIDES & own.keys():
            return False
        writes: dict[str, list[tuple[ast.expr, ast.AST]]] = {}
        added: dict[str, list[tuple[ast.expr | None, ast.AST]]] = {}
        # per method, the names `_local_bindings` may find one `name = value` for (no parameters)
        locals_: dict[ast.AST, set[str]] = {}
        for func in own.values():
            params = [*func.args.posonlyargs, *func.args.args]
            if not params:
                continue
            me = params[0].arg
            bound = locals_[func] = set()
            for node in sc.walk(func):
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                    if isinstance(target, ast.Name):
                        bound.add(target.id)
                    elif _self_attr(target, me):
                        writes.setdefault(target.attr, []).append((node.value, func))
                    elif isinstance(target, ast.Subscript) and _self_attr(target.value, me):
                        added.setdefault(target.value.attr, []).append((node.value, func))
                elif isinstance(node, ast.AnnAssign) and node.value is not None and _self_attr(node.target, me):
                    writes.setdefault(node.target.attr, []).append((node.value, func))
                elif isinstance(node, ast.AugAssign) and _self_attr(node.target, me):
                    added.setdefault(node.target.attr, []).extend((v, func) for v in _display_elements(node.value))
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                    node.func.attr in ADDING_METHODS and _self_attr(node.func.value, me)
                ):
                    added.setdefault(node.func.value.attr, []).extend(
                        (v, func) for v in _added_by_call(node.func.attr, node)
                    )
            args = func.args
            bound -= {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)}
            bound -= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
        for attr, stored in writes.items():
            if not all(_may_be_container(v, locals_[f]) for v, f in stored):
                continue  # the rule leaves alone an attribute also stored as anything else
            kept = [(v, f) for v, f in stored if f.name != "forward"]
            elements = [(e, f) for v, f in kept for e in self._elements(v, f, 0)]
            if kept and any(
                self._may_hold_state(e, f, 0) for e, f in elements + added.get(attr, [])
            ):
                return True
        return False

    def _elements(self, value: ast.expr | None, func, depth: int) -> list[ast.expr | None]:
        """What a container stored in an attribute may hold (`Container.values`)."""
        if isinstance(value, (ast.List, ast.Tuple)):
            return [e for e in value.elts if not isinstance(e, ast.Starred)]
        if isinstance(value, (ast.ListComp, ast.GeneratorExp)):
            return [value.elt]
        if isinstance(value, ast.Dict):
            return [v for k, v in zip(value.keys, value.values) if k is not None]
        if isinstance(value, ast.DictComp):
            return [value.value]
        if _list_call(value):
            return self._elements(value.args[0], func, depth) if len(value.args) == 1 else []
        if isinstance(value, ast.Name) and depth < 3:
            out: list[ast.expr | None] = []
            for node in sc.walk(func):
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == value.id for t in node.targets
                ) and not isinstance(node.value, ast.Name):
                    out += self._elements(node.value, func, depth + 1)
                elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and (
                    node.target.id == value.id
                ):
                    out += _display_elements(node.value)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                    isinstance(node.func.value, ast.Name) and node.func.value.id == value.id
                ):
                    out += _added_by_call(node.func.attr, node)
            return out
        return []

    def _may_hold_state(self, node: ast.expr | None, func, depth: int) -> bool:
        """Whether the rule's `_kind` may call node a module or a parameter."""
        if node is None or depth > 3:
            return False
        if isinstance(node, ast.Call):
            callee = node.func
            if isinstance(callee, ast.Name) and callee.id in self.local:
                return True
            unweighted = not node.args and all(
                k.arg is not None and k.arg not in ("weight", "pos_weight") for k in node.keywords
            )
            return any(
                _constructed(q, unweighted) in (MODULE, PARAMETER) for q in self.index.qualnames(callee)
            )
        if isinstance(node, ast.IfExp):
            return self._may_hold_state(node.body, func, depth + 1) or self._may_hold_state(
                node.orelse, func, depth + 1
            )
        if isinstance(node, ast.Name):
            return any(
                self._may_hold_state(n.value, func, depth + 1)
                for n in sc.walk(func)
                if isinstance(n, ast.Assign)
                and len(n.targets) == 1
                and isinstance(n.targets[0], ast.Name)
                and n.targets[0].id == node.id
            )
        return False


def _may_be_container(value: ast.expr, locals_: set[str]) -> bool:
    """Whether `_container` may find a container in value: a display, `list(...)`..., or
    one of the method's locals bound by a plain `name = ...`."""
    if isinstance(value, ast.Name):
        return value.id in locals_
    return isinstance(value, _CONTAINER_VALUES) or _list_call(value)


def _self_attr(node: ast.AST, me: str) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == me


def _list_call(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and (
        node.func.id in ("list", "tuple", "dict")
    )


def _display_elements(node: ast.expr) -> list[ast.expr | None]:
    if isinstance(node, (ast.List, ast.Tuple)):
        return [e for e in node.elts if not isinstance(e, ast.Starred)]
    if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
        return [node.elt]
    return []


def _added_by_call(method: str, call: ast.Call) -> list[ast.expr | None]:
    args = call.args
    if method == "append" and len(args) == 1:
        return [args[0]]
    if method == "insert" and len(args) == 2:
        return [args[1]]
    if method == "extend" and len(args) == 1:
        return _display_elements(args[0])
    return []


def _constructed(qual: str, unweighted: bool) -> str | None:
    """What a call of `qual` builds: PARAMETER, MODULE, STATELESS (a torch.nn module with
    nothing to register), or None; `unweighted`: the call passes no class weights."""
    if qual in PARAMETER_CLASSES:
        return PARAMETER
    parts = qual.split(".")
    last = parts[-1]
    if (
        parts[:2] != ["torch", "nn"]
        or not (len(parts) == 3 or parts[2] == "modules")
        or not last[:1].isupper()
        or last in NOT_MODULES
    ):
        return None
    if last in STATELESS_MODULES or (last.endswith("Loss") and unweighted):
        return STATELESS
    return MODULE


_CONTAINER_VALUES = (ast.List, ast.ListComp, ast.Tuple, ast.Dict, ast.DictComp, ast.GeneratorExp)
