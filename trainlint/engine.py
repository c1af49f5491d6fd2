"""One file in, diagnostics (and fixed bytes) out: decode, parse once, run rules in one pass."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import io
import re
import sys
import threading
import tokenize
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import libcst as cst
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

from trainlint.context import Context
from trainlint.diagnostic import Diagnostic, Edit, internal
from trainlint.imports import ImportTable
from trainlint.legacy_syntax import parse_legacy
from trainlint.rule import Fix, Report, Rule
from trainlint.screen import AstIndex
from trainlint.suppress import UNUSED_SUPPRESSION, Suppressions
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
    # condition matched) or "screen" (no rule passed its ast screen); for statistics.
    skipped_by: str | None = None


# --------------------------------------------------------------------- rule selection

# False: every selected rule runs on every file, with no text prefilter and no ast screen.
# The reference that prefiltered runs must equal byte for byte (tests, bench/run.py).
PREFILTER = True


def select_rules(source: Source, rules: Sequence[type[Rule]]) -> tuple[list[type[Rule]], str | None]:
    """The rules that may report on the file, and what ruled the others out.

    1. the text prefilter (`Rule.may_apply`); with no rule left, CPython's syntax check;
    2. CPython's `ast` of the file, which is also its syntax and nesting check (the same
       verdicts as `check_syntax` and `guard_nesting`); code that CPython cannot parse but
       LibCST may (newer syntax) skips the screen;
    3. the structural screen (`Rule.screen`) on an `AstIndex` of that tree.

    Raises SourceError for a file that must become a TL000.
    """
    if not PREFILTER and rules:
        guard_nesting(source)
        return list(rules), None
    text = source.text
    runnable = [r for r in rules if r.may_apply(text)]
    if not runnable:
        check_syntax(source)
        return [], "prefilter"
    tree = syntax_tree(source)
    if tree is None:
        return runnable, None
    remaining = screen(runnable, AstIndex(tree, text))
    return remaining, None if remaining else "screen"


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
    path: str, data: bytes, rules: Sequence[type[Rule]], *, want_edits: bool = False
) -> LintResult:
    try:
        source = decode(data)
        runnable, skipped_by = select_rules(source, rules)
        if not runnable:
            return LintResult([], source=source, skipped_by=skipped_by)
        module = parse(source)
    except SourceError as exc:
        return LintResult([internal(path, exc.message, exc.row, exc.column)])
    reports, failures = run_rules(module, runnable)
    diagnostics = [internal(path, msg) for msg in failures]
    suppressions = Suppressions(source.text)
    if reports:
        located = _locate(path, module, reports, want_edits)
        diagnostics += [d for d in located if not suppressions.covers(d.row, d.code)]
    if suppressions and not failures and any(r.code == UNUSED_SUPPRESSION for r in runnable):
        stale = suppressions.unused_reports(module, {r.code for r in rules})
        diagnostics += _locate(path, module, stale, want_edits) if stale else []
    diagnostics.sort(key=lambda d: d.sort_key)
    return LintResult(diagnostics, True, module, source)


def run_rules(module: cst.Module, rules: Sequence[type[Rule]]) -> tuple[list[Report], list[str]]:
    context = Context(module, ImportTable.of_module(module))
    instances = [rule(context) for rule in rules]
    dispatcher = _Dispatcher(instances, context.stack)
    walk(module, dispatcher)  # a RecursionError (in a rule) goes up to lint(), which retries deeper
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
            except RecursionError:
                raise  # deep code, not a rule bug: lint() retries with a deeper stack
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
    layout = _Layout(module)
    wanted = [(report.node, report.near) for report in reports]
    if want_edits:
        wanted += [(old, r.near) for r in reports if r.fix is not None for old, _ in r.fix.edits]
    layout.find(wanted)
    spans = layout.positions([report.node for report in reports])
    out = []
    for report in reports:
        span = spans[id(report.node)]
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
            diagnostic.edits = fix_edits(module, report.fix, layout)
        out.append(diagnostic)
    return out


def _locate_reference(
    path: str, module: cst.Module, reports: list[Report], want_edits: bool
) -> list[Diagnostic]:
    """`_locate` the plain way (positions of the whole module, fixes applied to the whole
    module): what `_locate` must equal, for the tests."""
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    out = []
    for report in reports:
        span = positions[report.node]
        diagnostic = Diagnostic(
            path, report.code, report.name, report.message, span.start.line,
            span.start.column + 1, span.end.line, span.end.column + 1, report.fix,
            report.help, data=report.data,
        )
        if want_edits and report.fix is not None:
            before = module.code
            after = module.visit(_Replace({id(old): new for old, new in report.fix.edits})).code
            diagnostic.edits = _text_edits(before, after)
        out.append(diagnostic)
    return out


_FIELDS: dict[type, tuple[str, ...]] = {}


def _cst_children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """Every child node (whitespace and comments included), without a visitor."""
    names = _FIELDS.get(type(node))
    if names is None:
        names = _FIELDS[type(node)] = tuple(f.name for f in dataclasses.fields(node))
    out: list[cst.CSTNode] = []
    for name in names:
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, cst.CSTNode))
    return out


class _Layout:
    """A module's code, top-level statement by statement.

    Positions (`PositionProvider`) and the code of a fixed module both take a codegen of
    the whole module, which costs about as much as parsing it. A reported node lies in
    one top-level statement, and a fix changes one or a few: those are generated alone
    (at the top level their code does not depend on what precedes them), the rest of the
    module's code is reused.
    """

    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self._parts: list[str] | None = None  # code of each header line, statement, footer line
        self._code: str | None = None
        self._where: dict[int, tuple[int, list[int]]] = {}  # see _find
        self._absent: set[int] = set()  # looked for, in no top-level statement

    # -- the code, part by part (as Module._codegen_impl generates it)

    def _join(self, parts: list[str]) -> str:
        module = self.module
        code = "".join(parts)
        if module.has_trailing_newline:
            return code or module.default_newline
        # the last token, a newline, is dropped
        return code[:-2] if code.endswith("\r\n") else code[:-1]

    @property
    def parts(self) -> list[str]:
        if self._parts is None:
            module = self.module
            code_for = module.code_for_node
            self._parts = [code_for(n) for n in (*module.header, *module.body, *module.footer)]
        return self._parts

    @property
    def code(self) -> str:
        if self._code is None:
            self._code = self._join(self.parts)
        return self._code

    def find(self, nodes: list[tuple[cst.CSTNode, cst.CSTNode | None]]) -> None:
        """Looks up where each node is (see `_find`), in one pass; each node comes with a
        top-level statement to look in first (or None)."""
        body = self.module.body
        index_of = {id(stmt): i for i, stmt in enumerate(body)}
        first = [index_of[id(near)] for _, near in nodes if near is not None and id(near) in index_of]
        order = [*dict.fromkeys(first), *range(len(body))]
        self._search({id(node) for node, _ in nodes}, order)

    def _find(self, wanted: set[int]) -> dict[int, tuple[int, list[int]]]:
        """id of each wanted node found in a top-level statement -> (the statement's
        index, ids of the nodes from the statement down to it)."""
        missing = wanted - self._where.keys() - self._absent
        if missing:
            self._search(missing, range(len(self.module.body)))
        return {i: self._where[i] for i in wanted if i in self._where}

    def _search(self, wanted: set[int], order) -> None:
        wanted = set(wanted)
        seen: set[int] = set()
        for index in order:
            if not wanted:
                return
            if index in seen:
                continue
            seen.add(index)
            path: list[int] = []
            stack: list[tuple[cst.CSTNode, int]] = [(self.module.body[index], 0)]
            while stack:
                node, depth = stack.pop()
                del path[depth:]
                path.append(id(node))
                if id(node) in wanted:
                    self._where[id(node)] = (index, list(path))
                    wanted.discard(id(node))
                    if not wanted:
                        return
                stack.extend((child, depth + 1) for child in _cst_children(node))
        self._absent |= wanted

    # -- positions

    def positions(self, nodes: list[cst.CSTNode]) -> dict[int, CodeRange]:
        """id(node) -> its `PositionProvider` range, for each node."""
        wanted = {id(n) for n in nodes}
        where = self._find(wanted)
        out: dict[int, CodeRange] = {}
        if len(where) < len(wanted):  # a comment of the header or footer, the module itself
            full = _positions(self.module)
            for node in nodes:
                out[id(node)] = full[node]
            return out
        module, header = self.module, len(self.module.header)
        for index in sorted({index for index, _ in where.values()}):
            alone = module.with_changes(header=(), body=(module.body[index],), footer=())
            spans = _positions(alone)
            lines = sum(len(_NEWLINE.findall(part)) for part in self.parts[: header + index])
            for node in nodes:
                if where[id(node)][0] == index:
                    span = spans[node]
                    out[id(node)] = CodeRange(
                        CodePosition(span.start.line + lines, span.start.column),
                        CodePosition(span.end.line + lines, span.end.column),
                    )
        return out

    # -- fixes

    def fixed_code(self, fix: Fix) -> str:
        """The module's code with the fix applied (as `module.visit(_Replace(...)).code`)."""
        module = self.module
        replacements = {id(old): new for old, new in fix.edits}
        where = self._find(set(replacements))
        if len(where) < len(replacements):  # e.g. a comment of the module's header
            return module.visit(_Replace(replacements)).code
        path = {id(module)}
        for _, ids in where.values():
            path.update(ids)
        fixed = module.visit(_Replace(replacements, path))
        if (
            len(fixed.header) != len(module.header)
            or len(fixed.body) != len(module.body)
            or len(fixed.footer) != len(module.footer)
        ):
            return fixed.code  # a statement removed or split in two
        old_nodes = (*module.header, *module.body, *module.footer)
        new_nodes = (*fixed.header, *fixed.body, *fixed.footer)
        parts = [
            part if new is old else fixed.code_for_node(new)
            for part, old, new in zip(self.parts, old_nodes, new_nodes)
        ]
        return self._join(parts)


