"""The flake8 plugin, run by the real flake8: the same diagnostics as `trainlint --output-format concise`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from helpers import console_script

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str, cwd: Path) -> list[str]:
    out = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300).stdout
    return out.splitlines()


def flake8(target: str, cwd: Path) -> list[str]:
    return sorted(run(console_script("flake8"), "--select", "TL", target, cwd=cwd), key=_order)


def concise(target: str, cwd: Path) -> list[str]:
    """trainlint's concise lines without the `[*]` fix mark (flake8 has no place for it)
    and without the summary line."""
    lines = run(console_script(), "--no-cache", "--output-format", "concise", target, cwd=cwd)
    return sorted((line.replace(" [*] ", " ", 1) for line in lines if re.match(r".+:\d+:\d+: TL\d{3} ", line)),
                  key=_order)


def _order(line: str) -> tuple:
    path, row, column, rest = line.split(":", 3)
    return path, int(row), int(column), rest


def compiles(path: Path) -> bool:
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except SyntaxError:
        return False
    return True


def test_flake8_reports_what_trainlint_reports_on_the_fixtures():
    """flake8 runs no plugin on a file Python cannot compile (it reports E999 there):
    trainlint still lints a pre-3.7 file with `async=` keywords (TL128), flake8 cannot."""
    legacy = {p.relative_to(ROOT).as_posix() for p in (ROOT / "fixtures").rglob("*.py") if not compiles(p)}
    assert legacy == {"fixtures/train/legacy.py"}
    expected = [line for line in concise("fixtures/", ROOT) if line.split(":", 1)[0] not in legacy]
    assert len(expected) >= 40
    assert flake8("fixtures/", ROOT) == expected


def test_flake8_honours_tool_trainlint(tmp_path: Path):
    shutil.copytree(ROOT / "fixtures", tmp_path / "fixtures")
    (tmp_path / "pyproject.toml").write_text(
        '[tool.trainlint]\nignore = ["TL005"]\nextend-select = ["TL901"]\n'
        '[tool.trainlint.per-file-ignores]\n"fixtures/train/*" = ["TL1"]\n',
        encoding="utf-8",
    )
    expected = concise("fixtures/", tmp_path)
    assert expected and not any(" TL005 " in line for line in expected)
    assert not any(line.startswith("fixtures/train/") and " TL1" in line for line in expected)
    assert flake8("fixtures/", tmp_path) == expected
