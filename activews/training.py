"""The train-to-criterion loop and its compute accounting.

Each round trains until the running training accuracy (over the epoch's minibatches, as in the
paper's code) reaches ``target_accuracy``, or the accuracy stops improving for ``patience`` epochs
(the plateau rule, for models that cannot fit the data, e.g. logistic regression), or ``max_epochs``
is reached. Data are tensors in memory, batched by index: no DataLoader per-sample overhead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from torch import nn

from activews.data.augment import random_crop_flip
from activews.validation import Settings

log = logging.getLogger(__name__)

__all__ = [
    "TrainConfig",
    "TrainStats",
    "StopReason",
    "Step",
    "train_to_criterion",
    "make_optimizer",
    "evaluate",
    "predict_proba",
    "dropout_layers",
    "global_rng_from",
    "autocast",
    "compile_problem",
    "uses_channels_last",
]

DROPOUT_TYPES: tuple[type[nn.Module], ...] = (nn.modules.dropout._DropoutNd,)
"""torch's dropout base class: ``nn.Dropout``, ``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout``
and libraries' dropouts built on it."""

_STOCHASTIC_NAMES = ("Dropout", "DropPath", "DropBlock")
"""Class-name parts of modules that draw random masks in their forward pass (besides torch's dropouts)."""


