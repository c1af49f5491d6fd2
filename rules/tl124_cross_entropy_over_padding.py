"""
## What it does
Flags a cross-entropy or NLL loss (`F.cross_entropy`, `F.nll_loss`, `nn.CrossEntropyLoss`,
`nn.NLLLoss`) without `ignore_index`, computed over token targets, in a file that pads
with an index of its own: `pad_sequence(..., padding_value=PAD)`, a module constant named
like a padding index (`PAD = 0`, `TRG_PAD_IDX = 1`...), an `nn.Embedding(...,
padding_idx=PAD)` naming a module-level constant, or an `nn.Embedding(..., padding_idx=0)`
with a literal index in a file that also trains (calls `backward`). Token targets are recognised by their shape: the logits
flattened to `(-1, vocab)` with `view`/`reshape`, or the targets flattened to `(-1)`
(`.view(-1)`, `.reshape(-1)`, `.flatten()`), in the call or by an assignment to the name
passed.

## Why is this bad?
A batch of sequences is padded to its longest member; without `ignore_index` every
padding position is a target like any other. The loss then rewards the model for
predicting the padding token after the end of each sentence: a large share of the loss
(and of the reported accuracy or perplexity) comes from positions that are not data, and
short sequences weigh more than long ones. `ignore_index` defaults to `-100`, which
matches nothing a file pads with `0` or `vocab["<pad>"]`.

## Example
```python
PAD = 0
embed = nn.Embedding(vocab_size, 256, padding_idx=PAD)
criterion = nn.CrossEntropyLoss()
loss = criterion(logits.view(-1, vocab_size), targets.view(-1))
```

## Use instead
```python
criterion = nn.CrossEntropyLoss(ignore_index=PAD)
```

## Fix safety
Unsafe: the loss value changes (padding positions stop counting), as intended. The fix is
offered only when the file pads with one index that the loss's line can name: an integer,
or a module-level constant bound before the loss's statement runs. Not observable by a probe.

## Known limitations
A literal `padding_idx=` alone does not count in a file without a `backward` call: model
libraries (Hugging Face's modeling files) declare `padding_idx=0` for their inputs while
their collators pad the labels with `-100`; over transformers this condition removes 6
false reports. Which tensor is padded is not traced: a file that pads its inputs with `padding_idx=0`
and computes a flattened loss over targets it pads differently (with `-100`, the default
`ignore_index`, as Hugging Face collators do) is reported; the rule stays quiet where a
padding value in the file is `-100`. Only a criterion bound to a name or attribute in the
same file, or called where it is built, is followed to its calls.
"""

from __future__ import annotations

import re

import libcst as cst

from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import append_keyword, int_literal

FUNCTIONS = ("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss")
CRITERIA = ("torch.nn.CrossEntropyLoss", "torch.nn.NLLLoss", "torch.nn.modules.loss.CrossEntropyLoss", "torch.nn.modules.loss.NLLLoss")
PAD_KEYWORDS = ("padding_idx", "padding_value")
PAD_CONSTANT = re.compile(r"(?:^|_)pad(?:ding)?(?:_?(?:idx|id|index|token|token_?id|token_?idx))?$", re.I)
DEFAULT_IGNORE_INDEX = -100
RESHAPES = ("view", "reshape")
TEXT = (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)


