"""Human-readable output: one line per diagnostic, then a summary."""

from __future__ import annotations

from collections import Counter

from trainlint.diagnostic import Diagnostic
from trainlint.runner import Run


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def line(d: Diagnostic, unsafe: bool) -> str:
    mark = " [*]" if d.fixable(unsafe) else ""
    return f"{d.path}:{d.row}:{d.column}: {d.code}{mark} {d.message}"


def render(run: Run, fixing: bool) -> str:
    out = [line(d, run.unsafe) for d in run.diagnostics]
    out.append(summary(run, fixing))
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
