"""The pre-commit hooks, run by the real pre-commit against this checkout.

`pre-commit try-repo` clones a git repository and builds the hook's environment from it
(a virtualenv with `pip install .`: libcst and click come from the package index). It only
sees committed files and tracked changes, so the tests snapshot the checkout's working
tree (tracked and untracked, minus what .gitignore ignores) into a temporary repository
with one commit and try that: the same in a fresh CI clone and in a working copy with
uncommitted files. Each try-repo builds a fresh environment, so these take a while.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pre_commit  # noqa: F401  (in the `test` extra: a missing pre-commit is a failure, not a skip)
import pytest

from helpers import console_script

ROOT = Path(__file__).resolve().parents[1]

SCHEDULER = """\
import torch


class WarmupScheduler:
    def __init__(self, optimizer, warmup=100):
        self.optimizer = optimizer
        self.warmup = warmup
        self.iters = 0

    def step(self):
        self.iters = 1
        lr = min(1.0, self.iters / self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
"""

LOSS = """\
import torch.nn.functional as F

BATCH_SIZE = 16


def margin_loss(logits, target, margins):
    batch_m = margins[target].view(16, 1)
    return F.cross_entropy(logits - batch_m, target)
"""

NO_TORCH = "def add(a, b):\n    return a + b\n"

NOTEBOOK = json.dumps(
    {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Exploring\n"]},
            {"cell_type": "code", "execution_count": 1, "metadata": {}, "outputs": [],
             "source": ["def collect(x, steps=[]):\n", "    return steps"]},
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    },
    indent=1,
    sort_keys=True,
) + "\n"

GIT = ["git", "-c", "user.name=trainlint tests", "-c", "user.email=tests@example.invalid",
       "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", "-c", "core.autocrlf=false"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run([*GIT, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _checkout_files() -> list[str]:
    if (ROOT / ".git").exists():
        listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT)
        return [p for p in listed.split("\0") if p and (ROOT / p).is_file()]
    skip = {".git", "__pycache__", ".pytest_cache", "build", "dist"}
    return [
        p.relative_to(ROOT).as_posix()
        for p in ROOT.rglob("*")
        if p.is_file() and not (skip & set(p.relative_to(ROOT).parts))
        and not any(part.endswith(".egg-info") for part in p.parts)
    ]


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> Path:
    """This checkout's working tree, committed in a repository of its own."""
    snapshot = tmp_path_factory.mktemp("hook-repo")
    for rel in _checkout_files():
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    assert (snapshot / ".pre-commit-hooks.yaml").is_file()
    git("init", "-q", cwd=snapshot)
    git("add", "-A", cwd=snapshot)
    git("commit", "-q", "-m", "snapshot", cwd=snapshot)
    return snapshot


def try_repo(hook_repo: Path, user_repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("TRAINLINT_OUTPUT_FORMAT", None)
    env.update(PRE_COMMIT_COLOR="never", PIP_DISABLE_PIP_VERSION_CHECK="1", NO_COLOR="1")
    # try-repo needs the user's files known to git; staging them is enough.
    git("add", "-A", cwd=user_repo)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), *args],
        cwd=user_repo, env=env, capture_output=True, text=True, timeout=400,
    )


@pytest.fixture(scope="module")
def hooks_run(hook_repo, tmp_path_factory):
    """Both hooks (try-repo without a hook id runs the whole manifest) over a user's repo.

    One run, so that the hook environment is built once: `trainlint` runs first and sees
    the original files, then `trainlint-fix` rewrites them.
    """
    repo = tmp_path_factory.mktemp("user-repo")
    git("init", "-q", cwd=repo)
    (repo / "sched.py").write_text(SCHEDULER)
    (repo / "loss.py").write_text(LOSS)
    (repo / "util.py").write_text(NO_TORCH)
    (repo / "explore.ipynb").write_text(NOTEBOOK)
    result = try_repo(hook_repo, repo, "--all-files")
    out = result.stdout + result.stderr
    sections: dict[str, str] = {}
    current = None
    for line in out.splitlines():
        name = line.partition(".")[0] if re.match(r"^trainlint( \(fix\))?\.{3,}", line) else None
        if name:
            current = {"trainlint": "trainlint", "trainlint (fix)": "trainlint-fix"}[name]
            sections[current] = ""
        if current:
            sections[current] += line + "\n"
    assert set(sections) == {"trainlint", "trainlint-fix"}, out
    return result, sections, repo


def test_hooks_file_declares_both_hooks():
    from pre_commit.clientlib import load_manifest

    hooks = {h["id"]: h for h in load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))}
    assert set(hooks) == {"trainlint", "trainlint-fix"}
    for hook in hooks.values():
        assert hook["language"] == "python"
        assert hook["types_or"] == ["python", "pyi", "jupyter"]
        assert hook["require_serial"] is True
    assert hooks["trainlint"]["entry"] == "trainlint check"
    assert hooks["trainlint-fix"]["entry"] == "trainlint check --fix"


def test_check_hook_fails_with_the_diagnostic(hooks_run):
    result, sections, repo = hooks_run
    assert result.returncode == 1, result.stdout + result.stderr
    check = sections["trainlint"]
    assert check.splitlines()[0].endswith("Failed"), check
    assert "sched.py:11:9: TL001 `self.iters` is reset to 1 on every `step()` call" in check
    assert re.search(r"^loss\.py:7:\d+: TL002 \[\*\] ", check, re.M), check
    assert "util.py" not in check
    assert "explore.ipynb:cell 2:1:22: TL005 " in check, check
    assert "files were modified" not in check  # the check hook never writes


def test_fix_hook_rewrites_the_file(hooks_run):
    result, sections, repo = hooks_run
    fix = sections["trainlint-fix"]
    assert fix.splitlines()[0].endswith("Failed"), fix
    assert "files were modified by this hook" in fix
    assert (repo / "loss.py").read_text() == LOSS.replace(".view(16, 1)", ".view(-1, 1)")
    # TL001's and TL005's fixes are unsafe: reported, not applied.
    assert (repo / "sched.py").read_text() == SCHEDULER
    assert (repo / "explore.ipynb").read_text() == NOTEBOOK
    assert "Found 3 errors (1 fixed, 2 remaining)." in fix
    assert (repo / "util.py").read_text() == NO_TORCH


def test_files_without_torch_code_pass_quietly(tmp_path):
    """What the hook runs on files without torch code: exit 0, no diagnostics."""
    from pre_commit.clientlib import load_manifest

    (tmp_path / "util.py").write_text(NO_TORCH)
    (tmp_path / "notes.pyi").write_text("def add(a: int, b: int) -> int: ...\n")
    for hook in load_manifest(str(ROOT / ".pre-commit-hooks.yaml")):
        exe = console_script()
        args = [exe, *hook["entry"].split()[1:], "util.py", "notes.pyi"]
        result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout == "All checks passed!\n" and result.stderr == ""
