"""The per-file semantic model: scopes, bindings, reaching definitions, self attributes,
classes, imports and kinds."""

from __future__ import annotations

import ast
import textwrap

import pytest

from trainlint.semantic import Policy, SemanticModel
from trainlint.semantic.kinds import kind_of


def model_of(code: str) -> tuple[SemanticModel, ast.Module]:
    tree = ast.parse(textwrap.dedent(code))
    return SemanticModel(tree), tree


def find(tree: ast.AST, kind: type, **attrs) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, kind) and all(getattr(node, k) == v for k, v in attrs.items()):
            return node
    raise LookupError(kind)


def stmt_at(tree: ast.AST, line: int) -> ast.stmt:
    return next(n for n in ast.walk(tree) if isinstance(n, ast.stmt) and n.lineno == line)


# -------------------------------------------------------------------------- scopes


def test_scopes_and_places():
    model, tree = model_of(
        """
        x = 1
        class C:
            y = 2
            def m(self):
                z = [i for i in range(3)]
                f = lambda a: a
                return z
        """
    )
    cls = find(tree, ast.ClassDef)
    method = find(tree, ast.FunctionDef, name="m")
    assert model.module_scope.kind == "module"
    assert model.scope_of(cls).kind == "class" and model.scope_of(method).kind == "function"
    assert model.scope_of(find(tree, ast.ListComp)).kind == "comprehension"
    assert model.scope_of(find(tree, ast.Lambda)).kind == "lambda"
    assert model.scope_of(method).parent is model.scope_of(cls)
    ret = stmt_at(tree, 7)
    place = model.place(ret)
    assert place.scope is model.scope_of(method)
    assert place.cls.node is cls and place.function is method and place.guards == ()
    assert model.place(stmt_at(tree, 3)).function is None
    # the comprehension's variable is its own, not the method's
    assert "i" in model.scope_of(find(tree, ast.ListComp)).bindings
    assert "i" not in model.scope_of(method).bindings


# ------------------------------------------------------------------------ bindings

BINDINGS = """
import os.path
from torch import nn as n
def f(p, *args, k=1, **kw):
    global G
    a = 1
    b += 1
    c: int = 2
    for d in p:
        pass
    with open(p) as e:
        pass
    if (g := 3):
        pass
    try:
        pass
    except ValueError as h:
        pass
    del a
    def inner(): pass
    class K: pass
"""


@pytest.mark.parametrize(
    "name, kind",
    [
        ("os", "import"), ("n", "import"), ("p", "parameter"), ("args", "parameter"),
        ("kw", "parameter"), ("G", "global"), ("a", "assign"), ("b", "augmented"),
        ("c", "annotated"), ("d", "for-target"), ("e", "with-target"), ("g", "walrus"),
        ("h", "except"), ("inner", "def"), ("K", "class"), ("f", "def"),
    ],
)
def test_each_binding_kind(name, kind):
    model, tree = model_of(BINDINGS)
    func = find(tree, ast.FunctionDef, name="f")
    scope = model.module_scope if name in ("os", "n", "f") else model.scope_of(func)
    assert kind in [b.kind for b in model.bindings(scope, name)]


def test_del_binding_and_values_and_guards():
    model, tree = model_of(BINDINGS)
    scope = model.scope_of(find(tree, ast.FunctionDef, name="f"))
    assign, deleted = model.bindings(scope, "a")
    assert deleted.kind == "del" and isinstance(assign.value, ast.Constant)
    [for_target] = model.bindings(scope, "d")
    assert [g.kind for g in for_target.guards] == ["loop"]
    [with_target] = model.bindings(scope, "e")
    assert [g.kind for g in with_target.guards] == ["with"]
    [handler] = model.bindings(scope, "h")
    assert [g.kind for g in handler.guards] == ["except"]
    [walrus] = model.bindings(scope, "g")
    assert walrus.guards == () and isinstance(walrus.value, ast.Constant)


def test_unpacking_binds_each_name_without_a_value():
    model, tree = model_of("a, (b, *c) = t\nd = e = 1\n")
    scope = model.module_scope
    for name in "abc":
        [binding] = model.bindings(scope, name)
        assert binding.kind == "assign" and binding.value is None
    assert model.bindings(scope, "d")[0].value.value == 1
    assert model.bindings(scope, "e")[0].value.value == 1


def test_lookup_skips_class_scopes_and_follows_global():
    model, tree = model_of(
        """
        x = 1
        class C:
            x = 2
            def m(self):
                return x
        def g():
            global x
            return x
        """
    )
    [found] = model.lookup("x", model.scope_of(find(tree, ast.FunctionDef, name="m")))
    assert found.scope is model.module_scope
    [found] = model.lookup("x", model.scope_of(find(tree, ast.FunctionDef, name="g")))
    assert found.scope is model.module_scope


