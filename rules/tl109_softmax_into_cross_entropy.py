"""
## What it does
Flags probabilities fed to a loss that expects something else:

- `softmax` output as the input of `nn.CrossEntropyLoss` / `F.cross_entropy` (which expect
  unnormalised logits);
- `sigmoid` output as the input of `nn.BCEWithLogitsLoss` /
  `F.binary_cross_entropy_with_logits` (which expect logits);
- `softmax` output as the input of `nn.NLLLoss` / `F.nll_loss` (which expect
  log-probabilities, the output of `log_softmax`);
- the crossed pairs (`sigmoid` into a cross entropy or `nll_loss`, `softmax` into
  `BCEWithLogitsLoss`).

The probability is followed from the activation (`F.softmax(x, dim=1)`, `torch.softmax`,
`x.softmax(-1)`, `nn.Softmax(dim=1)(x)`, a `self.softmax` attribute that the class binds
only to `nn.Softmax`, and the same forms of `sigmoid` / `torch.special.expit`) to the loss's
*input* argument, directly or through straight-line local assignments in the same function
(or module-level script), and through `view`, `view_as`, `reshape`, `reshape_as`,
`squeeze`, `flatten`, `float`, `double`, `half`, `bfloat16`, `to`, `clone`, `contiguous`,
`detach`, `cpu` and `cuda`. The loss may be called directly (`F.cross_entropy(p, y)`),
through an inline module (`nn.CrossEntropyLoss()(p, y)`), through a name bound to a loss
module (or to the functional loss) in the same function or at module level, or through a
`self.criterion` attribute that the class binds only to that kind of loss module.

A softmax counts only when it normalises the class dimension: `dim=1`, `dim=-1`, or no
`dim` at all (the implicit choice is dim 1 for the 2-D and 4-D inputs a classifier or a
segmenter feeds to cross entropy). A softmax over any other or unknown dimension
(`dim=2`, `dim=self.dim`) is not reported.

## Why is this bad?
`CrossEntropyLoss` is `log_softmax` followed by `NLLLoss`. Given softmax probabilities it
applies a second softmax: every input lies in [0, 1], so the second softmax is nearly
uniform, the loss cannot go below `log(C - 1 + e) - 1` (1.46 for 10 classes) and the
gradients shrink; training stalls or converges to a worse model without any error.
`BCEWithLogitsLoss` applies `sigmoid` itself, so a sigmoid output is squashed twice into
[0.5, 0.73] with the same effect. `NLLLoss` only picks `-input[target]`: fed probabilities
it minimises `-p` instead of `-log p`, an objective that is negative, has no
log-likelihood meaning and gives the wrong gradients.

Only the loss *input* is checked. Since PyTorch 1.10 the *target* of `cross_entropy` may
be class probabilities, so `F.cross_entropy(student_logits, F.softmax(teacher / T, 1))`
(distillation, label smoothing) is correct and is not reported; likewise a sigmoid target
of `BCEWithLogitsLoss`.

## Example
```python
def train_step(model, x, y):
    probs = F.softmax(model(x), dim=1)
    loss = F.cross_entropy(probs, y)
    nll = F.nll_loss(F.softmax(model(x), dim=1), y)
    bce = F.binary_cross_entropy_with_logits(torch.sigmoid(model(x)), y.float())
```

## Use instead
```python
def train_step(model, x, y):
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    nll = F.nll_loss(F.log_softmax(model(x), dim=1), y)
    bce = F.binary_cross_entropy_with_logits(model(x), y.float())
```

## Fix safety
A fix is offered for the three matching pairs, when the probability is used by the loss
and nothing else (the activation is written inside the loss argument, or every local it
flows through is read exactly once in the function):

- softmax into a cross entropy, and sigmoid into a with-logits BCE: the activation call is
  replaced by its input (`F.cross_entropy(F.softmax(z, dim=1), y)` becomes
  `F.cross_entropy(z, y)`; `probs = F.softmax(z, dim=1)` becomes `probs = z`, keeping the
  local's name);
- softmax into `nll_loss` / `NLLLoss`: the softmax becomes `log_softmax` with the same
  arguments (`F.softmax` -> `F.log_softmax`, `x.softmax(1)` -> `x.log_softmax(1)`,
  `nn.Softmax` -> `nn.LogSoftmax`).

The research catalogue calls these rewrites safe in the sense that they remove nothing
but the bug. Under this project's contract they are **unsafe**: the loss value and its
gradients change (that is the point), so a run with tuned learning rates, logged loss
curves or a checkpoint's training behaviour will differ. Apply them with
`--unsafe-fixes` and retune if needed.

Reported without a fix: the crossed pairs (whether the activation or the loss is wrong
depends on the task: multi-class or multi-label); a probability that is also used
elsewhere (returned, logged, used for accuracy), since removing the activation would change
that use; a softmax bound in `__init__` as a module attribute and fed to `nll_loss`
(renaming it would touch every other use of the attribute); a softmax imported by bare
name (`from torch.nn.functional import softmax`) when `log_softmax` is not imported the
same way.

## Known false positives
A loss that really is meant to see probabilities as logits (a deliberate "double softmax"
experiment behind a flag) is reported; this is rare enough that an inline suppression is
the remedy.

`nll_loss` is also used on purpose as a gather, `-nll_loss(p, t) == p[t]`, to pick the
target's probability (focal-loss weights, attribution scores). Such calls are recognised
and not reported when the result is negated (`-F.nll_loss(...)`, `-1 * F.nll_loss(...)`)
or may be unreduced (`reduction="none"`, `reduce=False`, or either set from a variable, on
the call or on the `NLLLoss` constructor); a gather written in another way is reported.

## Limitations
The rule is conservative about what it does not see, so these are missed rather than
guessed:
- a model whose `forward` ends in `softmax` (`loss = criterion(model(x), y)`) or an
  `nn.Sequential` ending in `nn.Softmax`: the value crosses a call;
- locals bound inside a branch, loop, `with` or `try` block and used after it, bound by
  unpacking (`p, q = ...`), bound anywhere inside a loop that uses them from before the
  loop, changed in place (`probs.clamp_(...)`, `probs[i] = ...`) in between, or read
  inside a lambda or comprehension;
- a softmax over a dimension given by a variable, `.clamp(...)`, indexing or any other
  operation between the activation and the loss;
- a loss module bound to a parameter, built by a factory, or stored on `self` by more than
  one kind of constructor;
- `NLLLoss` fed raw logits: the input's state is unknown, and a tensor from another
  function may well be log-probabilities, so it is never reported.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Sequence

import libcst as cst

from trainlint import screen as sc
from trainlint.rule import Applicability, Invalid, Rule, Valid
from trainlint.rules._analysis import BindingTargets, Visitor, binds, parameter_names
from trainlint.traverse import walk

# ---------------------------------------------------------------------------- vocabulary

CE, NLL, BCEWL = "cross entropy", "nll", "bce-with-logits"
SOFTMAX, SIGMOID = "softmax", "sigmoid"

FUNCTIONAL_LOSSES = {
    "torch.nn.functional.cross_entropy": CE,
    "torch.nn.functional.nll_loss": NLL,
    "torch.nn.functional.binary_cross_entropy_with_logits": BCEWL,
    "torch.binary_cross_entropy_with_logits": BCEWL,
}
LOSS_MODULES = {
    f"{prefix}.{name}": kind
    for prefix in ("torch.nn", "torch.nn.modules.loss")
    for name, kind in (
        ("CrossEntropyLoss", CE),
        ("NLLLoss", NLL),
        ("NLLLoss2d", NLL),
        ("BCEWithLogitsLoss", BCEWL),
    )
}
ACTIVATION_FUNCTIONS = {
    "torch.softmax": SOFTMAX,
    "torch.nn.functional.softmax": SOFTMAX,
    "torch.special.softmax": SOFTMAX,
    "torch.sigmoid": SIGMOID,
    "torch.nn.functional.sigmoid": SIGMOID,
    "torch.special.expit": SIGMOID,
}
ACTIVATION_MODULES = {
    f"{prefix}.{name}": kind
    for prefix in ("torch.nn", "torch.nn.modules.activation")
    for name, kind in (("Softmax", SOFTMAX), ("Sigmoid", SIGMOID))
}
# softmax spelling -> log_softmax spelling, for the nll fix
LOG_NAMES = {"softmax": "log_softmax", "Softmax": "LogSoftmax"}

# Tensor methods whose result keeps the receiver's values per element (layout, dtype or
# device only): a probability stays a probability.
PASSTHROUGH_METHODS = {
    "view", "view_as", "reshape", "reshape_as", "squeeze", "flatten", "float", "double",
    "half", "bfloat16", "to", "clone", "contiguous", "detach", "cpu", "cuda",
}
PASSTHROUGH_FUNCTIONS = {"torch.reshape", "torch.squeeze", "torch.flatten"}
# `.to()` / `.cuda()` on a loss module leave its kind unchanged
MODULE_MOVES = {"to", "cuda", "cpu"}

# Callee spellings (last name) that can produce a probability or compute one of the losses;
# used by the text prefilter and the screen.
ACTIVATION_WORDS = {"softmax", "sigmoid", "expit", "Softmax", "Sigmoid"}
LOSS_WORDS = {
    "cross_entropy", "nll_loss", "binary_cross_entropy_with_logits",
    "CrossEntropyLoss", "NLLLoss", "NLLLoss2d", "BCEWithLogitsLoss",
}
MAX_DEPTH = 8

MESSAGES = {
    (SOFTMAX, CE): (
        "{loss} expects logits but receives softmax probabilities: it applies log-softmax "
        "itself, so softmax is applied twice, which flattens the loss and its gradients"
    ),
    (SIGMOID, BCEWL): (
        "{loss} expects logits but receives sigmoid probabilities: it applies the sigmoid "
        "itself, so sigmoid is applied twice, which flattens the loss and its gradients"
    ),
    (SOFTMAX, NLL): (
        "{loss} expects log-probabilities but receives softmax probabilities: it minimises "
        "`-p` instead of `-log p`"
    ),
    (SIGMOID, CE): (
        "{loss} expects logits but receives sigmoid probabilities: they are squashed into "
        "[0, 1] before its log-softmax"
    ),
    (SOFTMAX, BCEWL): (
        "{loss} expects logits but receives softmax probabilities: they are squashed again "
        "by its sigmoid"
    ),
    (SIGMOID, NLL): (
        "{loss} expects log-probabilities but receives sigmoid probabilities: it minimises "
        "`-p` instead of `-log p`"
    ),
}
HELPS = {
    (SOFTMAX, CE): "pass the logits; keep `softmax` only for predictions",
    (SIGMOID, BCEWL): "pass the logits; keep `sigmoid` only for predictions",
    (SOFTMAX, NLL): "use `log_softmax` instead of `softmax`",
    (SIGMOID, CE): "pass the logits, or use `BCEWithLogitsLoss` if the labels are multi-label",
    (SOFTMAX, BCEWL): "pass the logits, or use `cross_entropy` if the classes are exclusive",
    (SIGMOID, NLL): "feed `log_softmax` of the logits, or use `BCEWithLogitsLoss` for binary labels",
}

# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Activation:
    kind: str
    call: cst.Call
    arg: cst.BaseExpression  # the activation's input
    # (node, replacement) turning the softmax into log_softmax, when that is expressible
    rename: tuple[cst.CSTNode, cst.CSTNode] | None


@dataclass(frozen=True)
class Found:
    activation: Activation
    receiver: bool  # the activation call is the receiver of a pass-through method
    via: tuple[str, ...]  # locals the probability flowed through


Level = tuple[list[cst.CSTNode], int]  # the items of one block, and the index of the one we are in


@dataclass
class _Scope:
    node: cst.CSTNode  # FunctionDef, ClassDef, Lambda or Module
    maybe_prob: set[str] = field(default_factory=set)
    maybe_loss: set[str] = field(default_factory=set)


# ----------------------------------------------------------------------------- rule


class SoftmaxIntoCrossEntropy(Rule):
    __doc__ = __doc__
    code = "TL109"
    name = "softmax-into-cross-entropy"
    message = "{loss} expects logits but receives {activation} probabilities"
    fix_applicability = Applicability.UNSAFE
    tokens = (("*oftmax*", "*igmoid*", "*expit*"), ("*cross_entropy*", "*crossentropyloss*", "*nll_loss*", "*nllloss*", "*bcewithlogitsloss*"))

    VALID = [
        # the seed's LDAM loss: arithmetic on logits, no activation
        Valid(
            """
            import torch
            import torch.nn.functional as F

            def forward(self, x, target):
                index = torch.zeros_like(x, dtype=torch.uint8)
                index.scatter_(1, target.data.view(-1, 1), 1)
                x_m = x - self.m_list[None, :]
                output = torch.where(index, x_m, x)
                return F.cross_entropy(self.s * output, target, weight=self.weight)
            """
        ),
        # logits into the loss, softmax only for the prediction
        Valid(
            """
            import torch.nn.functional as F

            def step(model, x, y):
                logits = model(x)
                probs = F.softmax(logits, dim=1)
                loss = F.cross_entropy(logits, y)
                return loss, probs.argmax(1)
            """
        ),
        # log_softmax into NLL, and into cross entropy (idempotent, harmless)
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def step(z, y):
                a = nn.NLLLoss()(F.log_softmax(z, 1), y)
                b = F.cross_entropy(torch.log_softmax(z, dim=-1), y)
                c = F.nll_loss(torch.log(F.softmax(z, dim=1)), y)
                return a + b + c
            """
        ),
        # NLLLoss fed an unknown tensor: never reported
        Valid(
            """
            import torch.nn as nn

            def step(model, x, y):
                criterion = nn.NLLLoss()
                out = model(x)
                return criterion(out, y)
            """
        ),
        # softmax targets (distillation): CE accepts class probabilities since 1.10
        Valid(
            """
            import torch.nn.functional as F

            def distill(student_logits, teacher_logits, T=2.0):
                soft = F.softmax(teacher_logits / T, dim=-1)
                return F.cross_entropy(student_logits / T, soft)
            """
        ),
        # sigmoid target of BCEWithLogits, sigmoid into BCELoss (expects probabilities)
        Valid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def step(logits, teacher):
                a = F.binary_cross_entropy_with_logits(logits, torch.sigmoid(teacher))
                b = nn.BCELoss()(torch.sigmoid(logits), torch.sigmoid(teacher))
                return a + b
            """
        ),
        # softmax over a non-class or unknown dimension
        Valid(
            """
            import torch.nn.functional as F

            def step(self, scores, y):
                attn = F.softmax(scores, dim=2)
                a = F.cross_entropy(attn, y)
                b = F.cross_entropy(F.softmax(scores, dim=self.dim), y)
                return a + b
            """
        ),
        # the local is rebound between the softmax and the loss
        Valid(
            """
            import torch.nn.functional as F

            def step(model, x, y):
                out = F.softmax(model(x), dim=1)
                out = model.head(x)
                return F.cross_entropy(out, y)
            """
        ),
        # bound in a branch, used after it
        Valid(
            """
            import torch.nn.functional as F

            def step(model, x, y, calibrated):
                out = model(x)
                if calibrated:
                    out = F.softmax(out, dim=1)
                return F.cross_entropy(out, y)
            """
        ),
        # rebound inside the loop that uses it (loop-carried)
        Valid(
            """
            import torch.nn.functional as F

            def step(model, x, y):
                out = F.softmax(model(x), dim=1)
                for _ in range(3):
                    loss = F.cross_entropy(out, y)
                    out = model(x)
                return loss
            """
        ),
        # an operation the rule does not follow (clamp, log) sits in between
        Valid(
            """
            import torch.nn.functional as F

            def step(z, y):
                p = F.softmax(z, dim=1).clamp(1e-6, 1.0)
                return F.nll_loss(p.log(), y) + F.cross_entropy(p.log(), y)
            """
        ),
        # `softmax` / `cross_entropy` that are not torch's
        Valid(
            """
            from scipy.special import softmax
            from mylib import cross_entropy

            def step(z, y):
                return cross_entropy(softmax(z, axis=1), y)
            """
        ),
        # a module attribute named `softmax` that is not nn.Softmax, and a method `softmax`
        Valid(
            """
            import torch.nn as nn

            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.softmax = nn.Linear(8, 4)
                    self.criterion = nn.CrossEntropyLoss()

                def forward(self, x, y):
                    return self.criterion(self.softmax(x), y) + self.criterion(self.model.softmax(x), y)
            """
        ),
        # the criterion name is bound to two kinds of losses at module level
        Valid(
            """
            import torch.nn as nn
            import torch.nn.functional as F

            if USE_NLL:
                criterion = nn.NLLLoss()
            else:
                criterion = nn.BCELoss()

            def step(z, y):
                return criterion(F.softmax(z, dim=1), y)
            """
        ),
        # a criterion passed in as a parameter: its kind is unknown
        Valid(
            """
            import torch.nn.functional as F

            def step(criterion, z, y):
                return criterion(F.softmax(z, dim=1), y)
            """
        ),
        # in-place change of the probabilities before the loss
        Valid(
            """
            import torch
            import torch.nn as nn

            def step(z, y):
                p = torch.sigmoid(z)
                p.logit_()
                return nn.BCEWithLogitsLoss()(p, y)
            """
        ),
        # self.criterion assigned two different loss kinds in the class
        Valid(
            """
            import torch.nn as nn
            import torch.nn.functional as F

            class Trainer:
                def __init__(self, multilabel):
                    self.criterion = nn.CrossEntropyLoss()
                    if multilabel:
                        self.criterion = nn.BCELoss()

                def step(self, z, y):
                    return self.criterion(torch.sigmoid(z), y)
            """
        ),
        # nll_loss used on purpose to pick the target's probability (focal weights,
        # attribution scores): negated or unreduced
        Valid(
            """
            import torch.nn as nn
            import torch.nn.functional as F

            def target_scores(logits, target, gamma=2.0, reduction="none"):
                p_t = -F.nll_loss(F.softmax(logits, dim=1), target, reduction="none")
                score = -1 * F.nll_loss(F.softmax(logits), target, reduction="sum")
                neg_p = nn.NLLLoss(reduce=False)(logits.softmax(1), target)
                picked = F.nll_loss(logits.softmax(-1), target, reduction=reduction)
                return (1 + neg_p) ** gamma, p_t, score, picked
            """
        ),
        # consistency / distillation criteria on probabilities (MSE, KL), and indexing
        # or `.log()` between the softmax and a cross entropy
        Valid(
            """
            import torch.nn as nn
            import torch.nn.functional as F

            def consistency(weak, strong, mask):
                mse_criterion = nn.MSELoss()
                ce = nn.CrossEntropyLoss()
                a = mse_criterion(F.softmax(weak, dim=1), F.softmax(strong, dim=1))
                b = ce(F.softmax(weak, 1)[0, 1], mask)
                c = F.cross_entropy(F.softmax(weak, dim=1).log(), mask)
                return a + b + c
            """
        ),
    ]
    INVALID = [
        # seed-style LDAM loss whose logits were softmaxed before cross entropy
        Invalid(
            """
            import torch
            import torch.nn.functional as F

            def forward(self, x, target):
                output = x - self.m_list[None, :]
                logit = F.softmax(output * self.s, dim=1)
                return F.cross_entropy(logit, target, weight=self.weight)
            """,
            fixed="""
            import torch
            import torch.nn.functional as F

            def forward(self, x, target):
                output = x - self.m_list[None, :]
                logit = output * self.s
                return F.cross_entropy(logit, target, weight=self.weight)
            """,
            line=7,
        ),
        # inline, `from torch.nn import functional as F`
        Invalid(
            """
            from torch.nn import functional as F

            def loss_fn(z, y):
                return F.cross_entropy(F.softmax(z, dim=1), y)
            """,
            fixed="""
            from torch.nn import functional as F

            def loss_fn(z, y):
                return F.cross_entropy(z, y)
            """,
            line=4,
        ),
        # a training loop at module level with a module-level criterion, `import torch as T`
        Invalid(
            """
            import torch as T

            criterion = T.nn.CrossEntropyLoss()
            for x, y in loader:
                out = model(x)
                probs = out.softmax(-1)
                loss = criterion(probs.view(-1, 10), y)
                loss.backward()
            """,
            fixed="""
            import torch as T

            criterion = T.nn.CrossEntropyLoss()
            for x, y in loader:
                out = model(x)
                probs = out
                loss = criterion(probs.view(-1, 10), y)
                loss.backward()
            """,
            line=7,
        ),
        # probabilities also used for accuracy: reported without a fix
        Invalid(
            """
            import torch
            import torch.nn as nn

            def train(model, loader, opt):
                criterion = nn.CrossEntropyLoss().to("cuda")
                for x, y in loader:
                    probs = torch.softmax(model(x), dim=1)
                    loss = criterion(probs, y)
                    acc = (probs.argmax(1) == y).float().mean()
                    loss.backward()
            """,
            line=8,
        ),
        # softmax into NLLLoss, inline module and functional; the fix uses log_softmax
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def step(z, y):
                a = nn.NLLLoss()(F.softmax(z, dim=1), y)
                p = z.softmax(1)
                b = F.nll_loss(p, y)
                c = F.nll_loss(nn.Softmax(dim=1)(z), y)
                return a + b + c
            """,
            fixed="""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            def step(z, y):
                a = nn.NLLLoss()(F.log_softmax(z, dim=1), y)
                p = z.log_softmax(1)
                b = F.nll_loss(p, y)
                c = F.nll_loss(nn.LogSoftmax(dim=1)(z), y)
                return a + b + c
            """,
            line=6,
            count=3,
        ),
        # sigmoid into BCEWithLogits through squeeze/float, self.criterion from __init__
        Invalid(
            """
            import torch
            from torch import nn

            class Trainer:
                def __init__(self, model):
                    self.model = model
                    self.criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0))

                def step(self, x, y):
                    out = torch.sigmoid(self.model(x) / 2)
                    return self.criterion(out.squeeze(1).float(), y)
            """,
            fixed="""
            import torch
            from torch import nn

            class Trainer:
                def __init__(self, model):
                    self.model = model
                    self.criterion = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(3.0))

                def step(self, x, y):
                    out = self.model(x) / 2
                    return self.criterion(out.squeeze(1).float(), y)
            """,
            line=11,
        ),
        # `from torch import sigmoid`, receiver position needs parentheses
        Invalid(
            """
            from torch import sigmoid
            from torch.nn.functional import binary_cross_entropy_with_logits as bce

            def loss(a, b, y):
                return bce(sigmoid(a + b).view(-1), y)
            """,
            fixed="""
            from torch import sigmoid
            from torch.nn.functional import binary_cross_entropy_with_logits as bce

            def loss(a, b, y):
                return bce((a + b).view(-1), y)
            """,
            line=5,
        ),
        # nn.Softmax module attribute in a Module, crossed pair sigmoid -> cross entropy
        Invalid(
            """
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 4)
                    self.softmax = nn.Softmax(dim=1)

                def forward(self, x, y):
                    logits = self.fc(x)
                    loss = F.cross_entropy(self.softmax(logits), y)
                    aux = F.cross_entropy(torch.sigmoid(logits), y)
                    return loss + aux
            """,
            fixed="""
            import torch
            import torch.nn as nn
            import torch.nn.functional as F

            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 4)
                    self.softmax = nn.Softmax(dim=1)

                def forward(self, x, y):
                    logits = self.fc(x)
                    loss = F.cross_entropy(logits, y)
                    aux = F.cross_entropy(torch.sigmoid(logits), y)
                    return loss + aux
            """,
            line=13,
            count=2,
        ),
        # a criterion local bound before the loop; a softmax without `dim`
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F

            def fit(model, loader):
                loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
                for epoch in range(10):
                    for x, y in loader:
                        pred = F.softmax(model(x))
                        loss = loss_fn(pred, y)
            """,
            fixed="""
            import torch.nn as nn
            import torch.nn.functional as F

            def fit(model, loader):
                loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
                for epoch in range(10):
                    for x, y in loader:
                        pred = model(x)
                        loss = loss_fn(pred, y)
            """,
            line=9,
        ),
        # validation loss with the sigmoid applied twice; the predictions use their own call
        Invalid(
            """
            import torch
            import torch.nn as nn

            def validate(model, loader):
                for x, mask in loader:
                    with torch.set_grad_enabled(False):
                        outputs = model(x)
                        loss = nn.BCEWithLogitsLoss()(torch.sigmoid(outputs), mask)
                    preds = torch.sigmoid(outputs) > 0.5
            """,
            fixed="""
            import torch
            import torch.nn as nn

            def validate(model, loader):
                for x, mask in loader:
                    with torch.set_grad_enabled(False):
                        outputs = model(x)
                        loss = nn.BCEWithLogitsLoss()(outputs, mask)
                    preds = torch.sigmoid(outputs) > 0.5
            """,
            line=8,
        ),
        # bare-name softmax import without log_softmax: reported, no fix
        Invalid(
            """
            from torch.nn.functional import softmax, nll_loss

            def step(z, y):
                return nll_loss(softmax(z, dim=-1), y)
            """,
            line=4,
        ),
    ]

    # ------------------------------------------------------------------ set-up

    def __init__(self, context) -> None:
        super().__init__(context)
        self._scopes: list[_Scope] = [_Scope(context.module)]
        self._module_bindings: dict[str, list[cst.BaseExpression | None]] | None = None
        # class id -> attribute -> values written to `self.<attribute>` (None: not a plain
        # assignment), collected during the traversal
        self._class_writes: dict[int, dict[str, list[cst.BaseExpression | None]]] = {}
        self._globals: set[str] = set()
        self._load_counts: dict[tuple[int, str], int] = {}
        # loss-call candidates with their ancestors, analysed once the whole module (every
        # `__init__`, every `global`) has been seen
        self._candidates: list[tuple[cst.Call, tuple[cst.CSTNode, ...]]] = []
        self._stack: Sequence[cst.CSTNode] = ()

    @classmethod
    def screen(cls, index) -> bool:
        """torch is imported, some call spells an activation, and some name, attribute or
        call spells one of the losses (or a name imported as one of them)."""
        if not any(
            b == "torch" or b.startswith("torch.") for bound in index.imports.values() for b in bound
        ):
            return False
        activations, losses = set(ACTIVATION_WORDS), set(LOSS_WORDS)
        for alias in index.nodes(ast.alias):
            if alias.asname:
                last = alias.name.rsplit(".", 1)[-1]
                if last in ACTIVATION_WORDS:
                    activations.add(alias.asname)
                elif last in LOSS_WORDS:
                    losses.add(alias.asname)
        called = index.called
        if called.isdisjoint(activations):
            return False
        if called.isdisjoint(losses) and index.attributes.isdisjoint(losses) and index.names.isdisjoint(losses):
            return False
        return _activation_and_loss_in_one_scope(index, activations, losses)

    # ------------------------------------------------------------------ scopes

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._scopes.append(_Scope(node))

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._scopes.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._scopes.append(_Scope(node))

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self._scopes.pop()

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._scopes.append(_Scope(node))

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self._scopes.pop()

    def visit_Global(self, node: cst.Global) -> None:
        self._globals.update(item.name.value for item in node.names)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        self._self_writes(node.target, None)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._self_writes(node.target, node.value)
        if node.value is not None and isinstance(node.target, cst.Name):
            self._candidate_local(node.target.value, node.value)

    def _self_writes(self, target: cst.BaseExpression, value: cst.BaseExpression | None) -> None:
        """Record `self.<attr> = value` for the class whose method (or a function nested
        in it) is being visited."""
        attrs = [_is_self_attr(t) for t in _flatten(target)]
        if not any(attrs):
            return
        if not isinstance(target, cst.Attribute):
            value = None  # tuple unpacking: the value of one element is unknown
        cls = None
        stack = self.context.stack
        for i in range(len(stack) - 1, 1, -1):
            if isinstance(stack[i], cst.FunctionDef) and isinstance(stack[i - 2], cst.ClassDef):
                cls = stack[i - 2]
                break
        if cls is None:
            return
        writes = self._class_writes.setdefault(id(cls), {})
        for attr in attrs:
            if attr:
                writes.setdefault(attr, []).append(value)

    def visit_Assign(self, node: cst.Assign) -> None:
        """Cheap, order-based candidates: locals that may hold a probability or a loss.
        The real analysis runs only at loss calls whose input or callee is such a name."""
        for target in node.targets:
            self._self_writes(target.target, node.value if len(node.targets) == 1 else None)
        if len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            self._candidate_local(node.targets[0].target.value, node.value)

    def _candidate_local(self, name: str, value: cst.BaseExpression) -> None:
        scope = self._scopes[-1]
        if self._maybe_prob(value, scope):
            scope.maybe_prob.add(name)
        if self._maybe_loss(value):
            scope.maybe_loss.add(name)

    def _maybe_prob(self, expr: cst.BaseExpression, scope: _Scope) -> bool:
        for _ in range(MAX_DEPTH * 4):
            if isinstance(expr, cst.Name):
                return expr.value in scope.maybe_prob
            if not isinstance(expr, cst.Call):
                return False
            func = expr.func
            if isinstance(func, cst.Call):
                return True  # nn.Softmax(dim=1)(x)
            if isinstance(func, cst.Name):
                if func.value in ACTIVATION_WORDS or self.context.qualname(func) in ACTIVATION_FUNCTIONS:
                    return True
                if self.context.qualname(func) in PASSTHROUGH_FUNCTIONS and expr.args:
                    expr = expr.args[0].value
                    continue
                return False
            if isinstance(func, cst.Attribute):
                attr = func.attr.value
                if attr in ACTIVATION_WORDS or self.context.qualname(func) in ACTIVATION_FUNCTIONS:
                    return True
                if _is_self_attr(func):
                    return True  # self.softmax(x) with nn.Softmax bound in __init__
                if self.context.qualname(func) in PASSTHROUGH_FUNCTIONS and expr.args:
                    expr = expr.args[0].value
                    continue
                if attr in PASSTHROUGH_METHODS:
                    expr = func.value
                    continue
            return False
        return False

    def _maybe_loss(self, expr: cst.BaseExpression) -> bool:
        return self._constructed_kind(expr, LOSS_MODULES, FUNCTIONAL_LOSSES) is not None

    # ------------------------------------------------------------------ loss calls

    def visit_Call(self, node: cst.Call) -> None:
        inp = _argument(node, 0, "input")
        if inp is None:
            return
        scope = self._scopes[-1]
        if not self._maybe_prob(inp, scope):
            return
        func = node.func
        if isinstance(func, cst.Name):
            if func.value in self.context.imports.names:
                if self.context.qualname(func) not in FUNCTIONAL_LOSSES:
                    return
            elif not any(func.value in s.maybe_loss for s in self._scopes) and func.value not in self._module_level():
                return
        elif not (isinstance(func, cst.Call) or _is_self_attr(func) or self.context.qualname(func) in FUNCTIONAL_LOSSES):
            return
        self._candidates.append((node, tuple(self.context.stack)))

    def leave_Module(self, node: cst.Module) -> None:
        for call, stack in self._candidates:
            self._stack = stack
            self._check(call)

    def _check(self, node: cst.Call) -> None:
        inp = _argument(node, 0, "input")
        kind, label, configs = self._loss_kind(node)
        if kind is None:
            return
        if kind == NLL and self._gathers_probabilities(node, configs):
            return
        found = self._prob(inp, self._levels(node), (), False, 0)
        if found is None:
            return
        self._report(node, kind, label, found)

    def _loss_kind(self, call: cst.Call) -> tuple[str | None, str, list[cst.Call]]:
        """The kind of loss a call computes, how the message names it, and the calls that
        configure it (the call itself for a functional loss, else the module constructors)."""
        func = call.func
        qual = self.context.qualname(func)
        if qual in FUNCTIONAL_LOSSES:
            return FUNCTIONAL_LOSSES[qual], f"`{self.context.code(func)}`", [call]
        if isinstance(func, cst.Call):
            kind = self._constructed_kind(func, LOSS_MODULES, {})
            if kind is not None:
                return kind, f"`{_class_name(func)}`", [func]
            return None, "", []
        if isinstance(func, cst.Name):
            if func.value in self.context.imports.names:
                return None, "", []
            value = self._name_value(func, self._levels(call))
            kind = self._constructed_kind(value, LOSS_MODULES, FUNCTIONAL_LOSSES) if value else None
            configs = [call] if isinstance(value, (cst.Name, cst.Attribute)) else _constructors(value)
            return kind, f"`{func.value}` ({_kind_label(kind)})", configs
        attr = _is_self_attr(func)
        if attr:
            values = self._self_attribute_values(attr)
            kinds = {self._constructed_kind(v, LOSS_MODULES, {}) for v in values}
            if len(kinds) == 1 and None not in kinds:
                kind = kinds.pop()
                configs = [c for v in values for c in _constructors(v)]
                return kind, f"`self.{attr}` ({_kind_label(kind)})", configs
        return None, "", []

    def _gathers_probabilities(self, call: cst.Call, configs: list[cst.Call]) -> bool:
        """`nll_loss(p, t)` used on purpose as `-p[t]`: negated (`-F.nll_loss(...)`,
        `-1 * F.nll_loss(...)`) or possibly unreduced (`reduction="none"`, `reduce=False`,
        or either given by a variable), as in focal losses and attribution code that pick
        the target's probability."""
        for config in configs:
            for arg in config.args:
                if arg.keyword is None:
                    continue
                value = arg.value
                if arg.keyword.value == "reduction":
                    if not isinstance(value, cst.SimpleString) or value.evaluated_value == "none":
                        return True
                if arg.keyword.value == "reduce":
                    if not (isinstance(value, cst.Name) and value.value == "True"):
                        return True
        parent = self._stack[-1] if self._stack else None
        if isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Minus):
            return True
        if isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Multiply):
            other = parent.right if parent.left is call else parent.left
            if isinstance(other, cst.UnaryOperation) and isinstance(other.operator, cst.Minus):
                return True
        return False

    def _constructed_kind(
        self, expr: cst.BaseExpression | None, modules: dict[str, str], functions: dict[str, str]
    ) -> str | None:
        """The kind of `nn.CrossEntropyLoss(...)` (also `.to(dev)` / `.cuda()` of it), or
        of a bare reference to a functional loss (`loss_fn = F.cross_entropy`)."""
        for _ in range(4):
            if isinstance(expr, cst.Call):
                func = expr.func
                qual = self.context.qualname(func)
                if qual in modules:
                    return modules[qual]
                if isinstance(func, cst.Attribute) and func.attr.value in MODULE_MOVES and qual is None:
                    expr = func.value
                    continue
                return None
            if isinstance(expr, (cst.Name, cst.Attribute)):
                return functions.get(self.context.qualname(expr))
            return None
        return None

    # ------------------------------------------------------------------ probabilities

    def _prob(
        self,
        expr: cst.BaseExpression,
        levels: list[Level] | None,
        via: tuple[str, ...],
        receiver: bool,
        depth: int,
    ) -> Found | None:
        if depth > MAX_DEPTH * 4:
            return None
        if isinstance(expr, cst.Name):
            if levels is None or len(via) >= MAX_DEPTH:
                return None
            origin = _local_origin(expr.value, levels)
            if origin is None:
                return None
            value, new_levels = origin
            return self._prob(value, new_levels, (*via, expr.value), False, depth + 1)
        if not isinstance(expr, cst.Call):
            return None
        activation = self._activation(expr)
        if activation is not None:
            return Found(activation, receiver, via)
        func = expr.func
        if self.context.qualname(func) in PASSTHROUGH_FUNCTIONS:
            inner = _argument(expr, 0, "input")
            return None if inner is None else self._prob(inner, levels, via, False, depth + 1)
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value in PASSTHROUGH_METHODS
            and self.context.qualname(func) is None
        ):
            return self._prob(func.value, levels, via, True, depth + 1)
        return None

    def _activation(self, call: cst.Call) -> Activation | None:
        func = call.func
        qual = self.context.qualname(func)
        # F.softmax(x, dim=1), torch.sigmoid(x), `from torch import sigmoid`
        if qual in ACTIVATION_FUNCTIONS:
            kind = ACTIVATION_FUNCTIONS[qual]
            arg = _argument(call, 0, "input")
            if arg is None or (kind == SOFTMAX and not _class_dim(_argument(call, 1, "dim"))):
                return None
            return Activation(kind, call, arg, self._rename(func, qual) if kind == SOFTMAX else None)
        # nn.Softmax(dim=1)(x), nn.Sigmoid()(x)
        if isinstance(func, cst.Call):
            kind = self._activation_module(func)
            arg = _argument(call, 0, "input")
            if kind is None or arg is None:
                return None
            rename = None
            if kind == SOFTMAX:
                rename = self._rename(func.func, self.context.qualname(func.func))
            return Activation(kind, call, arg, rename)
        if not isinstance(func, cst.Attribute) or qual is not None:
            return None
        attr = func.attr.value
        # self.softmax(x), with `self.softmax = nn.Softmax(dim=1)` the only binding
        self_attr = _is_self_attr(func)
        if self_attr:
            values = self._self_attribute_values(self_attr)
            kinds = {self._activation_module(v) if isinstance(v, cst.Call) else None for v in values}
            arg = _argument(call, 0, "input")
            if len(kinds) == 1 and None not in kinds and arg is not None:
                return Activation(kinds.pop(), call, arg, None)
            return None
        # tensor methods: x.softmax(1), x.softmax(dim=-1), x.sigmoid()
        if attr == "softmax":
            dim = _argument(call, 0, "dim")
            others = [a for a in call.args if a.value is not dim]
            if dim is None or not _class_dim(dim) or any(
                a.keyword is None or a.keyword.value != "dtype" for a in others
            ):
                return None
            return Activation(SOFTMAX, call, func.value, (func, func.with_changes(attr=cst.Name("log_softmax"))))
        if attr == "sigmoid" and not call.args:
            return Activation(SIGMOID, call, func.value, None)
        return None

    def _activation_module(self, ctor: cst.Call) -> str | None:
        """`nn.Softmax(dim=1)` -> softmax (class dim only), `nn.Sigmoid()` -> sigmoid."""
        kind = ACTIVATION_MODULES.get(self.context.qualname(ctor.func))
        if kind == SOFTMAX and not _class_dim(_argument(ctor, 0, "dim")):
            return None
        return kind

    def _rename(self, func: cst.BaseExpression, qual: str | None) -> tuple[cst.CSTNode, cst.CSTNode] | None:
        """`F.softmax` -> `F.log_softmax`, `nn.Softmax` -> `nn.LogSoftmax`; a bare name only
        when its log counterpart is imported from the same module."""
        if isinstance(func, cst.Attribute):
            new = LOG_NAMES.get(func.attr.value)
            return (func, func.with_changes(attr=cst.Name(new))) if new else None
        if isinstance(func, cst.Name) and qual is not None:
            module, _, last = qual.rpartition(".")
            new = LOG_NAMES.get(last)
            if new and self.context.imports.names.get(new) == f"{module}.{new}":
                return func, cst.Name(new)
        return None

    # ------------------------------------------------------------------ names and attributes

    def _levels(self, node: cst.CSTNode) -> list[Level] | None:
        """The blocks from the enclosing function (or module) down to node, each with the
        index of the item that contains node; None inside a lambda, comprehension or class
        body, where local names follow other rules."""
        chain = [*self._stack, node]
        start = None
        for i in range(len(chain) - 1, -1, -1):
            n = chain[i]
            if isinstance(n, (cst.Lambda, cst.ClassDef, *_COMPREHENSIONS)):
                return None
            if isinstance(n, (cst.FunctionDef, cst.Module)):
                start = i
                break
        if start is None:
            return None
        levels: list[Level] = []
        for i in range(start, len(chain) - 1):
            n = chain[i]
            if isinstance(n, (cst.Module, cst.IndentedBlock)):
                items = _flat_items(n.body)
                child = chain[i + 1]
                if isinstance(child, cst.SimpleStatementLine):
                    if i + 2 >= len(chain):
                        return None
                    child = chain[i + 2]
                idx = _index(items, child)
                if idx is None:
                    return None
                levels.append((items, idx))
            elif isinstance(n, cst.SimpleStatementSuite):
                items = list(n.body)
                idx = _index(items, chain[i + 1])
                if idx is None:
                    return None
                levels.append((items, idx))
        return levels or None

    def _name_value(self, name: cst.Name, levels: list[Level] | None) -> cst.BaseExpression | None:
        """The value a loss name holds at a call: its straight-line local assignment, or,
        when no enclosing function binds it at all, its module-level assignments (all of
        the same kind)."""
        if levels is not None:
            origin = _local_origin(name.value, levels)
            if origin is not None:
                return origin[0]
        functions = [n for n in self._stack if isinstance(n, (cst.FunctionDef, cst.Lambda))]
        if not functions:
            return None  # module level: only a straight-line binding counts
        for func in functions:
            if isinstance(func, cst.Lambda):
                if name.value in {p.name.value for p in func.params.params}:
                    return None
                continue
            if name.value in parameter_names(func) or binds(func.body, name.value):
                return None
        values = self._module_level().get(name.value)
        if not values or name.value in self._globals:
            return None
        kinds = {self._constructed_kind(v, LOSS_MODULES, FUNCTIONAL_LOSSES) for v in values}
        return values[0] if len(kinds) == 1 and None not in kinds else None

    def _module_level(self) -> dict[str, list[cst.BaseExpression | None]]:
        """Every module-level binding, by name: the value of a plain `name = value`, None
        for any other kind of binding (for, with, import, augmented assignment)."""
        if self._module_bindings is None:
            collector = _ModuleBindings()
            walk(self.context.module, collector)
            self._module_bindings = collector.out
        return self._module_bindings

    def _self_attribute_values(self, attr: str) -> list[cst.BaseExpression | None]:
        """Values assigned to `self.<attr>` in the class of the method being visited; empty
        when the call is not in a method or `self` is not its first parameter."""
        cls = _method_class(self._stack)
        if cls is None:
            return []
        return self._class_writes.get(id(cls), {}).get(attr, [])

    # ------------------------------------------------------------------ report

    def _report(self, call: cst.Call, kind: str, label: str, found: Found) -> None:
        act = found.activation
        pair = (act.kind, kind)
        message = MESSAGES[pair].format(loss=label)
        if found.via:
            message += f" (`{found.via[0]}` holds the {act.kind} output)"
        fix = None
        if self._used_once(found):
            if pair in ((SOFTMAX, CE), (SIGMOID, BCEWL)):
                replacement = _as_operand(act.arg) if found.receiver else act.arg
                if "\n" in self.context.code(act.arg) and not replacement.lpar:
                    replacement = _parenthesized(replacement)
                fix = self.make_fix(f"Remove the `{act.kind}` and pass the logits", (act.call, replacement))
            elif pair == (SOFTMAX, NLL) and act.rename is not None:
                fix = self.make_fix("Use `log_softmax` instead of `softmax`", act.rename)
        self.report(call, message, fix=fix, help=HELPS[pair], data={"activation": act.kind, "loss": kind})

    def _used_once(self, found: Found) -> bool:
        """Every local the probability flowed through is read exactly once in its scope."""
        if not found.via:
            return True
        scope = next(
            (n for n in reversed(self._stack) if isinstance(n, (cst.FunctionDef, cst.Module))),
            self.context.module,
        )
        for name in found.via:
            key = (id(scope), name)
            if key not in self._load_counts:
                counter = _LoadCounter(name)
                walk(scope, counter)
                self._load_counts[key] = counter.loads
            if self._load_counts[key] != 1:
                return False
        return True


