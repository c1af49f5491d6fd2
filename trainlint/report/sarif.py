"""SARIF 2.1.0: for GitHub code scanning and other SARIF viewers.

Every rule is described in `tool.driver.rules` (its documentation as help text); each
diagnostic is a result with its region, and a fix, when the diagnostic has text edits, is a
SARIF `fixes` entry whose replacements delete a region and insert the new text. Rows and
columns are 1-based and count Unicode code points, as `columnKind` says.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from trainlint import __version__
from trainlint.diagnostic import INTERNAL_CODE, Diagnostic
from trainlint.docs import rule_url
from trainlint.registry import all_rules
from trainlint.runner import Run

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"

_INTERNAL_RULE = {
    "id": INTERNAL_CODE,
    "name": "error",
    "shortDescription": {"text": "The file could not be read or parsed"},
    "fullDescription": {
        "text": "trainlint could not read, decode or parse the file (or a rule failed on it), "
        "so it was not linted."
    },
    "defaultConfiguration": {"level": "error"},
}


def rule_descriptor(rule) -> dict:
    doc = rule.documentation()
    descriptor = {
        "id": rule.code,
        "name": rule.name,
        "shortDescription": {"text": rule.name.replace("-", " ").capitalize()},
        "fullDescription": {"text": rule.summary()},
        "help": {"text": doc, "markdown": doc},
        "defaultConfiguration": {"level": "error", "enabled": bool(rule.default_enabled)},
        "properties": {
            "fix": rule.fix_applicability.value if rule.fix_applicability else "none",
            "tags": ["pytorch", "correctness"],
        },
    }
    descriptor["helpUri"] = rule_url(rule.code)
    return descriptor


def _artifact(path: str) -> dict:
    p = Path(path)
    if p.is_absolute():
        return {"uri": p.as_uri()}
    return {"uri": quote(p.as_posix()), "uriBaseId": SRCROOT}


def _region(row: int, column: int, end_row: int, end_column: int) -> dict:
    return {"startLine": row, "startColumn": column, "endLine": end_row, "endColumn": end_column}


def result(d: Diagnostic, index: dict[str, int]) -> dict:
    out = {
        "ruleId": d.code,
        "level": "error",
        "message": {"text": d.full_message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact(d.path),
                    "region": _region(d.row, d.column, d.end_row, d.end_column),
                }
            }
        ],
    }
    if d.code in index:
        out["ruleIndex"] = index[d.code]
    if d.fix is not None and d.edits:
        out["fixes"] = [
            {
                "description": {"text": d.fix.message},
                "artifactChanges": [
                    {
                        "artifactLocation": _artifact(d.path),
                        "replacements": [
                            {
                                "deletedRegion": _region(e.row, e.column, e.end_row, e.end_column),
                                "insertedContent": {"text": e.content},
                            }
                            for e in d.edits
                        ],
                    }
                ],
            }
        ]
        out["properties"] = {"fixApplicability": d.fix.applicability.value}
    return out


def report(run: Run) -> dict:
    diagnostics = run.diagnostics
    rules = [rule_descriptor(r) for r in all_rules()]
    if any(d.code == INTERNAL_CODE for d in diagnostics):
        rules.append(dict(_INTERNAL_RULE))
    index = {r["id"]: i for i, r in enumerate(rules)}
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "trainlint",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().as_uri().rstrip("/") + "/"}},
                "columnKind": "unicodeCodePoints",
                "invocations": [{"executionSuccessful": True}],
                "results": [result(d, index) for d in diagnostics],
            }
        ],
    }


def render(run: Run, fixing: bool = False) -> str:
    return json.dumps(report(run), indent=2, ensure_ascii=False) + "\n"
