"""JSON output in ruff's shape, so tools that read ruff's JSON can read trainlint's."""

from __future__ import annotations

import json
import os

from trainlint.diagnostic import Diagnostic
from trainlint.docs import rule_url
from trainlint.runner import Run


def _location(row: int, column: int) -> dict:
    return {"row": row, "column": column}


def diagnostic_object(d: Diagnostic) -> dict:
    fix = None
    if d.fix is not None:
        fix = {
            "applicability": d.fix.applicability.value,
            "message": d.fix.message,
            "edits": [
                {
                    "content": e.content,
                    "location": _location(e.row, e.column),
                    "end_location": _location(e.end_row, e.end_column),
                }
                for e in d.edits
            ],
        }
    return {
        "code": d.code,
        "name": d.name,
        "message": d.message,
        "filename": os.path.abspath(d.path),
        "location": _location(d.row, d.column),
        "end_location": _location(d.end_row, d.end_column),
        "fix": fix,
        "help": d.help,
        "url": rule_url(d.code),
        "noqa_row": d.row,
        "cell": d.cell,
    }


def render(run: Run) -> str:
    return json.dumps([diagnostic_object(d) for d in run.diagnostics], indent=2) + "\n"
