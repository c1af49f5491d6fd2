"""
## What it does
Flags a resume from a checkpoint that restores the model's weights and the epoch (or
step) counter, but not the state of an optimizer, LR scheduler or gradient scaler that
the same file builds. A resume is recognised in one function (or at module level): a
`torch.load(...)` result passed to a model's `load_state_dict`, and an `"epoch"`-like key
(`epoch`, `step`, `iter`) read from the same checkpoint. The report is on the model's
`load_state_dict` call and names what is not restored.

## Why is this bad?
Training continues at the saved epoch, but the optimizer starts again from nothing: Adam's
moment estimates and SGD's momentum buffers are zero, so the first updates after the
resume are too large, and a scheduler built afresh starts its schedule again from the
first epoch (a warm-up runs twice, a cosine schedule jumps back to the peak LR). The
resumed run silently differs from an uninterrupted one.

## Example
```python
model = Net()
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
if args.resume:
    ckpt = torch.load(args.resume, map_location="cpu")
    model.load_state_dict(ckpt["model"])
    start_epoch = ckpt["epoch"] + 1
```

## Use instead
```python
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    start_epoch = ckpt["epoch"] + 1
```
(and save `optimizer.state_dict()` in the checkpoint).

## Fix safety
No fix: the checkpoint may not hold the optimizer's state at all; saving it is part of
the fix. Not observable by a probe.

## Known limitations
Optimizers, schedulers and scalers are found by their constructor in the file
(`torch.optim.*`, `torch.optim.lr_scheduler.*`, `GradScaler`); any `load_state_dict` on
one of them anywhere in the file counts as restoring it, as does passing it to a call
whose name says `load`, `resume` or `restore`, and a scheduler built with `last_epoch=`
is taken as restored. Fine-tuning from pretrained weights (no epoch read from the
checkpoint) is not reported.
"""

from __future__ import annotations

import re

import libcst as cst

from trainlint.imports import dotted_name
from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor, names_in
from trainlint.rules._loops import OPTIMIZER, SCALER, SCHEDULER, Roles, module_roles
from trainlint.traverse import walk

LOAD = "torch.load"
STATE_ROLES = (OPTIMIZER, SCHEDULER, SCALER)
COUNTER_KEY = re.compile(r"epoch|step|iter", re.I)
RESTORING_CALL = re.compile(r"load|resume|restore", re.I)


