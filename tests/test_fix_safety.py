"""`--fix` cannot lose data: atomic writes, concurrent edits, read-only files and directories."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

import trainlint.engine
import trainlint.runner
from trainlint.cli import main

BUGGY = "import torch\n\n\ndef f(x=[]):\n    return x\n"
FIXED = "import torch\n\n\ndef f(x=None):\n    if x is None:\n        x = []\n    return x\n"
ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAINLINT_JOBS", "1")  # monkeypatches must reach the fixing process
    (tmp_path / "train.py").write_text(BUGGY)
    return tmp_path


def fix(*paths):
    result = CliRunner().invoke(main, ["--no-cache", "--fix", "--unsafe-fixes", *paths])
    assert isinstance(result.exception, (SystemExit, type(None))), result.output
    return result


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".trainlint"))


def test_fix_writes_the_fixed_bytes(project):
    result = fix("train.py")
    assert (project / "train.py").read_text() == FIXED
    assert result.exit_code == 0 and leftovers(project) == []


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755, 0o700, 0o444 | 0o200])
def test_mode_bits_are_kept(project, mode):
    target = project / "train.py"
    target.chmod(mode)
    fix("train.py")
    assert target.read_text() == FIXED
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_file_changed_between_read_and_write_is_not_overwritten(project, monkeypatch):
    target = project / "train.py"
    edited = BUGGY + "# the user saved this while trainlint ran\n"
    real_fix = trainlint.engine.fix

    def fix_while_the_user_edits(path, data, *args, **kwargs):
        result = real_fix(path, data, *args, **kwargs)
        target.write_text(edited)  # after the read, before the write
        return result

    monkeypatch.setattr(trainlint.engine, "fix", fix_while_the_user_edits)
    result = fix("train.py")
    assert target.read_text() == edited
    assert "train.py:1:1: TL000 the file changed on disk while it was being fixed; not written" in result.output
    assert result.exit_code == 2 and leftovers(project) == []


def test_file_removed_between_read_and_write_is_not_recreated(project, monkeypatch):
    target = project / "train.py"
    real_fix = trainlint.engine.fix

    def fix_then_remove(path, data, *args, **kwargs):
        result = real_fix(path, data, *args, **kwargs)
        target.unlink()
        return result

    monkeypatch.setattr(trainlint.engine, "fix", fix_then_remove)
    result = fix("train.py")
    assert not target.exists()
    assert "TL000 cannot write the fixes" in result.output and result.exit_code == 2
    assert leftovers(project) == []


def _deny(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


def test_read_only_directory_gives_a_clear_error_and_leaves_the_file(project, monkeypatch):
    """Root ignores a directory's write bit (CI runs as root), so the refusal is also simulated
    by making the temporary file's creation fail the way the kernel would."""
    sub = project / "ro"
    sub.mkdir()
    target = sub / "train.py"
    target.write_text(BUGGY)
    sub.chmod(0o555)
    try:
        if not ROOT:
            result = fix("ro/train.py")
            assert "ro/train.py:1:1: TL000 cannot write the fixes: Permission denied" in result.output
            assert result.exit_code == 2 and target.read_text() == BUGGY
        monkeypatch.setattr(trainlint.runner.tempfile, "mkstemp", _deny)
        result = fix("ro/train.py")
    finally:
        sub.chmod(0o755)
    assert "ro/train.py:1:1: TL000 cannot write the fixes: Permission denied" in result.output
    # the remaining diagnostics are those of the unfixed file, and the exit code says error
    assert "ro/train.py:4:9: TL005" in result.output
    assert result.exit_code == 2 and target.read_text() == BUGGY and leftovers(sub) == []


def test_failed_rename_leaves_the_file_and_no_temporary(project, monkeypatch):
    monkeypatch.setattr(trainlint.runner.os, "replace", _deny)
    result = fix("train.py")
    assert "TL000 cannot write the fixes: Permission denied" in result.output
    assert (project / "train.py").read_text() == BUGGY and leftovers(project) == []


def test_disk_full_while_writing_leaves_the_file_and_no_temporary(project, monkeypatch):
    real_fsync = os.fsync

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainlint.runner.os, "fsync", full)
    result = fix("train.py")
    monkeypatch.setattr(trainlint.runner.os, "fsync", real_fsync)
    assert "TL000 cannot write the fixes: No space left on device" in result.output
    assert (project / "train.py").read_text() == BUGGY and leftovers(project) == []


