"""Evaluation-loop analysis shared by TL107 and TL108: the model's mode along a function,
grad-disabling contexts, loops over loaders that call a model, and in-file callers; and the
same analysis, loosened, on CPython's ast for the two rules' screens.
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass, field
from typing import ClassVar

import libcst as cst

from trainlint.imports import ImportTable, dotted_name
from trainlint.rules._analysis import Visitor
from trainlint.rules._loops import LOADER, MODEL, Roles, module_roles, role_from_name
from trainlint.screen import dotted_name as screen_dotted
from trainlint.screen import walk as screen_walk
from trainlint.traverse import walk

EVAL = "eval"
TRAIN = "train"
UNKNOWN = "unknown"

# Function names that mark an evaluation function (TL107 also accepts `test*`).
EVAL_NAME = re.compile(
    r"^_*(?:val|valid|validate|validation|eval|evaluate|evaluation)(?:_|\d|$)"
    r"|^_*(?:val|valid|validate|eval|evaluate)[A-Z]",
)
TEST_NAME = re.compile(r"^_*test(?:_|\d|$|[A-Z])|^_*testing(?:_|$)")
# Lightning/hook-style methods: the framework sets mode and grad state itself.
HOOK_NAME = re.compile(
    r"^(?:on_|_?(?:training|validation|val|test|predict)_(?:step|step_end|epoch_end|"
    r"epoch_start|batch_start|batch_end|start|end)$)"
)
# Callees spelled like a model that are really factories or utilities.
_NOT_A_MODEL_CALL = re.compile(
    r"^(?:get|build|create|load|make|init|save|setup|prepare|export|wrap|unwrap|is|has|to|"
    r"copy|update|eval|evaluate|run|train|test|validate|print|log|summar\w*|count|check)_",
    re.IGNORECASE,
)
# Callees that may receive the model without changing its mode.
HARMLESS_CALLEES = frozenset(
    {
        "print", "len", "isinstance", "hasattr", "getattr", "type", "id", "str", "repr",
        "deepcopy", "copy", "update", "update_parameters", "save", "watch", "log", "info",
        "debug", "warning", "clip_grad_norm_", "clip_grad_value_", "clip_grad_norm",
        "count_parameters", "sum", "format", "append", "extend", "zip", "enumerate",
    }
)
# Module methods that return the module itself with its mode unchanged.
PASSTHROUGH = frozenset({"to", "cuda", "cpu", "float", "half", "double", "bfloat16", "to_empty"})


def passthrough(call: cst.Call, model: str) -> bool:
    func = call.func
    return (
        isinstance(func, cst.Attribute)
        and func.attr.value in PASSTHROUGH
        and dotted_name(func.value) == model
    )


# Receivers that are meant to stay in evaluation mode while another model trains.
FROZEN_NAME = re.compile(
    r"(?:^|_)(?:teacher|ema|target|frozen|ref|reference|swa|avg|average|momentum|"
    r"pretrained|old|fixed|shadow)(?:_|\d|$)",
    re.IGNORECASE,
)
_BACKWARD_QUALNAMES = frozenset(
    {"torch.autograd.backward", "torch.autograd.grad", "torch.autograd.functional.jacobian"}
)


def grad_disabling(expr: cst.BaseExpression, imports: ImportTable, *, loose: bool) -> bool:
    """Whether a `with` item or decorator turns gradient tracking off.

    Strict (TL107: is this an evaluation region?): `no_grad`, `inference_mode` (not
    `inference_mode(False)`), `set_grad_enabled(False)`, and project wrappers whose name
    contains `no_grad` or `inference_mode`. Loose (TL108: might the caller
    have disabled it?): any context or decorator whose name mentions `grad` (except
    `enable_grad`), `inference` or `eval`, e.g. yolov5's `smart_inference_mode()`.
    """
    call = expr if isinstance(expr, cst.Call) else None
    func = call.func if call is not None else expr
    name = imports.qualname(func) or dotted_name(func) or ""
    arg = call.args[0].value if call is not None and call.args else None
    flag = arg.value if isinstance(arg, cst.Name) and arg.value in ("True", "False") else None
    return disables_grad(name.rsplit(".", 1)[-1], flag, loose=loose)


def disables_grad(last: str, flag: str | None, *, loose: bool) -> bool:
    """`grad_disabling` for a callee's last name and its first argument's literal
    (`flag`: "True", "False", or None for anything else)."""
    if last == "no_grad":
        return True
    if last == "inference_mode":
        return flag != "False"
    if last == "set_grad_enabled":
        return flag == "False" or (loose and flag != "True")
    low = last.lower()
    if ("no_grad" in low or "inference_mode" in low) and flag != "False":
        return True  # a project's wrapper, e.g. yolov5's `smart_inference_mode()`
    if loose:
        return ("grad" in low and "enable_grad" not in low) or "inference" in low or "eval" in low
    return False


def under_model_context(ancestors: tuple[cst.CSTNode, ...], model: str) -> bool:
    """Inside `with SomeContext(model):`, a project helper that may switch the model's mode
    and gradient tracking (e.g. an `EvalMode(model)` context manager)."""
    for node in ancestors:
        if not isinstance(node, cst.With):
            continue
        for item in node.items:
            if isinstance(item.item, cst.Call):
                for arg in item.item.args:
                    name = dotted_name(arg.value)
                    if name is not None and related(name, model):
                        return True
    return False


@dataclass
class CallInfo:
    node: cst.Call
    order: int
    func: str | None  # dotted callee, e.g. "model.eval"
    method: str | None  # last attribute when the callee is an attribute
    receiver: str | None  # dotted receiver of a method call
    ancestors: tuple[cst.CSTNode, ...]  # compound statements in the scope, outermost first


@dataclass
class LoopInfo:
    node: cst.For | cst.While
    start: int
    end: int
    ancestors: tuple[cst.CSTNode, ...]

    def contains(self, order: int) -> bool:
        return self.start <= order <= self.end


@dataclass
class Scope:
    """One function body (or the module's top level), nested definitions excluded."""

    calls: list[CallInfo] = field(default_factory=list)
    loops: list[LoopInfo] = field(default_factory=list)
    # Local names bound from a call: name -> (order, the call).
    bindings: dict[str, list[tuple[int, cst.Call]]] = field(default_factory=dict)
    other_grad_switch: bool = False  # a `set_grad_enabled(...)`/`no_grad()` outside `with`
    requires_grad: bool = False  # mentions `.requires_grad` (frozen or input-gradient code)


# Node types are compared exactly (LibCST's classes are final): `isinstance` on them goes
# through `ABCMeta.__instancecheck__`, a large share of a scan's cost.
_SCOPE_BOUNDARIES = frozenset({cst.FunctionDef, cst.ClassDef, cst.Lambda})
_COMPOUND = frozenset({cst.For, cst.While, cst.With, cst.If, cst.Try, cst.TryStar, cst.Match})
_LOOPS = frozenset({cst.For, cst.While})


class _ScopeScan(Visitor):
    def __init__(self, imports: ImportTable) -> None:
        self.imports = imports
        self.scope = Scope()
        self.n = 0
        self.path: list[cst.CSTNode] = []
        self.loop_starts: dict[int, int] = {}
        self._with_items: set[int] = set()

    def on_visit(self, node: cst.CSTNode) -> bool:
        kind = type(node)
        if kind in _SCOPE_BOUNDARIES:
            return False
        self.n += 1
        if kind is cst.WithItem:
            self._with_items.add(id(node.item))
        elif kind is cst.Call:
            self._call(node)
        elif kind is cst.Attribute and node.attr.value in ("requires_grad", "requires_grad_"):
            self.scope.requires_grad = True
        elif kind is cst.Assign and type(node.value) is cst.Call:
            for target in node.targets:
                name = dotted_name(target.target)
                if name is not None:
                    self.scope.bindings.setdefault(name, []).append((self.n, node.value))
        if kind in _COMPOUND:
            if kind in _LOOPS:
                self.loop_starts[id(node)] = self.n
            self.path.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        kind = type(original_node)
        if kind in _COMPOUND:
            self.path.pop()
            if kind in _LOOPS:
                self.scope.loops.append(
                    LoopInfo(
                        original_node,
                        self.loop_starts[id(original_node)],
                        self.n,
                        tuple(self.path),
                    )
                )

    def _call(self, node: cst.Call) -> None:
        func = dotted_name(node.func)
        method = receiver = None
        if isinstance(node.func, cst.Attribute):
            method = node.func.attr.value
            receiver = dotted_name(node.func.value)
        self.scope.calls.append(CallInfo(node, self.n, func, method, receiver, tuple(self.path)))
        if id(node) not in self._with_items:
            last = (func or "").rsplit(".", 1)[-1]
            if last in ("set_grad_enabled", "no_grad", "inference_mode"):
                self.scope.other_grad_switch = True


def scan_scope(node: cst.FunctionDef | cst.Module, imports: ImportTable) -> Scope:
    """The scope's calls, loops and bindings. A scope without a loop is not walked and
    comes back empty: both rules look no further than its `loops`."""
    if not _has_loop(node):
        return Scope()
    scan = _ScopeScan(imports)
    if isinstance(node, cst.Module):
        for stmt in node.body:
            walk(stmt, scan)
    else:
        walk(node.body, scan)
    scan.scope.loops.sort(key=lambda loop: loop.start)
    return scan.scope


def _has_loop(node: cst.FunctionDef | cst.Module) -> bool:
    """A `for` or `while` among the scope's statements, nested definitions excluded (loops
    are statements: expressions need no walk)."""
    stack = list(node.body) if type(node) is cst.Module else _statements(node.body)
    while stack:
        stmt = stack.pop()
        kind = type(stmt)
        if kind in _LOOPS:
            return True
        if kind is cst.SimpleStatementLine or kind in _SCOPE_BOUNDARIES:
            continue
        stack += _statements(getattr(stmt, "body", None))
        parts = (getattr(stmt, "orelse", None), getattr(stmt, "finalbody", None))
        for part in (*parts, *getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ())):
            if type(part) is cst.If:
                stack.append(part)  # `elif`
            elif part is not None:
                stack += _statements(part.body)
    return False


