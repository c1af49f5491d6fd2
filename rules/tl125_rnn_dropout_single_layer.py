"""
## What it does
Flags `nn.RNN`, `nn.LSTM` and `nn.GRU` built with a `dropout=` other than `0` while the
layer has a single recurrent layer: `num_layers` not passed (it defaults to 1) or passed
as the literal `1`.

## Why is this bad?
The recurrent layers apply `dropout` to the outputs of every layer *except the last*.
With one layer there is no such output, so the dropout is never applied: the model
trains without the regularisation its author configured, and torch only says so in a
`UserWarning` at construction ("dropout option adds dropout after all but last recurrent
layer, so non-zero dropout expects num_layers greater than 1").

## Example
```python
from torch import nn

class Encoder(nn.Module):
    def __init__(self, vocab, dim):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.rnn = nn.LSTM(dim, dim, batch_first=True, dropout=0.3)
```

## Use instead
Apply the dropout yourself where it should act, or stack two layers:
```python
        self.rnn = nn.LSTM(dim, dim, batch_first=True)
        self.drop = nn.Dropout(0.3)      # applied to the LSTM's output in forward
```
or `nn.LSTM(dim, dim, num_layers=2, dropout=0.3)`.

## Fix safety
There is no fix: whether the dropout belongs after the layer or a second layer was
intended is the author's choice.

## Known false positives
A `dropout=` given by a variable is reported too when the layer certainly has one
layer: whatever its value, it does nothing there. The rule stays quiet when
`num_layers` is anything but the literal `1` (a variable may be larger), when the
dropout is `0` or an `if`-expression with a `0` branch
(`dropout=0 if layers == 1 else p`), and when arguments are unpacked (`**cfg`).
"""

from __future__ import annotations

import libcst as cst
from trainlint.rules._analysis import RECURRENT_LAYERS, call_argument, has_unpacked_arguments, int_literal

from trainlint.rule import Invalid, Rule, Valid

class RnnDropoutSingleLayer(Rule):
    __doc__ = __doc__
    code = "TL125"
    name = "rnn-dropout-single-layer"
    message = (
        "`{layer}` has one layer, so its `dropout={p}` is never applied (it acts between "
        "stacked layers only)"
    )
    tokens = (("*rnn*", "*lstm*", "*gru*"),)

    VALID = [
        Valid(
            """
            from torch import nn

            lstm = nn.LSTM(32, 64, num_layers=2, dropout=0.3)
            gru = nn.GRU(32, 64, 3, dropout=0.1)
            rnn = nn.RNN(32, 64, dropout=0.0)
            plain = nn.LSTM(32, 64, batch_first=True)
            """
        ),
        # A variable number of layers, a guarded dropout, unpacked settings.
        Valid(
            """
            import torch.nn as nn

            def build(dim, layers, p, **cfg):
                a = nn.GRU(dim, dim, num_layers=layers, dropout=p)
                b = nn.LSTM(dim, dim, dropout=0 if layers == 1 else p)
                c = nn.LSTM(dim, dim, **cfg)
                return a, b, c
            """
        ),
        # Cells and other libraries' RNNs are not these layers.
        Valid(
            """
            import torch.nn as nn
            from mylib import LSTM

            cell = nn.LSTMCell(32, 64)
            other = LSTM(32, 64, dropout=0.5)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn

            class Encoder(nn.Module):
                def __init__(self, vocab, dim):
                    super().__init__()
                    self.embed = nn.Embedding(vocab, dim)
                    self.rnn = nn.LSTM(dim, dim, batch_first=True, dropout=0.3)
            """,
            line=7,
        ),
        # Aliased imports, an explicit single layer, positional `num_layers`, a variable.
        Invalid(
            """
            import torch as T
            from torch.nn import GRU as Recurrent

            a = T.nn.RNN(8, 8, num_layers=1, dropout=0.5)
            b = Recurrent(8, 8, 1, dropout=0.2)
            c = T.nn.LSTM(8, 8, dropout=args.dropout)
            """,
            line=4,
            count=3,
        ),
    ]

    def visit_Call(self, node: cst.Call) -> None:
        qualname = self.context.qualname(node.func)
        if qualname not in RECURRENT_LAYERS or has_unpacked_arguments(node):
            return
        dropout = call_argument(node, "dropout")
        if dropout is None or _zero_possible(dropout):
            return
        layers = call_argument(node, "num_layers", 2)
        if layers is not None and int_literal(layers) != 1:
            return
        self.report(
            node,
            self.message.format(layer=f"nn.{qualname.rsplit('.', 1)[1]}", p=self.context.code(dropout)),
            help="apply `nn.Dropout` to the layer's output yourself, or stack `num_layers >= 2`",
        )


def _zero_possible(value: cst.BaseExpression) -> bool:
    """`0`, `0.0`, or a conditional with such a branch."""
    if isinstance(value, cst.IfExp):
        return _zero_possible(value.body) or _zero_possible(value.orelse)
    if isinstance(value, cst.Integer):
        return int_literal(value) == 0
    if isinstance(value, cst.Float):
        return float(value.value.replace("_", "")) == 0
    return False
