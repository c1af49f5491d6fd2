"""Engine behaviour: name resolution, encodings, line endings, rule failures, fix rounds."""

from __future__ import annotations

import dataclasses

import libcst as cst

from helpers import fix_code, lint_code
from trainlint import engine
from trainlint.imports import ImportTable
from trainlint.registry import by_code
from trainlint.rule import Invalid, Rule, Valid
from trainlint.traverse import walk

TL001, TL005 = by_code("TL001"), by_code("TL005")


def qual(src: str, expr: str) -> str | None:
    table = ImportTable.of_module(cst.parse_module(src))
    return table.qualname(cst.parse_expression(expr))


def test_import_table_resolves_aliases():
    assert qual("import torch as T\n", "T.cuda.FloatTensor") == "torch.cuda.FloatTensor"
    assert qual("from torch.cuda import FloatTensor\n", "FloatTensor") == "torch.cuda.FloatTensor"
    assert qual("from torch import where\n", "where") == "torch.where"
    assert qual("import torch.nn.functional as F\n", "F.cross_entropy") == (
        "torch.nn.functional.cross_entropy"
    )
    assert qual("import torch.nn\n", "torch.nn.Module") == "torch.nn.Module"
    assert qual("try:\n    from torch import where as w\nexcept ImportError:\n    pass\n", "w") == "torch.where"
    assert qual("def f():\n    import torch as tt\n", "tt.zeros") == "torch.zeros"
    assert qual("import torch\n", "where") is None
    assert qual("from . import torch\n", "torch.zeros") is None


def test_encoding_and_bom_are_preserved_by_fixes():
    latin = "# -*- coding: latin-1 -*-\n# café\ndef f(x=[]):\n    return x\n".encode("latin-1")
    out = engine.fix("l.py", latin, [TL005], unsafe=True).data
    assert out.startswith(b"# -*- coding: latin-1 -*-\n# caf\xe9\n")
    assert b"x=None" in out
    bom = b"\xef\xbb\xbfdef f(x=[]):\n    return x\n"
    out = engine.fix("b.py", bom, [TL005], unsafe=True).data
    assert out.startswith(b"\xef\xbb\xbfdef f(x=None):")


def test_crlf_line_endings_are_preserved():
    src = b"def f(x=[]):\r\n    return x\r\n"
    out = engine.fix("c.py", src, [TL005], unsafe=True).data
    assert out == b"def f(x=None):\r\n    if x is None:\r\n        x = []\r\n    return x\r\n"


def test_nul_bytes_are_reported():
    result = engine.lint("n.py", b"x = 1\n\x00\x01\x02", [TL005])
    assert [(d.code, d.row) for d in result.diagnostics] == [("TL000", 2)]
    assert "NUL" in result.diagnostics[0].message


def test_syntax_error_position_from_libcst_parse():
    result = engine.lint("s.py", b"def f(x=[]):\n    return (\n", [TL005])
    [d] = result.diagnostics
    assert d.code == "TL000" and d.message.startswith("syntax error")


class Exploding(Rule):
    """A rule with a bug, to check that the run goes on."""

    code = "TL998"
    name = "exploding"
    message = "boom"
    VALID: list[Valid] = []
    INVALID: list[Invalid] = []

    def visit_FunctionDef(self, node):
        raise ZeroDivisionError("boom")


def test_rule_exception_is_reported_and_other_rules_continue():
    result = engine.lint("x.py", b"def f(x=[]):\n    pass\n", [Exploding, TL005])
    codes = [d.code for d in result.diagnostics]
    assert codes == ["TL000", "TL005"]
    assert "TL998" in result.diagnostics[0].message and "ZeroDivisionError" in result.diagnostics[0].message


def test_fixes_on_nested_targets_converge_over_rounds():
    src = "def f(a=[], b={}, c=set()):\n    return a, b, c\n"
    out = fix_code(src, [TL005])
    assert lint_code(out, [TL005]) == []
    assert out.count("is None") == 3


def test_diagnostics_are_sorted():
    src = "def g(b={}):\n    pass\ndef f(a=[]):\n    pass\n"
    rows = [d.row for d in lint_code(src, [TL005])]
    assert rows == sorted(rows)


def test_prefilter_skips_parse_but_still_checks_syntax():
    result = engine.lint("p.py", b"x = (\n", [TL001])
    assert [d.code for d in result.diagnostics] == ["TL000"]
    result = engine.lint("p.py", b"x = 1\n", [TL001])
    assert result.diagnostics == [] and not result.parsed


