"""
## What it does
Flags `torch.load(path)` without `map_location` whose result is loaded into a model with
`load_state_dict`, where that happens in library-like code: a method of an `nn.Module`
subclass (a model or a loss loading its weights), or a function that builds a model and
returns it (`def resnet(pretrained): model = ...; model.load_state_dict(torch.load(p));
return model`). The result may be passed directly, through a subscript
(`torch.load(p)["model"]`), or through a local variable (`ckpt = torch.load(p)` and
`model.load_state_dict(ckpt["state_dict"])`).

## Why is this bad?
`torch.load` puts every tensor back on the device it was saved from. A checkpoint saved
from a GPU then fails on a machine without CUDA (`RuntimeError: Attempting to deserialize
object on a CUDA device but torch.cuda.is_available() is False`), and on a multi-GPU
machine every process loads its copy onto GPU 0 first. Code that builds models is reused
on machines its author never saw; `load_state_dict` copies the values into the model's own
parameters wherever they are, so loading onto the CPU costs nothing.

## Example
```python
def build_classifier(weights=None):
    model = Classifier()
    if weights:
        model.load_state_dict(torch.load(weights))
    return model
```

## Use instead
```python
        model.load_state_dict(torch.load(weights, map_location="cpu"))
```

## Fix safety
Unsafe. The fix adds `map_location="cpu"`. The weights `load_state_dict` copies end up
identical, but anything else taken from the same checkpoint (an optimizer state, a tensor
used as it is) now lives on the CPU. Not observable by a probe.

## Known limitations
Training and evaluation scripts (module level, or functions that do not return the model)
are not checked: a script usually runs where its checkpoints were made. A load under an
`if` or conditional expression whose test mentions `cuda` or `device` is taken as guarded,
whichever branch it is in. Calls with `**kwargs` may carry `map_location` and are not
reported. The local variable is followed within one function only.
"""

from __future__ import annotations

import libcst as cst

from trainlint.imports import dotted_name
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import Visitor, append_keyword, is_nn_module, names_in, returned_names
from trainlint.traverse import walk

LOAD = "torch.load"
DEVICE_WORDS = ("cuda", "device")


