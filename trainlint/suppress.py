"""Inline suppressions: `# trainlint: ignore[...]` and `# noqa: ...` comments."""

from __future__ import annotations

import re

_COMMENT = re.compile(
    r"#\s*(?:trainlint:\s*(?P<tl>ignore)(?:\[(?P<tl_codes>[^\]]*)\])?"
    r"|(?P<noqa>noqa)(?::\s*(?P<noqa_codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?)",
    re.IGNORECASE,
)

ALL = None  # a suppression without codes covers every code


class Suppressions:
    """Which codes are suppressed on which (1-based) line."""

    def __init__(self, text: str) -> None:
        self._by_line: dict[int, set[str] | None] = {}
        if "trainlint:" not in text and "noqa" not in text.lower():
            return
        lines = text.splitlines()
        for number, line in enumerate(lines, start=1):
            if "#" not in line:
                continue
            for m in _COMMENT.finditer(line):
                codes = _codes(m.group("tl_codes") if m.group("tl") else m.group("noqa_codes"))
                self._add(number, codes)
                own_line = line.lstrip().startswith("#")
                if m.group("tl") and own_line:
                    self._add(number + 1, codes)

    def _add(self, line: int, codes: set[str] | None) -> None:
        if line in self._by_line and self._by_line[line] is ALL:
            return
        if codes is ALL:
            self._by_line[line] = ALL
        else:
            self._by_line.setdefault(line, set()).update(codes)

    def covers(self, line: int, code: str) -> bool:
        if line not in self._by_line:
            return False
        codes = self._by_line[line]
        return codes is ALL or code in codes


def _codes(raw: str | None) -> set[str] | None:
    if raw is None:
        return ALL
    codes = {c.strip().upper() for c in re.split(r"[,\s]+", raw) if c.strip()}
    return codes or ALL
