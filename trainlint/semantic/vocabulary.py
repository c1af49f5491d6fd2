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

# Functions that return a new tensor.
TENSOR_FACTORIES = frozenset(
    f"torch.{name}"
    for name in (
        "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "rand", "randn",
        "randint", "randperm", "arange", "linspace", "logspace", "eye", "zeros_like",
        "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like",
        "stack", "cat", "concat", "Tensor", "FloatTensor", "DoubleTensor", "HalfTensor",
        "LongTensor", "IntTensor", "ShortTensor", "ByteTensor", "CharTensor", "BoolTensor",
    )
) | frozenset(
    f"torch.cuda.{name}"
    for name in (
        "FloatTensor", "DoubleTensor", "HalfTensor", "LongTensor", "IntTensor", "ShortTensor",
        "ByteTensor", "CharTensor", "BoolTensor",
    )
)
# The dtype a legacy typed constructor implies.
LEGACY_DTYPES = {
    "FloatTensor": "torch.float32", "DoubleTensor": "torch.float64", "HalfTensor": "torch.float16",
    "LongTensor": "torch.int64", "IntTensor": "torch.int32", "ShortTensor": "torch.int16",
    "ByteTensor": "torch.uint8", "CharTensor": "torch.int8", "BoolTensor": "torch.bool",
}
# Tensor methods that return a tensor (casts, moves, reshapes).
TENSOR_METHODS = frozenset({
    "float", "double", "half", "bfloat16", "long", "int", "short", "byte", "char", "bool",
    "to", "cuda", "cpu", "type", "view", "reshape", "flatten", "unsqueeze", "squeeze",
    "permute", "transpose", "t", "contiguous", "clone", "detach", "expand", "repeat",
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
