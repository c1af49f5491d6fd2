"""Parallel, cached and prefiltered runs give exactly the output of a serial, uncached,
unfiltered run (issue 6).

Compared on the fixtures and on a sample of torch's installed sources (always present where
the tests run), in text and JSON (with fix edits), for check, --diff and --fix. The text
prefilter and the ast screen (`engine.PREFILTER`) are compared with a run that parses every
file and runs every selected rule on it.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainlint import engine
from trainlint.cli import main
from trainlint.config import Settings
from trainlint.registry import all_rules
from trainlint.report import FORMATS
from trainlint.runner import Options, Runner

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


SUBDIRS = ("optim", "nn/modules", "nn", "utils/data", "distributions", "ao/nn/quantized/modules")
# Wider, for the prefilter: schedulers, losses, quantisation, data, models, tests of them.
WIDE_SUBDIRS = SUBDIRS + (
    "nn/utils", "nn/parallel", "ao/quantization", "utils", "testing/_internal", "_dynamo",
    "distributed/optim", "optim/_multi_tensor", "nn/intrinsic/qat/modules", "onnx",
)


def torch_sample(
    count: int = 40, max_bytes: int = 25_000, subdirs: tuple[str, ...] = SUBDIRS, stride: int = 1
) -> list[Path]:
    """A fixed sample of torch's own modules: optimizers, layers, data, distributions."""
    spec = importlib.util.find_spec("torch")  # located, not imported (importing is slow)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torch is not installed")
    root = Path(list(spec.submodule_search_locations)[0])
    pool = []
    for sub in subdirs:
        pool += sorted(p for p in (root / sub).glob("*.py") if 500 < p.stat().st_size <= max_bytes)
    seen, out = set(), []
    for p in pool:
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out[::stride][:count]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The fixtures (without golden files) plus the torch sample, copied."""
    root = tmp_path_factory.mktemp("equiv")
    for p in FIXTURES.rglob("*.py"):
        dest = root / "fixtures" / p.relative_to(FIXTURES)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    for i, p in enumerate(torch_sample()):
        dest = root / "torch_sample" / f"{i:02d}_{p.parent.name}_{p.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    return root


def render(run, fmt: str) -> str:
    return FORMATS[fmt](run, False)


def lint(root: Path, **options):
    fmt = options.pop("fmt", "text")
    runner = Runner(Settings(root=root), Options(want_edits=fmt != "text", **options))
    run = runner.run([Path(".")])
    return run, render(run, fmt)


def test_jobs_and_cache_give_identical_output(tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tree)
    serial, expected_json = lint(tree, fmt="json", jobs=1, cache=False)
    expected_text = render(serial, "text")
    assert serial.stats.linted == serial.stats.files >= 45
    assert len(serial.diagnostics) >= 10  # the sample has findings worth comparing
    assert any(d.edits for d in serial.diagnostics)

    cache_dir = tmp_path / "cache"
    cold, cold_json = lint(tree, fmt="json", jobs=2, cache=True, cache_dir=cache_dir)
    assert cold.stats.jobs == 2 and cold.stats.cached == 0
    assert cold_json == expected_json and render(cold, "text") == expected_text

    warm, warm_json = lint(tree, fmt="json", jobs=2, cache=True, cache_dir=cache_dir)
    assert warm.stats.cached == warm.stats.files and warm.stats.linted == 0
    assert warm_json == expected_json and render(warm, "text") == expected_text

    for fmt in FORMATS:  # every report format renders the same bytes
        assert render(cold, fmt) == render(warm, fmt) == render(serial, fmt), fmt

    # the same order and the same fields, diagnostic by diagnostic
    key = lambda d: (d.path, d.row, d.column, d.end_row, d.end_column, d.code, d.name,
                     d.message, d.help, d.data, d.edits,
                     d.fix and (d.fix.applicability, d.fix.message))
    assert [key(d) for d in cold.diagnostics] == [key(d) for d in serial.diagnostics]
    assert [key(d) for d in warm.diagnostics] == [key(d) for d in serial.diagnostics]


def cli(*args):
    return CliRunner().invoke(main, list(args))


def test_fix_and_diff_with_jobs_and_warm_cache(tree, tmp_path, monkeypatch):
    """--fix/--diff never fix from cached results, and parallel fixing writes the same files."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(tree / "fixtures", a / "src")
    shutil.copytree(tree / "fixtures", b / "src")
    monkeypatch.chdir(a)
    check_a = cli("--jobs", "1", "--no-cache", "--unsafe-fixes", "src")
    diff_a = cli("--diff", "--jobs", "1", "--no-cache", "src")
    fix_a = cli("--fix", "--unsafe-fixes", "--jobs", "1", "--no-cache", "src")
    monkeypatch.chdir(b)
    assert cli("src", "--unsafe-fixes", "-j", "2").output == check_a.output  # cold cache
    assert cli("src", "--unsafe-fixes", "-j", "2").output == check_a.output  # warm
    diff_b = cli("--diff", "--jobs", "2", "src")
    assert diff_b.output == diff_a.output and diff_b.exit_code == diff_a.exit_code
    fix_b = cli("--fix", "--unsafe-fixes", "--jobs", "2", "src")
    assert fix_b.output == fix_a.output and fix_b.exit_code == fix_a.exit_code
    assert "fixed" in fix_b.output
    for p in (a / "src").rglob("*.py"):
        assert (b / "src" / p.relative_to(a / "src")).read_bytes() == p.read_bytes()
    # after fixing, a cached run agrees with an uncached one on the fixed tree
    assert cli("src").output == cli("src", "--no-cache", "-j", "1").output


