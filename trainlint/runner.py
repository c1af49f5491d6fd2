"""A whole run: settings + paths -> per-file outcomes (diagnostics, fixes, diffs, writes)."""

from __future__ import annotations

import difflib
import fnmatch
import hashlib
import multiprocessing
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from trainlint import cache as cache_mod
from trainlint import engine
from trainlint.config import Settings
from trainlint.diagnostic import Diagnostic, internal
from trainlint.discover import Discovery
from trainlint.notebook import Notebook, NotebookError
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
    jobs: int | None = 1  # worker processes; None = all cores (the command line's default)
    cache: bool = False  # the command line turns it on unless --no-cache
    cache_dir: Path | None = None  # default: $TRAINLINT_CACHE_DIR, else <root>/.trainlint_cache


@dataclass
class FileOutcome:
    path: str
    diagnostics: list[Diagnostic]
    fixed: list[Diagnostic] = field(default_factory=list)
    diff: str = ""
    parsed: bool = field(default=False, compare=False)  # LibCST parsed it (for statistics)


@dataclass
class Stats:
    """What a run did, for benchmarks and tests (never printed by `check`)."""

    files: int = 0
    cached: int = 0  # served from the cache: not read past hashing, not parsed
    linted: int = 0  # went through the engine
    parsed: int = 0  # of those, parsed with LibCST (some rule's prefilter matched)
    jobs: int = 1  # worker processes used


@dataclass
class Run:
    outcomes: list[FileOutcome]
    unsafe: bool
    stats: Stats = field(default_factory=Stats)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        return [d for o in self.outcomes for d in o.diagnostics]

    @property
    def fixed(self) -> list[Diagnostic]:
        return [d for o in self.outcomes for d in o.fixed]


def display_path(path: Path, cwd: str | None = None) -> str:
    """Relative to the working directory when inside it, else as given."""
    if not path.is_absolute():
        return path.as_posix()  # == path.absolute().relative_to(cwd), without the syscalls
    try:
        return path.relative_to(cwd or os.getcwd()).as_posix()
    except ValueError:
        return str(path)


