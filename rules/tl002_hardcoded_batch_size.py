"""
## What it does
Flags a `.view(...)`, `.reshape(...)` or `torch.reshape(x, ...)` whose leading dimension
is the batch size written in by hand instead of taken from the tensor:

- an integer literal greater than 1 (with no `-1` among the other dimensions), when the
  reshaped tensor is computed from the arguments of a `forward`, loss or step function, or
  when the literal equals a batch size configured in the same module (`BATCH_SIZE = 16`,
  `batch_size=16` as a parameter default, a `DataLoader` keyword or an argparse default);
- a batch-size-named value that does not come from the tensor: a module constant or global
  (`BATCH_SIZE`, `BSIZE`, `batch_size`), a config attribute (`args.batch_size`,
  `cfg.TRAIN.BATCH_SIZE`, `self.batch_size` set in `__init__`), or a local copied from one.

Inside `forward`, the same batch-size values used as a dimension of a tensor factory
(`torch.zeros(self.batch_size, ...)`, `torch.randn`, `x.new_zeros`...) are flagged too.

## Why is this bad?
The batch size of the tensor that reaches the model is not always the configured one: the
last batch of an epoch is smaller unless the loader drops it, `DataParallel` hands each
replica a slice of the batch, and evaluation often runs with another batch size. A shape
that spells the batch size out works for every full batch and then crashes at the end of
the first epoch (`shape '[16, 1]' is invalid for input of size 10`), or, when the other
dimensions absorb the difference, silently mixes samples.

## Example
```python
BATCH_SIZE = 16

class LDAMLoss(nn.Module):
    def forward(self, x, target):
        batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(1, 0))
        batch_m = batch_m.view((16, 1))
        return F.cross_entropy(x - batch_m, target)
```

## Use instead
```python
class LDAMLoss(nn.Module):
    def forward(self, x, target):
        batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(1, 0))
        batch_m = batch_m.view((-1, 1))
        return F.cross_entropy(x - batch_m, target)
```

## Fix safety
The leading value becomes `-1` when no other dimension is `-1`. That is safe, identical on
every input the original accepted, when every other dimension is a positive integer
literal or a sum or product of them (`view(16, 1)`, `view(BATCH_SIZE, 16 * 5 * 5)`,
`view(16)`): the product of the other dimensions is a fixed positive number, so `-1`
resolves to exactly the value that was written, with the same strides. When
another dimension is an expression the fix is marked unsafe, since that expression could be
`0` or `-1` at run time, where the original runs and the fixed shape raises.

When another dimension already is `-1`, the leading value becomes `<tensor>.size(0)`. This
is unsafe: it equals the original only when the tensor's first dimension really is the
batch (a `(32, 8)` tensor viewed as `(16, -1)` gives `(16, 16)`, as `(x.size(0), -1)` it
stays `(32, 8)`). It is offered only when the reshaped tensor is a name, an attribute or a
constant-index subscript (`out[-1]`), so evaluating it once more has no side effects. Factory calls in `forward` are reported
without a fix: the right replacement (`x.size(0)` of which input?) needs a human.

## Known false positives
A literal leading dimension that is not a batch (an RGB `3`, an affine `(2, 3)`) is only
flagged when the tensor is computed from the arguments of a `forward`, loss or step
function and every other dimension is a literal or a constant (`self.num_classes`,
`NUM_CLASSES`); shapes that also use local sizes (`reshape(3, h * 16, w * 16)`), views of
parameters and buffers (`self.w.view(3, 3)`) and code in `__init__` are left alone. A
batch-size value is not flagged where the data is built with that very size: a tensor
made from it (`torch.randn(BATCH_SIZE, nz)`), or a function that draws its own batch
(`random.sample(self.memory, self.batch_size)`, `range(self.batch_size)`), as replay
buffers do. Code that only ever runs with the configured size (`drop_last=True`, no
`DataParallel`) is still flagged, since the next change of loader breaks it.

What the rule does not see: the dataflow is syntactic and straight-line, so a batch size
copied into a local inside a branch or loop is not followed; `self.batch_size` counts only
when `__init__` is its only writer; a batch dimension that is not the leading one
(`input.view(seq_len, self.batch_size, -1)` for a sequence-first RNN) is not checked in
`view`/`reshape`; and factories in helpers that `forward` calls (`init_hidden`) are not
seen.
"""

from __future__ import annotations

import ast
import re
from typing import Iterator

import libcst as cst

from trainlint import screen as sc
from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Fix, Invalid, Rule, Valid
from trainlint.rules._analysis import (
    Visitor,
    attribute_writes,
    body_statements,
    int_literal,
    parameter_names,
    straight_line_origin,
)
from trainlint.traverse import walk

SHAPE_METHODS = {"view", "reshape"}
FACTORIES = {"zeros", "ones", "empty", "full", "rand", "randn"}  # torch.<name>(*size)
NEW_FACTORIES = {"new_zeros", "new_ones", "new_empty", "new_full"}  # x.new_<name>(size)
SIZE_ATTRS = {"size", "shape", "numel", "dim", "__len__"}

_BS_NAME = re.compile(
    r"^(?:train|training|test|testing|val|valid|validation|eval|global|local|mini|micro|"
    r"total|effective|perdevice|perdevicetrain|perdeviceeval|default)?"
    r"(?:batchsize|batchsz|bsize|bsz|bs)"
    r"(?:train|test|val|valid|eval|pergpu|perdevice)?$"
)
_CONFIG_NAME = re.compile(
    r"^_?(?:args?|opts?|options?|cfgs?|confs?|configs?|hparams?|hyper_?params?|hps?|params|"
    r"flags|settings?|c)$|(?:_cfg|_config|_conf|_args|_opts?|_options|_hparams)$",
    re.I,
)

# Functions and methods that draw a batch of the size they are given (replay-buffer
# sampling, index permutations, `range(batch_size)` loops); lowercase names only, so that
# `BatchSampler(...)` and `DataLoader(...)` (which yield a short last batch) do not count.
_BATCH_SOURCE = re.compile(r"sample|choice|randperm|randint|permutation|multinomial|batch|^range$")

_UNKNOWN = object()  # a binding whose value is not a plain expression (for target, unpacking)
_IMPORTED = object()


def is_batch_size_name(name: str) -> bool:
    return bool(_BS_NAME.match(re.sub(r"[_\-]", "", name.lower())))


def _is_config_name(name: str) -> bool:
    return bool(_CONFIG_NAME.search(name))


