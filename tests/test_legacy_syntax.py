"""Files with pre-3.7 `async=` keywords are parsed and linted, with their text unchanged."""

from __future__ import annotations

from helpers import fix_code, lint_code
from trainlint.registry import by_code

LEGACY = "import torch\n\ndef f(x):\n    y = x.cuda(async=True)  # note\n    return x.to('cuda', async =True), y\n"


def test_async_keywords_are_linted_in_place():
    diagnostics = lint_code(LEGACY)
    assert [(d.code, d.row, d.column) for d in diagnostics] == [("TL128", 4, 16), ("TL128", 5, 25)]


def test_async_fix_renames_only_the_keyword():
    fixed = fix_code(LEGACY, [by_code("TL128")])
    assert fixed == LEGACY.replace("async=", "non_blocking=").replace("async =", "non_blocking =")


def test_other_fixes_keep_async_as_written():
    code = LEGACY + "\ndef g(steps=[]):\n    return steps\n"
    fixed = fix_code(code, [by_code("TL005")])
    assert "x.cuda(async=True)  # note" in fixed and "steps=None" in fixed


def test_async_parameters_and_strings_stay_syntax_errors():
    for code in ("def cuda(self, async=False):\n    pass\n", "async = True\n"):
        assert [d.code for d in lint_code(code)] == ["TL000"]
    text = 'doc = "x.cuda(async=True)"\nprint(doc)\n'
    assert lint_code(text, [by_code("TL128")]) == []
