"""One file in, diagnostics (and fixed bytes) out: decode, parse once, run rules in one pass."""

from __future__ import annotations

import ast
import io
import re
import sys
import threading
import tokenize
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import libcst as cst

from trainlint.anchor import Anchors
from trainlint.context import Context
from trainlint.diagnostic import Diagnostic, Edit, internal
from trainlint.imports import ImportTable
from trainlint.layout import Layout, Replace
from trainlint.legacy_syntax import parse_legacy
from trainlint.rule import Fix, Report, Rule
from trainlint.screen import AstIndex
from trainlint.semantic import SemanticModel
from trainlint.suppress import Suppressions
from trainlint.tokens import Tokens
from trainlint.traverse import walk

MAX_FIX_ROUNDS = 10

# LibCST's visitors, code generation and position metadata recurse once or more per level of
# nesting, so generated code (a 5,000-term sum, an expression nested 1,000 deep) overflows
# Python's default recursion limit. Such a file is retried in a thread with a large C stack and
# a raised limit; only when that fails too does it become a TL000.
DEEP_RECURSION_LIMIT = 200_000
DEEP_STACK_BYTES = 1024 * 1024 * 1024  # reserved address space; pages are touched on use
TOO_DEEP = "the code is nested too deeply to analyse (Python's recursion limit)"
_CPYTHON_TOO_DEEP = "the code is nested too deeply to analyse; CPython cannot compile it either"
_deep_lock = threading.Lock()

# LibCST's native parser is quadratic (cubic for subscripts) in the length of a left-recursive
# chain and exhausts memory, aborting the process, on brackets nested ~1,000 deep. Code nested
# deeper than this many AST levels is reported as TL000 instead of being parsed.
MAX_NESTING = 1000
# CPython's own verdicts that hold for every Python version: LibCST need not confirm them.
_DEFINITIVE_SYNTAX_ERRORS = ("too many nested parentheses",)
_BRACKET = re.compile(r"[()\[\]{}]")
_OPENING = frozenset("([{")
_SUSPICIOUS_BRACKET_DEPTH = 150
_SUSPICIOUS_LINE_LENGTH = 2000


