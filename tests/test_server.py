"""`trainlint server` end to end: pytest-lsp starts it as a subprocess and speaks JSON-RPC.

Two servers run for the whole module: one for a client that takes pushed diagnostics
(`textDocument/publishDiagnostics`), one for a client that pulls them
(`textDocument/diagnostic`). Every code action is applied to its buffer and compared with
what the real `trainlint --fix` / `--add-noqa` command writes for the same text.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.protocol import default_converter
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from helpers import console_script
from trainlint import engine
from trainlint.registry import all_rules, select

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
FIXABLE = sorted([*FIXTURES.glob("seed/*.py"), *FIXTURES.glob("train/*.py")])


def recording_client() -> LanguageClient:
    """pytest-lsp's client, also keeping every publishDiagnostics and registration."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []
    client.registered = []

    def publish(ls: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        ls.published.append(params)
        ls.diagnostics[params.uri] = params.diagnostics

    def register(ls: LanguageClient, params: types.RegistrationParams) -> None:
        ls.registered.extend(params.registrations)

    register_lsp_features(client, {
        **DEFAULT_CLIENT_FEATURES,
        types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: publish,
        types.CLIENT_REGISTER_CAPABILITY: register,
    })
    return client


SERVER = ClientServerConfig(
    server_command=[console_script(), "server"], client_factory=recording_client
)
WAIT_S = 30  # a ceiling for the test not to hang; not a speed goal

SCHEDULER = """\
import torch


class WarmupScheduler:
    def __init__(self, optimizer, warmup=100):
        self.optimizer = optimizer
        self.warmup = warmup
        self.iters = 0

    def step(self):
        self.iters = 1
        lr = min(1.0, self.iters / self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
"""

LOSS = """\
import torch.nn.functional as F

BATCH_SIZE = 16


def margin_loss(logits, target, margins):
    batch_m = margins[target].view(16, 1)
    return F.cross_entropy(logits - batch_m, target)
"""


def trainlint(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [console_script(), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def capabilities(pull: bool) -> types.ClientCapabilities:
    return types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True),
            diagnostics=types.DiagnosticWorkspaceClientCapabilities(refresh_support=True) if pull else None,
        ),
        text_document=types.TextDocumentClientCapabilities(
            diagnostic=types.DiagnosticClientCapabilities() if pull else None,
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True),
        ),
        notebook_document=types.NotebookDocumentClientCapabilities(
            synchronization=types.NotebookDocumentSyncClientCapabilities()
        ),
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workspace")


@pytest_lsp.fixture(scope="module", config=SERVER)
async def client(lsp_client: LanguageClient, workspace: Path):
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=capabilities(pull=False), root_uri=workspace.as_uri())
    )
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(scope="module", config=SERVER)
async def pulling(lsp_client: LanguageClient, workspace: Path):
    await lsp_client.initialize_session(
        types.InitializeParams(capabilities=capabilities(pull=True), root_uri=workspace.as_uri())
    )
    yield
    await lsp_client.shutdown_session()


# ------------------------------------------------------------------ client helpers


async def published(client: LanguageClient, uri: str, version: int | None = None) -> types.PublishDiagnosticsParams:
    """The first diagnostics published for `uri` (for `version`, when given) that no
    earlier call returned."""
    seen = getattr(client, "seen", 0)
    for _ in range(WAIT_S * 100):
        for index in range(seen, len(client.published)):
            params = client.published[index]
            if params.uri == uri and (version is None or params.version == version):
                client.seen = index + 1
                return params
        await asyncio.sleep(0.01)
    raise AssertionError(f"no diagnostics published for {uri} (version {version})")


def open_document(client: LanguageClient, path: Path, text: str, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
        )
    )
    return uri


def replace_text(client: LanguageClient, uri: str, text: str, version: int) -> None:
    """A whole-document change (a client may always send one)."""
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def close_document(client: LanguageClient, uri: str) -> None:
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


async def opened(client: LanguageClient, path: Path, text: str) -> tuple[str, list[types.Diagnostic]]:
    uri = open_document(client, path, text)
    return uri, list((await published(client, uri, 1)).diagnostics)