# ----------------------------------------------------------------------------- helpers

_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


def _argument(call: cst.Call, position: int, keyword: str) -> cst.BaseExpression | None:
    """The argument at `position` (positional) or passed as `keyword=`; None when absent or
    hidden behind `*args` / `**kwargs`."""
    positional = 0
    for arg in call.args:
        if arg.star:
            return None
        if arg.keyword is None:
            if positional == position:
                return arg.value
            positional += 1
        elif arg.keyword.value == keyword:
            return arg.value
    return None


def _class_dim(dim: cst.BaseExpression | None) -> bool:
    """dim 1, dim -1, or no dim at all (the implicit dim is 1 for 2-D and 4-D inputs)."""
    if dim is None or (isinstance(dim, cst.Name) and dim.value == "None"):
        return True
    if isinstance(dim, cst.Integer):
        return dim.value == "1"
    if (
        isinstance(dim, cst.UnaryOperation)
        and isinstance(dim.operator, cst.Minus)
        and isinstance(dim.expression, cst.Integer)
    ):
        return dim.expression.value == "1"
    return False


def _is_self_attr(func: cst.BaseExpression) -> str | None:
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
        return func.attr.value
    return None


def _method_class(stack: Sequence[cst.CSTNode]) -> cst.ClassDef | None:
    """The class whose method (with `self` as first parameter) is the innermost function."""
    for i in range(len(stack) - 1, -1, -1):
        if isinstance(stack[i], cst.FunctionDef):
            func = stack[i]
            params = [*func.params.posonly_params, *func.params.params]
            if not params or params[0].name.value != "self":
                return None
            if i >= 2 and isinstance(stack[i - 2], cst.ClassDef):
                return stack[i - 2]
            return None
        if isinstance(stack[i], (cst.Lambda, cst.ClassDef)):
            return None
    return None