class CrossEntropyOverPadding(Rule):
    __doc__ = __doc__
    code = "TL124"
    name = "cross-entropy-over-padding"
    message = (
        "`{loss}` over padded token targets without `ignore_index`: this file pads with "
        "{pads}, and the padding positions count in the loss"
    )
    fix_applicability = Applicability.UNSAFE
    tokens = (("CrossEntropyLoss", "cross_entropy", "NLLLoss", "nll_loss"),)

    VALID = [
        # ignore_index set, on the criterion and on the function.
        Valid(
            """
            import torch.nn.functional as F
            from torch import nn

            PAD = 0
            embed = nn.Embedding(100, 16, padding_idx=PAD)
            criterion = nn.CrossEntropyLoss(ignore_index=PAD)
            loss = criterion(logits.view(-1, 100), targets.view(-1))
            loss = F.cross_entropy(logits.reshape(-1, 100), targets.reshape(-1), ignore_index=PAD)
            """
        ),
        # Nothing padded in the file: a classifier.
        Valid(
            """
            import torch.nn.functional as F

            def step(model, x, y):
                return F.cross_entropy(model(x).view(-1, 10), y.view(-1))
            """
        ),
        # Padding indices the loss cannot see: attributes of a config (a model library
        # whose labels are padded with -100 by its collators), a parameter.
        Valid(
            """
            from torch import nn

            class LMHead(nn.Module):
                def __init__(self, config, pad):
                    super().__init__()
                    self.embed = nn.Embedding(config.vocab_size, 64, padding_idx=config.pad_token_id)
                    self.other = nn.Embedding(config.vocab_size, 64, padding_idx=pad)

                def forward(self, x, labels=None):
                    logits = self.embed(x)
                    return nn.CrossEntropyLoss()(logits.view(-1, logits.size(-1)), labels.view(-1))
            """
        ),
        # A literal padding_idx in a model library file (no training in it).
        Valid(
            """
            from torch import nn

            class Tagger(nn.Module):
                def __init__(self, config):
                    super().__init__()
                    self.embed = nn.Embedding(config.vocab_size, 64, padding_idx=0)
                    self.loss_fn = nn.CrossEntropyLoss()

                def forward(self, x, labels):
                    logits = self.embed(x)
                    return self.loss_fn(logits.view(-1, logits.size(-1)), labels.view(-1))
            """
        ),
        # Padded inputs, but the loss is over one label per sample (not flattened).
        Valid(
            """
            from torch import nn

            class TextClassifier(nn.Module):
                def __init__(self, vocab, classes):
                    super().__init__()
                    self.embed = nn.Embedding(vocab, 64, padding_idx=0)
                    self.fc = nn.Linear(64, classes)
                    self.loss = nn.CrossEntropyLoss()

                def forward(self, tokens, labels):
                    logits = self.fc(self.embed(tokens).mean(1))
                    return self.loss(logits, labels)
            """
        ),
        # The padding value is -100, the default ignore_index; float padding of features.
        Valid(
            """
            import torch.nn.functional as F
            from torch.nn.utils.rnn import pad_sequence

            labels = pad_sequence(label_list, batch_first=True, padding_value=-100)
            feats = pad_sequence(feat_list, batch_first=True, padding_value=0.0)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), labels.view(-1))
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            from torch import nn

            PAD = 0
            embed = nn.Embedding(1000, 256, padding_idx=PAD)
            criterion = nn.CrossEntropyLoss()
            loss = criterion(logits.view(-1, 1000), targets.view(-1))
            """,
            fixed="""
            from torch import nn

            PAD = 0
            embed = nn.Embedding(1000, 256, padding_idx=PAD)
            criterion = nn.CrossEntropyLoss(ignore_index=PAD)
            loss = criterion(logits.view(-1, 1000), targets.view(-1))
            """,
            line=5,
        ),
        # The functional form, a literal index from pad_sequence, a criterion attribute.
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch.nn.utils.rnn import pad_sequence

            def collate(batch):
                return pad_sequence(batch, batch_first=True, padding_value=1)

            class Seq2Seq(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.criterion = torch.nn.NLLLoss(reduction="sum")

                def forward(self, src, tgt):
                    out = self.decoder(src)
                    loss = F.cross_entropy(out.reshape(-1, out.size(-1)), tgt[:, 1:].flatten())
                    return loss + self.criterion(out.log_softmax(-1).view(-1, self.vocab), tgt.view(-1))
            """,
            fixed="""
            import torch
            import torch.nn.functional as F
            from torch.nn.utils.rnn import pad_sequence

            def collate(batch):
                return pad_sequence(batch, batch_first=True, padding_value=1)

            class Seq2Seq(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.criterion = torch.nn.NLLLoss(reduction="sum", ignore_index=1)

                def forward(self, src, tgt):
                    out = self.decoder(src)
                    loss = F.cross_entropy(out.reshape(-1, out.size(-1)), tgt[:, 1:].flatten(), ignore_index=1)
                    return loss + self.criterion(out.log_softmax(-1).view(-1, self.vocab), tgt.view(-1))
            """,
            line=11,
            count=2,
        ),
        # A literal padding_idx in a training script; a constant named TRG_PAD_IDX.
        Invalid(
            """
            import torch
            from torch import nn

            TRG_PAD_IDX = 1
            model = nn.Sequential(nn.Embedding(5000, 64, padding_idx=0), nn.Linear(64, 5000))
            criterion = nn.CrossEntropyLoss()
            for src, trg in loader:
                out = model(src)
                loss = criterion(out.view(-1, 5000), trg.view(-1))
                loss.backward()
            """,
            line=6,
        ),
        # A pad constant computed from a vocabulary after the criterion is built (no fix:
        # the name is not bound yet there); logits and targets flattened by assignments.
        Invalid(
            """
            from torch import nn

            criterion = nn.CrossEntropyLoss()
            pad_idx = trg_vocab.stoi["<pad>"]
            for batch in batches:
                out = model(batch.src, batch.trg[:-1])
                out = out.contiguous().view(-1, out.shape[-1])
                gold = batch.trg[1:].contiguous().view(-1)
                loss = criterion(out, gold)
            """,
            line=3,
        ),
        # A pad value the loss cannot name: reported without a fix.
        Invalid(
            """
            import torch.nn as nn
            from torch.nn.utils.rnn import pad_sequence

            def collate(batch, vocab):
                return pad_sequence(batch, padding_value=vocab.stoi["<pad>"])

            def step(scores, gold):
                return nn.CrossEntropyLoss()(scores.view(-1, scores.size(-1)), gold.view(-1))
            """,
            line=8,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        # padding indices of embeddings and constants (names count when module-level) ...
        self.pad_values: list[cst.BaseExpression] = []
        # ... and the values sequences are padded with (pad_sequence), whatever they are
        self.sequence_pads: list[cst.BaseExpression] = []
        # `padding_idx=0`: evidence only in a file that also trains (calls `backward`)
        self.literal_pads: list[cst.BaseExpression] = []
        self.trains = False
        # names assigned a tensor flattened to rank 1 / rank 2 (`trg = trg.view(-1)`)
        self.flattened: dict[int, set[str]] = {1: set(), 2: set()}
        # module-level name -> index of the first top-level statement that binds it
        self.constants: dict[str, int] = {}
        # loss call -> index of its top-level statement, or None inside a function
        self.call_statement: dict[int, int | None] = {}
        self.losses: list[cst.Call] = []  # functional calls over token targets
        self.criteria: dict[str, list[cst.Call]] = {}  # bound name -> constructors
        self.criterion_calls: set[str] = set()  # bound names called over token targets

    # -------------------------------------------------------------- collection

    def visit_Assign(self, node: cst.Assign) -> None:
        at_module_level = len(self.context.stack) == 2
        for target in node.targets:
            name = dotted_name(target.target)
            if name is None:
                continue
            if at_module_level and isinstance(target.target, cst.Name):
                self.constants.setdefault(name, self._statement_index())
                if PAD_CONSTANT.search(name) and not isinstance(node.value, TEXT):
                    self.pad_values.append(target.target)
            for rank in (1, 2):
                if _reshaped(node.value, rank):
                    self.flattened[rank].add(name)
            if isinstance(node.value, cst.Call) and self._criterion(node.value):
                self._place(node.value)
                self.criteria.setdefault(name, []).append(node.value)

    def visit_Call(self, node: cst.Call) -> None:
        for arg in node.args:
            if arg.keyword is None or arg.keyword.value not in PAD_KEYWORDS:
                continue
            value = arg.value
            if isinstance(value, (cst.Float, cst.UnaryOperation)) and int_literal(value) is None:
                continue  # padding of real-valued features
            if arg.keyword.value == "padding_value":
                self.sequence_pads.append(value)
            elif isinstance(value, cst.Name):
                self.pad_values.append(value)
            elif int_literal(value) is not None:
                self.literal_pads.append(value)
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "backward":
            self.trains = True
        if self.context.qualname(func) in FUNCTIONS:
            if _lacks_ignore_index(node) and self._over_tokens(node):
                self._place(node)
                self.losses.append(node)
        elif isinstance(func, cst.Call) and self._criterion(func):
            if self._over_tokens(node):
                self._place(func)
                self.losses.append(func)
        else:
            name = dotted_name(func)
            if name is not None and self._over_tokens(node):
                self.criterion_calls.add(name)

    def _over_tokens(self, call: cst.Call) -> bool:
        """The first argument flattened to `(-1, classes)` or the second to `(-1)`, in the
        call or by an assignment to the name passed."""
        positional = [a.value for a in call.args if a.keyword is None and not a.star]
        keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
        logits = positional[0] if positional else keywords.get("input")
        targets = positional[1] if len(positional) > 1 else keywords.get("target")
        return any(
            arg is not None
            and (_reshaped(arg, rank) or (isinstance(arg, cst.Name) and arg.value in self.flattened[rank]))
            for arg, rank in ((logits, 2), (targets, 1))
        )

    def _criterion(self, call: cst.Call) -> bool:
        return self.context.qualname(call.func) in CRITERIA and _lacks_ignore_index(call)

    # -------------------------------------------------------------- reporting

    def leave_Module(self, original_node: cst.Module) -> None:
        pads = {
            self.context.code(p): p
            for p in self.pad_values
            if not isinstance(p, cst.Name) or p.value in self.constants
        }
        pads.update((self.context.code(p), p) for p in self.sequence_pads)
        if self.trains:
            pads.update((self.context.code(p), p) for p in self.literal_pads)
        if not pads or any(int_literal(p) == DEFAULT_IGNORE_INDEX for p in pads.values()):
            return
        calls = list(self.losses)
        for name in self.criterion_calls:
            calls += self.criteria.get(name, [])
        only = next(iter(pads.values())) if len(pads) == 1 else None
        shown = ", ".join(f"`{text}`" for text in sorted(pads))
        for call in calls:
            loss = (dotted_name(call.func) or "loss").rsplit(".", 1)[-1]
            fix = None
            if only is not None and self._nameable(only, call):
                (text, pad), = pads.items()
                fix = self.make_fix(f"Pass `ignore_index={text}`", (call, append_keyword(call, "ignore_index", pad)))
            self.report(
                call,
                self.message.format(loss=loss, pads=shown),
                fix=fix,
                help="pass `ignore_index=` the padding index of the targets",
            )

    def _nameable(self, pad: cst.BaseExpression, call: cst.Call) -> bool:
        """An integer, or a module constant bound before the loss runs: an expression valid
        where the loss is."""
        if int_literal(pad) is not None:
            return True
        if not isinstance(pad, cst.Name) or pad.value not in self.constants:
            return False
        at = self.call_statement.get(id(call))
        return at is None or self.constants[pad.value] < at

    def _statement_index(self) -> int:
        return self.context.module.body.index(self.context.stack[1])

    def _place(self, call: cst.Call) -> None:
        """Record where a loss call or constructor runs (see `call_statement`)."""
        in_function = any(isinstance(n, (cst.FunctionDef, cst.Lambda)) for n in self.context.stack)
        self.call_statement[id(call)] = None if in_function else self._statement_index()


def _lacks_ignore_index(call: cst.Call) -> bool:
    return not any(
        a.star == "**" or (a.keyword is not None and a.keyword.value == "ignore_index") for a in call.args
    )



def _reshaped(expr: cst.BaseExpression, rank: int) -> bool:
    """`x.view(-1, c)` / `x.reshape(-1)` (rank 2 / rank 1 with a leading -1), or `x.flatten()`
    for rank 1."""
    if not (isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute)):
        return False
    method = expr.func.attr.value
    args = [a.value for a in expr.args]
    if method == "flatten":
        return rank == 1 and not args
    if method not in RESHAPES:
        return False
    if len(args) == 1 and isinstance(args[0], cst.Tuple):
        args = [el.value for el in args[0].elements]
    return len(args) == rank and int_literal(args[0]) == -1
