"""
## What it does
Flags a `torch.utils.data.DistributedSampler` built in a file that runs an epoch loop
(`for epoch in range(...)`, or a loop around a loop over a DataLoader) but never calls
`set_epoch` on anything.

## Why is this bad?
`DistributedSampler` shuffles with a generator seeded by `seed + epoch`, and `epoch` only
changes through `sampler.set_epoch(epoch)`. Without that call every epoch visits the
samples in the same order on every rank: the shuffle happens once, and the model sees the
same batches in the same sequence for the whole run, which hurts convergence the way
`shuffle=False` would. Nothing warns.

## Example
```python
from torch.utils.data import DataLoader, DistributedSampler

sampler = DistributedSampler(dataset)
loader = DataLoader(dataset, batch_size=64, sampler=sampler)
for epoch in range(epochs):
    for x, y in loader:
        ...
```

## Use instead
```python
for epoch in range(epochs):
    sampler.set_epoch(epoch)
    for x, y in loader:
        ...
```
(`loader.sampler.set_epoch(epoch)` works too.)

## Fix safety
No fix: where the epoch loop starts and which variable counts the epochs is the author's
to say. Not observable by a probe.

## Known limitations
Any `set_epoch(...)` call in the file silences the rule, whatever its receiver, and a
sampler built with `shuffle=False` is not reported (its order does not depend on the
epoch). The epoch loop must be in the same file as the sampler: a sampler built in a data
module and iterated by a trainer elsewhere is not seen, nor is one built through a
subclass or a wrapper of `DistributedSampler`.
"""

from __future__ import annotations

import libcst as cst

from trainlint.imports import dotted_name
from trainlint.rule import Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor
from trainlint.rules._loops import is_epoch_loop, module_roles
from trainlint.traverse import walk

SAMPLERS = (
    "torch.utils.data.DistributedSampler",
    "torch.utils.data.distributed.DistributedSampler",
)


class SamplerEpochNotSet(Rule):
    __doc__ = __doc__
    code = "TL129"
    name = "sampler-epoch-not-set"
    message = (
        "`DistributedSampler` without `set_epoch`: every epoch of {loop} shuffles in the "
        "same order; call `{sampler}.set_epoch({epoch})` at the start of each epoch"
    )
    tokens = ("DistributedSampler",)

    VALID = [
        # set_epoch called per epoch, directly or through the loader.
        Valid(
            """
            from torch.utils.data import DataLoader, DistributedSampler

            sampler = DistributedSampler(dataset)
            loader = DataLoader(dataset, sampler=sampler)
            for epoch in range(10):
                sampler.set_epoch(epoch)
                for x, y in loader:
                    step(x, y)
            """
        ),
        Valid(
            """
            import torch

            def main(dataset, epochs):
                loader = torch.utils.data.DataLoader(
                    dataset, sampler=torch.utils.data.distributed.DistributedSampler(dataset)
                )
                for epoch in range(epochs):
                    loader.sampler.set_epoch(epoch)
                    for batch in loader:
                        step(batch)
            """
        ),
        # No shuffling: the order does not depend on the epoch.
        Valid(
            """
            from torch.utils.data.distributed import DistributedSampler

            val_sampler = DistributedSampler(val_set, shuffle=False)
            for epoch in range(5):
                for batch in val_loader:
                    evaluate(batch)
            """
        ),
        # No epoch loop in this file: the sampler is built for someone else.
        Valid(
            """
            from torch.utils.data import DataLoader, DistributedSampler

            def build_loader(dataset, batch_size):
                return DataLoader(dataset, batch_size, sampler=DistributedSampler(dataset))
            """
        ),
        # Another library's sampler of the same name.
        Valid(
            """
            from mylib.samplers import DistributedSampler

            sampler = DistributedSampler(dataset)
            for epoch in range(10):
                for x in loader:
                    step(x)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            from torch.utils.data import DataLoader, DistributedSampler

            sampler = DistributedSampler(dataset)
            loader = DataLoader(dataset, batch_size=64, sampler=sampler)
            for epoch in range(epochs):
                for x, y in loader:
                    step(x, y)
            """,
            line=3,
        ),
        # Inline in a DataLoader, an epoch loop found by the loader loop inside it.
        Invalid(
            """
            import torch.utils.data as data

            def train(model, dataset, opt, n):
                train_loader = data.DataLoader(
                    dataset, sampler=data.distributed.DistributedSampler(dataset, shuffle=True)
                )
                e = 0
                while e < n:
                    for batch in train_loader:
                        opt.step()
                    e += 1
            """,
            line=5,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._file_facts: tuple[bool, cst.CSTNode | None] | None = None

    def visit_Call(self, node: cst.Call) -> None:
        if self.context.qualname(node.func) not in SAMPLERS or _no_shuffle(node):
            return
        sets_epoch, loop = self._facts()
        if sets_epoch or loop is None:
            return
        target = dotted_name(loop.target) if isinstance(loop, cst.For) else None
        self.report(
            node,
            self.message.format(
                loop=f"`for {target} in ...`" if target else "the epoch loop",
                sampler=self._sampler_name(node),
                epoch=target if target and target.isidentifier() else "epoch",
            ),
        )

    def _facts(self) -> tuple[bool, cst.CSTNode | None]:
        """Whether the file calls `set_epoch`, and its first epoch loop (None if none)."""
        if self._file_facts is None:
            finder = _EpochFacts(module_roles(self.context.module, self.context.imports))
            walk(self.context.module, finder)
            self._file_facts = (finder.sets_epoch, finder.epoch_loop)
        return self._file_facts

    def _sampler_name(self, call: cst.Call) -> str:
        parent = self.context.parent()
        if isinstance(parent, cst.Assign) and len(parent.targets) == 1:
            name = dotted_name(parent.targets[0].target)
            if name:
                return name
        return "loader.sampler"


def _no_shuffle(call: cst.Call) -> bool:
    return any(
        arg.keyword is not None
        and arg.keyword.value == "shuffle"
        and isinstance(arg.value, cst.Name)
        and arg.value.value == "False"
        for arg in call.args
    )


class _EpochFacts(Visitor):
    def __init__(self, roles) -> None:
        self.roles = roles
        self.sets_epoch = False
        self.epoch_loop: cst.CSTNode | None = None

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "set_epoch":
            self.sets_epoch = True

    def _loop(self, node: cst.CSTNode) -> None:
        if self.epoch_loop is None and is_epoch_loop(node, self.roles):
            self.epoch_loop = node

    def visit_For(self, node: cst.For) -> None:
        self._loop(node)

    def visit_While(self, node: cst.While) -> None:
        self._loop(node)
