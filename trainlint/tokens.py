"""The words of a file, computed once, and the rules' declared need of them (the prefilter).

A rule declares the tokens it needs as a tuple of requirements, all of which must hold; a
requirement is a word or a tuple of words, any one of which will do. A word is an exact
identifier or keyword (`"step"`, `"def"`), or, written `"*sched*"`, a fragment that some
word of the file contains, compared case-insensitively. Words are read from the whole
text, strings and comments included, so the test is a necessary condition whatever the
spelling: parentheses, line breaks, comments and spaces between tokens do not matter.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Tuple, Union

Requirement = Union[str, Tuple[str, ...]]
Needs = Tuple[Requirement, ...]

_WORD = re.compile(r"[^\W\d]\w*")


class Tokens:
    """The set of words of one text."""

    def __init__(self, text: str) -> None:
        words = set(_WORD.findall(text))
        if not text.isascii():  # Python reads identifiers in NFKC form (PEP 3131)
            words |= {unicodedata.normalize("NFKC", w) for w in words if not w.isascii()}
        self.words = frozenset(words)
        self._folded: str | None = None

    @property
    def folded(self) -> str:
        """Every word, case-folded, one per line: where fragments are looked for."""
        if self._folded is None:
            self._folded = "\n".join(self.words).casefold()
        return self._folded

    def has(self, word: str) -> bool:
        if word.startswith("*") and word.endswith("*"):
            return word[1:-1].casefold() in self.folded
        return word in self.words

    def meet(self, needs: Needs) -> bool:
        """Whether every requirement holds (an empty tuple always does)."""
        return all(
            self.has(r) if isinstance(r, str) else any(self.has(w) for w in r) for r in needs
        )
