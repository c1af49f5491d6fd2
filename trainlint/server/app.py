"""The language server: documents in, diagnostics, code actions and hovers out (pygls).

Linting runs in a worker thread, so the server keeps answering while a file is linted.
Each change schedules a lint of that document after a short pause (`DEBOUNCE_S`); a
newer change cancels a lint still waiting, and a lint whose document changed while it
ran is dropped instead of published. Clients that pull diagnostics
(`textDocument/diagnostic`) get no pushed ones, so no editor shows them twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from trainlint import __version__
from trainlint.config import ConfigError
from trainlint.docs import page
from trainlint.registry import SelectorError, all_rules
from trainlint.rule import Applicability
from trainlint.server import convert
from trainlint.server.checking import Checked, SettingsCache, check, check_notebook, fix_all, with_noqa

logger = logging.getLogger(__name__)

DEBOUNCE_S = 0.05
FIX_ALL = "source.fixAll.trainlint"
VERIFY_COMMAND = "trainlint.verify"
VERIFY_TIMEOUT_S = 600


class TrainlintServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "trainlint",
            __version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            notebook_document_sync=types.NotebookDocumentSyncOptions(
                notebook_selector=[
                    types.NotebookDocumentFilterWithCells(
                        cells=[types.NotebookCellLanguage(language="python")], notebook="*"
                    )
                ],
                save=True,
            ),
        )
        self.settings = SettingsCache()
        self.checked: dict[str, Checked] = {}  # uri (of a document or notebook cell) -> last lint
        self.versions: dict[str, int | None] = {}  # uri -> the version `checked` holds
        self.pending: dict[str, asyncio.Task] = {}  # uri (document or notebook) -> scheduled lint
        self.linter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainlint-lint")

    # ------------------------------------------------------------------ documents

    @property
    def pulls(self) -> bool:
        """Whether the client asks for diagnostics itself (`textDocument/diagnostic`)."""
        capabilities = self.client_capabilities.text_document
        return capabilities is not None and capabilities.diagnostic is not None

    def document_version(self, uri: str) -> int | None:
        notebook = self.workspace.get_notebook_document(notebook_uri=uri)
        if notebook is not None:
            return notebook.version
        document = self.workspace.text_documents.get(uri)
        return document.version if document is not None else None

    def schedule(self, uri: str, delay: float = 0.0) -> asyncio.Task:
        """(Re)start the lint of a document or notebook; the one waiting is cancelled."""
        stale = self.pending.pop(uri, None)
        if stale is not None:
            stale.cancel()
        task = asyncio.get_running_loop().create_task(self._lint_later(uri, delay))
        self.pending[uri] = task
        task.add_done_callback(lambda t: self.pending.pop(uri, None) if self.pending.get(uri) is t else None)
        return task

    async def _lint_later(self, uri: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        version = self.document_version(uri)
        notebook = self.workspace.get_notebook_document(notebook_uri=uri)
        loop = asyncio.get_running_loop()
        if notebook is not None:
            cells = [
                (cell.document, "code" if cell.kind == types.NotebookCellKind.Code else "markdown",
                 self.workspace.get_text_document(cell.document).source)
                for cell in notebook.cells
            ]
            results = await loop.run_in_executor(
                self.linter, check_notebook, _path(uri), [(k, t) for _, k, t in cells], self.settings
            )
            if self.document_version(uri) != version:
                return  # the notebook changed meanwhile: a newer lint is scheduled
            for index, (cell_uri, _, text) in enumerate(cells):
                cell_version = self.workspace.get_text_document(cell_uri).version
                self._store(cell_uri, version, results.get(index, Checked(text, [])), cell_version)
            return
        document = self.workspace.text_documents.get(uri)
        if document is None or not self.is_python(uri):
            return
        checked = await loop.run_in_executor(self.linter, check, _path(uri), document.source, self.settings)
        if self.document_version(uri) == version:
            self._store(uri, version, checked)

    def _store(self, uri: str, version: int | None, checked: Checked, shown: int | None = None) -> None:
        """Keep a lint of `version` of the document (or of the cell's notebook) and push it;
        `shown` is the cell's own version, for a cell."""
        self.checked[uri] = checked
        self.versions[uri] = version
        if not self.pulls:
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
                uri=uri, diagnostics=self.lsp_diagnostics(uri), version=version if shown is None else shown
            ))

    def lsp_diagnostics(self, uri: str) -> list[types.Diagnostic]:
        checked = self.checked[uri]
        positions = self.positions(checked.text)
        return [convert.diagnostic(d, positions) for d in checked.diagnostics]

    def positions(self, text: str) -> convert.Positions:
        return convert.Positions(text, self.workspace.position_codec)

    async def current(self, uri: str) -> Checked | None:
        """The lint of the document's (or cell's) current text, linting now if needed."""
        owner = self.owner(uri)
        if self.versions.get(uri, -1) != self.document_version(owner) or uri not in self.checked:
            task = self.pending.get(owner)
            if task is None or task.done():
                task = self.schedule(owner)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():
                    raise  # this request itself was cancelled
                return await self.current(uri)  # a newer change replaced that lint
        return self.checked.get(uri)

    def is_python(self, uri: str) -> bool:
        document = self.workspace.text_documents.get(uri)
        return document is not None and (document.language_id == "python" or uri.endswith((".py", ".pyi")))

    def owner(self, uri: str) -> str:
        """The notebook a cell belongs to; a plain document owns itself."""
        notebook = self.workspace.get_notebook_document(cell_uri=uri)
        return notebook.uri if notebook is not None else uri

    def forget(self, uri: str) -> None:
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        for key in [uri, *self._cells(uri)]:
            self.checked.pop(key, None)
            self.versions.pop(key, None)
            if not self.pulls:
                self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=key, diagnostics=[]))

    def _cells(self, uri: str) -> list[str]:
        notebook = self.workspace.get_notebook_document(notebook_uri=uri)
        return [cell.document for cell in notebook.cells] if notebook is not None else []

    def settings_changed(self) -> None:
        self.settings.forget()
        if self.pulls:
            refresh = self.client_capabilities.workspace
            if refresh and refresh.diagnostics and refresh.diagnostics.refresh_support:
                self.workspace_diagnostic_refresh(None)
            self.checked.clear()
            self.versions.clear()
            return
        for uri in self.workspace.notebook_documents:
            self.schedule(uri)
        for uri in self.workspace.text_documents:
            if self.owner(uri) == uri and self.is_python(uri):
                self.schedule(uri)