def _statements(suite: cst.BaseSuite | None) -> list[cst.BaseStatement]:
    return list(suite.body) if type(suite) is cst.IndentedBlock else []


def mode_of(call: CallInfo) -> str | None:
    """EVAL for `x.eval()` / `x.train(False)`, TRAIN for `x.train()`, UNKNOWN for `x.train(flag)`."""
    if call.method == "eval" and not call.node.args:
        return EVAL
    if call.method != "train":
        return None
    if not call.node.args:
        return TRAIN
    arg = call.node.args[0].value
    if isinstance(arg, cst.Name) and arg.value in ("True", "False"):
        return TRAIN if arg.value == "True" else EVAL
    return UNKNOWN


def is_backward(call: CallInfo, imports: ImportTable) -> bool:
    if call.method in ("backward", "manual_backward"):
        return True
    return imports.qualname(call.node.func) in _BACKWARD_QUALNAMES


def is_model_call(call: CallInfo, roles: Roles, extra_models: set[str]) -> str | None:
    """The dotted name of the model a call runs (`model(x)`, `self.net(x)`,
    `model.forward(x)`), or None."""
    if call.func is None:
        return None
    expr: cst.BaseExpression = call.node.func
    if call.method == "forward" and isinstance(expr, cst.Attribute):
        expr = expr.value
    name = dotted_name(expr)
    if name is None:
        return None
    if name in extra_models:
        return name
    if _NOT_A_MODEL_CALL.match(name.rsplit(".", 1)[-1]) or roles.of(expr) != MODEL:
        return None
    return name


