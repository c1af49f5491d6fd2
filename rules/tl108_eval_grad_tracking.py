"""
## What it does
Flags an evaluation loop that runs the model with gradient tracking on: a `for` over a data
loader that calls the model, makes no `backward` / `torch.autograd.grad` call and touches no
`requires_grad`, in a function named `val*`, `valid*`, `eval*` or `evaluate*`, or after
`model.eval()` in the same function, with no `torch.no_grad()`, `torch.inference_mode()` or
`torch.set_grad_enabled(False)` around it and no such decorator on the function.

## Why is this bad?
`model.eval()` only switches dropout and BatchNorm; it does not stop autograd. Every
forward pass still records its graph and keeps the activations it needs for a backward
that never comes: evaluation uses about twice the memory and runs slower, and predictions
accumulated across the loop (`preds.append(out)`) keep every batch's graph alive until the
loop ends, which is a classic evaluation-time out-of-memory error.

## Example
```python
def evaluate(model, val_loader):
    model.eval()
    preds = []
    for x, _ in val_loader:
        preds.append(model(x))
    return torch.cat(preds)
```

## Use instead
```python
@torch.no_grad()
def evaluate(model, val_loader):
    model.eval()
    preds = []
    for x, _ in val_loader:
        preds.append(model(x))
    return torch.cat(preds)
```

## Fix safety
There is no fix: callers in other files may wrap the call in `torch.no_grad()` already,
and the choice between a decorator, a `with` block and `inference_mode()` (whose tensors
cannot be used in autograd later) is the author's.

## Known false positives
The rule cannot see callers in other files: an evaluation function that relies on its
caller's `torch.no_grad()` is reported (callers in the same file are checked). It stays
silent when any context manager or decorator whose name mentions `grad`, `inference` or
`eval` encloses the model call (so project wrappers such as `smart_inference_mode()`
count), or a context manager that receives the model (`with EvalMode(model):`), when the
function calls `set_grad_enabled`/`no_grad()` outside a `with`, when the file calls
`torch.set_grad_enabled(False)` as a statement anywhere, in functions named `test*` (use `model.eval()` to mark them)
and in pytest/unittest tests, and in Lightning hooks (`validation_step`, `test_step`,
`predict_step`, `on_*`), where Lightning disables gradients itself. Helper functions called
from the loop are not followed: only direct calls of the model (`model(x)`,
`self.net(x)`, `model.forward(x)`) count. Loaders are names bound to `DataLoader(...)` or
spelled `*loader*` / `*_dl`; a loop over anything else (`range`, a plain dataset, a
`*_iter`) is not examined.
"""

from __future__ import annotations

import ast

import libcst as cst

from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._eval import (
    EVAL,
    EVAL_NAME,
    HOOK_NAME,
    TRAIN,
    UNKNOWN,
    AstModuleFacts,
    AstScan,
    AstScope,
    EvalFacts,
    LoopInfo,
    ModuleIndex,
    ast_decorators,
    ast_eval_lines,
    ast_lines_within,
    ast_loader_loop_here,
    ast_may_model,
    ast_may_not_unit_test,
    ast_may_walk_loader,
    ast_model_loops,
    ast_module_grad_off,
    ast_must_disable,
    ast_scopes,
    ast_under_model_context,
    ast_with_items,
    decorated_grad_disabled,
    is_backward,
    is_loader_iter,
    is_model_call,
    is_unit_test,
    mode_of,
    related,
    under_grad_disabled,
    under_model_context,
)
from trainlint.rules._loops import Roles