async def actions(client: LanguageClient, uri: str, diagnostic: types.Diagnostic | None = None,
                  only: list[str] | None = None) -> list[types.CodeAction]:
    whole = types.Range(start=types.Position(line=0, character=0), end=types.Position(line=10**6, character=0))
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range if diagnostic else whole,
            context=types.CodeActionContext(diagnostics=[diagnostic] if diagnostic else [], only=only),
        )
    )
    return list(result or [])


def apply(text: str, edit: types.WorkspaceEdit, uri: str) -> str:
    """The text after a workspace edit (UTF-16 positions, edits on the original text)."""
    lines = re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)

    def offset(position: types.Position) -> int:
        before = sum(len(line) for line in lines[: position.line])
        line = lines[position.line] if position.line < len(lines) else ""
        units = 0
        for index, char in enumerate(line):
            if units >= position.character:
                return before + index
            units += 2 if ord(char) > 0xFFFF else 1
        return before + len(line)

    edits = sorted(edit.changes[uri], key=lambda e: offset(e.range.start), reverse=True)
    for e in edits:
        text = text[: offset(e.range.start)] + e.new_text + text[offset(e.range.end):]
    return text


def found(diagnostics: list[types.Diagnostic]) -> list[tuple[int, int, str]]:
    """(row, column, code), 1-based like trainlint's output."""
    return sorted((d.range.start.line + 1, d.range.start.character + 1, str(d.code)) for d in diagnostics)


def cli_found(path: Path, cwd: Path) -> list[tuple[int, int, str]]:
    report = json.loads(trainlint("--no-cache", "--output-format", "json", str(path), cwd=cwd).stdout)
    return sorted((d["location"]["row"], d["location"]["column"], d["code"]) for d in report)


# --------------------------------------------------------------------------- diagnostics


async def test_open_publishes_what_the_command_line_reports(client: LanguageClient, workspace: Path):
    folder = workspace / "open"
    folder.mkdir()
    path = folder / "ldam_train.py"
    text = (FIXTURES / "seed" / "ldam_train.py").read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    uri, diagnostics = await opened(client, path, text)
    assert diagnostics and found(diagnostics) == cli_found(path, folder)
    tl002 = next(d for d in diagnostics if d.code == "TL002")
    assert tl002.source == "trainlint"
    assert tl002.severity == types.DiagnosticSeverity.Warning
    assert tl002.code_description.href.endswith("rules.md#tl002-hardcoded-batch-size")
    assert "\nhelp: " in tl002.message and tl002.data["help"] in tl002.message
    close_document(client, uri)
    assert not (await published(client, uri)).diagnostics


async def test_change_is_linted_from_the_unsaved_buffer_and_save_relints(client: LanguageClient, workspace: Path):
    path = workspace / "change" / "loss.py"
    path.parent.mkdir()
    path.write_text("", encoding="utf-8")  # on disk: nothing to report
    uri, diagnostics = await opened(client, path, "x = 1\n")
    assert not diagnostics
    replace_text(client, uri, LOSS, 2)
    assert [d.code for d in (await published(client, uri, 2)).diagnostics] == ["TL002"]
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert [d.code for d in (await published(client, uri, 2)).diagnostics] == ["TL002"]
    close_document(client, uri)


async def test_a_burst_of_changes_publishes_only_the_last_version(client: LanguageClient, workspace: Path):
    path = workspace / "burst.py"
    uri, _ = await opened(client, path, "")
    for version in range(2, 7):
        replace_text(client, uri, LOSS if version % 2 == 0 else SCHEDULER, version)
    params = await published(client, uri)
    assert params.version == 6  # versions 2-5 were cancelled while they waited
    assert [d.code for d in params.diagnostics] == ["TL002"]
    close_document(client, uri)


async def test_syntax_error_mid_edit_is_a_tl000_and_the_server_keeps_serving(client: LanguageClient, workspace: Path):
    path = workspace / "half_typed.py"
    uri, diagnostics = await opened(client, path, SCHEDULER)
    assert [d.code for d in diagnostics] == ["TL001"]
    half = SCHEDULER.replace("    def step(self):", "    def step(self, ")
    replace_text(client, uri, half, 2)
    (error,) = (await published(client, uri, 2)).diagnostics
    assert error.code == "TL000" and error.severity == types.DiagnosticSeverity.Error
    assert error.message.startswith("syntax error")
    assert await actions(client, uri) == []  # still answering, nothing to offer
    replace_text(client, uri, SCHEDULER, 3)
    assert [d.code for d in (await published(client, uri, 3)).diagnostics] == ["TL001"]
    close_document(client, uri)


