"""Whatever a repository contains, `trainlint` ends with diagnostics or one clear TL000 per bad
file, lints the other files, and exits per design.md (2 when a TL000 is present)."""

from __future__ import annotations

import os
import random
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import trainlint.discover
from trainlint.cli import main

GOOD = "def good(y=[]):\n    return y\n"  # one TL005, so "other files still linted" is visible
MUTABLE = "def f(x=[]):\n    return x\n"


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAINLINT_JOBS", "1")  # monkeypatches below must reach the lint
    (tmp_path / "good.py").write_text(GOOD)
    return tmp_path


def run(*args):
    result = CliRunner().invoke(main, ["--no-cache", *args])
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        result.output
    )
    assert "Traceback" not in result.output
    assert "internal error" not in result.output, result.output
    return result


def lines_for(result, name: str) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith(f"{name}:")]


def assert_good_linted(result) -> None:
    assert "good.py:1:12: TL005" in result.output, result.output


def assert_one_tl000(result, name: str, reason: str) -> None:
    lines = lines_for(result, name)
    assert len(lines) == 1 and " TL000 " in lines[0], result.output
    assert re.search(reason, lines[0]), lines[0]
    assert_good_linted(result)
    assert result.exit_code == 2


def assert_clean(result, name: str) -> None:
    assert lines_for(result, name) == [], result.output
    assert_good_linted(result)
    assert result.exit_code == 1


# ----------------------------------------------------------------- contents


@pytest.mark.parametrize(
    "content",
    [b"", b"# only a comment\n# and another\n", b"\n\n\n", b"#!/usr/bin/env python\n", b'"""doc"""'],
    ids=["empty", "comments", "blank-lines", "shebang", "docstring-no-newline"],
)
def test_files_without_code_are_clean(tree, content):
    (tree / "x.py").write_bytes(content)
    assert_clean(run("."), "x.py")


def test_bom_is_linted_and_kept_by_fix(tree):
    data = b"\xef\xbb\xbf" + MUTABLE.encode()
    (tree / "x.py").write_bytes(data)
    assert lines_for(run("."), "x.py") == [
        "x.py:1:9: TL005 Mutable default `[]` for parameter `x` is shared between calls"
    ]
    run("--fix", "--unsafe-fixes", ".")
    fixed = (tree / "x.py").read_bytes()
    assert fixed.startswith(b"\xef\xbb\xbfdef f(x=None):") and fixed.count(b"\xef\xbb\xbf") == 1


def test_latin1_with_coding_line_is_linted_and_kept_by_fix(tree):
    data = b'# -*- coding: latin-1 -*-\nNAME = "caf\xe9"\n' + MUTABLE.encode()
    (tree / "x.py").write_bytes(data)
    assert [line.split(" TL")[0] for line in lines_for(run("."), "x.py")] == ["x.py:3:9:"]
    result = run("--fix", "--unsafe-fixes", ".")
    fixed = (tree / "x.py").read_bytes()
    assert b'NAME = "caf\xe9"\n' in fixed and b"x=None" in fixed
    assert lines_for(result, "x.py") == []


@pytest.mark.parametrize(
    "content, reason",
    [
        (b'NAME = "\xff\xfe"\n', r"x\.py:1:9: TL000 invalid utf-8 byte 0xff"),
        (b"x = 1\nNAME = 'caf\xe9'\n", r"x\.py:2:12: TL000 invalid utf-8 byte 0xe9"),
        (b"# coding: klingon\nx = 1\n", r"TL000 .*encoding.*klingon"),
        (b"# coding: latin-1\nx = '\xe9'\n\x00\n", r"x\.py:3:1: TL000 .*NUL bytes"),
        (b"x = 1\x00\n", r"TL000 .*NUL bytes"),
        (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8, r"TL000 "),
        (random.Random(7).randbytes(20_000), r"TL000 "),
        (b"\x89PNG\r\n\x1a\n" + random.Random(8).randbytes(4096), r"TL000 "),
    ],
    ids=["undecodable", "undecodable-row-2", "unknown-coding", "nul-latin1", "nul", "elf",
         "random-bytes", "png"],
)
def test_undecodable_and_binary_content_is_one_tl000(tree, content, reason):
    (tree / "x.py").write_bytes(content)
    assert_one_tl000(run("."), "x.py", reason)
    assert (tree / "x.py").read_bytes() == content
    run("--fix", "--unsafe-fixes", ".")
    assert (tree / "x.py").read_bytes() == content


