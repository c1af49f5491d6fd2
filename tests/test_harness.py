"""The runtime harness on CPU: verdicts for the seed fixtures, refutation, isolation."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import libcst as cst
import pytest
from click.testing import CliRunner

from trainlint.cli import main
from trainlint.harness.extract import find_targets, probe_source
from trainlint.harness.verify import Settings, verify_file
from trainlint.registry import by_code, select
from trainlint.rule import Applicability, Invalid, Rule, Valid



FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CPU = Settings(devices=["cpu"], timeout=120)


def verdicts_for(path: Path, rules=None, settings=CPU):
    rules = rules if rules is not None else select(None, [], [])
    return verify_file(str(path), path.read_bytes(), rules, settings)


def by_rule(verdicts):
    out = {}
    for v in verdicts:
        out.setdefault(v.code, []).append(v)
    return out


def test_probe_source_drops_the_top_level():
    src = textwrap.dedent(
        """
        import math, os
        import numpy as np
        RATE = 0.5
        DATA = open("/nonexistent").read()
        def helper(x):
            return x * RATE
        class Sched:
            def __init__(self, optimizer):
                self.iters = 0
            def step(self):
                self.iters = 1
                return helper(math.cos(self.iters))
        main()
        """
    )
    module = cst.parse_module(src)
    [target] = find_targets(module)
    probe = probe_source(module, target.name)
    assert "import math" in probe and "RATE = 0.5" in probe and "def helper" in probe
    assert "numpy" not in probe and "open(" not in probe and "main()" not in probe
    assert "os" not in probe.split("class")[0]
    assert len(probe.splitlines()) == len(src.splitlines())  # line numbers are kept


def test_counter_reset_fixes_confirmed_on_checked_scheduler():
    verdicts = by_rule(verdicts_for(FIXTURES / "seed" / "cawb_scheduler_checked.py"))
    tl001 = verdicts["TL001"]
    assert [v.verdict for v in tl001] == ["confirmed", "confirmed"]
    assert "`self.iters` after each step(): 1, 1, 1" in tl001[0].evidence
    assert "`self.iters_batch` after each step_batch(): 1, 1, 1" in tl001[1].evidence
    assert verdicts["TL005"][0].verdict == "inconclusive"


def test_caller_list_fix_confirmed_on_original_scheduler():
    verdicts = by_rule(verdicts_for(FIXTURES / "seed" / "cawb_scheduler.py"))
    [tl006] = verdicts["TL006"]
    assert tl006.verdict == "confirmed", tl006.evidence
    assert "changed from [13, 3] to [3, 13]" in tl006.evidence
    [tl005] = verdicts["TL005"]
    assert tl005.verdict == "inconclusive"
    assert "no probe observed" in tl005.evidence


def test_ldam_fixes_confirmed():
    verdicts = by_rule(verdicts_for(FIXTURES / "seed" / "ldam_train.py"))
    for code in ("TL002", "TL003", "TL004", "TL007"):
        assert code in verdicts, f"no verdict for {code}"
        assert any(v.verdict == "confirmed" for v in verdicts[code]), (code, [v.evidence for v in verdicts[code]])
    assert all(v.verdict != "refuted" for vs in verdicts.values() for v in vs)


class FlipCosine(Rule):
    """A deliberately wrong fix, for the tests: turns a correct `1 + cos` into `1 - cos`.

    ## What it does
    ## Why is this bad?
    ## Example
    ## Use instead
    ## Fix safety
    """

    code = "TL997"
    name = "test-flip-cosine"
    message = "test only"
    fix_applicability = Applicability.UNSAFE
    VALID: list[Valid] = []
    INVALID: list[Invalid] = []

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if (
            isinstance(node.operator, cst.Add)
            and isinstance(node.left, cst.Integer)
            and node.left.value == "1"
            and "cos" in self.context.code(node.right)
        ):
            flipped = node.with_changes(operator=cst.Subtract())
            self.report(node, fix=self.make_fix("flip", (node, flipped)))


def test_wrong_fix_is_refuted(tmp_path):
    path = tmp_path / "sched.py"
    path.write_text(
        textwrap.dedent(
            """
            import math
            class CosineLR:
                def __init__(self, optimizer, epochs=10):
                    self.optimizer = optimizer
                    self.epochs = epochs
                    self.iters = -1
                    self.base = [g["lr"] for g in optimizer.param_groups]
                def step(self):
                    self.iters += 1
                    for g, lr in zip(self.optimizer.param_groups, self.base):
                        g["lr"] = lr * (1 + math.cos(math.pi * self.iters / self.epochs)) / 2
                    return self.optimizer.param_groups[0]["lr"]
            """
        )
    )
    [v] = verdicts_for(path, [FlipCosine])
    assert v.verdict == "refuted"
    assert "anneals[step]" in v.evidence
    assert v.traces["original"][0] > v.traces["original"][-1]
    assert v.traces["fixed"][0] < v.traces["fixed"][-1]


HANGING = """
class Sched:
    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.iters = 0
    def step(self):
        self.iters = 1
        while True:
            pass