def test_newer_syntax_than_the_interpreter_is_not_an_error():
    src = b"type X = int\ndef f[T](x: T) -> T:\n    return x\n"
    assert engine.lint("new.py", src, [TL001]).diagnostics == []


# ------------------------------------------------------------- prefilter and ast screen


def test_files_ruled_out_by_text_or_screen_are_not_parsed(monkeypatch):
    text_only = engine.lint("a.py", b"x = 1\n", [TL005])
    assert text_only.diagnostics == [] and not text_only.parsed
    assert text_only.skipped_by == "prefilter"
    # the text says `def f(x=[]),`, but only in a comment: the screen rules TL005 out
    screened = engine.lint("b.py", b"# def f(x=[]),\nx = 1\n", [TL005])
    assert screened.diagnostics == [] and not screened.parsed
    assert screened.skipped_by == "screen"
    kept = engine.lint("c.py", b"def f(x=[]):\n    return x\n", [TL005])
    assert [d.code for d in kept.diagnostics] == ["TL005"] and kept.parsed
    monkeypatch.setattr(engine, "PREFILTER", False)
    for name, data in (("a.py", b"x = 1\n"), ("b.py", b"# def f(x=[]),\nx = 1\n")):
        result = engine.lint(name, data, [TL005])
        assert result.parsed and result.skipped_by is None and result.diagnostics == []


def test_screened_out_files_still_get_syntax_and_nesting_errors():
    deep = b"# def f(x=[]),\nx = " + b"- " * 1100 + b"1\n"
    [d] = engine.lint("d.py", deep, [TL005]).diagnostics
    assert d.code == "TL000" and "nested" in d.message and d.row == 2
    parens = b"# def f(x=[]),\nx = " + b"(" * 300 + b")" * 300 + b"\n"
    [d] = engine.lint("p.py", parens, [TL005]).diagnostics
    assert d.code == "TL000" and "too many nested parentheses" in d.message
    [d] = engine.lint("s.py", b"# def f(x=[]),\nx = (\n", [TL005]).diagnostics
    assert d.code == "TL000" and d.message.startswith("syntax error")


def test_newer_syntax_than_cpython_runs_every_rule_unscreened():
    """`def f[T]` is Python 3.12: where CPython cannot parse, LibCST decides and no rule is
    screened out."""
    import sys

    if sys.version_info >= (3, 12):
        import pytest

        pytest.skip("CPython parses PEP 695 here")
    result = engine.lint("g.py", b"def f[T](x=[]):\n    return x\n", [TL005])
    assert [d.code for d in result.diagnostics] == ["TL005"] and result.parsed


def test_screen_sees_imports_under_any_alias():
    from trainlint.screen import AstIndex

    index = AstIndex(engine._cpython_ast(
        "import torch as T\nfrom torch.nn import functional as F\n"
        "from torch import where as w\nfrom . import torch as local\n"
        "def f():\n    import numpy as T\n"
    ))
    assert index.imports["T"] == {"torch", "numpy"}
    assert index.imports["F"] == {"torch.nn.functional"}
    assert "local" not in index.imports
    call = engine._cpython_ast("T.cuda.FloatTensor\nw\n").body
    assert index.qualnames(call[0].value) == {"torch.cuda.FloatTensor", "numpy.cuda.FloatTensor"}
    assert index.resolves_to(call[1].value, {"torch.where"})


class BrokenScreen(Rule):
    """TL005 with a screen that raises: the rule must still run."""

    code = "TL997"
    name = "broken-screen"
    message = "x"
    VALID: list[Valid] = []
    INVALID: list[Invalid] = []

    @classmethod
    def screen(cls, index):
        raise ValueError("bug")

    def visit_FunctionDef(self, node):
        self.report(node.name)


def test_a_failing_screen_rules_nothing_out():
    result = engine.lint("x.py", b"def f():\n    pass\n", [BrokenScreen])
    assert [d.code for d in result.diagnostics] == ["TL997"]


# ------------------------------------------------------------- positions and fix edits


def _locate_reference(path: str, module: cst.Module, reports, want_edits: bool):
    """`engine._locate` the plain way: positions of the whole module, and each fix applied
    to the whole module (its code, not edits)."""
    from libcst.metadata import MetadataWrapper, PositionProvider

    from trainlint.diagnostic import Diagnostic
    from trainlint.layout import Replace

    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    out = []
    for report in reports:
        span = positions[report.node]
        diagnostic = Diagnostic(
            path, report.code, report.name, report.message, span.start.line,
            span.start.column + 1, span.end.line, span.end.column + 1, report.fix,
            report.help, data=report.data,
        )
        out.append(diagnostic)
        if want_edits and report.fix is not None:
            fixed = module.visit(Replace({id(old): new for old, new in report.fix.edits})).code
            out.append(fixed)
    return out