# ------------------------------------------------------------------------ reaching

REACHING = """
def f(x, c):
    y = 1
    y = 2
    if c:
        y = 3
        use(y)
    use(y)
    for i in x:
        use(y)
        y = 4
    z = 5
    if c:
        use(z)
"""


def _lines(found):
    return [b.statement.lineno for b in found]


def test_reaching_straight_line():
    model, tree = model_of(REACHING)
    assert _lines(model.reaching("y", stmt_at(tree, 7), Policy.STRAIGHT_LINE)) == [6]
    # the last binding is in a branch: nothing on a straight line
    assert model.reaching("y", stmt_at(tree, 8), Policy.STRAIGHT_LINE) == ()
    # z is bound in an enclosing block, not in the use's own block
    assert model.reaching("z", stmt_at(tree, 14), Policy.STRAIGHT_LINE) == ()


def test_reaching_through_nested_blocks():
    model, tree = model_of(REACHING)
    assert _lines(model.reaching("z", stmt_at(tree, 14), Policy.NESTED)) == [12]
    assert model.reaching("y", stmt_at(tree, 8), Policy.NESTED) == ()
    assert _lines(model.reaching("y", stmt_at(tree, 4), Policy.NESTED)) == [3]
    # a statement's own binding does not reach it
    assert _lines(model.reaching("y", stmt_at(tree, 3), Policy.NESTED)) == []


def test_reaching_may_reach():
    model, tree = model_of(REACHING)
    assert _lines(model.reaching("y", stmt_at(tree, 8), Policy.MAY_REACH)) == [4, 6]
    # in a loop, the binding later in the body reaches the next iteration
    assert _lines(model.reaching("y", stmt_at(tree, 10), Policy.MAY_REACH)) == [4, 6, 11]


# ---------------------------------------------------------------- self attributes


def test_self_reads_and_writes_per_method():
    model, tree = model_of(
        """
        class C:
            def __init__(me, v):
                me.a = v
                me.b: int = 0
                me.b += 1
                me.c.d = 2
                other.e = 3
                def helper(me):
                    me.f = 4
                def closure():
                    me.g = 5
            @staticmethod
            def s(x):
                x.h = 1
            def read(self):
                return self.a
        """
    )
    cls = model.classes[0]
    accesses = model.self_accesses(cls)
    described = [(a.method.name, a.attr, a.write, a.augmented) for a in accesses]
    assert described == [
        ("__init__", "a", True, False),
        ("__init__", "b", True, False),
        ("__init__", "b", True, True),
        ("__init__", "c", False, False),
        ("__init__", "g", True, False),
        ("read", "a", False, False),
    ]
    [write] = model.self_writes(cls, "a")
    assert isinstance(write.value, ast.Name) and write.value.id == "v"


# ------------------------------------------------------------------------ classes


def test_derives_and_module_detection():
    model, tree = model_of(
        """
        import torch
        import torch.nn as nn
        import pytorch_lightning as pl
        from transformers import PreTrainedModel
        import lightning
        class A(nn.Module): pass
        class B(A): pass
        class C(B): pass
        class D(pl.LightningModule): pass
        class E(PreTrainedModel): pass
        class F(lightning.LightningModule): pass
        class G(torch.nn.Linear): pass
        class H(object): pass
        class I(dict, H): pass
        """
    )
    verdict = {c.name: model.is_module(c) for c in model.classes}
    assert verdict == {
        "A": True, "B": True, "C": True, "D": True, "E": True, "F": True, "G": True,
        "H": False, "I": False,
    }
    c = model.top_level_classes["C"]
    assert [k.name for k in model.chain(c)] == ["C", "B", "A"]
    seen = []

    def test(base):
        seen.append(base)
        return base == "dict"

    i = model.top_level_classes["I"]
    assert model.derives(i, test) and model.derives(i, test)
    assert seen.count("dict") == 1  # memoised


def test_overrides():
    model, _ = model_of(
        """
        from torch import nn
        class A(nn.Module):
            def forward(self, x): return x
        class B(A):
            def forward(self, x): return x + 1
        class C(B): pass
        """
    )
    c = model.top_level_classes["C"]
    assert [k.name for k in model.overrides(c, "forward")] == ["B", "A"]
    assert model.overrides(model.top_level_classes["A"], "forward") == []


def test_nn_prefix_counts_only_when_nn_is_torch():
    model, _ = model_of("import mylib.nn as nn\nclass A(nn.Layer): pass\n")
    assert not model.is_module(model.classes[0])
    model, _ = model_of("class A(nn.Module): pass\n")
    assert model.is_module(model.classes[0])  # `nn.Module` as written