class _FreeNames(Visitor):
    """Names read by an expression: not attribute names, not keyword names."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.names.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        walk(node.value, self)
        return False


def free_names(node: cst.CSTNode) -> set[str]:
    collector = _FreeNames()
    walk(node, collector)
    return collector.names


class _SizeReads(Visitor):
    def __init__(self) -> None:
        self.found = False

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value in SIZE_ATTRS:
            self.found = True

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "len":
            self.found = True


def reads_tensor_size(node: cst.CSTNode) -> bool:
    """`x.size(0)`, `x.shape[0]`, `len(x)`, `x.numel()` anywhere inside node."""
    finder = _SizeReads()
    walk(node, finder)
    return finder.found


def _target_names(node: cst.CSTNode) -> Iterator[cst.Name]:
    if isinstance(node, cst.Name):
        yield node
    elif isinstance(node, (cst.Tuple, cst.List)):
        for el in node.elements:
            yield from _target_names(el.value)
    elif isinstance(node, cst.StarredElement):
        yield from _target_names(node.value)


class _Bindings(Visitor):
    """Names bound in one scope (not entering nested functions, classes or lambdas).

    `values[name]` lists each binding's value: the expression of a plain `name = value`,
    `_UNKNOWN` for unpacking, loop targets and the like, `_IMPORTED` for imports.
    """

    def __init__(self, root: cst.CSTNode) -> None:
        self.root = root
        self.values: dict[str, list[object]] = {}
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()

    def _add(self, target: cst.CSTNode, value: object) -> None:
        plain = isinstance(target, cst.Name)
        for name in _target_names(target):
            self.values.setdefault(name.value, []).append(value if plain else _UNKNOWN)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if node is not self.root and isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            self.values.setdefault(node.name.value, []).append(_UNKNOWN)
            return False
        if isinstance(node, (cst.Lambda, cst.CompFor)):
            return False
        return super().on_visit(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            self._add(t.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._add(node.target, node.value if node.value is not None else _UNKNOWN)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._add(node.target, node.value)

    def visit_For(self, node: cst.For) -> None:
        self._add(node.target, _UNKNOWN)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._add(node.target, _UNKNOWN)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._add(node.name, _UNKNOWN)

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            if alias.asname is None:
                head = (dotted_name(alias.name) or "").split(".")[0]
                if head:
                    self.values.setdefault(head, []).append(_IMPORTED)
            else:
                self._add(alias.asname.name, _IMPORTED)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        for alias in node.names:
            if alias.asname is None and isinstance(alias.name, cst.Name):
                self.values.setdefault(alias.name.value, []).append(_IMPORTED)
            elif alias.asname is not None:
                self._add(alias.asname.name, _IMPORTED)

    def visit_Global(self, node: cst.Global) -> None:
        self.globals.update(n.name.value for n in node.names)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        self.nonlocals.update(n.name.value for n in node.names)


class _Flow(Visitor):
    """Straight-line taint: which locals hold values computed from the seeds, at `stop`.

    Statements are taken in textual order up to the node `stop`; a later assignment of
    an untainted value clears the taint (so a branch that rebinds a name makes the rule
    quieter, never louder).
    """

    def __init__(self, root: cst.CSTNode, stop: cst.CSTNode, seeds: set[str], loops: bool):
        self.root = root
        self.stop = stop
        self.tainted = set(seeds)
        self.loops = loops  # module-level code: every loop target is data
        self.done = False

    def _mentions(self, node: cst.CSTNode) -> bool:
        return bool(free_names(node) & self.tainted)

    def _set(self, target: cst.CSTNode, tainted: bool) -> None:
        for name in _target_names(target):
            if tainted:
                self.tainted.add(name.value)
            else:
                self.tainted.discard(name.value)

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.done:
            return False
        if node is self.stop:
            self.done = True
            return False
        if node is not self.root and isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if not self.done:
            super().on_leave(original_node)

    def leave_Assign(self, node: cst.Assign) -> None:
        tainted = self._mentions(node.value)
        for t in node.targets:
            self._set(t.target, tainted)

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._set(node.target, self._mentions(node.value))

    def leave_AugAssign(self, node: cst.AugAssign) -> None:
        if self._mentions(node.value):
            self._set(node.target, True)

    def visit_For(self, node: cst.For) -> None:
        self._set(node.target, self.loops or self._mentions(node.iter))

    def leave_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._set(node.target, self._mentions(node.value))


def _shape_call(node: cst.Call, qualname) -> tuple[cst.BaseExpression, list[cst.Arg], str] | None:
    """(reshaped tensor, its dimensions, spelling) for view/reshape calls, else None."""
    q = qualname(node.func)
    if q == "torch.reshape":
        if len(node.args) >= 2 and node.args[0].keyword is None and not node.args[0].star:
            shape = node.args[1]
            if shape.keyword is None or shape.keyword.value == "shape":
                dims = _sequence(shape.value)
                return (node.args[0].value, dims, "torch.reshape") if dims else None
        return None
    func = node.func
    if not isinstance(func, cst.Attribute) or func.attr.value not in SHAPE_METHODS:
        return None
    if q is not None:  # `np.reshape(...)`, `F.view`: a module function, not a tensor method
        return None
    args = list(node.args)
    if not args or any(a.star for a in args):
        return None
    if len(args) == 1:
        arg = args[0]
        if arg.keyword is not None and arg.keyword.value not in ("shape", "size"):
            return None
        dims = _sequence(arg.value)
        if dims is None:
            dims = [arg] if arg.keyword is None else None
    elif any(a.keyword is not None for a in args):
        return None
    else:
        dims = args
    if not dims:
        return None
    return func.value, dims, f".{func.attr.value}"


def _sequence(node: cst.BaseExpression) -> list | None:
    """Elements of a tuple/list display of plain expressions, else None."""
    if isinstance(node, (cst.Tuple, cst.List)):
        if any(isinstance(el, cst.StarredElement) for el in node.elements):
            return None
        return list(node.elements)
    return None


_TORCH_RESHAPE = frozenset({"torch.reshape"})


def _screen(index: sc.AstIndex) -> bool:
    """A view/reshape whose leading dimension is batch-size-like, or an integer above 1
    inside a forward/loss/step function or equal to a configured batch size; or a tensor
    factory inside `forward` with a batch-size-like dimension. A batch-size-named local
    (`bs = x.size(0)`) is batch-size-like only when copied from a literal or another
    batch-size value."""
    aliases: set[str] | None = None
    names = _NameOrigins(index)

    def batch_like(node: ast.AST) -> bool:
        nonlocal aliases
        if isinstance(node, ast.Name):
            if is_batch_size_name(node.id):
                return names.configured(node)
            if aliases is None:
                aliases = {
                    t.id
                    for a in index.nodes(ast.Assign)
                    if _ast_batch_size_value(a.value)
                    for t in a.targets
                    if isinstance(t, ast.Name)
                }
            return node.id in aliases
        return _ast_named_batch_size(node)

    literals: list[tuple[ast.Call, int]] = []
    factories: list[ast.Call] = []
    for call in index.nodes(ast.Call):
        func = call.func
        if isinstance(func, ast.Attribute):
            name = func.attr
        elif isinstance(func, ast.Name):
            name = func.id
        else:
            continue
        if name in SHAPE_METHODS or isinstance(func, ast.Name):
            for leading in _ast_leading_dims(call, index):
                value = sc.int_literal(leading)
                if value is not None:
                    if value > 1:
                        literals.append((call, value))
                elif batch_like(leading):
                    return True
        spellings = {name}
        if isinstance(func, ast.Name):  # `from torch import zeros as z`
            spellings |= {q.rpartition(".")[2] for q in index.imports.get(name, ())}
        for spelled in spellings:
            if spelled in FACTORIES or spelled in NEW_FACTORIES:
                if any(batch_like(d) for d in _ast_factory_dims(call, spelled)):
                    factories.append(call)
                    break
    if factories:
        spans = [sc.span(f) for f in index.functions() if f.name == "forward"]
        if any(a <= call.lineno <= b for call in factories for a, b in spans):
            return True
    if literals:
        configured = _ast_configured(index)
        if any(value in configured for _, value in literals):
            return True
        spans = [sc.span(f) for f in _ast_data_functions(index)]
        if any(a <= call.lineno <= b for call, _ in literals for a, b in spans):
            return True
    return False


class _NameOrigins:
    """Whether `_batch_size_name` may describe a batch-size-named name: not a local of the
    innermost function, unless a plain assignment there copies a literal above 1 or another
    batch-size value (`bs = x.size(0)` is not one)."""

    def __init__(self, index: sc.AstIndex) -> None:
        self.spans = [(sc.span(f), f) for f in index.functions()]
        self.locals: dict[int, set[str]] = {}
        self.copied: dict[int, set[str]] = {}

    def configured(self, name: ast.Name) -> bool:
        line = name.lineno
        enclosing = [(span, f) for span, f in self.spans if span[0] <= line <= span[1]]
        if not enclosing:
            return True
        func = max(enclosing, key=lambda e: e[0][0])[1]
        key = id(func)
        if key not in self.locals:
            self.locals[key] = _ast_function_locals(func)
            self.copied[key] = {
                node.targets[0].id
                for node in sc.walk(func)
                if isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and ((sc.int_literal(node.value) or 0) > 1 or _ast_batch_size_value(node.value))
            }
        return name.id not in self.locals[key] or name.id in self.copied[key]


def _ast_function_locals(func: ast.AST) -> set[str]:
    """The names `_Bindings` finds bound in func (parameters included, nested scopes and
    comprehensions not entered), less those declared `global`."""
    args = func.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    out = {a.arg for a in params if a is not None}
    declared_global: set[str] = set()
    stack: list[ast.AST] = list(func.body)
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    while stack:
        node = stack.pop()
        if isinstance(node, nested):
            out.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, ast.comprehension)):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            out.add(node.id)
        elif isinstance(node, ast.alias):
            out.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.add(node.name)
        elif isinstance(node, ast.Global):
            declared_global.update(node.names)
        stack.extend(ast.iter_child_nodes(node))
    return out - declared_global


def _ast_self_attribute(node: ast.AST) -> bool:
    dotted = sc.dotted_name(node)
    return dotted is not None and dotted.startswith("self.")


def _ast_leading_dims(call: ast.Call, index: sc.AstIndex) -> list[ast.AST]:
    """The leading dimension of `x.view(...)`/`x.reshape(...)` and `torch.reshape(x, ...)`
    calls (both readings where the callee is ambiguous), as `_shape_call` finds them."""
    out = []
    func, args, keywords = call.func, call.args, call.keywords
    if isinstance(func, ast.Attribute) and func.attr in SHAPE_METHODS and not _ast_self_attribute(func.value):
        if len(args) + len(keywords) == 1:
            value = args[0] if args else keywords[0].value if keywords[0].arg in ("shape", "size") else None
            if isinstance(value, ast.Starred):
                value = value.value
            if isinstance(value, (ast.Tuple, ast.List)):
                out += value.elts[:1]
            elif args and value is not None:
                out.append(value)
        elif args and not keywords:
            out.append(args[0].value if isinstance(args[0], ast.Starred) else args[0])
    if (isinstance(func, ast.Name) or func.attr == "reshape") and index.resolves_to(func, _TORCH_RESHAPE):
        if args and not isinstance(args[0], ast.Starred) and not _ast_self_attribute(args[0]):
            if len(args) >= 2:
                shape = args[1].value if isinstance(args[1], ast.Starred) else args[1]
            else:
                shape = next((k.value for k in keywords if k.arg == "shape"), None)
            if isinstance(shape, (ast.Tuple, ast.List)):
                out += shape.elts[:1]
    return out


def _ast_factory_dims(call: ast.Call, name: str) -> list[ast.AST]:
    """The size arguments of a `torch.zeros(...)`-like or `x.new_zeros(...)` call."""
    dims = [a for a in call.args if not isinstance(a, ast.Starred)]
    if name in ("full", "new_full"):
        dims = dims[:1]
    dims += [k.value for k in call.keywords if k.arg == "size"]
    if len(dims) == 1 and isinstance(dims[0], (ast.Tuple, ast.List)):
        return list(dims[0].elts)
    return dims


def _ast_named_batch_size(node: ast.AST) -> bool:
    """`args.batch_size`, `cfg['batch_size']` (as `_named_batch_size`)."""
    if isinstance(node, ast.Attribute):
        return is_batch_size_name(node.attr)
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and isinstance(key.value, str) and is_batch_size_name(key.value)
    return False


def _ast_batch_size_value(node: ast.AST) -> bool:
    return _ast_named_batch_size(node) or (isinstance(node, ast.Name) and is_batch_size_name(node.id))


def _ast_configured(index: sc.AstIndex) -> set[int]:
    """The integers above 1 that `_record` may remember as a configured batch size."""
    out: set[int] = set()

    def record(name: str | None, value: ast.AST | None) -> None:
        n = sc.int_literal(value)
        if n is not None and n > 1 and name and is_batch_size_name(name):
            out.add(n)

    for target, value, stmt in sc.assignments(index):
        if not isinstance(stmt, ast.AugAssign):
            if isinstance(target, ast.Name):
                record(target.id, value)
            elif isinstance(target, ast.Attribute):
                record(target.attr, value)
    for args in index.nodes(ast.arguments):
        positional = [*args.posonlyargs, *args.args]
        for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
            record(arg.arg, default)
        for arg, default in zip(args.kwonlyargs, args.kw_defaults):
            record(arg.arg, default)
    for node in index.nodes(ast.Dict):
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                record(key.value, value)
    for call in index.nodes(ast.Call):
        for keyword in call.keywords:
            record(keyword.arg, keyword.value)
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "add_argument":
            # the first argument, positional or (in `_record_configured_call`) a keyword
            for flag in [*call.args[:1], *(k.value for k in call.keywords[:1])]:
                if isinstance(flag, ast.Constant) and isinstance(flag.value, str):
                    for keyword in call.keywords:
                        if keyword.arg == "default":
                            record(flag.value.lstrip("-"), keyword.value)
    return out


def _ast_data_functions(index: sc.AstIndex) -> list[ast.AST]:
    """Functions `_is_data_function` may accept: forward, losses, steps, a loss's `__call__`."""
    out = []
    for func in index.functions():
        name = func.name
        lowered = name.lower()
        if (
            lowered.lstrip("_").startswith("forward")
            or "loss" in lowered
            or name == "step"
            or name.endswith("_step")
            or name.startswith("step_")
        ):
            out.append(func)
    for klass in index.nodes(ast.ClassDef):
        if "loss" in klass.name.lower():
            out += [f for f in sc.methods(klass) if f.name == "__call__"]
    return out


