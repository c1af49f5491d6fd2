"""GitHub Actions workflow commands: one `::error` annotation per diagnostic.

https://docs.github.com/actions/reference/workflow-commands-for-github-actions
The message escapes `%`, CR and LF; property values also escape `:` and `,` (as
@actions/core does), so paths and messages with those characters survive.
"""

from __future__ import annotations

from trainlint.diagnostic import Diagnostic
from trainlint.runner import Run


def escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def annotation(d: Diagnostic) -> str:
    props = [
        ("title", f"trainlint ({d.code})"),
        ("file", d.path),
        ("line", str(d.row)),
        ("col", str(d.column)),
        ("endLine", str(d.end_row)),
        ("endColumn", str(d.end_column)),
    ]
    message = d.full_message
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in props)
    return f"::error {joined}::{escape_data(message)}"


def render(run: Run, fixing: bool = False) -> str:
    return "".join(annotation(d) + "\n" for d in run.diagnostics)
