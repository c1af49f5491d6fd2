"""Real code: lint the installed sources of torch itself (its schedulers, losses and thousands of
other files) and require zero crashes and zero internal errors.

Runs in CI (marker `corpus`). By default a deterministic subset (every Nth file in sorted order,
N = TRAINLINT_CORPUS_STRIDE, default 4) keeps it to about a minute on 2 cores;
TRAINLINT_CORPUS_STRIDE=1 lints every file. `pytest -s` prints the figures.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from trainlint import engine
from trainlint.registry import all_rules

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.corpus

STRIDE = max(1, int(os.environ.get("TRAINLINT_CORPUS_STRIDE", "4")))
ROOT = Path(torch.__file__).resolve().parent
ALL_FILES = sorted(ROOT.rglob("*.py"), key=lambda p: p.relative_to(ROOT).as_posix())
# the LR schedulers and losses are what the rules are about: always included
MUST = {"optim/lr_scheduler.py", "nn/modules/loss.py", "nn/functional.py", "optim/swa_utils.py"}
FILES = [
    p for i, p in enumerate(ALL_FILES)
    if i % STRIDE == 0 or p.relative_to(ROOT).as_posix() in MUST
]


def test_torch_sources_lint_without_internal_errors():
    rules = list(all_rules())
    per_rule: collections.Counter[str] = collections.Counter()
    tl000: list[str] = []
    crashes: list[str] = []
    internal: list[str] = []
    for path in FILES:
        shown = path.relative_to(ROOT).as_posix()
        try:
            result = engine.lint(shown, path.read_bytes(), rules)
        except Exception as exc:  # noqa: BLE001 - the point is that nothing escapes
            crashes.append(f"{shown}: {type(exc).__name__}: {exc}")
            continue
        for d in result.diagnostics:
            per_rule[d.code] += 1
            if d.code == "TL000":
                tl000.append(f"{shown}:{d.row}:{d.column}: {d.message}")
                if "internal error" in d.message:
                    internal.append(tl000[-1])
    print(f"\ntorch corpus: {len(FILES)} of {len(ALL_FILES)} files (stride {STRIDE}) under {ROOT}")
    print("diagnostics per rule:", dict(sorted(per_rule.items())))
    for line in tl000:
        print("TL000", line)
    assert not crashes, crashes
    assert not internal, internal
    assert len(FILES) > 100
