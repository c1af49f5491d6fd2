"""Every rule's embedded VALID/INVALID examples, collected automatically."""

from __future__ import annotations

import libcst as cst
import pytest

from helpers import fix_code, lint_code
from trainlint import engine
from trainlint.registry import all_rules
from trainlint.screen import AstIndex
from trainlint.tokens import Tokens

VALID = [
    pytest.param(rule, ex, id=f"{rule.code}-valid-{i}")
    for rule in all_rules()
    for i, ex in enumerate(rule.VALID)
]
INVALID = [
    pytest.param(rule, ex, id=f"{rule.code}-invalid-{i}")
    for rule in all_rules()
    for i, ex in enumerate(rule.INVALID)
]


def test_every_rule_has_examples():
    for rule in all_rules():
        assert rule.VALID, f"{rule.code} has no VALID examples"
        assert rule.INVALID, f"{rule.code} has no INVALID examples"


@pytest.mark.parametrize("rule, example", VALID)
def test_valid_example_is_clean(rule, example):
    diagnostics = lint_code(example.code, [rule])
    assert diagnostics == [], f"{rule.code} fired on a VALID example:\n{example.code}"


@pytest.mark.parametrize("rule, example", INVALID)
def test_invalid_example_fires(rule, example):
    diagnostics = lint_code(example.code, [rule])
    assert diagnostics, f"{rule.code} did not fire on:\n{example.code}"
    assert all(d.code == rule.code for d in diagnostics)
    if example.line is not None:
        assert diagnostics[0].row == example.line
    if example.count is not None:
        assert len(diagnostics) == example.count


@pytest.mark.parametrize("rule, example", INVALID)
def test_invalid_example_fix(rule, example):
    fixed = fix_code(example.code, [rule])
    if example.fixed is None:
        assert fixed == example.code, f"{rule.code} changed code it declares no fix for"
        return
    assert fixed == example.fixed
    assert fix_code(fixed, [rule]) == fixed, "fixing twice differs from fixing once"


@pytest.mark.parametrize("rule, example", INVALID)
def test_trigger_is_necessary(rule, example):
    assert rule.may_apply(Tokens(example.code)), f"{rule.code}'s declared tokens reject an INVALID example"


def ast_index(code: str) -> AstIndex | None:
    """The index the engine screens with; None where CPython cannot parse the code (the
    engine then runs every rule the text prefilter let through)."""
    try:
        return AstIndex(engine._cpython_ast(code), code)
    except SyntaxError:
        return None


@pytest.mark.parametrize("rule, example", INVALID)
def test_screen_is_necessary(rule, example):
    index = ast_index(example.code)
    assert index is None or rule.screen(index), (
        f"{rule.code}'s ast screen rejects an INVALID example:\n{example.code}"
    )


# Every example of every rule, and every fixed version, through every rule: wherever a rule
# reports (on any rule's example), its text prefilter and its screen must let the file through.
EVERY_EXAMPLE = sorted(
    {
        code
        for rule in all_rules()
        for ex in (*rule.VALID, *rule.INVALID)
        for code in (ex.code, getattr(ex, "fixed", None))
        if code is not None
    }
)


class _Aliased(cst.CSTTransformer):
    """Binds every imported name under another spelling (`from torch.nn import Linear as
    a_Linear`, `import torch as a_torch`) and renames its uses to match."""

    def __init__(self) -> None:
        self.renamed: dict[str, str] = {}

    def leave_ImportAlias(self, original: cst.ImportAlias, updated: cst.ImportAlias) -> cst.ImportAlias:
        if not isinstance(original.name, cst.Name):
            return original  # `import torch.nn` binds `torch`, whatever follows
        local = original.asname.name.value if original.asname else original.name.value
        self.renamed[local] = f"a_{local}"
        return original.with_changes(asname=cst.AsName(name=cst.Name(f"a_{local}")))


