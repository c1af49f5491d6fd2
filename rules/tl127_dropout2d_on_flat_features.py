"""
## What it does
Flags channel dropout (`nn.Dropout2d`, `nn.Dropout3d`, `F.dropout2d`, `F.dropout3d`)
applied to features that are not feature maps:

- in `nn.Sequential(...)`, a `Dropout2d`/`Dropout3d` whose nearest preceding layer, past
  element-wise ones (activations, `BatchNorm1d`, `LayerNorm`, `Dropout`), is `nn.Linear`
  or `nn.Flatten`;
- in a function, `self.drop(x)` (a `Dropout2d`/`Dropout3d` module) or `F.dropout2d(x)`
  where `x` is visibly the output of an `nn.Linear` layer, of `torch.flatten(x, 1)` /
  `x.flatten(1)` / a two-dimensional `view`/`reshape`, of an element-wise function of
  one, or the output sequence of an `nn.RNN`/`LSTM`/`GRU` (followed through straight-line
  locals).

## Why is this bad?
Channel dropout zeroes whole channels of `(N, C, H, W)` (or `(N, C, D, H, W)`) feature
maps. Given `(N, C)` features it has no channels to drop: torch 2.13 warns that a 2-D
input "is deprecated and will result in an error in a future release" and, for now,
drops single features as `nn.Dropout` does, so the code is one upgrade away from
breaking. Given an RNN's `(N, T, H)` output it reads `(N, C, L)` and zeroes whole *time
steps* of each sample, which is not the feature dropout the author meant.

## Example
```python
head = nn.Sequential(
    nn.Flatten(),
    nn.Linear(512, 256),
    nn.ReLU(),
    nn.Dropout2d(0.5),
    nn.Linear(256, 10),
)
```

## Use instead
```python
head = nn.Sequential(
    nn.Flatten(),
    nn.Linear(512, 256),
    nn.ReLU(),
    nn.Dropout(0.5),
    nn.Linear(256, 10),
)
```

## Fix safety
Unsafe: `nn.Dropout2d` -> `nn.Dropout` (and `F.dropout2d` -> `F.dropout`). On `(N, C)`
features `nn.Dropout` drops as today's `Dropout2d` does, but draws from the random stream
differently; on a sequence it drops single features instead of whole time steps, on
purpose. The fix is offered where the constructor is spelled through a module
(`nn.Dropout2d`, `F.dropout2d`); a name imported on its own (`from torch.nn import
Dropout2d`) is reported without one. A dropout module also used on feature maps
elsewhere would change there too; check its other uses.

## Known false positives
None known. Features whose origin is not visible (arguments, attributes, other
functions' results) are not checked, so a dropout module used on both flat features and
feature maps is reported only where the flat input is visible.
"""

from __future__ import annotations

import libcst as cst
from trainlint.rules._analysis import (
    built_by,
    call_argument,
    enclosing_function_statement,
    int_literal,
    reaching_assignment,
    recurrent_layers,
    shape_length,
)

from trainlint.rule import Applicability, Invalid, Rule, Valid

CHANNEL_DROPOUT_MODULES = {"torch.nn.Dropout2d", "torch.nn.Dropout3d"}
CHANNEL_DROPOUT_FUNCTIONS = {"torch.nn.functional.dropout2d", "torch.nn.functional.dropout3d"}
FLATTENING_LAYERS = {"torch.nn.Linear", "torch.nn.Flatten"}
# layers and functions whose output has the shape of their input
ELEMENTWISE_LAYERS = {
    f"torch.nn.{name}"
    for name in (
        "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
        "Tanh", "Sigmoid", "Hardswish", "Hardtanh", "BatchNorm1d", "LayerNorm", "Dropout",
        "Identity",
    )
}
ELEMENTWISE_FUNCTIONS = {
    "torch.relu", "torch.tanh", "torch.sigmoid", "torch.nn.functional.relu",
    "torch.nn.functional.gelu", "torch.nn.functional.silu", "torch.nn.functional.elu",
    "torch.nn.functional.leaky_relu", "torch.nn.functional.tanh", "torch.nn.functional.sigmoid",
}
MAX_HOPS = 6
RNN_OUTPUT = "the output sequence of a recurrent layer"


