"""Real code nobody here wrote: torch's own schedulers must not trip the dataflow rules."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from trainlint import engine
from trainlint.registry import matching

LR_SCHEDULER = Path(importlib.util.find_spec("torch.optim.lr_scheduler").origin)


def test_torch_lr_scheduler_has_no_tl006_to_tl012_diagnostics():
    rules = sorted(matching(["TL006", "TL007", "TL008", "TL009", "TL01"], "test"), key=lambda r: r.code)
    assert [r.code for r in rules] == [f"TL0{n:02d}" for n in range(6, 13)]
    result = engine.lint(str(LR_SCHEDULER), LR_SCHEDULER.read_bytes(), rules)
    assert result.parsed, "the prefilter skipped lr_scheduler.py, so this test proves nothing"
    assert result.diagnostics == []
