"""GitLab Code Quality report (`artifacts:reports:codequality`): a JSON list of issues.

https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format
The fingerprint identifies an issue across runs and commits: it hashes the code, the path,
the message and the issue's rank among identical ones in the file, not the line number, so
editing code above a finding does not make GitLab report it as fixed and new again.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

from trainlint.diagnostic import Diagnostic
from trainlint.runner import Run


def fingerprint(d: Diagnostic, rank: int) -> str:
    key = "\0".join([d.code, d.path, d.message, str(rank)])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def issue(d: Diagnostic, rank: int) -> dict:
    description = f"{d.code} {d.cell_message}"
    return {
        "type": "issue",
        "check_name": d.code,
        "description": description,
        "content": {"body": d.help} if d.help else None,
        "categories": ["Bug Risk"],
        "severity": "critical" if d.is_error else "major",
        "fingerprint": fingerprint(d, rank),
        "location": {
            "path": d.path,
            "lines": {"begin": d.row, "end": d.end_row},
        },
    }


def render(run: Run, fixing: bool = False) -> str:
    seen: Counter = Counter()
    issues = []
    for d in sorted(run.diagnostics, key=lambda d: d.sort_key):
        key = (d.code, d.path, d.message)
        issues.append(issue(d, seen[key]))
        seen[key] += 1
    for item in issues:
        if item["content"] is None:
            del item["content"]
    return json.dumps(issues, indent=2, ensure_ascii=False) + "\n"
