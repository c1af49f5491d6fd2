"""The command-line contract of design.md: flags, output, exit codes, config, writes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

from helpers import console_script
from trainlint.cli import main
from trainlint.registry import all_rules

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
    (tmp_path / "train.py").write_text(BUGGY)
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_default_command_is_check(project):
    result = run("train.py", "--output-format", "concise")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "train.py:5:30: TL005 Mutable default `[]` for parameter `steps` is shared between calls",
        "train.py:9:9: TL001 `self.iters` is reset to 1 on every `step()` call, so it never advances",
        "Found 2 errors (2 fixable with --unsafe-fixes).",
    ]
    assert run("check", "train.py", "--output-format", "concise").output == result.output


def test_bare_invocation_lints_the_current_directory(project):
    result = run()
    assert result.exit_code == 1 and "train.py:9:9: TL001" in result.output


def test_unsafe_fixes_flag_marks_fixable(project):
    result = run("--unsafe-fixes", "train.py")
    assert "TL001 [*]" in result.output
    assert result.output.splitlines()[-1] == "Found 2 errors (2 fixable with --fix)."


def test_bare_fix_applies_only_safe_fixes(project):
    result = run("--fix")
    assert result.exit_code == 1
    assert (project / "train.py").read_text() == BUGGY  # both fixes here are unsafe
    assert result.output.splitlines()[-1] == "Found 2 errors (0 fixed, 2 remaining)."


def test_fix_unsafe_rewrites_and_reports(project):
    mode = 0o640
    os.chmod(project / "train.py", mode)
    result = run("--fix", "--unsafe-fixes")
    assert result.exit_code == 0, result.output
    text = (project / "train.py").read_text()
    assert "self.iters += 1" in text and "steps=None" in text
    assert result.output.splitlines()[-1] == "Found 2 errors (2 fixed, 0 remaining)."
    assert stat.S_IMODE((project / "train.py").stat().st_mode) == mode
    assert not [p for p in project.iterdir() if p.name.endswith(".trainlint")]


def test_diff_writes_nothing(project):
    result = run("--diff", "--unsafe-fixes", "train.py")
    assert result.exit_code == 1
    assert "-        self.iters = 1\n+        self.iters += 1" in result.output
    assert (project / "train.py").read_text() == BUGGY


def test_select_ignore_and_prefixes(project):
    assert "TL005" not in run("--select", "TL001", "train.py").output
    assert "TL001" not in run("--ignore", "TL001", "train.py").output
    out = run("--select", "TL00", "--ignore", "TL005", "train.py").output
    assert "TL001" in out and "TL005" not in out
    assert run("--select", "TL001", "--extend-select", "TL005", "train.py").output.count("TL00") == 2


def test_unknown_code_is_a_usage_error(project):
    result = run("--select", "TL999", "train.py")
    assert result.exit_code == 2
    assert "TL999" in result.output


def test_exit_zero(project):
    assert run("--exit-zero", "train.py").exit_code == 0


def test_clean_file_exits_zero(project):
    (project / "ok.py").write_text("import torch\nx = torch.zeros(3)\n")
    result = run("ok.py")
    assert result.exit_code == 0 and result.output == "All checks passed!\n"


def test_statistics(project):
    result = run("--statistics", "train.py")
    assert result.output.splitlines()[:2] == [
        "1\tTL001\t[ ] scheduler-counter-reset",
        "1\tTL005\t[ ] mutable-default-argument",
    ]


def test_json_output_shape(project):
    result = run("--output-format", "json", "train.py")
    data = json.loads(result.output)
    assert [d["code"] for d in data] == ["TL005", "TL001"]
    first = data[1]
    assert first["filename"] == str(project / "train.py")
    assert first["location"] == {"row": 9, "column": 9}
    assert first["end_location"] == {"row": 9, "column": 23}
    assert first["noqa_row"] == 9
    fix = first["fix"]
    assert fix["applicability"] == "unsafe"
    assert fix["edits"] == [
        # the minimal edit: insert "+" before "=" in `self.iters = 1`
        {"content": "+", "location": {"row": 9, "column": 20}, "end_location": {"row": 9, "column": 20}}
    ]


def test_syntax_error_is_tl000_and_others_still_linted(project):
    (project / "broken.py").write_text("def f(:\n    pass\n")
    result = run(".")
    assert result.exit_code == 2
    assert "broken.py:1:7: TL000 syntax error" in result.output
    assert "train.py:9:9: TL001" in result.output


def test_undecodable_file_is_tl000(project):
    (project / "bad.py").write_bytes(b"x = 1\ny = '\xff'\n")
    result = run("bad.py")
    assert result.exit_code == 2
    assert "bad.py:2:6: TL000 invalid utf-8 byte 0xff" in result.output


def test_missing_path_is_reported(project):
    result = run("nope.py", "train.py")
    assert result.exit_code == 2
    assert "nope.py:1:1: TL000 no such file or directory" in result.output
    assert "train.py:9:9: TL001" in result.output


def test_default_excludes(project):
    for d in (".venv", "build", "node_modules", "__pycache__"):
        (project / d).mkdir()
        (project / d / "x.py").write_text(BUGGY)
    result = run(".")
    assert result.output.count("TL001") == 1


def test_config_select_exclude_and_per_file_ignores(project):
    (project / "vendored").mkdir()
    (project / "vendored" / "v.py").write_text(BUGGY)
    (project / "other.py").write_text(BUGGY)
    (project / "pyproject.toml").write_text(
        '[tool.trainlint]\nselect = ["TL0"]\nexclude = ["vendored"]\n'
        '[tool.trainlint.per-file-ignores]\n"other.py" = ["TL005"]\n'
    )
    out = run(".").output
    assert "vendored" not in out
    assert "other.py:9:9: TL001" in out and "other.py:5:30: TL005" not in out
    assert "train.py:5:30: TL005" in out


def test_config_unsafe_fixes_and_cli_override(project):
    (project / "pyproject.toml").write_text("[tool.trainlint]\nunsafe-fixes = true\n")
    assert "TL001 [*]" in run("train.py").output
    assert "TL001 [*]" not in run("--no-unsafe-fixes", "train.py").output


@pytest.mark.parametrize(
    "body, needle",
    [
        ('[tool.trainlint]\nselct = ["TL0"]\n', "unknown key 'selct'"),
        ('[tool.trainlint]\nselect = ["TL777"]\n', "'TL777'"),
        ('[tool.trainlint]\nselect = "TL001"\n', "'select' must be a list of strings"),
        ("[tool.trainlint\n", "invalid TOML"),
        ('[tool.trainlint]\nunsafe-fixes = "yes"\n', "'unsafe-fixes' must be true or false"),
    ],
)
def test_config_errors_exit_2_naming_the_problem(project, body, needle):
    (project / "pyproject.toml").write_text(body)
    result = run("train.py")
    assert result.exit_code == 2
    assert needle in result.output and "pyproject.toml" in result.output


def test_explicit_config_file(project):
    cfg = project / "lint.toml"
    cfg.write_text('[tool.trainlint]\nignore = ["TL005"]\n')
    assert "TL005" not in run("--config", str(cfg), "train.py").output


def test_suppression_comments(project):
    (project / "s.py").write_text(
        "def a(x=[]):  # trainlint: ignore[TL005]\n    pass\n"
        "# trainlint: ignore[TL005]\ndef b(x=[]):\n    pass\n"
        "def c(x=[]):  # noqa: TL005\n    pass\n"
        "def d(x=[]):  # trainlint: ignore\n    pass\n"
        "def e(x=[]):  # trainlint: ignore[TL001]\n    pass\n"
        "def f(x=[]):  # noqa: E501\n    pass\n"
    )
    out = run("s.py", "--output-format", "concise").output
    assert [l.split(":")[1] for l in out.splitlines()[:-1]] == ["10", "12"]


def test_rule_command():
    result = run("rule", "TL001")
    assert result.exit_code == 0
    assert result.output.startswith("# TL001 scheduler-counter-reset")
    assert "## Why is this bad?" in result.output
    every = run("rule", "--all").output
    for r in all_rules():
        assert f"# {r.code} {r.name}" in every
    assert run("rule", "TL999").exit_code == 2
    assert run("rule").exit_code == 2


def test_import_trainlint_does_not_import_torch(tmp_path):
    code = (
        "import sys, trainlint, trainlint.cli, trainlint.engine\n"
        "from trainlint.registry import all_rules; all_rules()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    # outside the checkout, so that the installed package is the one imported
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


def test_full_format_shows_source_caret_and_help(project):
    out = run("train.py").output
    assert out.split("\n\n")[0].splitlines() == [
        "train.py:5:30: TL005 Mutable default `[]` for parameter `steps` is shared between calls",
        "   |",
        " 5 |     def __init__(self, steps=[]):",
        "   |                              ^^",
        "  = help: use `steps=None` and `if steps is None: steps = []` in the body",
    ]
    assert out.endswith("Found 2 errors (2 fixable with --unsafe-fixes).\n")


def test_colour_only_on_a_terminal_and_never_with_no_color(project):
    plain = CliRunner().invoke(main, ["train.py"])  # not a terminal
    assert "\x1b[" not in plain.output
    coloured = CliRunner().invoke(main, ["train.py"], color=True)  # as on a terminal
    assert "\x1b[31m\x1b[1mTL005\x1b[0m" in coloured.output
    assert click_unstyle(coloured.output) == plain.output
    no_color = CliRunner().invoke(main, ["train.py"], color=True, env={"NO_COLOR": "1"})
    assert no_color.output == plain.output
    report = project / "report.txt"
    CliRunner().invoke(main, ["train.py", "-o", str(report)], color=True)
    assert report.read_text() == plain.output


def click_unstyle(text: str) -> str:
    import click

    return click.unstyle(text)


def test_show_fixes_lists_what_was_fixed(project):
    (project / "loss.py").write_text(
        "import torch\n\nBATCH_SIZE = 16\n\n\ndef f(margins, target):\n"
        "    return margins[target].view(16, 1)\n"
    )
    result = run("loss.py", "--fix", "--show-fixes")
    assert result.output.endswith("Fixed 1 error:\n- loss.py:\n    1 × TL002 (hardcoded-batch-size)\n")
    assert run("loss.py", "--fix", "--show-fixes").output.endswith("No errors were fixed.\n")


def test_url_points_at_the_rule_section_of_the_shipped_reference(project):
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    found = json.loads(run("train.py", "--output-format", "json").output)
    for d in found:
        url = urlsplit(d["url"])
        reference = url2pathname(url.path)
        text = open(reference, encoding="utf-8").read()
        heading = f"## {d['code']} {d['name']}"
        assert heading in text.splitlines()
        assert url.fragment == heading[3:].lower().replace(" ", "-")


def test_shipped_rule_reference_is_up_to_date():
    from trainlint import docs

    assert docs.REFERENCE.read_text(encoding="utf-8") == docs.render(), (
        "trainlint/rules.md is stale: run `python -m trainlint.docs`"
    )


def test_add_noqa_suppresses_every_current_diagnostic(project):
    result = run("train.py", "--add-noqa")
    assert result.exit_code == 0, result.output
    assert "Added 2 noqa directives." in result.output
    text = (project / "train.py").read_text()
    assert "    def __init__(self, steps=[]):  # noqa: TL005\n" in text
    assert "        self.iters = 1  # noqa: TL001\n" in text
    assert run("train.py").exit_code == 0
    again = run("train.py", "--add-noqa")
    assert "Added 0 noqa directives." in again.output
    assert (project / "train.py").read_text() == text
    assert run("train.py", "--add-noqa", "--fix").exit_code == 2


def test_shell_completion_script(tmp_path):
    env = {**os.environ, "_TRAINLINT_COMPLETE": "bash_source"}
    out = subprocess.run([console_script()], env=env, capture_output=True, text=True, check=True).stdout
    assert "_trainlint_completion" in out and "complete " in out
    env["_TRAINLINT_COMPLETE"] = "bash_complete"
    env.update(COMP_WORDS="trainlint check --out", COMP_CWORD="2")
    out = subprocess.run([console_script()], env=env, capture_output=True, text=True, check=True).stdout
    assert "--output-format" in out and "--output-file" in out
