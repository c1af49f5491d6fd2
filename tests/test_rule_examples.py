"""Every rule's embedded VALID/INVALID examples, collected automatically."""

from __future__ import annotations

import pytest

from helpers import fix_code, lint_code
from trainlint.registry import all_rules

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
    assert rule.may_apply(example.code), f"{rule.code}'s text prefilter rejects an INVALID example"


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.code)
def test_documentation_sections(rule):
    doc = rule.documentation()
    for heading in ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety"):
        assert f"## {heading}" in doc, f"{rule.code} docs lack '{heading}'"
    assert (rule.fix_applicability is None) == (
        "no fix" in doc.split("## Fix safety", 1)[1].lower()
    ), f"{rule.code}: the Fix safety section disagrees with fix_applicability"
