"""
## What it does
Flags `len(batch)` used as a number of samples (added to a counter with `+=`, or
multiplying or dividing a value) inside a `for` loop whose `batch` is a dict: the loop
body reads it with string keys (`batch["input_ids"]`), `batch.items()`/`keys()`/`values()`/
`get(...)`, or unpacks it as keyword arguments (`model(**batch)`).

## Why is this bad?
The length of a dict is its number of keys. A Hugging Face style batch
(`{"input_ids": ..., "attention_mask": ..., "labels": ...}`) has `len(batch) == 3`
whatever the batch size, so a running mean `total_loss += loss.item() * len(batch)` /
`seen += len(batch)` weights every batch the same (the last, smaller batch as much as a
full one), and a throughput or accuracy computed from it is off by the ratio of the batch
size to the number of keys. Nothing fails.

## Example
```python
for batch in loader:
    loss = model(**batch).loss
    total += loss.item() * len(batch)
    seen += len(batch)
```

## Use instead
```python
for batch in loader:
    n = batch["input_ids"].size(0)
    total += loss.item() * n
    seen += n
```

## Fix safety
No fix: which entry holds the batch dimension is the author's to say. Not observable by a
probe.

## Known limitations
Only the loop variable itself is followed (`for batch in ...` and `for i, batch in
enumerate(...)`), and only within the loop body; a loop that also indexes the batch with
integers or unpacks it (a tuple or list batch), or rebinds it to anything but a dict, is
left alone. A dict batch built elsewhere and used only as `len(batch)` is not recognised.
"""

from __future__ import annotations


import libcst as cst

from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor
from trainlint.traverse import walk

DICT_METHODS = ("items", "keys", "values", "get")
SCALING = (cst.Multiply, cst.Divide, cst.FloorDivide)
COUNTING = (cst.AddAssign, cst.SubtractAssign)


class LenOfDictBatch(Rule):
    __doc__ = __doc__
    code = "TL122"
    name = "len-of-dict-batch"
    message = "`len({batch})` counts the keys of a dict batch, not its samples; use `{batch}[{key}].size(0)`"
    tokens = ("len",)

    VALID = [
        # The samples counted from one entry.
        Valid(
            """
            for batch in loader:
                loss = model(**batch).loss
                n = batch["input_ids"].size(0)
                total += loss.item() * len(batch["labels"])
                seen += n
            """
        ),
        # Tuple and tensor batches: len is the batch size.
        Valid(
            """
            for batch in loader:
                x, y = batch
                seen += len(batch)

            for i, batch in enumerate(loader):
                out = model(batch[0])
                total += out.sum() / len(batch)

            for x in loader:
                seen += len(x)
            """
        ),
        # len of a dict batch, but not as a count of samples.
        Valid(
            """
            for batch in loader:
                if len(batch) == 0:
                    continue
                print(f"{len(batch)} fields")
                inputs = {k: v.to(device) for k, v in batch.items()}
            """
        ),
        # The name is rebound to a tensor before len.
        Valid(
            """
            for batch in loader:
                batch = batch["pixel_values"]
                seen += len(batch)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            for batch in loader:
                loss = model(**batch).loss
                total += loss.item() * len(batch)
                seen += len(batch)
            print(total / seen)
            """,
            line=3,
            count=2,
        ),
        # enumerate, keys read with .get, rebound to a dict, a division.
        Invalid(
            """
            def evaluate(model, loader, device):
                correct = 0
                for step, batch in enumerate(loader):
                    batch = {k: v.to(device) for k, v in batch.items()}
                    logits = model(batch.get("input_ids"))
                    acc = (logits.argmax(-1) == batch["labels"]).sum() / len(batch)
                    correct -= -len(batch)
                return correct
            """,
            line=6,
        ),
    ]

    def visit_For(self, node: cst.For) -> None:
        name = _batch_name(node)
        if name is None:
            return
        uses = _BatchUses(name)
        walk(node.body, uses)
        if not uses.dict_like or uses.not_dict:
            return
        for call in uses.counts:
            self.report(call, self.message.format(batch=name, key=uses.key or "..."))


def _batch_name(loop: cst.For) -> str | None:
    """`batch` in `for batch in ...` and `for i, batch in enumerate(...)`."""
    target = loop.target
    if isinstance(target, cst.Name):
        return target.value
    it = loop.iter
    if (
        isinstance(target, cst.Tuple)
        and len(target.elements) == 2
        and isinstance(target.elements[1].value, cst.Name)
        and isinstance(it, cst.Call)
        and isinstance(it.func, cst.Name)
        and it.func.value == "enumerate"
    ):
        return target.elements[1].value.value
    return None


class _BatchUses(Visitor):
    """How a loop body uses the batch: dict-like reads (`dict_like`; `key`: the first string
    key seen), uses that make it something else (`not_dict`), and `len(batch)` calls that
    count samples (`counts`)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dict_like = False
        self.key: str | None = None
        self.not_dict = False
        self.counts: list[cst.Call] = []

    def _is_batch(self, node: cst.CSTNode) -> bool:
        return isinstance(node, cst.Name) and node.value == self.name

    def _is_len(self, node: cst.CSTNode) -> bool:
        return (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Name)
            and node.func.value == "len"
            and len(node.args) == 1
            and self._is_batch(node.args[0].value)
        )

    def _dict_read(self, key: str | None = None) -> None:
        self.dict_like = True
        if self.key is None:
            self.key = key

    def visit_Subscript(self, node: cst.Subscript) -> None:
        if not self._is_batch(node.value):
            return
        index = node.slice[0].slice if len(node.slice) == 1 else None
        value = index.value if isinstance(index, cst.Index) else None
        if isinstance(value, cst.SimpleString):
            self._dict_read(value.value)
        elif not isinstance(value, cst.Name):  # `batch[k]` may be either
            self.not_dict = True

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if self._is_batch(node.value) and node.attr.value in DICT_METHODS:
            self._dict_read()

    def visit_Arg(self, node: cst.Arg) -> None:
        if self._is_batch(node.value):
            if node.star == "**":
                self._dict_read()
            elif node.star == "*":
                self.not_dict = True

    def visit_Assign(self, node: cst.Assign) -> None:
        if isinstance(node.value, cst.Name) and node.value.value == self.name:
            self.not_dict = self.not_dict or any(
                isinstance(t.target, (cst.Tuple, cst.List)) for t in node.targets
            )
        if any(self._binds(t.target) for t in node.targets) and not isinstance(
            node.value, (cst.Dict, cst.DictComp)
        ):
            self.not_dict = True

    def _binds(self, target: cst.CSTNode) -> bool:
        if isinstance(target, (cst.Tuple, cst.List)):
            return any(self._binds(el.value) for el in target.elements)
        return self._is_batch(target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.operator, COUNTING) and self._is_count(node.value):
            self.counts.append(_len_call(node.value))

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, SCALING):
            for side in (node.left, node.right):
                if self._is_len(side):
                    self.counts.append(side)

    def _is_count(self, value: cst.CSTNode) -> bool:
        """`len(batch)` or `-len(batch)`, added to a counter."""
        if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus):
            value = value.expression
        return self._is_len(value)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False


def _len_call(value: cst.BaseExpression) -> cst.BaseExpression:
    return value.expression if isinstance(value, cst.UnaryOperation) else value