def dropout_layers(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` that draw random masks from torch's global RNG in their forward pass.

    Covered: every subclass of torch's ``_DropoutNd`` (``nn.Dropout``, ``Dropout1d/2d/3d``,
    ``AlphaDropout``, ``FeatureAlphaDropout``, and libraries' dropouts built on it, such as baal's
    ``Dropout`` and ``ConsistentDropout``), and every module whose class name contains ``Dropout``,
    ``DropPath`` or ``DropBlock`` (MC-dropout wrappers, stochastic depth). A module whose ``p``,
    ``drop_prob`` or ``drop_rate`` is 0 drops nothing and is left out. A model that draws randomness in
    ``forward`` otherwise (``F.dropout`` called in its own ``forward``) is not seen: give it a module of
    the kinds above, or train it through ``train_fn`` (whose call is always seeded).
    """
    found = []
    for module in model.modules():
        if not (
            isinstance(module, DROPOUT_TYPES)
            or any(part in type(module).__name__ for part in _STOCHASTIC_NAMES)
        ):
            continue
        rate = next((getattr(module, a) for a in ("p", "drop_prob", "drop_rate") if hasattr(module, a)), None)
        if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate <= 0:
            continue
        found.append(module)
    return found


@contextlib.contextmanager
def global_rng_from(generator: torch.Generator, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run a block whose ops draw from torch's global RNG (dropout masks) from a seed drawn from ``generator``.

    Dropout layers take no generator argument; they draw from the global RNG of the device they run on.
    Inside this block that RNG is seeded from one draw of ``generator``, and its previous state is put back
    afterwards, so the masks are reproducible from the caller's seed and the user's own random state is
    left as it was. Seeds the CPU RNG and, for a CUDA device, that device's RNG; on other accelerators
    (MPS) the masks are not seeded.
    """
    device = torch.device(device)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    cuda = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(cuda[0]):
                torch.cuda.manual_seed(seed)
        yield


_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``precision`` on ``device`` (``bf16``, ``fp16``); a no-op for ``fp32``.

    activews runs every forward pass of a round in it: training, evaluation and pool scoring. Outputs
    that leave activews (probabilities, features, losses) are turned back into float32.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_AMP_DTYPES[precision])


def compile_problem(device: torch.device | str) -> str | None:
    """Why ``torch.compile`` cannot work for ``device`` on this machine (one line naming the fix), or None.

    Checks what is needed before the first compilation: a Python that TorchDynamo supports, Triton for
    CUDA, and a C++ compiler for CPU. A model that still fails to compile falls back to eager execution
    with a warning (see :func:`train_to_criterion`).
    """
    device = torch.device(device)
    try:
        import torch._dynamo as dynamo

        supported = dynamo.is_dynamo_supported()
    except Exception:  # pragma: no cover - a torch without dynamo
        supported = False
    if not supported:
        return "--compile: torch.compile does not support this Python or platform; drop --compile"
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "--compile on CUDA needs Triton (pip install triton); install it or drop --compile"
    elif device.type == "cpu":
        import shutil

        from torch._inductor import config as inductor_config

        names = inductor_config.cpp.cxx
        names = tuple(names) if isinstance(names, (list, tuple)) else (names,)
        candidates = [os.environ.get("CXX")] + [n for n in names if n] + ["g++", "clang++", "c++"]
        if not any(c and shutil.which(c) for c in candidates):
            return (
                "--compile on CPU needs a C++ compiler (none found: install g++, or set CXX to one); "
                "install one or drop --compile"
            )
    return None


def uses_channels_last(model: nn.Module, input_shape: tuple[int, ...]) -> bool:
    """Whether channels-last suits ``model``: image input ``(C, H, W)`` and at least one ``Conv2d``."""
    return len(input_shape) == 3 and any(isinstance(m, nn.Conv2d) for m in model.modules())


_COMPILE_FAILED: set[type] = set()


class _Forward:
    """The model's forward pass as training calls it: compiled once per model class where asked.

    A model class whose compilation fails is trained eagerly from then on, with one warning.
    """

    def __init__(self, model: nn.Module, compile: bool) -> None:
        self.model = model
        self.compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        if compile and type(model) not in _COMPILE_FAILED:
            self.compiled = torch.compile(model)

    def __call__(self, xb: torch.Tensor) -> torch.Tensor:
        if self.compiled is None:
            return self.model(xb)
        try:
            return self.compiled(xb)
        except Exception as exc:  # the compiler's failure, before anything ran: train eagerly
            _COMPILE_FAILED.add(type(self.model))
            self.compiled = None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            log.warning(
                "torch.compile failed for %s (%s: %s); training it without compilation",
                type(self.model).__name__,
                type(exc).__name__,
                first[:200],
            )
            return self.model(xb)


class TrainConfig(Settings):
    """How each round is trained (defaults follow Ash & Adams' released code).

    Each field's ``description`` is its one description: ``BenchConfig`` inherits these fields and the
    ``activews bench`` flags print it as their help.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    optimizer: Literal["adam", "sgd"] = Field("adam", description="optimizer of every round")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="SGD momentum (the paper uses 0)")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")
    batch_size: int = Field(128, ge=1, description="minibatch size")
    target_accuracy: float = Field(0.99, gt=0, le=1, description="running training accuracy to stop at")
    patience: int = Field(
        25, ge=1, description="plateau rule: stop after this many epochs without improvement"
    )
    min_delta: float = Field(
        1e-3, ge=0, description="plateau rule: running-accuracy gain that resets patience"
    )
    max_epochs: int = Field(500, ge=1, description="epoch cap per round")
    keep_optimizer_state: bool = Field(
        False, description="carry optimizer state across rounds (default: a new optimizer every round)"
    )
    augment: bool = Field(False, description="random crop (pad 4) + horizontal flip of image minibatches")
    eval_batch_size: int = Field(4096, ge=1, description="examples per forward pass when evaluating")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32",
        description="autocast arithmetic of forward passes: fp32, bf16, or fp16 with a gradient scaler "
        "(CUDA only); reduced precision changes the numbers, so fp32 keeps runs comparable",
    )
    channels_last: bool = Field(False, description="train image models in channels-last memory format")
    compile: bool = Field(
        False, description="train through torch.compile (falls back to eager with a warning)"
    )


StopReason = Literal["target", "plateau", "max_epochs", "epochs", "empty", "train_fn"]
"""How a round's training ended: the target accuracy, the plateau rule, the epoch cap, a fixed number of
epochs, no data, or a training function of one's own (``train_fn``) that did not say."""


@dataclass
class TrainStats:
    """Compute spent in one round of training and how it ended."""

    steps: int
    epochs: int
    seconds: float
    train_accuracy: float | None
    train_loss: float | None
    stop_reason: StopReason

    @property
    def reached_target(self) -> bool:
        return self.stop_reason == "target"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"reached_target": self.reached_target}


@dataclass(frozen=True)
class Step:
    """What an after-step hook sees (see :meth:`activews.strategies.InitStrategy.after_step`).

    Attributes:
        index: optimizer steps taken in this round so far (1 after the first step).
        epoch: the epoch the step belongs to (0-based).
        x, y: the step's minibatch (after augmentation).
        optimizer: the round's optimizer (hooks that re-initialize weights reset its state for them).
    """

    index: int
    epoch: int
    x: torch.Tensor
    y: torch.Tensor
    optimizer: torch.optim.Optimizer


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """A new optimizer over ``model``'s parameters, as configured."""
    if config.optimizer == "adam":
        try:
            # The fused kernel is ~25% faster per step for small models on CPU (see docs/performance.md).
            return torch.optim.Adam(
                model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
            )
        except (RuntimeError, TypeError):  # devices or dtypes without a fused kernel
            return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def train_to_criterion(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    epochs: int | None = None,
    probe: Callable[[nn.Module, torch.Tensor], None] | None = None,
    loss_term: Callable[[nn.Module], torch.Tensor | None] | None = None,
    after_step: Callable[[nn.Module, Step], None] | None = None,
) -> tuple[TrainStats, torch.optim.Optimizer]:
    """Train ``model`` on ``(x, y)`` until the stopping rule fires.

    Args:
        model: the model to train (modified in place).
        x, y: training tensors, already on the model's device.
        config: optimizer and stopping rule.
        generator: CPU generator for the minibatch order (and, for a model with dropout, the seed of
            its masks: see :func:`global_rng_from`).
        optimizer: reuse this optimizer (e.g. to keep its state); a new one is made if None.
        on_epoch: called with ``(epoch, running_accuracy)`` after every epoch.
        epochs: train exactly this many epochs, ignoring the stopping rule (``stop_reason="epochs"``;
            the early-damage protocol trains phase 1 this way). ``0`` trains nothing.
        probe: called as ``probe(model, batch_positions)`` before each optimizer step of the first
            epoch (diagnostics such as :class:`activews.diagnostics.GradNormProbe`); it must not change
            the model or use the generator. Its time is left out of ``TrainStats.seconds``.
        loss_term: called as ``loss_term(model)`` at every step; a returned tensor is added to the
            minibatch's cross-entropy before the backward pass (e.g. ``l2_init``'s pull toward the
            initial weights). The reported ``train_loss`` stays the cross-entropy alone, so it compares
            across strategies.
        after_step: called as ``after_step(model, step)`` after every optimizer step (e.g. ``redo`` and
            ``continual_backprop`` recycling units). Its time counts as training time: it is part of
            the method's compute.

    Returns:
        The round's :class:`TrainStats` and the optimizer used.
    """
    opt = optimizer if optimizer is not None else make_optimizer(model, config)
    n = int(y.numel())
    if n == 0:
        return TrainStats(0, 0, 0.0, 0.0, 0.0, "empty"), opt
    if epochs == 0:  # no epoch, so no running accuracy or loss to report
        return TrainStats(0, 0, 0.0, None, None, "epochs"), opt
    augment = None
    if config.augment:
        augment = random_crop_flip
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    forward = _Forward(model, config.compile)
    amp = autocast(x.device, config.precision)
    # fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none.
    scaler = torch.amp.GradScaler(x.device.type) if config.precision == "fp16" else None
    model.train()
    start = time.perf_counter()
    steps = 0
    best, since_best = -1.0, 0
    acc = loss_mean = 0.0
    reason: Literal["target", "plateau", "max_epochs", "epochs", "empty"] = "max_epochs"
    max_epochs = config.max_epochs if epochs is None else epochs
    bs = config.batch_size
    # Per-step bookkeeping writes into views of preallocated buffers, made once per call, and is
    # reduced once per epoch: the running accuracy costs two small ops per step (docs/performance.md).
    starts = range(0, n, bs)
    preds = torch.empty(n, dtype=torch.long, device=x.device)
    batch_losses = torch.empty(len(starts), device=x.device)
    batch_sizes = torch.tensor([min(bs, n - i) for i in starts], dtype=batch_losses.dtype, device=x.device)
    pred_views = [preds[i : i + bs] for i in starts]
    loss_views = list(batch_losses.unbind())
    done = 0
    probe_seconds = 0.0  # diagnostics are not training compute: left out of the round's seconds
    # Dropout masks come from torch's global RNG, which no generator reaches: seed it from the generator
    # for the length of the loop. Only for models with dropout, so every other model's minibatch order
    # (and every recorded number) stays what it was.
    rng = global_rng_from(generator, x.device) if dropout_layers(model) else contextlib.nullcontext()
    with rng:
        while done < max_epochs:
            perm = torch.randperm(n, generator=generator).to(x.device)
            for k, i in enumerate(starts):
                idx = perm[i : i + bs]
                if probe is not None and done == 0:
                    t_probe = time.perf_counter()
                    probe(model, idx)
                    probe_seconds += time.perf_counter() - t_probe
                xb, yb = x[idx], y[idx]
                if augment is not None:
                    xb = augment(xb, generator)
                if config.channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with amp:
                    out = forward(xb)
                    loss = F.cross_entropy(out, yb)
                objective = loss
                if loss_term is not None:
                    extra = loss_term(model)
                    if extra is not None:
                        objective = loss + extra
                opt.zero_grad(set_to_none=True)
                if scaler is None:
                    objective.backward()
                    opt.step()
                else:
                    scaler.scale(objective).backward()
                    scaler.step(opt)
                    scaler.update()
                steps += 1
                if after_step is not None:
                    after_step(model, Step(steps, done, xb, yb, opt))
                with torch.no_grad():
                    torch.argmax(out, dim=1, out=pred_views[k])
                    loss_views[k].copy_(loss)
            done += 1
            acc = (preds == y[perm]).sum().item() / n
            loss_mean = (batch_losses * batch_sizes).sum().item() / n
            if on_epoch is not None:
                on_epoch(done, acc)
            if epochs is not None:
                reason = "epochs"
                continue
            if acc >= config.target_accuracy:
                reason = "target"
                break
            if acc > best + config.min_delta:
                best, since_best = acc, 0
            else:
                since_best += 1
                if since_best >= config.patience:
                    reason = "plateau"
                    break
    stats = TrainStats(steps, done, time.perf_counter() - start - probe_seconds, acc, loss_mean, reason)
    return stats, opt


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Row-wise softmax of ``logits`` (a new tensor; ``logits`` is left as it is).

    On CPU, ``torch.softmax`` over a short last dimension (10 classes) took 810 us for 8,192 rows where
    this max-subtract / exp / normalize sequence took 230 us (docs/performance.md).
    """
    logits = logits.float()  # reduced-precision logits (autocast) give float32 probabilities
    probs = (logits - logits.amax(dim=1, keepdim=True)).exp_()
    return probs.div_(probs.sum(dim=1, keepdim=True))


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Class probabilities for ``x`` in eval mode, computed in batches."""
    was_training = model.training
    model.eval()
    try:
        if len(x) <= batch_size:
            return softmax(model(x))
        return torch.cat([softmax(model(x[i : i + batch_size])) for i in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)`` in eval mode."""
    was_training = model.training
    model.eval()
    try:
        correct, loss = 0, 0.0
        for i in range(0, len(y), batch_size):
            out = model(x[i : i + batch_size]).float()
            yb = y[i : i + batch_size]
            correct += int((out.argmax(1) == yb).sum())
            loss += float(F.cross_entropy(out, yb, reduction="sum"))
        return correct / max(1, len(y)), loss / max(1, len(y))
    finally:
        model.train(was_training)
