"""Self-contained Python snippets that rerun the probe behind a verdict.

A snippet embeds the probed class (cut out as the probe ran it) for each variant it
compares, builds it with the same arguments and inputs, runs the same check, and prints
what the verdict's evidence says: the exception, the counter values, the caller's list,
the parameters the optimizer sees. It needs torch and nothing from trainlint.
"""

from __future__ import annotations

PRELUDE = '''\
import math
import warnings

import torch


def load(source):
    namespace = {"__name__": "trainlint_repro"}
    exec(compile(source, "<probe>", "exec"), namespace)
    return namespace[TARGET]


def describe(exc):
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def fmt(values):
    return ", ".join("None" if v is None else f"{v:.4g}" for v in values)


def number(value):
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
'''

LOSS_CHECK = '''
def make_inputs(form, batch, device):
    rank, kind, classes = form
    torch.manual_seed(1234)
    shape = (batch, classes, *(6,) * (rank - 2))
    leaf = torch.randn(*shape).to(device).requires_grad_()
    if kind == "index":
        target = torch.randint(0, classes, (batch, *shape[2:])).to(device)
    else:
        target = torch.randint(0, 2, shape).float().to(device)
    return leaf, leaf.clone(), target


def check_forward(cls, build):
    lines = []
    for device, form in FORMS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = build(cls)
                module = module.to(device) if hasattr(module, "to") else module
        except Exception as exc:
            lines.append(f"  [{device}] constructs: {describe(exc)}")
            continue
        for batch in (1, 7, 16, 33):
            leaf, logits, target = make_inputs(form, batch, device)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    loss = module(logits, target)
                    loss = loss.mean() if loss.numel() > 1 else loss
                    loss.backward()
                    lines.append(f"  [{device},B={batch}] loss {float(loss):.6g}, gradient finite: "
                                 f"{bool(torch.isfinite(leaf.grad).all())}")
                except Exception as exc:
                    lines.append(f"  [{device},B={batch}] {describe(exc)}")
            for w in caught:
                if "deprecat" in str(w.message).lower():
                    lines.append(f"  [{device},B={batch}] warning: {w.message}")
    return "\\n".join(lines)
'''

SCHEDULER_CHECK = '''
def check(cls, build):
    def fresh(**override):
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=0.1)
        return build(cls, optimizer, **override), optimizer

    lines = []
    try:
        fresh()
    except Exception as exc:
        return f"  constructs: {describe(exc)}"
    for method in METHODS:
        instance, optimizer = fresh()
        lrs, seen = [], {attr: [] for attr in WATCHED.get(method, [])}
        for _ in range(STEPS):
            try:
                ret = getattr(instance, method)()
            except Exception as exc:
                lines.append(f"  {method}() fails: {describe(exc)}")
                break
            lrs.append(optimizer.param_groups[0]["lr"] if USES_OPTIMIZER else number(ret))
            for attr in seen:
                seen[attr].append(number(getattr(instance, attr, None)))
        lines.append(f"  learning rate after each {method}(): {fmt(lrs)}")
        for attr, values in seen.items():
            lines.append(f"  `self.{attr}` after each {method}(): {fmt(values[:6])}")
    for name in LIST_PARAMETERS:
        given = [13, 3]
        before = list(given)
        try:
            instance, _ = fresh(**{name: given})
            if hasattr(instance, "step"):
                instance.step()
        except Exception as exc:
            lines.append(f"  passing a list as `{name}`: {describe(exc)}")
            continue
        lines.append(f"  the caller's `{name}` list changed from {before} to {given}" if given != before
                     else f"  the caller's `{name}` list is unchanged")
    return "\\n".join(lines)
'''

