"""One file's semantic model, built from CPython's `ast` once and lazily, shared by the rules.

Facts come in two layers. The *declarations* (classes, methods, imports) come from a walk
over statements only; the *flow* facts (scopes, bindings with their guards, call sites,
attribute uses and `self` accesses) from a walk over every node, made a body at a time:
the module's first, a function's or class's when something in it is first asked for.
"""

from __future__ import annotations

import ast
import enum
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Iterator

from trainlint.semantic import vocabulary as vocab
from trainlint.semantic.imports import ImportTable, dotted_name

FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
Function = ast.FunctionDef | ast.AsyncFunctionDef


class Policy(enum.Enum):
    """How `SemanticModel.reaching` follows control flow."""

    # the last binding before the use, in the very block of the use
    STRAIGHT_LINE = "straight-line"
    # the last binding before the use, in the block of the use or one enclosing it
    NESTED = "nested"
    # every binding that may be the one in force at the use (branches, loops)
    MAY_REACH = "may-reach"


@dataclass(eq=False, slots=True)
class Guard:
    """A block a statement runs in: `kind` is if, else, loop, loop-else, try, except,
    try-else, finally, with or match; `node` the compound statement."""

    kind: str
    node: ast.stmt


@dataclass(eq=False)
class Scope:
    kind: str  # module, class, function, lambda, comprehension
    node: ast.AST
    parent: Scope | None
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    children: list[Scope] = field(default_factory=list)
    calls: list[CallSite] = field(default_factory=list)
    attributes: list[ast.Attribute] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class Binding:
    """One place that binds `name`. `kind`: assign, augmented, annotated, for-target,
    with-target, walrus, import, parameter, global (also `nonlocal`), del, def, class,
    except, match. `value` is the assigned expression where there is one for this name
    alone (not for unpacking)."""

    name: str
    kind: str
    node: ast.AST
    statement: ast.stmt
    value: ast.expr | None
    scope: Scope
    guards: tuple[Guard, ...]


@dataclass(eq=False, slots=True)
class Place:
    """Where a statement is: its scope, innermost class and function, and guards (the
    blocks between it and its scope)."""

    scope: Scope
    cls: ClassInfo | None
    function: Function | None
    guards: tuple[Guard, ...]


@dataclass(frozen=True, eq=False)
class CallSite:
    node: ast.Call
    scope: Scope
    statement: ast.stmt
    guards: tuple[Guard, ...]
    imports: ImportTable = field(repr=False)

    @cached_property
    def qualname(self) -> str | None:
        """The callee through the imports; None when its head is not imported."""
        return self.imports.qualname(self.node.func)

    @property
    def callee(self) -> str | None:
        """The last name of the callee: `step` for `opt.step()`, `f` for `f()`."""
        func = self.node.func
        if isinstance(func, ast.Attribute):
            return func.attr
        return func.id if isinstance(func, ast.Name) else None

    @property
    def receiver(self) -> str | None:
        """`opt` for `opt.step()`: the plain name a method is called on."""
        func = self.node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return func.value.id
        return None

    def passes(self, name: str) -> bool:
        """Whether the plain name is an argument (positional, starred or keyword)."""
        args = [a.value if isinstance(a, ast.Starred) else a for a in self.node.args]
        return any(
            isinstance(a, ast.Name) and a.id == name
            for a in [*args, *(k.value for k in self.node.keywords)]
        )


@dataclass(eq=False, slots=True)
class SelfAccess:
    """`<receiver>.attr` in a method, the receiver being the method's first parameter."""

    cls: ClassInfo
    method: Function
    attr: str
    node: ast.Attribute
    statement: ast.stmt
    write: bool  # a store, augmented store or `del`
    value: ast.expr | None  # the assigned value, for `self.x = value` and `self.x += value`
    augmented: bool


@dataclass(eq=False)
class ClassInfo:
    node: ast.ClassDef
    scope: Scope | None  # the scope the class statement is in (flow layer only)
    top_level: bool  # a statement of the module's body

    @property
    def name(self) -> str:
        return self.node.name

    @cached_property
    def methods(self) -> dict[str, Function]:
        """Functions defined directly in the class body (the last one of each name)."""
        return {s.name: s for s in self.node.body if isinstance(s, FUNCTIONS)}