def _subsequence(needles: list[bytes], haystack: list[bytes]) -> bool:
    it = iter(haystack)
    return all(any(n == h for h in it) for n in needles)


@pytest.mark.parametrize(
    "content",
    [
        b"import torch\r\n\r\n\r\ndef f(x=[]):\r\n    return x\r\n",
        b"import torch\r\n\n\r\ndef f(x=[]):\r\n    \"\"\"Doc.\"\"\"\n    return x\r\n# end\n",
        b"import torch\n\r\ndef f(x=[]):\n    y = 1\r\n    return x\n",
        b"def f(x=[]):\r\n    return x",  # no final newline
    ],
    ids=["crlf", "mixed-crlf-first", "mixed-lf-first", "crlf-no-final-newline"],
)
def test_line_endings_are_kept_by_fix(tree, content):
    (tree / "x.py").write_bytes(content)
    assert [line.split(" TL")[1][:3] for line in lines_for(run("."), "x.py")] == ["005"]
    result = run("--fix", "--unsafe-fixes", ".")
    assert lines_for(result, "x.py") == [] and result.exit_code == 0  # good.py fixed too
    fixed = (tree / "x.py").read_bytes()
    assert fixed != content and b"x=None" in fixed
    before = [line for line in content.splitlines(keepends=True) if b"x=[]" not in line]
    assert _subsequence(before, fixed.splitlines(keepends=True)), fixed
    if b"\n" not in content.replace(b"\r\n", b""):
        assert b"\n" not in fixed.replace(b"\r\n", b""), fixed  # all-CRLF stays all-CRLF
    compile(fixed, "x.py", "exec")


def test_tabs_are_linted_and_kept_by_fix(tree):
    content = b"def f(x=[]):\n\tif x:\n\t\treturn x\n\treturn None\n"
    (tree / "x.py").write_bytes(content)
    assert len(lines_for(run("."), "x.py")) == 1
    run("--fix", "--unsafe-fixes", ".")
    fixed = (tree / "x.py").read_bytes()
    assert b"\tif x:\n\t\treturn x\n\treturn None\n" in fixed
    compile(fixed, "x.py", "exec")  # the inserted `if x is None` matches the tab indentation


def test_inconsistent_tabs_and_spaces_is_tl000(tree):
    (tree / "x.py").write_bytes(b"def f(x=[]):\n\tif x:\n        return x\n")
    assert_one_tl000(run("."), "x.py", r"TL000 .*(syntax error|inconsistent|indent)")


def test_5mb_generated_file(tree):
    """A generated 5 MB data module is linted (CPython's parse only: no rule's trigger occurs)."""
    parts = ['"""Generated: do not edit."""\n\nTABLE = (\n']
    size, i = 0, 0
    while size < 5_000_000:
        row = f"    ({i}, {f'k{i}'!r}, {i % 97}.{i % 1000:03d}, \"row-{i}\"),\n"
        parts.append(row)
        size += len(row)
        i += 1
    parts.append(")\n")
    (tree / "gen.py").write_text("".join(parts))
    assert_clean(run("."), "gen.py")


NESTED = {
    "parentheses": "def f(x=[]):\n    return " + "(" * 1000 + "x" + ")" * 1000 + "\n",
    "calls": "def f(x=[]):\n    return " + "g(" * 1000 + "x" + ")" * 1000 + "\n",
    "lists": "def f(x=[]):\n    return " + "[" * 1000 + "]" * 1000 + "\n",
    "unary": "def f(x=[]):\n    return " + "-" * 1000 + "x\n",
    "not": "def f(x=[]):\n    return " + "not " * 1000 + "x\n",
    "lambdas": "def f(x=[]):\n    return " + "lambda: " * 1000 + "x\n",
    "sum-1000": "def f(x=[]):\n    return " + " + ".join(["x"] * 1000) + "\n",
    "sum-5000": "def f(x=[]):\n    return " + "+".join(["x"] * 5000) + "\n",
    "attributes": "def f(x=[]):\n    return x" + ".a" * 1000 + "\n",
    "subscripts": "def f(x=[]):\n    return x" + "[0]" * 1000 + "\n",
    "conditional": "def f(x=[]):\n    return " + " if x else ".join(["x"] * 1000) + "\n",
    "power": "def f(x=[]):\n    return " + "**".join(["x"] * 1000) + "\n",
    "torch-where": "import torch\ndef f(x=[]):\n    return "
    + "torch.where(x, " * 1000 + "x" + ", 0)" * 1000 + "\n",
    "indentation": "def f(x=[]):\n"
    + "".join(" " * (i + 1) + "if x:\n" for i in range(120)) + " " * 121 + "pass\n",
}


