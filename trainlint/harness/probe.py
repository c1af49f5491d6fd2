"""The probe itself: runs in a subprocess, imports torch, prints one JSON object.

Usage: python -m trainlint.harness.probe SPEC.json
The spec names the probe source (already cut down to one target), the target class, its
kind, the devices, and the observations that rules asked for.
"""

from __future__ import annotations

import inspect
import json
import math
import sys
import traceback
import types
import warnings

PROBE_FILE = "<probe>"
LR0 = 0.1
PROBE_LENGTH = 20
BATCH_SIZES = (1, 7, 16, 33)
LENGTH_NAMES = {
    "epochs", "epoch", "t_max", "t_0", "max_steps", "total_steps", "num_epochs", "max_epochs",
    "total_epochs", "n_epochs", "max_iters", "max_iter", "total_iters", "num_steps", "num_iters",
}
LR_NAMES = {"base_lr", "lr", "max_lr", "init_lr", "initial_lr", "lr0", "eta_max", "start_lr"}
COUNT_LIST_NAMES = ("num_list", "cls_num", "class_counts", "samples_per_class", "counts", "freq")
STEP_ARG_NAMES = {"external_iter", "epoch", "iteration", "it", "step", "iters", "t", "i"}


class Unguessable(Exception):
    pass


def describe(exc: BaseException) -> dict:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == PROBE_FILE]
    where = frames[-1] if frames else None
    return {
        "type": type(exc).__name__,
        "message": str(exc).splitlines()[0][:300] if str(exc) else "",
        "line": where.lineno if where else None,
        "code": (where.line or "").strip() if where else None,
    }


def load(source: str) -> dict:
    import linecache

    linecache.cache[PROBE_FILE] = (len(source), None, source.splitlines(True), PROBE_FILE)
    module = types.ModuleType("trainlint_probe")
    module.__file__ = PROBE_FILE
    sys.modules["trainlint_probe"] = module
    exec(compile(source, PROBE_FILE, "exec"), module.__dict__)
    return module.__dict__


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


def scheduler_kwargs(cls, configured: dict, optimizer) -> dict:
    kwargs = {}
    for p in constructor_params(cls):
        name, low = p.name, p.name.lower()
        if name in configured:
            kwargs[name] = configured[name]
        elif low in ("optimizer", "optim", "opt"):
            kwargs[name] = optimizer
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
        kwargs = scheduler_kwargs(cls, {**configured, **override}, optimizer)
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


def loss_kwargs(cls, configured: dict, classes: int) -> dict:
    kwargs = {}
    for p in constructor_params(cls):
        low = p.name.lower()
        if p.name in configured:
            kwargs[p.name] = configured[p.name]
        elif any(s in low for s in COUNT_LIST_NAMES):
            kwargs[p.name] = [max(10 * (classes - i), 1) for i in range(classes)]
        elif low in ("num_classes", "classes", "n_classes", "nclass", "num_class"):
            kwargs[p.name] = classes
        elif low in ("weight", "class_weight", "class_weights", "weights") and p.default is None:
            # exercise the weighted path too: it is where device and dtype bugs hide
            kwargs[p.name] = [0.5 + i / classes for i in range(classes)]
        elif p.default is p.empty:
            kwargs[p.name] = guess_argument(p)
    return kwargs


def probe_loss(cls, spec: dict) -> dict:
    import torch

    configured = spec.get("kwargs", {})
    lists = [v for v in configured.values() if isinstance(v, list)]
    classes = int(spec.get("num_classes") or (len(lists[0]) if lists else 7))
    out: dict = {"kind": "loss", "devices": spec["devices"], "classes": classes, "runs": {}}
    try:
        kwargs = loss_kwargs(cls, configured, classes)
    except Unguessable as exc:
        return {**out, "unguessable": str(exc)}
    def build():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return cls(**kwargs)

    try:
        build()
    except Exception:
        pass  # reported per device below
    else:
        out.update(observe_module(build, spec))
    for device in spec["devices"]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = cls(**kwargs)
                if hasattr(module, "to"):
                    module = module.to(device)
        except Exception as exc:
            out["runs"][device] = {"construct_error": describe(exc)}
            continue
        per_batch = {}
        for batch in BATCH_SIZES:
            torch.manual_seed(1234)
            logits = torch.randn(batch, classes).to(device).requires_grad_()
            target = torch.randint(0, classes, (batch,)).to(device)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    loss = module(logits, target)
                    value = loss.detach().float().cpu() if isinstance(loss, torch.Tensor) else None
                    scalar = value is not None and value.numel() == 1
                    grad_ok = False
                    if scalar and loss.requires_grad:
                        loss.backward()
                        grad_ok = logits.grad is not None and bool(torch.isfinite(logits.grad).all())
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


def module_kwargs(cls, configured: dict) -> dict:
    kwargs = {}
    for p in constructor_params(cls):
        if p.name in configured:
            kwargs[p.name] = configured[p.name]
        elif p.default is p.empty:
            kwargs[p.name] = guess_argument(p)
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
        kwargs = module_kwargs(cls, spec.get("kwargs", {}))
    except Unguessable as exc:
        return {**out, "unguessable": str(exc)}

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
                doubled = getattr(build().double(), name)
                meta = getattr(build().to("meta"), name)
                out["moves"][name] = {"double": str(doubled.dtype), "meta": meta.device.type}
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


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    if spec["kind"] == "amp":
        print(json.dumps(probe_amp(spec)))
        return 0
    try:
        namespace = load(spec["source"])
        cls = namespace[spec["target"]]
    except BaseException as exc:  # the probe reports, the parent decides
        print(json.dumps({"load_error": describe(exc)}))
        return 0
    probe = {"scheduler": probe_scheduler, "loss": probe_loss, "module": probe_module}[spec["kind"]]
    result = probe(cls, spec)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