class EvalGradTracking(Rule):
    __doc__ = __doc__
    code = "TL108"
    name = "eval-grad-tracking"
    message = (
        "Evaluation loop calls `{model}` with gradient tracking on: wrap it in "
        "`torch.no_grad()` or `torch.inference_mode()`"
    )
    tokens = ("*val*", ("*loader*", "*dl*"))

    VALID = [
        Valid(
            """
            import torch
            @torch.no_grad()
            def evaluate(model, val_loader):
                model.eval()
                for x, _ in val_loader:
                    model(x)
            """
        ),
        Valid(
            """
            import torch
            def validate(model, val_loader):
                model.eval()
                with torch.inference_mode():
                    for x, _ in val_loader:
                        model(x)
            """
        ),
        # a project's own grad-off decorator (yolov5's smart_inference_mode)
        Valid(
            """
            @smart_inference_mode()
            def run(model, dataloader):
                model.eval()
                for x, _ in dataloader:
                    model(x)
            """
        ),
        # gradient-based evaluation (saliency, adversarial): backward in the loop
        Valid(
            """
            def evaluate_robustness(model, loader):
                model.eval()
                for x, y in loader:
                    x.requires_grad_(True)
                    loss = model(x).sum()
                    loss.backward()
            """
        ),
        # a metric function named evaluate: no model call
        Valid(
            """
            def evaluate(preds, labels, loader):
                for batch in loader:
                    score(batch)
            """
        ),
        # the caller in this file disables gradients
        Valid(
            """
            import torch
            def evaluate(model, val_loader):
                model.eval()
                return [model(x) for x, _ in val_loader] + [model(x) for x in extra(val_loader)]
            def validate(model, val_loader):
                for x, _ in val_loader:
                    model(x)
            def main(model, val_loader):
                with torch.no_grad():
                    validate(model, val_loader)
            """
        ),
        # Lightning hook
        Valid(
            """
            class Lit(LightningModule):
                def validation_step(self, batch, idx):
                    for x in self.aux_loader:
                        self.model(x)
            """
        ),
        # training function: eval() then train() before the training loop
        Valid(
            """
            def fit(model, loader, val_loader):
                model.eval()
                warmup_stats()
                model.train()
                for x, y in loader:
                    model(x)
            """
        ),
        # set_grad_enabled(flag) toggled for a shared train/eval epoch
        Valid(
            """
            import torch
            def evaluate(model, loader, train):
                with torch.set_grad_enabled(train):
                    for x, y in loader:
                        model(x)
            """
        ),
        # gradients switched off for the whole run elsewhere in the file
        Valid(
            """
            import torch
            class Validator:
                def __init__(self, model):
                    self.model = model.eval()
                    torch.set_grad_enabled(False)
                def validate(self):
                    for x, _ in self.val_loader:
                        self.model(x)
            """
        ),
        # the model is called only through a helper
        Valid(
            """
            def evaluate(model, val_loader, device):
                model.eval()
                for x, y in val_loader:
                    loss = calc_loss_batch(x, y, model, device)
            """
        ),
        # a project context manager that receives the model (may set eval + no_grad)
        Valid(
            """
            from utils import EvalMode
            def evaluate(model, loader):
                with EvalMode(model):
                    for x, _ in loader:
                        model(x)
            """
        ),
        # pytest test
        Valid(
            """
            import pytest
            def test_model(model, loader):
                model.eval()
                for x in loader:
                    model(x)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            def evaluate(model, val_loader):
                model.eval()
                preds = []
                for x, _ in val_loader:
                    preds.append(model(x))
                return torch.cat(preds)
            """,
            line=5,
        ),
        # after model.eval() in a training script, no no_grad
        Invalid(
            """
            import torch as T
            from torch.utils.data import DataLoader
            loader = DataLoader(ds)
            for epoch in range(3):
                model.train()
                for x, y in loader:
                    loss = crit(model(x), y)
                    loss.backward()
                    opt.step()
                model.eval()
                for x, y in val_loader:
                    acc += (model(x).argmax(1) == y).float().mean()
            """,
            line=11,
        ),
        # grad-off context only around the metric, not around the model call
        Invalid(
            """
            from torch import no_grad
            class Trainer:
                def validate(self):
                    for i, (x, y) in enumerate(self.val_loader):
                        out = self.model(x)
                        with no_grad():
                            self.meter.update(out, y)
            """,
            line=4,
        ),
        # `async def` and `async for`
        Invalid(
            """
            class Evaluator:
                async def validate(self):
                    async for x, _ in self.val_loader:
                        await self.log(self.model(x))
            """,
            line=3,
        ),
        # a local made from the loader
        Invalid(
            """
            from tqdm import tqdm
            def evaluate(model, val_loader):
                model.eval()
                batches = tqdm(val_loader, desc="val")
                for x, y in batches:
                    model(x)
            """,
            line=5,
        ),
    ]

    @property
    def roles(self) -> Roles:
        return EvalFacts.of(self.context).roles

    @property
    def index(self) -> ModuleIndex:
        return EvalFacts.of(self.context).index

    @classmethod
    def screen(cls, index) -> bool:
        """The rule's analysis loosened onto the ast (see `_Screen`): some function (or the
        module) has a loader loop that may call a model with gradients on, in an evaluation
        function or after the model's `.eval()`."""
        return _Screen(index).may_report()

    def visit_Module(self, node: cst.Module) -> None:
        self._check_scope(node, None)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if HOOK_NAME.match(node.name.value) or self._is_unit_test(node):
            return
        self._check_scope(node, node)

    def _is_unit_test(self, func: cst.FunctionDef) -> bool:
        cls = self.context.enclosing(cst.ClassDef)
        return is_unit_test(func, cls, self.roles, self.context.imports)

    def _check_scope(self, node: cst.FunctionDef | cst.Module, func: cst.FunctionDef | None) -> None:
        imports = self.context.imports
        scope = EvalFacts.of(self.context).scan(node)
        if not scope.loops or scope.other_grad_switch or scope.requires_grad:
            return
        funcs = list(self.context.enclosing_all(cst.FunctionDef))
        if func is not None:
            funcs.insert(0, func)
        if decorated_grad_disabled(funcs, imports, loose=True):
            return
        roles = self.roles
        modes = [(c, m) for c in scope.calls if (m := mode_of(c)) is not None]
        extra = {c.receiver for c, _ in modes if c.receiver}
        model_calls = [
            (c, m)
            for c in scope.calls
            if (m := is_model_call(c, roles, extra))
            and not under_grad_disabled(c.ancestors, imports, loose=True)
            and not under_model_context(c.ancestors, m)
        ]
        if not model_calls:
            return
        backwards = [c for c in scope.calls if is_backward(c, imports)]
        eval_named = func is not None and bool(EVAL_NAME.match(func.name.value))
        reported: list[LoopInfo] = []
        for loop in scope.loops:
            if any(r.contains(loop.start) for r in reported):
                continue
            if not is_loader_iter(loop.node, roles, scope):
                continue
            inside = [(c, m) for c, m in model_calls if loop.contains(c.order)]
            if not inside or any(loop.contains(b.order) for b in backwards):
                continue
            call, model = inside[0]
            if not (eval_named or self._after_eval(modes, model, call.order)):
                continue
            if self.index.module_grad_off:
                return
            if func is not None and self.index.called_with_grad_disabled(func.name.value):
                return
            reported.append(loop)
            self.report(
                loop.node,
                self.message.format(model=model),
                help="decorate the evaluation function with `@torch.no_grad()` or wrap the "
                "loop in `with torch.no_grad():`",
            )

    @staticmethod
    def _after_eval(modes, model: str, order: int) -> bool:
        """The last mode call before `order` is `<model>.eval()`."""
        last = None
        for call, mode in modes:
            if call.order >= order:
                break
            if mode in (TRAIN, UNKNOWN):
                last = None
            elif mode == EVAL and call.method == "eval" and related(call.receiver or "", model):
                last = call
        return last is not None


