"""Attribution by ablation: which proposed fixes the probes confirm, refute or cannot see."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

from trainlint import engine
from trainlint.diagnostic import Diagnostic
from trainlint.harness.extract import Target, amp_sequence, find_targets, loop_at, probe_source
from trainlint.harness.invariants import lr_trace, violations
from trainlint.harness.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, run_probe
from trainlint.rule import Rule

# Why a rule's fix can be invisible to the probes, when it is.
UNOBSERVABLE = {
    "TL005": "a mutable default whose sharing no probe observed (the default was never mutated)",
}
# Fixes that lie outside anything a probe runs (training loops, forward passes with inputs
# the harness cannot invent).
NOT_PROBED = "not observable by a probe: the fix is in code the harness does not run"


@dataclass
class Verdict:
    filename: str
    target: str
    kind: str
    code: str
    row: int
    message: str
    verdict: str  # confirmed | refuted | inconclusive
    devices: list[str]
    evidence: str
    traces: dict[str, list] = field(default_factory=dict)
    key: tuple = ()  # fix_key of the diagnostic, to pick the fix again when applying

    def as_json(self) -> dict:
        return {
            "filename": self.filename,
            "target": self.target,
            "kind": self.kind,
            "code": self.code,
            "row": self.row,
            "verdict": self.verdict,
            "devices": self.devices,
            "evidence": self.evidence,
            "message": self.message,
            "traces": self.traces,
        }


@dataclass
class Settings:
    devices: list[str]
    timeout: float = DEFAULT_TIMEOUT_S
    memory_mb: int | None = DEFAULT_MEMORY_MB
    targets: dict = field(default_factory=dict)  # [tool.trainlint.verify.<Class>] tables
    jobs: int = max(os.cpu_count() or 1, 1)


def fix_key(d: Diagnostic) -> tuple:
    """Identifies one fix across lint rounds: rows move as earlier fixes add lines, and a
    message may change once another fix has been applied, so a rule's `data` wins."""
    if d.data:
        return (d.code, tuple(sorted(d.data.items())))
    return (d.code, d.message)


def verify_file(
    path: str,
    data: bytes,
    rules: Sequence[type[Rule]],
    settings: Settings,
    progress: Callable[[str], None] = lambda s: None,
) -> list[Verdict]:
    result = engine.lint(path, data, rules)
    if result.module is None:
        return []
    fixable = [d for d in result.diagnostics if d.fixable(unsafe=True)]
    verdicts: list[Verdict] = []
    probed: set[int] = set()
    for target in find_targets(result.module):
        mine = [d for d in fixable if target.first_row <= d.row <= target.last_row and d.code != "TL105"]
        if mine:
            progress(f"{path}: probing {target.name} ({len(mine)} fixes)")
            verdicts += _verify_target(path, data, rules, target, mine, settings)
            probed.update(id(d) for d in mine)
    for d in fixable:
        if d.code == "TL105":
            progress(f"{path}: replaying the AMP step at line {d.row}")
            verdicts.append(_verify_amp(path, data, rules, result.module, d, settings))
        elif id(d) not in probed:
            verdicts.append(Verdict(path, "-", "-", d.code, d.row, d.message, "inconclusive",
                                    list(settings.devices), NOT_PROBED, {}, fix_key(d)))
    verdicts.sort(key=lambda v: v.row)
    return verdicts


def _verify_amp(path, data, rules, module, d: Diagnostic, settings) -> Verdict:
    """TL105: replay the loop's AMP call order, original and fixed, on a tiny model."""
    def verdict(v: str, evidence: str) -> Verdict:
        return Verdict(path, "training loop", "amp", d.code, d.row, d.message, v, ["cpu"],
                       evidence, {}, fix_key(d))

    loop = loop_at(module, d.row)
    if loop is None:
        return verdict("inconclusive", "the clip call is not inside a loop the harness can find")
    key = fix_key(d)
    fixed = engine.fix(path, data, rules, unsafe=True, accept=lambda x: fix_key(x) == key)
    fixed_module = engine.parse(engine.decode(fixed.data))
    sequences = {"original": amp_sequence(module, loop), "fixed": amp_sequence(fixed_module, loop)}
    runs = {
        name: run_probe({"kind": "amp", "sequence": seq, "devices": ["cpu"]},
                        settings.timeout, settings.memory_mb)
        for name, seq in sequences.items()
    }
    for name, run in runs.items():
        if run.result is None:
            return verdict("inconclusive", f"the {name} replay: {run.problem}")
    broken = {name: violations(run.result, []) for name, run in runs.items()}
    if broken["fixed"]:
        return verdict("refuted", f"with the fix, {'; '.join(broken['fixed'].values())}")
    if broken["original"]:
        reference = runs["fixed"].result["reference"]
        return verdict(
            "confirmed",
            f"without this fix {'; '.join(broken['original'].values())}; with it the norm is "
            f"{reference:.4g} as in plain training",
        )
    return verdict("inconclusive", "the replayed original already clips the true norm")


