"""Attribution by ablation: which proposed fixes the probes confirm, refute or cannot see."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from trainlint import engine
from trainlint.diagnostic import Diagnostic
from trainlint.harness.callsites import ProjectFiles, hints_for
from trainlint.harness.dependence import Edits
from trainlint.harness.extract import Target, amp_sequence, find_targets, loop_at, probe_source
from trainlint.harness.invariants import failure_of, lr_trace, reached, violations
from trainlint.harness.repro import snippet
from trainlint.harness.rule_table import DEVICE_LOCK, LOOP_REPLAY, UNOBSERVABLE
from trainlint.harness.sandbox import DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, ProbeRun, run_probes
from trainlint.rule import Rule

# Fixes that lie outside anything a probe runs (training loops, forward passes with inputs
# the harness cannot invent).
NOT_PROBED = "not observable by a probe: the fix is in code the harness does not run"
UNSUITED = "the probe's inputs do not suit this code"


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
    repro: str = ""  # a self-contained Python snippet that reruns the probe behind the verdict
    inputs: dict = field(default_factory=dict)  # the constructor arguments and inputs it used

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
            "inputs": self.inputs,
            "repro": self.repro,
        }


@dataclass
class Settings:
    devices: list[str]
    timeout: float = DEFAULT_TIMEOUT_S
    memory_mb: int | None = DEFAULT_MEMORY_MB
    targets: dict = field(default_factory=dict)  # [tool.trainlint.verify.<Class>] tables
    jobs: int = max(os.cpu_count() or 1, 1)
    project_root: Path | None = None  # where the project's own call sites are read


def fix_key(d: Diagnostic) -> tuple:
    """Identifies one fix across lint rounds: rows move as earlier fixes add lines, and a
    message may change once another fix has been applied, so a rule's `data` wins."""
    if d.data:
        return (d.code, tuple(sorted(d.data.items())))
    return (d.code, d.message)


@dataclass
class _Job:
    """Probe specs whose results, once run, become verdicts."""

    specs: list[dict]
    finish: Callable[[list[ProbeRun]], list[Verdict]]


def verify_file(
    path: str,
    data: bytes,
    rules: Sequence[type[Rule]],
    settings: Settings,
    progress: Callable[[str], None] = lambda s: None,
) -> list[Verdict]:
    return verify_files([(path, data, rules)], settings, progress)


def verify_files(
    files: Sequence[tuple[str, bytes, Sequence[type[Rule]]]],
    settings: Settings,
    progress: Callable[[str], None] = lambda s: None,
) -> list[Verdict]:
    """Every probe of every file runs in one batch, so torch is imported once."""
    project = ProjectFiles(settings.project_root) if settings.project_root else None
    verdicts: list[Verdict] = []
    jobs: list[_Job] = []
    for path, data, rules in files:
        found, planned = _plan_file(path, data, rules, settings, project, progress)
        verdicts += found
        jobs += planned
    progress(f"running {sum(len(j.specs) for j in jobs)} probes")
    runs = run_probes([s for j in jobs for s in j.specs], settings.timeout, settings.memory_mb, settings.jobs)
    for job in jobs:
        mine, runs = runs[: len(job.specs)], runs[len(job.specs):]
        verdicts += job.finish(mine)
    verdicts.sort(key=lambda v: (v.filename, v.row))
    return verdicts


def _plan_file(path, data, rules, settings, project, progress) -> tuple[list[Verdict], list[_Job]]:
    result = engine.lint(path, data, rules)
    if result.module is None:
        return [], []
    fixable = [d for d in result.diagnostics if d.fixable(unsafe=True)]
    verdicts: list[Verdict] = []
    jobs: list[_Job] = []
    probed: set[int] = set()
    for target in find_targets(result.module):
        mine = [d for d in fixable if target.first_row <= d.row <= target.last_row and d.code not in LOOP_REPLAY]
        if mine:
            progress(f"{path}: planning {target.name} ({len(mine)} fixes)")
            jobs.append(_target_job(path, _fix_base(path, data, rules, result.module, target, mine),
                                    rules, target, mine, settings, project))
            probed.update(id(d) for d in mine)
    for d in fixable:
        if d.code in LOOP_REPLAY:
            jobs.append(_amp_job(path, data, rules, result.module, d))
        elif id(d) not in probed:
            verdicts.append(Verdict(path, "-", "-", d.code, d.row, d.message, "inconclusive",
                                    list(settings.devices), NOT_PROBED, {}, fix_key(d)))
    return verdicts, jobs


def _fix_base(path, data, rules, module, target: Target, fixes: list[Diagnostic]) -> bytes:
    """What the variants are fixed from: the target's own cut-out (same lines, a fraction of
    the file, so each variant lints far less), unless some rule sees it differently there
    (a message that names a module constant the cut-out drops): then the whole file."""
    cut = probe_source(module, target.name).encode("utf-8")
    found = engine.lint(path, cut, rules).diagnostics
    same = {fix_key(d) for d in found if d.fixable(unsafe=True)} == {fix_key(d) for d in fixes}
    return cut if same else data


