"""Evaluation-loop analysis shared by TL107 and TL108: the model's mode along a function,
grad-disabling contexts, loops over loaders that call a model, and in-file callers.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import libcst as cst

from trainlint.imports import ImportTable, dotted_name
from trainlint.rules._loops import LOADER, MODEL, Roles

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
    last = name.rsplit(".", 1)[-1]
    arg = call.args[0].value if call is not None and call.args else None
    if last == "no_grad":
        return True
    if last == "inference_mode":
        return not (isinstance(arg, cst.Name) and arg.value == "False")
    if last == "set_grad_enabled":
        if isinstance(arg, cst.Name) and arg.value == "False":
            return True
        return loose and not (isinstance(arg, cst.Name) and arg.value == "True")
    low = last.lower()
    off = isinstance(arg, cst.Name) and arg.value == "False"
    if ("no_grad" in low or "inference_mode" in low) and not off:
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


class _ScopeScan(cst.CSTVisitor):
    _COMPOUND = (cst.For, cst.While, cst.With, cst.If, cst.Try, cst.TryStar, cst.Match)

    def __init__(self, imports: ImportTable) -> None:
        self.imports = imports
        self.scope = Scope()
        self.n = 0
        self.path: list[cst.CSTNode] = []
        self.loop_starts: dict[int, int] = {}
        self._with_items: set[int] = set()

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            return False
        self.n += 1
        if isinstance(node, cst.WithItem):
            self._with_items.add(id(node.item))
        elif isinstance(node, cst.Call):
            self._call(node)
        elif isinstance(node, cst.Attribute) and node.attr.value in ("requires_grad", "requires_grad_"):
            self.scope.requires_grad = True
        elif isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
            for target in node.targets:
                name = dotted_name(target.target)
                if name is not None:
                    self.scope.bindings.setdefault(name, []).append((self.n, node.value))
        if isinstance(node, self._COMPOUND):
            if isinstance(node, (cst.For, cst.While)):
                self.loop_starts[id(node)] = self.n
            self.path.append(node)
        return True

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if isinstance(original_node, self._COMPOUND):
            self.path.pop()
            if isinstance(original_node, (cst.For, cst.While)):
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
    scan = _ScopeScan(imports)
    if isinstance(node, cst.Module):
        for stmt in node.body:
            stmt.visit(scan)
    else:
        node.body.visit(scan)
    scan.scope.loops.sort(key=lambda loop: loop.start)
    return scan.scope


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
        module.visit(visitor)
        self.call_sites = visitor.call_sites
        self.evaluating = visitor.evaluating
        self.training = visitor.training
        self.module_grad_off = visitor.module_grad_off

    def called_from_evaluating_scope(self, name: str) -> bool:
        return any(scope in self.evaluating for scope, _ in self.call_sites.get(name, ()))

    def called_with_grad_disabled(self, name: str) -> bool:
        return any(off for _, off in self.call_sites.get(name, ()))


class _ModuleFacts(cst.CSTVisitor):
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
            self._roles = Roles(self.context.module, self.context.imports)
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


_LOADER_NAME = re.compile(r"loader|(?:^|_)dl$", re.IGNORECASE)
_DL_WORD = re.compile(r"dl\b")


def has_loader_text(folded: str) -> bool:
    """`loader|dl\\b` on case-folded text (a plain substring test first: faster than re.I)."""
    return "loader" in folded or ("dl" in folded and _DL_WORD.search(folded) is not None)


def ast_loader_loop(index) -> bool:
    """Some `for` walks something spelled like a loader (or a local made from one, such as
    `bar = tqdm(loader)`), or the file builds a DataLoader."""
    if "DataLoader" in index.called:
        return True
    candidates = [loop.iter for loop in index.nodes(ast.For)]
    candidates += [a.value for a in index.nodes(ast.Assign) if isinstance(a.value, ast.Call)]
    for it in candidates:
        while isinstance(it, ast.Call) and it.args:
            it = it.args[0]
        if isinstance(it, ast.Subscript):
            it = it.value
        name = it.attr if isinstance(it, ast.Attribute) else it.id if isinstance(it, ast.Name) else ""
        if _LOADER_NAME.search(name):
            return True
    return False
