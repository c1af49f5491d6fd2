"""Suppression comments: line and file level, and finding the unused ones (TL901)."""

from __future__ import annotations

import libcst as cst
import pytest

from helpers import fix_code, lint_code
from trainlint import engine
from trainlint.registry import all_rules
from trainlint.rules.tl901_unused_suppression import UnusedSuppression
from trainlint.suppress import UNUSED_SUPPRESSION, Suppressions
from trainlint.tokens import Tokens

BUGGY = """\
import torch


class Warm:
    def __init__(self, steps=[]):
        self.iters = -1

    def step(self):
        self.iters = 1
        return self.iters
"""  # TL005 on line 5, TL001 on line 9


def codes(text: str, rules=None) -> list[tuple[int, str]]:
    return [(d.row, d.code) for d in lint_code(text, rules)]


# ----------------------------------------------------------------------------- file level


@pytest.mark.parametrize(
    "header",
    ["# trainlint: ignore-file\n", "#trainlint:ignore-file\n", "# TRAINLINT: IGNORE-FILE  -- generated\n"],
)
def test_ignore_file_hides_everything(header):
    assert codes(BUGGY) != []
    assert codes(header + BUGGY) == []
    assert codes(BUGGY + "\n" + header) == []  # anywhere in the file, on a line of its own


def test_ignore_file_with_codes_hides_only_those():
    assert codes("# trainlint: ignore-file[TL005]\n" + BUGGY) == [(10, "TL001")]
    assert codes("# trainlint: ignore-file[TL001, tl005]\n" + BUGGY) == []


@pytest.mark.parametrize(
    "text",
    [
        BUGGY.replace("self.iters = 1", "self.iters = 1  # trainlint: ignore-file"),
        "# trainlint: ignore-files\n" + BUGGY,
        "# trainlint: ignore-filex\n" + BUGGY,
    ],
)
def test_not_a_file_level_directive(text):
    found = codes(text)
    assert {c for _, c in found} >= {"TL001", "TL005"}


def test_ignore_file_queries():
    s = Suppressions("# trainlint: ignore-file[TL005]\nx = 1\n")
    assert not s.ignores_whole_file and s.file_ignores("TL005") and not s.file_ignores("TL001")
    assert Suppressions("# trainlint: ignore-file\n").ignores_whole_file


def test_line_suppressions_still_work():
    text = BUGGY.replace("steps=[]):", "steps=[]):  # noqa: TL005").replace(
        "        self.iters = 1\n", "        # trainlint: ignore[TL001]\n        self.iters = 1\n"
    )
    assert codes(text) == []
    assert codes(BUGGY.replace("self.iters = 1", "self.iters = 1  # trainlint: ignore")) == [(5, "TL005")]


def test_line_numbers_follow_python_not_str_splitlines():
    # A form feed is a line break for str.splitlines() but not for Python or LibCST.
    text = "\x0c\n" + BUGGY.replace("self.iters = 1", "self.iters = 1  # noqa: TL001")
    assert codes(text) == [(6, "TL005")]


# ----------------------------------------------------------------------------- TL901 (unit)


def unused(text: str, checked=("TL001", "TL005", "TL901"), reported=()) -> tuple[list, str]:
    """TL901 reports and the fixed text, given which (line, code) diagnostics were reported."""
    s = Suppressions(text)
    for line, code in reported:
        s.covers(line, code)
    module = cst.parse_module(text)
    reports = s.unused_reports(module, checked)
    fixed, applied = engine.apply_fixes(module, [r.fix for r in reports])
    assert len(applied) == len(reports)
    return reports, fixed.code


@pytest.mark.parametrize(
    "text, fixed",
    [
        ("x = f()  # noqa: TL001\n", "x = f()\n"),
        ("x = f()  # trainlint: ignore[TL001]\n", "x = f()\n"),
        ("x = f()  # trainlint: ignore\n", "x = f()\n"),
        ("x = f()  # noqa: E501, TL001\n", "x = f()  # noqa: E501\n"),
        ("x = f()  # noqa:TL001,E501\n", "x = f()  # noqa:E501\n"),
        ("x = f()  # keep this note  # noqa: TL001\n", "x = f()  # keep this note\n"),
        ("x = f()  # noqa: TL999\n", "x = f()\n"),  # unknown TL code
        ("def g():\n    # trainlint: ignore[TL001]\n    return 1\n", "def g():\n    return 1\n"),
        ("# trainlint: ignore-file[TL001]\nx = 1\n", "x = 1\n"),
        ("x = [  # noqa: TL001\n    1,\n]\n", "x = [\n    1,\n]\n"),
    ],
)
def test_unused_is_reported_and_removed(text, fixed):
    reports, result = unused(text)
    assert len(reports) == 1 and reports[0].code == UNUSED_SUPPRESSION
    assert reports[0].fix.applicability.value == "safe"
    assert result == fixed
    assert unused(result)[0] == []  # fixing twice equals fixing once


@pytest.mark.parametrize(
    "text",
    [
        "x = f()  # noqa\n",  # blanket noqa belongs to every linter
        "x = f()  # noqa: E501, F401\n",  # other tools' codes
        "x = f()  # noqa: TL004\n",  # TL004 did not run here: cannot tell
        "x = f()  # trainlint: ignore[TL901]\n",
        "# trainlint: ignore-file\nx = 1\n",
        's = "x  # trainlint: ignore"\n',  # not a comment
        "x = f()  # trainlint: ignore[TL001]\n# trainlint: ignore-file[TL901]\n",
    ],
)
def test_not_reported(text):
    assert unused(text)[0] == []


