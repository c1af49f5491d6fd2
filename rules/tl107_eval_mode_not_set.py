"""
## What it does
Flags evaluation loops that run a model still in training mode, and `model.eval()` calls
in a training loop that are never undone by `model.train()`:

* an evaluation loop (a `for` over a data loader that calls the model, has no `backward`,
  and sits under `torch.no_grad()` / `torch.inference_mode()` or in a function named
  `val*`, `valid*`, `eval*` or `test*`) that is reached with the model in training mode:
  the function trained the model earlier (or called `model.train()` before a training
  loop), built it itself, or is an evaluation function that never calls `model.eval()`;
* a `model.eval()` inside a training loop (the epoch loop, or the batch loop for periodic
  evaluation) that is never undone: nothing in that loop calls `model.train()`, so every
  later epoch (or step) trains in evaluation mode.

## Why is this bad?
`torch.no_grad()` and `model.eval()` are orthogonal. Without `eval()`, dropout keeps
dropping activations and BatchNorm normalises with the statistics of the evaluation batch
and *updates its running statistics* with evaluation data, so reported metrics are noisy and
too low, and the model is silently changed by being evaluated. The reverse mistake,
`eval()` in the epoch loop with `train()` called only once before it, trains every epoch
after the first without dropout and with frozen BatchNorm statistics. Neither raises an
error or a warning.

## Example
```python
model.train()
for epoch in range(epochs):
    for x, y in train_loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for x, y in val_loader:
            correct += (model(x).argmax(1) == y).sum()
```

## Use instead
```python
for epoch in range(epochs):
    model.train()
    for x, y in train_loader:
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for x, y in val_loader:
            correct += (model(x).argmax(1) == y).sum()
```

## Fix safety
There is no fix: where `model.train()` or `model.eval()` belongs depends on how the loop is
organised, and Monte-Carlo dropout or BatchNorm recalibration run in training mode on
purpose.

## Known false positives
The rule looks at one function; helper functions called from the loop are not followed.
To stay precise it says nothing when:

* any `.eval()` or `.train(flag)` call reaches the loop, or the mode is toggled inside it;
* the model is passed to a helper before the loop (other than a few known harmless ones
  such as `ema.update(model)`, `print`, `torch.save`), or is obtained from a helper call
  in the function (it may come back in evaluation mode);
* an evaluation function is called in the same file from a function that calls
  `.eval()`, or another method of its class does; for a model held in an attribute
  (`self.model`) the class itself must visibly call `.train()` somewhere;
* for the unrestored `eval()` case: something else in the loop calls `.train(...)`, the
  model is passed to a helper in the loop, the receiver is spelled like a model kept
  frozen on purpose (`teacher`, `ema`, `target`, ...), or the function touches
  `requires_grad` (frozen sub-networks).

It cannot see callers in other files, so an evaluation function that relies on its
caller's `model.eval()` is reported. A model run under `no_grad` in training mode on
purpose right after training in the same function (MC dropout, BatchNorm recalibration)
is reported; suppress it inline. A deliberate `model.eval()` that freezes the whole model
for the rest of training is reported as well.

Models are recognised by name (`model`, `net`, `*_model`, ...) or as the receiver of
`.eval()`/`.train()` in the function; loaders are names bound to `DataLoader(...)` or
spelled `*loader*` / `*_dl` (loops over `range` or other iterables are not examined).
Functions named `test*` count as evaluation functions only when the file imports neither
`pytest` nor `unittest` and they are named plain `test` or take both a model and a loader
parameter. Lightning hooks (`validation_step`, `on_*`, ...) are never examined, since
Lightning switches modes itself.
"""

from __future__ import annotations

import ast
import re

