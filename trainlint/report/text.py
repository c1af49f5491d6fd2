"""Human-readable output: each diagnostic with its source line, or one line each (concise)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from trainlint.diagnostic import Diagnostic
from trainlint.engine import SourceError, decode
from trainlint.notebook import Notebook, NotebookError
from trainlint.runner import Run


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def where(d: Diagnostic) -> str:
    cell = f"cell {d.cell}:" if d.cell is not None else ""
    return f"{d.path}:{cell}{d.row}:{d.column}"


def line(d: Diagnostic, unsafe: bool) -> str:
    mark = " [*]" if d.fixable(unsafe) else ""
    code = click.style(d.code, fg="red", bold=True)
    return f"{click.style(where(d), bold=True)}: {code}{mark} {d.message}"


def render_concise(run: Run, fixing: bool) -> str:
    out = [line(d, run.unsafe) for d in run.diagnostics]
    out.append(summary(run, fixing))
    return "\n".join(out) + "\n"


def render(run: Run, fixing: bool) -> str:
    """Like ruff's full format: the location line, the source line with carets, help."""
    sources = _Sources()
    blocks = []
    for d in run.diagnostics:
        block = [line(d, run.unsafe)]
        text = sources.line(d)
        if text is not None:
            block += _snippet(d, text)
        if d.help:
            block.append(f"  {click.style('= help:', fg='cyan', bold=True)} {d.help}")
        blocks.append("\n".join(block) + "\n")
    blocks.append(summary(run, fixing) + "\n")
    return "\n".join(blocks)


def _snippet(d: Diagnostic, text: str) -> list[str]:
    number = str(d.row)
    gutter = " " * len(number)
    text = text.expandtabs(1)  # one column per character, as the column numbers count
    start = max(d.column - 1, 0)
    end = d.end_column - 1 if d.end_row == d.row else len(text.rstrip())
    carets = "^" * max(end - start, 1)
    bar = click.style("|", fg="blue", bold=True)
    return [
        f" {gutter} {bar}",
        f" {click.style(number, fg='blue', bold=True)} {bar} {text}",
        f" {gutter} {bar} {' ' * start}{click.style(carets, fg='red', bold=True)}",
    ]


class _Sources:
    """Lines of the linted files, each file read once when the report is printed."""

    def __init__(self) -> None:
        self._files: dict[str, list[str] | Notebook | None] = {}

    def line(self, d: Diagnostic) -> str | None:
        if d.path not in self._files:
            self._files[d.path] = _read(d.path, notebook=d.cell is not None)
        source = self._files[d.path]
        lines = source.source_lines(d.cell) if isinstance(source, Notebook) else source
        if lines is None or not 1 <= d.row <= len(lines):
            return None
        return lines[d.row - 1]


def _read(path: str, notebook: bool) -> list[str] | Notebook | None:
    try:
        data = Path(path).read_bytes()
        return Notebook(data) if notebook else decode(data).text.splitlines()
    except (OSError, SourceError, NotebookError):
        return None


def fixes(run: Run) -> str:
    """What --fix changed, per file and rule (--show-fixes)."""
    if not run.fixed:
        return "No errors were fixed.\n"
    out = [f"Fixed {_plural(len(run.fixed), 'error')}:"]
    by_file: dict[str, Counter] = {}
    names = {}
    for d in run.fixed:
        by_file.setdefault(d.path, Counter())[d.code] += 1
        names[d.code] = d.name
    for path, counts in by_file.items():
        out.append(f"- {path}:")
        out += [f"    {n} × {code} ({names[code]})" for code, n in sorted(counts.items())]
    return "\n".join(out) + "\n"


def summary(run: Run, fixing: bool) -> str:
    remaining = run.diagnostics
    fixed = run.fixed
    if not remaining and not fixed:
        return "All checks passed!"
    if fixing:
        total = len(remaining) + len(fixed)
        return f"Found {_plural(total, 'error')} ({len(fixed)} fixed, {len(remaining)} remaining)."
    safe = sum(d.fixable(False) for d in remaining)
    unsafe_only = sum(d.fixable(True) and not d.fixable(False) for d in remaining)
    parts = []
    if run.unsafe:
        if safe + unsafe_only:
            parts.append(f"{safe + unsafe_only} fixable with --fix")
    else:
        if safe:
            parts.append(f"{safe} fixable with --fix")
        if unsafe_only:
            parts.append(f"{unsafe_only} {'more' if safe else 'fixable'} with --unsafe-fixes")
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"Found {_plural(len(remaining), 'error')}{detail}."


def statistics(run: Run) -> str:
    counts = Counter(d.code for d in run.diagnostics)
    names = {d.code: d.name for d in run.diagnostics}
    fixable = {d.code for d in run.diagnostics if d.fixable(run.unsafe)}
    width = max((len(str(n)) for n in counts.values()), default=1)
    rows = [
        f"{n:>{width}}\t{code}\t{'[*]' if code in fixable else '[ ]'} {names[code]}"
        for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    rows.append(summary(run, False))
    return "\n".join(rows) + "\n"
