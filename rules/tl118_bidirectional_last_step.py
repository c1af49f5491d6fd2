"""
## What it does
Flags the last time step taken from the output of a bidirectional recurrent layer:
`out[:, -1, :]` or `out[:, -1]` for a `batch_first=True` layer, `out[-1]` for a
sequence-first one, where `out` is the first result of calling an `nn.RNN`, `nn.LSTM` or
`nn.GRU` built with `bidirectional=True` (`out, h = self.rnn(x)` or `self.rnn(x)[0]`,
followed through a function's straight-line locals).

## Why is this bad?
A bidirectional layer's output at step `t` is the concatenation of the forward direction
after reading tokens `0..t` and the backward direction after reading tokens `t..T-1`. At
the last step, the backward half has seen a single token: the classifier built on
`out[:, -1]` gets a summary of the whole sequence from one direction only, and the
backward direction learns almost nothing. The model trains and scores worse than its
unidirectional twin would suggest, with no error anywhere.

## Example
```python
class Classifier(nn.Module):
    def __init__(self, dim, hidden, classes):
        super().__init__()
        self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])
```

## Use instead
Take each direction's final state: `h_n` holds them.
```python
    def forward(self, x):
        _, (h_n, _) = self.rnn(x)
        return self.fc(torch.cat([h_n[-2], h_n[-1]], dim=1))
```
or `torch.cat([out[:, -1, :H], out[:, 0, H:]], dim=1)`.

## Fix safety
There is no fix: the replacement depends on the hidden size and, for an LSTM, on which
element of the state is wanted.

## Known false positives
Padded batches shorter than the longest sequence have the same problem with `h_n`
unless the input is packed; the rule does not look at packing. It is quiet when the last
step is sliced on the feature dimension (`out[:, -1, :H]`, the forward half), on
unidirectional layers, when `bidirectional` is not the literal `True`, and when the
output went through anything else first (`self.drop(out)[:, -1]`).
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
)

from trainlint.rule import Invalid, Rule, Valid


class BidirectionalLastStep(Rule):
    __doc__ = __doc__
    code = "TL118"
    name = "bidirectional-last-step"
    message = (
        "`{text}` takes the last step of a bidirectional `{layer}`'s output, where the "
        "backward direction has read one token only"
    )
    tokens = ("bidirectional",)

    VALID = [
        # The final states, the two halves at their own ends, a unidirectional layer.
        Valid(
            """
            import torch
            from torch import nn

            class Classifier(nn.Module):
                def __init__(self, dim, hidden):
                    super().__init__()
                    self.hidden = hidden
                    self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
                    self.uni = nn.GRU(dim, hidden, batch_first=True)

                def forward(self, x):
                    out, (h_n, c_n) = self.rnn(x)
                    a = torch.cat([h_n[-2], h_n[-1]], dim=1)
                    b = torch.cat([out[:, -1, :self.hidden], out[:, 0, self.hidden:]], dim=1)
                    u, _ = self.uni(x)
                    return a, b, u[:, -1, :], h_n[-1], out[:, 0]
            """
        ),
        # Sequence-first output indexed on the batch dimension; an unknown layer.
        Valid(
            """
            from torch import nn
            from mylib import BiLSTM

            class Tagger(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.rnn = nn.GRU(dim, dim, bidirectional=True)
                    self.other = BiLSTM(dim, bidirectional=True)

                def forward(self, x):
                    out, _ = self.rnn(x)
                    y, _ = self.other(x)
                    return out[:, -1], y[-1]
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn

            class Classifier(nn.Module):
                def __init__(self, dim, hidden, classes):
                    super().__init__()
                    self.rnn = nn.LSTM(dim, hidden, batch_first=True, bidirectional=True)
                    self.fc = nn.Linear(2 * hidden, classes)

                def forward(self, x):
                    out, _ = self.rnn(x)
                    return self.fc(out[:, -1, :])
            """,
            line=11,
        ),
        # Sequence-first; `[0]` of the call; a local layer; an aliased import.
        Invalid(
            """
            import torch.nn as tnn

            class Encoder(tnn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.gru = tnn.GRU(dim, dim, num_layers=2, bidirectional=True)

                def forward(self, x):
                    out = self.gru(x)[0]
                    return out[-1]

            def encode(x):
                rnn = tnn.RNN(4, 4, batch_first=True, bidirectional=True)
                seq, h = rnn(x)
                return seq[:, -1]
            """,
            line=10,
            count=2,
        ),
    ]

    def visit_Subscript(self, node: cst.Subscript) -> None:
        if not isinstance(node.value, cst.Name):
            return
        last = [int_literal(e.slice.value) == -1 if isinstance(e.slice, cst.Index) else False for e in node.slice]
        if True not in last or last.count(True) != 1:
            return
        step = last.index(True)
        if step > 1 or not all(_whole(e) for i, e in enumerate(node.slice) if i != step):
            return
        layers = self._output_of(node.value.value)
        if not layers or not all(is_true(call_argument(c, "bidirectional")) for c in layers):
            return
        batch_first = {self._batch_first(c) for c in layers}
        if (step == 1 and False in batch_first) or (step == 0 and True in batch_first):
            return
        layer = "nn." + self.context.qualname(layers[0].func).rsplit(".", 1)[1]
        self.report(
            node,
            self.message.format(text=self.context.code(node), layer=layer),
            help="use the final states `torch.cat([h_n[-2], h_n[-1]], dim=1)`, or the forward "
            "half at the last step with the backward half at the first",
        )

    def _output_of(self, name: str) -> list[cst.Call]:
        """The layers whose output sequence `name` holds."""
        found = enclosing_function_statement(self.context.stack)
        if found is None:
            return []
        func, use = found
        reaching = reaching_assignment(func, name, use)
        if reaching is None:
            return []
        value = reaching.value
        if reaching.path == ():
            if not (
                isinstance(value, cst.Subscript)
                and len(value.slice) == 1
                and isinstance(value.slice[0].slice, cst.Index)
                and int_literal(value.slice[0].slice.value) == 0
            ):
                return []
            value = value.value
        elif reaching.path != (0,):
            return []
        if not isinstance(value, cst.Call):
            return []
        return recurrent_layers(self.context.module, self.context.imports, value.func)

    def _batch_first(self, call: cst.Call) -> bool | None:
        value = call_argument(call, "batch_first")
        if value is None:
            return False
        if isinstance(value, cst.Name) and value.value in ("True", "False"):
            return value.value == "True"
        return None


def _whole(element: cst.SubscriptElement) -> bool:
    """`:` (every index of that dimension)."""
    s = element.slice
    return isinstance(s, cst.Slice) and s.lower is None and s.upper is None and s.step is None