def _flatten(target: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [t for el in target.elements for t in _flatten(el.value)]
    if isinstance(target, cst.StarredElement):
        return _flatten(target.value)
    return [target]


def _constructors(value: cst.BaseExpression | None) -> list[cst.Call]:
    """`nn.NLLLoss(...)` out of `nn.NLLLoss(...).to(device)`."""
    out = []
    while isinstance(value, cst.Call):
        out.append(value)
        value = value.func.value if isinstance(value.func, cst.Attribute) else None
    return out


def _class_name(ctor: cst.Call) -> str:
    func = ctor.func
    while isinstance(func, cst.Call):
        func = func.func
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Call):
        return _class_name(func.value)
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return "loss"


def _kind_label(kind: str | None) -> str:
    return {CE: "cross entropy", NLL: "NLL loss", BCEWL: "BCE with logits"}.get(kind or "", "loss")


def _flat_items(body: Sequence[cst.CSTNode]) -> list[cst.CSTNode]:
    """A block's statements with simple statement lines split into their small statements."""
    items: list[cst.CSTNode] = []
    for stmt in body:
        if isinstance(stmt, cst.SimpleStatementLine):
            items.extend(stmt.body)
        else:
            items.append(stmt)
    return items


def _index(items: list[cst.CSTNode], node: cst.CSTNode) -> int | None:
    for i, item in enumerate(items):
        if item is node:
            return i
    return None


