"""Property-based tests: for generated programs (hypothesmith) and mutated fixture programs,
linting never fails internally, fixes parse, fixing is idempotent, bytes outside the fixes are
kept, and the diagnostics are the same on every run.

Bounded for CI (about 25 s); TRAINLINT_LONG_FUZZ=1 runs many more, unseeded examples
(TRAINLINT_FUZZ_EXAMPLES=N sets how many per test) and prints how many programs were tried
(`pytest -s`).
"""

from __future__ import annotations

import atexit
import difflib
import os
import random
from pathlib import Path

import libcst as cst
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainlint import engine
from trainlint.registry import all_rules

hypothesmith = pytest.importorskip("hypothesmith")

LONG = os.environ.get("TRAINLINT_LONG_FUZZ") == "1"
EXAMPLES = os.environ.get("TRAINLINT_FUZZ_EXAMPLES")  # with LONG: examples per test
RULES = list(all_rules())
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEEDS = sorted(
    p.read_text() for p in [*FIXTURES.glob("seed/*.py"), *FIXTURES.glob("clean/*.py")]
) + sorted({ex.code for rule in RULES for ex in [*rule.INVALID, *rule.VALID]})

TRIED: dict[str, int] = {}


def _count(kind: str) -> None:
    TRIED[kind] = TRIED.get(kind, 0) + 1


@atexit.register
def _report() -> None:  # pragma: no cover - output for the long run
    if TRIED:
        print(f"\ntrainlint fuzz: programs tried {TRIED} (total {sum(TRIED.values())})")


def fuzz_settings(ci: int, long: int):
    return settings(
        max_examples=(int(EXAMPLES) if EXAMPLES else long) if LONG else ci,
        deadline=None,
        derandomize=not LONG,  # CI runs are reproducible; the long run explores
        suppress_health_check=list(HealthCheck),
        database=None,
    )


# ----------------------------------------------------------------- the properties


def key(diagnostics):
    return [(d.path, d.code, d.row, d.column, d.end_row, d.end_column, d.message) for d in diagnostics]


def internal_errors(diagnostics):
    return [d for d in diagnostics if d.code == "TL000" and "internal error" in d.message]


def check_program(source: str) -> None:
    data = source.encode("utf-8")
    first = engine.lint("p.py", data, RULES, want_edits=True)
    assert not internal_errors(first.diagnostics), (source, key(first.diagnostics))
    again = engine.lint("p.py", data, RULES, want_edits=True)
    assert key(again.diagnostics) == key(first.diagnostics), "diagnostics differ between runs"

    fixed = engine.fix("p.py", data, RULES, unsafe=True)
    assert not internal_errors(fixed.remaining.diagnostics), source
    assert not any("does not parse" in d.message for d in fixed.remaining.diagnostics), source
    if fixed.data == data:
        return
    cst.parse_module(fixed.data.decode("utf-8"))  # fixed output parses
    twice = engine.fix("p.py", fixed.data, RULES, unsafe=True)
    assert twice.data == fixed.data, "fixing the fixed output changed it again"
    assert engine.fix("p.py", data, RULES, unsafe=True).data == fixed.data, "fix not deterministic"
    _check_untouched(source, first.diagnostics, fixed.data.decode("utf-8"))


def _check_untouched(before: str, diagnostics, after: str) -> None:
    """Lines the fixes did not target are kept byte for byte (insertions are allowed anywhere)."""
    allowed: set[int] = set()
    for d in diagnostics:
        if d.fix is None:
            continue
        allowed.update(range(d.row, d.end_row + 1))
        for edit in d.edits:
            allowed.update(range(edit.row, edit.end_row + 1))
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    for tag, i1, i2, _, _ in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("replace", "delete"):
            touched = set(range(i1 + 1, i2 + 1))
            # a later fix round may touch a line the first round's edits did not name; allow the
            # neighbourhood of what was flagged, never an unrelated region
            near = {r + k for r in allowed for k in range(-3, 4)}
            assert touched <= near, (touched, sorted(allowed), before, after)


# ----------------------------------------------------------------- generated programs


