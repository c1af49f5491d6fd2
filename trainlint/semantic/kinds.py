"""A small lattice of value kinds, evaluated in one place: what an expression holds."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from trainlint.semantic import vocabulary as vocab
from trainlint.semantic.imports import dotted_name
from trainlint.semantic.model import Policy, SemanticModel

TENSOR = "tensor"
MODULE = "module"
PARAMETER = "parameter"
BUFFER = "buffer"
OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
GRAD_SCALER = "grad-scaler"
LOSS = "loss"
DATA_LOADER = "data-loader"
PROBABILITIES = "probabilities"


@dataclass(frozen=True)
class Kind:
    """`name` is one of the constants above. For tensors: `dtype` and `device` as written
    (`dtype` a qualified name, `device` the expression given), `fresh` when the
    expression creates the tensor. For losses: `expects` (logits, probabilities,
    log-probabilities); for schedulers: `per_iteration`."""

    name: str
    dtype: str | None = None
    fresh: bool = False
    device: ast.expr | None = None
    expects: str | None = None
    per_iteration: bool = False


def kind_of(model: SemanticModel, node: ast.expr, at: ast.stmt | None = None) -> Kind | None:
    """The kind of `node`; names are followed to their straight-line binding before `at`
    (the statement the expression is in). None when unknown."""
    if isinstance(node, ast.Name):
        if at is None:
            return None
        found = model.reaching(node.id, at, Policy.NESTED)
        if len(found) == 1 and found[0].value is not None:
            value = found[0].value
            return _kind(model, value, found[0].statement)
        return None
    return _kind(model, node, at)


def _kind(model: SemanticModel, node: ast.expr, at: ast.stmt | None) -> Kind | None:
    if isinstance(node, ast.Name):
        kind = kind_of(model, node, at)
        return kind and Kind(kind.name, kind.dtype, False, kind.device, kind.expects)
    if isinstance(node, ast.BinOp):
        for side in (node.left, node.right):
            kind = kind_of(model, side, at)
            if kind is not None and kind.name in (TENSOR, PARAMETER, BUFFER):
                return Kind(TENSOR, kind.dtype, fresh=True)
        return None
    if not isinstance(node, ast.Call):
        return None
    qualname = model.imports.qualname(node.func)
    if qualname is not None:
        return _called(model, qualname, node)
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in vocab.TENSOR_METHODS:
        inner = kind_of(model, func.value, at)
        if inner is not None and inner.name in (TENSOR, PARAMETER, BUFFER):
            dtype = vocab.CAST_DTYPES.get(func.attr, inner.dtype)
            return Kind(TENSOR, dtype, fresh=inner.fresh, device=inner.device)
    return None


def _called(model: SemanticModel, qualname: str, call: ast.Call) -> Kind | None:
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    if qualname in vocab.TENSOR_FACTORIES:
        dtype_node = keywords.get("dtype")
        dtype = None
        if dtype_node is not None:
            dtype = model.imports.qualname(dtype_node) or dotted_name(dtype_node)
        dtype = dtype or vocab.LEGACY_DTYPES.get(qualname.rsplit(".", 1)[-1])
        return Kind(TENSOR, dtype, fresh=True, device=keywords.get("device"))
    if qualname in vocab.PARAMETER:
        return Kind(PARAMETER)
    if qualname in vocab.BUFFER:
        return Kind(BUFFER)
    if qualname in vocab.PROBABILITY_FUNCTIONS:
        return Kind(PROBABILITIES, fresh=True)
    for losses, expects in (
        (vocab.LOSSES_ON_LOGITS, "logits"),
        (vocab.LOSSES_ON_PROBABILITIES, "probabilities"),
        (vocab.LOSSES_ON_LOG_PROBABILITIES, "log-probabilities"),
    ):
        if qualname in losses:
            return Kind(LOSS, expects=expects)
    if qualname.startswith(vocab.SCHEDULERS + "."):
        return Kind(SCHEDULER, per_iteration=qualname in vocab.PER_ITERATION_SCHEDULERS)
    if qualname.startswith(vocab.OPTIMIZERS + ".") and qualname.rsplit(".", 1)[-1][:1].isupper():
        return Kind(OPTIMIZER)
    if qualname in vocab.GRAD_SCALERS:
        return Kind(GRAD_SCALER)
    if qualname in vocab.DATA_LOADERS:
        return Kind(DATA_LOADER)
    if vocab.is_torch_nn(qualname) and qualname.rsplit(".", 1)[-1][:1].isupper():
        return Kind(MODULE)
    return None