class Runner:
    def __init__(self, settings: Settings, options: Options) -> None:
        self.settings = settings
        self.options = options
        where = settings.source
        for key, selectors in (
            ("select", settings.select or []),
            ("ignore", settings.ignore),
            ("extend-select", settings.extend_select),
        ):
            matching(selectors, f"{where}: [tool.trainlint] {key!r}")
        self.rules = select(
            options.select if options.select is not None else settings.select,
            settings.extend_select + options.extend_select,
            settings.ignore + options.ignore,
            "command line",
        )
        self.per_file = {
            pattern: matching(codes, f"{settings.source}: per-file-ignores[{pattern!r}]")
            for pattern, codes in settings.per_file_ignores.items()
        }
        self.unsafe = settings.unsafe_fixes if options.unsafe_fixes is None else options.unsafe_fixes

    @property
    def fixing(self) -> bool:
        return self.options.fix or self.options.diff

    def jobs(self) -> int:
        if self.options.jobs is not None:
            return max(1, self.options.jobs)
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)

    def open_cache(self) -> cache_mod.Cache | None:
        # --verify decides per fix by executing code: never short-cut it with stored results.
        if not self.options.cache or self.options.verify:
            return None
        directory = self.options.cache_dir or cache_mod.default_dir(self.settings.root)
        return cache_mod.Cache(directory)

    def cache_settings(self, rules: list[type[Rule]]) -> tuple:
        """Everything besides the file's bytes that its lint diagnostics depend on."""
        want_edits = self.options.want_edits and not self.fixing
        return (tuple(r.code for r in rules), bool(self.unsafe), bool(want_edits))

    def run(self, paths: list[Path]) -> Run:
        discovery = Discovery(self.settings.root, self.settings.exclude)
        files = discovery.files(paths)
        outcomes = [
            FileOutcome(display_path(p), [internal(display_path(p), "no such file or directory")])
            for p in discovery.missing
        ] + [
            FileOutcome(display_path(d), [internal(display_path(d), f"cannot read the directory: {why}")])
            for d, why in discovery.unreadable
        ]
        stats = Stats(files=len(files))
        results: list[FileOutcome | None] = [None] * len(files)
        cache = self.open_cache()
        salt = cache.salt if cache is not None else None
        tasks: list[tuple[int, Path, str | None]] = []
        cwd = os.getcwd()
        for index, path in enumerate(files):
            if cache is not None:
                try:
                    data = path.read_bytes()
                except OSError:
                    data = None  # run_file reports it
                if data is not None:
                    records = cache.get(cache.key(data, self.cache_settings(self.rules_for(path))))
                    if records is not None:
                        shown = display_path(path, cwd)
                        diagnostics = [cache_mod.load(r, shown) for r in records]
                        # --fix/--diff must re-lint a file they may change (fixes need nodes).
                        if not self.fixing or not any(d.fixable(self.unsafe) for d in diagnostics):
                            results[index] = FileOutcome(shown, diagnostics)
                            stats.cached += 1
                            continue
            # The file is read again where it is linted, and keyed by what was read there:
            # the main process holds no file contents, and an entry always matches its bytes.
            tasks.append((index, path, salt))

        for index, outcome, key in self._execute(tasks, stats):
            results[index] = outcome
            stats.linted += 1
            stats.parsed += outcome.parsed
            if key is not None and self._cacheable(outcome):
                records = cache_mod.encode(outcome.diagnostics)
                if records is not None:
                    cache.put(key, records)
        if cache is not None:
            cache.prune()
        outcomes += results
        return Run(outcomes, self.unsafe, stats)

    def _cacheable(self, outcome: FileOutcome) -> bool:
        """Whether the outcome is exactly the lint result of the file's original bytes."""
        if not self.fixing:
            return True
        return (
            not outcome.fixed
            and not outcome.diff
            and not any(d.fixable(self.unsafe) for d in outcome.diagnostics)
        )

    def _execute(self, tasks: list[tuple[int, Path, str | None]], stats: Stats):
        """(index, outcome, cache key) for every task, in any order; a pool when it pays."""
        jobs = min(self.jobs(), len(tasks))
        stats.jobs = max(1, jobs)
        if jobs <= 1:
            for task in tasks:
                yield self.process(task)
            return

        def size(task):  # biggest files first: no worker is left with a long file at the end
            try:
                return task[1].stat().st_size
            except OSError:
                return 0

        ordered = sorted(tasks, key=size, reverse=True)
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        with context.Pool(jobs, initializer=_init_worker, initargs=(self,)) as pool:
            yield from pool.imap_unordered(_work, ordered, chunksize=1)

    def process(self, task: tuple[int, Path, str | None]) -> tuple[int, FileOutcome, str | None]:
        """Read, lint (or fix) one file; with a cache salt, also the cache key of what was read."""
        index, path, salt = task
        try:
            data = path.read_bytes()
        except OSError:
            return index, self.run_file(path), None  # the same error as a serial run
        key = None
        if salt is not None:
            key = cache_mod.make_key(salt, data, self.cache_settings(self.rules_for(path)))
        return index, self.run_file(path, data), key

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

    def run_file(self, path: Path, data: bytes | None = None) -> FileOutcome:
        """Lint (and fix) one file; `data` is its content when already read."""
        shown = display_path(path)
        if data is None:
            try:
                data = path.read_bytes()
            except IsADirectoryError:
                return FileOutcome(shown, [internal(shown, "is a directory, not a Python file")])
            except OSError as exc:
                return FileOutcome(shown, [internal(shown, f"cannot read: {exc.strerror or exc}")])
        rules = self.rules_for(path)
        try:
            unit = _NotebookFile(data) if path.suffix == ".ipynb" else _PythonFile(data)
        except NotebookError as exc:
            return FileOutcome(shown, [internal(shown, exc.message)])
        if not (self.options.fix or self.options.diff):
            result = engine.lint(shown, unit.code, rules, want_edits=self.options.want_edits)
            return FileOutcome(shown, unit.located(result.diagnostics), parsed=result.parsed)
        if self.options.verify:
            fixed = self._fix_verified(shown, unit.code, rules)
        else:
            fixed = engine.fix(shown, unit.code, rules, self.unsafe)
        if fixed.data == unit.code:
            return FileOutcome(
                shown, unit.located(fixed.remaining.diagnostics), parsed=fixed.remaining.parsed
            )
        try:
            new = unit.rebuilt(fixed.data)
            remaining = unit.rebuilt_unit(new).located(fixed.remaining.diagnostics)
        except NotebookError as exc:
            problem = exc.message
        else:
            outcome = FileOutcome(
                shown, remaining, unit.located(fixed.applied), parsed=fixed.remaining.parsed
            )
            if self.options.diff:
                outcome.diff = _unified_diff(shown, data, new)
                outcome.diagnostics = unit.located(fixed.original)
                outcome.fixed = []
                return outcome
            problem = write_atomically(path, data, new)
            if not problem:
                return outcome
        return FileOutcome(shown, unit.located(fixed.original) + [internal(shown, problem)])

    def _fix_verified(self, shown: str, data: bytes, rules) -> engine.FixResult:
        from trainlint.harness.verify import fix_key, verify_file

        verdicts = verify_file(shown, data, rules, self.options.verify_settings)
        confirmed = {v.key for v in verdicts if v.verdict == "confirmed"}

        def accept(d: Diagnostic) -> bool:
            return d.fix.applicability is Applicability.SAFE or fix_key(d) in confirmed

        return engine.fix(shown, data, rules, unsafe=True, accept=accept)


class _PythonFile:
    """A Python file: linted as it is."""

    def __init__(self, data: bytes) -> None:
        self.code = data

    def located(self, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        return diagnostics

    def rebuilt(self, fixed: bytes) -> bytes:
        """The file's new bytes, given the fixed code."""
        return fixed

    def rebuilt_unit(self, data: bytes) -> _PythonFile:
        """The same kind of file holding `data` (to locate diagnostics of the fixed code)."""
        return type(self)(data)


class _NotebookFile(_PythonFile):
    """A notebook: linted as its code cells, with rows and fixes mapped back to cells."""

    def __init__(self, data: bytes) -> None:
        self.notebook = Notebook(data)
        super().__init__(self.notebook.python.encode("utf-8"))

    def located(self, diagnostics: list[Diagnostic]) -> list[Diagnostic]:
        return [self.notebook.locate(d) for d in diagnostics]

    def rebuilt(self, fixed: bytes) -> bytes:
        return self.notebook.with_python(fixed.decode("utf-8"))


# ------------------------------------------------------------------ worker processes

_WORKER: Runner | None = None


def _init_worker(runner: Runner) -> None:
    global _WORKER
    _WORKER = runner


def _work(task: tuple[int, Path, str | None]) -> tuple[int, FileOutcome, str | None]:
    index, outcome, key = _WORKER.process(task)
    # Fixes hold libcst nodes: send back only what the reports read.
    outcome.diagnostics = [cache_mod.lighten(d) for d in outcome.diagnostics]
    outcome.fixed = [cache_mod.lighten(d) for d in outcome.fixed]
    return index, outcome, key


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
        if not mode & 0o222:
            return "the file is read-only; not written"
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
