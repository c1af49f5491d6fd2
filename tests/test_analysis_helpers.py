"""The rule-pack-3 helpers of rules/_analysis.py, on small trees."""

from __future__ import annotations

import libcst as cst

from trainlint.imports import ImportTable
from trainlint.rules._analysis import built_by, reaching_assignment, shape_length


def _function(code: str) -> cst.FunctionDef:
    return cst.parse_module(code).body[0]


def test_reaching_assignment_takes_the_last_plain_binding():
    func = _function("def f(out):\n    _, pred = out.topk(5)\n    pred = pred.t()\n    use(pred)\n")
    found = reaching_assignment(func, "pred", func.body.body[-1])
    assert cst.Module([]).code_for_node(found.value) == "pred.t()" and found.path == ()


def test_reaching_assignment_paths_and_unknowns():
    func = _function(
        "def f(x):\n    out, (h, c) = lstm(x)\n    use(h)\n    if x:\n        h = 1\n    use(h)\n"
    )
    body = func.body.body
    assert reaching_assignment(func, "h", body[1]).path == (1, 0)
    assert reaching_assignment(func, "out", body[1]).path == (0,)
    assert reaching_assignment(func, "h", body[3]) is None  # rebound in a branch
    assert reaching_assignment(func, "x", body[1]) is None  # a parameter, not assigned


def test_shape_length():
    def length(code):
        return shape_length(cst.parse_expression(code))

    assert [length("x.view(b, -1)"), length("x.view((b, -1, d))"), length("x.view(-1)")] == [2, 3, 1]
    assert [length("x.view(b * t)"), length("x.view(shape)"), length("x.view(*s)")] == [1, None, None]


def test_built_by_needs_one_imported_class():
    module = cst.parse_module(
        "from torch import nn\n"
        "class A:\n    def __init__(self):\n        self.rnn = nn.GRU(4, 4)\n        self.x = nn.GRU(4, 4)\n"
        "class B:\n    def __init__(self):\n        self.x = nn.LSTM(4, 4)\n"
    )
    imports = ImportTable.of_module(module)
    assert len(built_by(module, imports, cst.parse_expression("self.rnn"))) == 1
    assert built_by(module, imports, cst.parse_expression("self.x")) == []
    assert built_by(module, imports, cst.parse_expression("other.rnn")) == []
