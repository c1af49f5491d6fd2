"""The result cache: location, .gitignore, keys, self-healing, size bound, and that a warm
tree re-lints only what changed (counted, never timed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainlint import cache as cache_mod
from trainlint import engine
from trainlint.cli import main
from trainlint.config import Settings
from trainlint.runner import Options, Runner

BUGGY = """\
import torch


class Warm:
    def __init__(self, steps=[]):
        self.iters = -1

    def step(self):
        self.iters = 1
        return self.iters
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(cache_mod.ENV_VAR, raising=False)
    for i in range(6):
        (tmp_path / "pkg").mkdir(exist_ok=True)
        (tmp_path / "pkg" / f"m{i}.py").write_text(BUGGY + f"\nVALUE = {i}\n")
    (tmp_path / "pkg" / "plain.py").write_text("x = 1\n")  # skipped by every prefilter
    (tmp_path / "pkg" / "broken.py").write_text("def (:\n")  # TL000, cached too
    return tmp_path


def cli(*args):
    return CliRunner().invoke(main, list(args))


def runner(root: Path, **options) -> Runner:
    return Runner(Settings(root=root), Options(**{"jobs": 1, "cache": True, **options}))


def entries(directory: Path) -> list[Path]:
    return sorted((directory / cache_mod.FORMAT).rglob("*.json"))


@pytest.fixture
def counting(monkeypatch):
    calls = {"lint": 0, "parse": 0}
    real_lint, real_parse = engine.lint, engine.parse

    def lint(*a, **k):
        calls["lint"] += 1
        return real_lint(*a, **k)

    def parse(*a, **k):
        calls["parse"] += 1
        return real_parse(*a, **k)

    monkeypatch.setattr(engine, "lint", lint)
    monkeypatch.setattr(engine, "parse", parse)
    return calls


def test_cache_dir_is_created_with_gitignore(project):
    first = cli("pkg")
    directory = project / ".trainlint_cache"
    assert (directory / ".gitignore").read_text().splitlines()[-1] == "*"
    assert len(entries(directory)) == 8
    assert cli("pkg").output == first.output
    assert first.exit_code == 2  # broken.py -> TL000, from the cache as well
    assert cli("pkg").exit_code == 2


def test_no_cache_writes_nothing(project):
    cli("--no-cache", "pkg")
    assert not (project / ".trainlint_cache").exists()


def test_cache_dir_option_and_env(project, monkeypatch):
    cli("--cache-dir", "elsewhere", "pkg")
    assert entries(project / "elsewhere") and not (project / ".trainlint_cache").exists()
    monkeypatch.setenv(cache_mod.ENV_VAR, str(project / "from_env"))
    cli("pkg")
    assert entries(project / "from_env")


def test_cache_lives_in_the_config_root(project, monkeypatch):
    (project / "pyproject.toml").write_text("[tool.trainlint]\n")
    monkeypatch.chdir(project / "pkg")
    cli(".")
    assert entries(project / ".trainlint_cache")
    assert not (project / "pkg" / ".trainlint_cache").exists()


def test_warm_run_parses_nothing_and_one_change_relints_one_file(project, counting):
    cold = runner(project).run([Path("pkg")])
    assert counting["lint"] == 8 and cold.stats.linted == 8
    counting.update(lint=0, parse=0)
    warm = runner(project).run([Path("pkg")])
    assert counting == {"lint": 0, "parse": 0}
    assert warm.stats.cached == 8 and warm.stats.linted == 0

    with open(project / "pkg" / "m3.py", "a") as handle:
        handle.write("\nOTHER = 2\n")
    again = runner(project).run([Path("pkg")])
    assert counting == {"lint": 1, "parse": 1}
    assert again.stats.cached == 7 and again.stats.linted == 1 and again.stats.parsed == 1
    assert [d.code for d in again.diagnostics] == [d.code for d in cold.diagnostics]


def test_settings_are_part_of_the_key(project, counting):
    runner(project).run([Path("pkg")])
    counting.update(lint=0)
    only = runner(project, select=["TL001"]).run([Path("pkg")])
    assert counting["lint"] == 8
    assert {d.code for d in only.diagnostics} == {"TL001", "TL000"}
    counting.update(lint=0)
    runner(project, want_edits=True).run([Path("pkg")])  # JSON needs edits: another entry
    assert counting["lint"] == 8
    counting.update(lint=0)
    runner(project, unsafe_fixes=True).run([Path("pkg")])
    assert counting["lint"] == 8
    counting.update(lint=0)
    runner(project, unsafe_fixes=True).run([Path("pkg")])
    assert counting["lint"] == 0


@pytest.mark.parametrize("garbage", [b"", b"{not json", b'{"key": "x", "diagnostics": []}',
                                     b'{"key": null}', b'\xff\xfe', b'[1, 2]'])
def test_corrupt_entries_heal(project, counting, garbage):
    expected = cli("--no-cache", "pkg").output
    cli("pkg")
    directory = project / ".trainlint_cache"
    for entry in entries(directory):
        entry.write_bytes(garbage)
    counting.update(lint=0)
    assert cli("pkg", "-j", "1").output == expected
    assert counting["lint"] == 8  # every entry was dropped and recomputed
    for entry in entries(directory):
        assert json.loads(entry.read_text())["key"] == entry.stem
    counting.update(lint=0)
    assert cli("pkg", "-j", "1").output == expected
    assert counting["lint"] == 0


def test_bad_record_shape_heals(project, counting):
    cli("pkg")
    directory = project / ".trainlint_cache"
    for entry in entries(directory):
        data = json.loads(entry.read_text())
        data["diagnostics"] = [{"code": "TL001"}]
        entry.write_text(json.dumps(data))
    counting.update(lint=0)
    assert cli("pkg", "-j", "1").output == cli("--no-cache", "pkg").output
    assert counting["lint"] == 8


def test_unwritable_cache_dir_is_not_an_error(project):
    (project / "blocker").write_text("a file where the cache directory would go")
    result = cli("--cache-dir", "blocker", "pkg")
    assert result.output == cli("--no-cache", "pkg").output


def test_size_bound_prunes_oldest(tmp_path):
    store = cache_mod.Cache(tmp_path / "c", max_bytes=10_000)
    record = [cache_mod.dump(engine.internal("x.py", "m" * 200))]
    for i in range(100):
        store.put(store.key(str(i).encode(), ()), record)
    assert store.size() > 10_000
    store.prune()
    assert 0 < store.size() <= 10_000
    assert store.get(store.key(b"99", ())) is not None  # the newest survive


def test_cached_fix_is_lightweight_but_reports_alike(project):
    run = runner(project).run([Path("pkg")])
    cached = runner(project).run([Path("pkg")])
    fresh = [d for d in run.diagnostics if d.fix]
    light = [d for d in cached.diagnostics if d.fix]
    assert fresh and len(fresh) == len(light)
    for a, b in zip(fresh, light):
        assert (a.fix.applicability, a.fix.message) == (b.fix.applicability, b.fix.message)
        assert b.fix.edits == ()