def is_loader_iter(loop: cst.For | cst.While, roles: Roles, scope: Scope | None = None) -> bool:
    """`for ... in loader`, unwrapped from calls taking it first (enumerate, tqdm,
    `logger.log_every(loader, n)`), also `loaders[phase]`, and a local alias made from a
    loader earlier in the scope (`bar = tqdm(self.dataloader)`; `for batch in bar:`)."""
    if not isinstance(loop, cst.For):
        return False
    it = _unwrap_iterable(loop.iter)
    if _is_loader(it, roles):
        return True
    name = dotted_name(it)
    if scope is not None and name is not None:
        bound = [call for order, call in scope.bindings.get(name, ()) if order < loop_order(scope, loop)]
        if bound and isinstance(bound[-1], cst.Call) and bound[-1].args:
            return _is_loader(_unwrap_iterable(bound[-1]), roles)
    return False


def loop_order(scope: Scope, loop: cst.For | cst.While) -> int:
    for info in scope.loops:
        if info.node is loop:
            return info.start
    return 0


def _unwrap_iterable(it: cst.BaseExpression) -> cst.BaseExpression:
    # enumerate/tqdm/zip/islice, and wrappers such as `metric_logger.log_every(loader, n)`
    while isinstance(it, cst.Call) and it.args and it.args[0].keyword is None:
        it = it.args[0].value
    if isinstance(it, cst.Subscript):
        it = it.value
    return it


def _is_loader(it: cst.BaseExpression, roles: Roles) -> bool:
    if roles.of(it) == LOADER:
        return True
    # `testloader`, `trainLoader`: the tutorial spellings the shared pattern misses
    name = dotted_name(it)
    return name is not None and "loader" in name.rsplit(".", 1)[-1].lower()


def related(a: str, b: str) -> bool:
    """`model` and `model.module`, or `self.model` and `self.model`: the same object tree."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def under_grad_disabled(
    ancestors: tuple[cst.CSTNode, ...], imports: ImportTable, *, loose: bool
) -> bool:
    return any(
        isinstance(node, cst.With)
        and any(grad_disabling(item.item, imports, loose=loose) for item in node.items)
        for node in ancestors
    )


def decorated_grad_disabled(funcs: list[cst.FunctionDef], imports: ImportTable, *, loose: bool) -> bool:
    return any(
        grad_disabling(dec.decorator, imports, loose=loose) for f in funcs for dec in f.decorators
    )


def parameter_names(func: cst.FunctionDef) -> list[str]:
    p = func.params
    return [q.name.value for q in (*p.posonly_params, *p.params, *p.kwonly_params)]


def imports_test_framework(imports: ImportTable) -> bool:
    return imports.imports_module("pytest") or imports.imports_module("unittest")


def is_test_class(cls: cst.ClassDef | None) -> bool:
    if cls is None:
        return False
    if cls.name.value.startswith("Test") or cls.name.value.endswith("Test"):
        return True
    return any((dotted_name(b.value) or "").endswith("TestCase") for b in cls.bases)


def is_unit_test(
    func: cst.FunctionDef, cls: cst.ClassDef | None, roles: Roles, imports: ImportTable
) -> bool:
    """A `test*` function that looks like a pytest/unittest test rather than a training
    script's `test(model, device, test_loader)` / `def test(epoch)`."""
    name = func.name.value
    if not TEST_NAME.match(name):
        return False
    if imports_test_framework(imports) or is_test_class(cls):
        return True
    if re.fullmatch(r"_*test(?:ing)?\d*", name):
        return False
    params = {roles.of(cst.Name(p)) for p in parameter_names(func)}
    return not (MODEL in params and LOADER in params)