def five_thousand_lines() -> str:
    """A module of 1,000 small functions with the LOSS bug at the top and at the end."""
    helpers = "".join(f"def helper_{i}(x):\n    y = x * {i}\n    return y + 1\n\n\n" for i in range(1000))
    return LOSS + "\n\n" + helpers + LOSS.split("\n\n\n", 1)[1].replace("margin_loss", "margin_loss_again")


async def test_a_5000_line_module(client: LanguageClient, workspace: Path):
    text = five_thousand_lines()
    assert len(text.splitlines()) > 5000
    uri, diagnostics = await opened(client, workspace / "big_module.py", text)
    assert found(diagnostics) == [
        (row, line.index("16, 1") + 1, "TL002")
        for row, line in enumerate(text.splitlines(), start=1) if ".view(16, 1)" in line
    ]
    replace_text(client, uri, text.replace("view(16, 1)", "view(-1, 1)", 1), 2)
    assert [d.range.start.line + 1 for d in (await published(client, uri, 2)).diagnostics] == [len(text.splitlines()) - 1]
    close_document(client, uri)


async def test_pull_diagnostics(pulling: LanguageClient, workspace: Path):
    path = workspace / "pulled.py"
    uri = open_document(pulling, path, SCHEDULER)
    report = await pulling.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert report.kind == "full" and [d.code for d in report.items] == ["TL001"]
    assert report.items[0].code_description.href.endswith("#tl001-scheduler-counter-reset")
    replace_text(pulling, uri, LOSS, 2)
    report = await pulling.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert [d.code for d in report.items] == ["TL002"]
    assert uri not in pulling.diagnostics  # a pulling client is not pushed to as well
    close_document(pulling, uri)


# --------------------------------------------------------------------------- code actions


FORWARD_CALLED = """\
import torch.nn as nn


class Net(nn.Module):
    def forward(self, x):
        return x


net = Net()
y = net.forward(1)
"""


SOFTMAX_WITHOUT_DIM = """\
import torch.nn.functional as F


def head(x):
    flat = x.view(x.size(0), -1)
    return F.log_softmax(flat)
"""

ASYNC_KEYWORD = """\
import torch

x = torch.zeros(3)
y = x.cuda(async=True)
"""


def buffers_with_fixes() -> dict[str, str]:
    """file name -> code: every example of a rule with a fix, and one-fix TL112, TL126 and
    TL128 cases (those rules' own examples each hold several fixes)."""
    examples = {
        f"{rule.code.lower()}_{n}.py": example.code
        for rule in all_rules() if rule.fix_applicability is not None
        for n, example in enumerate(rule.INVALID)
        if example.fixed is not None
    }
    return {
        **examples,
        "tl112_single.py": FORWARD_CALLED,
        "tl126_single.py": SOFTMAX_WITHOUT_DIM,
        "tl128_single.py": ASYNC_KEYWORD,
    }


async def test_each_fix_equals_trainlint_fix(client: LanguageClient, workspace: Path):
    """A buffer with one fixable diagnostic: applying that diagnostic's fix gives what
    `trainlint --fix` writes (unsafe fixes on, in the folder's pyproject.toml)."""
    folder = workspace / "examples"
    folder.mkdir()
    (folder / "pyproject.toml").write_text('[tool.trainlint]\nextend-select = ["TL9"]\nunsafe-fixes = true\n')
    buffers = buffers_with_fixes()
    for name, code in buffers.items():
        (folder / name).write_text(code, encoding="utf-8")
    reference = folder / "reference"
    shutil.copytree(folder, reference)
    trainlint("--fix", "--no-cache", ".", cwd=reference)
    compared = set()
    for name, code in buffers.items():
        uri, _ = await opened(client, folder / name, code)
        fixes = [a for a in await actions(client, uri) if a.title.startswith("Fix ")]
        if len(fixes) == 1:
            (engine_diagnostic,) = [
                d for d in engine.lint(name, code.encode(), select(None, ["TL9"], [])).diagnostics if d.fix
            ]
            assert fixes[0].title.endswith(f"({engine_diagnostic.fix.applicability.value} fix)")
            assert apply(code, fixes[0].edit, uri) == (reference / name).read_text(encoding="utf-8"), name
            compared.add(fixes[0].diagnostics[0].code)
        close_document(client, uri)
    with_fixes = {r.code for r in all_rules() if r.fix_applicability is not None}
    assert compared == with_fixes, f"no one-fix buffer for {with_fixes - compared}"