def test_used_codes_stay_and_stale_ones_go():
    text = "x = f()  # trainlint: ignore[TL001, TL005]\n"
    reports, fixed = unused(text, reported=[(1, "TL005")])
    assert fixed == "x = f()  # trainlint: ignore[TL005]\n"
    assert reports[0].message == "Unused suppression (not reported here: `TL001`)"
    assert unused(text, reported=[(1, "TL005"), (1, "TL001")])[0] == []
    # A comment line applies to itself and the next line.
    assert unused("# trainlint: ignore[TL001]\nx = f()\n", reported=[(2, "TL001")])[0] == []
    assert unused("# trainlint: ignore-file[TL001]\n\n\nx = f()\n", reported=[(4, "TL001")])[0] == []


def test_blanket_ignore_does_not_hide_its_own_report():
    reports, _ = unused("x = f()  # trainlint: ignore\n")
    assert reports[0].message.startswith("Unused blanket `# trainlint: ignore`")


def test_messages_name_unknown_codes():
    reports, _ = unused("x = f()  # noqa: TL001, TL999\n")
    assert reports[0].message == (
        "Unused suppression (not reported here: `TL001`; unknown codes: `TL999`)"
    )


def test_rule_documentation_and_examples():
    doc = UnusedSuppression.documentation()
    for heading in ("What it does", "Why is this bad?", "Example", "Use instead", "Fix safety"):
        assert f"## {heading}" in doc
    assert UnusedSuppression.code == "TL901" and UnusedSuppression.name == "unused-suppression"
    for example in UnusedSuppression.INVALID:
        assert UnusedSuppression.may_apply(Tokens(example.code))
        module = cst.parse_module(example.code)
        s = Suppressions(example.code)
        reports = s.unused_reports(module, {"TL901"})
        assert reports, example.code
        assert engine.apply_fixes(module, [r.fix for r in reports])[0].code == example.fixed
    for example in UnusedSuppression.VALID:
        assert Suppressions(example.code).unused_reports(cst.parse_module(example.code), {"TL901"}) == []


# ----------------------------------------------------------------------------- TL901 (engine)

wired = pytest.mark.skipif(
    UNUSED_SUPPRESSION not in {r.code for r in all_rules()},
    reason="TL901 is not registered in trainlint.rules yet (see trainlint/suppress.py)",
)


@wired
def test_engine_reports_unused_suppressions():
    text = BUGGY.replace("steps=[]):", "steps=[]):  # noqa: TL005, TL001").replace(
        "return self.iters", "return self.iters  # trainlint: ignore"
    )
    assert codes(text) == [(5, "TL901"), (9, "TL001"), (10, "TL901")]
    fixed = fix_code(text, unsafe=False)
    assert "steps=[]):  # noqa: TL005\n" in fixed and "return self.iters\n" in fixed
    # Only rules that ran count: with TL001 deselected, `noqa: TL001` is left alone.
    rules = [r for r in all_rules() if r.code != "TL001"]
    assert codes(text, rules) == [(10, "TL901")]


@wired
def test_engine_tl901_in_sarif_fixes():
    from trainlint.report import sarif
    from trainlint.runner import FileOutcome, Run

    text = "x = compute()  # noqa: E501, TL999\n"
    diagnostics = engine.lint("m.py", text.encode(), all_rules(), want_edits=True).diagnostics
    (d,) = diagnostics
    assert (d.code, d.row, d.column) == ("TL901", 1, 16)
    (result,) = sarif.report(Run([FileOutcome("m.py", diagnostics)], False))["runs"][0]["results"]
    (rep,) = result["fixes"][0]["artifactChanges"][0]["replacements"]
    assert rep["insertedContent"]["text"] == "" and rep["deletedRegion"]["startColumn"] == 28


# ----------------------------------------------------------------------------- --add-noqa

LOSS = """\
BATCH_SIZE = 16


def loss(x, t):
    a = x.view(16, 1)
    b = x.view(16, 2) + len(\"\"\"
    text\"\"\")
    c = x.view(16, 3) + \\
        1
    d = x.view(16, 4)  # noqa: E501
    return a, b, c, d
"""


def test_add_noqa_suppresses_every_diagnostic():
    from trainlint.suppress import add_noqa

    diagnostics = lint_code(LOSS)
    assert [(d.row, d.code) for d in diagnostics] == [(5, "TL002"), (6, "TL002"), (8, "TL002"), (10, "TL002")]
    text, added = add_noqa(LOSS, diagnostics)
    assert added == 4
    assert lint_code(text) == []
    lines = text.splitlines()
    assert lines[4] == "    a = x.view(16, 1)  # noqa: TL002"
    assert lines[5] == "    # trainlint: ignore[TL002]"  # line 6 ends inside a string
    assert lines[8] == "    # trainlint: ignore[TL002]"  # line 8 continues with a backslash
    assert lines[11] == "    d = x.view(16, 4)  # noqa: E501, TL002"
    assert add_noqa(text, lint_code(text)) == (text, 0)


def test_add_noqa_keeps_crlf_and_merges_codes():
    from trainlint.suppress import add_noqa

    text = BUGGY.replace("self.iters = 1", "self.iters = 1; f(x=[])").replace("\n", "\r\n")
    new, added = add_noqa(text, lint_code(text))
    assert added >= 2 and "\r\n" in new and "\n" not in new.replace("\r\n", "")
    assert lint_code(new) == []