def receiver(method: Function) -> str | None:
    """The first positional parameter's name, the `self` of a method."""
    params = [*method.args.posonlyargs, *method.args.args]
    return params[0].arg if params else None


def is_stub(function: Function) -> bool:
    """A body of `...` or `raise` statements (and string constants), nothing else."""
    stub = False
    for stmt in function.body:
        value = stmt.value if isinstance(stmt, ast.Expr) else None
        if isinstance(stmt, ast.Raise) or (isinstance(value, ast.Constant) and value.value is Ellipsis):
            stub = True
        elif not (isinstance(value, ast.Constant) and type(value.value) in (str, bytes)):
            return False
    return stub


def position(node: ast.AST) -> tuple[int, int]:
    return node.lineno, node.col_offset


class SemanticModel:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self._derived: dict[tuple[ClassInfo, Callable[[str], bool]], bool] = {}

    # ------------------------------------------------------------- declarations

    @cached_property
    def _declarations(self) -> _Declarations:
        found = _Declarations()
        top = set(map(id, self.tree.body))
        stack: list[tuple[ast.stmt, ast.stmt | None]] = [(s, None) for s in reversed(self.tree.body)]
        while stack:
            stmt, owner = stack.pop()
            kind = stmt.__class__
            if kind is ast.ClassDef:
                found.classes.append(ClassInfo(stmt, None, id(stmt) in top))
            elif kind is ast.Import or kind is ast.ImportFrom:
                found.imports.append(stmt)
            if kind in _COMPOUND:
                if kind is ast.ClassDef or kind in FUNCTIONS:
                    found.owners[id(stmt)] = owner
                    owner = stmt
                nested = [s for _, block in _blocks(stmt) for s in block]
                stack.extend((s, owner) for s in reversed(nested))
        return found

    def _owners(self, node: ast.AST) -> list[ast.stmt]:
        """The functions and classes around a function or class statement, outermost first."""
        owners = self._declarations.owners
        out = []
        owner = owners.get(id(node))
        while owner is not None:
            out.append(owner)
            owner = owners.get(id(owner))
        return out[::-1]

    @cached_property
    def imports(self) -> ImportTable:
        return ImportTable(self._declarations.imports)

    @property
    def classes(self) -> list[ClassInfo]:
        """Every class of the file, nested ones included, in source order."""
        return self._declarations.classes

    @cached_property
    def _class_of_node(self) -> dict[int, ClassInfo]:
        return {id(c.node): c for c in self.classes}

    def class_info(self, node: ast.ClassDef) -> ClassInfo:
        return self._class_of_node[id(node)]

    @cached_property
    def top_level_classes(self) -> dict[str, ClassInfo]:
        """Classes defined in the module's body, by name (the last definition wins)."""
        return {c.name: c for c in self.classes if c.top_level}

    def base_names(self, cls: ClassInfo) -> list[str]:
        """Each base as its qualified name when its head is imported, else as written."""
        out = []
        for base in cls.node.bases:
            name = self.imports.qualname(base) or dotted_name(base)
            if name:
                out.append(name)
        return out

    def chain(self, cls: ClassInfo) -> list[ClassInfo]:
        """cls and its ancestors among the top-level classes of the file, nearest first."""
        local = self.top_level_classes
        out, names = [cls], {cls.name}
        i = 0
        while i < len(out):
            for base in self.base_names(out[i]):
                if base in local and base not in names:
                    names.add(base)
                    out.append(local[base])
            i += 1
        return out

    def derives(self, cls: ClassInfo, test: Callable[[str], bool]) -> bool:
        """Whether a base of cls or of a local ancestor passes `test` (memoised per test)."""
        key = (cls, test)
        known = self._derived.get(key)
        if known is None:
            known = self._derived[key] = any(
                test(base) for klass in self.chain(cls) for base in self.base_names(klass)
            )
        return known

    def is_module(self, cls: ClassInfo) -> bool:
        """A subclass of `torch.nn.Module`, of any `torch.nn` class (layers, losses) or of
        a framework's module (LightningModule, PreTrainedModel), directly or through local
        classes."""
        return self.derives(cls, self._module_base)

    def _module_base(self, base: str) -> bool:
        return (
            vocab.is_torch_nn(base)
            or base in vocab.MODULE_AS_WRITTEN
            or base in vocab.FRAMEWORK_MODULES
            or (base.startswith("nn.") and self.imports.binds("nn", "torch"))
        )

    def overrides(self, cls: ClassInfo, method: str) -> list[ClassInfo]:
        """The local ancestors of cls (itself excluded) that define `method`."""
        return [c for c in self.chain(cls)[1:] if method in c.methods]

    # --------------------------------------------------------------------- flow

    @cached_property
    def _flow(self) -> _Builder:
        builder = _Builder(self)
        builder.run(self.tree)
        return builder

    @property
    def module_scope(self) -> Scope:
        return self._flow.module_scope

    def scope_of(self, node: ast.AST) -> Scope:
        """The scope a module, class, function, lambda or comprehension node opens."""
        flow = self._flow
        scope = flow.scopes.get(id(node))
        if scope is None:  # in a body not walked yet
            for owner in self._owners(node):
                flow.enter(owner)
            scope = flow.scopes.get(id(node))
        if scope is None:  # a lambda or comprehension
            flow.finish()
            scope = flow.scopes[id(node)]
        flow.enter(node)
        return scope

    def place(self, stmt: ast.stmt) -> Place:
        flow = self._flow
        place = flow.places.get(id(stmt))
        if place is None:
            flow.finish()
            place = flow.places[id(stmt)]
        return place

    @cached_property
    def calls(self) -> list[CallSite]:
        """Every call of the file, in source order."""
        self._flow.finish()
        return sorted(self._flow.calls, key=lambda c: position(c.node))

    def calls_to(self, *qualnames: str) -> list[CallSite]:
        wanted = set(qualnames)
        return [c for c in self.calls if c.qualname in wanted]

    def calls_in(self, scope: Scope) -> Iterator[CallSite]:
        """Call sites in the scope and the scopes nested in it."""
        for inner in self._flow.within(scope):
            yield from inner.calls

    def attributes_in(self, scope: Scope) -> Iterator[ast.Attribute]:
        """Attribute expressions (`x.attr`) in the scope and the scopes nested in it."""
        for inner in self._flow.within(scope):
            yield from inner.attributes

    def attribute_names_in(self, scope: Scope) -> set[str]:
        return {node.attr for node in self.attributes_in(scope)}

    def super_attributes_in(self, scope: Scope) -> set[str]:
        """The attributes read on `super()` / `super(C, self)` in the scope and those nested."""
        return {
            node.attr for node in self.attributes_in(scope)
            if isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "super"
        }

    def self_accesses(self, cls: ClassInfo) -> list[SelfAccess]:
        """Reads and writes of `self.<attr>` in the methods of cls (and functions nested
        in them), in source order."""
        flow = self._flow
        for stmt in cls.node.body:
            if isinstance(stmt, FUNCTIONS):
                list(flow.within(self.scope_of(stmt)))  # walks the method's bodies
        return sorted(flow.self_accesses.get(cls, []), key=lambda a: position(a.node))

    def self_writes(self, cls: ClassInfo, attr: str | None = None) -> list[SelfAccess]:
        return [a for a in self.self_accesses(cls) if a.write and attr in (None, a.attr)]

    def bindings(self, scope: Scope, name: str) -> list[Binding]:
        return scope.bindings.get(name, [])

    def lookup(self, name: str, scope: Scope) -> list[Binding]:
        """The bindings a use of `name` in `scope` refers to, by Python's scoping rules:
        the innermost function scope binding it (class scopes only for their own body),
        then the module; a `global`/`nonlocal` declaration is followed."""
        current: Scope | None = scope
        while current is not None:
            if current is scope or current.kind != "class":
                found = current.bindings.get(name)
                if found:
                    if any(b.kind == "global" for b in found) and current.kind != "module":
                        current = current.parent
                        continue
                    return found
            current = current.parent
        return []

    def reaching(self, name: str, at: ast.stmt, policy: Policy) -> tuple[Binding, ...]:
        """The bindings of `name` in the scope of statement `at` that are in force there
        under `policy` (see `Policy`). Bindings made by `at` itself do not count."""
        place = self.place(at)
        where = position(at)
        found = [
            b for b in place.scope.bindings.get(name, ())
            if b.statement is not at and position(b.statement) < where
        ]
        if policy is Policy.MAY_REACH:
            return self._may_reach(name, at, place, found)
        if not found:
            return ()
        last = found[-1]
        if policy is Policy.STRAIGHT_LINE:
            return (last,) if last.guards == place.guards else ()
        return (last,) if _prefix(last.guards, place.guards) else ()

    def _may_reach(self, name: str, at: ast.stmt, place: Place, before: list[Binding]) -> tuple[Binding, ...]:
        out: list[Binding] = []
        for binding in reversed(before):
            out.append(binding)
            if _prefix(binding.guards, place.guards):
                break  # it is in force on every path to `at`: earlier ones are overwritten
        out.reverse()
        loops = {id(g.node) for g in place.guards if g.kind == "loop"}
        if loops:  # the next iteration sees what the loop body binds after `at`
            where = position(at)
            out += [
                b for b in place.scope.bindings.get(name, ())
                if position(b.statement) > where and any(id(g.node) in loops for g in b.guards)
            ]
        return tuple(out)


