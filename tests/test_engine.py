"""Engine behaviour: name resolution, encodings, line endings, rule failures, fix rounds."""

from __future__ import annotations

import libcst as cst

from helpers import fix_code, lint_code
from trainlint import engine
from trainlint.imports import ImportTable
from trainlint.registry import by_code
from trainlint.rule import Invalid, Rule, Valid

TL001, TL005 = by_code("TL001"), by_code("TL005")


def qual(src: str, expr: str) -> str | None:
    table = ImportTable.of_module(cst.parse_module(src))
    return table.qualname(cst.parse_expression(expr))


def test_import_table_resolves_aliases():
    assert qual("import torch as T\n", "T.cuda.FloatTensor") == "torch.cuda.FloatTensor"
    assert qual("from torch.cuda import FloatTensor\n", "FloatTensor") == "torch.cuda.FloatTensor"
    assert qual("from torch import where\n", "where") == "torch.where"
    assert qual("import torch.nn.functional as F\n", "F.cross_entropy") == (
        "torch.nn.functional.cross_entropy"
    )
    assert qual("import torch.nn\n", "torch.nn.Module") == "torch.nn.Module"
    assert qual("try:\n    from torch import where as w\nexcept ImportError:\n    pass\n", "w") == "torch.where"
    assert qual("def f():\n    import torch as tt\n", "tt.zeros") == "torch.zeros"
    assert qual("import torch\n", "where") is None
    assert qual("from . import torch\n", "torch.zeros") is None


def test_encoding_and_bom_are_preserved_by_fixes():
    latin = "# -*- coding: latin-1 -*-\n# café\ndef f(x=[]):\n    return x\n".encode("latin-1")
    out = engine.fix("l.py", latin, [TL005], unsafe=True).data
    assert out.startswith(b"# -*- coding: latin-1 -*-\n# caf\xe9\n")
    assert b"x=None" in out
    bom = b"\xef\xbb\xbfdef f(x=[]):\n    return x\n"
    out = engine.fix("b.py", bom, [TL005], unsafe=True).data
    assert out.startswith(b"\xef\xbb\xbfdef f(x=None):")


def test_crlf_line_endings_are_preserved():
    src = b"def f(x=[]):\r\n    return x\r\n"
    out = engine.fix("c.py", src, [TL005], unsafe=True).data
    assert out == b"def f(x=None):\r\n    if x is None:\r\n        x = []\r\n    return x\r\n"


def test_nul_bytes_are_reported():
    result = engine.lint("n.py", b"x = 1\n\x00\x01\x02", [TL005])
    assert [(d.code, d.row) for d in result.diagnostics] == [("TL000", 2)]
    assert "NUL" in result.diagnostics[0].message


def test_syntax_error_position_from_libcst_parse():
    result = engine.lint("s.py", b"def f(x=[]):\n    return (\n", [TL005])
    [d] = result.diagnostics
    assert d.code == "TL000" and d.message.startswith("syntax error")


class Exploding(Rule):
    """A rule with a bug, to check that the run goes on."""

    code = "TL998"
    name = "exploding"
    message = "boom"
    VALID: list[Valid] = []
    INVALID: list[Invalid] = []

    def visit_FunctionDef(self, node):
        raise ZeroDivisionError("boom")


def test_rule_exception_is_reported_and_other_rules_continue():
    result = engine.lint("x.py", b"def f(x=[]):\n    pass\n", [Exploding, TL005])
    codes = [d.code for d in result.diagnostics]
    assert codes == ["TL000", "TL005"]
    assert "TL998" in result.diagnostics[0].message and "ZeroDivisionError" in result.diagnostics[0].message


def test_fixes_on_nested_targets_converge_over_rounds():
    src = "def f(a=[], b={}, c=set()):\n    return a, b, c\n"
    out = fix_code(src, [TL005])
    assert lint_code(out, [TL005]) == []
    assert out.count("is None") == 3


def test_diagnostics_are_sorted():
    src = "def g(b={}):\n    pass\ndef f(a=[]):\n    pass\n"
    rows = [d.row for d in lint_code(src, [TL005])]
    assert rows == sorted(rows)


def test_prefilter_skips_parse_but_still_checks_syntax():
    result = engine.lint("p.py", b"x = (\n", [TL001])
    assert [d.code for d in result.diagnostics] == ["TL000"]
    result = engine.lint("p.py", b"x = 1\n", [TL001])
    assert result.diagnostics == [] and not result.parsed


def test_newer_syntax_than_the_interpreter_is_not_an_error():
    src = b"type X = int\ndef f[T](x: T) -> T:\n    return x\n"
    assert engine.lint("new.py", src, [TL001]).diagnostics == []