class TorchLoadWithoutMapLocation(Rule):
    __doc__ = __doc__
    code = "TL130"
    name = "torch-load-without-map-location"
    message = (
        "`torch.load` without `map_location` in {where}: a checkpoint saved on a GPU fails "
        "to load where CUDA is missing; pass `map_location=\"cpu\"`"
    )
    fix_applicability = Applicability.UNSAFE
    tokens = ("load_state_dict",)

    VALID = [
        # map_location passed, by keyword or position, or maybe through **kwargs.
        Valid(
            """
            import torch
            from torch import nn

            class Net(nn.Module):
                def load(self, path, **kwargs):
                    self.load_state_dict(torch.load(path, map_location="cpu"))
                    self.load_state_dict(torch.load(path, "cpu"))
                    self.load_state_dict(torch.load(path, **kwargs))
            """
        ),
        # A training script: module level, and a function that does not return the model.
        Valid(
            """
            import torch

            model = Net()
            model.load_state_dict(torch.load("last.pt"))

            def evaluate(model, path):
                model.load_state_dict(torch.load(path)["model"])
                return model(x)
            """
        ),
        # Guarded by a device check.
        Valid(
            """
            import torch

            def build(path):
                model = Net()
                if torch.cuda.is_available():
                    model.load_state_dict(torch.load(path))
                else:
                    model.load_state_dict(torch.load(path, map_location="cpu"))
                state = torch.load(path) if args.device == "cuda" else None
                model.load_state_dict(state)
                return model
            """
        ),
        # The loaded object does not go into load_state_dict.
        Valid(
            """
            import torch
            from torch import nn

            class Vocab(nn.Module):
                def __init__(self, path):
                    super().__init__()
                    self.table = torch.load(path)
                    self.load_state_dict(other)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch

            def build_classifier(weights=None):
                model = Classifier()
                if weights:
                    model.load_state_dict(torch.load(weights))
                return model
            """,
            fixed="""
            import torch

            def build_classifier(weights=None):
                model = Classifier()
                if weights:
                    model.load_state_dict(torch.load(weights, map_location="cpu"))
                return model
            """,
            line=6,
        ),
        # In a module, through a local variable and a subscript; `from torch import load`.
        Invalid(
            """
            from torch import load, nn

            class Encoder(nn.Module):
                def __init__(self, checkpoint):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    ckpt = load(
                        checkpoint,
                    )
                    self.load_state_dict(ckpt["state_dict"], strict=False)

                def from_pretrained(self, path):
                    self.fc.load_state_dict(load(path)["fc"])
            """,
            fixed="""
            from torch import load, nn

            class Encoder(nn.Module):
                def __init__(self, checkpoint):
                    super().__init__()
                    self.fc = nn.Linear(4, 4)
                    ckpt = load(
                        checkpoint,
                        map_location="cpu",
                    )
                    self.load_state_dict(ckpt["state_dict"], strict=False)

                def from_pretrained(self, path):
                    self.fc.load_state_dict(load(path, map_location="cpu")["fc"])
            """,
            line=7,
            count=2,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._module_class: dict[int, bool] = {}

    def visit_Call(self, node: cst.Call) -> None:
        if self.context.qualname(node.func) != LOAD or _passes_map_location(node):
            return
        func, cls = self._enclosing_function()
        if func is None or self._device_guarded():
            return
        receivers = self._loaded_into(node, func)
        if not receivers:
            return
        if cls is not None and self._is_module(cls):
            where = f"a method of `{cls.name.value}`, an nn.Module"
        elif returned_names(func) & {r.split(".")[0] for r in receivers}:
            where = f"`{func.name.value}`, which builds and returns the model"
        else:
            return
        fixed = append_keyword(node, "map_location", cst.SimpleString('"cpu"'))
        fix = self.make_fix('Pass `map_location="cpu"`', (node, fixed))
        self.report(node, self.message.format(where=where), fix=fix)

    def _enclosing_function(self) -> tuple[cst.FunctionDef | None, cst.ClassDef | None]:
        stack = self.context.stack
        for k in range(len(stack) - 1, -1, -1):
            if isinstance(stack[k], cst.FunctionDef):
                owner = stack[k - 2] if k >= 2 and isinstance(stack[k - 2], cst.ClassDef) else None
                return stack[k], owner
            if isinstance(stack[k], cst.ClassDef):
                return None, None
        return None, None

    def _device_guarded(self) -> bool:
        return any(
            isinstance(n, (cst.If, cst.IfExp)) and _mentions_device(n.test) for n in self.context.stack
        )

    def _loaded_into(self, load: cst.Call, func: cst.FunctionDef) -> list[str]:
        """The receivers of the `load_state_dict` calls that take the loaded object."""
        stack = self.context.stack
        k = len(stack) - 1
        while k >= 0 and isinstance(stack[k], (cst.Subscript, cst.SubscriptElement, cst.Index, cst.Attribute)):
            k -= 1
        if k >= 1 and isinstance(stack[k], cst.Arg) and isinstance(stack[k - 1], cst.Call):
            receiver = _load_state_dict_receiver(stack[k - 1])
            return [receiver] if receiver else []
        if k >= 0 and isinstance(stack[k], cst.Assign) and len(stack[k].targets) == 1:
            target = stack[k].targets[0].target
            if isinstance(target, cst.Name):
                finder = _StateLoads(target.value)
                walk(func.body, finder)
                return finder.receivers
        return []

    def _is_module(self, cls: cst.ClassDef) -> bool:
        key = id(cls)
        if key not in self._module_class:
            self._module_class[key] = is_nn_module(cls, self.context.imports, self.context.module)
        return self._module_class[key]


def _passes_map_location(call: cst.Call) -> bool:
    positional = [a for a in call.args if a.keyword is None and not a.star]
    return len(positional) >= 2 or any(
        a.star == "**" or (a.keyword is not None and a.keyword.value == "map_location") for a in call.args
    )


def _mentions_device(test: cst.BaseExpression) -> bool:
    return any(word in name.lower() for name in names_in(test) for word in DEVICE_WORDS)


def _load_state_dict_receiver(call: cst.Call) -> str | None:
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value == "load_state_dict":
        return dotted_name(func.value) or "?"
    return None


class _StateLoads(Visitor):
    """Receivers of `load_state_dict(...)` calls whose first argument mentions `name`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.receivers: list[str] = []

    def visit_Call(self, node: cst.Call) -> None:
        receiver = _load_state_dict_receiver(node)
        if receiver and node.args and self.name in names_in(node.args[0].value):
            self.receivers.append(receiver)
