"""What a probe result must satisfy: each broken invariant becomes a named violation."""

from __future__ import annotations

import math

ANNEALING_WORDS = ("cos", "anneal", "decay")
TOLERANCE = 1e-6


def violations(result: dict, observe: list[dict], original: dict | None = None) -> dict[str, str]:
    """Violation name -> evidence, for one probe result."""
    if result.get("load_error"):
        return {"loads": _exc(result["load_error"])}
    if result.get("construct_error"):
        return {"constructs": _exc(result["construct_error"])}
    if result["kind"] == "scheduler":
        return _scheduler(result, observe)
    if result["kind"] == "module":
        return _module(result)
    if result["kind"] == "amp":
        return _amp(result)
    return _loss(result, original)


def failure_of(result: dict, name: str) -> dict | None:
    """The exception behind violation `name` (with the probed lines it went through), or
    None when the violation is a deviation in values rather than a failure."""
    if name == "loads":
        return result.get("load_error")
    if name == "constructs":
        return result.get("construct_error")
    if name == "usable":
        return result.get("use_error")
    head, _, inside = name.partition("[")
    inside = inside.rstrip("]")
    if head == "constructs":
        return result.get("runs", {}).get(inside, {}).get("construct_error")
    if head == "runs" and result.get("kind") == "loss":
        device, _, batch = inside.partition(",B=")
        return result.get("runs", {}).get(device, {}).get(batch, {}).get("error")
    if head == "runs":
        return (result.get("methods", {}).get(inside) or {}).get("error")
    if head == "caller-list":
        return result.get("caller_lists", {}).get(inside, {}).get("error")
    if head == "explicit-index":
        record = result.get("methods", {}).get(inside) or {}
        return next((c["error"] for c in record.get("explicit") or [] if "error" in c), None)
    return None


def reached(name: str, original_broken: dict[str, str]) -> bool:
    """Whether the original got as far as the check `name` (it did not fail to load or to
    construct first), so that a difference there is a difference made by the fix."""
    if "loads" in original_broken or "constructs" in original_broken:
        return False
    device = name.partition("[")[2].rstrip("]").partition(",")[0]
    return f"constructs[{device}]" not in original_broken


def _exc(e: dict) -> str:
    where = f" at line {e['line']}: `{e['code']}`" if e.get("line") else ""
    return f"{e['type']}: {e['message']}{where}"


def lr_trace(record: dict) -> list[float | None]:
    return [p["lr"] if p["lr"] is not None else p["ret"] for p in record["trace"]]


