"""
## What it does
Flags a loss computation that applies the same class-weight vector twice: the logits are
multiplied by a weight (`output * self.weight[None, :]`, `logits.mul(w)`, `x *= w`) and the
product reaches a `cross_entropy` / `nll_loss` call (or an `nn.CrossEntropyLoss` /
`nn.NLLLoss` module) that also receives that same weight as `weight=`. The module form is
recognised too: `__init__` builds `self.ce = nn.CrossEntropyLoss(weight=self.weight)` and
`forward` multiplies the logits by `self.weight` before calling `self.ce(...)`.

The diagnostic is reported at the loss call; the message names the weight and the line of
the multiplication.

## Why is this bad?
`weight=` already re-weights each sample's loss by the weight of its target class.
Multiplying the logits by the weight as well does not re-weight anything: it rescales the
scores of every class before the softmax, which moves the decision boundary towards the
heavily weighted classes and changes the effective temperature, and then the loss is
weighted a second time. The model trains without error, on a different objective than the
one intended (a copy of LDAM loss in the wild does exactly this).

## Example
```python
class LDAMLoss(nn.Module):
    def forward(self, x, target):
        output = x - self.margins
        if self.weight is not None:
            output = output * self.weight[None, :]
        return F.cross_entropy(self.s * output, target, weight=self.weight)
```

## Use instead
```python
class LDAMLoss(nn.Module):
    def forward(self, x, target):
        output = x - self.margins
        return F.cross_entropy(self.s * output, target, weight=self.weight)
```

## Fix safety
There is no fix: whether the multiplication or the `weight=` argument was intended cannot
be decided from the code, so the rule only reports.

## Known false positives
The weight is matched by its spelling (`self.weight`, a parameter `weight`, or a local
bound once to such an attribute), so two different vectors under one name would be
confused; this is rare inside one function. The flow of the product into the loss input is
followed through local assignments in the function, across branches and loops as "may
reach"; a product that reaches the loss only under a condition that also drops `weight=`
through means the rule cannot see (a flag stored elsewhere) is still reported.

The rule does not see weights applied twice through helper functions, through attributes
of `self` other than the loss module built in `__init__`, or to the per-sample loss after
the call (`F.cross_entropy(..., weight=w, reduction="none") * w[target]`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from trainlint import screen as sc
from trainlint.imports import dotted_name
from trainlint.rule import Invalid, Rule, Valid
from trainlint.traverse import walk

from ._analysis import (
    BindingTargets,
    Visitor,
    body_statements,
    methods,
    parameter_names,
    self_attribute,
)

FUNCTIONAL_LOSSES = {
    "torch.nn.functional.cross_entropy": "cross_entropy",
    "torch.nn.functional.nll_loss": "nll_loss",
}
LOSS_MODULES = {
    "torch.nn.CrossEntropyLoss": "CrossEntropyLoss",
    "torch.nn.NLLLoss": "NLLLoss",
    "torch.nn.modules.loss.CrossEntropyLoss": "CrossEntropyLoss",
    "torch.nn.modules.loss.NLLLoss": "NLLLoss",
}
# Methods that reshape, move or convert a tensor without changing which vector it is.
SAME_VECTOR_METHODS = {
    "view", "reshape", "unsqueeze", "squeeze", "expand", "expand_as", "to", "type",
    "type_as", "float", "double", "half", "bfloat16", "cuda", "cpu", "detach", "clone",
    "contiguous", "t", "view_as", "reshape_as",
}
# Calls that build a tensor from a list or array without changing its values.
TENSOR_FACTORIES = {
    "torch.tensor", "torch.as_tensor", "torch.Tensor", "torch.FloatTensor",
    "torch.from_numpy", "torch.cuda.FloatTensor",
}
MUL_METHODS = {"mul", "mul_", "multiply", "multiply_"}
_FUNCTIONAL_NAMES = frozenset(q.rsplit(".", 1)[1] for q in FUNCTIONAL_LOSSES)
_MODULE_NAMES = frozenset(q.rsplit(".", 1)[1] for q in LOSS_MODULES)
_TORCH_MUL = frozenset({"torch.mul", "torch.multiply"})

Taint = dict[str, cst.CSTNode]  # weight key -> the multiplication that applied it
State = dict[str, Taint]  # local name -> weights that may have been multiplied into it


@dataclass(frozen=True)
class LossCall:
    call: cst.Call
    input: cst.BaseExpression
    keys: frozenset[str]
    label: str  # how the message names the loss


class ClassWeightAppliedTwice(Rule):
    __doc__ = __doc__
    code = "TL011"
    name = "class-weight-applied-twice"
    message = "`{key}` scales the logits and is also passed as `weight=`: the classes are weighted twice"
    fix_applicability = None
    tokens = ("*weight*", ("*cross_entropy*", "*nll_loss*", "*crossentropyloss*", "*nllloss*"))

    @classmethod
    def screen(cls, index: sc.AstIndex) -> bool:
        """A `cross_entropy`/`nll_loss` call or a `CrossEntropyLoss`/`NLLLoss` constructor
        given a weight, and a multiplication somewhere."""
        multiplies = (
            any(isinstance(n.op, ast.Mult) for n in index.nodes(ast.BinOp))
            or any(isinstance(n.op, ast.Mult) for n in index.nodes(ast.AugAssign))
            or not index.called.isdisjoint(MUL_METHODS)
            or any(not b.isdisjoint(_TORCH_MUL) for b in index.imports.values())
        )
        if not multiplies:
            return False
        for call in index.nodes(ast.Call):
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name is None:
                continue
            position = 2 if name in _FUNCTIONAL_NAMES else 0 if name in _MODULE_NAMES else None
            if position is None and isinstance(func, ast.Name):
                # an alias: `from torch.nn.functional import cross_entropy as ce`
                qualnames = index.qualnames(func)
                if not qualnames.isdisjoint(FUNCTIONAL_LOSSES):
                    position = 2
                elif not qualnames.isdisjoint(LOSS_MODULES):
                    position = 0
            if position is None:
                continue
            positional = 0
            for arg in call.args:
                if isinstance(arg, ast.Starred):
                    break
                positional += 1
            if positional > position or any(k.arg == "weight" for k in call.keywords):
                return True
        return False

    VALID = [
        # weight used once: through `weight=` only
        Valid(
            """
            import torch.nn.functional as F

            def forward(self, x, target):
                output = x * self.s
                return F.cross_entropy(output, target, weight=self.weight)
            """
        ),
        # weight used once: multiplied by hand, no `weight=`
        Valid(
            """
            import torch.nn.functional as F

            def forward(self, x, target):
                output = x * self.weight[None, :]
                return F.cross_entropy(output, target)
            """
        ),
        # a different vector multiplies the logits
        Valid(
            """
            import torch.nn.functional as F

            def forward(self, x, target):
                output = x * self.m_list[None, :]
                return F.cross_entropy(output, target, weight=self.weight)
            """
        ),
        # the two uses sit on different paths
        Valid(
            """
            import torch.nn.functional as F

            def loss(logits, target, weight, manual):
                if manual:
                    logits = logits * weight
                    return F.cross_entropy(logits, target)
                else:
                    return F.cross_entropy(logits, target, weight=weight)
            """
        ),
        # the weighted product is overwritten before the loss call
        Valid(
            """
            import torch.nn.functional as F

            def loss(logits, target, weight):
                scaled = logits * weight
                scaled = logits * 30.0
                return F.cross_entropy(scaled, target, weight=weight)
            """
        ),
        # the weighted value is used for something else (a metric), not the loss input
        Valid(
            """
            import torch.nn.functional as F

            def step(logits, target, w):
                weighted_scores = logits * w
                pred = weighted_scores.argmax(1)
                loss = F.cross_entropy(logits, target, weight=w)
                return loss, pred
            """
        ),
        # per-sample weighting after an unweighted loss
        Valid(
            """
            import torch.nn.functional as F

            def loss(logits, target, w):
                ce = F.cross_entropy(logits, target, reduction="none")
                return (ce * w[target]).mean()
            """
        ),
        # a local `weight` rebound between the two uses is a different value
        Valid(
            """
            from torch.nn import functional as F

            def loss(logits, target, w, flag):
                weight = w
                if flag:
                    weight = None
                logits = logits * w
                return F.nll_loss(logits.log_softmax(1), target, weight=weight)
            """
        ),
        # tuple assignment: only the second element is weighted
        Valid(
            """
            import torch.nn.functional as F

            def loss(logits, target, w):
                plain, weighted = logits, logits * w
                return F.cross_entropy(plain, target, weight=w), weighted
            """
        ),
        # label smoothing: the weighted product feeds the smoothing term, not the NLL input
        Valid(
            """
            import torch.nn.functional as F

            def smooth_ce(logits, target, weight, eps=0.1):
                log_probs = F.log_softmax(logits, dim=-1)
                smooth = -(log_probs * weight.unsqueeze(0)).sum(-1).mean()
                nll = F.nll_loss(log_probs, target, weight=weight)
                return (1 - eps) * nll + eps * smooth
            """
        ),
        # a loss module built with one weight, logits scaled by another
        Valid(
            """
            import torch.nn as nn

            class Loss(nn.Module):
                def __init__(self, weight, scale):
                    super().__init__()
                    self.weight = weight
                    self.scale = scale
                    self.ce = nn.CrossEntropyLoss(weight=weight)

                def forward(self, x, y):
                    return self.ce(x * self.scale, y)
            """
        ),
        # `cross_entropy` that is not torch's
        Valid(
            """
            from mylib import cross_entropy

            def loss(logits, target, w):
                return cross_entropy(logits * w, target, weight=w)
            """
        ),
        # transformers' mask-classification losses: weight passed once
        Valid(
            """
            from torch import nn

            def loss_labels(self, class_queries_logits, target_classes):
                pred_logits = class_queries_logits
                criterion = nn.CrossEntropyLoss(weight=self.empty_weight)
                pred_logits_transposed = pred_logits.transpose(1, 2)
                return criterion(pred_logits_transposed, target_classes)
            """
        ),
    ]
    INVALID = [
        # the seed: LDAM loss with the weight multiplied in and passed as `weight=`
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
                    if self.weight is not None:
                        output = output * self.weight[None, :]
                    target = torch.flatten(target)
                    logit = output * self.s
                    return F.cross_entropy(logit, target, weight=self.weight)
            """,
            line=17,
            count=1,
        ),
        # direct product in the argument, `from ... import cross_entropy`
        Invalid(
            """
            from torch.nn.functional import cross_entropy

            def weighted_ce(logits, target, class_weights):
                return cross_entropy(logits * class_weights, target, weight=class_weights)
            """,
            line=4,
        ),
        # `.mul` through a reshaping view, nll_loss through `import torch as T`
        Invalid(
            """
            import torch as T

            def loss(logits, target, w):
                scaled = logits.mul(w.view(1, -1))
                logp = T.log_softmax(scaled, dim=1)
                return T.nn.functional.nll_loss(logp, target, weight=w)
            """,
            line=6,
        ),
        # in-place multiplication in a loop, alias of the attribute
        Invalid(
            """
            from torch.nn import functional as F

            class Loss:
                def __call__(self, logits, target):
                    w = self.class_weight
                    for _ in range(2):
                        logits = logits.float()
                    logits *= w
                    return F.cross_entropy(logits, target, weight=self.class_weight)
            """,
            line=9,
        ),
        # the loss module built in __init__ with the same weight
        Invalid(
            """
            import torch
            from torch import nn

            class WeightedCE(nn.Module):
                def __init__(self, weight):
                    super().__init__()
                    weight = torch.tensor(weight)
                    self.register_buffer("weight", weight)
                    self.criterion = nn.CrossEntropyLoss(weight=weight)

                def forward(self, logits, target):
                    return self.criterion(logits * self.weight, target)
            """,
            line=12,
        ),
        # weights passed positionally: `CrossEntropyLoss(weight)`, `nll_loss(x, y, weight)`
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F

            class WCELoss(nn.Module):
                def __init__(self, weight):
                    super().__init__()
                    self.weight = weight
                    self.loss = nn.CrossEntropyLoss(weight)

                def forward(self, logit, target):
                    logit = logit * self.weight
                    return self.loss(logit, target) + F.nll_loss(logit.log_softmax(1), target, self.weight)
            """,
            line=12,
            count=2,
        ),
        # a local loss module, and an inline one
        Invalid(
            """
            import torch.nn as nn

            def loss(logits, target, w):
                criterion = nn.NLLLoss(weight=w)
                logits = logits * w
                a = criterion(logits.log_softmax(-1), target)
                b = nn.CrossEntropyLoss(weight=w)(logits, target)
                return a + b
            """,
            line=6,
            count=2,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._class_losses: dict[int, dict[str, frozenset[str]]] = {}
        self._positions = None
        # Only functions that call a loss are analysed: one flag per open function and
        # per open class (whether it builds a loss module), set by visit_Call.
        self._function_flags: list[bool] = []
        self._class_flags: list[bool] = []
        self._analysed: set[int] = set()

    # ------------------------------------------------------------------ visiting

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._function_flags.append(False)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        if self._function_flags.pop():
            self._analyse(node, self.context.enclosing(cst.ClassDef))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._class_flags.append(False)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        # a loss module built in __init__ and called as self.X(...) in another method
        if self._class_flags.pop() and self._losses_of_class(node):
            for method in methods(node).values():
                if id(method) not in self._analysed:
                    self._analyse(method, node)

    def visit_Call(self, node: cst.Call) -> None:
        q = self.context.qualname(node.func)
        if q in FUNCTIONAL_LOSSES or q in LOSS_MODULES:
            if self._function_flags:
                self._function_flags[-1] = True
            if q in LOSS_MODULES and self._class_flags:
                self._class_flags[-1] = True

    def _analyse(self, func: cst.FunctionDef, cls: cst.ClassDef | None) -> None:
        self._analysed.add(id(func))
        held = self._losses_of_class(cls) if cls is not None else {}
        analysis = _FunctionAnalysis(self, func, held)
        analysis.run()
        for loss, key, mul in analysis.found:
            self._report(loss, key, mul)

    def _report(self, loss: LossCall, key: str, mul: cst.CSTNode) -> None:
        line = self._line(mul)
        mul_code = _short(self.context.code(mul))
        self.report(
            loss.call,
            f"`{key}` scales the logits at line {line} (`{mul_code}`) and is also passed "
            f"as `weight=` to {loss.label}: the classes are weighted twice",
            help=f"keep one of the two: drop the multiplication by `{key}`, or the `weight=` argument",
        )

    def _line(self, node: cst.CSTNode) -> int:
        if self._positions is None:
            wrapper = MetadataWrapper(self.context.module, unsafe_skip_copy=True)
            self._positions = wrapper.resolve(PositionProvider)
        return self._positions[node].start.line

    # ------------------------------------------------------ loss modules on self

    def _losses_of_class(self, cls: cst.ClassDef) -> dict[str, frozenset[str]]:
        """`self.ce = nn.CrossEntropyLoss(weight=W)` in __init__ -> {"ce": keys of W}."""
        cached = self._class_losses.get(id(cls))
        if cached is not None:
            return cached
        out: dict[str, frozenset[str]] = {}
        init = methods(cls).get("__init__")
        if init is not None:
            stored = _stored_locals(init)
            collector = _SelfAssignments()
            walk(init, collector)
            for attr, value in collector.assignments:
                weight = self._module_weight(value)
                if weight is None:
                    continue
                # only attributes of self mean the same vector in another method
                keys = set()
                key = weight_key(weight, self.context)
                if key is not None:
                    if key.startswith("self."):
                        keys.add(key)
                    else:
                        keys |= stored.get(key, set())
                if keys:
                    out[attr] = frozenset(out.get(attr, frozenset()) | keys)
        self._class_losses[id(cls)] = out
        return out

    def _module_weight(self, node: cst.CSTNode) -> cst.BaseExpression | None:
        """W of `nn.CrossEntropyLoss(..., weight=W)`, else None."""
        if isinstance(node, cst.Call) and self.context.qualname(node.func) in LOSS_MODULES:
            return _argument(node, 0, "weight")
        return None

    def loss_label(self, call: cst.Call) -> str | None:
        q = self.context.qualname(call.func)
        if q in FUNCTIONAL_LOSSES:
            return f"`{_short(self.context.code(call.func))}`"
        return None


# ---------------------------------------------------------------------- weights


def weight_key(node: cst.BaseExpression, context) -> str | None:
    """The vector an expression denotes: `self.weight[None, :].to(x.device)` -> "self.weight"."""
    while True:
        if isinstance(node, cst.Subscript):
            node = node.value
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in SAME_VECTOR_METHODS
        ):
            node = node.func.value
        elif (
            isinstance(node, cst.Call)
            and node.args
            and node.args[0].keyword is None
            and context.qualname(node.func) in TENSOR_FACTORIES
        ):
            node = node.args[0].value
        else:
            break
    name = dotted_name(node)
    if name is None or name in ("self", "None", "True", "False"):
        return None
    return name


class _SelfAssignments(Visitor):
    """`self.A = value` anywhere in a method (nested functions excluded)."""

    def __init__(self) -> None:
        self.assignments: list[tuple[str, cst.BaseExpression]] = []
        self.depth = 0

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.depth += 1
        return self.depth == 1

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.depth -= 1

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            attr = self_attribute(target.target)
            if attr is not None:
                self.assignments.append((attr, node.value))


def _stored_locals(init: cst.FunctionDef) -> dict[str, set[str]]:
    """Names stored on self in __init__: `self.weight = w` / register_buffer("weight", w)."""
    out: dict[str, set[str]] = {}
    collector = _SelfAssignments()
    walk(init, collector)
    for attr, value in collector.assignments:
        name = dotted_name(value)
        if isinstance(value, cst.Name) and name:
            out.setdefault(name, set()).add(f"self.{attr}")

    class _Buffers(Visitor):
        def visit_Call(self, node: cst.Call) -> None:
            if (
                isinstance(node.func, cst.Attribute)
                and node.func.attr.value == "register_buffer"
                and len(node.args) >= 2
                and isinstance(node.args[0].value, cst.SimpleString)
                and isinstance(node.args[1].value, cst.Name)
            ):
                attr = node.args[0].value.evaluated_value
                if isinstance(attr, str):
                    out.setdefault(node.args[1].value.value, set()).add(f"self.{attr}")

    walk(init, _Buffers())
    return out


def _keyword(call: cst.Call, name: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    return None


def _argument(call: cst.Call, position: int, name: str) -> cst.BaseExpression | None:
    """The argument bound to parameter `name`, passed by keyword or at `position`."""
    keyword = _keyword(call, name)
    if keyword is not None:
        return keyword
    positional = []
    for arg in call.args:
        if arg.keyword is not None or arg.star:
            break
        positional.append(arg.value)
    return positional[position] if len(positional) > position else None


def _short(code: str, limit: int = 60) -> str:
    code = " ".join(code.split())
    return code if len(code) <= limit else code[: limit - 3] + "..."


def _binding_counts(func: cst.FunctionDef) -> dict[str, int]:
    counter = _BindingCounter()
    for name in parameter_names(func):
        counter.counts[name] = counter.counts.get(name, 0) + 1
    walk(func.body, counter)
    return counter.counts


class _BindingCounter(BindingTargets):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def bind(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


# --------------------------------------------------------------- the dataflow


class _FunctionAnalysis:
    """May-reach propagation of "multiplied by weight K" through the locals of one function."""

    MAX_LOOP_ROUNDS = 3

    def __init__(self, rule: ClassWeightAppliedTwice, func: cst.FunctionDef, held) -> None:
        self.rule = rule
        self.context = rule.context
        self.func = func
        self.held = held  # loss modules on self: attr -> weight keys
        self.found: list[tuple[LossCall, str, cst.CSTNode]] = []
        self._seen: set[int] = set()
        counts = _binding_counts(func)
        params = set(parameter_names(func))
        # locals bound exactly once: aliases of a weight, and loss modules
        self.aliases: dict[str, str] = {}
        self.local_losses: dict[str, frozenset[str]] = {}
        for stmt in _simple_assignments(func):
            target, value = stmt
            if counts.get(target) != 1 or target in params:
                continue
            weight = rule._module_weight(value)
            if weight is not None:
                key = self.key(weight, raw=True)
                if key is not None:
                    self.local_losses[target] = frozenset({key})
                continue
            key = weight_key(value, self.context)
            if key is not None and key != target and key.startswith("self."):
                self.aliases[target] = key

    def key(self, node: cst.BaseExpression, raw: bool = False) -> str | None:
        key = weight_key(node, self.context)
        if key is None:
            return None
        return key if raw else self.aliases.get(key, key)

    def resolved(self, key: str) -> str:
        return self.aliases.get(key, key)

    def run(self) -> None:
        self.block(body_statements(self.func), {})

    # statements -> state after them, or None when every path leaves the function

    def block(self, statements, state: State | None) -> State | None:
        for stmt in statements:
            if state is None:
                return None
            state = self.statement(stmt, state)
        return state

    def statement(self, stmt: cst.CSTNode, state: State) -> State | None:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                state = self.small(small, state)
                if state is None:
                    return None
            return state
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
            return state
        if isinstance(stmt, cst.If):
            self.sinks(stmt.test, state)
            after_body = self.suite(stmt.body, dict(state))
            if stmt.orelse is None:
                after_else = state
            elif isinstance(stmt.orelse, cst.If):
                after_else = self.statement(stmt.orelse, dict(state))
            else:
                after_else = self.suite(stmt.orelse.body, dict(state))
            return _merge(after_body, after_else)
        if isinstance(stmt, (cst.For, cst.While)):
            if isinstance(stmt, cst.For):
                self.sinks(stmt.iter, state)
            else:
                self.sinks(stmt.test, state)
            entry = state
            for _ in range(self.MAX_LOOP_ROUNDS):
                loop_state = dict(entry)
                if isinstance(stmt, cst.For):
                    for name in _target_names(stmt.target):
                        loop_state.pop(name, None)
                after = self.suite(stmt.body, loop_state)
                merged = _merge(entry, after)
                if merged == entry:
                    break
                entry = merged
            if stmt.orelse is not None:
                entry = _merge(entry, self.suite(stmt.orelse.body, dict(entry)))
            return entry
        if isinstance(stmt, cst.With):
            for item in stmt.items:
                self.sinks(item.item, state)
            return self.suite(stmt.body, state)
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            after_body = self.suite(stmt.body, dict(state))
            handler_entry = _merge(state, after_body) or state
            results = [after_body]
            for handler in stmt.handlers:
                results.append(self.suite(handler.body, dict(handler_entry)))
            if stmt.orelse is not None and after_body is not None:
                results[0] = self.suite(stmt.orelse.body, dict(after_body))
            merged = None
            for r in results:
                merged = _merge(merged, r)
            if stmt.finalbody is not None:
                merged = self.suite(stmt.finalbody.body, dict(merged if merged is not None else handler_entry))
            return merged
        if isinstance(stmt, cst.Match):
            self.sinks(stmt.subject, state)
            merged = None
            for case in stmt.cases:
                merged = _merge(merged, self.suite(case.body, dict(state)))
            return _merge(merged, state)
        return state

    def suite(self, suite: cst.BaseSuite, state: State | None) -> State | None:
        if state is None:
            return None
        if isinstance(suite, cst.IndentedBlock):
            return self.block(suite.body, state)
        if isinstance(suite, cst.SimpleStatementSuite):
            for small in suite.body:
                state = self.small(small, state)
                if state is None:
                    return None
            return state
        return state

    def small(self, small: cst.BaseSmallStatement, state: State) -> State | None:
        if isinstance(small, cst.Assign):
            self.sinks(small.value, state)
            value = small.value
            for target in small.targets:
                t = target.target
                if (
                    isinstance(t, (cst.Tuple, cst.List))
                    and isinstance(value, (cst.Tuple, cst.List))
                    and len(t.elements) == len(value.elements)
                    and not any(isinstance(e, cst.StarredElement) for e in (*t.elements, *value.elements))
                ):
                    # `a, b = x, y * w`: element by element (evaluated before binding)
                    taints = [self.taint(e.value, state) for e in value.elements]
                    for el, taint in zip(t.elements, taints):
                        _assign(state, el.value, taint)
                else:
                    _assign(state, t, self.taint(value, state))
            return state
        if isinstance(small, cst.AnnAssign):
            if small.value is not None:
                self.sinks(small.value, state)
                _assign(state, small.target, self.taint(small.value, state))
            return state
        if isinstance(small, cst.AugAssign):
            self.sinks(small.value, state)
            if isinstance(small.target, cst.Name):
                name = small.target.value
                taint = dict(state.get(name, {}))
                taint.update(self.taint(small.value, state))
                if isinstance(small.operator, cst.MultiplyAssign):
                    key = self.key(small.value)
                    if key is not None:
                        taint[key] = small
                if taint:
                    state[name] = taint
            return state
        if isinstance(small, cst.Expr):
            self.sinks(small.value, state)
            call = small.value
            # `x.mul_(w)` changes x in place
            if (
                isinstance(call, cst.Call)
                and isinstance(call.func, cst.Attribute)
                and isinstance(call.func.value, cst.Name)
                and call.func.attr.value in ("mul_", "multiply_")
            ):
                name = call.func.value.value
                taint = dict(state.get(name, {}))
                taint.update(self.taint(call, state))
                state[name] = taint
            return state
        if isinstance(small, (cst.Return, cst.Raise)):
            value = small.value if isinstance(small, cst.Return) else small.exc
            if value is not None:
                self.sinks(value, state)
            return None
        if isinstance(small, cst.Del):
            for name in _target_names(small.target):
                state.pop(name, None)
            return state
        return state

    # expressions

    def taint(self, expr: cst.CSTNode, state: State) -> Taint:
        collector = _TaintCollector(self, state)
        walk(expr, collector)
        return collector.taint

    def product_key(self, node: cst.CSTNode) -> list[str]:
        """Weights that node multiplies by, when node is a multiplication."""
        operands: list[cst.BaseExpression] = []
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
            operands = [node.left, node.right]
        elif isinstance(node, cst.Call):
            if isinstance(node.func, cst.Attribute) and node.func.attr.value in MUL_METHODS:
                if self.context.qualname(node.func) in ("torch.mul", "torch.multiply"):
                    operands = [a.value for a in node.args[:2]]
                else:
                    operands = [node.func.value, *(a.value for a in node.args[:1])]
            elif self.context.qualname(node.func) in ("torch.mul", "torch.multiply"):
                operands = [a.value for a in node.args[:2]]
        keys = []
        for operand in operands:
            key = self.key(operand)
            if key is not None:
                keys.append(key)
        return keys

    def loss_call(self, call: cst.Call) -> LossCall | None:
        if not call.args or call.args[0].keyword is not None:
            inp = _keyword(call, "input")
        else:
            inp = call.args[0].value
        if inp is None:
            return None
        label = self.rule.loss_label(call)
        if label is not None:
            weight = _argument(call, 2, "weight")  # cross_entropy(input, target, weight)
            key = self.key(weight) if weight is not None else None
            return LossCall(call, inp, frozenset({key}), label) if key else None
        func = call.func
        # nn.CrossEntropyLoss(weight=w)(logits, target)
        weight = self.rule._module_weight(func)
        if weight is not None:
            key = self.key(weight)
            label = f"`{_short(self.context.code(func.func))}`"
            return LossCall(call, inp, frozenset({key}), label) if key else None
        # criterion(logits, target), criterion = nn.CrossEntropyLoss(weight=w)
        if isinstance(func, cst.Name) and func.value in self.local_losses:
            keys = frozenset(self.resolved(k) for k in self.local_losses[func.value])
            return LossCall(call, inp, keys, f"the loss `{func.value}`")
        # self.ce(logits, target), self.ce built in __init__ with weight=
        attr = self_attribute(func)
        if attr is not None and attr in self.held:
            return LossCall(call, inp, self.held[attr], f"`self.{attr}` (built in `__init__`)")
        return None

    def sinks(self, expr: cst.CSTNode, state: State) -> None:
        finder = _CallFinder()
        walk(expr, finder)
        for call in finder.calls:
            if id(call) in self._seen:
                continue
            loss = self.loss_call(call)
            if loss is None:
                continue
            taint = self.taint(loss.input, state)
            for key in sorted(loss.keys):
                if key in taint:
                    self._seen.add(id(call))
                    self.found.append((loss, key, taint[key]))
                    break


class _TaintCollector(Visitor):
    """Weights multiplied into an expression: directly, or through tainted locals."""

    def __init__(self, analysis: _FunctionAnalysis, state: State) -> None:
        self.analysis = analysis
        self.state = state
        self.taint: Taint = {}

    def _add(self, taint: Taint) -> None:
        for key, node in taint.items():
            self.taint.setdefault(key, node)

    def visit_Name(self, node: cst.Name) -> None:
        if node.value in self.state:
            self._add(self.state[node.value])

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)  # the attribute's own name is not a local
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        walk(node.value, self)  # the keyword is not a local
        return False

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        for key in self.analysis.product_key(node):
            self.taint.setdefault(key, node)

    def visit_Call(self, node: cst.Call) -> None:
        for key in self.analysis.product_key(node):
            self.taint.setdefault(key, node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


class _CallFinder(Visitor):
    def __init__(self) -> None:
        self.calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


def _merge(a: State | None, b: State | None) -> State | None:
    if a is None:
        return None if b is None else dict(b)
    if b is None:
        return dict(a)
    out: State = {name: dict(t) for name, t in a.items()}
    for name, taint in b.items():
        merged = out.setdefault(name, {})
        for key, node in taint.items():
            merged.setdefault(key, node)
    return out


def _assign(state: State, target: cst.BaseExpression, taint: Taint) -> None:
    for name in _target_names(target):
        if taint:
            state[name] = dict(taint)
        else:
            state.pop(name, None)


def _target_names(target: cst.CSTNode) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [n for el in target.elements for n in _target_names(el.value)]
    if isinstance(target, cst.StarredElement):
        return _target_names(target.value)
    if isinstance(target, cst.Del):
        return _target_names(target.target)
    return []


def _simple_assignments(func: cst.FunctionDef):
    """(name, value) of every single-target `name = value` in func, nested defs excluded."""

    class _Collect(Visitor):
        def __init__(self) -> None:
            self.out: list[tuple[str, cst.BaseExpression]] = []

        def visit_Assign(self, node: cst.Assign) -> None:
            if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
                self.out.append((node.targets[0].target.value, node.value))

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            return False

        def visit_Lambda(self, node: cst.Lambda) -> bool:
            return False

    collector = _Collect()
    walk(func.body, collector)
    return collector.out