class ModuleIndex:
    """Facts about the whole file: where functions are called from, who calls `.eval()`."""

    def __init__(self, module: cst.Module, imports: ImportTable) -> None:
        visitor = _ModuleFacts(imports)
        walk(module, visitor)
        self.call_sites = visitor.call_sites
        self.evaluating = visitor.evaluating
        self.training = visitor.training
        self.module_grad_off = visitor.module_grad_off

    def called_from_evaluating_scope(self, name: str) -> bool:
        return any(scope in self.evaluating for scope, _ in self.call_sites.get(name, ()))

    def called_with_grad_disabled(self, name: str) -> bool:
        return any(off for _, off in self.call_sites.get(name, ()))


class _ModuleFacts(Visitor):
    def __init__(self, imports: ImportTable) -> None:
        self.imports = imports
        # callee last name -> [(id of the enclosing function or 0, under a grad-off context)]
        self.call_sites: dict[str, list[tuple[int, bool]]] = {}
        # ids of functions (0: module level) and of classes that call `.eval()`/`.train(False)`
        self.evaluating: set[int] = set()
        # ids of functions (0: module level) and classes that call `.train()`/`.train(True)`
        self.training: set[int] = set()
        self.module_grad_off = False
        self.funcs: list[cst.FunctionDef] = []
        self.classes: list[cst.ClassDef] = []
        self.grad_off = 0
        self.with_items: set[int] = set()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.classes.append(node)

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.classes.pop()

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.funcs.append(node)
        if decorated_grad_disabled([node], self.imports, loose=True):
            self.grad_off += 1

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self.funcs.pop()
        if decorated_grad_disabled([original_node], self.imports, loose=True):
            self.grad_off -= 1

    def visit_With(self, node: cst.With) -> None:
        self.with_items.update(id(i.item) for i in node.items)
        if any(grad_disabling(i.item, self.imports, loose=True) for i in node.items):
            self.grad_off += 1

    def leave_With(self, original_node: cst.With) -> None:
        if any(grad_disabling(i.item, self.imports, loose=True) for i in original_node.items):
            self.grad_off -= 1

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        last = func.attr.value if isinstance(func, cst.Attribute) else (
            func.value if isinstance(func, cst.Name) else None
        )
        if last is None:
            return
        scope = id(self.funcs[-1]) if self.funcs else 0
        self.call_sites.setdefault(last, []).append((scope, self.grad_off > 0))
        if isinstance(func, cst.Attribute) and (
            (last == "eval" and not node.args) or (last == "train" and node.args)
        ):
            self.evaluating.add(scope)
            self.evaluating.update(id(c) for c in self.classes)
        elif isinstance(func, cst.Attribute) and last == "train":
            self.training.add(scope)
            self.training.update(id(c) for c in self.classes)
        if last == "set_grad_enabled" and node.args and id(node) not in self.with_items:
            # `torch.set_grad_enabled(False)` as a statement, anywhere (a script's top
            # level, a Validator's __init__): gradients may be off for the whole run
            arg = node.args[0].value
            if isinstance(arg, cst.Name) and arg.value == "False":
                self.module_grad_off = True

    # Dispatch on the exact type (see `_COMPOUND`), not through CSTVisitor's name lookup.
    _VISITS: ClassVar[dict] = {cst.ClassDef: visit_ClassDef, cst.FunctionDef: visit_FunctionDef,
                               cst.With: visit_With, cst.Call: visit_Call}
    _LEAVES: ClassVar[dict] = {cst.ClassDef: leave_ClassDef, cst.FunctionDef: leave_FunctionDef,
                               cst.With: leave_With}

    def on_visit(self, node: cst.CSTNode) -> bool:
        handler = self._VISITS.get(type(node))
        if handler is not None:
            handler(self, node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        handler = self._LEAVES.get(type(original_node))
        if handler is not None:
            handler(self, original_node)


class EvalFacts:
    """Per-file facts shared by TL107 and TL108 (one Roles, one ModuleIndex, one scan per
    function), kept on the lint run's Context so the two rules compute them once."""

    def __init__(self, context) -> None:
        self.context = context
        self._roles: Roles | None = None
        self._index: ModuleIndex | None = None
        self._scans: dict[int, Scope] = {}

    @classmethod
    def of(cls, context) -> EvalFacts:
        facts = getattr(context, "_eval_facts", None)
        if facts is None or facts.context is not context:
            facts = cls(context)
            context._eval_facts = facts
        return facts

    @property
    def roles(self) -> Roles:
        if self._roles is None:
            self._roles = module_roles(self.context.module, self.context.imports)
        return self._roles

    @property
    def index(self) -> ModuleIndex:
        if self._index is None:
            self._index = ModuleIndex(self.context.module, self.context.imports)
        return self._index

    def scan(self, node: cst.FunctionDef | cst.Module) -> Scope:
        scope = self._scans.get(id(node))
        if scope is None:
            scope = self._scans[id(node)] = scan_scope(node, self.context.imports)
        return scope


# ---------------------------------------------------------------------------- on the ast
# The screens of TL107 and TL108 (see `trainlint.screen`) run the analysis above on CPython's
# ast, loosened to answer yes wherever a rule may report: a name may have any role its
# spelling gives it, a callee may resolve through any import of its head, and where a rule
# stays quiet on a condition the screen needs the condition to hold for certain.

_AST_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_AST_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_AST_WITHS = (ast.With, ast.AsyncWith)
_AST_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_AST_NOISE = (ast.expr_context, ast.operator, ast.cmpop, ast.unaryop, ast.boolop)
_REQUIRES_GRAD = ("requires_grad", "requires_grad_")
_GRAD_SWITCHES = ("set_grad_enabled", "no_grad", "inference_mode")
_DATALOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})


