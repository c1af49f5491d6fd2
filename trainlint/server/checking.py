"""Editor buffers through the engine: settings per document, diagnostics, fixes, noqa.

Nothing here knows about the Language Server Protocol: it turns the text of a buffer
into what `trainlint check` / `--fix` / `--add-noqa` would give for a file holding that
text, with the settings `trainlint` would read for that file.
"""

from __future__ import annotations

import io
import json
import logging
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from trainlint import engine
from trainlint.config import ConfigError, Settings, find_config, load
from trainlint.diagnostic import Diagnostic, internal
from trainlint.notebook import Notebook
from trainlint.registry import SelectorError
from trainlint.rule import Rule
from trainlint.runner import Options, Runner
from trainlint.suppress import add_noqa

logger = logging.getLogger(__name__)


@dataclass
class Checked:
    """One lint of one buffer version (for a notebook cell: the cell's share of it)."""

    text: str
    diagnostics: list[Diagnostic]
    fixable_unsafe: bool = False  # whether `--fix` applies unsafe fixes here (settings)
    rules: list[type[Rule]] = field(default_factory=list)
    path: str = ""

    def fixable(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.fixable(self.fixable_unsafe) and d.edits]


class SettingsCache:
    """The `Runner` (selection, per-file ignores, unsafe-fixes) for each document's folder.

    A folder's nearest pyproject.toml is looked up once; the file's modification time is
    checked on every use, so an edit to it is picked up by the next lint. `forget()` drops
    everything (a pyproject.toml was created, deleted or saved).
    """

    def __init__(self) -> None:
        self._by_folder: dict[Path, tuple[Path | None, float | None, Runner | Exception]] = {}

    def forget(self) -> None:
        self._by_folder.clear()

    def runner(self, path: Path) -> Runner:
        """Raises ConfigError or SelectorError for a broken configuration."""
        folder = path.parent
        entry = self._by_folder.get(folder)
        if entry is None or _mtime(entry[0]) != entry[1]:
            config = entry[0] if entry is not None else find_config(path)
            entry = (config, _mtime(config), _runner(config, folder))
            self._by_folder[folder] = entry
        outcome = entry[2]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _mtime(config: Path | None) -> float | None:
    if config is None:
        return None
    try:
        return config.stat().st_mtime_ns
    except OSError:
        return None


def _runner(config: Path | None, folder: Path) -> Runner | Exception:
    try:
        settings = load(config) if config is not None else Settings(root=folder.resolve())
        return Runner(settings, Options())
    except (ConfigError, SelectorError) as exc:
        return exc


def encode(text: str) -> bytes:
    """The bytes a file holding `text` would have: in its PEP 263 encoding, else UTF-8."""
    data = text.encode("utf-8", "surrogatepass")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        return data
    if encoding in ("utf-8", "utf-8-sig"):
        return data
    try:
        return text.encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return data  # the engine reports the file as it would report such a file


def check(path: Path, text: str, settings: SettingsCache) -> Checked:
    """`trainlint check` on a file at `path` holding `text`; never raises."""
    shown = str(path)
    try:
        runner = settings.runner(path)
    except (ConfigError, SelectorError) as exc:
        return Checked(text, [internal(shown, f"configuration: {exc}")], path=shown)
    rules = runner.rules_for(path)
    try:
        result = engine.lint(shown, encode(text), rules, want_edits=True)
    except Exception as exc:  # noqa: BLE001 - an editor must keep working; say what broke
        logger.exception("linting %s failed", shown)
        return Checked(text, [internal(shown, f"internal error: {exc!r}; please report it")], path=shown)
    return Checked(text, result.diagnostics, bool(runner.unsafe), rules, shown)


def fix_all(checked: Checked) -> str:
    """The buffer as `trainlint --fix` leaves the file: every fix the settings allow,
    re-linted and fixed again until stable."""
    data = encode(checked.text)
    result = engine.fix(checked.path, data, checked.rules, checked.fixable_unsafe)
    if result.data == data:
        return checked.text
    return engine.decode(result.data).text


def with_noqa(text: str, diagnostic: Diagnostic) -> str:
    """The buffer as `trainlint --add-noqa` leaves it when this is its only diagnostic."""
    return add_noqa(text, [diagnostic])[0]


def check_notebook(path: Path, cells: list[tuple[str, str]], settings: SettingsCache) -> dict[int, Checked]:
    """Lint a notebook's cells (kind "code" or "markdown", text) as `trainlint check` lints
    the .ipynb file; returns, per cell index, its diagnostics with cell-relative rows."""
    document = {"cells": [{"cell_type": kind, "source": text} for kind, text in cells]}
    notebook = Notebook(json.dumps(document).encode("utf-8"))
    whole = check(path, notebook.python, settings)
    out = {i: Checked(text, [], whole.fixable_unsafe, whole.rules, whole.path)
           for i, (kind, text) in enumerate(cells) if kind == "code"}
    for d in whole.diagnostics:
        located = notebook.locate(d) if notebook.cells else d
        index = (located.cell or 1) - 1
        if index in out:
            out[index].diagnostics.append(located)
    return out