def _minus_one() -> cst.UnaryOperation:
    return cst.UnaryOperation(operator=cst.Minus(), expression=cst.Integer("1"))


class HardcodedBatchSize(Rule):
    __doc__ = __doc__
    code = "TL002"
    name = "hardcoded-batch-size"
    message = "`{call}` hardcodes the batch size {value} as its leading dimension"
    fix_applicability = Applicability.SAFE
    tokens = (("view", "reshape", "*batch*", "*bs*"),)

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        return _screen(index)

    VALID = [
        # Parameters and buffers have fixed shapes.
        Valid(
            """
            class M(nn.Module):
                def forward(self, x):
                    w = self.w.view(3, 3)
                    return x @ self.weight.reshape(16, 4)
            """
        ),
        # A deliberate grouping, and the batch taken from the tensor.
        Valid(
            """
            BATCH_SIZE = 16
            class M(nn.Module):
                def forward(self, x):
                    a = x.view(2, -1)
                    b = x.view(-1, 1)
                    c = x.view(x.size(0), 16)
                    d = x.reshape(x.shape[0], 16)
                    batch_size = x.size(0)
                    e = x.view(batch_size, -1)
                    return torch.reshape(x, (x.size(0), 16))
            """
        ),
        # Sizes unpacked from the tensor's shape (the usual transformer code).
        Valid(
            """
            class Attention(nn.Module):
                def forward(self, x):
                    B, N, C = x.shape
                    qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
                    q, k, v = qkv.reshape(3, B * self.num_heads, N, -1).unbind(0)
                    bsz, tgt_len, _ = x.size()
                    return x.view(bsz, tgt_len, 2, -1)
            """
        ),
        # A literal leading dimension next to local sizes is not the batch.
        Valid(
            """
            class Patch(nn.Module):
                def forward(self, patch, h, w):
                    return patch.reshape(3, h * 16, w * 16)
            """
        ),
        # The batch size passed in as an argument, and a local taken from a tensor.
        Valid(
            """
            class RNN(nn.Module):
                def forward(self, x, batch_size):
                    h = torch.zeros(1, batch_size, self.hidden)
                    return x.view(batch_size, -1)
                def step(self, x):
                    self.batch_size = x.size(0)
                    return x.view(self.batch_size, -1)
            """
        ),
        # Tensors that do not come from the inputs; dtype views.
        Valid(
            """
            class M(nn.Module):
                def forward(self, x):
                    idx = torch.arange(16).view(16, 1)
                    mean = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1)
                    return x.view(torch.float16)
            """
        ),
        # Not a forward/loss/step function, and no batch size configured in the module.
        Valid(
            """
            def affine(matrix):
                return torch.tensor(matrix, dtype=torch.float).view(2, 3)
            def make_grid(t):
                return t.reshape(4, 4)
            """
        ),
        # A tensor built with the batch size, viewed with the same value.
        Valid(
            """
            BATCH_SIZE = 64
            noise = torch.randn(BATCH_SIZE, 100)
            noise = noise.view(BATCH_SIZE, 100, 1, 1)
            """
        ),
        # `self.batch_size` written outside `__init__` (set per call from the input).
        Valid(
            """
            class M(nn.Module):
                def __init__(self, batch_size):
                    self.batch_size = batch_size
                def set_input(self, x):
                    self.batch_size = x.shape[0]
                def forward(self, x):
                    h = torch.zeros(self.batch_size, 8)
                    return x.view(self.batch_size, -1)
            """
        ),
        # Factories outside `forward` (hidden-state init), and batch-size args in __init__.
        Valid(
            """
            class LSTM(nn.Module):
                def __init__(self, args):
                    self.h0 = torch.zeros(1, args.batch_size, 8)
                def init_hidden(self):
                    return torch.zeros(1, self.args.batch_size, self.hidden)
            """
        ),
        # Replay-buffer code draws batches of exactly the configured size.
        Valid(
            """
            class Agent:
                def __init__(self, batch_size=64):
                    self.batch_size = batch_size
                def replay(self):
                    minibatch = random.sample(self.memory, self.batch_size)
                    states = torch.tensor([t[0] for t in minibatch]).view(self.batch_size, -1)
                    target = []
                    for j in range(self.batch_size):
                        target.append(minibatch[j][2])
                    return torch.tensor(target).view(self.batch_size, 1)
            """
        ),
        # A test input made with the batch size is consistent with it.
        Valid(
            """
            BATCH_SIZE = 8
            def test_model(model):
                x = torch.randn(BATCH_SIZE, 3, 32, 32)
                assert model(x).view(BATCH_SIZE, -1).shape[1] == 10
            """
        ),
        # numpy's module function and a local batch size assigned in a loop.
        Valid(
            """
            batch_size = 16
            def loss_fn(x, loader):
                y = np.reshape(x, (16, 1))
                for xb in loader:
                    batch_size = xb.shape[0]
                    xb = xb.view(batch_size, -1)
                return y
            """
        ),
    ]

    INVALID = [
        # The seed: LDAMLoss with `BATCH_SIZE = 16` in the training script.
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            BATCH_SIZE = 16

            class LDAMLoss(nn.Module):
                def forward(self, x, target):
                    index = torch.zeros_like(x, dtype=torch.uint8)
                    index_float = index.type(torch.cuda.FloatTensor)
                    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(1,0))
                    batch_m = batch_m.view((16, 1)) # size=(batch_size, 1) (-1,1)
                    x_m = x - batch_m
                    return F.cross_entropy(x_m * self.s, target)
            """,
            fixed="""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            BATCH_SIZE = 16

            class LDAMLoss(nn.Module):
                def forward(self, x, target):
                    index = torch.zeros_like(x, dtype=torch.uint8)
                    index_float = index.type(torch.cuda.FloatTensor)
                    batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(1,0))
                    batch_m = batch_m.view((-1, 1)) # size=(batch_size, 1) (-1,1)
                    x_m = x - batch_m
                    return F.cross_entropy(x_m * self.s, target)
            """,
            line=12,
            count=1,
        ),
        # A loss function, `torch` under another name.
        Invalid(
            """
            import torch as T
            def focal_loss(logits, target):
                p = T.sigmoid(logits)
                return T.reshape(p, (32, 10)).mean()
            """,
            fixed="""
            import torch as T
            def focal_loss(logits, target):
                p = T.sigmoid(logits)
                return T.reshape(p, (-1, 10)).mean()
            """,
            line=4,
        ),
        # `from torch import reshape`, the literal equal to the DataLoader's batch size.
        Invalid(
            """
            from torch import reshape
            from torch.utils.data import DataLoader
            loader = DataLoader(ds, batch_size=64, shuffle=True)
            def evaluate(model, loader):
                for images, labels in loader:
                    out = model(reshape(images, [64, 784]))
            """,
            fixed="""
            from torch import reshape
            from torch.utils.data import DataLoader
            loader = DataLoader(ds, batch_size=64, shuffle=True)
            def evaluate(model, loader):
                for images, labels in loader:
                    out = model(reshape(images, [-1, 784]))
            """,
            line=6,
        ),
        # A config attribute next to `-1`: the tensor's own first dimension (unsafe).
        Invalid(
            """
            def train_step(model, x, args):
                feats = model(x)
                return feats.view(args.batch_size, -1)
            """,
            fixed="""
            def train_step(model, x, args):
                feats = model(x)
                return feats.view(feats.size(0), -1)
            """,
            line=3,
        ),
        # `self.batch_size` from the constructor, in `forward` and in a factory.
        Invalid(
            """
            import torch
            class Net(nn.Module):
                def __init__(self, batch_size=32):
                    super().__init__()
                    self.batch_size = batch_size
                def forward(self, x):
                    x = x.view(self.batch_size, 3, 32, 32)
                    h = torch.zeros(self.batch_size, self.hidden)
                    return x
            """,
            fixed="""
            import torch
            class Net(nn.Module):
                def __init__(self, batch_size=32):
                    super().__init__()
                    self.batch_size = batch_size
                def forward(self, x):
                    x = x.view(-1, 3, 32, 32)
                    h = torch.zeros(self.batch_size, self.hidden)
                    return x
            """,
            line=7,
            count=2,
        ),
        # A factory in forward only: report, no fix.
        Invalid(
            """
            from torch import zeros
            class Decoder(nn.Module):
                def forward(self, x):
                    h = zeros(self.num_layers, cfg.TRAIN.BATCH_SIZE, self.hidden)
                    return self.rnn(x, h)
            """,
            line=4,
        ),
        # A module-level training loop with a module constant.
        Invalid(
            """
            BATCH_SIZE = 100
            for images, labels in train_loader:
                images = images.reshape(BATCH_SIZE, 28 * 28)
                loss = criterion(model(images), labels)
            """,
            fixed="""
            BATCH_SIZE = 100
            for images, labels in train_loader:
                images = images.reshape(-1, 28 * 28)
                loss = criterion(model(images), labels)
            """,
            line=3,
        ),
        # A loader made with the batch size still yields a short last batch.
        Invalid(
            """
            from torch.utils.data import DataLoader
            BATCH_SIZE = 8
            def check(model, ds):
                loader = DataLoader(ds, batch_size=BATCH_SIZE)
                out = model(next(iter(loader)))
                return out.view(BATCH_SIZE, 16 * 5 * 5), out[0].reshape(BATCH_SIZE, -1)
            """,
            fixed="""
            from torch.utils.data import DataLoader
            BATCH_SIZE = 8
            def check(model, ds):
                loader = DataLoader(ds, batch_size=BATCH_SIZE)
                out = model(next(iter(loader)))
                return out.view(-1, 16 * 5 * 5), out[0].reshape(out[0].size(0), -1)
            """,
            line=6,
            count=2,
        ),
        # Other dimensions that are expressions make `-1` unsafe (they might be 0 or -1).
        Invalid(
            """
            class Head(nn.Module):
                def forward(self, x):
                    bs = opt.batchSize
                    return self.fc(x).view(bs, self.num_classes)
            """,
            fixed="""
            class Head(nn.Module):
                def forward(self, x):
                    bs = opt.batchSize
                    return self.fc(x).view(-1, self.num_classes)
            """,
            line=4,
        ),
    ]

    # ------------------------------------------------------------------ traversal
    # The traversal only records cheap facts and the few candidate calls; the analysis
    # (module bindings, dataflow, class attributes) runs at the end, for candidates only.

    def visit_Module(self, node: cst.Module) -> None:
        self._configured: dict[int, str] = {}
        self._candidates: list[tuple[cst.Call, tuple[cst.CSTNode, ...], str]] = []
        self._aliases: dict[int, set[str]] = {}  # function id -> locals copied from a batch size
        self._global_functions: list[cst.FunctionDef] = []
        self._scopes: dict[int, _Bindings] = {}
        self._sources: dict[tuple[int, str], bool] = {}
        self._stack: tuple[cst.CSTNode, ...] = ()

    def visit_Call(self, node: cst.Call) -> None:
        _record_configured_call(node, self._configured)
        shape = _shape_call(node, self.context.qualname)
        if shape is not None:
            dims = shape[1]
            leading = dims[0].value
            literal = int_literal(leading)
            if literal is not None:
                if literal > 1 and not any(int_literal(d.value) == -1 for d in dims[1:]):
                    self._candidates.append((node, tuple(self.context.stack), "shape"))
            elif self._maybe_batch_size(leading):
                self._candidates.append((node, tuple(self.context.stack), "shape"))
            return
        func = self.context.enclosing(cst.FunctionDef)
        if func is not None and func.name.value == "forward":
            dims = _factory_dims(node, self.context.qualname)
            if any(self._maybe_batch_size(d) for d in dims):
                self._candidates.append((node, tuple(self.context.stack), "factory"))

    def _maybe_batch_size(self, node: cst.BaseExpression) -> bool:
        """Cheap syntactic test: could node be a configured batch size?"""
        if isinstance(node, cst.Name):
            if is_batch_size_name(node.value):
                return True
            func = self.context.enclosing(cst.FunctionDef)
            return func is not None and node.value in self._aliases.get(id(func), ())
        return _named_batch_size(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            target = t.target
            if isinstance(target, (cst.Name, cst.Attribute)):
                name = target.value if isinstance(target, cst.Name) else target.attr.value
                _record(self._configured, name, node.value, "{name} = {n}")
        if _named_batch_size(node.value) or (
            isinstance(node.value, cst.Name) and is_batch_size_name(node.value.value)
        ):
            func = self.context.enclosing(cst.FunctionDef)
            if func is not None:
                for t in node.targets:
                    if isinstance(t.target, cst.Name):
                        self._aliases.setdefault(id(func), set()).add(t.target.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        target = node.target
        if isinstance(target, (cst.Name, cst.Attribute)):
            name = target.value if isinstance(target, cst.Name) else target.attr.value
            _record(self._configured, name, node.value, "{name} = {n}")

    def visit_Param(self, node: cst.Param) -> None:
        _record(self._configured, node.name.value, node.default, "{name}={n}")

    def visit_DictElement(self, node: cst.DictElement) -> None:
        if isinstance(node.key, cst.SimpleString) and isinstance(node.key.evaluated_value, str):
            _record(self._configured, node.key.evaluated_value, node.value, "'{name}': {n}")

    def visit_Global(self, node: cst.Global) -> None:
        func = self.context.enclosing(cst.FunctionDef)
        if func is not None:
            self._global_functions.append(func)

    def leave_Module(self, original_node: cst.Module) -> None:
        if not self._candidates:
            return
        module_scope = _Bindings(original_node)
        walk(original_node, module_scope)
        self._globals = module_scope.values
        self._star_import = _has_star_import(original_node)
        for func in self._global_functions:
            self._scope(func)  # `global X` writes join the module's bindings of X
        for call, stack, kind in self._candidates:
            self._stack = stack
            if kind == "shape":
                self._check_shape(call, *_shape_call(call, self.context.qualname))
            else:
                self._check_factory(call, self._function())

    def _scope(self, func: cst.FunctionDef) -> _Bindings:
        scope = self._scopes.get(id(func))
        if scope is None:
            scope = _Bindings(func)
            walk(func.body, scope)
            for name in parameter_names(func):
                scope.values.setdefault(name, []).append(_UNKNOWN)
            self._scopes[id(func)] = scope
            for name in scope.globals:  # `global X` writes are module bindings too
                self._globals.setdefault(name, []).extend(scope.values.pop(name, []))
        return scope

    # ------------------------------------------------------------------ candidates

    def _function(self) -> cst.FunctionDef | None:
        return next((n for n in reversed(self._stack) if isinstance(n, cst.FunctionDef)), None)

    def _enclosing_functions(self) -> list[cst.FunctionDef]:
        return [n for n in reversed(self._stack) if isinstance(n, cst.FunctionDef)]

    def _class_of(self, func: cst.FunctionDef) -> cst.ClassDef | None:
        stack = self._stack
        i = next((k for k in range(len(stack) - 1, -1, -1) if stack[k] is func), None)
        if i is not None and i >= 2 and isinstance(stack[i - 2], cst.ClassDef):
            return stack[i - 2]
        return None

    def _top_statement(self, func: cst.FunctionDef) -> cst.BaseStatement | None:
        body = body_statements(func)
        stack = self._stack
        for k in range(len(stack) - 1, -1, -1):
            if stack[k] is func:
                for node in stack[k + 1 :]:
                    if any(node is s for s in body):
                        return node
                return None
        return None

    def _check_shape(
        self, call: cst.Call, tensor: cst.BaseExpression, dims: list, spelling: str
    ) -> None:
        func = self._function()
        if func is not None and func.name.value == "__init__":
            return
        if _is_self_attribute(tensor):
            return  # parameters and buffers have fixed shapes
        leading = dims[0].value
        others = [d.value for d in dims[1:]]
        other_minus_one = any(int_literal(d) == -1 for d in others)
        literal = int_literal(leading)
        if literal is not None:
            if literal <= 1 or other_minus_one:
                return
            if not all(self._plain_dim(d, func) for d in others):
                return
            configured = self._configured.get(literal)
            if self._tainted(tensor, func, data_function_only=configured is None):
                value = f"`{literal}`" + (f" (from `{configured}`)" if configured else "")
                self._report(call, tensor, leading, others, spelling, value)
            return
        described = self._batch_size_value(leading, func)
        if described is None:
            return
        if self._built_from(call, tensor, leading, func):
            return
        self._report(call, tensor, leading, others, spelling, described)

    def _check_factory(self, call: cst.Call, func: cst.FunctionDef) -> None:
        dims = _factory_dims(call, self.context.qualname)
        if not dims:
            return
        for dim in dims:
            described = self._batch_size_value(dim, func)
            if described is not None and not self._draws_own_batch(func, self.context.code(dim)):
                name = self.context.code(call.func)
                self.report(
                    dim,
                    f"`{name}` in `forward` sizes a tensor by the configured batch size "
                    f"({described}), not by the input's",
                    help="take the batch size from the input (`x.size(0)`), or use `x.new_zeros(...)`",
                )
                return

    def _report(self, call, tensor, leading, others, spelling, value) -> None:
        name = self.context.code(call.func) if spelling == "torch.reshape" else spelling
        message = self.message.format(call=name, value=value)
        if any(int_literal(d) == -1 for d in others):
            fix = None
            if _stable(tensor):
                replacement = f"{self.context.code(tensor)}.size(0)"
                fix = Fix(
                    f"Use `{replacement}` as the leading dimension",
                    Applicability.UNSAFE,
                    ((leading, cst.parse_expression(replacement)),),
                )
            help = "take the batch dimension from the tensor: `x.size(0)`"
        else:
            safe = all(_positive_constant(d) for d in others)
            fix = Fix(
                "Use `-1` as the leading dimension",
                Applicability.SAFE if safe else Applicability.UNSAFE,
                ((leading, _minus_one()),),
            )
            help = "use `-1` for the leading dimension so that any batch size fits"
        self.report(leading, message, fix=fix, help=help)

    # ------------------------------------------------------------------ analysis

    def _plain_dim(self, node: cst.BaseExpression, func: cst.FunctionDef | None) -> bool:
        """A literal, or a constant-looking name/attribute that is not a function local."""
        if int_literal(node) is not None:
            return True
        if isinstance(node, cst.BinaryOperation):
            return self._plain_dim(node.left, func) and self._plain_dim(node.right, func)
        dotted = dotted_name(node)
        if dotted is None:
            return False
        head = dotted.split(".")[0]
        if head == "self":
            return "." in dotted
        return func is None or head not in self._scope(func).values

    def _tainted(
        self, tensor: cst.BaseExpression, func: cst.FunctionDef | None, data_function_only: bool
    ) -> bool:
        """Whether the reshaped tensor is computed from the inputs of its function."""
        if func is None:
            if data_function_only:
                return False
            root, seeds, loops = self.context.module, set(), True
        else:
            if data_function_only and not self._is_data_function(func):
                return False
            root = func
            seeds = set(parameter_names(func)) - {"self", "cls"}
            loops = not data_function_only
        flow = _Flow(root, tensor, seeds, loops)
        walk(root.body if isinstance(root, cst.FunctionDef) else root, flow)
        return bool(free_names(tensor) & flow.tainted)

    def _is_data_function(self, func: cst.FunctionDef) -> bool:
        name = func.name.value
        lowered = name.lower()
        if lowered.lstrip("_").startswith("forward") or "loss" in lowered:
            return True
        if name == "step" or name.endswith("_step") or name.startswith("step_"):
            return True
        cls = self._class_of(func)
        return name == "__call__" and cls is not None and "loss" in cls.name.value.lower()

    def _batch_size_value(
        self, node: cst.BaseExpression, func: cst.FunctionDef | None, depth: int = 0
    ) -> str | None:
        """A description of node when it is a configured batch size, else None."""
        if depth > 3:
            return None
        if isinstance(node, cst.Name):
            return self._batch_size_name(node, func, depth)
        if isinstance(node, cst.Attribute):
            return self._batch_size_attribute(node, func)
        if isinstance(node, cst.Subscript):
            return self._batch_size_key(node)
        return None

    def _batch_size_name(self, node: cst.Name, func, depth: int) -> str | None:
        name = node.value
        if func is not None:
            scope = self._scope(func)
            if name in scope.nonlocals:
                return None
            if name in scope.values:
                stmt = self._top_statement(func)
                origin = straight_line_origin(func, name, stmt) if stmt is not None else None
                if origin is None:
                    return None
                value = origin.value
                if is_batch_size_name(name) and (int_literal(value) or 0) > 1:
                    return f"`{name} = {int_literal(value)}`"
                inner = self._batch_size_value(value, func, depth + 1)
                if inner is None or self._function_assigns(func, value):
                    return None
                return f"`{name}` (from {inner})"
            for outer in self._enclosing_functions()[1:]:
                if name in self._scope(outer).values:
                    return None  # a closure variable: not followed
        if not is_batch_size_name(name):
            return None
        bindings = self._globals.get(name)
        if not bindings:
            return f"`{name}`" if self._star_import and name.isupper() else None
        for value in bindings:
            if value is _IMPORTED:
                continue
            if value is _UNKNOWN or reads_tensor_size(value):
                return None
        return f"`{name}`"

    def _batch_size_attribute(self, node: cst.Attribute, func) -> str | None:
        dotted = dotted_name(node)
        if dotted is None:
            return None
        parts = dotted.split(".")
        if not is_batch_size_name(parts[-1]) or len(parts) < 2:
            return None
        if parts[0] == "self":
            if len(parts) == 2:
                return f"`{dotted}`" if self._constructor_attribute(parts[1], func) else None
            if not any(_is_config_name(p) for p in parts[1:-1]):
                return None
        elif not any(_is_config_name(p) for p in parts[:-1]):
            return None
        if func is not None and self._function_assigns(func, node):
            return None
        return f"`{dotted}`"

    def _batch_size_key(self, node: cst.Subscript) -> str | None:
        if len(node.slice) != 1 or not isinstance(node.slice[0].slice, cst.Index):
            return None
        key = node.slice[0].slice.value
        if not isinstance(key, cst.SimpleString) or not isinstance(key.evaluated_value, str):
            return None
        if not is_batch_size_name(key.evaluated_value):
            return None
        base = node.value
        while isinstance(base, cst.Subscript):
            base = base.value
        dotted = dotted_name(base)
        if dotted is None or not any(_is_config_name(p) for p in dotted.split(".")):
            return None
        return f"`{self.context.code(node)}`"

    def _constructor_attribute(self, attr: str, func) -> bool:
        """`self.<attr>` written only in `__init__`, never from a tensor's size."""
        if func is None:
            return False
        cls = self._class_of(func)
        if cls is None:
            return False
        writes = attribute_writes(cls).get(attr, [])
        return bool(writes) and all(
            w.method == "__init__"
            and not w.augmented
            and w.value is not None
            and not reads_tensor_size(w.value)
            for w in writes
        )

    def _function_assigns(self, func: cst.FunctionDef, target: cst.BaseExpression) -> bool:
        """Whether func assigns to the attribute chain `target` (e.g. `args.batch_size = n`)."""
        text = self.context.code(target)
        found = []

        class Finder(Visitor):
            def visit_AssignTarget(inner, n: cst.AssignTarget) -> None:
                if isinstance(n.target, cst.Attribute) and self.context.code(n.target) == text:
                    found.append(n)

        walk(func.body, Finder())
        return bool(found)

    def _draws_own_batch(self, func: cst.FunctionDef | None, text: str) -> bool:
        """Whether the function builds its data with exactly this batch size.

        `states = torch.tensor(random.sample(self.memory, self.batch_size))` followed by
        `states.view(self.batch_size, -1)`: every batch has the configured size by
        construction, so the shape is consistent.
        """
        key = (id(func), text)
        cached = self._sources.get(key)
        if cached is None:
            finder = _BatchSources(text, self.context.code)
            walk(func.body if func is not None else self.context.module, finder)
            cached = self._sources[key] = finder.found
        return cached

    def _built_from(
        self, call: cst.Call, tensor: cst.BaseExpression, value: cst.BaseExpression, func
    ) -> bool:
        """Whether the tensor was itself made with the same batch-size value.

        Follows the bindings of the names the tensor is computed from (any binding in the
        scope, a few steps deep): `noise = torch.randn(BATCH_SIZE, nz)` then
        `model(noise).view(BATCH_SIZE, -1)` is consistent by construction. A loader built
        with `batch_size=BATCH_SIZE` does not count: it yields a short last batch.
        """
        text = self.context.code(value)
        if self._draws_own_batch(func, text):
            return True
        bindings = self._scope(func).values if func is not None else self._globals
        ancestors = {id(n) for n in self._stack} | {id(call)}
        pending: list[cst.CSTNode] = [tensor]
        seen: set[str] = set()
        budget = 64
        while pending and budget:
            budget -= 1
            expr = pending.pop()
            if _uses_value(expr, text, self.context.code):
                return True
            for name in free_names(expr) - seen:
                seen.add(name)
                for origin in bindings.get(name, ()):
                    # `x = x.view(...)`: the assignment being checked is not an origin
                    if isinstance(origin, cst.CSTNode) and id(origin) not in ancestors:
                        pending.append(origin)
        return False