@pytest.mark.parametrize("unsafe", [False, True], ids=["safe", "unsafe-fixes"])
async def test_fix_all_equals_trainlint_fix(client: LanguageClient, workspace: Path, unsafe: bool):
    """`source.fixAll.trainlint` on each fixture gives what `trainlint --fix` writes,
    with `unsafe-fixes` off and on in [tool.trainlint]."""
    folder = workspace / f"fix_all_{unsafe}"
    folder.mkdir()
    (folder / "pyproject.toml").write_text(f"[tool.trainlint]\nunsafe-fixes = {str(unsafe).lower()}\n")
    for path in FIXABLE:
        shutil.copy(path, folder / path.name)
    reference = folder / "reference"
    shutil.copytree(folder, reference)
    trainlint("--fix", "--no-cache", ".", cwd=reference)
    changed = 0
    for path in FIXABLE:
        text = path.read_text(encoding="utf-8")
        expected = (reference / path.name).read_text(encoding="utf-8")
        uri, _ = await opened(client, folder / path.name, text)
        fix_all = await actions(client, uri, only=[types.CodeActionKind.SourceFixAll])
        if expected == text:
            assert fix_all == [], path.name
        else:
            changed += 1
            assert [a.kind for a in fix_all] == ["source.fixAll.trainlint"]
            assert ("unsafe" in fix_all[0].title) == unsafe
            assert apply(text, fix_all[0].edit, uri) == expected, path.name
            if unsafe:
                assert expected == path.with_name(path.name + ".fixed").read_text(encoding="utf-8")
        assert await actions(client, uri, only=["refactor"]) == []
        close_document(client, uri)
    # every fixture whose golden file differs from it; five have safe fixes (ldam_train,
    # amp_loop, attention_rnn, classic_loop, legacy)
    goldens = sum(p.read_text() != p.with_name(p.name + ".fixed").read_text() for p in FIXABLE)
    assert changed == (goldens if unsafe else 5)


async def test_suppress_with_noqa_equals_add_noqa(client: LanguageClient, workspace: Path):
    folder = workspace / "noqa"
    folder.mkdir()
    cases = {
        "scheduler.py": SCHEDULER,
        "loss.py": LOSS,
        "existing_noqa.py": LOSS.replace("view(16, 1)", "view(16, 1)  # noqa: E501"),
        "in_string.py": 'import torch\ndef f(steps=[], doc="""\n"""):\n    steps.sort()\n',
    }
    for name, code in cases.items():
        (folder / name).write_text(code, encoding="utf-8")
        uri, diagnostics = await opened(client, folder / name, code)
        assert diagnostics, name
        trainlint("--add-noqa", "--no-cache", name, cwd=folder)
        expected = (folder / name).read_text(encoding="utf-8")
        if len(diagnostics) == 1:
            (noqa,) = [a for a in await actions(client, uri, diagnostics[0]) if a.title.startswith("Suppress")]
            assert noqa.title == f"Suppress with # noqa: {diagnostics[0].code}"
            assert apply(code, noqa.edit, uri) == expected, name
        else:  # one action at a time, each on the diagnostics of the text it left
            text, version = code, 1
            while diagnostics:
                (noqa,) = [a for a in await actions(client, uri, diagnostics[0]) if a.title.startswith("Suppress")]
                text, version = apply(text, noqa.edit, uri), version + 1
                replace_text(client, uri, text, version)
                diagnostics = list((await published(client, uri, version)).diagnostics)
            assert text == expected, name
        close_document(client, uri)


# --------------------------------------------------------------------------- hover, settings


async def test_hover_shows_the_rule_documentation(client: LanguageClient, workspace: Path):
    path = workspace / "hover.py"
    uri, (diagnostic,) = await opened(client, path, SCHEDULER)
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=diagnostic.range.start)
    )
    assert hover.contents.kind == types.MarkupKind.Markdown
    assert hover.contents.value.startswith("# TL001 scheduler-counter-reset")
    assert "## What it does" in hover.contents.value
    elsewhere = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=0))
    )
    assert elsewhere is None
    close_document(client, uri)


