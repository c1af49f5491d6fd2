"""The probe itself: runs in a subprocess, imports torch once, forks one child per probe.

Usage: python -m trainlint.harness.probe BATCH.json OUTDIR
The batch lists probe specs; each names the probe source (already cut down to one target),
the target class, its kind, the devices, the observations that rules asked for, the hints
from the project's call sites, and the reference sources (original, then all fixes) on
which loss inputs are searched. Each spec runs in a forked child with its own process
group, memory cap and timeout, and leaves OUTDIR/<i>.json (its result) or OUTDIR/<i>.problem.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import time
import traceback
import types
import warnings

PROBE_FILE = "<probe>"
REFERENCE_FILE = "<probe-reference>"
LR0 = 0.1
PROBE_LENGTH = 20
BATCH_SIZES = (1, 7, 16, 33)
LENGTH_NAMES = {
    "epochs", "epoch", "t_max", "t_0", "max_steps", "total_steps", "num_epochs", "max_epochs",
    "total_epochs", "n_epochs", "max_iters", "max_iter", "total_iters", "num_steps", "num_iters",
}
LR_NAMES = {"base_lr", "lr", "max_lr", "init_lr", "initial_lr", "lr0", "eta_max", "start_lr"}
COUNT_LIST_NAMES = (
    "num_list", "cls_num", "class_counts", "samples_per_class", "samples_per_cls", "per_cls",
    "counts", "freq", "img_num", "proportion", "prior",
)
WEIGHT_NAMES = {"weight", "weights", "class_weight", "class_weights", "alpha"}
CLASS_COUNT_NAMES = {"num_classes", "classes", "n_classes", "nclass", "num_class", "class_num", "n_class"}
SEARCH_SECONDS = 5.0
# Per-class lists and class counts filled in even where they have defaults (a loss that takes
# `cls_num_list=None` is meant to get one: its margin path only runs with it), as lists, then
# as tensors; then every default as written.
ARGUMENT_STYLES = ("filled", "tensors", "as given")
# (rank of the input, target form): class indices, or a 0/1 tensor shaped like the input.
INPUT_FORMS = ((2, "index"), (4, "index"), (3, "index"), (2, "same"), (4, "same"))
STEP_ARG_NAMES = {"external_iter", "epoch", "iteration", "it", "step", "iters", "t", "i"}


class Unguessable(Exception):
    pass


def describe(exc: BaseException) -> dict:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == PROBE_FILE]
    where = frames[-1] if frames else None
    message = str(exc).splitlines()[0][:300] if str(exc) else ""
    return {
        "type": type(exc).__name__,
        "message": message,
        "line": where.lineno if where else None,
        "code": (where.line or "").strip() if where else None,
        "lines": [f.lineno for f in frames],  # every frame in the probed source, innermost last
        "cuda_locked": "cuda" in message.lower() or "nvidia" in message.lower(),
    }


def load(source: str, filename: str = PROBE_FILE) -> dict:
    import linecache

    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    name = "trainlint_probe" if filename == PROBE_FILE else "trainlint_probe_reference"
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    exec(compile(source, filename, "exec"), module.__dict__)
    return module.__dict__


class Value:
    """A constructor argument and the Python code that rebuilds it in a repro snippet."""

    def __init__(self, value, code: str):
        self.value, self.code = value, code


def literal(value) -> Value:
    return Value(value, repr(value))


def counts(classes: int) -> Value:
    return literal([max(10 * (classes - i), 1) for i in range(classes)])


def class_weights(classes: int) -> Value:
    import torch

    return Value(torch.linspace(0.5, 1.5, classes), f"torch.linspace(0.5, 1.5, {classes})")


def from_hint(p: inspect.Parameter, hint: dict, classes: int) -> Value | None:
    """A value of the kind the project's own call site passes."""
    if "value" in hint:
        return literal(hint["value"])
    kind, low = hint.get("kind"), p.name.lower()
    if kind == "tensor":
        return class_weights(classes)
    if kind == "list" and any(s in low for s in COUNT_LIST_NAMES):
        return counts(classes)
    if kind == "list" and low in WEIGHT_NAMES:
        return literal([round(0.5 + i / classes, 4) for i in range(classes)])
    if kind == "int" and low in CLASS_COUNT_NAMES:
        return literal(classes)
    return None