def apply_edits(text: str, edits) -> str:
    """The text with the edits (rows and columns 1-based, lines ending at "\n") applied."""
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    offset = lambda row, column: starts[row - 1] + column - 1
    spans = sorted(((offset(e.row, e.column), offset(e.end_row, e.end_column), e.content) for e in edits))
    for (_, end, _), (start, _, _) in zip(spans, spans[1:]):
        assert end <= start, "overlapping edits"
    for start, end, content in reversed(spans):
        text = text[:start] + content + text[end:]
    return text


def _locate_both(code: bytes, rules):
    from trainlint.suppress import Suppressions

    source = engine.decode(code)
    module = engine.parse(source)
    reports, _ = engine.run_rules(module, rules)
    stale = Suppressions(source.text).unused_reports(module, {r.code for r in rules})
    reports += stale
    fast = engine._locate("f.py", module, reports, True)
    fast = [
        item
        for d in fast
        for item in (dataclasses.replace(d, edits=[]), *([apply_edits(module.code, d.edits)] if d.fix else []))
    ]
    slow = _locate_reference("f.py", module, reports, True)
    return fast, slow


def _every_example():
    from trainlint.registry import all_rules

    for rule in all_rules():
        for example in rule.INVALID:
            yield example.code.encode()
    from pathlib import Path

    for path in sorted((Path(__file__).parent.parent / "fixtures").rglob("*.py")):
        yield path.read_bytes()


def test_statement_wise_positions_and_edits_equal_whole_module_ones():
    """`_locate` works on the top-level statements involved only; it must give what the
    position provider and a transform of the whole module give."""
    from trainlint.registry import all_rules

    extra = [
        b"# trainlint: ignore[TL005]\nimport os\n\n\ndef f(x=[]):\n    return x\n",
        b"def f(x=[]):\r\n    return x\r\n\r\nclass C:\r\n    def g(self, y={}):\r\n        pass",
        b"x = 1\n\n\ndef f(x=[]):  # noqa: TL005, TL999\n    return x\n# trainlint: ignore\n",
        b"\xef\xbb\xbfimport random\ndef f(a):\n    random.shuffle(a)\n    return a\n",
        b"def f(x=[]): return x\ndef g(y=[]):\n    if y: return y\n    return []",
    ]
    rules = list(all_rules())
    checked = 0
    for code in [*extra, *_every_example()]:
        try:
            fast, slow = _locate_both(code, rules)
        except engine.SourceError:
            continue
        assert fast == slow, code
        checked += len(fast)
    assert checked > 100


def _attribute_writes_by_visitor(cls: cst.ClassDef) -> dict:
    """The plain implementation of `attribute_writes`: a full walk of every method."""
    from trainlint.rules import _analysis

    out: dict = {}
    for name, func in _analysis.methods(cls).items():
        collector = _AttrWrites(name)
        walk(func, collector)
        for write in collector.writes:
            out.setdefault(write.target.attr.value, []).append(write)
    return out


class _AttrWrites(cst.CSTVisitor):
    def __init__(self, method: str) -> None:
        self.method = method
        self.writes: list = []

    def _add(self, node, target, augmented: bool) -> None:
        from trainlint.rules._analysis import AttributeWrite, self_attribute

        if self_attribute(target):
            self.writes.append(AttributeWrite(self.method, node, target, node.value, augmented))

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            for t in _flat(target.target):
                self._add(node, t, False)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._add(node, node.target, False)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._add(node, node.target, True)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return node.name.value == self.method  # nested functions have their own `self`


def _flat(node: cst.BaseExpression):
    if isinstance(node, (cst.Tuple, cst.List)):
        for element in node.elements:
            yield from _flat(element.value)
    else:
        yield node