# ------------------------------------------------------------------------ imports


def test_import_aliases():
    model, tree = model_of(
        """
        import torch as T
        from torch import nn as n
        from torch.nn import Linear as L
        import torch.optim
        from . import local
        from x import *
        T.cuda.FloatTensor
        n.Conv2d
        L
        torch.optim.SGD
        """
    )
    exprs = [s.value for s in tree.body if isinstance(s, ast.Expr)]
    assert [model.imports.qualname(e) for e in exprs] == [
        "torch.cuda.FloatTensor", "torch.nn.Conv2d", "torch.nn.Linear", "torch.optim.SGD",
    ]
    assert "local" not in model.imports.bound


def test_a_name_imported_twice_keeps_both_and_resolves_to_the_last():
    model, tree = model_of("import torch as T\ndef f():\n    import numpy as T\nT.zeros\n")
    node = tree.body[-1].value
    assert model.imports.qualnames(node) == {"torch.zeros", "numpy.zeros"}
    assert model.imports.qualname(node) == "numpy.zeros"


def test_call_sites_by_qualified_name_with_scope_and_guards():
    model, tree = model_of(
        """
        import torch
        def f(c):
            if c:
                torch.zeros(3)
        torch.zeros(1)
        """
    )
    inner, outer = model.calls_to("torch.zeros")
    assert inner.scope is model.scope_of(find(tree, ast.FunctionDef))
    assert [g.kind for g in inner.guards] == ["if"]
    assert outer.scope is model.module_scope and outer.guards == ()


# -------------------------------------------------------------------------- kinds


def test_kinds():
    model, tree = model_of(
        """
        import torch as T
        from torch import nn as n
        a = T.zeros(3, dtype=T.float16)
        b = a.float() * 2
        o = T.optim.SGD(p)
        s = T.optim.lr_scheduler.OneCycleLR(o)
        e = T.optim.lr_scheduler.StepLR(o, 3)
        l = n.CrossEntropyLoss()
        m = n.Linear(2, 2)
        w = n.Parameter(a)
        g = T.cuda.amp.GradScaler()
        d = T.utils.data.DataLoader(ds)
        c = T.cuda.LongTensor(3)
        q = T.softmax(a, 1)
        u = unknown()
        use()
        """
    )
    at = tree.body[-1]
    kinds = {name: kind_of(model, ast.Name(name), at) for name in "abosnelmwgdcqu" if name != "n"}
    assert kinds["a"].name == "tensor" and kinds["a"].dtype == "torch.float16" and kinds["a"].fresh
    assert kinds["b"].name == "tensor" and kinds["b"].dtype == "torch.float32"
    assert kinds["o"].name == "optimizer"
    assert kinds["s"].name == "scheduler" and kinds["s"].per_iteration
    assert kinds["e"].name == "scheduler" and not kinds["e"].per_iteration
    assert kinds["l"].name == "loss" and kinds["l"].expects == "logits"
    assert kinds["m"].name == "module"
    assert kinds["w"].name == "parameter"
    assert kinds["g"].name == "grad-scaler"
    assert kinds["d"].name == "data-loader"
    assert kinds["c"].name == "tensor" and kinds["c"].dtype == "torch.int64"
    assert kinds["q"].name == "probabilities"
    assert kinds["u"] is None


def test_call_site_callee_receiver_and_arguments():
    model, _ = model_of("opt.step()\nf(a, *b, k=c)\nx.y.z()\n")
    step, f, z = model.calls
    assert (step.callee, step.receiver) == ("step", "opt")
    assert (f.callee, f.receiver) == ("f", None)
    assert f.passes("a") and f.passes("b") and f.passes("c") and not f.passes("f")
    assert (z.callee, z.receiver) == ("z", None)


def test_attribute_names_and_super_attributes_in_a_function_and_nested_scopes():
    model, tree = model_of(
        """
        class C(B):
            def __init__(self):
                super().init()
                def inner():
                    return super(C, self).__init__
                B.setup(self)
        """
    )
    scope = model.scope_of(find(tree, ast.FunctionDef, name="__init__"))
    assert model.attribute_names_in(scope) == {"init", "__init__", "setup"}
    assert model.super_attributes_in(scope) == {"init", "__init__"}


@pytest.mark.parametrize(
    "body, stub",
    [
        ("...", True), ("raise NotImplementedError", True), ('"""Doc."""\n    ...', True),
        ('"""Doc."""', False), ("pass", False), ("x = 1\n    raise E", False),
    ],
)
def test_is_stub(body, stub):
    from trainlint.semantic import is_stub

    _, tree = model_of(f"def f():\n    {body}\n")
    assert is_stub(tree.body[0]) is stub