def _first_argument(call: ast.Call) -> ast.AST | None:
    """LibCST's `call.args[0]`: the first argument in source order, keyword or not."""
    first = [*call.args[:1], *call.keywords[:1]]
    return min(first, key=lambda a: (a.lineno, a.col_offset)) if first else None


def _argument_value(arg: ast.AST) -> ast.AST:
    """What LibCST's `Arg.value` holds for a positional, starred or keyword argument."""
    return arg.value if isinstance(arg, (ast.Starred, ast.keyword)) else arg


def ast_first_value(call: ast.Call) -> ast.AST | None:
    first = _first_argument(call)
    return None if first is None else _argument_value(first)


def ast_flag(node: ast.AST | None) -> str | None:
    """"True" / "False" for those literals (LibCST `Name`s), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return str(node.value)
    return None


def ast_argument_names(call: ast.Call) -> list[str]:
    """The dotted names passed to a call, in any kind of argument."""
    values = [_argument_value(a) for a in (*call.args, *call.keywords)]
    return [n for v in values if (n := screen_dotted(v)) is not None]


def ast_mode_of(call: ast.Call) -> str | None:
    """`mode_of` on the ast."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    if func.attr == "eval" and not (call.args or call.keywords):
        return EVAL
    if func.attr != "train":
        return None
    first = _first_argument(call)
    if first is None:
        return TRAIN
    flag = ast_flag(_argument_value(first))
    return UNKNOWN if flag is None else TRAIN if flag == "True" else EVAL


def ast_grad_disabling(expr: ast.AST, index, *, loose: bool) -> frozenset[bool]:
    """The answers `grad_disabling` may give for a `with` item or decorator: one per name
    its callee may resolve to."""
    call = expr if isinstance(expr, ast.Call) else None
    func = call.func if call is not None else expr
    names = {*index.qualnames(func), screen_dotted(func) or ""}
    flag = ast_flag(ast_first_value(call)) if call is not None else None
    return frozenset(disables_grad(n.rsplit(".", 1)[-1], flag, loose=loose) for n in names)


def ast_may_disable(exprs, index, *, loose: bool) -> bool:
    return any(True in ast_grad_disabling(e, index, loose=loose) for e in exprs)


def ast_must_disable(exprs, index, *, loose: bool) -> bool:
    return any(ast_grad_disabling(e, index, loose=loose) == {True} for e in exprs)


def ast_with_items(withs) -> list[ast.expr]:
    return [item.context_expr for w in withs for item in w.items]


def ast_decorators(funcs) -> list[ast.expr]:
    return [d for f in funcs for d in f.decorator_list]


def ast_may_backward(call: ast.Call, index) -> bool:
    """`is_backward` may hold."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in ("backward", "manual_backward"):
        return True
    return not index.qualnames(func).isdisjoint(_BACKWARD_QUALNAMES)


def ast_must_backward(call: ast.Call, index) -> bool:
    """`is_backward` holds for certain."""
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in ("backward", "manual_backward"):
        return True
    quals = index.qualnames(func)
    return bool(quals) and quals <= _BACKWARD_QUALNAMES


@dataclass
class AstCall:
    node: ast.Call
    key: tuple[int, int, int, int]  # see `_key`
    func: str | None
    method: str | None
    receiver: str | None
    mode: str | None
    withs: tuple  # the scope's `with` statements around the call, outermost first
    loops: frozenset[int]  # ids of the scope's loops around the call


@dataclass
class AstLoop:
    node: ast.For | ast.AsyncFor | ast.While
    key: tuple[int, int, int, int]
    outer: frozenset[int]  # ids of the scope's loops around this one

    def contains(self, call: AstCall) -> bool:
        return id(self.node) in call.loops


def _key(node: ast.AST) -> tuple[int, int, int, int]:
    """LibCST's visiting order: by position, a node before the nodes it contains."""
    return (node.lineno, node.col_offset, -node.end_lineno, -node.end_col_offset)  # type: ignore


def _inside(node: ast.AST, outer: ast.AST) -> bool:
    inner, around = _key(node), _key(outer)
    return around[:2] <= inner[:2] and inner[2:] >= around[2:]


def _own_expressions(stmt: ast.stmt) -> list[ast.AST]:
    """The parts of a statement outside its blocks (the whole of a simple statement)."""
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        return [stmt.target, stmt.iter]
    if isinstance(stmt, (ast.While, ast.If)):
        return [stmt.test]
    if isinstance(stmt, _AST_WITHS):
        parts = [(item.context_expr, item.optional_vars) for item in stmt.items]
        return [x for pair in parts for x in pair if x is not None]
    if isinstance(stmt, ast.Match):
        guards = [c.guard for c in stmt.cases if c.guard is not None]
        return [stmt.subject, *(c.pattern for c in stmt.cases), *guards]
    handlers = getattr(stmt, "handlers", None)  # `try`, and `try`/`except*` from Python 3.11
    if handlers is not None:
        return [h.type for h in handlers if h.type is not None]
    return [stmt]