def _local_origin(name: str, levels: list[Level]) -> tuple[cst.BaseExpression, list[Level]] | None:
    """The value of the single plain assignment `name = value` that reaches the item at the
    innermost level, found by walking back through the enclosing blocks; None when the name
    is bound otherwise, bound inside a compound statement on the way (a branch, a loop that
    contains the use), changed in place in between, or not bound in the function at all."""
    for depth in range(len(levels) - 1, -1, -1):
        items, idx = levels[depth]
        here = items[idx]
        if depth != len(levels) - 1 or not isinstance(here, cst.BaseSmallStatement):
            # the compound statement that contains the use: any binding or in-place
            # change of the name inside it (another branch, a later loop iteration) may
            # reach the use
            if _disturbs(here, name):
                return None
        for j in range(idx - 1, -1, -1):
            item = items[j]
            state = _disturbs(item, name)
            if state is None:
                continue
            if state == "bind":
                if (
                    isinstance(item, cst.Assign)
                    and len(item.targets) == 1
                    and isinstance(item.targets[0].target, cst.Name)
                    and item.targets[0].target.value == name
                ) or (
                    isinstance(item, cst.AnnAssign)
                    and item.value is not None
                    and isinstance(item.target, cst.Name)
                    and item.target.value == name
                ):
                    return item.value, [*levels[:depth], (items, j)]
            return None
    return None


