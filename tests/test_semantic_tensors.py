"""Fresh tensors in a function body (`semantic.tensors`) and a class's attribute stores
(`semantic.stores`)."""

from __future__ import annotations

import ast
import textwrap

import pytest

from trainlint.semantic import SemanticModel
from trainlint.semantic.stores import named_attributes, reads_self_attribute, stores
from trainlint.semantic.tensors import GRAD, OPTIONAL, TENSOR, FunctionBody


def parse(code: str) -> tuple[SemanticModel, ast.Module]:
    tree = ast.parse(textwrap.dedent(code))
    return SemanticModel(tree), tree


def stored_kinds(code: str) -> dict[str, str | None]:
    """The kind of each `self.<attr> = value` in the first function of code."""
    model, tree = parse(code)
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    body = FunctionBody(model, function)
    out = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute):
            out[node.targets[0].attr] = body.tensor(node.value, node)
    return out


def test_factories_functions_methods_and_arithmetic():
    kinds = stored_kinds(
        """
        import torch as T
        from torch import zeros
        def f(self, n, arr):
            self.a = T.tensor(arr)
            self.b = zeros(n).float().view(1, -1)
            self.c = T.log(T.ones(n)) * 2
            self.d = -T.cuda.FloatTensor(n)[0]
            self.e = T.zeros(n, requires_grad=True)
            self.f = T.zeros(n).requires_grad_()
            self.g = T.zeros(n).requires_grad_(False)
            self.h = T.cuda.zeros(n)
            self.i = T.log(arr)
            self.j = helper(n)
            self.k = T.zeros(n) | 1
            self.l = T.nn.functional.softmax(T.zeros(n))
        """
    )
    assert kinds == {
        "a": TENSOR, "b": TENSOR, "c": TENSOR, "d": TENSOR, "e": GRAD, "f": GRAD, "g": TENSOR,
        "h": None, "i": None, "j": None, "k": None, "l": None,
    }


def test_locals_on_a_straight_line():
    kinds = stored_kinds(
        """
        import torch
        def f(self, n, w, flag):
            x = torch.zeros(n)
            x = x * 2
            self.a = x
            y = torch.zeros(n)
            if flag:
                y = [1]
            self.b = y
            if w is not None:
                w = torch.tensor(w)
            self.c = w
            z = torch.ones(n); self.d = z
            u = v = torch.ones(n)
            self.e = u
            for q in range(n):
                self.f = q
            p = torch.ones(n)
            for p in range(n):
                self.g = p
            s = torch.ones(n)
            del s
            self.h = s
        """
    )
    # `d`: a local bound on the store's own line is not followed; `h`: `del` keeps the
    # line straight (the store fails at run time anyway)
    assert kinds == {
        "a": TENSOR, "b": None, "c": OPTIONAL, "d": None, "e": None, "f": None, "g": None,
        "h": TENSOR,
    }


@pytest.mark.parametrize(
    "guard",
    [
        "if w is not None: w = torch.tensor(w)",  # on the `if` line
        "if w is not None:\n    w = torch.tensor(w)\nelse:\n    w = None",
        "if w is None:\n    w = torch.tensor(w)",
        "if w is not None:\n    w = torch.tensor(w)\n    k = 1",
    ],
)
def test_optional_idiom_is_exact(guard):
    code = "import torch\ndef f(self, w):\n" + textwrap.indent(guard, "    ") + "\n    self.c = w\n"
    assert stored_kinds(code) == {"c": None}


def test_stores_are_plain_statements_of_the_methods():
    model, tree = parse(
        """
        class C:
            def __init__(self, n, other):
                self.a = n
                self.b, self.c = n, n
                self.d: int = n
                self.e += 1
                del self.f
                for self.g in range(n):
                    pass
                first, *self.h = n
                other.i = n
                def helper():
                    self.j = n
                def __init__():
                    self.k = n
            def m(this):
                this.l = 1
                self.m = 2
        """
    )
    (klass,) = model.classes
    found = stores(model, klass)
    assert sorted(found) == ["a", "b", "c", "d", "e", "k"]
    assert [(s.kind, s.sole_target) for s in found["b"]] == [("assign", True)]
    assert isinstance(found["b"][0].value, ast.Tuple)  # the whole right-hand side
    assert found["d"][0].kind == "annotated" and found["e"][0].kind == "augmented"


def test_arguments_that_name_attributes_and_reads():
    call = ast.parse('setattr(self, "x", self.y, *self.z, k=other.w)').body[0].value
    assert named_attributes(call) == {"x", "y", "z"}
    value = ast.parse("torch.tensor(self.x.to(d)) + other.y").body[0].value
    assert reads_self_attribute(value, "x") and not reads_self_attribute(value, "y")
