"""
## What it does
Flags suppression comments that suppress nothing: a `# trainlint: ignore[...]`,
`# trainlint: ignore-file[...]` or `# noqa: TL...` naming a code that is not reported
where the comment applies, a bare `# trainlint: ignore` on a line with no diagnostic, and
`TL` codes that are not trainlint rules.

Only codes of rules that ran on the file are checked: a suppression naming a rule that
the configuration disables is left alone. Blanket `# noqa` comments and other tools'
codes in `# noqa` lists (`E501`, `F401`) belong to those tools and are never flagged.

## Why is this bad?
A stale suppression hides the next real bug on its line: once the original problem is
fixed, the comment still silences the rule the next time it would fire, and readers
take it as a sign that something on the line is deliberately unusual.

## Example
```python
class Warmup:
    def step(self):
        self.iters += 1  # trainlint: ignore[TL001]
```

## Use instead
```python
class Warmup:
    def step(self):
        self.iters += 1
```

## Fix safety
The fix is safe: it only edits a comment. Stale codes are removed from the list; when
none is left, the whole comment goes (and a comment line of its own is deleted), while
any other text in the comment, like another tool's `noqa` codes, is kept.
"""

from __future__ import annotations


from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.suppress import UNUSED_SUPPRESSION, UNUSED_SUPPRESSION_NAME, Suppressions


def _known_codes() -> set[str]:
    from trainlint.registry import all_rules

    return {r.code for r in all_rules()}


class UnusedSuppression(Rule):
    __doc__ = __doc__

    code = UNUSED_SUPPRESSION
    name = UNUSED_SUPPRESSION_NAME
    # Off by default, like ruff's RUF100: enable with `--extend-select TL901`.
    default_enabled = False
    reports_unused_suppressions = True
    message = "Unused suppression comment"
    fix_applicability = Applicability.SAFE
    tokens = (("*trainlint*", "*noqa*"),)

    @classmethod
    def screen(cls, index) -> bool:
        """Some directive that could be reported unused: what `Suppressions.unused` finds
        when no diagnostic was suppressed and every known rule counts as checked (it can
        only find less after a real run)."""
        suppressions = Suppressions(index.text)
        return bool(suppressions.unused(checked=_known_codes(), known=_known_codes()))
    # The engine does the work (see Suppressions.unused_reports): it needs every other
    # rule's diagnostics first. This class carries the code, the docs and the examples.
    VALID = (
        Valid("x = compute()  # noqa\n"),
        Valid("x = compute()  # noqa: E501\n"),
        Valid("x = compute()  # trainlint: ignore[TL001]\n"),
        Valid("# trainlint: ignore-file\nx = compute()\n"),
        Valid('s = "# trainlint: ignore"\n'),
    )
    INVALID = (
        Invalid("x = compute()  # trainlint: ignore\n", fixed="x = compute()\n", line=1),
        Invalid("x = compute()  # noqa: E501, TL999\n", fixed="x = compute()  # noqa: E501\n"),
        Invalid(
            """
            def f():
                # trainlint: ignore
                return compute()
            """,
            fixed="""
            def f():
                return compute()
            """,
            line=2,
        ),
        Invalid(
            "# trainlint: ignore-file[TL999]\nx = compute()  # why: see #12\n",
            fixed="x = compute()  # why: see #12\n",
        ),
    )