import libcst as cst
from trainlint.imports import dotted_name
from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import is_nn_module, local_classes
from trainlint.rules._eval import (
    EVAL,
    EVAL_NAME,
    FROZEN_NAME,
    HARMLESS_CALLEES,
    HOOK_NAME,
    PASSTHROUGH,
    TEST_NAME,
    TRAIN,
    UNKNOWN,
    AstCall,
    AstLoop,
    AstModuleFacts,
    AstScan,
    AstScope,
    EvalFacts,
    LoopInfo,
    ModuleIndex,
    Scope,
    ast_argument_names,
    ast_decorators,
    ast_eval_lines,
    ast_lines_within,
    ast_loader_loop_here,
    ast_may_backward,
    ast_may_disable,
    ast_may_model,
    ast_may_not_unit_test,
    ast_may_walk_loader,
    ast_model_lines,
    ast_model_loops,
    ast_must_disable,
    ast_scopes,
    ast_with_items,
    decorated_grad_disabled,
    is_backward,
    is_loader_iter,
    is_model_call,
    is_unit_test,
    mode_of,
    passthrough,
    related,
    under_grad_disabled,
)
from trainlint.rules._loops import Roles
from trainlint.rules._screens import nn_module_classes
from trainlint.screen import dotted_name as screen_dotted


