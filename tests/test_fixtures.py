"""The bundled fixtures: expected diagnostics (from `# expect:` comments) and golden fixes."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainlint import engine
from trainlint.cli import main
from trainlint.registry import select

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PROGRAMS = sorted(FIXTURES.rglob("*.py"))
SEED = [p for p in PROGRAMS if p.parent.name == "seed"]
FIXABLE = [p for p in PROGRAMS if p.parent.name in ("seed", "train")]
EXPECT = re.compile(r"#.*\bexpect: (?P<codes>TL\d{3}(?:\s*,\s*TL\d{3})*)")


def expected(path: Path) -> Counter:
    found = Counter()
    for row, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = EXPECT.search(line)
        if m:
            for code in re.split(r"\s*,\s*", m.group("codes")):
                found[(row, code)] += 1
    return found


def ids(paths):
    return [p.relative_to(FIXTURES).as_posix() for p in paths]


def test_fixtures_exist():
    assert SEED and any(p.parent.name == "clean" for p in PROGRAMS)


@pytest.mark.parametrize("path", PROGRAMS, ids=ids(PROGRAMS))
def test_expected_diagnostics(path):
    result = engine.lint(str(path), path.read_bytes(), select(None, [], []))
    got = Counter((d.row, d.code) for d in result.diagnostics)
    assert got == expected(path)


def test_clean_fixtures_have_no_expectations():
    for path in PROGRAMS:
        if path.parent.name == "clean":
            assert not expected(path), f"{path} is a clean fixture but expects diagnostics"


@pytest.mark.parametrize("path", FIXABLE, ids=ids(FIXABLE))
def test_golden_fix(path):
    golden = path.with_name(path.name + ".fixed")
    assert golden.exists(), f"no golden file {golden.name}"
    fixed = engine.fix(str(path), path.read_bytes(), select(None, [], []), unsafe=True).data
    assert fixed.decode() == golden.read_text(encoding="utf-8")
    again = engine.fix(str(path), fixed, select(None, [], []), unsafe=True).data
    assert again == fixed, "fixing twice differs from fixing once"


def test_cli_fix_reproduces_golden_files(tmp_path, monkeypatch):
    copy = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, copy)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["--fix", "--unsafe-fixes", "fixtures"])
    assert result.exit_code in (0, 1), result.output
    for path in copy.rglob("*.py"):
        golden = path.with_name(path.name + ".fixed")
        original = FIXTURES / path.relative_to(copy)
        want = golden.read_bytes() if golden.exists() else original.read_bytes()
        assert path.read_bytes() == want, path


def test_cli_reports_every_expected_line(monkeypatch):
    monkeypatch.chdir(FIXTURES.parent)
    result = CliRunner().invoke(main, ["fixtures"])
    assert result.exit_code == 1
    lines = [l for l in result.output.splitlines() if re.match(r"fixtures/.+:\d+:\d+: TL\d{3}", l)]
    got = Counter()
    for l in lines:
        path, row, _col, rest = l.split(":", 3)
        got[(path, int(row), rest.split()[0])] += 1
    want = Counter()
    for path in PROGRAMS:
        rel = path.relative_to(FIXTURES.parent).as_posix()
        for (row, code), n in expected(path).items():
            want[(rel, row, code)] += n
    assert got == want
    assert result.output.splitlines()[-1].startswith(f"Found {sum(want.values())} error")


def test_every_default_rule_fires_on_a_fixture():
    covered = {code for path in PROGRAMS for (_, code) in expected(path)}
    missing = [r.code for r in select(None, [], []) if r.code not in covered]
    assert not missing, f"no fixture expects {missing}"