class SourceError(Exception):
    """The file cannot be decoded or parsed; becomes a TL000 diagnostic."""

    def __init__(self, message: str, row: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message, self.row, self.column = message, row, column


@dataclass
class Source:
    text: str
    encoding: str


def decode(data: bytes) -> Source:
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if "encoding problem" not in str(exc) and "unknown encoding" not in str(exc):
            # no coding line (or one detect_encoding rejects with the undecodable line): say
            # which byte is wrong rather than "invalid or missing encoding declaration"
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                encoding = "utf-8"
            else:
                raise SourceError(f"cannot determine the encoding: {exc.msg}", exc.lineno or 1) from None
        else:
            raise SourceError(f"cannot determine the encoding: {exc}", exc.lineno or 1) from None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SourceError(
            f"invalid {encoding} byte 0x{data[exc.start]:02x}: {exc.reason}", row, column
        ) from None
    except LookupError:
        raise SourceError(f"unknown encoding {encoding!r} in the coding line") from None
    if "\x00" in text:
        row = text.count("\n", 0, text.index("\x00")) + 1
        raise SourceError("the file contains NUL bytes (binary content?)", row)
    return Source(text, encoding)


def parse(source: Source) -> cst.Module:
    config = cst.PartialParserConfig(encoding=source.encoding)
    try:
        return cst.parse_module(source.text, config)
    except cst.ParserSyntaxError as exc:
        error = SourceError(f"syntax error: {exc.message}", exc.raw_line, exc.raw_column + 1)
    legacy = parse_legacy(source.text, config)  # `x.cuda(async=True)`, valid before Python 3.7
    if legacy is not None:
        return legacy
    # LibCST's position is sometimes a line late ("expected INDENT" is put on the line after the
    # missing block); where CPython rejects the code too, its message and position are precise
    try:
        _cpython_ast(source.text)
    except SyntaxError as exc:
        raise SourceError(f"syntax error: {exc.msg}", exc.lineno or 1, exc.offset or 1) from None
    except (RecursionError, MemoryError, ValueError):
        pass
    raise error


def _cpython_ast(text: str) -> ast.Module:
    """CPython's parse, without its SyntaxWarnings (`"is" with a literal`...) on our stderr."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(text, "<file>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)


def check_syntax(source: Source) -> None:
    """Syntax check for files no rule reads: CPython's parser, ten times cheaper than LibCST's.

    CPython only knows its own version's grammar, so a rejection is confirmed with LibCST,
    which also parses newer syntax (PEP 695 generics, nested f-string quotes).
    """
    try:
        _cpython_ast(source.text)
    except SyntaxError as exc:
        if exc.msg in _DEFINITIVE_SYNTAX_ERRORS:
            raise SourceError(f"syntax error: {exc.msg}", exc.lineno or 1, exc.offset or 1) from None
        try:
            parse(source)
        except SourceError:  # CPython's message and position are the more precise ones
            raise SourceError(f"syntax error: {exc.msg}", exc.lineno or 1, exc.offset or 1) from None
    except (RecursionError, MemoryError):
        raise SourceError(_CPYTHON_TOO_DEEP) from None


def guard_nesting(source: Source) -> None:
    """Refuse, as a SourceError, code too deeply nested for LibCST's parser to handle sanely.

    A cheap look at the text first: most files have no long lines and shallow brackets, and
    skip CPython's parse (a fraction of LibCST's) and the depth count.
    """
    if _may_be_deep(source.text):
        syntax_tree(source)


def _may_be_deep(text: str) -> bool:
    if text.count("(") + text.count("[") + text.count("{") >= _SUSPICIOUS_BRACKET_DEPTH:
        depth = 0  # brackets inside strings and comments count too: a rough, cheap upper bound
        for match in _BRACKET.finditer(text):
            if match.group() in _OPENING:
                depth += 1
                if depth >= _SUSPICIOUS_BRACKET_DEPTH:
                    return True
            elif depth:
                depth -= 1
    return len(text) > _SUSPICIOUS_LINE_LENGTH and any(
        len(line) > _SUSPICIOUS_LINE_LENGTH for line in text.splitlines()
    )


def ast_depth(tree: ast.AST) -> tuple[int, int]:
    """(deepest nesting of the tree, the row where it occurs), without recursion."""
    best, row = 0, 1
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > best:
            best, row = depth, getattr(node, "lineno", row)
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                stack.append((value, depth + 1))
            elif isinstance(value, list):
                stack.extend((item, depth + 1) for item in value if isinstance(item, ast.AST))
    return best, row


@dataclass
class LintResult:
    diagnostics: list[Diagnostic]
    parsed: bool = False
    module: cst.Module | None = None
    source: Source | None = None
    # Why a readable file was not parsed with LibCST: "prefilter" (no rule's text
    # condition matched), "screen" (no visitor rule passed its ast screen, and no
    # two-phase rule had a candidate) or "candidates" (only two-phase rules were left, and
    # none had a candidate); for statistics.
    skipped_by: str | None = None


# --------------------------------------------------------------------- rule selection

# False: every selected rule runs on every file, with no text prefilter and no ast screen.
# The reference that prefiltered runs must equal byte for byte (tests, bench/run.py).
PREFILTER = True


@dataclass
class PhaseOne:
    """What the semantic model told before LibCST: the candidates of each two-phase rule."""

    tree: ast.Module
    text: str
    model: SemanticModel
    candidates: dict[type[Rule], list] = field(default_factory=dict)


@dataclass
class Selection:
    """The rules to run on the file's LibCST tree, and phase one's results."""

    rules: list[type[Rule]]
    phase_one: PhaseOne | None = None
    failures: list[str] = field(default_factory=list)  # rules whose phase one failed


def two_phase(rule: type[Rule]) -> bool:
    """A rule with `candidates(model)` and `check(candidate, node)` instead of visitors."""
    return hasattr(rule, "candidates")


def select_rules(source: Source, rules: Sequence[type[Rule]]) -> tuple[Selection, str | None]:
    """The rules that may report on the file, and what ruled the others out.

    1. the declared tokens (`Rule.may_apply` on the file's words, computed once); with no
       rule left, CPython's syntax check;
    2. CPython's `ast` of the file, which is also its syntax and nesting check (the same
       verdicts as `check_syntax` and `guard_nesting`);
    3. phase one of the two-phase rules (`candidates` on the file's semantic model): a rule
       with no candidate cannot report;
    4. the structural screen (`Rule.screen`) of the visitor rules, on an `AstIndex`.

    A file that CPython cannot parse but LibCST may (newer syntax than the interpreter)
    has no semantic model: its visitor rules run unscreened, and its two-phase rules do
    not run (they report nothing there; see `unmodelled`).

    Raises SourceError for a file that must become a TL000.
    """
    if not PREFILTER and rules:
        guard_nesting(source)
        checked = [r for r in rules if two_phase(r)]
        tree = syntax_tree(source) if checked else None
        if tree is None:
            return Selection(unmodelled(rules)), None
        return _phase_one(list(rules), tree, source.text), None
    text = source.text
    tokens = Tokens(text)
    runnable = [r for r in rules if r.may_apply(tokens)]
    if not runnable:
        check_syntax(source)
        return Selection([]), "prefilter"
    tree = syntax_tree(source)
    if tree is None:
        return Selection(unmodelled(runnable)), None
    selection = _phase_one(runnable, tree, text)
    visitors = [r for r in selection.rules if not two_phase(r)]
    if visitors:
        kept = set(screen(visitors, AstIndex(tree, text)))
        selection.rules = [r for r in selection.rules if two_phase(r) or r in kept]
    if selection.rules or selection.failures:
        return selection, None
    return selection, "screen" if visitors else "candidates"


def unmodelled(rules: Sequence[type[Rule]]) -> list[type[Rule]]:
    """The rules that run on a file without a semantic model (CPython cannot parse it)."""
    return [r for r in rules if not two_phase(r)]


def _phase_one(rules: list[type[Rule]], tree: ast.Module, text: str) -> Selection:
    phase_one = PhaseOne(tree, text, SemanticModel(tree))
    selection = Selection([], phase_one)
    for rule in rules:
        if two_phase(rule):
            try:
                found = list(rule.candidates(phase_one.model))
            except RecursionError:
                raise  # deep code, not a rule bug: lint() retries with a deeper stack
            except Exception as exc:  # a rule bug must not stop the other rules
                selection.failures.append(_failure(rule, exc))
                continue
            if not found:
                continue
            phase_one.candidates[rule] = found
        selection.rules.append(rule)
    return selection


def _failure(rule: type[Rule] | Rule, exc: Exception) -> str:
    return f"internal error in rule {rule.code} ({type(exc).__name__}: {exc}); please report it"


def syntax_tree(source: Source) -> ast.Module | None:
    """CPython's tree of the file, after the checks `guard_nesting` makes; None when
    CPython cannot parse it but LibCST should have its say (newer syntax, a syntax error
    that LibCST reports with CPython's message, recursion in a file not obviously deep)."""
    try:
        tree = _cpython_ast(source.text)
    except SyntaxError as exc:
        if exc.msg in _DEFINITIVE_SYNTAX_ERRORS:
            raise SourceError(f"syntax error: {exc.msg}", exc.lineno or 1, exc.offset or 1) from None
        return None
    except (RecursionError, MemoryError):
        if _may_be_deep(source.text):
            raise SourceError(_CPYTHON_TOO_DEEP) from None
        return None
    if _may_be_deep(source.text):
        depth, row = ast_depth(tree)
        if depth > MAX_NESTING:
            raise SourceError(
                f"the code is nested {depth} levels deep (more than {MAX_NESTING}); not analysed "
                "(generated code? exclude it)",
                row,
            )
    return tree


def screen(rules: Sequence[type[Rule]], index: AstIndex) -> list[type[Rule]]:
    """The rules whose screen does not rule the file out. A screen that fails (a bug, or
    recursion on odd code) rules nothing out: the rule runs as if it had no screen."""
    out = []
    for rule in rules:
        try:
            keep = rule.screen(index)
        except Exception:  # noqa: BLE001 - the rule itself runs and reports its own errors
            keep = True
        if keep:
            out.append(rule)
    return out


def _run_deep(function: Callable, *args, **kwargs):
    """function(*args, **kwargs) in a thread with a large stack and a raised recursion limit.

    The recursion limit is process-wide, so it is raised only for the duration, one deep file at
    a time, and restored afterwards; exceptions propagate to the caller.
    """
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # re-raised in the calling thread
            outcome["error"] = exc

    with _deep_lock:
        old_limit, old_size = sys.getrecursionlimit(), threading.stack_size()
        try:
            threading.stack_size(DEEP_STACK_BYTES)
            worker = threading.Thread(target=target, name="trainlint-deep")
        except (ValueError, RuntimeError):  # platform without settable stack sizes
            raise RecursionError("no large stack available") from None
        finally:
            threading.stack_size(old_size)
        sys.setrecursionlimit(max(old_limit, DEEP_RECURSION_LIMIT))
        try:
            worker.start()
            worker.join()
        finally:
            sys.setrecursionlimit(old_limit)
    if "error" in outcome:
        raise outcome.pop("error")
    return outcome["value"]


def _guarded(function: Callable, *args, **kwargs):
    """function(...), retried with deep recursion allowed if the default limit is too low."""
    try:
        return function(*args, **kwargs)
    except RecursionError:
        pass
    if threading.current_thread().name == "trainlint-deep":
        raise RecursionError(TOO_DEEP)
    return _run_deep(function, *args, **kwargs)


def lint(
    path: str, data: bytes, rules: Sequence[type[Rule]], *, want_edits: bool = False
) -> LintResult:
    """Lint one file's bytes with the given rule classes."""
    try:
        return _guarded(_lint, path, data, rules, want_edits=want_edits)
    except (RecursionError, MemoryError):
        return LintResult([internal(path, TOO_DEEP)])


def _lint(
    path: str,
    data: bytes,
    rules: Sequence[type[Rule]],
    *,
    want_edits: bool = False,
    parsed: cst.Module | None = None,
) -> LintResult:
    """`lint`; `parsed` is LibCST's tree of `data` when the caller has it already."""
    try:
        source = decode(data)
        selection, skipped_by = select_rules(source, rules)
        if not selection.rules and not selection.failures:
            return LintResult([], source=source, skipped_by=skipped_by)
        module = parse(source) if parsed is None else parsed
    except SourceError as exc:
        return LintResult([internal(path, exc.message, exc.row, exc.column)])
    runnable = selection.rules
    reports, failures = run_rules(module, runnable, selection.phase_one)
    failures = selection.failures + failures
    diagnostics = [internal(path, msg) for msg in failures]
    suppressions = Suppressions(source.text)
    if reports:
        located = _locate(path, module, reports, want_edits)
        diagnostics += [d for d in located if not suppressions.covers(d.row, d.code)]
    if suppressions and not failures and any(r.reports_unused_suppressions for r in runnable):
        stale = suppressions.unused_reports(module, {r.code for r in rules})
        diagnostics += _locate(path, module, stale, want_edits) if stale else []
    diagnostics.sort(key=lambda d: d.sort_key)
    return LintResult(diagnostics, True, module, source)


def run_rules(
    module: cst.Module, rules: Sequence[type[Rule]], phase_one: PhaseOne | None = None
) -> tuple[list[Report], list[str]]:
    """The reports of the rules on the module: the visitor rules in one traversal, then
    each two-phase rule's `check` on the LibCST node of each of its candidates. Without
    `phase_one`, phase one is run here (on the module's code)."""
    checked = [r for r in rules if two_phase(r)]
    failures: list[str] = []
    if checked and phase_one is None:
        code = module.code
        try:
            tree = _cpython_ast(code)
        except SyntaxError:  # newer syntax than the interpreter: no model (see select_rules)
            tree = None
        if tree is not None:
            selection = _phase_one(checked, tree, code)
            phase_one, failures = selection.phase_one, selection.failures
    context = Context(module, ImportTable.of_module(module), model=phase_one and phase_one.model)
    instances = [rule(context) for rule in rules if not two_phase(rule)]
    reports: list[Report] = []
    if instances:
        dispatcher = _Dispatcher(instances, context.stack)
        walk(module, dispatcher)  # a RecursionError (in a rule) goes up to lint(), which retries deeper
        reports += [r for rule in instances if rule not in dispatcher.failed for r in rule.reports]
        failures += dispatcher.failures
    if phase_one is not None and phase_one.candidates:
        reports += _check(context, phase_one, checked, failures)
    return reports, failures


def _check(
    context: Context, phase_one: PhaseOne, rules: list[type[Rule]], failures: list[str]
) -> list[Report]:
    """Phase two: each rule's `check(candidate, node)`, `node` being the LibCST node of
    the candidate's `anchor` (an ast node); the stack holds the module and the top-level
    statement, as a visitor rule would see them at that point."""
    anchors = Anchors(context.module, phase_one.tree, phase_one.text)
    reports: list[Report] = []
    for rule_class in rules:
        rule = rule_class(context)
        try:
            for candidate in phase_one.candidates.get(rule_class, ()):
                node, top = anchors.find(candidate.anchor)
                context.stack[:] = [context.module] + ([top] if top is not None else [])
                rule.check(candidate, node)
        except RecursionError:
            raise
        except Exception as exc:  # a rule bug must not stop the other rules
            failures.append(_failure(rule, exc))
            continue
        finally:
            context.stack.clear()
        reports += rule.reports
    return reports


class _Dispatcher(cst.CSTVisitor):
    """Runs every rule's visit_/leave_ methods in a single traversal of the tree."""

    def __init__(self, rules: list[Rule], stack: list[cst.CSTNode]) -> None:
        self.rules = rules
        self.stack = stack
        self.failed: set[Rule] = set()
        self.failures: list[str] = []
        self._build()

    def _build(self) -> None:
        self.visits: dict[type, list[tuple[Rule, Callable]]] = {}
        self.leaves: dict[type, list[tuple[Rule, Callable]]] = {}
        for rule in self.rules:
            if rule in self.failed:
                continue
            for attr in dir(type(rule)):
                prefix, _, kind = attr.partition("_")
                if prefix not in ("visit", "leave") or not hasattr(cst, kind):
                    continue
                table = self.visits if prefix == "visit" else self.leaves
                table.setdefault(getattr(cst, kind), []).append((rule, getattr(rule, attr)))

    def _call(self, handlers, node: cst.CSTNode) -> bool:
        descend = True
        for rule, handler in handlers:
            try:
                if handler(node) is False:
                    descend = False
            except RecursionError:
                raise  # deep code, not a rule bug: lint() retries with a deeper stack
            except Exception as exc:  # a rule bug must not stop the other rules
                self.failed.add(rule)
                self.failures.append(_failure(rule, exc))
                self._build()
        return descend

    def on_visit(self, node: cst.CSTNode) -> bool:
        handlers = self.visits.get(type(node))
        if handlers:
            self._call(handlers, node)
        self.stack.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        self.stack.pop()
        handlers = self.leaves.get(type(original_node))
        if handlers:
            self._call(handlers, original_node)


def _locate(
    path: str, module: cst.Module, reports: list[Report], want_edits: bool
) -> list[Diagnostic]:
    layout = Layout(module)
    wanted = [(report.node, report.near) for report in reports]
    if want_edits:
        wanted += [(old, r.near) for r in reports if r.fix is not None for old, _ in r.fix.edits]
    layout.measure(wanted)
    out = []
    for report in reports:
        span = layout.position(report.node)
        diagnostic = Diagnostic(
            path,
            report.code,
            report.name,
            report.message,
            span.start.line,
            span.start.column + 1,
            span.end.line,
            span.end.column + 1,
            report.fix,
            report.help,
            data=report.data,
        )
        if want_edits and report.fix is not None:
            diagnostic.edits = layout.edits(report.fix)
        out.append(diagnostic)
    return out


# ----------------------------------------------------------------------------- fixes


def apply_fixes(module: cst.Module, fixes: Sequence[Fix]) -> tuple[cst.Module, list[Fix]]:
    """Apply the fixes whose targets do not nest inside each other's; return those applied.

    Fixes left out are found again by the next lint round and applied then.
    """
    targets = {id(old) for fix in fixes for old, _ in fix.edits}
    nesting = _TargetNesting(targets)
    walk(module, nesting)
    taken: set[int] = set()
    applied: list[Fix] = []
    for fix in fixes:
        ids = {id(old) for old, _ in fix.edits}
        related = set().union(*(nesting.related[i] for i in ids)) | ids
        if related & taken:
            continue
        taken |= ids
        applied.append(fix)
    replacements = {id(old): new for fix in applied for old, new in fix.edits}
    return module.visit(Replace(replacements)), applied


class _TargetNesting(cst.CSTVisitor):
    """For each fix target, the other targets it contains or is contained in."""

    def __init__(self, targets: set[int]) -> None:
        self.targets = targets
        self.open: list[int] = []
        self.related: dict[int, set[int]] = {t: set() for t in targets}

    def on_visit(self, node: cst.CSTNode) -> bool:
        if id(node) in self.targets:
            for outer in self.open:
                self.related[outer].add(id(node))
                self.related[id(node)].add(outer)
            self.open.append(id(node))
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if self.open and self.open[-1] == id(original_node):
            self.open.pop()


def fix_edits(module: cst.Module, fix: Fix) -> list[Edit]:
    """The fix as text edits on the original code (for JSON and SARIF output)."""
    layout = Layout(module)
    layout.measure([(old, None) for old, _ in fix.edits])
    return layout.edits(fix)


@dataclass
class FixResult:
    data: bytes
    applied: list[Diagnostic]
    remaining: LintResult
    original: list[Diagnostic]  # the diagnostics of the code before any fix


def fix(
    path: str,
    data: bytes,
    rules: Sequence[type[Rule]],
    unsafe: bool,
    accept: Callable[[Diagnostic], bool] = lambda d: True,
) -> FixResult:
    """Lint and fix until nothing more changes (bounded); never returns unparsable code.

    `accept` picks which fixable diagnostics to apply (the harness leaves some out).
    """
    try:
        return _guarded(_fix, path, data, rules, unsafe, accept)
    except (RecursionError, MemoryError):
        too_deep = [internal(path, TOO_DEEP)]
        return FixResult(data, [], LintResult(too_deep), too_deep)


def _fix(
    path: str,
    data: bytes,
    rules: Sequence[type[Rule]],
    unsafe: bool,
    accept: Callable[[Diagnostic], bool],
) -> FixResult:
    applied: list[Diagnostic] = []
    result = _lint(path, data, rules)
    original = list(result.diagnostics)
    for _ in range(MAX_FIX_ROUNDS):
        if result.module is None:
            break
        chosen = [d for d in result.diagnostics if d.fixable(unsafe) and accept(d)]
        if not chosen:
            break
        fixed_module, done = apply_fixes(result.module, [d.fix for d in chosen])
        new_data = fixed_module.bytes
        if new_data == data:
            break
        try:
            fixed_tree = parse(decode(new_data))
        except SourceError as exc:
            result.diagnostics.append(
                internal(
                    path,
                    f"a fix produced code that does not parse ({exc.message}); nothing was written",
                    exc.row,
                    exc.column,
                )
            )
            break
        done_ids = {id(f) for f in done}
        applied += [d for d in chosen if id(d.fix) in done_ids]
        data = new_data
        result = _lint(path, data, rules, parsed=fixed_tree)
    return FixResult(data, applied, result, original)
