"""Verdict semantics on code the probes were not written for: a failure caused by the
probe's inputs never refutes a fix; inputs come from the project's call sites, defaults
and a search; every verdict carries a repro snippet that reproduces its evidence."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import libcst as cst
from click.testing import CliRunner

from trainlint.cli import main
from trainlint.harness.callsites import ProjectFiles, hints_for
from trainlint.harness.dependence import Edits
from trainlint.harness.verify import Settings, verify_file, verify_files
from trainlint.registry import by_code, select
from trainlint.rule import Applicability, Invalid, Rule, Valid

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

# A reduced reproduction of the LDAM loss as published: CUDA-locked margins, `weight=None`
# by default, and a training script that passes a tensor.
MARGIN_LOSS = textwrap.dedent(
    """
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class MarginLoss(nn.Module):
        def __init__(self, cls_num_list, max_m=0.5, weight=None, s=30):
            super().__init__()
            m_list = 1.0 / np.sqrt(np.sqrt(cls_num_list))
            m_list = m_list * (max_m / np.max(m_list))
            self.m_list = torch.cuda.FloatTensor(m_list)
            self.s = s
            self.weight = weight

        def forward(self, x, target):
            index = torch.zeros_like(x, dtype=torch.bool)
            index.scatter_(1, target.data.view(-1, 1), 1)
            batch_m = torch.matmul(self.m_list[None, :], index.float().transpose(0, 1))
            output = torch.where(index, x - batch_m.view((-1, 1)), x)
            return F.cross_entropy(self.s * output, target, weight=self.weight)
    """
)
TRAIN = textwrap.dedent(
    """
    import torch
    from losses import MarginLoss

    def main(cls_num_list):
        per_cls_weights = torch.FloatTensor([1.0] * len(cls_num_list)).cuda()
        criterion = MarginLoss(cls_num_list=cls_num_list, max_m=0.5, s=30, weight=per_cls_weights)
        return criterion
    """
)


def cpu(root: Path | None = None) -> Settings:
    return Settings(devices=["cpu"], timeout=120, project_root=root)


def test_cuda_locked_original_is_the_failure_a_device_fix_removes(tmp_path):
    (tmp_path / "losses.py").write_text(MARGIN_LOSS)
    (tmp_path / "train.py").write_text(TRAIN)
    path = tmp_path / "losses.py"
    [v] = verify_file(str(path), path.read_bytes(), [by_code("TL004")], cpu(tmp_path))
    assert v.verdict == "confirmed", v.evidence
    assert "locked to CUDA" in v.evidence and "counts as the original failing" in v.evidence
    # the call site's tensor, not a Python list, reached `weight`
    assert v.inputs["kwargs"]["weight"].startswith("torch.linspace")
    assert v.inputs["hinted"]["weight"] == "train.py:7"
    assert v.inputs["kwargs"]["max_m"] == "0.5"


def test_default_none_is_a_valid_value_without_call_sites(tmp_path):
    path = tmp_path / "losses.py"
    path.write_text(MARGIN_LOSS)
    [v] = verify_file(str(path), path.read_bytes(), [by_code("TL004")], cpu())
    assert v.verdict == "confirmed", v.evidence
    assert "weight" not in v.inputs["kwargs"]  # left at its default, None


DICE = textwrap.dedent(
    """
    import torch
    import torch.nn as nn


    class SoftDiceLoss(nn.Module):
        def __init__(self, smooth=1.0):
            super().__init__()
            self.smooth = torch.tensor(smooth).cuda()

        def forward(self, logits, target):
            probs = torch.sigmoid(logits)
            dims = (0, 2, 3)
            inter = (probs * target).sum(dims)
            union = probs.sum(dims) + target.sum(dims)
            return 1 - ((2 * inter + self.smooth) / (union + self.smooth)).mean()
    """
)


def test_input_search_finds_the_rank_the_loss_wants(tmp_path):
    path = tmp_path / "dice.py"
    path.write_text(DICE)
    [v] = verify_file(str(path), path.read_bytes(), [by_code("TL004")], cpu())
    assert v.verdict == "confirmed", v.evidence
    form = v.inputs["cpu"]["form"]
    assert (form["rank"], form["target"]) == (4, "same")
    assert any("2-D/index" in t for t in v.inputs["cpu"]["tried"])


class BreakDim(Rule):
    """A deliberately wrong fix, for the tests: `dim=1` becomes `dim=3` in a softmax.

    ## What it does
    ## Why is this bad?
    ## Example
    ## Use instead
    ## Fix safety
    """

    code = "TL996"
    name = "test-break-dim"
    message = "test only"
    fix_applicability = Applicability.UNSAFE
    VALID: list[Valid] = []
    INVALID: list[Invalid] = []

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword and node.keyword.value == "dim" and isinstance(node.value, cst.Integer) \
                and node.value.value == "1":
            self.report(node, fix=self.make_fix("break", (node, node.with_changes(value=cst.Integer("3")))))


class DropScale(Rule):
    """A deliberately wrong fix, for the tests: `self.scale = 2.0` becomes `self.scale = None`,
    which fails later, in a line the fix did not touch.

    ## What it does
    ## Why is this bad?
    ## Example
    ## Use instead
    ## Fix safety
    """

    code = "TL995"
    name = "test-drop-scale"
    message = "test only"
    fix_applicability = Applicability.UNSAFE
    VALID: list[Valid] = []
    INVALID: list[Invalid] = []

    def visit_Float(self, node: cst.Float) -> None:
        if node.value == "2.0":
            self.report(node, fix=self.make_fix("drop", (node, cst.Name("None"))))


SCALED = textwrap.dedent(
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class ScaledLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = 2.0

        def forward(self, x, target):
            logp = F.log_softmax(x * self.scale, dim=1)
            return F.nll_loss(logp, target)
    """
)