class _Screen:
    """`EvalGradTracking`'s analysis on CPython's ast (see `rules._eval`), answering yes
    wherever the rule may report. Any call that may be a model call may be a loop's first
    one, so each is tried in turn."""

    def __init__(self, index) -> None:
        self.index = index

    def may_report(self) -> bool:
        index = self.index
        loops = [*index.nodes(ast.For), *index.nodes(ast.AsyncFor)]
        if not any(ast_may_walk_loader(n, index) for n in loops) or ast_module_grad_off(index):
            return False
        evals = ast_eval_lines(index)
        for scope in ast_scopes(index):
            func = scope.func
            if func is None:
                evaluating = bool(evals)
            else:
                evaluating = bool(EVAL_NAME.match(func.name)) or ast_lines_within(evals, func)
            # an evaluation function, or one that calls `.eval()`
            if evaluating and ast_loader_loop_here(scope, index) and self._scope(scope):
                return True
        return False

    def _scope(self, scope: AstScope) -> bool:
        index = self.index
        func = scope.func
        if func is not None and (
            HOOK_NAME.match(func.name) or not ast_may_not_unit_test(func, scope.cls, index)
        ):
            return False
        if ast_must_disable(ast_decorators(scope.funcs), index, loose=True):
            return False
        scan = scope.scan
        if scan.other_grad_switch or scan.requires_grad:
            return False
        extra = scan.extra_models()
        models = [
            (c, m)
            for c in scan.calls
            if (m := ast_may_model(c, extra))
            and not ast_must_disable(ast_with_items(c.withs), index, loose=True)
            and not ast_under_model_context(c.withs, m)
        ]
        if not models or not self._eval_loop(scope, scan, models):
            return False
        return func is None or not AstModuleFacts.of(index).called_with_grad_disabled(func.name)

    def _eval_loop(self, scope: AstScope, scan: AstScan, models) -> bool:
        eval_named = scope.func is not None and bool(EVAL_NAME.match(scope.func.name))
        modes = [c for c in scan.calls if c.mode is not None]
        return any(
            eval_named or any(_after_eval(modes, m, c.key) for c, m in inside)
            for _, inside in ast_model_loops(scan, models, self.index)
        )


def _after_eval(modes, model: str, key) -> bool:
    """`EvalGradTracking._after_eval` on the ast (exact)."""
    last = None
    for call in modes:
        if call.key >= key:
            break
        if call.mode in (TRAIN, UNKNOWN):
            last = None
        elif call.mode == EVAL and call.method == "eval" and related(call.receiver or "", model):
            last = call
    return last is not None