@pytest.mark.parametrize("name", sorted(NESTED))
def test_code_nested_1000_deep_never_raises(tree, name):
    """LibCST recurses per nesting level, and its parser is quadratic in chain length and
    aborts the process (out of memory) on brackets nested ~1,000 deep: the engine retries
    deep files on a large stack and refuses code nested beyond its limit with a TL000."""
    (tree / "x.py").write_text(NESTED[name])
    result = run(".")
    lines = lines_for(result, "x.py")
    assert_good_linted(result)
    if any(" TL000 " in line for line in lines):
        assert_one_tl000(result, "x.py", r"nested|parentheses|indentation|too deep")
    else:
        assert lines == ["x.py:1:9: TL005 Mutable default `[]` for parameter `x` is shared between calls"]
        result = run("--fix", "--unsafe-fixes", ".")
        assert lines_for(result, "x.py") == []
        assert (tree / "x.py").read_text().startswith("def f(x=None):")
    assert sys.getrecursionlimit() < 100_000  # the raised limit does not leak out


@pytest.mark.parametrize(
    "content, where",
    [
        (b"def f(:\n    pass\n", r"x\.py:1:\d+: TL000 syntax error"),
        (b"class A:\ndef f(x=[]):\n    pass\n", r"x\.py:2:\d+: TL000 syntax error"),
        (b'x = """never closed\n', r"x\.py:1:\d+: TL000 syntax error"),
        (b"x = (1,\n", r"x\.py:1:\d+: TL000 syntax error"),
    ],
    ids=["bad-def", "no-indent", "open-string", "open-paren"],
)
def test_syntax_error_is_one_tl000(tree, content, where):
    (tree / "x.py").write_bytes(content)
    assert_one_tl000(run("."), "x.py", where)


@pytest.mark.parametrize(
    "content",
    [
        b'print "hello"\n',
        b"def f(x=[]):\n    exec 'y = 1'\n",
        b"x = 0777\nraise ValueError, 'no'\n",
        b"def view(x=[]):\n    print >>sys.stderr, `x`\n",
    ],
    ids=["print", "exec", "octal-raise", "backticks"],
)
def test_python2_code_is_one_tl000(tree, content):
    (tree / "x.py").write_bytes(content)
    assert_one_tl000(run("."), "x.py", r"TL000 syntax error")


def test_python2_except_comma_is_valid_python_3_14(tree):
    """`except ValueError, e:` is Python 2, and also PEP 758 syntax (3.14: catches either
    name), which LibCST parses: it is linted, not reported."""
    (tree / "x.py").write_bytes(b"def f(x=[]):\n    try:\n        pass\n    except ValueError, e:\n        pass\n")
    assert [line.split(" ")[1] for line in lines_for(run("."), "x.py")] == ["TL005"]


# ----------------------------------------------------------------- the file system


def test_file_removed_between_discovery_and_reading(tree, monkeypatch):
    (tree / "gone.py").write_text(MUTABLE)
    discover = trainlint.discover.Discovery.files

    def files_then_remove(self, paths):
        found = discover(self, paths)
        (tree / "gone.py").unlink()
        return found

    monkeypatch.setattr(trainlint.discover.Discovery, "files", files_then_remove)
    assert_one_tl000(run("."), "gone.py", r"TL000 cannot read: No such file or directory")