class AstScan:
    """`Scope` on the ast: the calls, loops and bindings of one function body (or of the
    module's top level), nested definitions and lambdas excluded."""

    def __init__(self, body: list[ast.stmt]) -> None:
        self.calls: list[AstCall] = []
        self.loops: list[AstLoop] = []
        self.bindings: dict[str, list[tuple[tuple[int, int, int, int], ast.Call]]] = {}
        self.other_grad_switch = False
        self.requires_grad = False
        self._in_with: set[int] = set()
        stack: list = [(body, (), frozenset())]
        while stack:
            block, withs, loops = stack.pop()
            for stmt in block:
                if isinstance(stmt, _AST_DEFINITIONS):
                    continue
                inner_withs, inner_loops = withs, loops
                if isinstance(stmt, _AST_LOOPS):
                    self.loops.append(AstLoop(stmt, _key(stmt), loops))
                    inner_loops = loops | {id(stmt)}
                elif isinstance(stmt, _AST_WITHS):
                    self._in_with.update(id(item.context_expr) for item in stmt.items)
                    inner_withs = (*withs, stmt)
                self._expressions(_own_expressions(stmt), inner_withs, inner_loops)
                stack.extend((b, inner_withs, inner_loops) for b in _ast_blocks(stmt))
        self.calls.sort(key=lambda c: c.key)
        self.loops.sort(key=lambda o: o.key)
        for bound in self.bindings.values():
            bound.sort(key=lambda b: b[0])

    def _expressions(self, roots: list[ast.AST], withs, loops) -> None:
        lambdas: list[ast.Lambda] = []
        for root in roots:
            for node in screen_walk(root):
                if isinstance(node, ast.Lambda):
                    lambdas.append(node)
                elif isinstance(node, ast.Call):
                    if not (lambdas and any(_inside(node, f) for f in lambdas)):
                        self._call(node, withs, loops)
                elif isinstance(node, ast.Attribute) and node.attr in _REQUIRES_GRAD:
                    if not (lambdas and any(_inside(node, f) for f in lambdas)):
                        self.requires_grad = True
                elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                    for target in node.targets:
                        name = screen_dotted(target)
                        if name is not None:
                            self.bindings.setdefault(name, []).append((_key(node), node.value))

    def _call(self, node: ast.Call, withs, loops) -> None:
        func = screen_dotted(node.func)
        method = receiver = None
        if isinstance(node.func, ast.Attribute):
            method = node.func.attr
            receiver = screen_dotted(node.func.value)
        mode = ast_mode_of(node)
        self.calls.append(AstCall(node, _key(node), func, method, receiver, mode, withs, loops))
        if (func or "").rsplit(".", 1)[-1] in _GRAD_SWITCHES and id(node) not in self._in_with:
            self.other_grad_switch = True

    def extra_models(self) -> set[str]:
        """The receivers of `.eval()` / `.train(...)`: models whatever their name."""
        return {c.receiver for c in self.calls if c.mode is not None and c.receiver}


class AstScope:
    """A function (or the module's top level) that TL107 and TL108 examine, with its loops
    found from the statements alone; `scan` walks its expressions on demand."""

    def __init__(self, func, funcs: tuple, cls: ast.ClassDef | None, body: list[ast.stmt]) -> None:
        self.func = func  # None for the module
        self.funcs = funcs  # the function and those around it, innermost first
        self.cls = cls  # the innermost class around it
        self.body = body
        self.loop_nodes: list[ast.stmt] = []
        self._scan: AstScan | None = None

    @property
    def scan(self) -> AstScan:
        if self._scan is None:
            self._scan = AstScan(self.body)
        return self._scan


def ast_scopes(index) -> list[AstScope]:
    """The module and every function of the file, each with the loops of its own body."""
    cached = index.memo.get("eval_scopes")
    if cached is not None:
        return cached  # type: ignore[return-value]
    module = AstScope(None, (), None, index.tree.body)
    out = [module]
    stack: list = [(index.tree.body, module, (), None)]
    while stack:
        body, scope, funcs, cls = stack.pop()
        for stmt in body:
            if isinstance(stmt, _AST_FUNCTIONS):
                inner = AstScope(stmt, (stmt, *funcs), cls, stmt.body)
                out.append(inner)
                stack.append((stmt.body, inner, inner.funcs, cls))
            elif isinstance(stmt, ast.ClassDef):
                stack.append((stmt.body, None, funcs, stmt))  # a class body is no scope
            else:
                if scope is not None and isinstance(stmt, _AST_LOOPS):
                    scope.loop_nodes.append(stmt)
                stack.extend((block, scope, funcs, cls) for block in _ast_blocks(stmt))
    index.memo["eval_scopes"] = out
    return out


def _ast_blocks(stmt: ast.stmt):
    for name in ("body", "orelse", "finalbody"):
        block = getattr(stmt, name, None)
        if block:
            yield block
    for part in (*getattr(stmt, "handlers", ()), *getattr(stmt, "cases", ())):
        yield part.body


