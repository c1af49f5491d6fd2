"""
## What it does
Flags a functional dropout call, `torch.nn.functional.dropout(x, p)` (and `dropout1d`,
`dropout2d`, `dropout3d`), inside a method of an `nn.Module` subclass when the call does
not pass `training=` (as a keyword or as the third positional argument). It also flags
`F.alpha_dropout` and `F.feature_alpha_dropout` called the same way, whose default is the
opposite one (`training=False`): there the dropout never runs at all.

## Why is this bad?
Unlike the `nn.Dropout` module, the functional form does not know about `model.eval()`:
`F.dropout` defaults to `training=True`, so the mask keeps being applied at validation
and inference time. Evaluation metrics drop, predictions become random from one call to
the next, and nothing warns. The alpha variants default to `training=False` instead, so
the regularisation silently never happens during training.

## Example
```python
import torch.nn.functional as F
from torch import nn

class Head(nn.Module):
    def __init__(self, dim, classes):
        super().__init__()
        self.fc = nn.Linear(dim, classes)

    def forward(self, x):
        x = F.dropout(x, 0.5)
        return self.fc(x)
```

## Use instead
```python
class Head(nn.Module):
    ...
    def forward(self, x):
        x = F.dropout(x, 0.5, training=self.training)
        return self.fc(x)
```
or keep a `self.drop = nn.Dropout(0.5)` built in `__init__`. An inline `nn.Dropout(0.5)(x)`
built inside `forward` has the same problem (a fresh module is always in training mode);
TL111 `module-created-in-forward` reports that form.

## Fix safety
Unsafe. The fix adds `training=self.training` (with the method's own name for `self`),
which switches dropout off in `eval()` for `F.dropout*` and on in `train()` for the
alpha variants. That is the intended behaviour in the common case, but it changes the
numbers the model produces, and code that wants dropout at inference on purpose
(Monte-Carlo dropout, Tacotron-style prenets) should say `training=True` instead.

## Known false positives
Any explicit `training=` value silences the rule, so deliberate always-on dropout is
written `F.dropout(x, p, training=True)`. The rule also stays quiet where the code already
looks at the mode: under an `if`, `while` or conditional expression whose test mentions
`training` (`if self.training:`), after an early `if not self.training: return ...`, and
after `assert self.training`. It does not look at calls whose arguments are unpacked
(`*args`, `**kwargs`), at plain functions outside a class (there is no `self.training`
to pass), at static and class methods, nor at `torch.dropout(x, p, train)`, whose `train`
argument is required. A module is recognised by its bases in the same file
(`nn.Module`, any `torch.nn` class, or a local subclass of one), so a subclass of a
third-party base class (`LightningModule`, `PreTrainedModel`) is not checked.
"""

from __future__ import annotations

import ast

import libcst as cst
from trainlint.rules._analysis import Visitor, is_nn_module

from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.traverse import walk

FUNCTIONAL = "torch.nn.functional."
# function -> its default for `training`
DROPOUTS = {
    "dropout": True,
    "dropout1d": True,
    "dropout2d": True,
    "dropout3d": True,
    "alpha_dropout": False,
    "feature_alpha_dropout": False,
}
STATIC_DECORATORS = {"staticmethod", "classmethod"}


