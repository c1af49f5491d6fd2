"""A whole run: settings + paths -> per-file outcomes (diagnostics, fixes, diffs, writes)."""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from trainlint import engine
from trainlint.config import Settings
from trainlint.diagnostic import Diagnostic, internal
from trainlint.discover import Discovery
from trainlint.registry import matching, select
from trainlint.rule import Applicability, Rule


@dataclass
class Options:
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    extend_select: list[str] = field(default_factory=list)
    fix: bool = False
    unsafe_fixes: bool | None = None
    diff: bool = False
    want_edits: bool = False
    verify: bool = False  # apply unsafe fixes only where the runtime harness confirms them
    verify_settings: object = None


@dataclass
class FileOutcome:
    path: str
    diagnostics: list[Diagnostic]
    fixed: list[Diagnostic] = field(default_factory=list)
    diff: str = ""


@dataclass
class Run:
    outcomes: list[FileOutcome]
    unsafe: bool

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for o in self.outcomes for d in o.diagnostics]

    @property
    def fixed(self) -> list[Diagnostic]:
        return [d for o in self.outcomes for d in o.fixed]


def display_path(path: Path) -> str:
    """Relative to the working directory when inside it, else as given."""
    try:
        return path.absolute().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


class Runner:
    def __init__(self, settings: Settings, options: Options) -> None:
        self.settings = settings
        self.options = options
        origin = f"{settings.source}" if settings.source != "defaults" else "command line"
        self.rules = select(
            options.select if options.select is not None else settings.select,
            settings.extend_select + options.extend_select,
            settings.ignore + options.ignore,
            origin,
        )
        self.per_file = {
            pattern: matching(codes, f"{settings.source}: per-file-ignores[{pattern!r}]")
            for pattern, codes in settings.per_file_ignores.items()
        }
        self.unsafe = settings.unsafe_fixes if options.unsafe_fixes is None else options.unsafe_fixes

    def run(self, paths: list[Path]) -> Run:
        discovery = Discovery(self.settings.root, self.settings.exclude)
        files = discovery.files(paths)
        outcomes = [
            FileOutcome(display_path(p), [internal(display_path(p), "no such file or directory")])
            for p in discovery.missing
        ]
        outcomes += [self.run_file(p) for p in files]
        return Run(outcomes, self.unsafe)

    def rules_for(self, path: Path) -> list[type[Rule]]:
        if not self.per_file:
            return self.rules
        try:
            rel = path.resolve().relative_to(self.settings.root).as_posix()
        except ValueError:
            rel = path.as_posix()
        ignored: set[type[Rule]] = set()
        for pattern, rules in self.per_file.items():
            if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(path.name, pattern):
                ignored |= rules
        return [r for r in self.rules if r not in ignored]

    def run_file(self, path: Path) -> FileOutcome:
        shown = display_path(path)
        try:
            data = path.read_bytes()
        except IsADirectoryError:
            return FileOutcome(shown, [internal(shown, "is a directory, not a Python file")])
        except OSError as exc:
            return FileOutcome(shown, [internal(shown, f"cannot read: {exc.strerror or exc}")])
        rules = self.rules_for(path)
        if not (self.options.fix or self.options.diff):
            result = engine.lint(shown, data, rules, want_edits=self.options.want_edits)
            return FileOutcome(shown, result.diagnostics)
        if self.options.verify:
            fixed = self._fix_verified(shown, data, rules)
        else:
            fixed = engine.fix(shown, data, rules, self.unsafe)
        outcome = FileOutcome(shown, fixed.remaining.diagnostics, fixed.applied)
        if fixed.data == data:
            return outcome
        if self.options.diff:
            outcome.diff = _unified_diff(shown, data, fixed.data)
            outcome.diagnostics = engine.lint(shown, data, rules).diagnostics
            outcome.fixed = []
            return outcome
        problem = write_atomically(path, data, fixed.data)
        if problem:
            outcome.diagnostics = engine.lint(shown, data, rules).diagnostics
            outcome.diagnostics.append(internal(shown, problem))
            outcome.fixed = []
        return outcome


    def _fix_verified(self, shown: str, data: bytes, rules) -> engine.FixResult:
        from trainlint.harness.verify import fix_key, verify_file

        verdicts = verify_file(shown, data, rules, self.options.verify_settings)
        confirmed = {(v.code, v.message) for v in verdicts if v.verdict == "confirmed"}

        def accept(d: Diagnostic) -> bool:
            return d.fix.applicability is Applicability.SAFE or fix_key(d) in confirmed

        return engine.fix(shown, data, rules, unsafe=True, accept=accept)


def _unified_diff(shown: str, before: bytes, after: bytes) -> str:
    old = engine.decode(before).text.splitlines(keepends=True)
    new = engine.decode(after).text.splitlines(keepends=True)
    return "".join(difflib.unified_diff(old, new, f"a/{shown}", f"b/{shown}"))


def write_atomically(path: Path, original: bytes, data: bytes) -> str | None:
    """Replace path's content with data unless it changed since it was read.

    Returns a problem description instead of raising; the file is then untouched.
    """
    try:
        if hashlib.sha256(path.read_bytes()).digest() != hashlib.sha256(original).digest():
            return "the file changed on disk while it was being fixed; not written"
        mode = path.stat().st_mode
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".trainlint", dir=path.parent)
    except OSError as exc:
        return f"cannot write the fixes: {exc.strerror or exc}"
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode & 0o7777)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return f"cannot write the fixes: {exc.strerror or exc}"
    return None