def ast_unwrap(it: ast.AST) -> ast.AST:
    """`_unwrap_iterable` on the ast."""
    while isinstance(it, ast.Call):
        first = _first_argument(it)
        if first is None or (isinstance(first, ast.keyword) and first.arg is not None):
            break
        it = _argument_value(first)
    if isinstance(it, ast.Subscript):
        it = it.value
    return it


def _call_assignments(index) -> dict[str, list[ast.expr]]:
    """Dotted target -> the callees of the calls the file assigns to it."""
    cached = index.memo.get("eval_call_assignments")
    if cached is None:
        cached = index.memo["eval_call_assignments"] = {}
        for node in index.nodes(ast.Assign):
            if isinstance(node.value, ast.Call):
                for target in node.targets:
                    name = screen_dotted(target)
                    if name is not None:
                        cached.setdefault(name, []).append(node.value.func)
    return cached  # type: ignore[return-value]


def _dataloader_names(index) -> frozenset[str]:
    """Names some assignment binds to what may be a `DataLoader(...)` (`Roles`' LOADER)."""
    cached = index.memo.get("eval_dataloader_names")
    if cached is None:
        cached = index.memo["eval_dataloader_names"] = frozenset(
            name
            for name, callees in _call_assignments(index).items()
            if any(not index.qualnames(f).isdisjoint(_DATALOADERS) for f in callees)
        )
    return cached  # type: ignore[return-value]


def _loader_name(name: str) -> bool:
    return role_from_name(name) == LOADER or "loader" in name.rsplit(".", 1)[-1].lower()


def ast_may_loader(expr: ast.AST, index) -> bool:
    """`_is_loader` may hold."""
    name = screen_dotted(expr)
    return name is not None and (_loader_name(name) or name in _dataloader_names(index))


def ast_may_loader_iter(loop: AstLoop, scan: AstScan, index) -> bool:
    """`is_loader_iter` may hold."""
    if not isinstance(loop.node, (ast.For, ast.AsyncFor)):
        return False
    it = ast_unwrap(loop.node.iter)
    if ast_may_loader(it, index):
        return True
    name = screen_dotted(it)
    bound = [call for key, call in scan.bindings.get(name, ()) if key < loop.key] if name else []
    if bound and (bound[-1].args or bound[-1].keywords):
        return ast_may_loader(ast_unwrap(bound[-1]), index)
    return False


def ast_may_walk_loader(node: ast.stmt, index) -> bool:
    """`ast_may_loader_iter` before a scan: a local alias of the iterable counts when the
    file assigns that name a call anywhere."""
    if not isinstance(node, (ast.For, ast.AsyncFor)):
        return False
    name = screen_dotted(ast_unwrap(node.iter))
    return name is not None and (_loader_name(name) or name in _call_assignments(index))


def ast_loader_loop_here(scope: AstScope, index) -> bool:
    """Before a scan: some loop of the scope may walk a loader and call a model."""
    models = ast_model_lines(index)
    return any(
        ast_lines_within(models, node) and ast_may_walk_loader(node, index)
        for node in scope.loop_nodes
    )


def ast_model_loops(scan: AstScan, models, index):
    """(loop, the `models` calls in it) for each loop of the scan that may walk a loader,
    calls a model and certainly makes no backward call."""
    for loop in scan.loops:
        if not ast_may_loader_iter(loop, scan, index):
            continue
        inside = [(c, m) for c, m in models if loop.contains(c)]
        if inside and not any(
            loop.contains(c) and ast_must_backward(c.node, index) for c in scan.calls
        ):
            yield loop, inside


def ast_may_model(call: AstCall, extra: set[str]) -> str | None:
    """`is_model_call` may name this model (a name's role comes from its spelling only)."""
    return _model_name(call.node, extra) if call.func is not None else None


def _model_name(node: ast.Call, extra: set[str]) -> str | None:
    expr = node.func
    if isinstance(expr, ast.Attribute) and expr.attr == "forward":
        expr = expr.value
    name = screen_dotted(expr)
    if name is None:
        return None
    if name in extra:
        return name
    if _NOT_A_MODEL_CALL.match(name.rsplit(".", 1)[-1]) or role_from_name(name) != MODEL:
        return None
    return name


def ast_model_lines(index) -> list[int]:
    """Sorted lines of the calls that may be model calls in their scope (`ast_may_model`,
    with every receiver of `.eval()`/`.train()` in the file as a model)."""
    lines = index.memo.get("eval_model_lines")
    if lines is None:
        calls = index.nodes(ast.Call)
        extra = {
            name
            for c in calls
            if ast_mode_of(c) is not None and (name := screen_dotted(c.func.value)) is not None
        }
        # a callee's role comes from its last name: test that once per name first
        extra_last = {name.rsplit(".", 1)[-1] for name in extra}
        known: dict[str, bool] = {}
        out = []
        for call in calls:
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "forward":
                func = func.value
            last = _last_name(func)
            if last is None:
                continue
            maybe = known.get(last)
            if maybe is None:
                maybe = known[last] = last in extra_last or (
                    not _NOT_A_MODEL_CALL.match(last) and role_from_name(last) == MODEL
                )
            if maybe and screen_dotted(call.func) is not None and _model_name(call, extra):
                out.append(call.lineno)
        lines = index.memo["eval_model_lines"] = sorted(out)
    return lines  # type: ignore[return-value]


