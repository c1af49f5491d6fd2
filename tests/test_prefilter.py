"""The declared-token prefilter: one word set per file, a necessary condition whatever the
spelling. Every rule's INVALID examples must still pass their rule's prefilter when
rewritten with parentheses, line breaks and comments inside brackets, spaces around dots
and aliased imports."""

from __future__ import annotations

import libcst as cst
import pytest

from helpers import lint_code
from trainlint import engine
from trainlint.registry import all_rules
from trainlint.tokens import Tokens


def _wrapped(node: cst.BaseExpression) -> cst.BaseExpression:
    return node.with_changes(lpar=[cst.LeftParen(), *node.lpar], rpar=[*node.rpar, cst.RightParen()])


class _Parenthesized(cst.CSTTransformer):
    """Wraps defaults, arguments, assigned and returned values and attribute bases in
    parentheses: `def f(x=(set())):`, `(opt).step((x))`."""

    def leave_Param(self, original: cst.Param, updated: cst.Param) -> cst.Param:
        return updated if updated.default is None else updated.with_changes(default=_wrapped(updated.default))

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        return updated if updated.star else updated.with_changes(value=_wrapped(updated.value))

    def leave_Assign(self, original: cst.Assign, updated: cst.Assign) -> cst.Assign:
        return updated.with_changes(value=_wrapped(updated.value))

    def leave_Return(self, original: cst.Return, updated: cst.Return) -> cst.Return:
        return updated if updated.value is None else updated.with_changes(value=_wrapped(updated.value))

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        return updated.with_changes(value=_wrapped(updated.value))


def _broken_line(comment: str | None) -> cst.ParenthesizedWhitespace:
    return cst.ParenthesizedWhitespace(
        first_line=cst.TrailingWhitespace(
            whitespace=cst.SimpleWhitespace("  " if comment else ""),
            comment=cst.Comment(comment) if comment else None,
        ),
        indent=True,
        last_line=cst.SimpleWhitespace("    "),
    )


class _BrokenLines(cst.CSTTransformer):
    """Breaks the line after every call's and every signature's opening parenthesis, with
    a comment there or not."""

    def __init__(self, comment: str | None) -> None:
        self.comment = comment

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        return updated.with_changes(whitespace_before_args=_broken_line(self.comment))

    def leave_FunctionDef(self, original: cst.FunctionDef, updated: cst.FunctionDef) -> cst.FunctionDef:
        return updated.with_changes(whitespace_before_params=_broken_line(self.comment))


class _SpacedDots(cst.CSTTransformer):
    """`opt. step()` and `opt .step()`."""

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute) -> cst.Attribute:
        return updated.with_changes(
            dot=cst.Dot(whitespace_before=cst.SimpleWhitespace(" "), whitespace_after=cst.SimpleWhitespace(" "))
        )


def _bound(alias: cst.ImportAlias) -> str:
    return alias.asname.name.value if alias.asname else cst.helpers.get_full_name_for_node(alias.name)


class _ImportedNames(cst.CSTVisitor):
    def __init__(self) -> None:
        self.renamed: dict[str, str] = {}

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if "." not in _bound(node):
            self.renamed[_bound(node)] = f"a_{_bound(node)}"


class _AliasedImports(cst.CSTTransformer):
    """`import torch.nn as nn` -> `import torch.nn as a_nn`, `from torch import nn` ->
    `from torch import nn as a_nn`, and every use renamed to match."""

    def __init__(self, renamed: dict[str, str]) -> None:
        self.renamed = renamed
        self.in_import = 0

    def leave_ImportAlias(self, original: cst.ImportAlias, updated: cst.ImportAlias) -> cst.ImportAlias:
        if _bound(original) not in self.renamed:
            return updated
        return updated.with_changes(asname=cst.AsName(name=cst.Name(self.renamed[_bound(original)])))

    def visit_Import(self, node: cst.Import) -> None:
        self.in_import += 1

    def leave_Import(self, original: cst.Import, updated: cst.Import) -> cst.Import:
        self.in_import -= 1
        return updated

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self.in_import += 1

    def leave_ImportFrom(self, original: cst.ImportFrom, updated: cst.ImportFrom) -> cst.ImportFrom:
        self.in_import -= 1
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.Name:
        if self.in_import:
            return updated
        return updated.with_changes(value=self.renamed.get(updated.value, updated.value))


def _aliased(module: cst.Module) -> cst.Module:
    names = _ImportedNames()
    module.visit(names)  # first: a use may come before its import
    return module.visit(_AliasedImports(names.renamed))


MUTATIONS = {
    "parentheses": lambda m: m.visit(_Parenthesized()),
    "line breaks": lambda m: m.visit(_BrokenLines(None)),
    "comments": lambda m: m.visit(_BrokenLines("# note")),
    "spaced dots": lambda m: m.visit(_SpacedDots()),
    "aliased imports": _aliased,
}


def _mutants():
    out = []
    for rule in all_rules():
        for number, example in enumerate(rule.INVALID):
            for kind, mutate in MUTATIONS.items():
                try:
                    code = mutate(cst.parse_module(example.code)).code
                    cst.parse_module(code)
                except (cst.ParserSyntaxError, TypeError, cst.CSTValidationError):
                    continue
                if code != example.code:
                    out.append(pytest.param(rule, code, id=f"{rule.code}-{number}-{kind}"))
    return out


MUTANTS = _mutants()


def test_every_mutation_applies_to_many_examples():
    kinds = {p.id.rsplit("-", 1)[1] for p in MUTANTS}
    assert kinds == set(MUTATIONS)
    assert len(MUTANTS) > 3 * sum(len(r.INVALID) for r in all_rules())


@pytest.mark.parametrize("rule, code", MUTANTS)
def test_invalid_examples_pass_the_prefilter_however_spelled(rule, code):
    assert rule.may_apply(Tokens(code)), f"{rule.code}'s declared tokens reject:\n{code}"


def test_a_parenthesized_mutable_default_is_found():
    """`seen=(set())` slipped past the old text pattern (`=\\s*set\\s*\\(`)."""
    code = "def add(x, seen=(set())):\n    seen.add(x)\n"
    assert {d.code for d in lint_code(code)} >= {"TL005", "TL006"}


def test_the_token_set_holds_words_not_text():
    tokens = Tokens("opt . step ( )  # noqa: TL101\nx = 'lr'\nﬁnd = 1\n")
    assert {"opt", "step", "noqa", "TL101", "x", "lr", "find"} <= tokens.words
    assert tokens.meet(("step", ("zero", "*NOQ*")))
    assert not tokens.meet(("step", "backward"))
    assert not tokens.meet(("*tl102*",)) and tokens.meet(("*tl101*",))
    assert tokens.meet(())


def test_prefilter_computes_the_token_set_once_per_file(monkeypatch):
    made = []
    real = engine.Tokens
    monkeypatch.setattr(engine, "Tokens", lambda text: made.append(text) or real(text))
    engine.lint("f.py", b"import torch\nx = torch.zeros(3).cuda()\n", all_rules())
    assert len(made) == 1
