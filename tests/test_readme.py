"""The README's promises: its quickstart is what CI runs, and its rule table is complete."""

from __future__ import annotations

import re
from pathlib import Path

from trainlint.registry import all_rules

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quickstart_commands_are_exactly_what_ci_runs():
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    venv, *commands = re.findall(r"```sh\n(.+?)\n```", quickstart, re.S)
    assert venv.startswith("python3 -m venv ") and len(commands) == 2
    ci = [l for l in (ROOT / ".ci" / "run").read_text().splitlines() if l and not l.startswith(("#", "set ", "cd "))]
    # CI makes its fresh environment in a temporary directory, then runs the README's commands
    assert ci[0].startswith('venv="$(mktemp -d)') and ci[1].startswith("python3 -m venv ")
    assert ". \"$venv/bin/activate\"" in ci[1] and "--system-site-packages" not in ci[1]
    assert ci[2:] == commands


def test_rule_table_lists_every_rule():
    for rule in all_rules():
        assert re.search(rf"^\| {rule.code} \| {rule.name} \|", README, re.M), rule.code