def test_directory_named_like_a_python_file(tree):
    (tree / "pkg.py").mkdir()
    (tree / "pkg.py" / "inner.py").write_text(MUTABLE)
    result = run(".")
    assert lines_for(result, "pkg.py/inner.py")[0].startswith("pkg.py/inner.py:1:9: TL005")
    assert lines_for(result, "pkg.py") == [] and result.exit_code == 1
    explicit = run("pkg.py", "good.py")  # named on the command line: walked as a directory
    assert lines_for(explicit, "pkg.py/inner.py") and explicit.exit_code == 1
    (tree / "empty.py").mkdir()
    assert_clean(run("empty.py", "good.py"), "empty.py")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_loop_is_one_tl000_per_link(tree):
    os.symlink("loop_b.py", tree / "loop_a.py")
    os.symlink("loop_a.py", tree / "loop_b.py")
    os.symlink(".", tree / "self")  # a directory loop is not followed at all
    result = run(".")
    for name in ("loop_a.py", "loop_b.py"):
        assert_one_tl000(result, name, r"TL000 cannot read: Too many levels of symbolic links")
    assert not any(line.startswith("self/") for line in result.output.splitlines())
    assert_one_tl000(run("loop_a.py", "good.py"), "loop_a.py", r"symbolic links")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_dangling_symlink_is_one_tl000(tree):
    os.symlink("nowhere.py", tree / "dangling.py")
    assert_one_tl000(run("."), "dangling.py", r"TL000 cannot read: No such file or directory")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_out_of_the_tree_is_not_followed(tree, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.py").write_text(MUTABLE)
    (outside / "pkg").mkdir()
    (outside / "pkg" / "deep.py").write_text(MUTABLE)
    project = tree / "project"
    project.mkdir()
    (project / "good.py").write_text(GOOD)
    os.symlink(outside / "secret.py", project / "link.py")
    os.symlink(outside / "pkg", project / "linked_dir")
    os.symlink("good.py", project / "alias.py")  # inside the tree: linted
    result = run("project")
    shown = [line.split(":")[0] for line in result.output.splitlines() if ": TL" in line]
    assert shown == ["project/alias.py", "project/good.py"], result.output
    assert result.exit_code == 1
    # named explicitly on the command line, it is followed (the user asked for it)
    assert lines_for(run("project/link.py"), "project/link.py")[0].split(" ")[1] == "TL005"


def test_unreadable_file_is_one_tl000(tree, monkeypatch):
    """chmod 000 does not stop root (CI runs as root), so reading is also made to fail by
    monkeypatching Path.read_bytes: the test checks the report either way."""
    target = tree / "secret.py"
    target.write_text(MUTABLE)
    target.chmod(0)
    try:
        if os.geteuid() != 0:
            assert_one_tl000(run("."), "secret.py", r"TL000 cannot read: Permission denied")
        real = Path.read_bytes

        def read_bytes(self):
            if self.name == "secret.py":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
        assert_one_tl000(run("."), "secret.py", r"TL000 cannot read: Permission denied")
        assert_one_tl000(run("secret.py", "good.py"), "secret.py", r"Permission denied")
    finally:
        target.chmod(0o644)


def test_unreadable_directory_is_one_tl000_and_the_run_goes_on(tree, monkeypatch):
    """As in the file test above, listing is also made to fail by hand for root."""
    sub = tree / "locked"
    sub.mkdir()
    (sub / "inner.py").write_text(MUTABLE)
    sub.chmod(0)
    try:
        if os.geteuid() != 0:
            assert_one_tl000(run("."), "locked", r"TL000 cannot read the directory: Permission denied")
        real = os.scandir

        def scandir(path="."):
            if os.path.basename(os.fspath(path)) == "locked":
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)
        result = run(".")
        assert_good_linted(result)
        assert_one_tl000(result, "locked", r"TL000 cannot read the directory: Permission denied")
        assert "inner.py" not in result.output
        assert result.exit_code == 2
    finally:
        sub.chmod(0o755)


def test_many_bad_files_at_once_each_get_their_line(tree):
    (tree / "a_syntax.py").write_bytes(b"def (:\n")
    (tree / "b_binary.py").write_bytes(b"\x00\x01\x02\xff")
    (tree / "c_py2.py").write_bytes(b'print "x"\n')
    (tree / "d_ok.py").write_text(MUTABLE)
    (tree / "e_empty.py").write_bytes(b"")
    result = run(".")
    for name in ("a_syntax.py", "b_binary.py", "c_py2.py"):
        assert len(lines_for(result, name)) == 1 and " TL000 " in lines_for(result, name)[0]
    assert lines_for(result, "d_ok.py")[0].startswith("d_ok.py:1:9: TL005")
    assert result.exit_code == 2