def ast_eval_lines(index) -> list[int]:
    """Sorted lines of the file's `.eval()` calls on a dotted receiver."""
    lines = index.memo.get("eval_lines")
    if lines is None:
        calls = index.nodes(ast.Call) if "eval" in index.called else []
        lines = index.memo["eval_lines"] = sorted(
            c.lineno
            for c in calls
            if ast_mode_of(c) == EVAL
            and c.func.attr == "eval"
            and screen_dotted(c.func.value) is not None
        )
    return lines  # type: ignore[return-value]


def ast_lines_within(lines: list[int], node: ast.AST) -> bool:
    """One of the sorted `lines` lies in the node's."""
    at = bisect.bisect_left(lines, node.lineno)
    return at < len(lines) and lines[at] <= (node.end_lineno or node.lineno)


def ast_under_model_context(withs, model: str) -> bool:
    """`under_model_context` on the ast (exact)."""
    return any(
        isinstance(item, ast.Call) and any(related(n, model) for n in ast_argument_names(item))
        for item in ast_with_items(withs)
    )


def ast_may_not_unit_test(func, cls: ast.ClassDef | None, index) -> bool:
    """`is_unit_test` may answer no."""
    name = func.name
    if not TEST_NAME.match(name):
        return True
    if _ast_test_framework(index) or _ast_test_class(cls):
        return False
    if re.fullmatch(r"_*test(?:ing)?\d*", name):
        return True
    args = func.args
    params = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    return any(role_from_name(p) == MODEL for p in params) and any(
        role_from_name(p) == LOADER or p in _dataloader_names(index) for p in params
    )


def _ast_test_framework(index) -> bool:
    """`imports_test_framework` holds for certain: every import of some name is pytest's
    or unittest's."""
    def test_module(q: str) -> bool:
        return q.split(".", 1)[0] in ("pytest", "unittest")

    return any(all(test_module(q) for q in quals) for quals in index.imports.values())


def _ast_test_class(cls: ast.ClassDef | None) -> bool:
    if cls is None:
        return False
    if cls.name.startswith("Test") or cls.name.endswith("Test"):
        return True
    return any((screen_dotted(b) or "").endswith("TestCase") for b in cls.bases)


class AstModuleFacts:
    """`ModuleIndex` on the ast; a call site counts as under a grad-off context only when
    the context certainly turns gradients off."""

    def __init__(self, index) -> None:
        self.call_sites: dict[str, list[tuple[int, bool]]] = {}
        self.evaluating: set[int] = set()
        self.training: set[int] = set()
        stack: list = [(index.tree, 0, (), False)]
        while stack:
            node, scope, classes, off = stack.pop()
            if isinstance(node, _AST_FUNCTIONS):
                scope = id(node)
                off = off or ast_must_disable(node.decorator_list, index, loose=True)
            elif isinstance(node, ast.ClassDef):
                classes = (*classes, id(node))
            elif isinstance(node, _AST_WITHS):
                off = off or ast_must_disable(ast_with_items([node]), index, loose=True)
            elif isinstance(node, ast.Call):
                self._call(node, scope, classes, off)
            stack.extend(
                (child, scope, classes, off)
                for child in ast.iter_child_nodes(node)
                if not isinstance(child, _AST_NOISE)
            )

    def _call(self, node: ast.Call, scope: int, classes: tuple[int, ...], off: bool) -> None:
        func = node.func
        last = _last_name(func)
        if last is None:
            return
        self.call_sites.setdefault(last, []).append((scope, off))
        if isinstance(func, ast.Attribute) and last in ("eval", "train"):
            has_args = bool(node.args or node.keywords)
            if (last == "eval" and not has_args) or (last == "train" and has_args):
                self.evaluating.update((scope, *classes))
            elif last == "train":
                self.training.update((scope, *classes))

    @classmethod
    def of(cls, index) -> AstModuleFacts:
        facts = index.memo.get("eval_module_facts")
        if facts is None:
            facts = index.memo["eval_module_facts"] = cls(index)
        return facts  # type: ignore[return-value]

    def called_from_evaluating_scope(self, name: str) -> bool:
        return any(scope in self.evaluating for scope, _ in self.call_sites.get(name, ()))

    def called_with_grad_disabled(self, name: str) -> bool:
        return any(off for _, off in self.call_sites.get(name, ()))


def ast_module_grad_off(index) -> bool:
    """`ModuleIndex.module_grad_off` (exact): `set_grad_enabled(False)` as a statement."""
    withs = [*index.nodes(ast.With), *index.nodes(ast.AsyncWith)]
    items = {id(item) for item in ast_with_items(withs)}
    return any(
        _last_name(call.func) == "set_grad_enabled"
        and id(call) not in items
        and ast_flag(ast_first_value(call)) == "False"
        for call in index.nodes(ast.Call)
    )


def _last_name(func: ast.AST) -> str | None:
    """`step` for `opt.step`, `f` for `f`, None for any other callee."""
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None
