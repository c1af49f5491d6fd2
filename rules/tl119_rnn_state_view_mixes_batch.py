"""
## What it does
Flags a two-dimensional `.view(...)`/`.reshape(...)` of the final state `h_n` (or `c_n`)
of an `nn.RNN`, `nn.LSTM` or `nn.GRU` that has more than one layer or direction
(`bidirectional=True`, or `num_layers` a literal of 2 or more), with no `transpose` or
`permute` first: `h_n.view(batch, -1)`, `h_n.view(-1, hidden * 2)`. The state is the second
result of calling the layer (`out, h_n = self.gru(x)`, `out, (h_n, c_n) = self.lstm(x)`,
`hidden[0]` of an LSTM's pair), followed through a function's straight-line locals.

## Why is this bad?
The state's shape is `(num_layers * num_directions, batch, hidden)`: the batch is the
*second* dimension. Flattening it to `(batch, -1)` reads the memory row by row, so row 0
of the result holds sample 0's and sample 1's forward states (or layer 1's state of two
samples), not sample 0's states from both directions. Shapes match, the model trains on
features mixed across the batch, and a prediction for one sample changes when another
sample of its batch changes.

## Example
```python
class Encoder(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.rnn = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, x):
        _, h_n = self.rnn(x)
        return h_n.view(x.size(0), -1)
```

## Use instead
```python
    def forward(self, x):
        _, h_n = self.rnn(x)
        return h_n.transpose(0, 1).reshape(x.size(0), -1)
```
or `torch.cat([h_n[-2], h_n[-1]], dim=1)` for the last layer's two directions.

## Fix safety
There is no fix: whether every layer's state or only the last layer's is wanted is the
author's choice (and the width of the next layer depends on it).

## Known false positives
None known: with more than one layer or direction, a flat `(rows, columns)` view of the
state always mixes the batch into the rows. Views with three or more dimensions
(`h_n.view(num_layers, 2, batch, hidden)`, the documented way to split layers and
directions) are not reported, nor are states of layers whose `num_layers` is not a
literal (a single layer has no mixing), states that went through any other call first,
and layers reached through containers.
"""

from __future__ import annotations

import libcst as cst
from trainlint.rules._analysis import (
    call_argument,
    enclosing_function_statement,
    int_literal,
    is_true,
    reaching_assignment,
    recurrent_layers,
    shape_length,
)

from trainlint.rule import Invalid, Rule, Valid

RESHAPES = ("view", "reshape")


class RnnStateViewMixesBatch(Rule):
    __doc__ = __doc__
    code = "TL119"
    name = "rnn-state-view-mixes-batch"
    message = (
        "`{text}` flattens the final state of `{layer}`, shaped (layers * directions, "
        "batch, hidden), without moving the batch first: rows mix different samples"
    )
    tokens = (("*rnn*", "*lstm*", "*gru*"),)

    VALID = [
        Valid(
            """
            import torch
            from torch import nn

            class Encoder(nn.Module):
                def __init__(self, dim, hidden):
                    super().__init__()
                    self.rnn = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
                    self.one = nn.LSTM(dim, hidden)

                def forward(self, x):
                    _, h_n = self.rnn(x)
                    a = h_n.transpose(0, 1).reshape(x.size(0), -1)
                    b = torch.cat([h_n[-2], h_n[-1]], 1)
                    c = h_n.view(1, 2, x.size(0), -1)
                    d = h_n[-1].view(x.size(0), -1)
                    _, (h1, _) = self.one(x)
                    return a, b, c, d, h1.view(x.size(0), -1)
            """
        ),
        # The output sequence, not the state; an unknown number of layers.
        Valid(
            """
            from torch import nn

            class Encoder(nn.Module):
                def __init__(self, dim, layers):
                    super().__init__()
                    self.rnn = nn.GRU(dim, dim, num_layers=2)
                    self.deep = nn.GRU(dim, dim, num_layers=layers)

                def forward(self, x):
                    out, _ = self.rnn(x)
                    _, h = self.deep(x)
                    return out.view(-1, out.size(2)), h.view(x.size(1), -1)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn

            class Encoder(nn.Module):
                def __init__(self, dim, hidden):
                    super().__init__()
                    self.rnn = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)

                def forward(self, x):
                    _, h_n = self.rnn(x)
                    return h_n.view(x.size(0), -1)
            """,
            line=10,
        ),
        # An LSTM's pair, two layers, `reshape`, the pair indexed, a local layer.
        Invalid(
            """
            import torch.nn as nn

            class Encoder(nn.Module):
                def __init__(self, dim, hidden):
                    super().__init__()
                    self.hidden = hidden
                    self.lstm = nn.LSTM(dim, hidden, 2, batch_first=True)

                def forward(self, x):
                    out, (h, c) = self.lstm(x)
                    a = h.reshape(-1, self.hidden * 2)
                    out, hidden = self.lstm(x)
                    return a, hidden[1].view(x.size(0), -1)

            def encode(x, b):
                rnn = nn.RNN(4, 4, bidirectional=True)
                seq, state = rnn(x)
                return state.reshape((b, -1))
            """,
            line=11,
            count=3,
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not (isinstance(func, cst.Attribute) and func.attr.value in RESHAPES):
            return
        if shape_length(node) != 2:
            return
        layers = self._state_of(func.value)
        if not layers or not all(_stacked(c) for c in layers):
            return
        layer = "nn." + self.context.qualname(layers[0].func).rsplit(".", 1)[1]
        self.report(
            node,
            self.message.format(text=self.context.code(node), layer=layer),
            help="use `h_n.transpose(0, 1).reshape(batch, -1)`, or `torch.cat([h_n[-2], h_n[-1]], 1)` "
            "for the last layer's two directions",
        )

    def _state_of(self, expr: cst.BaseExpression) -> list[cst.Call]:
        """The layers whose final state (h_n or c_n) `expr` is."""
        index = None
        if isinstance(expr, cst.Subscript) and len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index):
            index = int_literal(expr.slice[0].slice.value)
            if index not in (0, 1):
                return []
            expr = expr.value
        if not isinstance(expr, cst.Name):
            return []
        found = enclosing_function_statement(self.context.stack)
        if found is None:
            return []
        func, use = found
        reaching = reaching_assignment(func, expr.value, use)
        if reaching is None or not isinstance(reaching.value, cst.Call):
            return []
        layers = recurrent_layers(self.context.module, self.context.imports, reaching.value.func)
        if not layers:
            return []
        lstm = self.context.qualname(layers[0].func) == "torch.nn.LSTM"
        path = reaching.path if index is None else (*reaching.path, index)
        if path == (1,) and not lstm or lstm and path in ((1, 0), (1, 1)):
            return layers
        return []


def _stacked(call: cst.Call) -> bool:
    """More than one layer or direction, visibly."""
    if is_true(call_argument(call, "bidirectional")):
        return True
    layers = int_literal(call_argument(call, "num_layers", 2))
    return layers is not None and layers >= 2