def test_a_failure_on_the_edited_line_refutes(tmp_path):
    path = tmp_path / "scaled.py"
    path.write_text(SCALED)
    [v] = verify_file(str(path), path.read_bytes(), [BreakDim], cpu())
    assert v.verdict == "refuted", v.evidence
    assert "IndexError" in v.evidence and "the original satisfied it on the same inputs" in v.evidence


def test_a_failure_through_a_value_the_fix_assigned_refutes(tmp_path):
    path = tmp_path / "scaled.py"
    path.write_text(SCALED)
    [v] = verify_file(str(path), path.read_bytes(), [DropScale], cpu())
    assert v.verdict == "refuted", v.evidence
    assert "TypeError" in v.evidence


def test_edits_follow_assignments_to_the_failing_line():
    before = "class A:\n    def __init__(self):\n        m = 1\n        self.m = m\n    def f(self):\n        return self.m + 1\n"
    after = before.replace("m = 1", "m = None")
    edits = Edits(before, after)
    assert edits.lines == {3}
    assert edits.touch([6])  # reads self.m, assigned from the edited m
    assert not Edits(before, before.replace("return self.m + 1", "return self.m + 1  # x")).touch([3])


def test_call_sites_give_kinds_and_literals(tmp_path):
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "other.py").write_text("MarginLoss([10, 5], 0.3)\n")
    hints = hints_for(ProjectFiles(tmp_path), "MarginLoss")
    assert hints["weight"]["kind"] == "tensor"
    assert hints["max_m"]["value"] == 0.5 and hints["s"]["value"] == 30
    assert hints["#0"]["value"] == [10, 5] and hints["#1"]["value"] == 0.3
    assert "cls_num_list" not in hints  # a parameter of main(): its value is unknown


def _run_snippet(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _evidence_core(evidence: str) -> str:
    """The part of an evidence string a snippet prints: the exception, or the observation."""
    core = evidence.split(" breaks: ", 1)[-1].split(" breaks (", 1)[-1]
    for end in (" at line ", "); with it", " (module.parameters()", "; max deviation"):
        core = core.split(end)[0]
    return core


def test_repro_snippets_reproduce_the_evidence():
    files = [FIXTURES / "seed" / "ldam_train.py", FIXTURES / "seed" / "cawb_scheduler_checked.py",
             FIXTURES / "seed" / "cawb_scheduler.py", FIXTURES / "train" / "custom_module.py"]
    rules = select(None, [], [])
    verdicts = verify_files([(str(p), p.read_bytes(), rules) for p in files], cpu())
    sample = [v for v in verdicts if v.verdict == "confirmed" and v.code in
              ("TL001", "TL004", "TL006", "TL007", "TL110", "TL113", "TL115")]
    assert {v.code for v in sample} >= {"TL001", "TL004", "TL006", "TL110", "TL113"}
    for v in sample:
        assert "import trainlint" not in v.repro and "from trainlint" not in v.repro
        out = _run_snippet(v.repro)
        assert _evidence_core(v.evidence) in out, (v.code, v.evidence, out)


def test_explain_prints_snippets_and_json_carries_them(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    result = CliRunner().invoke(main, ["verify", "--device", "cpu", "--explain", "fixtures/seed/cawb_scheduler.py"])
    assert result.exit_code == 0, result.output
    assert "repro ---" in result.output and "def check(cls, build):" in result.output
    result = CliRunner().invoke(main, ["verify", "--device", "cpu", "--output-format", "json",
                                       "fixtures/seed/cawb_scheduler.py"])
    data = json.loads(result.output)
    assert all(d["repro"] and "kwargs" in d["inputs"] for d in data)