class _BatchSources(Visitor):
    """Calls that draw a batch of a given size: `random.sample(memory, self.batch_size)`."""

    def __init__(self, text: str, code) -> None:
        self.text = text
        self.code = code
        self.found = False

    def visit_Call(self, node: cst.Call) -> bool:
        func = node.func
        name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", "")
        if (
            isinstance(name, str)
            and name[:1].islower()
            and _BATCH_SOURCE.search(name)
            and any(self.text in self.code(arg.value) for arg in node.args)
        ):
            self.found = True
        return not self.found


def _uses_value(node: cst.CSTNode, text: str, code) -> bool:
    """Whether `text` (a batch-size expression) is used in node other than as `batch_size=`."""
    if text not in code(node):
        return False
    finder = _ValueUses(text, code)
    walk(node, finder)
    return finder.found


class _ValueUses(Visitor):
    def __init__(self, text: str, code) -> None:
        self.text = text
        self.code = code
        self.found = False

    def on_visit(self, node: cst.CSTNode) -> bool:
        if self.found:
            return False
        if isinstance(node, cst.Arg) and node.keyword is not None:
            if is_batch_size_name(node.keyword.value):
                return False  # `DataLoader(ds, batch_size=BATCH_SIZE)`
        if isinstance(node, (cst.Name, cst.Attribute, cst.Subscript)) and self.code(node) == self.text:
            self.found = True
            return False
        return True


