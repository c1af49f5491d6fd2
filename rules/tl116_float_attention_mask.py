"""
## What it does
Flags a float tensor of zeros and ones passed as an attention mask: `attn_mask=` of
`nn.MultiheadAttention` and `F.scaled_dot_product_attention`, and `mask=`, `src_mask=`,
`tgt_mask=`, `memory_mask=` of `nn.Transformer`, `nn.TransformerEncoder(Layer)` and
`nn.TransformerDecoder(Layer)`. A 0/1 tensor is one built by `torch.ones` (without a bool
dtype), through `tril`/`triu`, `1 - mask`, casts, slices, reshapes and
device moves, and not turned into a bool (`.bool()`, `== 0`) or filled with `-inf`
(`masked_fill`). The mask is followed through a function's straight-line locals and a
Module's `register_buffer` / `self.<name> = ...`; the attention layer through the
assignments of `self.<name>` or a local in the file.

## Why is this bad?
A float mask is *added* to the attention scores before the softmax. A causal mask of
ones and zeros adds 1 to the allowed (or the forbidden) positions instead of `-inf` to
the forbidden ones, so the model still attends to the future: on torch 2.13, with a
`tril(ones)` mask over 6 random tokens, `nn.MultiheadAttention` put 55% of the first
token's attention on later tokens (0% with the equivalent bool mask). The model trains,
and leaks the answer it is meant to predict.

## Example
```python
import torch
from torch import nn

class Decoder(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x):
        t = x.size(1)
        mask = torch.tril(torch.ones(t, t, device=x.device))
        return self.attn(x, x, x, attn_mask=mask)[0]
```

## Use instead
The two APIs use opposite bool conventions. `nn.MultiheadAttention` and the
`nn.Transformer*` modules take True for a position that is *not* allowed:
```python
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), diagonal=1)
```
(or `nn.Transformer.generate_square_subsequent_mask(t)`, a float mask of `0` and
`-inf`). `F.scaled_dot_product_attention` takes True for a position that *is* allowed:
`torch.tril(torch.ones(t, t, dtype=torch.bool))`, or `is_causal=True`.

## Fix safety
There is no fix: which positions the author meant to hide (`tril` or `triu`, and which
bool convention the callee uses) decides between `mask == 0` and `mask.bool()`.

## Known false positives
A float mask of 0/1 that is meant as a small additive bias would be reported; none was
seen. Masks built in another function or passed in as arguments, and attention layers
reached through containers (`self.layers[i]`) or other libraries, are not checked.
"""

from __future__ import annotations

import libcst as cst
from trainlint.rules._analysis import (
    Visitor,
    attribute_writes,
    built_by,
    call_argument,
    enclosing_function_statement,
    int_literal,
    reaching_assignment,
    self_attribute,
)

from trainlint.rule import Invalid, Rule, Valid
from trainlint.traverse import walk

MHA = "MHA"
SDPA = "SDPA"
# module -> the parameters of its forward that are attention masks (MHA's convention)
MODULE_MASKS = {
    "torch.nn.MultiheadAttention": ("attn_mask",),
    "torch.nn.Transformer": ("src_mask", "tgt_mask", "memory_mask"),
    "torch.nn.TransformerEncoder": ("mask",),
    "torch.nn.TransformerEncoderLayer": ("src_mask",),
    "torch.nn.TransformerDecoder": ("tgt_mask", "memory_mask"),
    "torch.nn.TransformerDecoderLayer": ("tgt_mask", "memory_mask"),
}
MASK_PARAMETERS = {p for params in MODULE_MASKS.values() for p in params}
FUNCTION_MASKS = {
    "torch.nn.functional.scaled_dot_product_attention": (SDPA, "attn_mask", 3),
    "torch.nn.functional.multi_head_attention_forward": (MHA, "attn_mask", None),
}
ONES = {"torch.ones"}
TRIANGLES = {"torch.tril", "torch.triu"}
# methods whose result holds the same values as the receiver
VALUE_KEEPING_METHODS = {
    "float", "half", "double", "bfloat16", "to", "cuda", "cpu", "type_as", "unsqueeze", "view",
    "reshape", "expand", "repeat", "clone", "detach", "contiguous", "tril", "triu", "t",
    "transpose",
}
FLOAT_DTYPES = {"torch.float", "torch.float32", "torch.float16", "torch.half", "torch.bfloat16", "torch.float64", "torch.double"}
MAX_HOPS = 8


