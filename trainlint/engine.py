"""One file in, diagnostics (and fixed bytes) out: decode, parse once, run rules in one pass."""

from __future__ import annotations

import ast
import difflib
import io
import tokenize
from dataclasses import dataclass
from typing import Callable, Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from trainlint.context import Context
from trainlint.diagnostic import Diagnostic, Edit, internal
from trainlint.imports import ImportTable
from trainlint.rule import Fix, Report, Rule
from trainlint.suppress import Suppressions

MAX_FIX_ROUNDS = 10


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
        raise SourceError(f"cannot determine the encoding: {exc.msg}", exc.lineno or 1) from None
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
    try:
        return cst.parse_module(source.text, cst.PartialParserConfig(encoding=source.encoding))
    except cst.ParserSyntaxError as exc:
        raise SourceError(f"syntax error: {exc.message}", exc.raw_line, exc.raw_column + 1) from None
    except RecursionError:
        raise SourceError("the code is nested too deeply to parse") from None


def check_syntax(source: Source) -> None:
    """Syntax check for files no rule reads: CPython's parser, ten times cheaper than LibCST's.

    CPython only knows its own version's grammar, so a rejection is confirmed with LibCST,
    which also parses newer syntax (PEP 695 generics, nested f-string quotes).
    """
    try:
        compile(source.text, "<file>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        try:
            parse(source)
        except SourceError:  # CPython's message and position are the more precise ones
            raise SourceError(f"syntax error: {exc.msg}", exc.lineno or 1, exc.offset or 1) from None
    except (RecursionError, MemoryError):
        parse(source)


@dataclass
class LintResult:
    diagnostics: list[Diagnostic]
    parsed: bool = False
    module: cst.Module | None = None
    source: Source | None = None


def lint(
    path: str, data: bytes, rules: Sequence[type[Rule]], *, want_edits: bool = False
) -> LintResult:
    """Lint one file's bytes with the given rule classes."""
    try:
        source = decode(data)
        runnable = [r for r in rules if r.may_apply(source.text)]
        if not runnable:
            check_syntax(source)
            return LintResult([], source=source)
        module = parse(source)
    except SourceError as exc:
        return LintResult([internal(path, exc.message, exc.row, exc.column)])
    reports, failures = run_rules(module, runnable)
    diagnostics = [internal(path, msg) for msg in failures]
    if reports:
        suppressions = Suppressions(source.text)
        located = _locate(path, module, reports, want_edits)
        diagnostics += [d for d in located if not suppressions.covers(d.row, d.code)]
    diagnostics.sort(key=lambda d: d.sort_key)
    return LintResult(diagnostics, True, module, source)


def run_rules(module: cst.Module, rules: Sequence[type[Rule]]) -> tuple[list[Report], list[str]]:
    context = Context(module, ImportTable.of_module(module))
    instances = [rule(context) for rule in rules]
    dispatcher = _Dispatcher(instances, context.stack)
    try:
        module.visit(dispatcher)
    except RecursionError:
        return [], ["the code is nested too deeply to analyse"]
    reports = [r for rule in instances if rule not in dispatcher.failed for r in rule.reports]
    return reports, dispatcher.failures


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
            except Exception as exc:  # a rule bug must not stop the other rules
                self.failed.add(rule)
                self.failures.append(
                    f"internal error in rule {rule.code} ({type(exc).__name__}: {exc}); "
                    "please report it"
                )
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
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    out = []
    for report in reports:
        span = positions[report.node]
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
            diagnostic.edits = fix_edits(module, report.fix)
        out.append(diagnostic)
    return out


# ----------------------------------------------------------------------------- fixes


def apply_fixes(module: cst.Module, fixes: Sequence[Fix]) -> tuple[cst.Module, list[Fix]]:
    """Apply the fixes whose targets do not nest inside each other's; return those applied.

    Fixes left out are found again by the next lint round and applied then.
    """
    targets = {id(old) for fix in fixes for old, _ in fix.edits}
    nesting = _TargetNesting(targets)
    module.visit(nesting)
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
    return module.visit(_Replace(replacements)), applied


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


class _Replace(cst.CSTTransformer):
    def __init__(self, replacements: dict[int, object]) -> None:
        self.replacements = replacements

    def on_leave(self, original_node, updated_node):
        return self.replacements.get(id(original_node), updated_node)


def fix_edits(module: cst.Module, fix: Fix) -> list[Edit]:
    """The fix as text edits on the original code (for JSON and SARIF output)."""
    before = module.code
    after = module.visit(_Replace({id(old): new for old, new in fix.edits})).code
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    edits = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        old, new = "".join(a[i1:i2]), "".join(b[j1:j2])
        head = len(_common_prefix(old, new))
        tail = len(_common_prefix(old[head:][::-1], new[head:][::-1]))
        start = sum(map(len, a[:i1])) + head
        end = sum(map(len, a[:i1])) + len(old) - tail
        (r1, c1), (r2, c2) = _row_col(before, start), _row_col(before, end)
        edits.append(Edit(new[head : len(new) - tail], r1, c1, r2, c2))
    return edits


def _common_prefix(a: str, b: str) -> str:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return a[:n]


def _row_col(text: str, offset: int) -> tuple[int, int]:
    row = text.count("\n", 0, offset) + 1
    return row, offset - (text.rfind("\n", 0, offset) + 1) + 1


@dataclass
class FixResult:
    data: bytes
    applied: list[Diagnostic]
    remaining: LintResult


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
    applied: list[Diagnostic] = []
    result = lint(path, data, rules)
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
            parse(decode(new_data))
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
        result = lint(path, data, rules)
    return FixResult(data, applied, result)