@fuzz_settings(ci=60, long=3000)
@given(hypothesmith.from_grammar())
def test_generated_programs(source):
    _count("hypothesmith.from_grammar")
    check_program(source)


@fuzz_settings(ci=25, long=1000)
@given(hypothesmith.from_node())
def test_generated_cst_programs(source):
    _count("hypothesmith.from_node")
    check_program(source)


# ----------------------------------------------------------------- mutated fixtures


class _Rename(cst.CSTTransformer):
    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    def leave_Name(self, original_node, updated_node):
        new = self.mapping.get(updated_node.value)
        return updated_node.with_changes(value=new) if new else updated_node


class _AliasTorch(cst.CSTTransformer):
    """`import torch` -> `import torch as T`, and every bare `torch` name -> `T`."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def leave_ImportAlias(self, original_node, updated_node):
        if isinstance(updated_node.name, cst.Name) and updated_node.name.value == "torch" and not updated_node.asname:
            return updated_node.with_changes(asname=cst.AsName(cst.Name(self.alias)))
        return updated_node

    def leave_Name(self, original_node, updated_node):
        return updated_node.with_changes(value=self.alias) if updated_node.value == "torch" else updated_node


class _Shuffle(cst.CSTTransformer):
    def __init__(self, rng: random.Random, p: float) -> None:
        self.rng, self.p = rng, p

    def _shuffled(self, body):
        body = list(body)
        if len(body) > 1 and self.rng.random() < self.p:
            self.rng.shuffle(body)
        return body

    def leave_Module(self, original_node, updated_node):
        return updated_node.with_changes(body=self._shuffled(updated_node.body))

    def leave_IndentedBlock(self, original_node, updated_node):
        return updated_node.with_changes(body=self._shuffled(updated_node.body))


_DEFINED = ("FunctionDef", "ClassDef", "Param", "Name")


def _names(module: cst.Module) -> list[str]:
    found: set[str] = set()

    class Collect(cst.CSTVisitor):
        def visit_Name(self, node):
            found.add(node.value)

    module.visit(Collect())
    keep = {"self", "super", "torch", "nn", "F", "print", "len", "range", "list", "dict", "set",
            "int", "float", "math", "np", "object", "None", "True", "False", "isinstance"}
    return sorted(found - keep)


def mutate(source: str, seed: int, shuffle: float, rename: float, alias: str | None) -> str:
    rng = random.Random(seed)
    module = cst.parse_module(source)
    names = _names(module)
    mapping = {n: f"{n}_{rng.randrange(100)}" for n in names if rng.random() < rename}
    module = module.visit(_Rename(mapping))
    if alias:
        module = module.visit(_AliasTorch(alias))
    if shuffle:
        module = module.visit(_Shuffle(rng, shuffle))
    return module.code


@fuzz_settings(ci=60, long=3000)
@given(
    base=st.sampled_from(SEEDS),
    seed=st.integers(0, 2**32 - 1),
    shuffle=st.sampled_from([0.0, 0.3, 1.0]),
    rename=st.sampled_from([0.0, 0.2, 0.7]),
    alias=st.sampled_from([None, "T", "pt", "torch_"]),
)
def test_mutated_fixture_programs(base, seed, shuffle, rename, alias):
    _count("mutated fixtures")
    check_program(mutate(base, seed, shuffle, rename, alias))


@fuzz_settings(ci=30, long=1000)
@given(
    parts=st.lists(st.sampled_from(SEEDS), min_size=2, max_size=4),
    seed=st.integers(0, 2**32 - 1),
)
def test_spliced_fixture_programs(parts, seed):
    """Several programs concatenated and shuffled: rules see each other's classes and imports."""
    _count("spliced fixtures")
    source = "\n".join(p if p.endswith("\n") else p + "\n" for p in parts)
    try:
        cst.parse_module(source)
    except cst.ParserSyntaxError:
        return
    check_program(mutate(source, seed, 0.5, 0.1, "T" if seed % 2 else None))


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_every_seed_program_unmutated(index):
    check_program(SEEDS[index])
