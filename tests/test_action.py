"""The composite GitHub Action (action.yml): its steps' commands, run here with bash.

GitHub gives a composite step `$GITHUB_ACTION_PATH` (this repository's checkout) and
`$RUNNER_TEMP`; the test sets both, substitutes the `${{ inputs.* }}` expressions as the
runner would, and runs each step in order, in a project folder holding the fixtures. The
install step builds a fresh virtual environment and installs a snapshot of this checkout
into it (libcst and click come from the package index).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ARGS = "seed train --select TL0,TL1"


def action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))


def expand(value: str, inputs: dict[str, str]) -> str:
    """`${{ inputs.NAME }}` as the runner expands it; the action uses no other expression."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        assert name in inputs, f"unknown expression {match.group(0)}"
        return inputs[name]

    return re.sub(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", one, value)


def test_the_action_is_a_composite_of_bash_steps_with_documented_inputs():
    spec = action()
    assert spec["runs"]["using"] == "composite"
    assert all(step["shell"] == "bash" and step["run"] for step in spec["runs"]["steps"])
    assert set(spec["inputs"]) == {"args"}
    assert "--output-format github" in spec["runs"]["steps"][-1]["run"]


def test_the_steps_install_trainlint_and_annotate_the_diagnostics(tmp_path: Path):
    checkout = tmp_path / "action"
    shutil.copytree(
        ROOT, checkout,
        ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "__pycache__", ".trainlint_cache", "tests"),
    )
    project = tmp_path / "project"
    shutil.copytree(ROOT / "fixtures", project)
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir()
    spec = action()
    inputs = {name: field["default"] for name, field in spec["inputs"].items()} | {"args": ARGS}
    environment = {**os.environ, "GITHUB_ACTION_PATH": str(checkout), "RUNNER_TEMP": str(runner_temp)}
    environment.pop("VIRTUAL_ENV", None)
    results = []
    for step in spec["runs"]["steps"]:
        env = environment | {k: expand(str(v), inputs) for k, v in step.get("env", {}).items()}
        results.append(subprocess.run(
            ["bash", "-e", "-c", expand(step["run"], inputs)], cwd=project, env=env,
            capture_output=True, text=True, timeout=600,
        ))
    install, lint = results
    assert install.returncode == 0, install.stderr
    expected = subprocess.run(
        [sys.executable, "-m", "trainlint", "check", "--no-cache", "--output-format", "github", *ARGS.split()],
        cwd=project, capture_output=True, text=True, timeout=300,
    )
    assert lint.returncode == expected.returncode == 1  # the fixtures are buggy on purpose
    assert lint.stdout == expected.stdout
    assert lint.stdout.startswith("::error title=trainlint (TL")