def _amp_job(path, data, rules, module, d: Diagnostic) -> _Job:
    """Replay the loop's AMP call order, original and fixed, on a tiny model."""
    def verdict(v: str, evidence: str, sequences=None) -> Verdict:
        return Verdict(path, "training loop", "amp", d.code, d.row, d.message, v, ["cpu"],
                       evidence, {}, fix_key(d), snippet({"kind": "amp", "sequences": sequences or {}}),
                       {"sequences": sequences or {}})

    loop = loop_at(module, d.row)
    if loop is None:
        return _Job([], lambda runs: [verdict("inconclusive", "the clip call is not inside a loop the harness can find")])
    key = fix_key(d)
    fixed = engine.fix(path, data, rules, unsafe=True, accept=lambda x: fix_key(x) == key)
    fixed_module = engine.parse(engine.decode(fixed.data))
    sequences = {"original": amp_sequence(module, loop), "fixed": amp_sequence(fixed_module, loop)}

    def finish(runs: list[ProbeRun]) -> list[Verdict]:
        by_name = dict(zip(sequences, runs))
        for name, run in by_name.items():
            if run.result is None:
                return [verdict("inconclusive", f"the {name} replay: {run.problem}", sequences)]
        broken = {name: violations(run.result, []) for name, run in by_name.items()}
        if broken["fixed"]:
            return [verdict("refuted", f"with the fix, {'; '.join(broken['fixed'].values())}", sequences)]
        if broken["original"]:
            reference = by_name["fixed"].result["reference"]
            return [verdict(
                "confirmed",
                f"without this fix {'; '.join(broken['original'].values())}; with it the norm is "
                f"{reference:.4g} as in plain training",
                sequences,
            )]
        return [verdict("inconclusive", "the replayed original already clips the true norm", sequences)]

    specs = [{"kind": "amp", "sequence": seq, "devices": ["cpu"]} for seq in sequences.values()]
    return _Job(specs, finish)


def _variant(path, data, rules, keys: set, target: Target) -> str | None:
    fixed = engine.fix(path, data, rules, unsafe=True, accept=lambda d: fix_key(d) in keys)
    return probe_source(engine.parse(engine.decode(fixed.data)), target.name)


def _target_job(path, data, rules, target: Target, fixes: list[Diagnostic], settings, project) -> _Job:
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
        "hints": hints_for(project, target.name),
        # loss inputs are searched on the original, or on all fixes where it cannot construct
        "references": [["original", sources["original"]], ["all fixes", sources["all"]]],
    }
    names = list(sources)

    def finish(runs: list[ProbeRun]) -> list[Verdict]:
        probes = dict(zip(names, runs))
        results = {n: r.result for n, r in probes.items()}
        for r in results.values():
            if r is not None:
                r["target"] = target.name
        return [
            _attribute(path, target, d, fix_key(d), results, probes, observe, settings.devices,
                       sources, spec)
            for d in fixes
        ]

    return _Job([{**spec, "source": sources[n]} for n in names], finish)


def _attribute(path, target, d: Diagnostic, key, results, probes, observe, devices, sources, spec) -> Verdict:
    inputs = (results.get("all") or results.get("original") or {}).get("inputs", {})
    labels = {"all": "with all fixes", key: "without this fix", "original": "the original"}

    def verdict(v: str, evidence: str, traces=None, shown=("all", key)) -> Verdict:
        evidence += _reference_note(results)
        repro = snippet({
            "kind": target.kind, "target": target.name, "devices": list(devices), "observe": observe,
            "variants": [(labels[name], sources[name], (results[name] or {}).get("inputs") or inputs)
                         for name in shown],
            "title": f"{target.name}: {d.code} at {path}:{d.row} is {v}",
        })
        return Verdict(path, target.name, target.kind, d.code, d.row, d.message, v,
                       list(devices), evidence, traces or {}, key, repro, inputs)

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
    if sources[key] == sources["all"]:
        return verdict("inconclusive", "leaving this fix out changes nothing in the probed code: "
                                       "another fix makes the same edit")
    original = results["original"]
    broken = {
        name: violations(results[name], observe, original) for name in ("original", "all", key)
    }
    traces = _traces(results, key)
    edits = Edits(sources[key], sources["all"])  # the lines this fix changed, in the fixed code
    caused, unsuited = {}, {}
    for v, e in broken["all"].items():
        if v in broken["original"] or v in broken[key] or not reached(v, broken["original"]):
            continue
        failure = failure_of(results["all"], v)
        if failure is None or edits.touch(failure.get("lines") or []):
            caused[v] = e  # a deviation in values, or a failure that goes through the edit
        else:
            unsuited[v] = (e, failure)
    if caused:
        v, e = next(iter(caused.items()))
        return verdict("refuted", f"with the fix, {v} breaks where the original satisfied it on the "
                                  f"same inputs: {e}", traces, shown=("all", "original"))
    needed = {v: e for v, e in broken[key].items() if v not in broken["all"]}
    if needed:
        v, e = next(iter(needed.items()))
        failure = failure_of(results[key], v) or {}
        if d.code in DEVICE_LOCK and failure.get("cuda_locked") and "cpu" in v:
            return verdict(
                "confirmed",
                f"on CPU, without this fix the code is locked to CUDA ({v} breaks: {e}); with it, it "
                "runs on CPU. A CUDA-locked original that fails on CPU counts as the original failing",
                traces,
            )
        return verdict("confirmed", f"without this fix {v} breaks: {e}", traces)
    if unsuited:
        v, (e, failure) = next(iter(unsuited.items()))
        return verdict(
            "inconclusive",
            f"{UNSUITED}: with the fix, {v} breaks ({e}) in code the fix did not change "
            f"(line {failure.get('line')}), on inputs the original never reached",
            traces,
        )
    if broken["all"]:
        v, e = next(iter(broken["all"].items()))
        if v not in broken[key] and not reached(v, broken["original"]):
            return verdict(
                "inconclusive",
                f"{UNSUITED}: {v} breaks ({e}), where the original never got that far", traces,
            )
        return verdict(
            "inconclusive",
            f"the fixed code still breaks {v} ({e}), and leaving this fix out changes nothing "
            "the probe checks",
            traces,
        )
    reason = UNOBSERVABLE.get(d.code, "leaving this fix out breaks no invariant the probe checks")
    if d.code in DEVICE_LOCK and "cpu" not in devices:
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