server = TrainlintServer()


def _path(uri: str) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path.cwd() / (Path(unquote(parsed.path)).name or "untitled.py")


def _is_config(uri: str) -> bool:
    return uri.endswith("/pyproject.toml")


# --------------------------------------------------------------------------- handlers


@server.feature(types.INITIALIZED)
async def initialized(ls: TrainlintServer, params: types.InitializedParams) -> None:
    watched = ls.client_capabilities.workspace and ls.client_capabilities.workspace.did_change_watched_files
    if watched and watched.dynamic_registration:
        options = types.DidChangeWatchedFilesRegistrationOptions(
            watchers=[types.FileSystemWatcher(glob_pattern="**/pyproject.toml")]
        )
        registration = types.Registration(
            id="trainlint-pyproject", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES, register_options=options
        )
        try:
            await ls.client_register_capability_async(types.RegistrationParams(registrations=[registration]))
        except Exception:  # noqa: BLE001 - settings are still re-read when the file's mtime changes
            logger.warning("the client refused to watch pyproject.toml files", exc_info=True)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: TrainlintServer, params: types.DidOpenTextDocumentParams) -> None:
    uri = params.text_document.uri
    if ls.owner(uri) == uri and ls.is_python(uri):
        ls.schedule(uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: TrainlintServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    if ls.owner(uri) == uri and ls.is_python(uri):
        ls.schedule(uri, DEBOUNCE_S)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: TrainlintServer, params: types.DidSaveTextDocumentParams) -> None:
    uri = params.text_document.uri
    if _is_config(uri):
        ls.settings_changed()
    elif ls.owner(uri) == uri and ls.is_python(uri):
        ls.schedule(uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: TrainlintServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.forget(params.text_document.uri)


@server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
def notebook_open(ls: TrainlintServer, params: types.DidOpenNotebookDocumentParams) -> None:
    ls.schedule(params.notebook_document.uri)


@server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
def notebook_change(ls: TrainlintServer, params: types.DidChangeNotebookDocumentParams) -> None:
    uri = params.notebook_document.uri
    structure = params.change.cells.structure if params.change.cells else None
    for closed in (structure.did_close or []) if structure else []:
        ls.forget(closed.uri)
    ls.schedule(uri, DEBOUNCE_S)


@server.feature(types.NOTEBOOK_DOCUMENT_DID_SAVE)
def notebook_save(ls: TrainlintServer, params: types.DidSaveNotebookDocumentParams) -> None:
    ls.schedule(params.notebook_document.uri)


@server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
def notebook_close(ls: TrainlintServer, params: types.DidCloseNotebookDocumentParams) -> None:
    for cell in params.cell_text_documents:
        ls.forget(cell.uri)
    ls.forget(params.notebook_document.uri)


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def watched_files(ls: TrainlintServer, params: types.DidChangeWatchedFilesParams) -> None:
    if any(_is_config(change.uri) for change in params.changes):
        ls.settings_changed()


@server.feature(
    types.TEXT_DOCUMENT_DIAGNOSTIC,
    types.DiagnosticOptions(identifier="trainlint", inter_file_dependencies=False, workspace_diagnostics=False),
)
async def pull_diagnostics(ls: TrainlintServer, params: types.DocumentDiagnosticParams):
    uri = params.text_document.uri
    checked = await ls.current(uri) if ls.is_python(uri) else None
    items = ls.lsp_diagnostics(uri) if checked is not None else []
    return types.RelatedFullDocumentDiagnosticReport(items=items)


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: TrainlintServer, params: types.HoverParams) -> types.Hover | None:
    uri = params.text_document.uri
    checked = await ls.current(uri)
    if checked is None:
        return None
    positions = ls.positions(checked.text)
    at = _key(params.position)
    codes = []
    for d in checked.diagnostics:
        span = positions.range(d.row, d.column, d.end_row, d.end_column)
        if _key(span.start) <= at <= _key(span.end) and d.code not in codes:
            codes.append(d.code)
    rules = {rule.code: rule for rule in all_rules()}
    pages = [page(rules[code]) for code in codes if code in rules]
    if not pages:
        return None
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="\n---\n\n".join(pages)))


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=False
    ),
)
async def code_actions(ls: TrainlintServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    uri = params.text_document.uri
    checked = await ls.current(uri)
    if checked is None:
        return []
    only = params.context.only
    positions = ls.positions(checked.text)
    actions: list[types.CodeAction] = []
    if _wanted(types.CodeActionKind.QuickFix, only):
        first, last = _key(params.range.start), _key(params.range.end)
        for d in checked.diagnostics:
            lsp = convert.diagnostic(d, positions)
            if d.is_error or not (_key(lsp.range.start) <= last and first <= _key(lsp.range.end)):
                continue
            if d.fix is not None and d.edits:
                safety = "safe" if d.fix.applicability is Applicability.SAFE else "unsafe"
                actions.append(types.CodeAction(
                    title=f"Fix {d.code}: {d.fix.message} ({safety} fix)",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[lsp],
                    is_preferred=d.fix.applicability is Applicability.SAFE,
                    edit=_edit(uri, convert.text_edits(d.edits, positions)),
                ))
            actions.append(types.CodeAction(
                title=f"Suppress with # noqa: {d.code}",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[lsp],
                edit=_edit(uri, convert.replacement(checked.text, with_noqa(checked.text, d), positions)),
            ))
    if _wanted(FIX_ALL, only) and ls.owner(uri) == uri and checked.fixable():
        fixed = await asyncio.get_running_loop().run_in_executor(ls.linter, fix_all, checked)
        edits = convert.replacement(checked.text, fixed, positions)
        if edits:
            title = "Fix all fixes (unsafe-fixes is on)" if checked.fixable_unsafe else "Fix all safe fixes"
            actions.append(types.CodeAction(title=f"trainlint: {title}", kind=FIX_ALL, edit=_edit(uri, edits)))
    return actions


def _key(position: types.Position) -> tuple[int, int]:
    """Positions of one document, in the same units, compare as (line, character)."""
    return position.line, position.character


def _wanted(kind: str, only: list[str] | None) -> bool:
    return not only or any(kind == k or kind.startswith(f"{k}.") for k in only)


def _edit(uri: str, edits: list[types.TextEdit]) -> types.WorkspaceEdit:
    return types.WorkspaceEdit(changes={uri: edits})


@server.command(VERIFY_COMMAND)
async def verify(ls: TrainlintServer, uri: str) -> list[dict]:
    """`trainlint verify` on the document's current text, in a subprocess (it executes the
    probed classes); returns its JSON verdicts."""
    document = ls.workspace.get_text_document(uri)
    path = _path(uri)
    try:
        config = ls.settings.runner(path).settings.source
    except (ConfigError, SelectorError):  # the subprocess reports it, with the same words
        config = "defaults"
    with tempfile.TemporaryDirectory(prefix="trainlint-verify-") as folder:
        copy = Path(folder) / path.name
        copy.write_text(document.source, encoding="utf-8")
        command = [sys.executable, "-m", "trainlint", "verify", "--output-format", "json"]
        if config != "defaults":
            command += ["--config", config]
        process = await asyncio.create_subprocess_exec(
            *command, str(copy), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=folder,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), VERIFY_TIMEOUT_S)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            process.kill()
            await process.wait()
            raise
    if process.returncode not in (0, 1):
        raise RuntimeError(f"trainlint verify failed: {err.decode(errors='replace').strip()}")
    verdicts = json.loads(out)
    for verdict in verdicts:
        verdict["filename"] = str(path)
    return verdicts


def serve() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    server.start_io()