class _Renamed(cst.CSTTransformer):
    def __init__(self, renamed: dict[str, str]) -> None:
        self.renamed = renamed

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        return updated.with_changes(value=self.renamed.get(updated.value, updated.value))

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        return updated.with_changes(attr=original.attr)

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated.with_changes(keyword=original.keyword)

    def leave_ImportAlias(self, original: cst.ImportAlias, updated: cst.ImportAlias) -> cst.ImportAlias:
        return original.with_changes(asname=updated.asname)


def _aliased(module: cst.Module) -> cst.Module:
    binder = _Aliased()
    module = module.visit(binder)
    return module.visit(_Renamed(binder.renamed))


class _Asynchronous(cst.CSTTransformer):
    """Makes every `def`, `for` and `with` `async`."""

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        return updated.with_changes(asynchronous=cst.Asynchronous())

    def leave_For(self, original: cst.For, updated: cst.For) -> cst.For:
        return updated.with_changes(asynchronous=cst.Asynchronous())

    def leave_With(self, original: cst.With, updated: cst.With) -> cst.With:
        return updated.with_changes(asynchronous=cst.Asynchronous())


class _Spaced(cst.CSTTransformer):
    """Puts a space before every call's parenthesis and every attribute's dot (`opt .step
    ()`, the text of a chain broken over lines)."""

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        return updated.with_changes(whitespace_after_func=cst.SimpleWhitespace(" "))

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        return updated.with_changes(dot=updated.dot.with_changes(whitespace_before=cst.SimpleWhitespace(" ")))


# The same code spelled differently: the rules resolve names through the imports, and
# LibCST's tree marks `async` with a flag where CPython's has other node types
# (`AsyncFunctionDef`...), so no prefilter or screen may rely on one spelling.
VARIANTS = {
    "aliased": _aliased,
    "async": lambda module: module.visit(_Asynchronous()),
    "spaced": lambda module: module.visit(_Spaced()),
}


def variant(code: str, kind: str) -> str | None:
    """code rewritten by VARIANTS[kind], or None when it does not parse or stays the same."""
    try:
        changed = VARIANTS[kind](cst.parse_module(code)).code
    except cst.ParserSyntaxError:
        return None
    return changed if changed != code else None


EXAMPLE_VARIANTS = sorted(
    {(kind, v) for kind in VARIANTS for code in EVERY_EXAMPLE if (v := variant(code, kind))}
)


@pytest.fixture
def unfiltered(monkeypatch):
    monkeypatch.setattr(engine, "PREFILTER", False)


@pytest.mark.parametrize("code", EVERY_EXAMPLE, ids=lambda c: f"{hash(c) & 0xFFFFFF:06x}")
def test_prefilter_and_screen_pass_wherever_a_rule_reports(code, unfiltered):
    reported = {d.code for d in lint_code(code, all_rules())}
    index = ast_index(code)
    for rule in all_rules():
        if rule.code in reported:
            assert rule.may_apply(Tokens(code)), f"{rule.code}'s declared tokens reject:\n{code}"
            assert index is None or rule.screen(index), f"{rule.code}'s screen rejects:\n{code}"


@pytest.mark.parametrize(
    "kind, code", EXAMPLE_VARIANTS, ids=lambda v: v if v in VARIANTS else f"{hash(v) & 0xFFFFFF:06x}"
)
def test_prefilter_and_screen_pass_on_every_spelling(kind, code, unfiltered):
    """The same as above on every example rewritten by each of VARIANTS."""
    test_prefilter_and_screen_pass_wherever_a_rule_reports(code, unfiltered)


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_documentation_sections(rule):
    doc = rule.documentation()
    for heading in ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety"):
        assert f"## {heading}" in doc, f"{rule.code} docs lack '{heading}'"
    assert (rule.fix_applicability is None) == (
        "no fix" in doc.split("## Fix safety", 1)[1].lower()
    ), f"{rule.code}: the Fix safety section disagrees with fix_applicability"