def _variant(path, data, rules, keys: set, target: Target) -> str | None:
    fixed = engine.fix(path, data, rules, unsafe=True, accept=lambda d: fix_key(d) in keys)
    module = engine.lint(path, fixed.data, []).module or engine.parse(engine.decode(fixed.data))
    return probe_source(module, target.name)


def _verify_target(path, data, rules, target: Target, fixes: list[Diagnostic], settings) -> list[Verdict]:
    keys = [fix_key(d) for d in fixes]
    sources = {"original": _variant(path, data, rules, set(), target),
               "all": _variant(path, data, rules, set(keys), target)}
    for key in dict.fromkeys(keys):
        sources[key] = _variant(path, data, rules, set(keys) - {key}, target)
    observe = [d.data for d in fixes if d.data]
    configured = settings.targets.get(target.name, {})
    spec = {
        "target": target.name,
        "kind": target.kind,
        "devices": settings.devices,
        "observe": observe,
        "kwargs": configured.get("kwargs", {}),
        "steps": configured.get("steps"),
        "num_classes": configured.get("num_classes"),
    }
    names = list(sources)
    with ThreadPoolExecutor(max_workers=settings.jobs) as pool:
        runs = list(pool.map(
            lambda n: run_probe({**spec, "source": sources[n]}, settings.timeout, settings.memory_mb),
            names,
        ))
    probes = dict(zip(names, runs))
    results = {n: r.result for n, r in probes.items()}
    for r in results.values():
        if r is not None:
            r["target"] = target.name
    return [
        _attribute(path, target, d, fix_key(d), results, probes, observe, settings.devices)
        for d in fixes
    ]


def _attribute(path, target, d: Diagnostic, key, results, probes, observe, devices) -> Verdict:
    def verdict(v: str, evidence: str, traces=None) -> Verdict:
        evidence += _reference_note(results)
        return Verdict(path, target.name, target.kind, d.code, d.row, d.message, v,
                       list(devices), evidence, traces or {}, key)

    for name in ("original", "all", key):
        if results[name] is None:
            label = "the original" if name == "original" else (
                "the fixed code" if name == "all" else "the fixed code without this fix")
            return verdict("inconclusive", f"{label}: {probes[name].problem}")
        if results[name].get("unguessable"):
            return verdict(
                "inconclusive",
                f"cannot guess constructor argument `{results[name]['unguessable']}`; set it under "
                f"[tool.trainlint.verify.{target.name}] kwargs",
            )
    original = results["original"]
    broken = {
        name: violations(results[name], observe, original) for name in ("original", "all", key)
    }
    traces = _traces(results, key)
    introduced = {v: e for v, e in broken["all"].items() if v not in broken["original"] and v not in broken[key]}
    if introduced:
        v, e = next(iter(introduced.items()))
        return verdict("refuted", f"with the fix, {v} breaks (the original satisfied it): {e}", traces)
    needed = {v: e for v, e in broken[key].items() if v not in broken["all"]}
    if needed:
        v, e = next(iter(needed.items()))
        return verdict("confirmed", f"without this fix {v} breaks: {e}", traces)
    if broken["all"]:
        v, e = next(iter(broken["all"].items()))
        return verdict(
            "inconclusive",
            f"the fixed code still breaks {v} ({e}), and leaving this fix out changes nothing "
            "the probe checks",
            traces,
        )
    reason = UNOBSERVABLE.get(d.code, "leaving this fix out breaks no invariant the probe checks")
    if d.code == "TL004" and "cpu" not in devices:
        reason += " on CUDA, where locked-in code runs; the lock-in shows on CPU (--device auto)"
    return verdict("inconclusive", reason, traces)


def _reference_note(results: dict) -> str:
    """Distance of the original and fixed LR traces from torch's own schedule, if comparable."""
    refs = {n: (results.get(n) or {}).get("reference") for n in ("original", "all")}
    if not refs["all"]:
        return ""
    note = f"; max deviation from torch {refs['all']['reference']}: fixed {refs['all']['max_deviation']:.2g}"
    if refs["original"]:
        note += f", original {refs['original']['max_deviation']:.2g}"
    return note


def _traces(results: dict, key) -> dict[str, list]:
    out = {}
    for label, name in (("original", "original"), ("fixed", "all"), ("without-this-fix", key)):
        r = results[name]
        if r and r.get("kind") == "scheduler" and "step" in r.get("methods", {}):
            out[label] = lr_trace(r["methods"]["step"])
    return out