def _positive_constant(node: cst.BaseExpression) -> bool:
    """An integer literal >= 1, or a sum/product of them (`16 * 5 * 5`)."""
    if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, (cst.Multiply, cst.Add)):
        return _positive_constant(node.left) and _positive_constant(node.right)
    value = int_literal(node)
    return value is not None and value >= 1


def _stable(node: cst.BaseExpression) -> bool:
    """A name, attribute chain or constant-index subscript: cheap to evaluate twice."""
    if dotted_name(node) is not None:
        return True
    if isinstance(node, cst.Subscript) and _stable(node.value):
        for element in node.slice:
            index = element.slice
            if not isinstance(index, cst.Index):
                return False
            if int_literal(index.value) is None and not isinstance(index.value, cst.Name):
                return False
        return True
    return False


def _is_self_attribute(node: cst.BaseExpression) -> bool:
    dotted = dotted_name(node)
    return dotted is not None and dotted.startswith("self.")


def _has_star_import(module: cst.Module) -> bool:
    for stmt in module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.ImportFrom) and isinstance(small.names, cst.ImportStar):
                    return True
    return False


def _factory_dims(call: cst.Call, qualname) -> list[cst.BaseExpression]:
    """The size arguments of `torch.zeros(...)`-style factories and `x.new_zeros(...)`."""
    q = qualname(call.func) or ""
    func = call.func
    if q.startswith("torch.") and q[len("torch.") :] in FACTORIES:
        size_args = [a for a in call.args if a.keyword is None and not a.star]
        if q == "torch.full":
            size_args = size_args[:1]
    elif isinstance(func, cst.Attribute) and func.attr.value in NEW_FACTORIES and q == "":
        size_args = [a for a in call.args if a.keyword is None and not a.star]
        if func.attr.value == "new_full":
            size_args = size_args[:1]
    else:
        return []
    sized = [a for a in call.args if a.keyword is not None and a.keyword.value == "size"]
    size_args += sized
    if len(size_args) == 1:
        seq = _sequence(size_args[0].value)
        if seq is not None:
            return [el.value for el in seq]
    return [a.value for a in size_args]