def _disturbs(node: cst.CSTNode, name: str) -> str | None:
    """"bind" when node (re)binds `name`, "mutate" when it changes it in place, else None."""
    if binds(node, name):
        return "bind"
    finder = _InPlace(name)
    walk(node, finder)
    return "mutate" if finder.found else None


class _InPlace(Visitor):
    """`name.op_(...)`, `name[i] = v`, `name.attr = v`, `del name`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.found = False

    def _is(self, node: cst.CSTNode) -> bool:
        return isinstance(node, cst.Name) and node.value == self.name

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if (
            isinstance(func, cst.Attribute)
            and self._is(func.value)
            and func.attr.value.endswith("_")
            and not func.attr.value.startswith("_")
        ):
            self.found = True

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        t = node.target
        if isinstance(t, (cst.Subscript, cst.Attribute)) and self._is(t.value):
            self.found = True

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        t = node.target
        if isinstance(t, (cst.Subscript, cst.Attribute)) and self._is(t.value):
            self.found = True

    def visit_Del(self, node: cst.Del) -> None:
        self.found = True  # rare; stay quiet


class _ModuleBindings(BindingTargets):
    """Bindings made by module-level code (function and class bodies are skipped; a
    `global` declaration inside them is caught by the rule's own traversal)."""

    def __init__(self) -> None:
        self.out: dict[str, list[cst.BaseExpression | None]] = {}
        self._value: cst.BaseExpression | None = None

    def bind(self, name: str) -> None:
        self.out.setdefault(name, []).append(self._value)

    def visit_Assign(self, node: cst.Assign) -> None:
        plain = len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name)
        self._value = node.value if plain else None

    def leave_Assign(self, node: cst.Assign) -> None:
        self._value = None

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._value = None
        super().visit_AnnAssign(node)

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if node.asname is None:
            name = node.name
            while isinstance(name, cst.Attribute):
                name = name.value
            if isinstance(name, cst.Name):
                self.out.setdefault(name.value, []).append(None)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self._value = None
        self.bind(node.name.value)
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self._value = None
        self.bind(node.name.value)
        return False

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_CompFor(self, node: cst.CompFor) -> None:
        pass  # comprehension targets are local to the comprehension


