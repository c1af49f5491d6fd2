"""Renderers: the same diagnostics in each output format.

Each format is a function `(run, fixing) -> str`; the command line offers every key of
FORMATS as an `--output-format` choice.
"""

from __future__ import annotations

from typing import Callable

from trainlint.report import github as github_report
from trainlint.report import gitlab as gitlab_report
from trainlint.report import json as json_report
from trainlint.report import junit as junit_report
from trainlint.report import sarif as sarif_report
from trainlint.report import text as text_report
from trainlint.runner import Run

FORMATS: dict[str, Callable[[Run, bool], str]] = {
    "text": text_report.render,
    "concise": text_report.render_concise,
    "json": lambda run, fixing: json_report.render(run),
    "sarif": sarif_report.render,
    "github": github_report.render,
    "junit": junit_report.render,
    "gitlab": gitlab_report.render,
}