# ------------------------------------------------------------------ prefilter and screen

# Suppressions of rules that the text prefilter or the screen rules out: TL901 must call
# them unused exactly as when those rules run and report nothing.
SUPPRESSIONS = {
    "screened.py": "import torch\nmask = torch.zeros(3)  # noqa: TL010\nx = mask[1]  # trainlint: ignore[TL002]\n",
    "filtered.py": "def f(x):  # noqa: TL005, E501\n    return x  # trainlint: ignore\n",
    "used.py": "def f(x=[]):  # noqa: TL005\n    return x\n",
}


@pytest.fixture(scope="module")
def wide_tree(tmp_path_factory):
    """The fixtures, a wide sample of torch's sources and files with suppressions."""
    root = tmp_path_factory.mktemp("prefilter")
    for p in FIXTURES.rglob("*.py"):
        dest = root / "fixtures" / p.relative_to(FIXTURES)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    for i, p in enumerate(torch_sample(45, 60_000, WIDE_SUBDIRS, stride=6)):
        dest = root / "torch_sample" / f"{i:02d}_{p.parent.name}_{p.name}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest)
    for name, text in SUPPRESSIONS.items():
        (root / "suppressions").mkdir(exist_ok=True)
        (root / "suppressions" / name).write_text(text)
    return root


def _key(d):
    return (d.path, d.row, d.column, d.end_row, d.end_column, d.code, d.name, d.message,
            d.help, d.data, d.edits, d.fix and (d.fix.applicability, d.fix.message))


def test_prefilter_and_screen_change_no_diagnostic(wide_tree, monkeypatch):
    """Every rule (TL901 included, which must see the suppressions of rules that were
    filtered out as unused): the same diagnostics, byte for byte, as parsing every file and
    running every rule on it."""
    monkeypatch.chdir(wide_tree)
    fast, fast_json = lint(wide_tree, fmt="json", jobs=1, cache=False, select=["TL"])
    monkeypatch.setattr(engine, "PREFILTER", False)
    full, full_json = lint(wide_tree, fmt="json", jobs=1, cache=False, select=["TL"])
    assert full.stats.files >= 50 and full.stats.parsed == full.stats.linted
    assert fast_json == full_json
    assert render(fast, "text") == render(full, "text")
    assert [_key(d) for d in fast.diagnostics] == [_key(d) for d in full.diagnostics]
    assert len(full.diagnostics) >= 10
    assert fast.stats.parsed < full.stats.parsed  # files ruled out were never parsed
    unused = {d.path.split("/")[-1] for d in full.diagnostics if d.code == "TL901"}
    assert unused >= {"screened.py", "filtered.py"}


def test_prefilter_and_screen_change_no_fix(monkeypatch):
    """--fix: the same bytes and the same applied fixes, file by file."""
    rules = all_rules()
    for path in sorted(FIXTURES.rglob("*.py")):
        data = path.read_bytes()
        monkeypatch.setattr(engine, "PREFILTER", True)
        fast = engine.fix(path.name, data, rules, unsafe=True)
        monkeypatch.setattr(engine, "PREFILTER", False)
        full = engine.fix(path.name, data, rules, unsafe=True)
        assert fast.data == full.data, path
        assert [_key(d) for d in fast.applied] == [_key(d) for d in full.applied], path
        assert [_key(d) for d in fast.remaining.diagnostics] == [
            _key(d) for d in full.remaining.diagnostics
        ], path