class _LoadCounter(Visitor):
    """Reads of a name (every occurrence that is not a binding target or an attribute
    name); nested functions included, which only makes the count larger."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loads = 0

    def visit_Name(self, node: cst.Name) -> None:
        if node.value == self.name:
            self.loads += 1

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        walk(node.value, self)
        return False

    def _unload(self, target: cst.CSTNode) -> None:
        if isinstance(target, cst.Name) and target.value == self.name:
            self.loads -= 1
        elif isinstance(target, (cst.Tuple, cst.List)):
            for el in target.elements:
                self._unload(el.value)
        elif isinstance(target, cst.StarredElement):
            self._unload(target.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._unload(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._unload(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._unload(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._unload(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._unload(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._unload(node.target)


def _as_operand(expr: cst.BaseExpression) -> cst.BaseExpression:
    """expr, parenthesised unless it can be the receiver of `.method()` as it is."""
    if expr.lpar or isinstance(
        expr,
        (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.SimpleString, cst.List,
         cst.Tuple, cst.Dict, cst.Set, cst.ListComp, cst.SetComp, cst.DictComp),
    ):
        return expr
    return _parenthesized(expr)


def _parenthesized(expr: cst.BaseExpression) -> cst.BaseExpression:
    return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def _activation_and_loss_in_one_scope(index, activations: set[str], losses: set[str]) -> bool:
    """Screen: one function (nested ones included) or the module-level code (functions
    excluded) mentions both an activation and a loss, by name or through a name or
    attribute that the file binds anywhere to a value mentioning one."""
    activations, losses = set(activations), set(losses)
    stores = [(n.targets, n.value) for n in index.nodes(ast.Assign)]
    stores += [([n.target], n.value) for n in index.nodes(ast.AnnAssign) if n.value is not None]
    stores += [([n.target], n.value) for n in index.nodes(ast.NamedExpr)]
    stored = [
        ({_spelling(t) for target in targets for t in sc.flatten_targets(target)} - {None},
         _words(value))
        for targets, value in stores
    ]
    for _ in range(MAX_DEPTH):  # `act = nn.Softmax(dim=1)`, then `self.act = act`...
        grown = False
        for names, mentioned in stored:
            for words in (activations, losses):
                if names - words and not mentioned.isdisjoint(words):
                    words |= names
                    grown = True
        if not grown:
            break
    scopes = [[f] for f in index.functions()] + [_outside_functions(index.tree.body)]
    for scope in scopes:
        mentioned = set().union(*map(_words, scope))
        if not mentioned.isdisjoint(activations) and not mentioned.isdisjoint(losses):
            return True
    return False


def _spelling(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _words(node: ast.AST) -> set[str]:
    """Every name and attribute name in node."""
    return {w for n in sc.walk(node) if (w := _spelling(n)) is not None}


def _outside_functions(body: list[ast.stmt]) -> list[ast.AST]:
    """The statements (and class headers) of body, without the functions, at any depth of
    class nesting."""
    out: list[ast.AST] = []
    for stmt in body:
        if isinstance(stmt, sc.FUNCTIONS):
            continue
        if isinstance(stmt, ast.ClassDef):
            out += [*stmt.bases, *stmt.keywords, *stmt.decorator_list]
            out += _outside_functions(stmt.body)
        else:
            out.append(stmt)
    return out
