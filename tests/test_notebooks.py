"""Jupyter notebooks: cells linted as one module, locations per cell, fixes written back."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from trainlint.cli import main

TORCH_CELL = ["import torch\n", "%matplotlib inline\n", "!pip install tqdm"]
BUGGY_CELL = [
    "def pick(x, steps=[]):\n",
    "    for _ in range(2):\n",
    "        !nvidia-smi\n",
    "    mask = torch.zeros(3, dtype=torch.uint8)\n",
    "    return torch.where(mask, x, x)",
]
OUTPUT = {"name": "stdout", "output_type": "stream", "text": ["hello \u00e9\n"]}


def notebook(cells=None, **layout) -> str:
    cells = cells or [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Notes\n", "uint8 masks"]},
        {"cell_type": "code", "execution_count": 1, "metadata": {"tags": ["setup"]},
         "outputs": [OUTPUT], "source": TORCH_CELL},
        {"cell_type": "code", "execution_count": 2, "metadata": {}, "outputs": [],
         "source": BUGGY_CELL},
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
         "source": "%%bash\ndef broken(:\n"},
    ]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    options = {"indent": 1, "sort_keys": True, "ensure_ascii": False, **layout}
    return json.dumps(nb, **options) + "\n"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "explore.ipynb").write_text(notebook(), encoding="utf-8")
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, ["--no-cache", *args])


def test_diagnostics_name_the_cell(project):
    result = run(".", "--output-format", "concise")
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert lines[:-1] == [
        "explore.ipynb:cell 3:1:19: TL005 Mutable default `[]` for parameter `steps` is shared between calls",
        "explore.ipynb:cell 3:4:12: TL003 [*] " + lines[1].split(" [*] ", 1)[1],
        "explore.ipynb:cell 3:5:24: TL010 " + lines[2].split(" TL010 ", 1)[1],
    ]


def test_full_format_shows_the_cell_line(project):
    out = run("explore.ipynb").output
    assert " 4 |     mask = torch.zeros(3, dtype=torch.uint8)\n" in out
    assert "   |            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n" in out


def test_json_has_a_cell_field(project):
    result = run("explore.ipynb", "--output-format", "json")
    found = json.loads(result.output)
    assert {(d["cell"], d["location"]["row"], d["code"]) for d in found} == {
        (3, 1, "TL005"), (3, 4, "TL003"), (3, 5, "TL010"),
    }


def test_fix_changes_only_the_fixed_source_lines(project):
    path = project / "explore.ipynb"
    before = path.read_bytes()
    result = run("explore.ipynb", "--fix")
    assert result.exit_code == 1, result.output  # TL005 (unsafe fix) and TL010 remain
    after = path.read_bytes()
    old_lines, new_lines = before.decode().splitlines(), after.decode().splitlines()
    changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
    assert len(old_lines) == len(new_lines)
    assert changed == [(
        '    "    mask = torch.zeros(3, dtype=torch.uint8)\\n",',
        '    "    mask = torch.zeros(3, dtype=torch.bool)\\n",',
    )]
    nb = json.loads(after)
    assert nb["cells"][1]["source"] == TORCH_CELL  # magics kept as they were
    assert nb["cells"][2]["source"][2] == "        !nvidia-smi\n"
    assert nb["cells"][1]["outputs"] == [OUTPUT]
    assert nb["cells"][3]["source"] == "%%bash\ndef broken(:\n"
    assert run("explore.ipynb", "--fix").exit_code == 1
    assert path.read_bytes() == after, "fixing twice differs from fixing once"


def test_remaining_diagnostics_after_a_line_changing_fix_point_into_the_fixed_cell(project):
    result = run("explore.ipynb", "--fix", "--unsafe-fixes", "--output-format", "concise")
    fixed = json.loads((project / "explore.ipynb").read_text())["cells"][2]["source"]
    assert fixed[:3] == ["def pick(x, steps=None):\n", "    if steps is None:\n", "        steps = []\n"]
    (line,) = result.output.splitlines()[:-1]
    assert line.startswith("explore.ipynb:cell 3:7:24: TL010 ")
    assert fixed[6].startswith("    return torch.where(mask")


def test_unknown_json_layout_is_refused_untouched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "compact.ipynb"
    path.write_text(notebook(indent=None), encoding="utf-8")  # one line: no known layout
    before = path.read_bytes()
    result = run("compact.ipynb", "--fix", "--output-format", "concise")
    assert result.exit_code == 2
    assert "compact.ipynb:1:1: TL000 cannot write the fixes: the notebook's JSON layout" in result.output
    assert path.read_bytes() == before


@pytest.mark.parametrize("content, reason", [
    ("{not json", "invalid JSON at line 1 column 2"),
    ('{"cells": 3}', "no list of 'cells'"),
    ('{"cells": [{"cell_type": "code", "source": 7}]}', "cell 1 has a 'source' that is not text"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_invalid_notebooks_are_tl000(tmp_path, monkeypatch, content, reason):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    (tmp_path / "good.py").write_text("def f(x=[]):\n    pass\n")
    result = run(".", "--output-format", "concise")
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0].startswith("bad.ipynb:1:1: TL000 not a notebook: ") and reason in lines[0]
    assert lines[1].startswith("good.py:1:9: TL005 ")  # the other files are still linted


def test_syntax_error_in_a_cell_is_located_in_that_cell(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells = [
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": ["import torch\n"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": ["x = 1\n", "def f(:\n"]},
    ]
    (tmp_path / "s.ipynb").write_text(notebook(cells))
    result = run("s.ipynb", "--output-format", "concise")
    assert result.exit_code == 2
    assert result.output.startswith("s.ipynb:cell 2:2:")
    assert " TL000 " in result.output


def test_notebook_cache_round_trip(project):
    first = CliRunner().invoke(main, ["explore.ipynb", "--output-format", "json"]).output
    second = CliRunner().invoke(main, ["explore.ipynb", "--output-format", "json"]).output
    assert (project / ".trainlint_cache").is_dir()
    assert first == second and '"cell": 3' in second