class Dropout2dOnFlatFeatures(Rule):
    __doc__ = __doc__
    code = "TL127"
    name = "dropout2d-on-flat-features"
    message = (
        "`{drop}` applied to {what}: channel dropout expects feature maps; {effect}"
    )
    effects = {
        True: "on an `(N, T, H)` sequence it zeroes whole time steps",
        False: "a 2-D input is deprecated and will raise in a future torch release",
    }
    fix_applicability = Applicability.UNSAFE
    tokens = (("*dropout2d*", "*dropout3d*"),)

    VALID = [
        # Feature maps from convolutions; plain dropout after Linear.
        Valid(
            """
            import torch.nn.functional as F
            from torch import nn

            features = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Dropout2d(0.2))
            head = nn.Sequential(nn.Flatten(), nn.Linear(512, 10), nn.Dropout(0.5))

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(3, 16, 3)
                    self.drop = nn.Dropout2d(0.2)
                    self.fc = nn.Linear(16, 10)

                def forward(self, x):
                    x = self.drop(F.relu(self.conv(x)))
                    y = F.dropout2d(x.view(x.size(0), 16, 4, 4), 0.1, self.training)
                    return self.fc(x.mean((2, 3))), y
            """
        ),
        # Inputs whose shape is not visible.
        Valid(
            """
            import torch.nn.functional as F
            from torch import nn

            class Block(nn.Module):
                def __init__(self, body):
                    super().__init__()
                    self.body = body
                    self.drop = nn.Dropout2d(0.1)

                def forward(self, x):
                    return self.drop(self.body(x)), F.dropout2d(x, 0.1, self.training)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn

            head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(512, 256),
                nn.ReLU(),
                nn.Dropout2d(0.5),
                nn.Linear(256, 10),
            )
            """,
            fixed="""
            from torch import nn

            head = nn.Sequential(
                nn.Flatten(),
                nn.Linear(512, 256),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(256, 10),
            )
            """,
            line=7,
        ),
        # A module used on a Linear's output and on an RNN's; the functional form; a
        # name imported alone is reported without a fix.
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn
            from torch.nn import Dropout3d

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(64, 32)
                    self.drop = nn.Dropout2d(0.3)
                    self.rnn = nn.LSTM(32, 32, batch_first=True)
                    self.deep = Dropout3d(0.1)

                def forward(self, x):
                    h = F.relu(self.fc(x))
                    h = self.drop(h)
                    out, _ = self.rnn(h.unsqueeze(1))
                    z = F.dropout2d(torch.flatten(out, 1), 0.2, self.training)
                    return self.deep(out), z
            """,
            fixed="""
            import torch
            import torch.nn.functional as F
            from torch import nn
            from torch.nn import Dropout3d

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(64, 32)
                    self.drop = nn.Dropout(0.3)
                    self.rnn = nn.LSTM(32, 32, batch_first=True)
                    self.deep = Dropout3d(0.1)

                def forward(self, x):
                    h = F.relu(self.fc(x))
                    h = self.drop(h)
                    out, _ = self.rnn(h.unsqueeze(1))
                    z = F.dropout(torch.flatten(out, 1), 0.2, self.training)
                    return self.deep(out), z
            """,
            line=16,
            count=3,
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        qualname = self.context.qualname(node.func)
        if qualname == "torch.nn.Sequential":
            self._sequential(node)
        elif qualname in CHANNEL_DROPOUT_FUNCTIONS:
            if node.args and node.args[0].keyword is None:
                self._applied(node, node.func, qualname, node.args[0].value)
        elif qualname is None and node.args and node.args[0].keyword is None:
            calls = built_by(self.context.module, self.context.imports, node.func)
            if calls and self.context.qualname(calls[0].func) in CHANNEL_DROPOUT_MODULES:
                self._applied(node, calls[0].func, self.context.qualname(calls[0].func), node.args[0].value)

    def _sequential(self, node: cst.Call) -> None:
        previous = None
        for arg in node.args:
            if arg.star or arg.keyword is not None:
                return
            value = arg.value
            qualname = self.context.qualname(value.func) if isinstance(value, cst.Call) else None
            if qualname in CHANNEL_DROPOUT_MODULES and previous in FLATTENING_LAYERS:
                self._report(value, value.func, qualname, f"the output of `nn.{previous.rsplit('.', 1)[1]}`")
            if qualname not in ELEMENTWISE_LAYERS:
                previous = qualname

    def _applied(self, node, constructor, qualname, features) -> None:
        what = self._flat(features, None, MAX_HOPS)
        if what is not None:
            self._report(node, constructor, qualname, what)

    def _report(self, node, constructor: cst.BaseExpression, qualname: str, what: str) -> None:
        short = qualname.rsplit(".", 1)[1]
        label = f"F.{short}" if qualname in CHANNEL_DROPOUT_FUNCTIONS else f"nn.{short}"
        plain = "dropout" if label.startswith("F.") else "Dropout"
        fix = None
        if isinstance(constructor, cst.Attribute):
            fix = self.make_fix(
                f"Use `{label.split('.')[0]}.{plain}`",
                (constructor, constructor.with_changes(attr=cst.Name(plain))),
            )
        effect = self.effects[what == RNN_OUTPUT]
        self.report(
            node,
            self.message.format(drop=label, what=what, effect=effect),
            fix=fix,
            help=f"use `{label.split('.')[0]}.{plain}` for `(N, features)` inputs",
        )

    # ------------------------------------------------------------------ features

    def _flat(self, expr: cst.BaseExpression, statement, hops: int) -> str | None:
        """What makes `expr` visibly `(N, features)` or an RNN's output; None if unknown."""
        if hops == 0:
            return None
        if isinstance(expr, cst.Name):
            return self._name_flat(expr.value, statement, hops)
        if not isinstance(expr, cst.Call) or not expr.args:
            return None
        qualname = self.context.qualname(expr.func)
        if qualname in ELEMENTWISE_FUNCTIONS:
            return self._flat(expr.args[0].value, statement, hops - 1)
        if qualname == "torch.flatten":
            start = call_argument(expr, "start_dim", 1)
            end = call_argument(expr, "end_dim", 2)
            return "flattened features" if end is None and start is not None and int_literal(start) == 1 else None
        if qualname is not None:
            return None
        if isinstance(expr.func, cst.Attribute):
            method = expr.func.attr.value
            if method == "flatten" and len(expr.args) == 1 and int_literal(expr.args[0].value) == 1:
                return "flattened features"
            if method in ("view", "reshape") and shape_length(expr) == 2:
                return "a two-dimensional view"
        built = built_by(self.context.module, self.context.imports, expr.func)
        kind = self.context.qualname(built[0].func) if built else None
        if kind == "torch.nn.Linear":
            return "the output of `nn.Linear`"
        if kind in ELEMENTWISE_LAYERS:
            return self._flat(expr.args[0].value, statement, hops - 1)
        return None

    def _name_flat(self, name: str, statement, hops: int) -> str | None:
        found = enclosing_function_statement(self.context.stack)
        if found is None:
            return None
        func, use = found
        reaching = reaching_assignment(func, name, statement or use)
        if reaching is None:
            return None
        if reaching.path == (0,) and isinstance(reaching.value, cst.Call):
            if recurrent_layers(self.context.module, self.context.imports, reaching.value.func):
                return RNN_OUTPUT
            return None
        if reaching.path:
            return None
        return self._flat(reaching.value, reaching.statement, hops - 1)