def from_annotation(p: inspect.Parameter, classes: int) -> Value | None:
    if p.annotation is p.empty:
        return None
    text = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", str(p.annotation))
    low = p.name.lower()
    if "Tensor" in text:
        return class_weights(classes)
    if text.lower().startswith(("list", "sequence", "tuple")) and any(s in low for s in COUNT_LIST_NAMES):
        return counts(classes)
    if text == "int" and low in CLASS_COUNT_NAMES:
        return literal(classes)
    if text == "float":
        return literal(0.5)
    if text == "bool":
        return literal(False)
    return None


def hint_for(p: inspect.Parameter, index: int, hints: dict) -> dict | None:
    return hints.get(p.name) or hints.get(f"#{index}")


def constructor_params(cls) -> list[inspect.Parameter]:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return []
    return [
        p for p in list(sig.parameters.values())[1:]
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


# ----------------------------------------------------------------------------- schedulers


def scheduler_kwargs(cls, configured: dict, optimizer, hints: dict) -> dict:
    kwargs = {}
    for index, p in enumerate(constructor_params(cls)):
        name, low = p.name, p.name.lower()
        hint = hint_for(p, index, hints) or {}
        if name in configured:
            kwargs[name] = configured[name]
        elif low in ("optimizer", "optim", "opt"):
            kwargs[name] = optimizer
        elif "value" in hint and not (low in LENGTH_NAMES and not hint["value"]):
            kwargs[name] = hint["value"]
        elif low in LENGTH_NAMES and (p.default is p.empty or p.default in (0, None, [])):
            kwargs[name] = PROBE_LENGTH
        elif p.default is not p.empty:
            continue
        elif low in LR_NAMES:
            kwargs[name] = LR0
        elif low.startswith("warmup"):
            kwargs[name] = 2
        elif low in ("batchs", "batches", "iters_per_epoch", "steps_per_epoch", "num_batches"):
            kwargs[name] = 4
        elif low in ("eta_min", "min_lr", "final_lr"):
            kwargs[name] = 0.0
        elif low == "gamma":
            kwargs[name] = 0.9
        elif low == "step_size":
            kwargs[name] = 3
        elif low == "milestones":
            kwargs[name] = [5, 10]
        else:
            raise Unguessable(name)
    return kwargs


def number(value):
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def probe_scheduler(cls, spec: dict) -> dict:
    import torch

    configured = spec.get("kwargs", {})
    observe = spec.get("observe", [])
    out: dict = {"kind": "scheduler", "devices": ["cpu"], "methods": {}}

    def fresh(**override):
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=LR0)
        kwargs = scheduler_kwargs(cls, {**configured, **override}, optimizer, spec.get("hints", {}))
        uses_optimizer = any(v is optimizer for v in kwargs.values())
        return cls(**kwargs), (optimizer if uses_optimizer else None), kwargs

    try:
        instance, optimizer, kwargs = fresh()
    except Unguessable as exc:
        return {**out, "unguessable": str(exc)}
    except Exception as exc:
        return {**out, "construct_error": describe(exc)}
    out["kwargs"] = {k: (v if isinstance(v, (int, float, str, list)) else type(v).__name__)
                     for k, v in kwargs.items()}
    out["inputs"] = {"kwargs": {k: ("optimizer" if v is optimizer else repr(v)) for k, v in kwargs.items()}}
    given = {p.name: p.default for p in constructor_params(cls) if p.default is not p.empty}
    given.update(kwargs)
    lrs = [v for k, v in given.items() if k.lower() in LR_NAMES and isinstance(v, (int, float))]
    out["max_initial_lr"] = max([LR0 if optimizer else 0.0, *lrs]) or LR0
    lengths = [v for k, v in given.items() if k.lower() in LENGTH_NAMES and isinstance(v, int) and v > 0]
    steps = int(spec.get("steps") or max(lengths, default=PROBE_LENGTH) + 1)  # the whole schedule
    defaults_before = repr(getattr(cls.__init__, "__defaults__", None))

    step_methods = [
        name for name, fn in inspect.getmembers(cls, inspect.isfunction)
        if (name == "step" or name.startswith("step_"))
        and all(p.default is not p.empty for p in list(inspect.signature(fn).parameters.values())[1:]
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    ]
    watched = {o["attribute"] for o in observe if o.get("attribute")}
    for method in step_methods:
        runs = []
        for _ in range(2):  # twice from fresh instances: the trace must be reproducible
            instance, optimizer, _ = fresh()
            trace, error = [], None
            for _ in range(steps):
                try:
                    ret = getattr(instance, method)()
                except Exception as exc:
                    error = describe(exc)
                    break
                lr = optimizer.param_groups[0]["lr"] if optimizer else None
                trace.append({
                    "ret": number(ret),
                    "lr": number(lr),
                    "attrs": {a: number(getattr(instance, a, None)) for a in watched},
                })
            runs.append({"trace": trace, "error": error})
        record = {"trace": runs[0]["trace"], "error": runs[0]["error"],
                  "reproducible": runs[0] == runs[1]}
        if method == "step":
            record["explicit"] = explicit_index_check(cls, fresh, runs[0]["trace"])
        out["methods"][method] = record

    out["caller_lists"] = caller_list_check(cls, fresh, observe)
    out["inputs"].update(steps=steps, methods=step_methods, list_parameters=list(out["caller_lists"]))
    out["defaults_unchanged"] = repr(getattr(cls.__init__, "__defaults__", None)) == defaults_before
    out["reference"] = cosine_reference(cls, kwargs, out["methods"].get("step"))
    return out


def lr_of(point):
    return point["lr"] if point["lr"] is not None else point["ret"]


def explicit_index_check(cls, fresh, trace):
    try:
        params = list(inspect.signature(cls.step).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    if not params or params[0].name not in STEP_ARG_NAMES:
        return None
    results = []
    for k in sorted({2, len(trace) // 2}):
        if k >= len(trace):
            continue
        try:
            instance, optimizer, _ = fresh()
            ret = instance.step(k)
            got = optimizer.param_groups[0]["lr"] if optimizer else ret
        except Exception as exc:
            results.append({"index": k, "error": describe(exc)})
            continue
        results.append({"index": k, "sequential": lr_of(trace[k]), "explicit": number(got)})
    return results


def caller_list_check(cls, fresh, observe):
    """Pass an unsorted list for each list-defaulted parameter; it must come back unchanged."""
    out = {}
    asked = {o.get("parameter") for o in observe}
    for p in constructor_params(cls):
        if isinstance(p.default, list) or p.name in asked:
            given = [PROBE_LENGTH // 2 + 3, 3]
            snapshot = list(given)
            try:
                instance, _, _ = fresh(**{p.name: given})
                if hasattr(instance, "step"):
                    instance.step()
            except Exception as exc:
                out[p.name] = {"error": describe(exc)}
                continue
            out[p.name] = {"unchanged": given == snapshot, "before": snapshot, "after": given}
    return out


def cosine_reference(cls, kwargs, step_record):
    """Max deviation from torch's CosineAnnealingLR over the same length, when comparable."""
    import torch

    if not step_record or not step_record["trace"] or "cos" not in cls.__name__.lower():
        return None
    length = next((v for k, v in kwargs.items() if k.lower() in LENGTH_NAMES), None)
    defaults = {p.name: p.default for p in constructor_params(cls) if p.default is not p.empty}
    eta = kwargs.get("eta_min", defaults.get("eta_min"))
    if not isinstance(length, int) or not isinstance(eta, (int, float)):
        return None
    got = [lr_of(p) for p in step_record["trace"][: length + 1]]
    best = None
    for label, eta_abs in (("eta_min*lr", eta * LR0), ("eta_min", float(eta))):
        param = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([param], lr=LR0)
        ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=length, eta_min=eta_abs)
        ref = []
        for _ in got:
            ref.append(opt.param_groups[0]["lr"])
            opt.step()
            ref_sched.step()
        if any(g is None for g in got):
            return None
        deviation = max(abs(a - b) for a, b in zip(got, ref))
        if best is None or deviation < best["max_deviation"]:
            best = {"reference": f"CosineAnnealingLR(T_max={length}, eta_min={label})",
                    "max_deviation": deviation}
    return best


# ----------------------------------------------------------------------------------- losses


def loss_kwargs(cls, configured: dict, classes: int, hints: dict, style: str = "as given") -> dict[str, Value]:
    """Configured values, then the project's call sites, then defaults (`weight=None` is a
    valid value), then annotations, then names. Style "filled" also fills class counts and
    per-class lists that have defaults; "tensors" passes those lists as tensors."""
    kwargs: dict[str, Value] = {}
    for index, p in enumerate(constructor_params(cls)):
        low = p.name.lower()
        per_class = any(s in low for s in COUNT_LIST_NAMES)
        hint = hint_for(p, index, hints)
        hinted = from_hint(p, hint, classes) if hint else None
        if p.name in configured:
            kwargs[p.name] = literal(configured[p.name])
        elif hinted is not None:
            kwargs[p.name] = hinted
        elif p.default is not p.empty and (style == "as given" or not (per_class or low in CLASS_COUNT_NAMES)):
            continue
        elif per_class:
            kwargs[p.name] = count_tensor(classes) if style == "tensors" else counts(classes)
        elif low in CLASS_COUNT_NAMES:
            kwargs[p.name] = literal(classes)
        elif (annotated := from_annotation(p, classes)) is not None:
            kwargs[p.name] = annotated
        else:
            kwargs[p.name] = literal(guess_argument(p))
    return kwargs


def count_tensor(classes: int) -> Value:
    import torch

    listed = counts(classes)
    return Value(torch.tensor(listed.value, dtype=torch.float32), f"torch.tensor({listed.code}, dtype=torch.float32)")


def class_count(spec: dict) -> int:
    """From the config, else a list or class count the project's call sites pass, else 7."""
    if spec.get("num_classes"):
        return int(spec["num_classes"])
    values = [*spec.get("kwargs", {}).values(), *(h.get("value") for h in spec.get("hints", {}).values())]
    lists = [v for v in values if isinstance(v, list) and len(v) > 1]
    if lists:
        return len(lists[0])
    counted = [h["value"] for n, h in spec.get("hints", {}).items()
               if n.lower() in CLASS_COUNT_NAMES and isinstance(h.get("value"), int) and h["value"] > 1]
    return counted[0] if counted else 7


def make_inputs(form: dict, batch: int, device: str):
    """Seeded logits of the form's rank (not a leaf, as a model's output is not: in-place
    edits must work; gradients are read on `leaf`) and a target of the form's kind."""
    import torch

    torch.manual_seed(1234)
    shape = (batch, form["classes"], *(6,) * (form["rank"] - 2))
    leaf = torch.randn(*shape).to(device).requires_grad_()
    if form["target"] == "index":
        target = torch.randint(0, form["classes"], (batch, *shape[2:])).to(device)
    else:
        target = torch.randint(0, 2, shape).float().to(device)
    return leaf, leaf.clone(), target


def runs_once(module, form: dict, device: str) -> str | None:
    """None if the loss gives a finite scalar on this form of input, else why not."""
    import torch

    try:
        _, logits, target = make_inputs(form, 7, device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = module(logits, target)
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
    if not isinstance(loss, torch.Tensor) or loss.numel() == 0 or not torch.isfinite(loss).all():
        return "not a finite tensor"
    return None


def class_counts(cls, spec: dict, classes: int) -> list[int]:
    """The class count to try: a fixed one, else 7, the class-count defaults, and 2."""
    if spec.get("num_classes") or classes != 7:
        return [classes]
    defaults = [p.default for p in constructor_params(cls)
                if p.name.lower() in CLASS_COUNT_NAMES and isinstance(p.default, int) and p.default > 1]
    return list(dict.fromkeys([7, *defaults, 2]))


def choose(spec: dict, classes: int, device: str) -> tuple[dict, list[str]]:
    """Arguments and input form on which the reference (the original; all fixes when the
    original does not construct here) gives a finite loss: a bounded, deterministic search
    over argument styles, class counts, input ranks and target kinds."""
    tried: list[str] = []
    deadline = time.monotonic() + SEARCH_SECONDS
    # where no form runs: the first arguments the reference constructs with, so that what
    # construction shows (parameters, buffers, moves) is still probed
    fallback = {"style": "as given", "form": {"rank": 2, "target": "index", "classes": classes}, "reference": ""}
    for label, source in spec.get("references", []):
        try:
            reference = load(source, REFERENCE_FILE)[spec["target"]]
        except Exception as exc:
            tried.append(f"{label} does not load: {type(exc).__name__}")
            continue
        constructed = locked = False
        for style in ARGUMENT_STYLES:
            for n in class_counts(reference, spec, classes):
                try:
                    kwargs = {k: v.value for k, v in loss_kwargs(
                        reference, spec.get("kwargs", {}), n, spec.get("hints", {}), style).items()}
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        module = reference(**kwargs)
                        module = module.to(device) if hasattr(module, "to") else module
                except Exception as exc:
                    tried.append(f"{label}, {style}, {n} classes, does not construct: {type(exc).__name__}")
                    continue
                if not constructed:
                    fallback = {"style": style, "form": {"rank": 2, "target": "index", "classes": n},
                                "reference": ""}
                constructed = True
                for rank, target in INPUT_FORMS:
                    if time.monotonic() > deadline:
                        return fallback, tried
                    form = {"rank": rank, "target": target, "classes": n}
                    problem = runs_once(module, form, device)
                    if problem is None:
                        return {"style": style, "form": form, "reference": label}, tried
                    tried.append(f"{label}, {style}, {rank}-D/{target}/{n} classes: {problem}")
                    locked = locked or "cuda" in problem.lower()
        if constructed and not locked:
            break  # inputs the original takes, or none: all fixes would not be a fairer judge
    return fallback, tried


def apart(work):
    """`work()` in a forked process, its JSON result passed back: what it runs leaves no
    trace here (torch warns about a deprecation once per process, and the search must not
    use that warning up before the probe records it)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        with os.fdopen(write, "w") as out:
            try:
                json.dump(work(), out)
            except BaseException:
                pass
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as handle:
        text = handle.read()
    os.waitpid(pid, 0)
    return json.loads(text) if text else ({"style": "as given", "form": {"rank": 2, "target": "index", "classes": 7},
                                           "reference": ""}, ["the search failed"])


def probe_loss(cls, spec: dict) -> dict:
    import torch

    configured = spec.get("kwargs", {})
    classes = class_count(spec)
    out: dict = {"kind": "loss", "devices": spec["devices"], "classes": classes, "runs": {}, "inputs": {}}
    for device in spec["devices"]:
        choice, tried = apart(lambda: choose(spec, classes, device))
        form = choice["form"]
        try:
            arguments = loss_kwargs(cls, configured, form["classes"], spec.get("hints", {}), choice["style"])
        except Unguessable as exc:
            return {**out, "unguessable": str(exc)}
        kwargs = {k: v.value for k, v in arguments.items()}
        out["inputs"][device] = {**choice, "tried": tried, "kwargs": {k: v.code for k, v in arguments.items()}}
        out["inputs"].setdefault("kwargs", out["inputs"][device]["kwargs"])
        out["inputs"].setdefault("hinted", {k: h["from"] for k, h in spec.get("hints", {}).items()
                                            if k in kwargs and "from" in h})

        def build(kwargs=kwargs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return cls(**kwargs)

        if "optimizer_parameters" not in out:
            try:
                build()
            except Exception:
                pass  # reported per device below
            else:
                out.update(observe_module(build, spec))
        try:
            module = build()
            if hasattr(module, "to"):
                module = module.to(device)
        except Exception as exc:
            out["runs"][device] = {"construct_error": describe(exc)}
            continue
        per_batch = {}
        for batch in BATCH_SIZES:
            leaf, logits, target = make_inputs(form, batch, device)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    loss = module(logits, target)
                    if isinstance(loss, torch.Tensor) and loss.numel() > 1:
                        loss = loss.mean()  # a per-sample loss (reduction="none"), reduced as training would
                    value = loss.detach().float().cpu() if isinstance(loss, torch.Tensor) else None
                    scalar = value is not None and value.numel() == 1
                    grad_ok = False
                    if scalar and loss.requires_grad:
                        loss.backward()
                        grad_ok = leaf.grad is not None and bool(torch.isfinite(leaf.grad).all())
                    record = {
                        "value": float(value.reshape(-1)[0]) if scalar else None,
                        "scalar": scalar,
                        "finite": scalar and math.isfinite(float(value.reshape(-1)[0])),
                        "grad": grad_ok,
                    }
                except Exception as exc:
                    record = {"error": describe(exc)}
            record["deprecations"] = sorted({
                str(w.message).split("(Triggered")[0].strip()[:200]
                for w in caught
                if "deprecat" in str(w.message).lower() or issubclass(w.category, DeprecationWarning)
            })
            per_batch[str(batch)] = record
        out["runs"][device] = per_batch
    return out


# ---------------------------------------------------------------------------------- modules

SIZE_WORDS = ("dim", "size", "features", "channels", "hidden", "width", "embed", "planes", "d_model")
COUNT_WORDS = ("num_", "n_", "layers", "depth", "heads", "blocks", "classes")
DROPOUT_NAMES = {"p", "dropout", "drop", "drop_rate", "dropout_rate", "drop_prob"}


def module_kwargs(cls, configured: dict, hints: dict) -> dict[str, Value]:
    kwargs: dict[str, Value] = {}
    for index, p in enumerate(constructor_params(cls)):
        hint = hint_for(p, index, hints)
        if p.name in configured:
            kwargs[p.name] = literal(configured[p.name])
        elif hint and "value" in hint:
            kwargs[p.name] = literal(hint["value"])
        elif p.default is p.empty:
            kwargs[p.name] = literal(guess_argument(p))
    return kwargs


def guess_argument(p: inspect.Parameter):
    """A value for a required constructor argument, from its name alone."""
    low = p.name.lower()
    if low in DROPOUT_NAMES:
        return 0.1
    if any(w in low for w in COUNT_WORDS):
        return 2
    if any(w in low for w in SIZE_WORDS):
        return 8
    raise Unguessable(p.name)


def held_parameters(value, depth: int = 0):
    """Parameters reachable from an attribute value through lists, tuples, dicts, modules."""
    import torch

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


def probe_module(cls, spec: dict) -> dict:
    """Construct the module, then look at what its optimizer and `.to()` would see."""
    out: dict = {"kind": "module", "devices": ["cpu"]}
    try:
        arguments = module_kwargs(cls, spec.get("kwargs", {}), spec.get("hints", {}))
    except Unguessable as exc:
        return {**out, "unguessable": str(exc)}
    kwargs = {k: v.value for k, v in arguments.items()}
    out["inputs"] = {"kwargs": {k: v.code for k, v in arguments.items()}}

    def build():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(**kwargs)

    try:
        build()
    except Exception as exc:
        return {**out, "construct_error": describe(exc)}
    return {**out, **observe_module(build, spec)}


def observe_module(build, spec: dict) -> dict:
    """What an optimizer and `.to()` would see of a freshly built module."""
    import torch

    out: dict = {}
    try:
        module = build()
        defaults_before = repr(getattr(type(module).__init__, "__defaults__", None))
        registered = {id(p) for p in module.parameters()}
        out["optimizer_parameters"] = len(registered)
        out["unregistered"] = {}
        for name, value in vars(module).items():
            held = {id(p) for p in held_parameters(value)} if not name.startswith("_") else set()
            if held:
                out["unregistered"][name] = {"held": len(held), "registered": len(held & registered)}
        out["moves"] = {}
        for o in spec.get("observe", []):
            name = o.get("attribute")
            value = getattr(module, name, None) if name else None
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                doubled = getattr(build().to(torch.float64), name)
                meta = getattr(build().to("meta"), name)
                out["moves"][name] = {"double": str(doubled.dtype), "meta": meta.device.type,
                                      "buffer": name in dict(build().named_buffers())}
        build()  # a second instance from the same defaults: a mutated default shows here
        out["defaults_unchanged"] = repr(getattr(type(module).__init__, "__defaults__", None)) == defaults_before
    except Exception as exc:
        out["use_error"] = describe(exc)
    return out


# ------------------------------------------------------------------------------ AMP clipping


def probe_amp(spec: dict) -> dict:
    """Replay a loop's order of scaled backward, unscale_, clip and step on a tiny model.

    The clip's total norm must equal the one plain (non-AMP) training computes."""
    import torch
    import torch.nn.functional as F

    def batch():
        torch.manual_seed(1234)
        model = torch.nn.Linear(4, 3)
        x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        return model, torch.optim.SGD(model.parameters(), lr=LR0), F.cross_entropy(model(x), y)

    model, optimizer, loss = batch()
    loss.backward()
    reference = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    model, optimizer, loss = batch()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    norms = []
    for event in spec["sequence"]:
        if event == "backward":
            scaler.scale(loss).backward()
        elif event == "unscale":
            scaler.unscale_(optimizer)
        elif event == "clip":
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)))
        elif event == "step":
            scaler.step(optimizer)
            scaler.update()
    return {"kind": "amp", "devices": ["cpu"], "sequence": spec["sequence"], "norms": norms,
            "reference": reference}


def run_spec(spec: dict) -> dict:
    if spec["kind"] == "amp":
        return probe_amp(spec)
    try:
        namespace = load(spec["source"])
        cls = namespace[spec["target"]]
    except BaseException as exc:  # the probe reports, the parent decides
        return {"load_error": describe(exc)}
    probe = {"scheduler": probe_scheduler, "loss": probe_loss, "module": probe_module}[spec["kind"]]
    return probe(cls, spec)


def child(index: int, spec: dict, outdir: str, memory_mb: int | None) -> None:
    """Runs in the forked child: its own process group (a timeout ends all it forks), a
    memory cap, stdout and stderr into a file; never returns."""
    os.setsid()
    try:
        if memory_mb:
            import resource

            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        log = os.open(os.path.join(outdir, f"{index}.err"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        result = json.dumps(run_spec(spec))
        with open(os.path.join(outdir, f"{index}.json"), "w", encoding="utf-8") as handle:
            handle.write(result)
        code = 0
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def problem(status: int, outdir: str, index: int, memory_mb: int | None) -> str | None:
    if os.WIFSIGNALED(status):
        return f"the probe was killed by signal {os.WTERMSIG(status)}"
    if os.WEXITSTATUS(status) == 0:
        return None
    try:
        with open(os.path.join(outdir, f"{index}.err"), encoding="utf-8", errors="replace") as handle:
            tail = (handle.read().strip().splitlines() or [""])[-1]
    except OSError:
        tail = ""
    if "MemoryError" in tail:
        return f"the probe ran out of memory (cap {memory_mb} MB)"
    return f"the probe crashed (exit {os.WEXITSTATUS(status)}): {tail}"


def serve(batch: dict, outdir: str) -> None:
    """Fork one child per spec, at most `jobs` at a time; end each at its timeout."""
    import torch  # noqa: F401  (imported once, here, so that every child inherits it)

    pending = list(enumerate(batch["specs"]))
    running: dict[int, tuple[int, float]] = {}
    timeout, memory_mb = batch["timeout"], batch["memory_mb"]
    while pending or running:
        while pending and len(running) < batch["jobs"]:
            index, spec = pending.pop(0)
            cap = memory_mb if "cuda" not in spec.get("devices", ()) else None
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                child(index, spec, outdir, cap)
            running[pid] = (index, time.monotonic())
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            index, _ = running.pop(pid)
            _end_group(pid)
            found = problem(status, outdir, index, memory_mb)
            if found:
                _write(outdir, f"{index}.problem", found)
            continue
        now = time.monotonic()
        for pid, (index, started) in list(running.items()):
            if now - started > timeout:
                _end_group(pid)
                os.waitpid(pid, 0)
                running.pop(pid)
                _write(outdir, f"{index}.problem", f"the probe did not finish within {timeout:g} s")
        time.sleep(0.01)


def _end_group(pid: int) -> None:
    try:
        os.killpg(pid, 9)
    except OSError:
        pass


def _write(outdir: str, name: str, text: str) -> None:
    with open(os.path.join(outdir, name), "w", encoding="utf-8") as handle:
        handle.write(text)


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        batch = json.load(handle)
    serve(batch, argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