# ----------------------------------------------------------------- bad config files
# (tests/test_cli.py covers an unknown key, an unknown code in `select`, `select` as a string,
# an unclosed table header and a non-boolean `unsafe-fixes`)


@pytest.mark.parametrize(
    "body, needles",
    [
        ('[tool.trainlint]\nselect = ["TL001"]\nselect = ["TL002"]\n', ["invalid TOML", "line 3"]),
        ('[tool.trainlint]\nselect = ["TL001"\n', ["invalid TOML"]),
        ("[tool.trainlint]\nselect = [\"TL001\"]\nx = \n", ["invalid TOML"]),
        ('[tool.trainlint]\nselect = ["\xff"]\n'.encode("latin-1"), ["cannot read", "utf-8"]),
        ("[tool]\ntrainlint = 3\n", ["[tool.trainlint] must be a table"]),
        ('[tool.trainlint]\nSelect = ["TL001"]\n', ["unknown key 'Select'", "expected one of", "select"]),
        ('[tool.trainlint]\nexclude = "build"\n', ["'exclude' must be a list of strings", "'build'"]),
        ('[tool.trainlint]\nignore = [1, 2]\n', ["'ignore' must be a list of strings"]),
        ('[tool.trainlint]\nextend-select = {TL001 = true}\n', ["'extend-select' must be a list of strings"]),
        ('[tool.trainlint]\nper-file-ignores = ["a.py"]\n', ["'per-file-ignores' must map glob patterns"]),
        ('[tool.trainlint.per-file-ignores]\n"a.py" = "TL001"\n', ["'per-file-ignores' must map"]),
        ('[tool.trainlint.per-file-ignores]\n"a.py" = ["TL999"]\n', ["per-file-ignores['a.py']", "'TL999'"]),
        ("[tool.trainlint]\nunsafe-fixes = 1\n", ["'unsafe-fixes' must be true or false", "got 1"]),
        ("[tool.trainlint]\nverify = 3\n", ["'verify' must be a table"]),
        ('[tool.trainlint]\nignore = ["TLX"]\n', ["unknown rule code or prefix 'TLX'"]),
        ('[tool.trainlint]\nextend-select = ["TL7"]\n', ["unknown rule code or prefix 'TL7'"]),
    ],
    ids=["duplicate-key", "open-list", "missing-value", "not-utf8", "table-not-table", "key-case",
         "exclude-str", "ignore-ints", "extend-select-table", "pfi-list", "pfi-str", "pfi-code",
         "unsafe-int", "verify-int", "ignore-code", "extend-select-code"],
)
def test_config_errors_exit_2_naming_file_key_and_expectation(tree, body, needles):
    (tree / "pyproject.toml").write_bytes(body if isinstance(body, bytes) else body.encode())
    result = run("good.py")
    assert result.exit_code == 2, result.output
    assert "pyproject.toml" in result.output and "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.mark.parametrize("key", ["select", "ignore", "extend-select"])
def test_unknown_code_names_the_key(tree, key):
    (tree / "pyproject.toml").write_text(f'[tool.trainlint]\n{key} = ["TL777"]\n')
    result = run("good.py")
    assert result.exit_code == 2 and repr(key) in result.output


def test_verify_table_wrong_type_is_reported_by_check(tree):
    (tree / "pyproject.toml").write_text('[tool.trainlint.verify]\ntimeout = "soon"\n')
    result = run("good.py")
    assert result.exit_code == 2 and "timeout" in result.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--config", "missing.toml"], "missing.toml: no such config file"),
        (["--config", "bad.toml"], "bad.toml: invalid TOML"),
        (["--config", "keys.toml"], "unknown key 'colour'"),
        (["--select", "TL999"], "'TL999'"),
        (["--ignore", "XYZ"], "'XYZ'"),
    ],
)
def test_config_file_and_flag_errors_exit_2(tree, args, needle):
    (tree / "bad.toml").write_text("select = [\n")
    (tree / "keys.toml").write_text('colour = "blue"\n')
    result = run(*args, "good.py")
    assert result.exit_code == 2 and needle in result.output, result.output