def test_attribute_writes_equals_a_full_walk():
    """`_analysis.attribute_writes` walks statements only; it must find what the visitor
    over every node finds, in the same order."""
    from trainlint.rules import _analysis

    code = '''
class A(Base):
    def __init__(self, n):
        self.a = self.b = 0
        (self.c, [self.d, *self.e]) = 1, (2, 3)
        self.f: int = 1
        self.g += 1
        if n: self.h = 1
        elif n > 1:
            self.i = 2
        else:
            self.j = 3
        for _ in range(n):
            self.k = 1
        else:
            self.l = 1
        while n:
            self.m = 1
        try:
            self.n = 1
        except ValueError as exc:
            self.o = 1
        else:
            self.p = 1
        finally:
            self.q = 1
        with ctx() as c:
            self.r = 1
        try:
            pass
        except* TypeError:
            self.r2 = 1
        match n:
            case 1:
                self.s = 1
            case _:
                self.t = 1
        def helper(self):
            self.not_seen = 1
        def __init__(inner):
            self.u = 1
        class Inner:
            def __init__(self):
                self.v = 1
            def other(self):
                self.not_seen_either = 1
        lambda: None
    def step(self): self.w = 1; self.x -= 1
    async def run(self):
        async with a:
            self.y = 1
        async for _ in b:
            self.z = 1
'''
    from pathlib import Path

    from trainlint.registry import all_rules

    sources = [code] + [p.read_text() for p in sorted((Path(__file__).parent.parent / "fixtures").rglob("*.py"))]
    sources += [ex.code for rule in all_rules() for ex in (*rule.VALID, *rule.INVALID)]
    classes = 0
    for source in sources:
        try:
            module = cst.parse_module(source)
        except cst.ParserSyntaxError:
            continue

        class Classes(cst.CSTVisitor):
            found: list = []

            def visit_ClassDef(self, node):
                self.found.append(node)

        finder = Classes()
        finder.found = []
        module.visit(finder)
        for cls in finder.found:
            fast = _analysis.attribute_writes(cls)
            slow = _attribute_writes_by_visitor(cls)
            key = lambda d: {k: [(w.method, id(w.statement), id(w.target), w.augmented) for w in v] for k, v in d.items()}
            assert list(fast) == list(slow) and key(fast) == key(slow), cls.name.value
            classes += 1
    assert classes > 100
    assert "u" in _analysis.attribute_writes(cst.parse_module(code).body[0])


def test_walk_visits_like_libcst():
    """`traverse.walk` must call on_visit/on_leave on the nodes LibCST's own traversal
    visits, in the same order (rules see `context.stack`), and skip children like it."""
    from pathlib import Path

    from trainlint.registry import all_rules

    everything = '''
"""doc"""  # c
from . import (a as b,  # x
    c)
from m import *
import os.path as p, sys
@dec(1)
@dec2
async def f(x: int = 1, /, y=[], *a, z, **k) -> "T":
    global g
    nonlocal_ = lambda q=1, *r: q
    s = f"{x!r:>{y}} {z=} {'a' 'b'}" + u"z" "w", b"x" rb'y'
    t = [i async for i in a if i] or {i: j for i, j in k} or {*a} or (i for i in a)
    u = x if y else (yield z) ; v: list[int] = ...
    w = (q := 1) @ 2 ** -~+3 // 4 % 5 << 6 >> 7 & 8 ^ 9 | 10
    del w[1:2:3], w.x
    assert x, "m"
    async with a as (b, c), d: await e
    async for i, *j in k: continue
    else: pass
    try: raise X from Y
    except (A, B) as e: return
    else: pass
    finally: break
    try: pass
    except* E: pass
    match x:
        case [1, *rest] if rest: pass
        case {"k": v, **kw}: pass
        case Point(x=0, y=_) | None: pass
        case str() as s: pass
    while not x < y <= z is not w in v not in u: x += 1
    class C(B, metaclass=M): x = 1; y = 2
'''
    sources = [everything] + [
        p.read_text() for p in sorted((Path(__file__).parent.parent / "fixtures").rglob("*.py"))
    ]
    sources += [ex.code for rule in all_rules() for ex in (*rule.VALID, *rule.INVALID)]

    class Log(cst.CSTVisitor):
        def __init__(self, skip=()):
            self.events = []
            self.skip = skip

        def on_visit(self, node):
            self.events.append(("visit", id(node)))
            return type(node).__name__ not in self.skip

        def on_leave(self, original_node):
            self.events.append(("leave", id(original_node)))

    for source in sources:
        module = engine.parse(engine.decode(source.encode()))  # pre-3.7 `async=` files too
        for skip in ((), ("FunctionDef", "Call")):
            ours, theirs = Log(skip), Log(skip)
            walk(module, ours)
            module.visit(theirs)
            assert ours.events == theirs.events


def test_the_engine_names_no_rule_code():
    """What the engine does differently for a rule comes from the rule's metadata
    (`reports_unused_suppressions`), not from its code."""
    import re
    from pathlib import Path

    for module in (engine, __import__("trainlint.layout").layout, __import__("trainlint.tokens").tokens):
        assert not re.search(r"TL(?!000)\d{3}", Path(module.__file__).read_text()), module.__name__
    assert [r.code for r in __import__("trainlint.registry").registry.all_rules()
            if r.reports_unused_suppressions] == ["TL901"]
