"""Suppression comments: which diagnostics they hide, which of them hid nothing (TL901).

Recognised comments:

- `# trainlint: ignore[TL001,TL004]` (or bare `# trainlint: ignore`, every code) on the
  flagged line, or on its own line just above it;
- `# noqa: TL001` (or a bare `# noqa`) on the flagged line, as flake8 and ruff spell it;
- `# trainlint: ignore-file` (or `# trainlint: ignore-file[TL001,TL004]`) on a line of its
  own anywhere in the file: the whole file.

`Suppressions.covers` records which directive hid which code, so that after a file is
linted `unused_reports` can say which directives hid nothing (rule TL901).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from trainlint.rule import Applicability, Fix, Report
from trainlint.traverse import walk

UNUSED_SUPPRESSION = "TL901"
UNUSED_SUPPRESSION_NAME = "unused-suppression"

_COMMENT = re.compile(
    r"#\s*(?:trainlint:\s*(?P<tl>ignore-file|ignore)(?![\w-])(?:\[(?P<tl_codes>[^\]\n]*)\])?"
    r"|(?P<noqa>noqa)(?::\s*(?P<noqa_codes>[A-Z]+[0-9]+(?:(?:\s*,\s*|\s+)[A-Z]+[0-9]+)*))?)",
    re.IGNORECASE,
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # LibCST's (and the tokenizer's) idea of a line

ALL = None  # a suppression without codes covers every code


@dataclass(eq=False)
class Directive:
    """One suppression directive found in a comment."""

    kind: str  # "trainlint" (line), "file" (ignore-file) or "noqa"
    line: int  # 1-based line of the comment
    start: int  # 0-based column span of the directive text in that line
    end: int
    codes: tuple[str, ...] | None  # in written order; None: every code
    codes_span: tuple[int, int] | None  # column span of the code list, when there is one
    used: set[str] = field(default_factory=set)

    def matches(self, code: str) -> bool:
        return self.codes is ALL or code in self.codes


class Suppressions:
    """The directives of one file and what they suppressed so far."""

    def __init__(self, text: str) -> None:
        self.directives: list[Directive] = []
        self._by_line: dict[int, list[Directive]] = {}
        self._file: list[Directive] = []
        lowered = text.lower()
        if "trainlint:" not in lowered and "noqa" not in lowered:
            return
        for number, line in enumerate(_LINE_BREAK.split(text), start=1):
            if "#" not in line:
                continue
            own_line = line.lstrip().startswith("#")
            for m in _COMMENT.finditer(line):
                if m.group("tl"):
                    group = "tl_codes"
                    kind = "file" if m.group("tl").lower() == "ignore-file" else "trainlint"
                else:
                    group, kind = "noqa_codes", "noqa"
                codes = _codes(m.group(group))
                span = m.span(group) if m.group(group) is not None else None
                directive = Directive(kind, number, m.start(), m.end(), codes, span)
                if kind == "file" and not own_line:
                    continue  # `x = 1  # trainlint: ignore-file` is most likely a typo: ignore it
                self.directives.append(directive)
                if kind == "file":
                    self._file.append(directive)
                    continue
                self._by_line.setdefault(number, []).append(directive)
                if kind == "trainlint" and own_line:
                    self._by_line.setdefault(number + 1, []).append(directive)

    def __bool__(self) -> bool:
        return bool(self.directives)

    @property
    def ignores_whole_file(self) -> bool:
        """A bare `# trainlint: ignore-file`: no rule needs to run at all."""
        return any(d.codes is ALL for d in self._file)

    def file_ignores(self, code: str) -> bool:
        """Whether a file-level directive hides every diagnostic of `code` (no use recorded)."""
        return any(d.matches(code) for d in self._file)

    def covers(self, line: int, code: str) -> bool:
        """Whether a diagnostic of `code` on `line` is suppressed; records the use."""
        hit = False
        for directive in (*self._file, *self._by_line.get(line, ())):
            if directive.matches(code):
                directive.used.add(code)
                hit = True
        return hit

    # ------------------------------------------------------------------ TL901

    def unused(
        self, checked: Iterable[str], known: Iterable[str] | None = None
    ) -> list[tuple[Directive, tuple[str, ...] | None]]:
        """Directives (and which of their codes) that suppressed nothing.

        `checked`: codes of the rules that ran on the file, so that a listed code that was
        not reported really is not reported. Codes of known rules that did not run are left
        alone (another configuration may enable them); unknown `TL` codes are always unused.
        Other tools' codes in `# noqa` and blanket `# noqa` belong to those tools; a bare
        `ignore-file` is not checked. The second item is None when the whole directive
        (a bare `# trainlint: ignore`) is unused.
        """
        checked = {c.upper() for c in checked}
        known = {r.code for r in _all_rules()} if known is None else {c.upper() for c in known}
        found: list[tuple[Directive, tuple[str, ...] | None]] = []
        for d in self.directives:
            if d.codes is ALL:
                if d.kind == "trainlint" and not d.used:
                    found.append((d, None))
                continue
            stale = tuple(
                c
                for c in d.codes
                if c not in d.used
                and c != UNUSED_SUPPRESSION
                and (d.kind != "noqa" or c.startswith("TL"))
                and (c in checked or c not in known)
            )
            if stale:
                found.append((d, stale))
        return found

    def unused_reports(
        self, module: cst.Module, checked: Iterable[str], known: Iterable[str] | None = None
    ) -> list[Report]:
        """TL901 reports, each with a safe fix that removes the stale codes or comment.

        Call after every diagnostic of the file went through `covers`. Suppressions of
        TL901 itself are applied here already.
        """
        known = {r.code for r in _all_rules()} if known is None else set(known)
        stale = self.unused(checked, known)
        if not stale:
            return []
        by_line: dict[int, list[tuple[Directive, tuple[str, ...] | None]]] = {}
        for directive, codes in stale:
            by_line.setdefault(directive.line, []).append((directive, codes))
        owners = _CommentOwners()
        walk(module, owners)
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        reports = []
        for owner, comment in owners.found:
            start = positions[comment].start
            entries = [
                (d, codes)
                for d, codes in by_line.get(start.line, ())
                if start.column <= d.start < start.column + len(comment.value)
            ]
            if not entries or self._hides_unused(start.line):
                continue
            replacement = _without(comment.value, start.column, entries)
            if replacement is None:
                edit = (
                    (owner, owner.with_changes(whitespace=cst.SimpleWhitespace(""), comment=None))
                    if isinstance(owner, cst.TrailingWhitespace)
                    else (owner, cst.RemoveFromParent())
                )
            else:
                edit = (comment, comment.with_changes(value=replacement))
            fix = Fix("Remove the unused suppression", Applicability.SAFE, (edit,))
            reports.append(
                Report(
                    UNUSED_SUPPRESSION,
                    UNUSED_SUPPRESSION_NAME,
                    _message(entries, known),
                    comment,
                    fix,
                    help="Delete the suppression: nothing it names is reported here.",
                )
            )
        return reports


    def _hides_unused(self, line: int) -> bool:
        """TL901 on `line` is suppressed by a file-level directive or one naming TL901.

        A blanket `# trainlint: ignore` must not hide the report that it is unused.
        """
        return any(d.matches(UNUSED_SUPPRESSION) for d in self._file) or any(
            d.codes is not ALL and UNUSED_SUPPRESSION in d.codes
            for d in self._by_line.get(line, ())
        )


class _CommentOwners(cst.CSTVisitor):
    """Every comment with the node that holds it (a trailing comment or a comment line)."""

    def __init__(self) -> None:
        self.found: list[tuple[cst.TrailingWhitespace | cst.EmptyLine, cst.Comment]] = []

    def visit_TrailingWhitespace(self, node: cst.TrailingWhitespace) -> None:
        if node.comment is not None:
            self.found.append((node, node.comment))

    def visit_EmptyLine(self, node: cst.EmptyLine) -> None:
        if node.comment is not None:
            self.found.append((node, node.comment))


def _without(
    value: str, column: int, entries: list[tuple[Directive, tuple[str, ...] | None]]
) -> str | None:
    """The comment without the stale directives or codes; None when nothing is left."""
    for d, codes in sorted(entries, key=lambda e: -e[0].start):
        if codes is None or set(codes) >= set(d.codes or ()):
            value = value[: d.start - column] + value[d.end - column :]
        else:
            kept = ", ".join(c for c in d.codes if c not in codes)
            a, b = d.codes_span
            value = value[: a - column] + kept + value[b - column :]
    value = value.strip()
    if re.fullmatch(r"#*\s*", value):
        return None
    return value if value.startswith("#") else f"# {value}"


def _message(entries, known: set[str]) -> str:
    if any(codes is None for _, codes in entries):
        return "Unused blanket `# trainlint: ignore`: nothing is reported on its line"
    codes = [c for _, cs in entries for c in cs]
    unused = ", ".join(f"`{c}`" for c in codes if c in known)
    unknown = ", ".join(f"`{c}`" for c in codes if c not in known)
    parts = ([f"not reported here: {unused}"] if unused else []) + (
        [f"unknown codes: {unknown}"] if unknown else []
    )
    return f"Unused suppression ({'; '.join(parts)})"


def _codes(raw: str | None) -> tuple[str, ...] | None:
    if raw is None:
        return ALL
    codes = tuple(dict.fromkeys(c.upper() for c in re.split(r"[,\s]+", raw) if c.strip()))
    return codes or ALL


def add_noqa(text: str, diagnostics) -> tuple[str, int]:
    """Suppress every given diagnostic with a comment; returns the new text and the count.

    A `# noqa: CODES` goes at the end of the flagged line (merged into a `# noqa: ...` that
    is there already). Where a comment cannot end that line (it ends inside a multi-line
    string, or continues with a backslash), a `# trainlint: ignore[CODES]` line goes above
    it instead; where neither is possible the diagnostic is left (not counted).
    """
    wanted: dict[int, list[str]] = {}
    for d in diagnostics:
        if not d.is_error and d.code not in wanted.setdefault(d.row, []):
            wanted[d.row].append(d.code)
    if not wanted:
        return text, 0
    lines = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)
    blocked = _lines_ending_in_strings(text) | {
        n for n, line in enumerate(lines, 1) if line.rstrip("\r\n").endswith("\\")
    }
    newline = lines[0][len(lines[0].rstrip("\r\n")):] if lines and lines[0][-1:] in "\r\n" else "\n"
    existing = Suppressions(text)
    added = 0
    for row in sorted(wanted, reverse=True):
        if not 1 <= row <= len(lines):
            continue
        codes = wanted[row]
        line = lines[row - 1]
        body = line.rstrip("\r\n")
        end = line[len(body):]
        if row not in blocked:
            noqa = [d for d in existing.directives
                    if d.line == row and d.kind == "noqa" and d.codes_span is not None]
            if noqa:
                at = noqa[-1].codes_span[1]
                body = body[:at] + "".join(f", {c}" for c in codes) + body[at:]
            else:
                body = f"{body}  # noqa: {', '.join(codes)}"
            lines[row - 1] = body + (end or "")
        elif row - 1 not in blocked:
            indent = body[: len(body) - len(body.lstrip(" \t"))]
            lines.insert(row - 1, f"{indent}# trainlint: ignore[{', '.join(codes)}]{newline}")
        else:
            continue
        added += len(codes)
    return "".join(lines), added


def _lines_ending_in_strings(text: str) -> set[int]:
    """Lines whose end lies inside a string (a triple-quoted one, or an f-string's part)."""
    import io
    import tokenize

    inside: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.start[0] < tok.end[0] and tok.type not in (tokenize.NL, tokenize.NEWLINE):
                inside.update(range(tok.start[0], tok.end[0]))
    except (tokenize.TokenError, SyntaxError):
        pass
    return inside


def _all_rules():
    from trainlint.registry import all_rules

    return all_rules()
