"""JUnit XML: one failing test case per diagnostic, grouped in one test suite per file.

Read by CI dashboards (GitLab `artifacts:reports:junit`, Jenkins, Azure). A TL000 (file not
read or parsed) is an `<error>`, every other diagnostic a `<failure>`. With nothing to
report, one passing test case keeps the report non-empty.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from itertools import groupby

from trainlint.diagnostic import Diagnostic
from trainlint.runner import Run

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(value: str) -> str:
    """Text XML 1.0 can carry (control characters are not allowed, even escaped)."""
    return _NOT_XML.sub("\ufffd", value)


def _testcase(parent: ET.Element, d: Diagnostic) -> None:
    case = ET.SubElement(
        parent,
        "testcase",
        name=_x(f"{d.code} {d.name} ({d.row}:{d.column})"),
        classname=_x(d.path),
        file=_x(d.path),
        line=str(d.row),
        column=str(d.column),
    )
    body = f"{d.path}:{d.row}:{d.column}: {d.code} {d.cell_message}"
    if d.help:
        body += f"\nhelp: {d.help}"
    kind = "error" if d.is_error else "failure"
    ET.SubElement(case, kind, message=_x(d.cell_message), type=d.code).text = _x(body)


def render(run: Run, fixing: bool = False) -> str:
    diagnostics = sorted(run.diagnostics, key=lambda d: d.sort_key)
    errors = sum(d.is_error for d in diagnostics)
    root = ET.Element(
        "testsuites",
        name="trainlint",
        tests=str(max(len(diagnostics), 1)),
        failures=str(len(diagnostics) - errors),
        errors=str(errors),
    )
    if not diagnostics:
        suite = ET.SubElement(root, "testsuite", name="trainlint", tests="1", failures="0", errors="0")
        ET.SubElement(suite, "testcase", name="no diagnostics", classname="trainlint")
    for path, group in groupby(diagnostics, key=lambda d: d.path):
        group = list(group)
        file_errors = sum(d.is_error for d in group)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_x(path),
            tests=str(len(group)),
            failures=str(len(group) - file_errors),
            errors=str(file_errors),
        )
        for d in group:
            _testcase(suite, d)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