_NEWLINE = re.compile(r"\r\n?|\n")


def _positions(module: cst.Module):
    """`MetadataWrapper(module).resolve(PositionProvider)`, without the wrapper's pass of
    batchable providers, which walks the whole tree even when there are none."""
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    try:
        return PositionProvider()._gen(wrapper)
    except AttributeError:  # a LibCST without this internal API
        return wrapper.resolve(PositionProvider)


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
    """Replaces nodes by identity. With `path` (the ids of the replaced nodes and of every
    node above one), subtrees off the path are left as they are, not rebuilt."""

    def __init__(self, replacements: dict[int, object], path: set[int] | None = None) -> None:
        self.replacements = replacements
        self.path = path

    def on_visit(self, node) -> bool:
        return self.path is None or id(node) in self.path

    def on_leave(self, original_node, updated_node):
        return self.replacements.get(id(original_node), updated_node)


def fix_edits(module: cst.Module, fix: Fix, layout: _Layout | None = None) -> list[Edit]:
    """The fix as text edits on the original code (for JSON and SARIF output)."""
    layout = layout or _Layout(module)
    return _text_edits(layout.code, layout.fixed_code(fix))


def _text_edits(before: str, after: str) -> list[Edit]:
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
    try:
        return _guarded(_fix, path, data, rules, unsafe, accept)
    except (RecursionError, MemoryError):
        return FixResult(data, [], LintResult([internal(path, TOO_DEEP)]))


def _fix(
    path: str,
    data: bytes,
    rules: Sequence[type[Rule]],
    unsafe: bool,
    accept: Callable[[Diagnostic], bool],
) -> FixResult:
    applied: list[Diagnostic] = []
    result = _lint(path, data, rules)
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
        result = _lint(path, data, rules)
    return FixResult(data, applied, result)
