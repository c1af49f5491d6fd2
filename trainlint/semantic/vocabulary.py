"""The torch vocabulary the rules share: qualified names and the classes they belong to."""

from __future__ import annotations

NN = "torch.nn"
MODULE = frozenset({"torch.nn.Module", "torch.nn.modules.module.Module"})
# Spellings of `nn.Module` as written, for bases whose head no import binds.
MODULE_AS_WRITTEN = frozenset({"nn.Module", "Module"})
# Bases from other frameworks whose instances are `nn.Module`s.
FRAMEWORK_MODULES = frozenset({
    "pytorch_lightning.LightningModule",
    "pytorch_lightning.core.LightningModule",
    "pytorch_lightning.core.module.LightningModule",
    "lightning.LightningModule",
    "lightning.pytorch.LightningModule",
    "lightning.pytorch.core.module.LightningModule",
    "transformers.PreTrainedModel",
    "transformers.modeling_utils.PreTrainedModel",
})
PARAMETER = frozenset({"torch.nn.Parameter", "torch.nn.parameter.Parameter"})
BUFFER = frozenset({"torch.nn.Buffer", "torch.nn.parameter.Buffer"})
# Classes whose instances a Module registers as its parameters or buffers.
PARAMETERS_AND_BUFFERS = PARAMETER | BUFFER | frozenset({
    "torch.nn.UninitializedParameter", "torch.nn.parameter.UninitializedParameter",
    "torch.nn.UninitializedBuffer", "torch.nn.parameter.UninitializedBuffer",
})

# `torch.<name>(...)` that creates a tensor (the typed ones also as `torch.cuda.<name>`).
_FACTORY_NAMES = (
    "tensor", "as_tensor", "asarray", "from_numpy", "frombuffer", "zeros", "ones", "empty",
    "full", "arange", "range", "linspace", "logspace", "eye", "rand", "randn", "randint",
    "randperm", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like",
    "randn_like", "randint_like", "stack", "cat", "concat", "concatenate", "hstack",
    "vstack", "tril_indices", "triu_indices", "hann_window", "hamming_window",
    "blackman_window", "bartlett_window", "kaiser_window", "normal", "bernoulli",
    "Tensor", "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "LongTensor",
    "IntTensor", "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor",
)
# Functions that return a new tensor.
TENSOR_FACTORIES = frozenset(f"torch.{name}" for name in _FACTORY_NAMES) | frozenset(
    f"torch.cuda.{name}" for name in _FACTORY_NAMES if name.endswith("Tensor")
)
# `torch.<name>(tensor, ...)`: functions that return a tensor computed from their first argument.
TENSOR_FUNCTIONS = frozenset(
    f"torch.{name}"
    for name in (
        "log", "log2", "log10", "log1p", "exp", "sqrt", "rsqrt", "abs", "sin", "cos", "tan",
        "tanh", "sigmoid", "tril", "triu", "diag", "diag_embed", "diagflat", "flip", "roll",
        "cumsum", "cumprod", "outer", "matmul", "mm", "clamp", "clip", "pow", "reciprocal",
        "round", "floor", "ceil", "sign", "neg", "unsqueeze", "squeeze", "reshape", "transpose",
        "permute", "t", "flatten", "softmax", "log_softmax", "repeat_interleave", "kron",
        "cartesian_prod", "polar", "complex", "view_as_real", "view_as_complex", "erf",
        "erfinv", "atan2", "fmod", "remainder", "mul", "div", "add", "sub", "maximum",
        "minimum", "einsum",
    )
)
# The dtype a legacy typed constructor implies.
LEGACY_DTYPES = {
    "FloatTensor": "torch.float32", "DoubleTensor": "torch.float64", "HalfTensor": "torch.float16",
    "LongTensor": "torch.int64", "IntTensor": "torch.int32", "ShortTensor": "torch.int16",
    "ByteTensor": "torch.uint8", "CharTensor": "torch.int8", "BoolTensor": "torch.bool",
}
# Tensor methods that return a tensor (casts, moves, reshapes, arithmetic, in-place ops).
TENSOR_METHODS = frozenset({
    "float", "double", "half", "bfloat16", "long", "int", "short", "char", "byte", "bool",
    "cuda", "cpu", "to", "type", "view", "view_as", "reshape", "reshape_as", "unsqueeze",
    "squeeze", "t", "transpose", "permute", "contiguous", "clone", "detach", "expand",
    "expand_as", "repeat", "repeat_interleave", "flatten", "sqrt", "rsqrt", "exp", "log",
    "abs", "neg", "mul", "div", "add", "sub", "pow", "clamp", "clamp_", "sum", "mean",
    "cumsum", "cumprod", "tril", "triu", "flip", "roll", "softmax", "log_softmax",
    "fill_", "zero_", "normal_", "uniform_", "mul_", "div_", "add_", "sub_", "fill_diagonal_",
    "masked_fill", "masked_fill_", "index_select", "gather", "reciprocal", "sigmoid", "tanh",
    "requires_grad_", "pin_memory", "share_memory_", "diag", "outer", "matmul",
    "unsqueeze_", "squeeze_", "t_", "transpose_",
})
# The dtype a cast method gives.
CAST_DTYPES = {
    "float": "torch.float32", "double": "torch.float64", "half": "torch.float16",
    "bfloat16": "torch.bfloat16", "long": "torch.int64", "int": "torch.int32",
    "short": "torch.int16", "byte": "torch.uint8", "char": "torch.int8", "bool": "torch.bool",
}

OPTIMIZERS = "torch.optim"
SCHEDULERS = "torch.optim.lr_scheduler"
# Schedulers meant to be stepped once per batch; every other one once per epoch.
PER_ITERATION_SCHEDULERS = frozenset({
    "torch.optim.lr_scheduler.OneCycleLR", "torch.optim.lr_scheduler.CyclicLR",
})
GRAD_SCALERS = frozenset({
    "torch.cuda.amp.GradScaler", "torch.amp.GradScaler", "torch.cuda.amp.grad_scaler.GradScaler",
    "torch.amp.grad_scaler.GradScaler",
})
DATA_LOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})

# Losses by what they expect as input.
LOSSES_ON_LOGITS = frozenset({
    "torch.nn.CrossEntropyLoss", "torch.nn.BCEWithLogitsLoss", "torch.nn.MultiLabelSoftMarginLoss",
    "torch.nn.functional.cross_entropy", "torch.nn.functional.binary_cross_entropy_with_logits",
})
LOSSES_ON_PROBABILITIES = frozenset({
    "torch.nn.BCELoss", "torch.nn.functional.binary_cross_entropy",
})
LOSSES_ON_LOG_PROBABILITIES = frozenset({
    "torch.nn.NLLLoss", "torch.nn.KLDivLoss", "torch.nn.functional.nll_loss",
    "torch.nn.functional.kl_div",
})
PROBABILITY_FUNCTIONS = frozenset({
    "torch.softmax", "torch.sigmoid", "torch.nn.functional.softmax", "torch.nn.functional.sigmoid",
})


def is_torch_nn(name: str) -> bool:
    """A name under `torch.nn` (layers, losses, containers, `Module` itself)."""
    return name.startswith(NN + ".")