class EvalModeNotSet(Rule):
    __doc__ = __doc__
    code = "TL107"
    name = "eval-mode-not-set"
    message = (
        "Evaluation loop runs `{model}` in training mode (dropout on, BatchNorm updating): "
        "call `{model}.eval()` before it"
    )
    tokens = (("*val*", "*test*", "*grad*", "*inference*"), ("*loader*", "*dl*", "*eval*"), ("*loader*", "*dl*", "*backward*", "*grad*"))

    VALID = [
        # eval() before the loop
        Valid(
            """
            import torch
            def validate(model, val_loader):
                model.eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        out = model(x)
            """
        ),
        # train() restored at the top of every epoch
        Valid(
            """
            import torch
            model = Net()
            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        model(x)
            """
        ),
        # a helper receives the model first: it may call eval()
        Valid(
            """
            import torch
            def evaluate(model, loader):
                prepare_for_eval(model)
                with torch.no_grad():
                    for x, y in loader:
                        model(x)
            """
        ),
        # no_grad loop in an ordinary helper: the caller owns the mode
        Valid(
            """
            import torch
            def extract_features(model, loader):
                feats = []
                with torch.no_grad():
                    for x, _ in loader:
                        feats.append(model(x))
                return feats
            """
        ),
        # train() on purpose before a no_grad loop: BatchNorm recalibration / MC dropout
        Valid(
            """
            import torch
            @torch.no_grad()
            def update_bn(loader, model):
                model.train()
                for x in loader:
                    model(x)
            """
        ),
        # the caller in the same file sets eval()
        Valid(
            """
            import torch
            def validate(model, val_loader):
                with torch.no_grad():
                    for x, y in val_loader:
                        model(x)
            def main(model, val_loader):
                model.eval()
                validate(model, val_loader)
            """
        ),
        # another method of the class sets eval()
        Valid(
            """
            import torch
            class Trainer:
                def before_val(self):
                    self.model.eval()
                def validate(self):
                    with torch.no_grad():
                        for x, y in self.val_loader:
                            self.model(x)
            """
        ),
        # an attribute model in a class that never switches modes itself (a base class
        # in another file may)
        Valid(
            """
            import torch
            class MyValidator(BaseValidator):
                def validate(self):
                    with torch.no_grad():
                        for x, y in self.val_loader:
                            self.model(x)
            """
        ),
        # the tutorial's phase loop: set_grad_enabled and train()/eval() per phase
        Valid(
            """
            import torch
            def train_model(model, dataloaders, optimizer, criterion, epochs):
                for epoch in range(epochs):
                    for phase in ["train", "val"]:
                        if phase == "train":
                            model.train()
                        else:
                            model.eval()
                        for inputs, labels in dataloaders[phase]:
                            with torch.set_grad_enabled(phase == "train"):
                                loss = criterion(model(inputs), labels)
                                if phase == "train":
                                    loss.backward()
                                    optimizer.step()
            """
        ),
        # MC dropout: eval() then dropout re-enabled by a helper
        Valid(
            """
            import torch
            @torch.no_grad()
            def mc_predict(model, loader, passes):
                model.eval()
                enable_dropout(model)
                for x, _ in loader:
                    model(x)
            """
        ),
        # pytest-style test taking fixtures, no pytest import visible
        Valid(
            """
            import torch
            def test_output_shape(model, batch):
                with torch.no_grad():
                    for x in batch_loader():
                        assert model(x).shape[0] == 2
            """
        ),
        # pytest unit test, no model parameter
        Valid(
            """
            import pytest, torch
            def test_loader_shapes():
                model = Net()
                loader = make_loader()
                with torch.no_grad():
                    for x in loader:
                        assert model(x).shape == (2, 3)
            """
        ),
        # Lightning hook
        Valid(
            """
            import torch
            class Lit(LightningModule):
                def validation_step(self, batch, idx):
                    for x in self.aux_loader:
                        self.model(x)
            """
        ),
        # train(flag) reaching the loop: unknown mode
        Valid(
            """
            import torch
            def run_epoch(model, loader, training):
                model.train(training)
                with torch.set_grad_enabled(training):
                    for x, y in loader:
                        model(x)
            """
        ),
        # (b) eval() in the epoch loop, train() restored in the same loop
        Valid(
            """
            for epoch in range(3):
                for x, y in train_loader:
                    model.train()
                    loss = criterion(model(x), y)
                    loss.backward()
                    optimizer.step()
                model.eval()
                evaluate_inline = [model(x) for x, _ in val_loader]
            """
        ),
        # (b) teacher kept in eval mode during distillation
        Valid(
            """
            import torch
            for epoch in range(3):
                teacher.eval()
                for x, y in train_loader:
                    with torch.no_grad():
                        t = teacher(x)
                    loss = kd(student(x), t)
                    loss.backward()
                    optimizer.step()
            """
        ),
        # (b) the evaluation helper receives the model: it may restore train()
        Valid(
            """
            for epoch in range(3):
                for x, y in train_loader:
                    criterion(model(x), y).backward()
                    optimizer.step()
                model.eval()
                run_validation(model, val_loader)
            """
        ),
    ]
    INVALID = [
        # (a) script: train() once, eval loop after training without eval()
        Invalid(
            """
            import torch
            model = Net()
            model.train()
            for epoch in range(10):
                for x, y in train_loader:
                    optimizer.zero_grad()
                    criterion(model(x), y).backward()
                    optimizer.step()
                with torch.no_grad():
                    for x, y in val_loader:
                        correct += (model(x).argmax(1) == y).sum()
            """,
            line=10,
        ),
        # (a) evaluation function that never calls eval()
        Invalid(
            """
            import torch as T
            def validate(net, val_loader):
                total = 0
                with T.no_grad():
                    for x, y in val_loader:
                        total += (net(x).argmax(1) == y).sum()
                return total
            """,
            line=5,
        ),
        # (a) test() in a training script, decorator form of no_grad
        Invalid(
            """
            from torch import inference_mode
            @inference_mode()
            def test(model, device, test_loader):
                for data, target in test_loader:
                    output = model(data.to(device))
            """,
            line=4,
        ),
        # (a) inference script: model built here, loaded, never put in eval mode
        Invalid(
            """
            import torch
            from torch.utils.data import DataLoader
            model = ResNet()
            model.load_state_dict(torch.load("ckpt.pt"))
            loader = DataLoader(dataset, batch_size=64)
            with torch.no_grad():
                for images, _ in loader:
                    preds = model(images).argmax(1)
            class ResNet(torch.nn.Module):
                pass
            """,
            line=7,
        ),
        # (a) a trainer class that switches to train() but never to eval()
        Invalid(
            """
            import torch
            class Trainer:
                def train_epoch(self):
                    self.model.train()
                    for x, y in self.train_loader:
                        self.loss(self.model(x), y).backward()
                        self.optim.step()
                def validate(self):
                    with torch.no_grad():
                        for x, y in self.val_loader:
                            out = self.model(x)
            """,
            line=10,
        ),
        # (b) eval() in the epoch loop, train() only once before it
        Invalid(
            """
            import torch
            model.train()
            for epoch in range(10):
                for x, y in train_loader:
                    optimizer.zero_grad()
                    loss = criterion(model(x), y)
                    loss.backward()
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        model(x)
            """,
            line=9,
        ),
        # (b) periodic evaluation inside the batch loop, never switched back
        Invalid(
            """
            def train(model, loader, val_loader, optimizer):
                model.train()
                for step, (x, y) in enumerate(loader):
                    loss = model(x, y)
                    loss.backward()
                    optimizer.step()
                    if step % 500 == 0:
                        model.eval()
                        print(sum(model(v, w) for v, w in val_loader))
            """,
            line=8,
        ),
        # (b) the same in a `while` loop over steps (no `for` in the file)
        Invalid(
            """
            model.train()
            while step < total_steps:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                if step % 100 == 0:
                    model.eval()
                    print(model(val_x))
            """,
            line=7,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._module_classes: dict[str, cst.ClassDef] | None = None

    # -- lazily built per-module facts, shared with TL108 --------------------------------
    @property
    def roles(self) -> Roles:
        return EvalFacts.of(self.context).roles

    @property
    def index(self) -> ModuleIndex:
        return EvalFacts.of(self.context).index

    @classmethod
    def screen(cls, index) -> bool:
        """The rule's analysis loosened onto the ast (see `_Screen`): some function (or the
        module) has a loader loop that may run a model in training mode, or a loop that
        may train while an `.eval()` in it is never undone."""
        return _Screen(index).may_report()

    def visit_Module(self, node: cst.Module) -> None:
        self._check_scope(node, None)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if HOOK_NAME.match(node.name.value):
            return
        self._check_scope(node, node)

    # -- analysis ------------------------------------------------------------------------
    def _check_scope(self, node: cst.FunctionDef | cst.Module, func: cst.FunctionDef | None) -> None:
        scope = EvalFacts.of(self.context).scan(node)
        if not scope.loops:
            return
        imports = self.context.imports
        roles = self.roles
        modes = [(c, m) for c in scope.calls if (m := mode_of(c)) is not None]
        extra = {c.receiver for c, _ in modes if c.receiver}
        backwards = [c for c in scope.calls if is_backward(c, imports)]
        model_calls = [(c, m) for c in scope.calls if (m := is_model_call(c, roles, extra))]
        if not model_calls:
            return
        self._check_eval_loops(scope, func, modes, backwards, model_calls)
        if modes and backwards and not scope.requires_grad:
            self._check_unrestored(scope, modes, backwards, model_calls)

    def _eval_named(self, func: cst.FunctionDef | None) -> bool:
        if func is None:
            return False
        name = func.name.value
        if EVAL_NAME.match(name):
            return True
        if not TEST_NAME.match(name):
            return False
        cls = self.context.enclosing(cst.ClassDef)
        return not is_unit_test(func, cls, self.roles, self.context.imports)

    def _check_eval_loops(self, scope, func, modes, backwards, model_calls) -> None:
        imports = self.context.imports
        funcs = [f for f in self.context.enclosing_all(cst.FunctionDef)]
        if func is not None:
            funcs.insert(0, func)
        decorated = decorated_grad_disabled(funcs, imports, loose=False)
        eval_named = self._eval_named(func)
        reported: list[LoopInfo] = []
        for loop in scope.loops:
            if not is_loader_iter(loop.node, self.roles, scope):
                continue
            if any(r.contains(loop.start) for r in reported):
                continue
            inside = [(c, m) for c, m in model_calls if loop.contains(c.order)]
            if not inside:
                continue
            if any(loop.contains(b.order) for b in backwards):
                continue
            first, model = inside[0]
            region = decorated or under_grad_disabled(
                (*first.ancestors,), imports, loose=False
            )
            if not (region or eval_named):
                continue
            if self._train_mode_at(scope, loop, model, modes, backwards, model_calls, func, eval_named):
                reported.append(loop)
                self.report(
                    loop.node,
                    self.message.format(model=model),
                    help=f"call `{model}.eval()` before the evaluation loop "
                    f"(and `{model}.train()` before training resumes)",
                )

    def _train_mode_at(self, scope, loop, model, modes, backwards, model_calls, func, eval_named) -> bool:
        enclosing = [o for o in scope.loops if o is not loop and o.contains(loop.start)]

        def reaches(order: int) -> bool:
            if loop.contains(order):
                return False
            return order < loop.start or any(o.contains(order) for o in enclosing)

        if any(loop.contains(c.order) for c, _ in modes):
            return False  # toggled inside the loop: deliberate
        reaching = [m for c, m in modes if reaches(c.order)]
        if EVAL in reaching or UNKNOWN in reaching:
            return False
        trained = any(reaches(b.order) for b in backwards) and any(
            reaches(c.order) and related(m, model) for c, m in model_calls
        )
        if TRAIN in reaching:
            return trained
        if trained:
            return True
        if self._passed_to_helper(scope, model, lambda o: o < loop.start):
            return False
        built = self._built_here(scope, model, loop.start)
        if built is not None:
            return built
        if not eval_named or func is None:
            return False
        # An evaluation function that never sets the mode: unless a caller in this file or
        # another method of the class does, it relies on a caller we cannot see.
        if self.index.called_from_evaluating_scope(func.name.value):
            return False
        cls = self.context.enclosing(cst.ClassDef)
        if cls is not None and id(cls) in self.index.evaluating:
            return False
        if model.startswith("self.") and (cls is None or id(cls) not in self.index.training):
            # the mode of an attribute model is managed by the class (or a base class in
            # another file); only a class that visibly switches to train() is judged
            return False
        if 0 in self.index.evaluating and not model.startswith("self."):
            # module-level code calls .eval(): it may run before this function is called
            return False
        return True

    def _passed_to_helper(self, scope: Scope, model: str, when) -> bool:
        for call in scope.calls:
            if not when(call.order) or mode_of(call) is not None:
                continue
            last = (call.func or "").rsplit(".", 1)[-1]
            if call.receiver is not None and related(call.receiver, model):
                # model.apply(fn), model.set_mode(...), model.train_mode() ...
                method = call.method or ""
                if method == "apply" or any(w in method for w in ("train", "mode", "eval")):
                    return True
                continue
            if last in HARMLESS_CALLEES:
                continue
            for arg in call.node.args:
                name = dotted_name(arg.value)
                if name is not None and related(name, model):
                    return True
        return False

    def _built_here(self, scope: Scope, model: str, before: int) -> bool | None:
        """True when the model is constructed in this scope (modules start in training
        mode), False when it comes from an unknown call (a helper may set the mode), None
        when it is not bound here from a call."""
        bound = [call for o, call in scope.bindings.get(model, ()) if o < before]
        # `model = model.to(device)` keeps the mode: look at the binding before it
        while bound and passthrough(bound[-1], model):
            bound.pop()
        if not bound:
            return None
        call = bound[-1]
        # `Net().to(device)`, `Net().cuda()`: the constructor is the inner call
        while (
            isinstance(call.func, cst.Attribute)
            and call.func.attr.value in PASSTHROUGH
            and isinstance(call.func.value, cst.Call)
        ):
            call = call.func.value
        qual = self.context.imports.qualname(call.func) or ""
        if qual.startswith(("torchvision.models.", "torch.nn.")) or qual in (
            "timm.create_model",
            "timm.models.create_model",
        ):
            return True
        name = dotted_name(call.func)
        if name is not None and "." not in name:
            if self._module_classes is None:
                self._module_classes = local_classes(self.context.module)
            cls = self._module_classes.get(name)
            if cls is not None and is_nn_module(cls, self.context.imports, self.context.module):
                return True
        return False

    def _check_unrestored(self, scope, modes, backwards, model_calls) -> None:
        imports = self.context.imports
        for call, mode in modes:
            if mode != EVAL or call.method != "eval":
                continue
            model = call.receiver
            if model is None or FROZEN_NAME.search(model.rsplit(".", 1)[-1]):
                continue
            enclosing = sorted(
                (o for o in scope.loops if o.contains(call.order)), key=lambda o: -o.start
            )
            for loop in enclosing:
                training = any(loop.contains(b.order) for b in backwards) and any(
                    loop.contains(c.order)
                    and related(m, model)
                    and not under_grad_disabled(c.ancestors, imports, loose=True)
                    for c, m in model_calls
                )
                if not training:
                    continue
                restored = any(
                    loop.contains(c.order) and m in (TRAIN, UNKNOWN) for c, m in modes
                )
                if not restored and not self._passed_to_helper(scope, model, loop.contains):
                    self.report(
                        call.node,
                        f"`{model}.eval()` in a training loop is never undone: nothing in the "
                        f"loop calls `{model}.train()`, so later iterations train in "
                        "evaluation mode",
                        help=f"call `{model}.train()` at the start of each epoch's (or "
                        "step's) training section",
                    )
                break


class _Screen:
    """`EvalModeNotSet`'s analysis on CPython's ast (see `rules._eval`), answering yes
    wherever the rule may report. Any call that may be a model call may be a loop's first
    one, so each is tried in turn."""

    def __init__(self, index) -> None:
        self.index = index
        self._classes: set[str] | None = None
        self._withs: bool | None = None

    def may_report(self) -> bool:
        index = self.index
        evals = ast_eval_lines(index)
        if evals and not any(ast_may_backward(c, index) for c in index.nodes(ast.Call)):
            evals = []
        loops = [*index.nodes(ast.For), *index.nodes(ast.AsyncFor)]
        if not evals and not any(ast_may_walk_loader(node, index) for node in loops):
            return False
        if not ast_model_lines(index):
            return False
        for scope in ast_scopes(index):
            func = scope.func
            if not scope.loop_nodes or (func is not None and HOOK_NAME.match(func.name)):
                continue
            loader = ast_loader_loop_here(scope, index) and (
                self._eval_named(scope)
                or self._grad_off_withs()
                or ast_may_disable(ast_decorators(scope.funcs), index, loose=False)
            )
            unrestored = any(ast_lines_within(evals, node) for node in scope.loop_nodes)
            if (loader or unrestored) and self._scope(scope, loader, unrestored):
                return True
        return False

    def _grad_off_withs(self) -> bool:
        """Some `with` of the file may turn gradients off (strictly)."""
        if self._withs is None:
            items = ast_with_items([*self.index.nodes(ast.With), *self.index.nodes(ast.AsyncWith)])
            self._withs = ast_may_disable(items, self.index, loose=False)
        return self._withs

    def _scope(self, scope: AstScope, loader: bool, unrestored: bool) -> bool:
        scan = scope.scan
        extra = scan.extra_models()
        models = [(c, m) for c in scan.calls if (m := ast_may_model(c, extra))]
        if not models:
            return False
        modes = [c for c in scan.calls if c.mode is not None]
        if loader and self._eval_loops(scope, scan, modes, models):
            return True
        if not unrestored or not modes or scan.requires_grad:
            return False
        backwards = [c for c in scan.calls if ast_may_backward(c.node, self.index)]
        return bool(backwards) and self._unrestored(scan, modes, backwards, models)

    def _eval_named(self, scope: AstScope) -> bool:
        func = scope.func
        if func is None:
            return False
        if EVAL_NAME.match(func.name):
            return True
        test = TEST_NAME.match(func.name)
        return test is not None and ast_may_not_unit_test(func, scope.cls, self.index)

    def _eval_loops(self, scope: AstScope, scan: AstScan, modes, models) -> bool:
        index = self.index
        decorated = ast_may_disable(ast_decorators(scope.funcs), index, loose=False)
        eval_named = self._eval_named(scope)
        for loop, inside in ast_model_loops(scan, models, index):
            for first, model in inside:
                withs = ast_with_items(first.withs)
                region = decorated or ast_may_disable(withs, index, loose=False)
                if (region or eval_named) and self._train_mode_at(
                    scope, scan, loop, model, modes, models, eval_named
                ):
                    return True
        return False

    def _train_mode_at(
        self, scope: AstScope, scan: AstScan, loop: AstLoop, model: str, modes, models, named: bool
    ) -> bool:
        enclosing = [o for o in scan.loops if id(o.node) in loop.outer]

        def reaches(call: AstCall) -> bool:
            if loop.contains(call):
                return False
            return call.key < loop.key or any(o.contains(call) for o in enclosing)

        if any(loop.contains(c) for c in modes):
            return False
        reaching = {c.mode for c in modes if reaches(c)}
        if EVAL in reaching or UNKNOWN in reaching:
            return False
        index = self.index
        trained = any(reaches(c) and ast_may_backward(c.node, index) for c in scan.calls) and any(
            reaches(c) and related(m, model) for c, m in models
        )
        if TRAIN in reaching or trained:
            return trained
        if self._passed_to_helper(scan, model, lambda c: c.key < loop.key):
            return False
        built = self._built_here(scan, model, loop.key)
        if built is not None:
            return built
        func = scope.func
        if not named or func is None:
            return False
        facts = AstModuleFacts.of(index)
        if facts.called_from_evaluating_scope(func.name):
            return False
        cls = scope.cls
        if cls is not None and id(cls) in facts.evaluating:
            return False
        if model.startswith("self."):
            return cls is not None and id(cls) in facts.training
        return 0 not in facts.evaluating

    def _unrestored(self, scan: AstScan, modes, backwards, models) -> bool:
        """`EvalModeNotSet._check_unrestored` may report."""
        index = self.index
        for call in modes:
            if call.mode != EVAL or call.method != "eval":
                continue
            model = call.receiver
            if model is None or FROZEN_NAME.search(model.rsplit(".", 1)[-1]):
                continue
            enclosing = [o for o in scan.loops if o.contains(call)]
            for loop in reversed(enclosing):  # innermost first
                training = any(loop.contains(b) for b in backwards) and any(
                    loop.contains(c)
                    and related(m, model)
                    and not ast_must_disable(ast_with_items(c.withs), index, loose=True)
                    for c, m in models
                )
                if not training:
                    continue
                restored = any(loop.contains(c) and c.mode in (TRAIN, UNKNOWN) for c in modes)
                if not restored and not self._passed_to_helper(scan, model, loop.contains):
                    return True
                break
        return False

    @staticmethod
    def _passed_to_helper(scan: AstScan, model: str, when) -> bool:
        """`EvalModeNotSet._passed_to_helper` on the ast (exact)."""
        for call in scan.calls:
            if not when(call) or call.mode is not None:
                continue
            if call.receiver is not None and related(call.receiver, model):
                method = call.method or ""
                if method == "apply" or any(w in method for w in ("train", "mode", "eval")):
                    return True
                continue
            if (call.func or "").rsplit(".", 1)[-1] in HARMLESS_CALLEES:
                continue
            if any(related(name, model) for name in ast_argument_names(call.node)):
                return True
        return False

    def _built_here(self, scan: AstScan, model: str, before) -> bool | None:
        """`EvalModeNotSet._built_here`, True when the constructor may be a module's."""
        bound = [call for key, call in scan.bindings.get(model, ()) if key < before]
        while bound and _passthrough(bound[-1], model):
            bound.pop()
        if not bound:
            return None
        call = bound[-1]
        while (
            isinstance(call.func, ast.Attribute)
            and call.func.attr in PASSTHROUGH
            and isinstance(call.func.value, ast.Call)
        ):
            call = call.func.value
        for qual in self.index.qualnames(call.func):
            if qual.startswith(("torchvision.models.", "torch.nn.")) or qual in (
                "timm.create_model",
                "timm.models.create_model",
            ):
                return True
        return screen_dotted(call.func) in self._module_classes()

    def _module_classes(self) -> set[str]:
        """Top-level classes that may be `nn.Module`s (`local_classes` + `is_nn_module`)."""
        if self._classes is None:
            top = {id(s) for s in self.index.tree.body}
            self._classes = {c.name for c in nn_module_classes(self.index) if id(c) in top}
        return self._classes


def _passthrough(call: ast.Call, model: str) -> bool:
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr in PASSTHROUGH
        and screen_dotted(func.value) == model
    )