class DropoutAlwaysOn(Rule):
    __doc__ = __doc__
    code = "TL114"
    name = "dropout-always-on"
    message = (
        "`{func}` without `training=` stays on after `model.eval()` (its default is "
        "`training=True`); pass `training={self_name}.training`"
    )
    message_off = (
        "`{func}` without `training=` never drops (its default is `training=False`), even "
        "in `train()` mode; pass `training={self_name}.training`"
    )
    fix_applicability = Applicability.UNSAFE
    tokens = ("*dropout*",)

    VALID = [
        # The flag is passed: as a keyword (any value), or positionally.
        Valid(
            """
            import torch.nn.functional as F
            from torch import nn

            class Net(nn.Module):
                def forward(self, x):
                    x = F.dropout(x, 0.5, training=self.training)
                    x = F.dropout(x, p=0.1, training=True)  # Monte-Carlo dropout
                    x = F.dropout2d(x, 0.2, self.training)
                    return F.alpha_dropout(x, 0.1, training=self.training)
            """
        ),
        # Functional code outside a module: there is no `self.training`.
        Valid(
            """
            import torch.nn.functional as F

            def augment(x, p=0.5):
                return F.dropout(x, p)

            class Trainer:
                def mask(self, x):
                    return F.dropout(x, 0.1)
            """
        ),
        # Static methods of a module have no `self`.
        Valid(
            """
            import torch
            from torch import nn

            class Block(nn.Module):
                @staticmethod
                def noisy(x):
                    return torch.nn.functional.dropout(x, 0.1)
            """
        ),
        # The mode is already checked.
        Valid(
            """
            import torch.nn.functional as F
            from torch import nn

            class Net(nn.Module):
                def forward(self, x):
                    if self.training:
                        x = F.dropout(x, 0.5)
                    y = F.dropout(x, 0.1) if self.training and self.p else x
                    return y

                def embed(self, x):
                    if not self.training:
                        return x
                    return F.dropout(x, self.p)
            """
        ),
        # Unpacked arguments may carry the flag; torch.dropout requires `train`.
        Valid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn

            class Net(nn.Module):
                def forward(self, x, *args, **kwargs):
                    x = F.dropout(x, *args)
                    x = F.dropout(x, **kwargs)
                    return torch.dropout(x, 0.5, self.training)
            """
        ),
        # A method called `dropout` on something else, and a local function named so.
        Valid(
            """
            from torch import nn

            def dropout(x, p):
                return x

            class Net(nn.Module):
                def forward(self, x):
                    x = self.dropout(x)
                    return dropout(x, 0.5)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn.functional as F
            from torch import nn

            class Head(nn.Module):
                def __init__(self, dim, classes):
                    super().__init__()
                    self.fc = nn.Linear(dim, classes)

                def forward(self, x):
                    x = F.dropout(x, 0.5)
                    return self.fc(x)
            """,
            fixed="""
            import torch.nn.functional as F
            from torch import nn

            class Head(nn.Module):
                def __init__(self, dim, classes):
                    super().__init__()
                    self.fc = nn.Linear(dim, classes)

                def forward(self, x):
                    x = F.dropout(x, 0.5, training=self.training)
                    return self.fc(x)
            """,
            line=10,
        ),
        # Import aliases, keywords, a trailing comma across lines, a local Module subclass,
        # a helper method and a closure inside forward.
        Invalid(
            """
            import torch as T
            from torch.nn import functional as fn
            from torch.nn.functional import dropout2d

            class Base(T.nn.Module):
                pass

            class Net(Base):
                def forward(me, x):
                    x = T.nn.functional.dropout(x, p=0.1, inplace=True)
                    x = dropout2d(
                        x,
                        0.2,
                    )
                    f = lambda y: fn.dropout3d(y)
                    return f(x)

                def _drop(self, x):
                    return fn.feature_alpha_dropout(x, 0.1)
            """,
            fixed="""
            import torch as T
            from torch.nn import functional as fn
            from torch.nn.functional import dropout2d

            class Base(T.nn.Module):
                pass

            class Net(Base):
                def forward(me, x):
                    x = T.nn.functional.dropout(x, p=0.1, inplace=True, training=me.training)
                    x = dropout2d(
                        x,
                        0.2,
                        training=me.training,
                    )
                    f = lambda y: fn.dropout3d(y, training=me.training)
                    return f(x)

                def _drop(self, x):
                    return fn.feature_alpha_dropout(x, 0.1, training=self.training)
            """,
            line=10,
            count=4,
        ),
        # An unrelated `if` does not count as a check of the mode.
        Invalid(
            """
            import torch.nn.functional as F
            import torch.nn as nn

            class Net(nn.Linear):
                def forward(self, x):
                    if self.use_dropout:
                        x = F.dropout(x)
                    return super().forward(x)
            """,
            fixed="""
            import torch.nn.functional as F
            import torch.nn as nn

            class Net(nn.Linear):
                def forward(self, x):
                    if self.use_dropout:
                        x = F.dropout(x, training=self.training)
                    return super().forward(x)
            """,
            line=7,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._module_class: dict[int, bool] = {}

    @classmethod
    def screen(cls, index) -> bool:
        if not any(c.bases for c in index.nodes(ast.ClassDef)):
            return False
        for call in index.nodes(ast.Call):
            name = _ast_callee(call.func)
            if name in DROPOUTS and len(call.args) < 3 and not any(
                k.arg in ("training", None) for k in call.keywords
            ) and not any(isinstance(a, ast.Starred) for a in call.args):
                return True
        return False

    def visit_Call(self, node: cst.Call) -> None:
        qualname = self.context.qualname(node.func)
        if qualname is None or not qualname.startswith(FUNCTIONAL):
            return
        func = qualname[len(FUNCTIONAL):]
        if func not in DROPOUTS or _passes_training(node):
            return
        self_name = self._self_name()
        if self_name is None or self._mode_checked(node):
            return
        new_arg = cst.Arg(
            keyword=cst.Name("training"),
            equal=cst.AssignEqual(
                whitespace_before=cst.SimpleWhitespace(""),
                whitespace_after=cst.SimpleWhitespace(""),
            ),
            value=cst.Attribute(cst.Name(self_name), cst.Name("training")),
        )
        fix = self.make_fix(
            f"Pass `training={self_name}.training`",
            (node, node.with_changes(args=_append_arg(node.args, new_arg))),
        )
        template = self.message if DROPOUTS[func] else self.message_off
        self.report(
            node,
            template.format(func=f"F.{func}", self_name=self_name),
            fix=fix,
            help="use `training=True` if dropout at inference is intended (Monte-Carlo dropout)",
        )

    # ------------------------------------------------------------------ context

    def _self_name(self) -> str | None:
        """The `self` of the enclosing method of an nn.Module class, seen from the call
        (through nested functions and lambdas that do not rebind it)."""
        stack = self.context.stack
        for k in range(len(stack) - 1, -1, -1):
            node = stack[k]
            if isinstance(node, cst.ClassDef):
                return None  # a class body, or a class nested in a function
            if not isinstance(node, cst.FunctionDef):
                continue
            if k >= 2 and isinstance(stack[k - 2], cst.ClassDef):
                cls = stack[k - 2]
                if not self._is_module(cls) or _is_static(node):
                    return None
                params = [*node.params.posonly_params, *node.params.params]
                if not params:
                    return None
                name = params[0].name.value
                return None if self._rebound_inside(stack[k + 1 :], name) else name
        return None

    @staticmethod
    def _rebound_inside(inner: list[cst.CSTNode], name: str) -> bool:
        """Whether a nested function or lambda between the method and the call takes a
        parameter named like the method's `self`."""
        for node in inner:
            if isinstance(node, (cst.FunctionDef, cst.Lambda)):
                p = node.params
                names = [x.name.value for x in (*p.posonly_params, *p.params, *p.kwonly_params)]
                if name in names:
                    return True
        return False

    def _is_module(self, cls: cst.ClassDef) -> bool:
        key = id(cls)
        if key not in self._module_class:
            self._module_class[key] = is_nn_module(cls, self.context.imports, self.context.module)
        return self._module_class[key]

    def _mode_checked(self, call: cst.Call) -> bool:
        """The call sits under a test of the mode, or after an early exit on one."""
        stack = [*self.context.stack, call]
        for k, node in enumerate(stack[:-1]):
            if isinstance(node, (cst.If, cst.While, cst.IfExp)) and _mentions_training(node.test):
                # only the branches are guarded, not the test itself
                if stack[k + 1] is not node.test:
                    return True
        # early exits and asserts in the blocks of the method that lead to the call
        first = max(k for k, n in enumerate(stack) if isinstance(n, cst.ClassDef))
        for k, node in enumerate(stack[:-1]):
            if k <= first or not isinstance(node, cst.IndentedBlock):
                continue
            child = stack[k + 1]
            for stmt in node.body:
                if stmt is child:
                    break
                if _exits_on_training(stmt):
                    return True
        return False


def _ast_callee(func: ast.expr) -> str | None:
    """The last name of a callee, or None for a method of `self` (`self.dropout(x)`)."""
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


def _passes_training(call: cst.Call) -> bool:
    positional = 0
    for arg in call.args:
        if arg.star:  # *args / **kwargs may carry it
            return True
        if arg.keyword is None:
            positional += 1
        elif arg.keyword.value == "training":
            return True
    return positional >= 3


def _is_static(func: cst.FunctionDef) -> bool:
    for dec in func.decorators:
        expr = dec.decorator
        name = expr.attr.value if isinstance(expr, cst.Attribute) else getattr(expr, "value", None)
        if name in STATIC_DECORATORS:
            return True
    return False


class _TrainingFinder(Visitor):
    def __init__(self) -> None:
        self.found = False

    def visit_Name(self, node: cst.Name) -> None:
        if "training" in node.value.lower():
            self.found = True


def _mentions_training(expr: cst.CSTNode) -> bool:
    finder = _TrainingFinder()
    walk(expr, finder)
    return finder.found


def _exits_on_training(stmt: cst.BaseStatement) -> bool:
    if isinstance(stmt, cst.SimpleStatementLine):
        return any(isinstance(s, cst.Assert) and _mentions_training(s.test) for s in stmt.body)
    if isinstance(stmt, cst.If) and _mentions_training(stmt.test):
        body = stmt.body
        last = body.body[-1] if isinstance(body, cst.IndentedBlock) else body
        smalls = last.body if isinstance(last, (cst.SimpleStatementLine, cst.SimpleStatementSuite)) else ()
        if isinstance(body, cst.SimpleStatementSuite):
            smalls = body.body
        return any(isinstance(s, (cst.Return, cst.Raise, cst.Continue, cst.Break)) for s in smalls)
    return False


def _append_arg(args: tuple[cst.Arg, ...] | list[cst.Arg], new: cst.Arg) -> list[cst.Arg]:
    """Append a keyword argument, keeping a trailing comma and the one-per-line layout: the
    new argument takes over the last one's comma and the space before the `)`."""
    args = list(args)
    if not args:
        return [new]
    last = args[-1]
    separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    if isinstance(last.comma, cst.Comma) and len(args) > 1 and isinstance(args[-2].comma, cst.Comma):
        separator = args[-2].comma  # one argument per line: the same line break
    moved = new.with_changes(comma=last.comma, whitespace_after_arg=last.whitespace_after_arg)
    last = last.with_changes(comma=separator, whitespace_after_arg=cst.SimpleWhitespace(""))
    return [*args[:-1], last, moved]