class ResumeWithoutOptimizerState(Rule):
    __doc__ = __doc__
    code = "TL121"
    name = "resume-without-optimizer-state"
    message = (
        "resumes the model and the {counter} from a checkpoint but not the state of {missing}: "
        "{effect}"
    )
    tokens = ("load_state_dict",)

    VALID = [
        # Everything restored.
        Valid(
            """
            import torch

            model = Net()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 30)
            ckpt = torch.load("last.pt")
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            start_epoch = ckpt["epoch"]
            """
        ),
        # Fine-tuning: weights only, no epoch resumed.
        Valid(
            """
            import torch

            def main():
                model = Net()
                optimizer = torch.optim.AdamW(model.parameters())
                state = torch.load("pretrained.pt")
                model.load_state_dict(state["model"], strict=False)
            """
        ),
        # Restored by a helper, or the scheduler rebuilt at the saved epoch.
        Valid(
            """
            import torch
            from torch.optim import Adam, lr_scheduler

            def main(path):
                model = Net()
                opt = Adam(model.parameters())
                ckpt = torch.load(path)
                model.load_state_dict(ckpt["state_dict"])
                start = ckpt["epoch"]
                restore_optimizer(opt, ckpt)
                sched = lr_scheduler.CosineAnnealingLR(opt, 100, last_epoch=start - 1)
            """
        ),
        # No optimizer built in this file: an evaluation script.
        Valid(
            """
            import torch

            model = Net()
            ckpt = torch.load("best.pt")
            model.load_state_dict(ckpt["model"])
            print("evaluating epoch", ckpt["epoch"])
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            model = Net()
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
            if args.resume:
                ckpt = torch.load(args.resume, map_location="cpu")
                model.load_state_dict(ckpt["model"])
                start_epoch = ckpt["epoch"] + 1
            """,
            line=7,
        ),
        # In a method, with self attributes; the optimizer restored but not the scheduler
        # nor the scaler.
        Invalid(
            """
            import torch
            from torch.cuda.amp import GradScaler

            class Trainer:
                def __init__(self, model):
                    self.model = model
                    self.optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                    self.lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(self.optimizer, 0.1, 1000)
                    self.scaler = GradScaler()

                def resume(self, path):
                    state = torch.load(path)
                    self.model.load_state_dict(state["weights"])
                    self.optimizer.load_state_dict(state["optim"])
                    self.global_step = state.get("global_step", 0)
            """,
            line=13,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._facts: tuple[set[str], set[str]] | None = None
        # the scopes being visited (module, functions), innermost last
        self.scopes: list[_Resume] = []

    @property
    def roles(self) -> Roles:
        return module_roles(self.context.module, self.context.imports)

    def visit_Module(self, node: cst.Module) -> None:
        self.scopes.append(_Resume(node))

    def leave_Module(self, original_node: cst.Module) -> None:
        self._check(self.scopes.pop())

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.scopes.append(_Resume(node))

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._check(self.scopes.pop())

    def _scope(self) -> _Resume | None:
        """The scope whose own code is being visited; None in a class body."""
        scope = self.scopes[-1]
        for ancestor in reversed(self.context.stack):
            if ancestor is scope.node:
                return scope
            if isinstance(ancestor, cst.ClassDef):
                return None
        return scope

    def _is_load(self, node: cst.CSTNode) -> bool:
        return isinstance(node, cst.Call) and self.context.qualname(node.func) == LOAD

    def visit_Assign(self, node: cst.Assign) -> None:
        scope = self._scope()
        if scope is not None and self._is_load(node.value):
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    scope.checkpoints.add(target.target.value)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute) or not node.args:
            return
        method = func.attr.value
        if method not in ("load_state_dict", "get"):
            return
        scope = self._scope()
        if scope is None:
            return
        if method == "load_state_dict" and scope.model_load is None:
            if self.roles.of(func.value) in STATE_ROLES:
                return
            arg = node.args[0].value
            if names_in(arg) & scope.checkpoints or self._contains_load(arg):
                scope.model_load = node
        elif method == "get" and dotted_name(func.value) in scope.checkpoints:
            scope.key(node.args[0].value)

    def visit_Subscript(self, node: cst.Subscript) -> None:
        scope = self._scope()
        if scope is not None and dotted_name(node.value) in scope.checkpoints and len(node.slice) == 1:
            index = node.slice[0].slice
            if isinstance(index, cst.Index):
                scope.key(index.value)

    def _contains_load(self, node: cst.CSTNode) -> bool:
        while isinstance(node, (cst.Subscript, cst.Call)) and not self._is_load(node):
            node = node.value if isinstance(node, cst.Subscript) else node.func
            if isinstance(node, cst.Attribute):
                node = node.value
        return self._is_load(node)

    def _check(self, resume: _Resume) -> None:
        if resume.model_load is None or resume.counter is None:
            return
        built, restored = self._file_facts()
        missing = [role for role in STATE_ROLES if role in built and role not in restored]
        if not missing:
            return
        names = {OPTIMIZER: "the optimizer", SCHEDULER: "the LR scheduler", SCALER: "the gradient scaler"}
        effects = {
            OPTIMIZER: "the optimizer's momentum and moment estimates restart from zero",
            SCHEDULER: "the LR schedule restarts from its first step",
            SCALER: "the loss scale restarts from its initial value",
        }
        self.report(
            resume.model_load,
            self.message.format(
                counter=f"`{resume.counter}`",
                missing=_join([names[r] for r in missing]),
                effect=_join([effects[r] for r in missing]),
            ),
            help="save and load `state_dict()` of each of them with the model's",
        )

    def _file_facts(self) -> tuple[set[str], set[str]]:
        """The roles built in the file, and the roles whose state the file restores."""
        if self._facts is None:
            finder = _Restores(self.roles)
            walk(self.context.module, finder)
            self._facts = (set(self.roles.bound.values()), finder.restored)
        return self._facts


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class _Resume:
    """What one scope (module or function) does with checkpoints: the names bound to a
    `torch.load(...)`, the model's `load_state_dict` call fed from one, and the first
    counter key read from one."""

    def __init__(self, node: cst.CSTNode) -> None:
        self.node = node
        self.checkpoints: set[str] = set()
        self.model_load: cst.Call | None = None
        self.counter: str | None = None

    def key(self, key: cst.CSTNode) -> None:
        if self.counter is None and isinstance(key, cst.SimpleString):
            text = key.evaluated_value
            if isinstance(text, str) and COUNTER_KEY.search(text):
                self.counter = text


class _Restores(Visitor):
    """Roles whose state the file restores: `load_state_dict` on them, passing them to a
    loading/resuming call, or a scheduler built with `last_epoch=`."""

    def __init__(self, roles) -> None:
        self.roles = roles
        self.restored: set[str] = set()

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "load_state_dict":
            role = self.roles.of(func.value)
            if role in STATE_ROLES:
                self.restored.add(role)
        callee = dotted_name(func) or ""
        if RESTORING_CALL.search(callee.rsplit(".", 1)[-1]):
            for arg in node.args:
                role = self.roles.of(arg.value)
                if role in STATE_ROLES:
                    self.restored.add(role)
        if any(a.keyword is not None and a.keyword.value == "last_epoch" for a in node.args):
            self.restored.add(SCHEDULER)