MODULE_CHECK = '''
def held_parameters(value, depth=0):
    if isinstance(value, torch.nn.Parameter):
        yield value
    elif isinstance(value, torch.nn.Module):
        yield from value.parameters()
    elif depth < 4 and isinstance(value, (list, tuple, set)):
        for item in value:
            yield from held_parameters(item, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from held_parameters(item, depth + 1)


def check_module(cls, build):
    lines = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = build(cls)
    except Exception as exc:
        return f"  constructs: {describe(exc)}"
    registered = {id(p) for p in module.parameters()}
    for name, value in vars(module).items():
        held = {id(p) for p in held_parameters(value)} if not name.startswith("_") else set()
        if held:
            lines.append(f"  `self.{name}` holds {len(held)} parameter tensors, of which "
                         f"{len(held & registered)} reach the optimizer (module.parameters() has "
                         f"{len(registered)})")
    for name in ATTRIBUTES:
        value = getattr(module, name, None)
        if isinstance(value, torch.Tensor):
            moved = getattr(build(cls).to(torch.float64), name)
            still = "still " if moved.dtype != torch.float64 else ""
            lines.append(f"  after `.to(torch.float64)`, `self.{name}` is {still}{moved.dtype}; "
                         f"a buffer: {name in dict(module.named_buffers())}")
    return "\\n".join(lines) or "  constructs"
'''

AMP = '''\
import torch
import torch.nn.functional as F

SEQUENCES = {sequences!r}


def replay(sequence):
    torch.manual_seed(1234)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = F.cross_entropy(model(x), y)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    norms = []
    for event in sequence:
        if event == "backward":
            scaler.scale(loss).backward()
        elif event == "unscale":
            scaler.unscale_(optimizer)
        elif event == "clip":
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)))
        elif event == "step":
            scaler.step(optimizer)
            scaler.update()
    return norms


torch.manual_seed(1234)
model = torch.nn.Linear(4, 3)
x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
F.cross_entropy(model(x), y).backward()
print("plain training clips a total norm of", float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)))
for name, sequence in SEQUENCES.items():
    print(name, ", ".join(sequence), "-> clip sees", replay(sequence))
'''


def snippet(context: dict) -> str:
    """`context`: kind, target, devices, observe, title, and the variants to compare as
    (label, probe source, the arguments and inputs the probe used on it)."""
    if context["kind"] == "amp":
        return AMP.format(sequences=context["sequences"])
    lines = [f"# trainlint verify --explain: {context['title']}", PRELUDE, f"TARGET = {context['target']!r}"]
    first = context["variants"][0][2]
    if context["kind"] == "scheduler":
        watched: dict[str, list[str]] = {}
        for o in context["observe"]:
            if o.get("attribute") and o.get("method"):
                watched.setdefault(o["method"], []).append(o["attribute"])
        lines += [
            f"METHODS = {first.get('methods', ['step'])!r}",
            f"WATCHED = {watched!r}",
            f"STEPS = {first.get('steps', 21)!r}",
            f"USES_OPTIMIZER = {'optimizer' in first.get('kwargs', {}).values()!r}",
            f"LIST_PARAMETERS = {first.get('list_parameters', [])!r}",
            SCHEDULER_CHECK,
        ]
    elif context["kind"] == "loss":
        forms = {d: tuple(first[d]["form"][k] for k in ("rank", "target", "classes"))
                 for d in context["devices"] if d in first}
        attributes = [o["attribute"] for o in context["observe"] if o.get("attribute")]
        lines += [f"FORMS = {forms!r}", f"ATTRIBUTES = {attributes!r}", LOSS_CHECK, MODULE_CHECK,
                  "def check(cls, build):",
                  "    return check_module(cls, build) + '\\n' + check_forward(cls, build)"]
    else:
        attributes = [o["attribute"] for o in context["observe"] if o.get("attribute")]
        lines += [f"ATTRIBUTES = {attributes!r}", MODULE_CHECK, "check = check_module"]
    calls = []
    for index, (label, source, inputs) in enumerate(context["variants"], start=1):
        kwargs = ", ".join(f"{k}={v}" for k, v in inputs.get("kwargs", {}).items())
        lines += ["", f"# {label}", f"SOURCE_{index} = {source!r}", ""]
        if context["kind"] == "scheduler":
            lines += [f"def build_{index}(cls, optimizer, **override):",
                      f"    return cls(**{{**dict({kwargs}), **override}})"]
        else:
            lines += [f"def build_{index}(cls):", f"    return cls({kwargs})"]
        calls += [f"print({label + ':'!r})", f"print(check(load(SOURCE_{index}), build_{index}))"]
    return "\n".join([*lines, "", "", *calls]) + "\n"
