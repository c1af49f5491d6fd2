"""The contract between the engine and the rules: Rule, Fix, reports and examples."""

from __future__ import annotations

import enum
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Sequence, Union

import libcst as cst

from trainlint.tokens import Needs, Tokens

if TYPE_CHECKING:
    from trainlint.context import Context
    from trainlint.screen import AstIndex


class Applicability(str, enum.Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"


Replacement = Union[cst.CSTNode, cst.RemovalSentinel, cst.FlattenSentinel]


@dataclass(frozen=True)
class Fix:
    """Replacements of nodes of the linted tree, applied together or not at all."""

    message: str
    applicability: Applicability
    edits: tuple[tuple[cst.CSTNode, Replacement], ...]


@dataclass(frozen=True)
class Report:
    """What a rule says about one node; the engine turns it into a located Diagnostic."""

    code: str
    name: str
    message: str
    node: cst.CSTNode
    fix: Fix | None = None
    help: str | None = None
    # Machine-readable details (e.g. the counter attribute) for the runtime harness.
    data: dict | None = None
    # The top-level statement being visited when the rule reported, if any: where the
    # engine looks for the node first when it locates it (a hint; never trusted blindly).
    near: cst.CSTNode | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Valid:
    code: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", _dedent(self.code))


@dataclass(frozen=True)
class Invalid:
    """A program the rule must flag; `line` pins the first report, `fixed` the result of all fixes."""

    code: str
    fixed: str | None = None
    line: int | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "code", _dedent(self.code))
        if self.fixed is not None:
            object.__setattr__(self, "fixed", _dedent(self.fixed))


def _dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


class Rule:
    """Base class of every rule.

    A rule visits the shared tree through `visit_<Node>` / `leave_<Node>` methods, exactly
    like a `libcst.CSTVisitor`, and calls `self.report(...)`. A two-phase rule instead
    defines the classmethod `candidates(model)` (on the file's `trainlint.semantic` model;
    each candidate has an `anchor`, an ast node) and `check(candidate, node)`, which gets the
    LibCST node of the anchor and reports; a file where no rule has a candidate is never
    parsed with LibCST. A rule knows nothing about files, configuration or output.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    message: ClassVar[str]
    fix_applicability: ClassVar[Applicability | None] = None
    # The words the rule needs in a file (see trainlint.tokens); empty means "always".
    tokens: ClassVar[Needs] = ()
    default_enabled: ClassVar[bool] = True
    # The engine reports the file's suppressions that hid nothing in this rule's name,
    # after every other rule ran (see Suppressions.unused_reports).
    reports_unused_suppressions: ClassVar[bool] = False
    VALID: ClassVar[Sequence[Valid]] = ()
    INVALID: ClassVar[Sequence[Invalid]] = ()

    def __init__(self, context: Context) -> None:
        self.context = context
        self.reports: list[Report] = []

    def report(
        self,
        node: cst.CSTNode,
        message: str | None = None,
        *,
        fix: Fix | None = None,
        help: str | None = None,
        data: dict | None = None,
    ) -> None:
        stack = self.context.stack
        near = stack[1] if len(stack) > 1 else None
        self.reports.append(
            Report(self.code, self.name, message or self.message, node, fix, help, data, near)
        )

    def make_fix(self, message: str, *edits: tuple[cst.CSTNode, Replacement]) -> Fix:
        assert self.fix_applicability is not None, f"{self.code} declares no fix"
        return Fix(message, self.fix_applicability, tuple(edits))

    @classmethod
    def may_apply(cls, tokens: Tokens) -> bool:
        """Whether the file's words meet the rule's declared `tokens`."""
        return tokens.meet(cls.tokens)

    @classmethod
    def screen(cls, index: AstIndex) -> bool:
        """Necessary condition on the file's stdlib `ast` (see trainlint.screen); False
        means the rule cannot report on this file. Default: always possible."""
        return True

    @classmethod
    def documentation(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")

    @classmethod
    def summary(cls) -> str:
        """First paragraph of the docstring's 'What it does' section."""
        doc = cls.documentation()
        m = re.search(r"## What it does\n(.+?)(\n\n|$)", doc, re.S)
        return " ".join((m.group(1) if m else doc.split("\n\n")[0]).split())
