"""
## What it does
Flags a loss tensor that is summed or collected across the iterations of a loop with its
autograd graph attached: `total += loss`, `total = total + loss`, `losses.append(loss)`
(also `total += loss * x.size(0)`), where `loss` was built in the same loop body and is
either the tensor that the loop calls `.backward()` on (`loss.backward()`,
`(loss / accum).backward()`, `scaler.scale(loss).backward()`, `accelerator.backward(loss)`)
or the output of a loss function (`criterion(out, y)`, `F.cross_entropy(out, y)`) in a
training loop, and the accumulator lives outside the loop.

## Why is this bad?
A tensor that requires grad carries its `grad_fn`, and `total + loss` records a new node
that points at it. The accumulator therefore keeps every iteration's graph alive (the
PyTorch FAQ, "Don't accumulate history across your training loop"): memory grows with the
number of iterations until the run dies with an out-of-memory error, usually hours in.
The number you wanted for logging needs none of that history.

## Example
```python
total_loss = 0
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    total_loss += loss
```

## Use instead
```python
total_loss = 0
for x, y in loader:
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
    total_loss += loss.detach()  # or loss.item() for a Python float
```

## Fix safety
Safe. The fix wraps the accumulated loss in `.detach()`: the accumulator stays a tensor of
the same dtype, device and value, and only loses the graph. The rule does not fire when the
accumulator (or anything computed from it in the same function) is later passed to
`.backward()`, `torch.autograd.backward`/`grad` or a `manual_backward`-style call, the one
case where the graph is wanted (summed-loss gradient accumulation,
`torch.stack(losses).mean().backward()`). `.item()` would also free the graph but turns the
accumulator into a Python float, which breaks later tensor calls, so the fix does not use it.

## Known false positives
- A sum that is deliberately kept with its graph and backwarded somewhere this function
  cannot see. The rule does not fire when the accumulator, or anything computed from it in
  the same function (`objective = sum(losses) / n`, `for l in losses:`), reaches
  `.backward()`, `torch.autograd.backward`/`grad`, `manual_backward` or
  `accelerator.backward(...)`. When the only evidence is a loss function's output (no
  `.backward()` of that loss in the loop), it also stays quiet when the accumulator is an
  attribute, is returned or yielded, or is passed to a call other than printing, logging
  or arithmetic, since a caller may backpropagate through it. With `.backward()` of the
  loss in the loop the graph is already freed, so a later backward of the sum would fail.
- A `criterion`/`loss_fn` that returns a Python number rather than a tensor, accumulated in
  a training loop: the report is wrong and `.detach()` would fail on the float.
- A short inner loop (over heads or micro-batches within one step) holds its graphs only
  until the step ends; the rule still reports it, and the fix is still harmless.

It stays quiet under `torch.no_grad()`, `torch.inference_mode()` or
`torch.set_grad_enabled(False)` (also as decorators), when the loss was rebound from a
detached value (`loss = loss.item()`), when the accumulator is reset unconditionally in the
same loop body, and when the loss is backwarded with `retain_graph=True`/`create_graph=True`.

Not seen (false negatives): accumulation inside helper functions called from the loop,
meters (`meter.update(loss)`), dictionaries of losses (`logs["loss"] += loss`), in-place
`total.add_(loss)`, evaluation loops that return the summed loss (TL108 reports evaluation
loops without `torch.no_grad()`), and a loss whose backward happens only inside a helper
(`loss = compute_loss(...); trainer_step(loss); total += loss`) unless the loss comes from a
loss function in a training loop.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import dataclass, field

import libcst as cst
from trainlint.rules._loops import (
    BACKWARD,
    CRITERION,
    LOADER,
    OPTIMIZER_STEP,
    Roles,
    constructor_role,
    is_batch_loop,
    loop_events,
    role_from_name,
)

from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor
from trainlint.traverse import walk

FUNCTIONAL = "torch.nn.functional."
FUNCTIONAL_LOSSES = re.compile(r"loss|cross_entropy|kl_div")
# Text that every report needs: a backward call or a loss function / criterion.
EVIDENCE_WORDS = ("backward", "loss", "criterion", "cross_entropy", "kl_div")
EVIDENCE = re.compile("|".join(EVIDENCE_WORDS), re.IGNORECASE)

NO_GRAD_CONTEXTS = frozenset({"no_grad", "inference_mode"})
# `.item()`, `.detach()` ... anywhere on the way to a binding's value: the name holds no graph.
DETACHING_METHODS = frozenset({"item", "detach", "detach_", "tolist", "cpu", "numpy"})
DETACHING_FUNCTIONS = frozenset({"float", "int"})
# Receivers of `X.backward(loss)` that take the loss as an argument (Accelerate, Fabric,
# Lightning's `self.manual_backward`, DeepSpeed engines, apex-style wrappers).
BACKWARD_CARRIERS = re.compile(
    r"^(self|accelerator|fabric|trainer|engine|runner|strategy|model|model_engine|"
    r"deepspeed|ds_engine|amp|precision|precision_plugin|wrapper)$|accelerat|fabric|engine",
    re.IGNORECASE,
)
# Calls that take the accumulator without keeping it for backward: printing, logging,
# arithmetic and reductions (whose results the dataflow closure follows anyway).
HARMLESS_CALLS = frozenset(
    {
        "print", "float", "int", "str", "repr", "round", "len", "format", "sum", "max", "min",
        "abs", "sorted", "list", "tuple", "enumerate", "zip", "isinstance", "stack", "cat",
        "mean", "std", "var", "tensor", "as_tensor", "array", "asarray", "item", "info",
        "debug", "warning", "warn", "error", "log", "write", "add_scalar", "add_scalars",
        "set_postfix", "set_postfix_str", "set_description", "set_description_str",
    }
)
# Builtins are never loss functions (and need no role lookup).
NOT_LOSSES = frozenset(dir(builtins))
HARMLESS_CALL_PATTERN = re.compile(r"^(log_\w+|print\w*|report\w*)$")


class LossAccumulatesGraph(Rule):
    __doc__ = __doc__
    code = "TL102"
    name = "loss-accumulates-graph"
    message = (
        "`{acc}` accumulates `{value}` across iterations with its autograd graph: every "
        "iteration's graph stays alive (memory grows until OOM)"
    )
    fix_applicability = Applicability.SAFE
    tokens = (tuple(f"*{word}*" for word in EVIDENCE_WORDS),)

    VALID = [
        # logged as a number / detached
        Valid(
            """
            total = 0.0
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                total += loss.item()
                others.append(loss.detach())
                floats.append(float(loss))
            """
        ),
        # deliberate summed loss: the accumulator is backwarded after the loop
        Valid(
            """
            loss_total = 0
            for x, y in chunks:
                loss = criterion(model(x), y)
                loss_total = loss_total + loss
            loss_total.backward()
            """
        ),
        # a list of losses reduced and backwarded
        Valid(
            """
            import torch
            losses = []
            for head in heads:
                loss = criterion(head(x), y)
                losses.append(loss)
            torch.stack(losses).mean().backward()
            """
        ),
        # ... through an intermediate name
        Valid(
            """
            losses = []
            for x, y in loader:
                losses.append(criterion(model(x), y))
            objective = sum(losses) / len(losses)
            scaler.scale(objective).backward()
            """
        ),
        # periodic backward of the accumulated loss inside the loop
        Valid(
            """
            acc = 0
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                acc = acc + loss
                if (i + 1) % 4 == 0:
                    acc.backward()
                    acc = 0
            """
        ),
        # no graph: under no_grad / inference_mode / decorator
        Valid(
            """
            import torch
            total = 0
            with torch.no_grad():
                for x, y in val_loader:
                    loss = criterion(model(x), y)
                    total += loss
            """
        ),
        Valid(
            """
            import torch

            @torch.inference_mode()
            def evaluate(model, loader):
                total = 0
                for x, y in loader:
                    loss = criterion(model(x), y)
                    total += loss
                print(total)
            """
        ),
        Valid(
            """
            import torch
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                with torch.no_grad():
                    running += loss
            """
        ),
        # the loss was rebound from a detached value
        Valid(
            """
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                loss = loss.detach()
                total += loss
            """
        ),
        # accumulator reset in every iteration: nothing accumulates across iterations
        Valid(
            """
            for x, y in loader:
                total = 0
                loss = criterion(model(x), y)
                loss.backward()
                total += loss
            """
        ),
        # graph deliberately retained
        Valid(
            """
            for x in batches:
                loss = model(x).sum()
                loss.backward(retain_graph=True)
                kept.append(loss)
            """
        ),
        # multi-head loss summed in forward (no training loop: the graph is needed)
        Valid(
            """
            import torch.nn.functional as F
            class Heads:
                def forward(self, feats, y):
                    total = 0
                    for head, f in zip(self.heads, feats):
                        loss = F.cross_entropy(head(f), y)
                        total += loss
                    return total
            """
        ),
        # loss function output in a batch loop, but the sum is returned (may be backwarded
        # by the caller)
        Valid(
            """
            def full_batch_loss(model, loader):
                total = 0
                for x, y in loader:
                    total += criterion(model(x), y)
                return total
            """
        ),
        # not a loss: the backwarded tensor is something else and the value is a model output
        Valid(
            """
            for x, y in loader:
                out = model(x)
                loss = criterion(out, y)
                loss.backward()
                outputs.append(out)
            """
        ),
        # the loss does not come from this loop body
        Valid(
            """
            for x in batches:
                total += loss
                loss.backward()
            """
        ),
        # HF Trainer style: the step helper returns a detached loss
        Valid(
            """
            for step, inputs in enumerate(epoch_iterator):
                tr_loss_step = self.training_step(model, inputs)
                tr_loss += tr_loss_step
            """
        ),
        # the accumulated tensor is a gradient-enabled meta objective (autograd.grad)
        Valid(
            """
            import torch
            meta = 0
            for task in tasks:
                loss = criterion(learner(task.x), task.y)
                meta = meta + loss
            grads = torch.autograd.grad(meta, params)
            """
        ),
        # truncated BPTT: the inner sum is the loss that gets backwarded
        Valid(
            """
            for x, y in loader:
                loss = 0
                for t in range(x.size(0)):
                    out, h = rnn(x[t], h)
                    step_loss = criterion(out, y[t])
                    loss += step_loss
                loss.backward()
            """
        ),
        # the summed losses go to a helper that may backpropagate through them
        Valid(
            """
            for x, y in train_loader:
                losses = []
                for head in heads:
                    losses.append(criterion(head(x), y))
                backward_and_step(sum(losses))
            """
        ),
        # every collected loss is backwarded later
        Valid(
            """
            losses = []
            for x, y in train_loader:
                loss = criterion(model(x), y)
                losses.append(loss)
            for item in losses:
                item.backward()
            """
        ),
        # gradients globally disabled; a value reduced from `.data`
        Valid(
            """
            import torch
            torch.set_grad_enabled(False)
            for x, y in loader:
                loss = criterion(model(x), y)
                total += loss
            """
        ),
        Valid(
            """
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                reduced = reduce_tensor(loss.data)
                total += reduced
            """
        ),
    ]
    INVALID = [
        # the PyTorch FAQ's example
        Invalid(
            """
            total_loss = 0
            for i in range(10000):
                optimizer.zero_grad()
                output = model(input)
                loss = criterion(output)
                loss.backward()
                optimizer.step()
                total_loss += loss
            """,
            fixed="""
            total_loss = 0
            for i in range(10000):
                optimizer.zero_grad()
                output = model(input)
                loss = criterion(output)
                loss.backward()
                optimizer.step()
                total_loss += loss.detach()
            """,
            line=8,
        ),
        # list of losses, plain `acc = acc + loss`, a weighted sum, AMP backward
        Invalid(
            """
            import torch as T
            from torch.nn import functional as F

            def train(model, train_loader, opt, scaler):
                losses, running, seen = [], 0.0, 0
                for x, y in train_loader:
                    with T.autocast("cuda"):
                        loss = F.cross_entropy(model(x), y)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    losses.append(loss)
                    running = running + loss * x.size(0)
                    seen += x.size(0)
                print(T.stack(losses).mean(), running / seen)
            """,
            fixed="""
            import torch as T
            from torch.nn import functional as F

            def train(model, train_loader, opt, scaler):
                losses, running, seen = [], 0.0, 0
                for x, y in train_loader:
                    with T.autocast("cuda"):
                        loss = F.cross_entropy(model(x), y)
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                    losses.append(loss.detach())
                    running = running + loss.detach() * x.size(0)
                    seen += x.size(0)
                print(T.stack(losses).mean(), running / seen)
            """,
            line=12,
            count=2,
        ),
        # criterion output (not the backwarded tensor) in a training loop; periodic reset
        Invalid(
            """
            import torch.nn as nn
            ce = nn.CrossEntropyLoss()
            running_cls = 0
            for step, (x, y) in enumerate(dl):
                out, aux = model(x)
                cls_loss = ce(out, y)
                loss = cls_loss + 0.4 * ce(aux, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                running_cls += cls_loss
                if step % 100 == 99:
                    print(running_cls / 100)
                    running_cls = 0
            """,
            fixed="""
            import torch.nn as nn
            ce = nn.CrossEntropyLoss()
            running_cls = 0
            for step, (x, y) in enumerate(dl):
                out, aux = model(x)
                cls_loss = ce(out, y)
                loss = cls_loss + 0.4 * ce(aux, y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                running_cls += cls_loss.detach()
                if step % 100 == 99:
                    print(running_cls / 100)
                    running_cls = 0
            """,
            line=11,
        ),
        # Accelerate-style backward, loss from the model output, attribute accumulator
        Invalid(
            """
            class Loop:
                def run(self, loader):
                    for batch in loader:
                        outputs = self.model(**batch)
                        loss = outputs.loss / self.accum
                        self.accelerator.backward(loss)
                        self.epoch_losses.append(loss)
            """,
            fixed="""
            class Loop:
                def run(self, loader):
                    for batch in loader:
                        outputs = self.model(**batch)
                        loss = outputs.loss / self.accum
                        self.accelerator.backward(loss)
                        self.epoch_losses.append(loss.detach())
            """,
            line=7,
        ),
        # the transfer-learning tutorial without `.item()`: the graph exists in the train phase
        Invalid(
            """
            import torch
            for phase in ["train", "val"]:
                running_loss = 0.0
                for inputs, labels in dataloaders[phase]:
                    with torch.set_grad_enabled(phase == "train"):
                        loss = criterion(model(inputs), labels)
                        if phase == "train":
                            loss.backward()
                            optimizer.step()
                    running_loss += loss * inputs.size(0)
            """,
            fixed="""
            import torch
            for phase in ["train", "val"]:
                running_loss = 0.0
                for inputs, labels in dataloaders[phase]:
                    with torch.set_grad_enabled(phase == "train"):
                        loss = criterion(model(inputs), labels)
                        if phase == "train":
                            loss.backward()
                            optimizer.step()
                    running_loss += loss.detach() * inputs.size(0)
            """,
            line=10,
        ),
        # Lightning manual optimisation over chunks, in a while loop
        Invalid(
            """
            class Module:
                def training_step(self, batch, batch_idx):
                    total, i = 0, 0
                    while i < len(batch):
                        loss = self.compute(batch[i])
                        self.manual_backward(loss)
                        total = loss + total
                        i += 1
                    self.log("loss", total)
            """,
            fixed="""
            class Module:
                def training_step(self, batch, batch_idx):
                    total, i = 0, 0
                    while i < len(batch):
                        loss = self.compute(batch[i])
                        self.manual_backward(loss)
                        total = loss.detach() + total
                        i += 1
                    self.log("loss", total)
            """,
            line=7,
        ),
        # an evaluation loop without no_grad that only prints the sum
        Invalid(
            """
            def validate(model, val_loader, loss_fn):
                model.eval()
                val_loss = 0
                for x, y in val_loader:
                    val_loss += loss_fn(model(x), y)
                print(f"val loss {val_loss / len(val_loader):.3f}")
            """,
            fixed="""
            def validate(model, val_loader, loss_fn):
                model.eval()
                val_loss = 0
                for x, y in val_loader:
                    val_loss += loss_fn(model(x), y).detach()
                print(f"val loss {val_loss / len(val_loader):.3f}")
            """,
            line=5,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._roles: Roles | None = None
        self._scopes: dict[int, _ScopeFacts] = {}
        self._loss_bound: frozenset[str] | None = None

    @property
    def roles(self) -> Roles:
        if self._roles is None:
            self._roles = Roles(self.context.module, self.context.imports)
        return self._roles

    # ------------------------------------------------------------------ screen

    @classmethod
    def screen(cls, index) -> bool:
        loops = [
            (n.lineno, n.end_lineno or n.lineno)
            for kind in (ast.For, ast.While, ast.AsyncFor)
            for n in index.nodes(kind)
        ]
        if not loops:
            return False
        lines = [n.lineno for n in index.nodes(ast.AugAssign) if isinstance(n.op, ast.Add)]
        lines += [
            n.lineno
            for n in index.nodes(ast.Assign)
            if isinstance(n.value, ast.BinOp) and isinstance(n.value.op, ast.Add)
        ]
        lines += [
            n.lineno
            for n in index.nodes(ast.Expr)
            if isinstance(n.value, ast.Call)
            and isinstance(n.value.func, ast.Attribute)
            and n.value.func.attr == "append"
        ]
        if not any(start <= line <= end for line in lines for start, end in loops):
            return False
        called = index.called
        if "backward" in called or "manual_backward" in called:
            return True
        # no backward: only a loss function's output in a training or batch loop can report
        if not any(EVIDENCE.search(name) for name in called):
            return False
        return (
            "step" in called
            or "DataLoader" in called
            or any(role_from_name(n) == LOADER for n in index.names | index.attributes)
        )

    # ------------------------------------------------------------------ visits

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, cst.AddAssign):
            acc = dotted_name(node.target)
            if acc is not None:
                self._check(node, acc, node.value)

    def visit_Assign(self, node: cst.Assign) -> None:
        if len(node.targets) != 1:
            return
        acc = dotted_name(node.targets[0].target)
        value = node.value
        if acc is None or not isinstance(value, cst.BinaryOperation):
            return
        if not isinstance(value.operator, cst.Add):
            return
        left, right = _mentions(value.left, acc), _mentions(value.right, acc)
        if left and not right:
            self._check(node, acc, value.right)
        elif right and not left:
            self._check(node, acc, value.left)

    def visit_Expr(self, node: cst.Expr) -> None:
        call = node.value
        if not (
            isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value == "append"
            and len(call.args) == 1
            and call.args[0].keyword is None
            and not call.args[0].star
        ):
            return
        acc = dotted_name(call.func.value)
        if acc is not None:
            self._check(node, acc, call.args[0].value)

    # ------------------------------------------------------------------ analysis

    def _check(self, stmt: cst.CSTNode, acc: str, value: cst.BaseExpression) -> None:
        leaves = [
            leaf
            for leaf in _leaves(value)
            if not _mentions(leaf, acc) and (isinstance(leaf, cst.Name) or self._is_loss_call(leaf))
        ]
        if not leaves:
            return
        where = self._where()
        if where is None:
            return
        scope, loops = where
        if self._no_grad_around():
            return
        for leaf in leaves:
            if self._judge(stmt, acc, leaf, scope, loops):
                self._report(acc, leaf)
                return

    def _judge(self, stmt, acc, leaf, scope, loops) -> bool:
        loss = leaf.value if isinstance(leaf, cst.Name) else None
        scan = _LoopScan(stmt, acc, loss, self)
        walk(loops[0].body, scan)
        if scan.unconditional_reset or scan.no_grad_binding or scan.retains_graph:
            return False
        strong = False
        if loss is not None:
            before = [b for b in scan.bindings if b.before]
            if not any(b.kind == "assign" for b in before) or any(b.detached for b in before):
                return False
            strong = scan.backwarded
            if not strong and not any(
                b.kind == "assign" and self._contains_loss_call(b.value) for b in before
            ):
                return False
        # weak evidence (a loss function's output): only in a training or batch loop, and
        # only when the accumulator cannot reach a later backward outside this function
        if not strong and ("." in acc or not any(self._training_loop(l) for l in loops)):
            return False
        facts = self._scope_facts(scope)
        if facts.grad_disabled:
            return False
        closure = facts.closure(acc)
        if facts.backwarded & closure:
            return False  # the sum is backwarded: deliberate
        if strong:
            return True
        return not (any("." in name for name in closure) or facts.escapes(closure, scope))

    def _report(self, acc: str, leaf: cst.BaseExpression) -> None:
        shown = self.context.code(leaf)
        if len(shown) > 40 or "\n" in shown:
            shown = shown.split("(", 1)[0] + "(...)"
        detached = cst.Call(func=cst.Attribute(value=leaf, attr=cst.Name("detach")))
        self.report(
            leaf,
            self.message.format(acc=acc, value=shown),
            fix=self.make_fix(f"Accumulate `{shown}.detach()`", (leaf, detached)),
            help=(
                f"accumulate `{shown}.detach()` (or `.item()` for a Python float); if the "
                f"sum is meant to be backwarded, call `.backward()` on `{acc}`"
            ),
        )

    def _where(self) -> tuple[cst.CSTNode, list[cst.CSTNode]] | None:
        """The enclosing scope (function or module) and the loops between it and the
        statement, innermost first; None outside loops or in a loop's `else`."""
        stack = self.context.stack
        loops: list[cst.CSTNode] = []
        for k in range(len(stack) - 1, -1, -1):
            node = stack[k]
            if isinstance(node, (cst.For, cst.While)):
                if k + 1 < len(stack) and stack[k + 1] is node.body:
                    loops.append(node)
            elif isinstance(node, (cst.FunctionDef, cst.Module)):
                return (node, loops) if loops else None
            elif isinstance(node, (cst.ClassDef, cst.Lambda)):
                return None
        return None

    def _no_grad_around(self) -> bool:
        for node in self.context.stack:
            if isinstance(node, cst.With) and any(_is_no_grad(i.item) for i in node.items):
                return True
            if isinstance(node, cst.FunctionDef) and any(
                _is_no_grad(d.decorator) for d in node.decorators
            ):
                return True
        return False

    def _scope_facts(self, scope: cst.CSTNode) -> _ScopeFacts:
        facts = self._scopes.get(id(scope))
        if facts is None:
            collector = _ScopeCollector(self.context.imports)
            walk(scope, collector)
            facts = collector.facts
            self._scopes[id(scope)] = facts
        return facts

    def _training_loop(self, loop: cst.CSTNode) -> bool:
        if is_batch_loop(loop, self.roles):
            return True
        events = loop_events(loop, self.roles, self.context.imports)
        return any(e.kind in (BACKWARD, OPTIMIZER_STEP) for e in events)

    def _is_loss_call(self, node: cst.CSTNode) -> bool:
        if not isinstance(node, cst.Call):
            return False
        func = node.func
        if isinstance(func, cst.Call):  # nn.CrossEntropyLoss()(out, y)
            return constructor_role(self.context.qualname(func.func)) == CRITERION
        if isinstance(func, cst.Name) and func.value in NOT_LOSSES:
            return False
        qualname = self.context.qualname(func)
        if qualname is not None and qualname.startswith(FUNCTIONAL):
            return FUNCTIONAL_LOSSES.search(qualname[len(FUNCTIONAL):]) is not None
        name = dotted_name(func)
        if name is None:
            return False
        # Roles costs a walk of the whole tree: ask it only when it could say "criterion",
        # i.e. the name is spelled like one or is assigned from a `...Loss(...)` call.
        if role_from_name(name) != CRITERION and name not in self._loss_bound_names():
            return False
        return self.roles.of(func) == CRITERION

    def _loss_bound_names(self) -> frozenset[str]:
        if self._loss_bound is None:
            module = self.context.module
            self._loss_bound = frozenset(_names_assigned_from_loss_constructors(module))
        return self._loss_bound

    def _contains_loss_call(self, value: cst.CSTNode) -> bool:
        finder = _Calls()
        walk(value, finder)
        return any(self._is_loss_call(c) for c in finder.calls)


# ---------------------------------------------------------------------- helpers


def _leaves(value: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The operands of a product/quotient (`loss * x.size(0)`), or the value itself, that are
    a plain name or a call."""
    if isinstance(value, cst.BinaryOperation) and isinstance(
        value.operator, (cst.Multiply, cst.Divide)
    ):
        return [*_leaves(value.left), *_leaves(value.right)]
    if isinstance(value, (cst.Name, cst.Call)):
        return [value]
    return []


def _refs(node: cst.CSTNode) -> set[str]:
    """Every name and dotted prefix read in node: `a.b.c` gives a, a.b, a.b.c."""
    collector = _Refs()
    walk(node, collector)
    return collector.refs


class _Refs(Visitor):
    def __init__(self) -> None:
        self.refs: set[str] = set()

    def visit_Name(self, node: cst.Name) -> None:
        self.refs.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        name = dotted_name(node)
        if name is None:
            return True
        parts = name.split(".")
        self.refs.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        return False


def _mentions(node: cst.CSTNode, name: str) -> bool:
    return name in _refs(node)


def _last_name(expr: cst.BaseExpression) -> str | None:
    if isinstance(expr, cst.Call):
        expr = expr.func
    if isinstance(expr, cst.Attribute):
        return expr.attr.value
    if isinstance(expr, cst.Name):
        return expr.value
    return None


def _is_false(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


def _is_no_grad(expr: cst.BaseExpression) -> bool:
    """`torch.no_grad()`, `inference_mode()`, `torch.set_grad_enabled(False)`, bare or called."""
    name = _last_name(expr)
    if name in NO_GRAD_CONTEXTS:
        return True
    return (
        name == "set_grad_enabled"
        and isinstance(expr, cst.Call)
        and bool(expr.args)
        and _is_false(expr.args[0].value)
    )


def _detached(value: cst.CSTNode) -> bool:
    """Whether a value holds no graph: `.item()`, `.detach()`, `.data`, `float(...)` on the
    way to it, or a function applied to such a value."""
    node = value
    while True:
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute):
                if func.attr.value in DETACHING_METHODS:
                    return True
                node = func.value
                continue
            if isinstance(func, cst.Name) and func.value in DETACHING_FUNCTIONS:
                return True
            return any(_detached(a.value) for a in node.args)
        if isinstance(node, cst.Attribute):
            if node.attr.value == "data":
                return True
            node = node.value
            continue
        if isinstance(node, cst.Subscript):
            node = node.value
            continue
        if isinstance(node, cst.BinaryOperation):
            return _detached(node.left) or _detached(node.right)
        return False


def _backwarded_expressions(call: cst.Call, imports) -> tuple[list[cst.CSTNode], bool]:
    """The tensors a call backpropagates through, and whether it keeps the graph
    (`retain_graph=True` / `create_graph=True`)."""
    func = call.func
    keeps = any(
        a.keyword is not None
        and a.keyword.value in ("retain_graph", "create_graph")
        and not _is_false(a.value)
        and not (isinstance(a.value, cst.Name) and a.value.value == "None")
        for a in call.args
    )
    positional = [a.value for a in call.args if a.keyword is None]
    named = [
        a.value
        for a in call.args
        if a.keyword is not None and a.keyword.value in ("tensors", "outputs", "loss")
    ]
    qualname = imports.qualname(func) or dotted_name(func) or ""
    if qualname.endswith(("autograd.backward", "autograd.grad")):
        return [*positional[:1], *named], keeps
    if not isinstance(func, cst.Attribute):
        return [], keeps
    method = func.attr.value
    if method == "manual_backward":
        return [*positional[:1], *named], keeps
    if method != "backward":
        return [], keeps
    out: list[cst.CSTNode] = [func.value]
    receiver = dotted_name(func.value)
    if receiver is not None and (
        BACKWARD_CARRIERS.search(receiver.rsplit(".", 1)[-1]) or named
    ):
        out += [*positional[:1], *named]
    return out, keeps


@dataclass
class _Binding:
    kind: str  # "assign" (a plain `name = value`), "aug", or "other" (for/with/walrus)
    value: cst.CSTNode | None
    before: bool
    detached: bool


class _LoopScan(Visitor):
    """What a loop body does to the loss name and the accumulator, in source order."""

    def __init__(self, stmt: cst.CSTNode, acc: str, loss: str | None, rule: LossAccumulatesGraph):
        self.stmt = stmt
        self.acc = acc
        self.loss = loss
        self.imports = rule.context.imports
        self.seen_stmt = False
        self.path: list[cst.CSTNode] = []
        self.no_grad = 0
        self.bindings: list[_Binding] = []
        self.no_grad_binding = False
        self.unconditional_reset = False
        self.backwarded = False
        self.retains_graph = False

    # structure
    def on_visit(self, node: cst.CSTNode) -> bool:
        if node is self.stmt:
            self.seen_stmt = True
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        return super().on_visit(node)

    def _push(self, node: cst.CSTNode) -> None:
        self.path.append(node)

    def _pop(self, node: cst.CSTNode) -> None:
        if self.path and self.path[-1] is node:
            self.path.pop()

    def visit_If(self, node: cst.If) -> None:
        self._push(node)

    def leave_If(self, original_node: cst.If) -> None:
        self._pop(original_node)

    def visit_Try(self, node: cst.Try) -> None:
        self._push(node)

    def leave_Try(self, original_node: cst.Try) -> None:
        self._pop(original_node)

    def visit_Match(self, node: cst.Match) -> None:
        self._push(node)

    def leave_Match(self, original_node: cst.Match) -> None:
        self._pop(original_node)

    def visit_While(self, node: cst.While) -> None:
        self._push(node)

    def leave_While(self, original_node: cst.While) -> None:
        self._pop(original_node)

    def visit_For(self, node: cst.For) -> None:
        self._bind_targets(node.target, None, "other")
        self._push(node)

    def leave_For(self, original_node: cst.For) -> None:
        self._pop(original_node)

    def visit_With(self, node: cst.With) -> None:
        if any(_is_no_grad(item.item) for item in node.items):
            self.no_grad += 1
        for item in node.items:
            if item.asname is not None:
                self._bind_targets(item.asname.name, item.item, "other")

    def leave_With(self, original_node: cst.With) -> None:
        if any(_is_no_grad(item.item) for item in original_node.items):
            self.no_grad -= 1

    # bindings
    def _bind_targets(self, target: cst.CSTNode, value: cst.CSTNode | None, kind: str) -> None:
        for t in _flatten(target):
            name = dotted_name(t)
            if name is None:
                continue
            if self.loss is not None and name == self.loss:
                detached = kind == "assign" and value is not None and _detached(value)
                self.bindings.append(_Binding(kind, value, not self.seen_stmt, detached))
                if self.no_grad and kind == "assign":
                    self.no_grad_binding = True
            if name == self.acc and (
                value is None or not _mentions(value, self.acc) or _detached(value)
            ):
                if not any(not isinstance(n, cst.With) for n in self.path):
                    self.unconditional_reset = True

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._bind_targets(target.target, node.value, "assign")

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind_targets(node.target, node.value, "assign")

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if self.loss is not None and dotted_name(node.target) == self.loss:
            self.bindings.append(_Binding("aug", node.value, not self.seen_stmt, False))

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._bind_targets(node.target, node.value, "other")

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value == "clear"
            and dotted_name(func.value) == self.acc
            and not any(not isinstance(n, cst.With) for n in self.path)
        ):
            self.unconditional_reset = True
        if self.loss is None:
            return
        exprs, keeps = _backwarded_expressions(node, self.imports)
        if any(_mentions(e, self.loss) for e in exprs):
            self.backwarded = True
            if keeps:
                self.retains_graph = True


def _flatten(target: cst.CSTNode):
    if isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            yield from _flatten(el.value)
    elif isinstance(target, cst.StarredElement):
        yield from _flatten(target.value)
    elif isinstance(target, cst.Subscript):
        yield target.value  # `d["k"] = v` puts v into d
    else:
        yield target


@dataclass
class _ScopeFacts:
    """Dataflow facts of one function (or the module), nested functions included."""

    flows: list[tuple[set[str], set[str]]] = field(default_factory=list)  # (targets, refs)
    backwarded: set[str] = field(default_factory=set)  # names read by backwarded tensors
    returned: set[str] = field(default_factory=set)  # names read by return/yield values
    grad_disabled: bool = False
    _closures: dict[str, frozenset[str]] = field(default_factory=dict)
    _passed: set[str] | None = None

    def closure(self, name: str) -> frozenset[str]:
        """`name` and every name computed from it, transitively."""
        cached = self._closures.get(name)
        if cached is not None:
            return cached
        out = {name}
        changed = True
        while changed:
            changed = False
            for targets, refs in self.flows:
                if refs & out and not targets <= out:
                    out |= targets
                    changed = True
        result = frozenset(out)
        self._closures[name] = result
        return result

    def escapes(self, names: frozenset[str], scope: cst.CSTNode) -> bool:
        """Whether any of names is returned, yielded or passed to a call that may keep it."""
        if names & self.returned:
            return True
        if self._passed is None:
            collector = _PassedNames()
            walk(scope, collector)
            self._passed = collector.refs
        return bool(names & self._passed)


class _ScopeCollector(Visitor):
    def __init__(self, imports) -> None:
        self.imports = imports
        self.facts = _ScopeFacts()

    def _flow(self, target: cst.CSTNode, value: cst.CSTNode) -> None:
        targets = {n for n in (dotted_name(t) for t in _flatten(target)) if n is not None}
        if targets:
            self.facts.flows.append((targets, _refs(value)))

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            self._flow(target.target, node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._flow(node.target, node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._flow(node.target, node.value)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._flow(node.target, node.value)

    def visit_For(self, node: cst.For) -> None:
        self._flow(node.target, node.iter)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._flow(node.target, node.iter)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._flow(node.asname.name, node.item)

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            self.facts.returned |= _refs(node.value)

    def visit_Yield(self, node: cst.Yield) -> None:
        if node.value is not None:
            self.facts.returned |= _refs(node.value)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        exprs, _ = _backwarded_expressions(node, self.imports)
        for expr in exprs:
            self.facts.backwarded |= _refs(expr)
        name = _last_name(func)
        if name == "set_grad_enabled" and node.args and _is_false(node.args[0].value):
            self.facts.grad_disabled = True
        # `outer.append(inner)`, `outer.extend(inner)`: inner flows into outer
        if isinstance(func, cst.Attribute) and name in ("append", "extend", "insert", "add"):
            for arg in node.args:
                self._flow(func.value, arg.value)


class _PassedNames(Visitor):
    """Names read in the arguments of calls that may keep them (anything but printing,
    logging, arithmetic and reductions), in one linear pass."""

    def __init__(self) -> None:
        self.refs: set[str] = set()
        self.keeping: set[int] = set()  # ids of the Args of such calls
        self.depth = 0

    def visit_Call(self, node: cst.Call) -> None:
        name = _last_name(node.func)
        if name in ("append", "extend", "insert", "add") and isinstance(node.func, cst.Attribute):
            return  # a flow into the container, followed by the closure
        if name in HARMLESS_CALLS or (name and HARMLESS_CALL_PATTERN.match(name)):
            return
        self.keeping.update(id(arg) for arg in node.args)

    def visit_Arg(self, node: cst.Arg) -> None:
        if id(node) in self.keeping:
            self.depth += 1

    def leave_Arg(self, original_node: cst.Arg) -> None:
        if id(original_node) in self.keeping:
            self.depth -= 1

    def visit_Name(self, node: cst.Name) -> None:
        if self.depth:
            self.refs.add(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        if not self.depth:
            return True
        name = dotted_name(node)
        if name is None:
            return True
        parts = name.split(".")
        self.refs.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        return False


def _names_assigned_from_loss_constructors(module: cst.Module) -> set[str]:
    """Dotted names assigned from a call of something named `...Loss` anywhere in the
    module: a superset of the names that `Roles` binds to the criterion role. Walks
    statements only (never expressions), so it is much cheaper than a visitor."""
    out: set[str] = set()
    pending: list[cst.CSTNode] = list(module.body)
    while pending:
        stmt = pending.pop()
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in stmt.body:
                if (
                    isinstance(small, cst.Assign)
                    and isinstance(small.value, cst.Call)
                    and (_last_name(small.value.func) or "").endswith("Loss")
                ):
                    for target in small.targets:
                        name = dotted_name(target.target)
                        if name is not None:
                            out.add(name)
            continue
        for attr in ("body", "orelse", "finalbody", "handlers", "cases"):
            child = getattr(stmt, attr, None)
            if child is None:
                continue
            if isinstance(child, (list, tuple)):
                pending.extend(child)
            elif isinstance(child, cst.IndentedBlock):
                pending.extend(child.body)
            else:
                pending.append(child)  # Else / Finally / elif If
    return out


class _Calls(Visitor):
    def __init__(self) -> None:
        self.calls: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        self.calls.append(node)

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False