def _prefix(outer: tuple[Guard, ...], inner: tuple[Guard, ...]) -> bool:
    return len(outer) <= len(inner) and all(a is b for a, b in zip(outer, inner))


def _blocks(stmt: ast.stmt) -> Iterator[tuple[str | None, list[ast.stmt]]]:
    """(guard kind, statements) of each block of a compound statement, in source order;
    the guard kind is None for the body of a function or class (a new scope)."""
    if isinstance(stmt, (*FUNCTIONS, ast.ClassDef)):
        yield None, stmt.body
    elif isinstance(stmt, ast.If):
        yield "if", stmt.body
        yield "else", stmt.orelse
    elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
        yield "loop", stmt.body
        yield "loop-else", stmt.orelse
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        yield "with", stmt.body
    elif isinstance(stmt, _TRIES):
        yield "try", stmt.body
        for handler in stmt.handlers:
            yield "except", handler.body
        yield "try-else", stmt.orelse
        yield "finally", stmt.finalbody
    elif isinstance(stmt, ast.Match):
        for case in stmt.cases:
            yield "match", case.body


_TRIES = (ast.Try, ast.TryStar) if hasattr(ast, "TryStar") else (ast.Try,)
_COMPREHENSION_TYPES = frozenset(COMPREHENSIONS)
_COMPOUND = frozenset({
    *FUNCTIONS, ast.ClassDef, ast.If, ast.For, ast.AsyncFor, ast.While, ast.With,
    ast.AsyncWith, *_TRIES, ast.Match,
})
# Fields that hold no expression worth walking: contexts, operators, identifiers, constants.
_SKIPPED_FIELDS = frozenset({
    "ctx", "op", "ops", "type_comment", "kind", "id", "attr", "name", "asname", "module",
    "level", "arg", "conversion", "is_async",
})
# type -> (fields holding lists of nodes, fields holding one node or None)
_SHAPES: dict[type, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _shape(node: ast.AST) -> tuple[tuple[str, ...], tuple[str, ...]]:
    kind = node.__class__
    names = [f for f in kind._fields if f not in _SKIPPED_FIELDS]
    # a sequence field of the grammar is always a list, an optional one never is
    lists = tuple(f for f in names if isinstance(getattr(node, f, None), list))
    singles = tuple(f for f in names if f not in lists)
    shape = _SHAPES[kind] = (lists, singles)
    return shape
_TARGET_KINDS = {ast.AugAssign: "augmented", ast.AnnAssign: "annotated"}


@dataclass(frozen=True)
class _Method:
    cls: ClassInfo
    function: Function
    receiver: str


@dataclass
class _Declarations:
    classes: list[ClassInfo] = field(default_factory=list)
    imports: list[ast.Import | ast.ImportFrom] = field(default_factory=list)
    # function or class statement id -> the function or class statement around it
    owners: dict[int, ast.stmt | None] = field(default_factory=dict)


class _Builder:
    """The flow layer: one walk over every node of the tree, a body at a time: the body
    of a function or class is walked the first time something in it is asked for."""

    def __init__(self, model: SemanticModel) -> None:
        self.model = model
        self.scopes: dict[int, Scope] = {}
        self.places: dict[int, Place] = {}
        self.calls: list[CallSite] = []
        self.self_accesses: dict[ClassInfo, list[SelfAccess]] = {}
        # function node id -> what its body's walk needs, until it is walked
        self.pending: dict[int, tuple] = {}

    def run(self, tree: ast.Module) -> None:
        self.module_scope = self._scope("module", tree, None)
        self._block(tree.body, self.module_scope, None, None, (), None)

    def enter(self, node: ast.AST) -> None:
        """Walks the body of the function or class `node`, if not done yet."""
        job = self.pending.pop(id(node), None)
        if job is not None:
            self._block(*job)

    def finish(self) -> None:
        """Walks every function body not walked yet."""
        while self.pending:
            self._block(*self.pending.pop(next(iter(self.pending))))

    def within(self, scope: Scope) -> Iterator[Scope]:
        """The scope and every scope nested in it, their function bodies walked."""
        stack = [scope]
        while stack:
            scope = stack.pop()
            self.enter(scope.node)
            yield scope
            stack.extend(reversed(scope.children))

    def _scope(self, kind: str, node: ast.AST, parent: Scope | None) -> Scope:
        scope = Scope(kind, node, parent)
        if parent is not None:
            parent.children.append(scope)
        self.scopes[id(node)] = scope
        return scope

    @staticmethod
    def _bind(scope, name, kind, node, statement, value, guards) -> None:
        scope.bindings.setdefault(name, []).append(
            Binding(name, kind, node, statement, value, scope, guards)
        )

    # -- statements

    def _block(self, body, scope, cls, function, guards, method) -> None:
        for stmt in body:
            self.places[id(stmt)] = Place(scope, cls, function, guards)
            self._statement(stmt, scope, cls, function, guards, method)

    def _statement(self, stmt, scope, cls, function, guards, method) -> None:
        bind = self._bind
        if isinstance(stmt, FUNCTIONS):
            self._expressions(
                [*stmt.decorator_list, *_defaults(stmt.args), *_annotations(stmt)],
                scope, stmt, guards, method,
            )
            bind(scope, stmt.name, "def", stmt, stmt, None, guards)
            inner = self._scope("function", stmt, scope)
            self._parameters(stmt.args, inner, stmt)
            if scope.kind == "class" and cls is not None and method is None:
                me = receiver(stmt)
                static = any(dotted_name(d) == "staticmethod" for d in stmt.decorator_list)
                method = _Method(cls, stmt, me) if me and not static else None
            elif method is not None and method.receiver in _parameter_names(stmt.args):
                method = None  # the nested function's own parameter shadows the receiver
            self.pending[id(stmt)] = (stmt.body, inner, cls, stmt, (), method)
            return
        if isinstance(stmt, ast.ClassDef):
            self._expressions(
                [*stmt.decorator_list, *stmt.bases, *(k.value for k in stmt.keywords)],
                scope, stmt, guards, method,
            )
            bind(scope, stmt.name, "class", stmt, stmt, None, guards)
            info = self.model.class_info(stmt)
            info.scope = scope
            inner = self._scope("class", stmt, scope)
            self.pending[id(stmt)] = (stmt.body, inner, info, function, (), None)
            return
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                if alias.name != "*":
                    local = alias.asname or alias.name.split(".")[0]
                    bind(scope, local, "import", alias, stmt, None, guards)
            return
        if isinstance(stmt, (ast.Global, ast.Nonlocal)):
            for name in stmt.names:
                bind(scope, name, "global", stmt, stmt, None, guards)
            return
        walk = self._expressions
        if isinstance(stmt, ast.If):
            walk([stmt.test], scope, stmt, guards, method)
            self._block(stmt.body, scope, cls, function, (*guards, Guard("if", stmt)), method)
            self._block(stmt.orelse, scope, cls, function, (*guards, Guard("else", stmt)), method)
        elif isinstance(stmt, (ast.For, ast.AsyncFor, ast.While)):
            loop = (*guards, Guard("loop", stmt))
            if isinstance(stmt, ast.While):
                walk([stmt.test], scope, stmt, guards, method)
            else:
                walk([stmt.iter], scope, stmt, guards, method)
                walk([stmt.target], scope, stmt, loop, method, "for-target")
            self._block(stmt.body, scope, cls, function, loop, method)
            self._block(stmt.orelse, scope, cls, function, (*guards, Guard("loop-else", stmt)), method)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)):
            inside = (*guards, Guard("with", stmt))
            for item in stmt.items:
                walk([item.context_expr], scope, stmt, guards, method)
                if item.optional_vars is not None:
                    walk([item.optional_vars], scope, stmt, inside, method, "with-target")
            self._block(stmt.body, scope, cls, function, inside, method)
        elif isinstance(stmt, _TRIES):
            self._block(stmt.body, scope, cls, function, (*guards, Guard("try", stmt)), method)
            for handler in stmt.handlers:
                inside = (*guards, Guard("except", stmt))
                if handler.type is not None:
                    walk([handler.type], scope, stmt, guards, method)
                if handler.name:
                    bind(scope, handler.name, "except", handler, stmt, None, inside)
                self._block(handler.body, scope, cls, function, inside, method)
            self._block(stmt.orelse, scope, cls, function, (*guards, Guard("try-else", stmt)), method)
            self._block(stmt.finalbody, scope, cls, function, (*guards, Guard("finally", stmt)), method)
        elif isinstance(stmt, ast.Match):
            walk([stmt.subject], scope, stmt, guards, method)
            for case in stmt.cases:
                inside = (*guards, Guard("match", stmt))
                for node in ast.walk(case.pattern):
                    name = getattr(node, "name", None) or getattr(node, "rest", None)
                    if isinstance(name, str):
                        bind(scope, name, "match", node, stmt, None, inside)
                if case.guard is not None:
                    walk([case.guard], scope, stmt, inside, method)
                self._block(case.body, scope, cls, function, inside, method)
        else:
            self._simple(stmt, scope, guards, method)

    def _simple(self, stmt, scope, guards, method) -> None:
        """A statement without blocks: its expressions, and the names it binds."""
        walk = self._expressions
        if isinstance(stmt, ast.Assign):
            walk([stmt.value], scope, stmt, guards, method)
            for target in stmt.targets:
                direct = stmt.value if isinstance(target, (ast.Name, ast.Attribute)) else None
                walk([target], scope, stmt, guards, method, "assign", direct)
        elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)):
            if stmt.value is not None:
                walk([stmt.value], scope, stmt, guards, method)
            if isinstance(stmt, ast.AnnAssign):
                walk([stmt.annotation], scope, stmt, guards, method)
            walk([stmt.target], scope, stmt, guards, method, _TARGET_KINDS[type(stmt)], stmt.value)
        elif isinstance(stmt, ast.Delete):
            walk(stmt.targets, scope, stmt, guards, method, "del")
        else:
            children = [c for c in ast.iter_child_nodes(stmt) if isinstance(c, ast.expr)]
            walk(children, scope, stmt, guards, method)

    def _parameters(self, args: ast.arguments, scope: Scope, statement: ast.stmt) -> None:
        for arg in _parameters(args):
            self._bind(scope, arg.arg, "parameter", arg, statement, None, ())

    # -- expressions

    def _expressions(self, nodes, scope, statement, guards, method, kind=None, value=None) -> None:
        """Walks expressions (without recursion, except into lambdas and comprehensions).
        `kind` is the binding kind of the names stored in them, `value` the value of a
        direct target."""
        if kind is not None:
            for node in nodes:
                self._target(node, scope, statement, guards, method, kind, value)
            return
        me = method.receiver if method is not None else None
        stack = list(reversed(nodes))
        pop, push = stack.pop, stack.append
        while stack:
            node = pop()
            cls = node.__class__
            if cls is ast.Name or cls is ast.Constant or node is None:  # None: `{**d}`'s key
                continue
            if cls is ast.Attribute:
                scope.attributes.append(node)
                inner = node.value
                if me is not None and inner.__class__ is ast.Name and inner.id == me:
                    self._self_access(method, node, statement, None)
                else:
                    push(inner)
                continue
            if cls is ast.Call:
                site = CallSite(node, scope, statement, guards, self.model.imports)
                self.calls.append(site)
                scope.calls.append(site)
            elif cls is ast.Lambda:
                stack.extend(_defaults(node.args))
                inner_scope = self._scope("lambda", node, scope)
                self._parameters(node.args, inner_scope, statement)
                self._expressions([node.body], inner_scope, statement, guards, method)
                continue
            elif cls in _COMPREHENSION_TYPES:
                self._comprehension(node, scope, statement, guards, method)
                continue
            elif cls is ast.NamedExpr:
                target_scope = scope
                while target_scope.kind == "comprehension":
                    target_scope = target_scope.parent
                self._bind(target_scope, node.target.id, "walrus", node, statement, node.value, guards)
                push(node.value)
                continue
            lists, singles = _SHAPES.get(cls) or _shape(node)
            for name in lists:
                stack.extend(reversed(getattr(node, name)))
            for name in singles:
                child = getattr(node, name)
                if child is not None:
                    push(child)

    def _target(self, node, scope, statement, guards, method, kind, value) -> None:
        """A binding target: names are bound, attributes and subscripts are walked."""
        cls = node.__class__
        if cls is ast.Name:
            self._bind(scope, node.id, kind, node, statement, value, guards)
        elif cls is ast.Tuple or cls is ast.List:
            for element in node.elts:
                self._target(element, scope, statement, guards, method, kind, None)
        elif cls is ast.Starred:
            self._target(node.value, scope, statement, guards, method, kind, None)
        elif cls is ast.Attribute:
            scope.attributes.append(node)
            inner = node.value
            if method is not None and inner.__class__ is ast.Name and inner.id == method.receiver:
                self._self_access(method, node, statement, value)
            else:
                self._expressions([inner], scope, statement, guards, method)
        else:
            self._expressions([node], scope, statement, guards, method)

    def _comprehension(self, node, scope: Scope, statement, guards, method) -> None:
        """Opens the comprehension's scope; its first iterable is evaluated outside it."""
        inner = self._scope("comprehension", node, scope)
        for i, generator in enumerate(node.generators):
            self._expressions([generator.iter], scope if i == 0 else inner, statement, guards, method)
            self._target(generator.target, inner, statement, guards, method, "for-target", None)
            self._expressions(generator.ifs, inner, statement, guards, method)
        elements = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
        self._expressions(elements, inner, statement, guards, method)

    def _self_access(self, method: _Method, node, statement, bound) -> None:
        write = not isinstance(node.ctx, ast.Load)
        augmented = isinstance(statement, ast.AugAssign) and statement.target is node
        access = SelfAccess(
            method.cls, method.function, node.attr, node, statement, write,
            bound if write else None, augmented,
        )
        self.self_accesses.setdefault(method.cls, []).append(access)


def _parameters(args: ast.arguments) -> list[ast.arg]:
    out = [*args.posonlyargs, *args.args]
    if args.vararg:
        out.append(args.vararg)
    out += args.kwonlyargs
    if args.kwarg:
        out.append(args.kwarg)
    return out


def _parameter_names(args: ast.arguments) -> set[str]:
    return {a.arg for a in _parameters(args)}


def _defaults(args: ast.arguments) -> list[ast.expr]:
    return [*args.defaults, *(d for d in args.kw_defaults if d is not None)]


def _annotations(func: Function) -> list[ast.expr]:
    out = [a.annotation for a in _parameters(func.args) if a.annotation is not None]
    return out + ([func.returns] if func.returns is not None else [])
