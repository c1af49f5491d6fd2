"""Parsing code written for Python < 3.7 that today's grammar rejects: `async=` keywords.

Before Python 3.7, `async` was an ordinary name, and torch < 0.4 spelled its non-blocking
copies `x.cuda(async=True)` / `x.to(device, async=True)`. Since `async` is a keyword,
such a file does not parse at all. Here each `async` that is followed by `=` is replaced
in the text by a placeholder name of the same length, the text is parsed, and the
placeholder keywords of the tree are renamed back to `async`: the tree's code is the
file's text exactly, so positions and untouched code stay as they are, and a rule can
rewrite the keyword (TL128 writes `non_blocking`).
"""

from __future__ import annotations

import io
import re
import tokenize

import libcst as cst

_ASYNC_ASSIGN = re.compile(r"\basync\s*=(?!=)")
# same length as `async`, so columns do not move; the first one absent from the file is used
_PLACEHOLDERS = ("_asyn", "asyn_", "_a_y_", "a_y_c")


def parse_legacy(text: str, config: cst.PartialParserConfig) -> cst.Module | None:
    """The module with its `async=` keyword arguments restored, or None when the text has
    none or still does not parse (a parameter or variable named `async`, another error)."""
    if not _ASYNC_ASSIGN.search(text):
        return None
    placeholder = next((p for p in _PLACEHOLDERS if p not in text), None)
    starts = _async_keywords(text)
    if placeholder is None or not starts:
        return None
    lines = text.splitlines(keepends=True)
    for row, column in starts:
        line = lines[row - 1]
        lines[row - 1] = line[:column] + placeholder + line[column + len("async"):]
    try:
        module = cst.parse_module("".join(lines), config)
    except cst.ParserSyntaxError:
        return None
    restorer = _Restore(placeholder)
    restored = module.visit(restorer)
    if restorer.elsewhere or restored.code != text:
        return None
    return restored


def _async_keywords(text: str) -> list[tuple[int, int]]:
    """(row, column) of every `async` token followed by a `=` token."""
    found = []
    previous = None
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in (tokenize.NL, tokenize.COMMENT):
                continue
            if (
                previous is not None
                and previous.type == tokenize.NAME
                and previous.string == "async"
                and token.type == tokenize.OP
                and token.string == "="
            ):
                found.append(previous.start)
            previous = token
    except (tokenize.TokenError, SyntaxError):
        return []
    return found


class _Restore(cst.CSTTransformer):
    """Renames placeholder keyword arguments back to `async`, counting the placeholders
    seen elsewhere (an `async` parameter or variable: still not valid code)."""

    def __init__(self, placeholder: str) -> None:
        self.placeholder = placeholder
        self.names = 0
        self.keywords = 0

    @property
    def elsewhere(self) -> bool:
        return self.names > self.keywords

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        if original_node.value == self.placeholder:
            self.names += 1
        return updated_node

    def leave_Arg(self, original_node: cst.Arg, updated_node: cst.Arg) -> cst.Arg:
        keyword = original_node.keyword
        if keyword is not None and keyword.value == self.placeholder:
            self.keywords += 1
            return updated_node.with_changes(keyword=cst.Name("async"))
        return updated_node