def _record(out: dict[int, str], name: str, value, spelling: str) -> None:
    """Remember an integer batch size configured in the module (`BATCH_SIZE = 16`...)."""
    n = int_literal(value) if value is not None else None
    if n is not None and n > 1 and is_batch_size_name(name):
        out.setdefault(n, spelling.format(name=name, n=n))


def _record_configured_call(node: cst.Call, out: dict[int, str]) -> None:
    """`DataLoader(ds, batch_size=16)`, `parser.add_argument('--batch-size', default=16)`."""
    for arg in node.args:
        if arg.keyword is not None:
            _record(out, arg.keyword.value, arg.value, "{name}={n}")
    func = node.func
    if (
        isinstance(func, cst.Attribute)
        and func.attr.value == "add_argument"
        and node.args
        and isinstance(node.args[0].value, cst.SimpleString)
        and isinstance(node.args[0].value.evaluated_value, str)
    ):
        flag = node.args[0].value.evaluated_value.lstrip("-")
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "default":
                _record(out, flag, arg.value, "--{name} default {n}")


def _named_batch_size(node: cst.BaseExpression) -> bool:
    """`args.batch_size`, `cfg['batch_size']`: an attribute or key named like a batch size."""
    if isinstance(node, cst.Attribute):
        return is_batch_size_name(node.attr.value)
    if isinstance(node, cst.Subscript) and len(node.slice) == 1:
        index = node.slice[0].slice
        if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString):
            key = index.value.evaluated_value
            return isinstance(key, str) and is_batch_size_name(key)
    return False