async def test_settings_are_reloaded_when_pyproject_changes(client: LanguageClient, workspace: Path):
    folder = workspace / "project"
    (folder / "tests").mkdir(parents=True)
    pyproject = folder / "pyproject.toml"
    pyproject.write_text("[tool.trainlint]\n", encoding="utf-8")
    assert [r.method for r in client.registered] == [types.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    uri, diagnostics = await opened(client, folder / "tests" / "test_loss.py", LOSS)
    assert [d.code for d in diagnostics] == ["TL002"]

    pyproject.write_text('[tool.trainlint.per-file-ignores]\n"tests/*" = ["TL002"]\n', encoding="utf-8")
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=pyproject.as_uri(), type=types.FileChangeType.Changed)]
        )
    )
    assert not (await published(client, uri)).diagnostics

    pyproject.write_text('[tool.trainlint]\nselect = ["TL9"]\nbad-key = 1\n', encoding="utf-8")
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=pyproject.as_uri(), type=types.FileChangeType.Changed)]
        )
    )
    (error,) = (await published(client, uri)).diagnostics
    assert error.code == "TL000" and "bad-key" in error.message
    close_document(client, uri)


async def test_notebook_cells_get_cell_relative_diagnostics(client: LanguageClient, workspace: Path):
    notebook = (workspace / "explore.ipynb").as_uri()
    cells = ["import torch.nn.functional as F\n", "%matplotlib inline", "# notes", LOSS.split("\n\n\n", 1)[1]]
    kinds = [types.NotebookCellKind.Code, types.NotebookCellKind.Code, types.NotebookCellKind.Markup,
             types.NotebookCellKind.Code]
    uris = [f"{notebook}#cell{i}" for i in range(len(cells))]
    client.notebook_document_did_open(
        types.DidOpenNotebookDocumentParams(
            notebook_document=types.NotebookDocument(
                uri=notebook, notebook_type="jupyter-notebook", version=1,
                cells=[types.NotebookCell(kind=k, document=u) for k, u in zip(kinds, uris)],
            ),
            cell_text_documents=[
                types.TextDocumentItem(uri=u, language_id="python" if k == types.NotebookCellKind.Code else "markdown",
                                       version=1, text=t)
                for u, k, t in zip(uris, kinds, cells)
            ],
        )
    )
    params = await published(client, uris[3])
    (diagnostic,) = params.diagnostics
    assert diagnostic.code == "TL002"
    assert diagnostic.range.start.line == 1  # the second line of the cell, not of the notebook
    assert diagnostic.range.start.character == cells[3].splitlines()[1].index("16, 1")

    # the cell's fix gives the cell `trainlint --fix` writes into the .ipynb file
    fixes = [a for a in await actions(client, uris[3], diagnostic) if a.title.startswith("Fix ")]
    (fix,) = fixes
    document = {
        "cells": [{"cell_type": "code" if k == types.NotebookCellKind.Code else "markdown", "metadata": {},
                   "source": t, **({"outputs": [], "execution_count": None} if k == types.NotebookCellKind.Code else {})}
                  for k, t in zip(kinds, cells)],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }
    ipynb = workspace / "explore.ipynb"
    ipynb.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    trainlint("--fix", "--unsafe-fixes", "--no-cache", ipynb.name, cwd=workspace)
    fixed = json.loads(ipynb.read_text(encoding="utf-8"))["cells"][3]["source"]
    assert apply(cells[3], fix.edit, uris[3]) == "".join(fixed) != cells[3]
    client.notebook_document_did_close(
        types.DidCloseNotebookDocumentParams(
            notebook_document=types.NotebookDocumentIdentifier(uri=notebook),
            cell_text_documents=[types.TextDocumentIdentifier(uri=u) for u in uris],
        )
    )


async def test_verify_command_runs_the_harness(client: LanguageClient, workspace: Path):
    path = workspace / "verify" / "scheduler.py"
    uri, _ = await opened(client, path, SCHEDULER)
    verdicts = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="trainlint.verify", arguments=[uri])
    )
    assert [v["code"] for v in verdicts] == ["TL001"]
    assert verdicts[0]["verdict"] in ("confirmed", "refuted", "inconclusive") and verdicts[0]["evidence"]
    assert verdicts[0]["filename"] == str(path)
    close_document(client, uri)
