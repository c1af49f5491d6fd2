"""The rule reference shipped with the package (trainlint/rules.md) and links into it.

`python -m trainlint.docs` regenerates the file from the rules' docstrings; a test keeps
it in step with the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from trainlint.registry import all_rules
from trainlint.rule import Rule

REFERENCE = Path(__file__).with_name("rules.md")


def anchor(code: str, name: str) -> str:
    """The fragment a Markdown renderer gives the heading `## CODE name`."""
    return re.sub(r"[^a-z0-9-]", "", f"{code} {name}".lower().replace(" ", "-"))


def rule_url(code: str) -> str | None:
    """Where rule `code` is documented: its section in the installed reference."""
    for rule in all_rules():
        if rule.code == code:
            return f"{REFERENCE.as_uri()}#{anchor(rule.code, rule.name)}"
    return None


def render() -> str:
    rules = all_rules()
    out = [
        "# trainlint rules",
        "",
        "Generated from the rules' docstrings by `python -m trainlint.docs`; "
        "`trainlint rule CODE` prints the same text.",
        "",
    ]
    out += [f"- [{r.code} {r.name}](#{anchor(r.code, r.name)})" for r in rules]
    for rule in rules:
        out += ["", *_demoted(page(rule).rstrip("\n").split("\n"))]
    return "\n".join(out) + "\n"


def _demoted(lines: list[str]) -> list[str]:
    """Headings one level down; comments in fenced code stay as they are."""
    fenced = False
    out = []
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if not fenced and re.match(r"#+ ", line) else line)
    return out


def page(rule: type[Rule]) -> str:
    """One rule's documentation, as `trainlint rule CODE` prints it."""
    fix = rule.fix_applicability.value if rule.fix_applicability else "none"
    default = "yes" if rule.default_enabled else "no"
    return (
        f"# {rule.code} {rule.name}\n\nFix: {fix}. Enabled by default: {default}.\n\n"
        f"{rule.documentation()}\n"
    )


if __name__ == "__main__":
    REFERENCE.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {REFERENCE}\n")