def test_one_unwritable_file_does_not_stop_the_others(project, monkeypatch):
    (project / "other.py").write_text(BUGGY)
    real = trainlint.runner.tempfile.mkstemp

    def mkstemp(*args, prefix="", **kwargs):
        if prefix.startswith(".train.py"):
            _deny()
        return real(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(trainlint.runner.tempfile, "mkstemp", mkstemp)
    result = fix(".")
    assert (project / "other.py").read_text() == FIXED
    assert (project / "train.py").read_text() == BUGGY
    assert result.exit_code == 2


def test_read_only_file_gives_a_clear_error_and_leaves_the_file(project):
    target = project / "train.py"
    target.chmod(0o444)
    try:
        result = fix("train.py")
        assert target.read_text() == BUGGY
        assert "TL000" in result.output and "read-only" in result.output
        assert result.exit_code == 2
    finally:
        target.chmod(0o644)


def test_fix_never_writes_code_that_does_not_parse(project, monkeypatch):
    """A fix whose output does not parse is dropped with a TL000; the file stays as it was."""
    real_apply = trainlint.engine.apply_fixes

    class Broken:
        def __init__(self, module):
            self.bytes = module.bytes.replace(b"return x", b"return (x", 1)

    def broken(module, fixes):
        fixed, applied = real_apply(module, fixes)
        return Broken(fixed), applied

    monkeypatch.setattr(trainlint.engine, "apply_fixes", broken)
    result = fix("train.py")
    assert "a fix produced code that does not parse" in result.output
    assert (project / "train.py").read_text() == BUGGY and result.exit_code == 2


def test_sigkill_at_random_moments_leaves_each_file_original_or_fully_fixed(tmp_path):
    """Kill `trainlint --fix` (its own process, a real SIGKILL) at moments spread over a
    whole run, many times; every file is afterwards byte for byte its original or its fully
    fixed content, never a mixture, a truncation or an empty file."""
    import random
    import signal
    import subprocess
    import sys
    import time

    # Big files, each with a fix near its top and one near its end, so that a write is long
    # enough to be interrupted and a half-written file would show.
    filler = "".join(f"def helper_{i}(a, b):\n    return a + b * {i}\n\n\n" for i in range(400))
    original = BUGGY + "\n\n" + filler + "def g(y={}):\n    return y\n"
    command = [sys.executable, "-m", "trainlint", "--no-cache", "--fix", "--unsafe-fixes",
               "--jobs", "1", "--exit-zero", "."]
    golden_dir = tmp_path / "golden"
    golden_dir.mkdir()
    (golden_dir / "f.py").write_text(original)
    started = time.monotonic()
    subprocess.run(command, cwd=golden_dir, check=True, capture_output=True)
    full_run = time.monotonic() - started
    fixed = (golden_dir / "f.py").read_bytes()
    assert fixed != original.encode() and b"def g(y=None):" in fixed

    rng = random.Random(20261125)
    outcomes = {"original": 0, "fixed": 0}
    for attempt in range(8):
        work = tmp_path / f"run{attempt}"
        work.mkdir()
        files = [work / f"m{i:02}.py" for i in range(20)]
        for f in files:
            f.write_text(original)
        proc = subprocess.Popen(command, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, full_run * 3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for f in files:
            data = f.read_bytes()
            assert data in (original.encode(), fixed), f"{f} is neither original nor fixed"
            outcomes["original" if data == original.encode() else "fixed"] += 1
    # The kills landed at different stages: some files were already fixed, some not yet.
    assert outcomes["original"] and outcomes["fixed"], outcomes


def test_diff_parses_each_version_of_the_file_once(project, monkeypatch):
    """--diff: the original is parsed once (its diagnostics are the ones shown), and each
    fixed version once (the parse that checks it is the one the next round lints)."""
    parsed = []
    real_parse = trainlint.engine.parse
    monkeypatch.setattr(trainlint.engine, "parse", lambda source: parsed.append(source.text) or real_parse(source))
    result = CliRunner().invoke(main, ["--no-cache", "--diff", "--unsafe-fixes", "train.py"])
    assert result.exit_code == 1 and "+    if x is None:" in result.output
    assert parsed == [BUGGY, FIXED]
    assert (project / "train.py").read_text() == BUGGY