class FloatAttentionMask(Rule):
    __doc__ = __doc__
    code = "TL116"
    name = "float-attention-mask"
    message = (
        "a float 0/1 tensor passed as `{param}` to `{callee}` is added to the attention "
        "scores, so it hides nothing; {convention}"
    )
    conventions = {
        MHA: "pass a bool mask, True where attending is *not* allowed (`mask == 0` for a `tril` of ones)",
        SDPA: "pass a bool mask, True where attending *is* allowed (`mask.bool()` for a `tril` of ones), or `is_causal=True`",
    }
    tokens = (
        ("*multiheadattention*", "*transformer*", "multi_head_attention_forward", "scaled_dot_product_attention"),
        ("*mask*", "scaled_dot_product_attention"),
    )

    VALID = [
        # Bool masks, and additive masks of -inf.
        Valid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn

            class Decoder(nn.Module):
                def __init__(self, dim, heads):
                    super().__init__()
                    self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

                def forward(self, x, q, k, v):
                    t = x.size(1)
                    a = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
                    b = torch.tril(torch.ones(t, t)) == 0
                    c = torch.triu(torch.ones(t, t), 1).masked_fill(a, float("-inf"))
                    d = torch.tril(torch.ones(t, t)).bool()
                    e = nn.Transformer.generate_square_subsequent_mask(t)
                    y = self.attn(x, x, x, attn_mask=a)[0] + self.attn(x, x, x, attn_mask=b)[0]
                    y = y + self.attn(x, x, x, attn_mask=c)[0] + self.attn(x, x, x, attn_mask=e)[0]
                    return y + F.scaled_dot_product_attention(q, k, v, attn_mask=d)
            """
        ),
        # A 0/1 mask given to a callee that multiplies or fills with it, or to an unknown one.
        Valid(
            """
            import torch
            from torch import nn
            from mylib import Attention

            class Block(nn.Module):
                def __init__(self, dim):
                    super().__init__()
                    self.attn = Attention(dim)
                    self.register_buffer("causal", torch.tril(torch.ones(8, 8)))

                def forward(self, x):
                    return self.attn(x, attn_mask=self.causal)

            def padding_mask(x, model):
                mask = torch.ones(x.shape[:2])
                return model(x, attention_mask=mask)
            """
        ),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            from torch import nn

            class Decoder(nn.Module):
                def __init__(self, dim, heads):
                    super().__init__()
                    self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)

                def forward(self, x):
                    t = x.size(1)
                    mask = torch.tril(torch.ones(t, t, device=x.device))
                    return self.attn(x, x, x, attn_mask=mask)[0]
            """,
            line=12,
        ),
        # SDPA, a registered buffer, an encoder, `1 - mask`, an aliased import.
        Invalid(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn
            from torch.nn import TransformerEncoder, TransformerEncoderLayer as Layer

            class GPT(nn.Module):
                def __init__(self, dim, size):
                    super().__init__()
                    self.register_buffer("bias", torch.tril(torch.ones(size, size)).view(1, 1, size, size))
                    self.encoder = TransformerEncoder(Layer(dim, 4), 2)

                def forward(self, q, k, v, x):
                    t = q.size(-2)
                    y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias[:, :, :t, :t])
                    future = 1.0 - torch.tril(torch.ones(t, t))
                    return y, self.encoder(x, mask=future.to(x.device))
            """,
            line=14,
            count=2,
        ),
    ]

    def __init__(self, context) -> None:
        super().__init__(context)
        self._buffers: dict[int, dict[str, list[cst.BaseExpression]]] = {}

    def visit_Call(self, node: cst.Call) -> None:
        target = self._attention(node)
        if target is None:
            return
        callee, convention, masks = target
        for param, value in masks:
            if value is not None and self._float01(value, None, MAX_HOPS):
                self.report(
                    value,
                    self.message.format(param=param, callee=callee, convention=self.conventions[convention]),
                    help=self.conventions[convention],
                )

    # ---------------------------------------------------------------- the callee

    def _attention(self, call: cst.Call):
        """(label, bool convention, [(parameter, value)]) for an attention call, or None."""
        qualname = self.context.qualname(call.func)
        if qualname in FUNCTION_MASKS:
            convention, param, position = FUNCTION_MASKS[qualname]
            label = "F." + qualname.rsplit(".", 1)[1]
            return label, convention, [(param, call_argument(call, param, position))]
        if qualname is not None or not any(
            arg.keyword is not None and arg.keyword.value in MASK_PARAMETERS for arg in call.args
        ):
            return None
        built = self._constructor(call.func)
        if built is None:
            return None
        return (
            "nn." + built.rsplit(".", 1)[1],
            MHA,
            [(param, call_argument(call, param)) for param in MODULE_MASKS[built]],
        )

    def _constructor(self, func: cst.BaseExpression) -> str | None:
        """The torch attention class that builds the object `func` holds."""
        calls = built_by(self.context.module, self.context.imports, func)
        kind = self.context.qualname(calls[0].func) if calls else None
        return kind if kind in MODULE_MASKS else None

    # ------------------------------------------------------------------ the mask

    def _float01(self, expr: cst.BaseExpression | None, statement, hops: int) -> bool:
        """`expr` is visibly a float tensor of zeros and ones."""
        if hops == 0 or expr is None:
            return False
        if isinstance(expr, cst.Subscript):
            return self._float01(expr.value, statement, hops - 1)
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Subtract):
            return _is_one(expr.left) and self._float01(expr.right, statement, hops - 1)
        if isinstance(expr, cst.Name):
            return self._name_float01(expr.value, statement, hops)
        if isinstance(expr, cst.Attribute):
            attr = self_attribute(expr)
            return attr is not None and self._attribute_float01(attr, hops)
        if not isinstance(expr, cst.Call):
            return False
        qualname = self.context.qualname(expr.func)
        if qualname in ONES:
            dtype = call_argument(expr, "dtype")
            return dtype is None or self.context.qualname(dtype) in FLOAT_DTYPES
        if qualname in TRIANGLES:
            return bool(expr.args) and self._float01(expr.args[0].value, statement, hops - 1)
        if qualname is not None or not isinstance(expr.func, cst.Attribute):
            return False
        method = expr.func.attr.value
        if method not in VALUE_KEEPING_METHODS:
            return False
        if method in ("to", "type_as") and not self._keeps_float(expr):
            return False
        return self._float01(expr.func.value, statement, hops - 1)

    def _keeps_float(self, call: cst.Call) -> bool:
        """`.to(device)` / `.to(torch.float16)` keep a float tensor float; `.to(torch.bool)`,
        `.type_as(scores)` and unknown dtypes may not."""
        if call.func.attr.value == "type_as":
            return False
        dtype = call_argument(call, "dtype")
        values = [dtype] if dtype is not None else [a.value for a in call.args if a.keyword is None]
        for value in values:
            qualname = self.context.qualname(value)
            if qualname is not None and qualname.startswith("torch.") and qualname not in FLOAT_DTYPES and qualname != "torch.device":
                return False
        return True

    def _name_float01(self, name: str, statement, hops: int) -> bool:
        found = enclosing_function_statement(self.context.stack)
        if found is None:
            return False
        func, use = found
        reaching = reaching_assignment(func, name, statement or use)
        if reaching is None or reaching.path:
            return False
        return self._float01(reaching.value, reaching.statement, hops - 1)

    def _attribute_float01(self, attr: str, hops: int) -> bool:
        cls = self.context.enclosing(cst.ClassDef)
        if cls is None:
            return False
        values = self._class_values(cls).get(attr, [])
        return bool(values) and all(self._float01(v, None, hops - 1) for v in values)

    def _class_values(self, cls: cst.ClassDef) -> dict[str, list[cst.BaseExpression]]:
        """Every value stored as `self.<name>` or registered as buffer `<name>` in the class."""
        key = id(cls)
        if key not in self._buffers:
            values: dict[str, list[cst.BaseExpression]] = {}
            for attr, writes in attribute_writes(cls).items():
                values[attr] = [w.value for w in writes]
            finder = _RegisteredBuffers()
            walk(cls, finder)
            for name, value in finder.found:
                values.setdefault(name, []).append(value)
            self._buffers[key] = values
        return self._buffers[key]


def _is_one(node: cst.BaseExpression) -> bool:
    if isinstance(node, cst.Float):
        return float(node.value.replace("_", "")) == 1
    return int_literal(node) == 1


class _RegisteredBuffers(Visitor):
    """`self.register_buffer("name", value)` calls: (name, value)."""

    def __init__(self) -> None:
        self.found: list[tuple[str, cst.BaseExpression]] = []

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if self_attribute(func) != "register_buffer":
            return
        name = call_argument(node, "name", 0)
        value = call_argument(node, "tensor", 1)
        if isinstance(name, cst.SimpleString) and value is not None:
            self.found.append((name.evaluated_value, value))