"""


def test_probe_that_loops_forever_is_inconclusive(tmp_path):
    path = tmp_path / "hang.py"
    path.write_text(HANGING)
    [v] = verdicts_for(path, [by_code("TL001")], Settings(devices=["cpu"], timeout=8))
    assert v.verdict == "inconclusive"
    assert "did not finish within 8 s" in v.evidence


def test_probe_reading_stdin_does_not_hang(tmp_path):
    path = tmp_path / "stdin.py"
    path.write_text(HANGING.replace("while True:\n            pass", "return float(input())"))
    [v] = verdicts_for(path, [by_code("TL001")], Settings(devices=["cpu"], timeout=30))
    assert v.verdict == "inconclusive"
    assert "EOFError" in v.evidence


def test_module_top_level_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "train.py"
    path.write_text(
        f"open({str(marker)!r}, 'w').write('top level ran')\n" + HANGING.replace(
            "while True:\n            pass", "return 0.1"
        )
    )
    verdicts_for(path, [by_code("TL001")])
    assert not marker.exists()


def test_verify_cli_json(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    result = CliRunner().invoke(
        main, ["verify", "--device", "cpu", "--output-format", "json", "fixtures/seed/cawb_scheduler_checked.py"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {d["code"] for d in data} >= {"TL001", "TL005"}
    for d in data:
        assert set(d) >= {"filename", "target", "kind", "code", "row", "verdict", "devices", "evidence"}
        assert d["devices"] == ["cpu"]


def test_fix_verify_applies_only_confirmed_unsafe_fixes(tmp_path):
    target = tmp_path / "sched.py"
    target.write_bytes((FIXTURES / "seed" / "cawb_scheduler_checked.py").read_bytes())
    result = CliRunner().invoke(main, ["--fix", "--verify", str(target)])
    text = target.read_text()
    assert "self.iters += 1" in text and "self.iters_batch += 1" in text  # confirmed
    assert "steps=[]" in text  # TL005 was inconclusive, so it stays
    assert result.exit_code == 1


@pytest.mark.cuda
def test_ldam_on_cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    settings = Settings(devices=["cpu", "cuda"], timeout=300)
    verdicts = by_rule(verdicts_for(FIXTURES / "seed" / "ldam_train.py", settings=settings))
    for code in ("TL002", "TL003", "TL004", "TL007"):
        assert any(v.verdict == "confirmed" for v in verdicts[code]), code
        assert all(v.devices == ["cpu", "cuda"] for v in verdicts[code])


def test_reference_schedule_and_plot(tmp_path, monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    result = CliRunner().invoke(
        main, ["verify", "--device", "cpu", "--plot", str(tmp_path), "fixtures/seed/cawb_scheduler.py"]
    )
    assert result.exit_code == 0, result.output
    # the seed scheduler without restart steps is torch's CosineAnnealingLR
    assert "max deviation from torch CosineAnnealingLR(T_max=20, eta_min=eta_min*lr): fixed" in result.output
    deviation = float(result.output.split("fixed ")[1].split(",")[0].split()[0])
    assert deviation < 1e-9
    [png] = list(tmp_path.glob("*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_probe_that_crashes_the_interpreter_is_inconclusive(tmp_path):
    path = tmp_path / "crash.py"
    path.write_text(
        HANGING.replace("while True:\n            pass", "import ctypes\n        return ctypes.string_at(0)")
    )
    [v] = verdicts_for(path, [by_code("TL001")], Settings(devices=["cpu"], timeout=60))
    assert v.verdict == "inconclusive"
    assert "killed by signal 11" in v.evidence


def test_probe_that_exhausts_memory_does_not_take_trainlint_down(tmp_path):
    path = tmp_path / "greedy.py"
    path.write_text(HANGING.replace("while True:\n            pass", "return len(bytearray(1 << 40))"))
    [v] = verdicts_for(path, [by_code("TL001")], Settings(devices=["cpu"], timeout=60, memory_mb=2048))
    assert v.verdict == "inconclusive"
    assert "MemoryError" in v.evidence


def test_probe_that_fork_bombs_is_inconclusive_and_leaves_no_process(tmp_path):
    """Every process the probe forks (2**6 here: a bounded bomb, so the test machine
    survives an unbounded one never happening) dies with it at the timeout."""
    pids = tmp_path / "pids"
    bomb = (
        "import os, time\n"
        "        for _ in range(6):\n"
        "            os.fork()\n"
        f"        with open({str(pids)!r}, 'a') as f:\n"
        "            f.write(f'{os.getpid()}\\n')\n"
        "        time.sleep(600)\n"
        "        return 0.1"
    )
    path = tmp_path / "bomb.py"
    path.write_text(HANGING.replace("while True:\n            pass", bomb))
    [v] = verdicts_for(path, [by_code("TL001")], Settings(devices=["cpu"], timeout=10))
    assert v.verdict == "inconclusive"
    assert "did not finish within 10 s" in v.evidence
    forked = [int(p) for p in pids.read_text().split()]
    assert forked and len(forked) % 64 == 0  # one bomb per probe run
    alive = [p for p in forked if Path(f"/proc/{p}").exists() and _state(p) != "Z"]
    assert alive == []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_module_fixes_confirmed():
    verdicts = by_rule(verdicts_for(FIXTURES / "train" / "custom_module.py"))
    [tl110] = verdicts["TL110"]
    assert tl110.verdict == "confirmed", tl110.evidence
    assert "`self.heads` holds 4 parameter tensors, of which 0 reach the optimizer" in tl110.evidence
    [tl113] = verdicts["TL113"]
    assert tl113.verdict == "confirmed", tl113.evidence
    assert "after `.to(torch.float64)`, `self.margins` is still torch.float32" in tl113.evidence
    [tl115] = verdicts["TL115"]
    assert tl115.verdict == "confirmed", tl115.evidence
    assert "cannot assign module before Module.__init__() call" in tl115.evidence
    [tl114] = verdicts["TL114"]
    assert tl114.verdict == "inconclusive"  # forward is never run: the inputs are unknown


def test_amp_clip_fix_confirmed_by_replaying_the_loop_order():
    [v] = verdicts_for(FIXTURES / "train" / "amp_loop.py")
    assert (v.code, v.verdict) == ("TL105", "confirmed"), v.evidence
    assert "order replayed: backward, clip, step" in v.evidence
    assert "as in plain training" in v.evidence


def test_training_loop_fixes_are_not_observable():
    verdicts = verdicts_for(FIXTURES / "train" / "classic_loop.py")
    assert {v.code for v in verdicts} == {"TL101", "TL102", "TL103", "TL112"}
    for v in verdicts:
        assert v.verdict == "inconclusive"
        assert v.evidence.startswith("not observable by a probe")
