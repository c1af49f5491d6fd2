"""Two-phase rules in the engine: phase one on the semantic model decides whether LibCST is
needed at all; phase two gets the LibCST node of each candidate's ast anchor."""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from trainlint import anchor, engine
from trainlint.rule import Rule



@dataclass(frozen=True)
class Candidate:
    anchor: ast.AST


class CallsNamedF(Rule):
    """Reports every call of `f`, at the call's LibCST node."""

    code = "TL996"
    name = "calls-named-f"
    message = "a call of f"
    seen: list = []

    @classmethod
    def candidates(cls, model):
        return [Candidate(c.node) for c in model.calls if isinstance(c.node.func, ast.Name) and c.node.func.id == "f"]

    def check(self, candidate, node):
        assert isinstance(node, cst.Call)
        CallsNamedF.seen.append(self.context.code(node))
        self.report(node)


class FailingCheck(CallsNamedF):
    code = "TL995"

    def check(self, candidate, node):
        raise ValueError("bug")


class FailingCandidates(CallsNamedF):
    code = "TL994"

    @classmethod
    def candidates(cls, model):
        raise ValueError("bug")


def test_no_candidate_means_no_libcst_parse():
    result = engine.lint("a.py", b"g(1)\n", [CallsNamedF])
    assert result.diagnostics == [] and not result.parsed and result.skipped_by == "candidates"


def test_check_gets_the_node_of_the_anchor():
    CallsNamedF.seen.clear()
    code = "x = 'é'; y = f(1)\n@d(f(2))\nclass A:\n    z = ('ü', f(f(3)))\n"
    result = engine.lint("a.py", code.encode(), [CallsNamedF])
    assert [(d.row, d.column, d.end_column) for d in result.diagnostics] == [
        (1, 14, 18), (2, 4, 8), (4, 15, 22), (4, 17, 21),
    ]
    assert sorted(CallsNamedF.seen) == ["f(1)", "f(2)", "f(3)", "f(f(3))"]


def test_failures_of_either_phase_are_internal_errors_and_other_rules_still_run():
    result = engine.lint("a.py", b"f(1)\n", [FailingCheck, FailingCandidates, CallsNamedF])
    codes = sorted(d.code for d in result.diagnostics)
    assert codes == ["TL000", "TL000", "TL996"]
    messages = " ".join(d.message for d in result.diagnostics)
    assert "rule TL995" in messages and "rule TL994" in messages


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="CPython parses PEP 695 here")
def test_fallback_without_a_model_two_phase_rules_do_not_run():
    """The documented fallback: a file that only LibCST parses (newer syntax than the
    interpreter) has no semantic model; its visitor rules run, its two-phase rules do not."""
    from trainlint.rules.tl005_mutable_default_argument import MutableDefaultArgument

    code = b"def g[T](x=[]):\n    return f(x)\n"
    result = engine.lint("n.py", code, [CallsNamedF, MutableDefaultArgument])
    assert [d.code for d in result.diagnostics] == ["TL005"] and result.parsed
    assert engine.unmodelled([CallsNamedF, MutableDefaultArgument]) == [MutableDefaultArgument]


def test_positions_are_resolved_only_for_statements_with_anchors(monkeypatch):
    resolved = []
    real = anchor.positions_of

    def counting(module):
        resolved.append(len(module.body))
        return real(module)

    monkeypatch.setattr(anchor, "positions_of", counting)
    code = "".join(f"def g{i}():\n    return {i}\n" for i in range(50)) + "f(0)\n"
    result = engine.lint("a.py", code.encode(), [CallsNamedF])
    assert len(result.diagnostics) == 1
    assert resolved == [1]  # the one statement holding a candidate, alone


def torch_files(count: int) -> list[Path]:
    """A fixed sample of torch's own layers and optimizers (located, not imported)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch is not installed")
    root = Path(list(spec.submodule_search_locations)[0])
    pool = sorted([*(root / "nn" / "modules").glob("*.py"), *(root / "optim").glob("*.py")])
    return [p for p in pool if 500 < p.stat().st_size <= 25_000][:count]


ANCHOR_TYPES = (ast.Call, ast.Attribute, ast.Name, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign)


def _char_column(lines: list[str], line: int, offset: int) -> int:
    return len(lines[line - 1].encode()[:offset].decode())


@pytest.mark.parametrize("path", torch_files(12), ids=lambda p: p.name)
def test_anchors_agree_with_whole_module_positions(path: Path):
    """Differential: for every anchor-able ast node of real files, the node found one
    statement at a time has the type and the whole-module position of the ast node."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    module = cst.parse_module(text)
    full = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    anchors = anchor.Anchors(module, tree, text)
    lines = anchor._NEWLINE.split(text)
    checked = 0
    for node in ast.walk(tree):
        if not isinstance(node, ANCHOR_TYPES):
            continue
        found, top = anchors.find(node)
        span = full[found]
        assert (span.start.line, span.start.column) == (node.lineno, _char_column(lines, node.lineno, node.col_offset))
        assert (span.end.line, span.end.column) == (
            node.end_lineno, _char_column(lines, node.end_lineno, node.end_col_offset)
        )
        assert top in module.body
        checked += 1
    assert checked > 0


def test_run_rules_without_phase_one_runs_it_on_the_module_code():
    reports, failures = engine.run_rules(cst.parse_module("f(1)\ng(f)\n"), [CallsNamedF])
    assert [type(r.node).__name__ for r in reports] == ["Call"] and failures == []