def _scheduler(result: dict, observe: list[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    ceiling = result["max_initial_lr"] * (1 + TOLERANCE)
    target_name = result.get("target", "")
    for method, record in result["methods"].items():
        if record["error"]:
            out[f"runs[{method}]"] = _exc(record["error"])
        values = [v for v in lr_trace(record) if v is not None]
        if any(not math.isfinite(v) for v in values):
            out[f"finite[{method}]"] = "a learning rate is not finite"
        elif any(v < -TOLERANCE or v > ceiling for v in values):
            bad = next(v for v in values if v < -TOLERANCE or v > ceiling)
            out[f"bounded[{method}]"] = f"learning rate {bad:.4g} outside [0, {result['max_initial_lr']:g}]"
        if not record["reproducible"]:
            out[f"reproducible[{method}]"] = "two fresh instances gave different traces"
        for check in record.get("explicit") or []:
            if "error" in check:
                out[f"explicit-index[{method}]"] = _exc(check["error"])
            elif not _close(check["sequential"], check["explicit"]):
                out[f"explicit-index[{method}]"] = (
                    f"step({check['index']}) gives {check['explicit']:.4g} but the "
                    f"{check['index']}th sequential step gave {check['sequential']:.4g} "
                    "(the LR depends on its own history)"
                )
        if method == "step" and any(w in target_name.lower() for w in ANNEALING_WORDS):
            run, end = _rising_run(values)
            if run:
                out[f"anneals[{method}]"] = (
                    f"the learning rate rises for {run} consecutive steps: "
                    f"{_fmt(values[end - run:end + 1])} at steps {end - run}..{end}"
                )
    for o in observe:
        attr, method = o.get("attribute"), o.get("method")
        record = result["methods"].get(method)
        if attr and record and record["trace"]:
            seen = [p["attrs"].get(attr) for p in record["trace"]]
            steps = [b - a for a, b in zip(seen, seen[1:]) if a is not None and b is not None]
            if not steps or any(abs(s - 1) > TOLERANCE for s in steps):
                out[f"counter-advances[{method}.{attr}]"] = (
                    f"`self.{attr}` after each {method}(): {_fmt(seen[:6])}"
                )
    for name, check in result.get("caller_lists", {}).items():
        if "error" in check:
            out[f"caller-list[{name}]"] = _exc(check["error"])
        elif not check["unchanged"]:
            out[f"caller-list[{name}]"] = (
                f"the caller's `{name}` list changed from {check['before']} to {check['after']}"
            )
    if not result.get("defaults_unchanged", True):
        out["defaults-unchanged"] = "the constructor's default values changed while it ran"
    return out


def _rising_run(values: list[float]) -> tuple[int, int]:
    """(length, end index) of the longest run of 2+ consecutive increases, else (0, 0)."""
    best = run = end = 0
    for i, (a, b) in enumerate(zip(values, values[1:]), start=1):
        run = run + 1 if b > a + TOLERANCE * max(abs(a), 1e-12) else 0
        if run > best:
            best, end = run, i
    return (best, end) if best >= 2 else (0, 0)


def _loss(result: dict, original: dict | None) -> dict[str, str]:
    out: dict[str, str] = _module(result)
    for device, runs in result["runs"].items():
        if "construct_error" in runs:
            out[f"constructs[{device}]"] = _exc(runs["construct_error"])
            continue
        for batch, record in runs.items():
            key = f"{device},B={batch}"
            if "error" in record:
                out[f"runs[{key}]"] = _exc(record["error"])
            else:
                if not (record["scalar"] and record["finite"]):
                    out[f"finite-scalar[{key}]"] = f"the loss is {record['value']!r}"
                if not record["grad"]:
                    out[f"gradient[{key}]"] = "no finite gradient reaches the logits"
                orig = _original_value(original, device, batch)
                if orig is not None and not _close(orig, record["value"]):
                    out[f"matches-original[{key}]"] = f"{record['value']!r} vs original {orig!r}"
            for message in record.get("deprecations", []):
                out[f"no-deprecation[{device}]"] = message
    return out


def _module(result: dict) -> dict[str, str]:
    out: dict[str, str] = {}
    if result.get("use_error"):
        out["usable"] = f"using the constructed module fails: {_exc(result['use_error'])}"
    for name, held in result.get("unregistered", {}).items():
        if held["registered"] < held["held"]:
            out[f"registered[{name}]"] = (
                f"`self.{name}` holds {held['held']} parameter tensors, of which "
                f"{held['registered']} reach the optimizer (module.parameters() has "
                f"{result.get('optimizer_parameters')})"
            )
    for name, moved in result.get("moves", {}).items():
        if moved["double"] != "torch.float64":
            out[f"moves[{name}]"] = f"after `.to(torch.float64)`, `self.{name}` is still {moved['double']}"
        elif moved["meta"] != "meta":
            out[f"moves[{name}]"] = f"after `.to('meta')`, `self.{name}` is still on {moved['meta']}"
        elif not moved["buffer"]:
            out[f"moves[{name}]"] = f"`self.{name}` is not among the module's buffers"
    if not result.get("defaults_unchanged", True):
        out["defaults-unchanged"] = "the constructor's default values changed when the module was built and used"
    return out


def _amp(result: dict) -> dict[str, str]:
    if not result["norms"]:
        return {}
    norm, reference = result["norms"][0], result["reference"]
    if _close(reference, norm):
        return {}
    return {
        "clips-true-norm": (
            f"clip_grad_norm_ sees a total norm of {norm:.4g} where plain training sees "
            f"{reference:.4g} (order replayed: {', '.join(result['sequence'])})"
        )
    }


def _original_value(original: dict | None, device: str, batch: str):
    if not original or original.get("kind") != "loss":
        return None
    record = original.get("runs", {}).get(device, {}).get(batch)
    if not isinstance(record, dict) or "value" not in record:
        return None
    return record["value"]


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-5 * (1 + abs(a))


def _fmt(values) -> str:
    return ", ".join("None" if v is None else f"{v:.4g}" for v in values)
