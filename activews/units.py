"""Hidden units of a model and how active they are.

A *unit* is one output feature of an activation module (``nn.ReLU``, ``nn.Tanh``, ...): a neuron after
a ``Linear`` layer, or a channel after a convolution (averaged over positions). The dormant-unit
diagnostic and the unit-recycling strategies (``redo``, ``continual_backprop``) all start from the
per-unit mean absolute activation measured here.

Recycling a unit (``redo``, ``continual_backprop``) also needs the layers around it: the layer whose
output rows (``Linear``) or channels (convolution) *are* the units, an optional BatchNorm between that
layer and the activation, and the layer(s) that read the units as input columns or channels.
:func:`hidden_units` finds these as :class:`UnitGroup` records; :func:`recycle_units` re-initializes
chosen units (incoming weights from a fresh draw, outgoing weights zero, BatchNorm entries and optimizer
state reset for exactly those entries).

References:
    Sokar et al., "The Dormant Neuron Phenomenon in Deep Reinforcement Learning", ICML 2023
    (arXiv 2302.12902): a unit is tau-dormant when its mean |activation|, divided by the mean over its
    layer, is at most tau.
    Dohare et al., "Loss of plasticity in deep continual learning", Nature 632, 2024: a unit's
    contribution utility is its mean |activation| times the mean |weight| of its outgoing connections.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from activews.errors import ActivewsError
from activews.training import DROPOUT_TYPES

__all__ = [
    "ACTIVATION_TYPES",
    "activation_modules",
    "mean_abs_activation",
    "dormant_scores",
    "dormant_fraction",
    "Consumer",
    "UnitGroup",
    "hidden_units",
    "register_mode_independent",
    "unit_activity",
    "outgoing_weight_magnitude",
    "reinit_units",
    "zero_outgoing",
    "reset_optimizer_units",
    "recycle_units",
]

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Softplus,
    nn.Tanh,
    nn.Sigmoid,
)
"""Modules whose outputs count as hidden units."""


def activation_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The activation modules of ``model`` (``ACTIVATION_TYPES``), in registration order, with their names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, ACTIVATION_TYPES)]


@torch.no_grad()
def mean_abs_activation(
    model: nn.Module,
    x: torch.Tensor,
    modules: Sequence[tuple[str, nn.Module]] | None = None,
    batch_size: int = 4096,
    *,
    on_device: bool = False,
) -> dict[str, torch.Tensor]:
    """Mean absolute output per unit of each activation module over the examples ``x``, in eval mode.

    For an output of shape ``(N, C, ...)`` the units are the ``C`` features (channels), and the mean
    runs over the examples and every position. A module called several times in one forward pass
    (a shared ``nn.ReLU``) has its calls pooled.

    Args:
        model: the model (its train/eval mode is restored afterwards).
        x: the examples, on the model's device.
        modules: ``(name, module)`` pairs to measure; default :func:`activation_modules`.
        batch_size: examples per forward pass.
        on_device: keep the results on the model's device in the activations' dtype, with no copy
            to the CPU (no device synchronization: for per-step use in a training hook). A model made
            only of modules that behave the same in both modes (``Linear``, convolutions, activations,
            pooling, ``Flatten``, containers) is then left in its mode, which saves switching it.

    Returns:
        ``{name: tensor of shape (C,)}`` (float64 on the CPU unless ``on_device``), for every module that
        produced output.
    """
    modules = activation_modules(model) if modules is None else list(modules)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook_for(name: str):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            out = output.detach()
            if on_device and out.dim() > 1:
                # A reduction over every axis but the channels: no transposed copy of the activations.
                total = out.abs().sum(dim=[0, *range(2, out.dim())])
                sums[name] = sums[name] + total if name in sums else total
                counts[name] = counts.get(name, 0) + out.numel() // out.shape[1]
                return
            per_unit = (
                out.abs().transpose(0, 1).reshape(out.shape[1], -1) if out.dim() > 1 else out.abs()[None]
            )
            total = per_unit.sum(dim=1)
            if not on_device:
                total = total.to("cpu", torch.float64)
            sums[name] = sums[name] + total if name in sums else total
            counts[name] = counts.get(name, 0) + per_unit.shape[1]

        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in modules]
    was_training = model.training
    if not (on_device and _mode_independent(model)):  # no module behaves differently in eval mode: skip
        model.eval()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {name: sums[name] / counts[name] for name in sums}


def _mode_independent(model: nn.Module) -> bool:
    """Whether every module of ``model`` computes the same in train and eval mode (known types only)."""
    return all(type(m) in _MODE_INDEPENDENT for m in model.modules())


def dormant_scores(mean_abs: torch.Tensor) -> torch.Tensor:
    """ReDo's score per unit: its mean |activation| divided by the layer's average (0 where all are 0)."""
    layer_mean = mean_abs.mean()
    if layer_mean <= 0:
        return torch.zeros_like(mean_abs)
    return mean_abs / layer_mean


def dormant_fraction(activity: dict[str, torch.Tensor], tau: float) -> float | None:
    """The fraction of all units whose :func:`dormant_scores` is ``<= tau`` (None if there are no units)."""
    total = sum(int(a.numel()) for a in activity.values())
    if total == 0:
        return None
    dormant = sum(int((dormant_scores(a) <= tau).sum()) for a in activity.values())
    return dormant / total


# ------------------------------------------------------------------------------ units and their layers

WEIGHT_LAYERS: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
"""Layers that can feed or read a group of units."""

_NORMS: tuple[type[nn.Module], ...] = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_DROPOUTS = DROPOUT_TYPES  # torch's dropouts and those built on them (the trainer seeds their masks)
_CHANNELWISE_POOLS: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)
# Per-channel (or per-feature) operations that keep each unit in its own channel: between an activation
# and the layer that reads it, they do not change which input columns or channels a unit maps to.
_CHANNELWISE: tuple[type[nn.Module], ...] = (*_CHANNELWISE_POOLS, *_DROPOUTS)

_MODE_INDEPENDENT: set[type[nn.Module]] = {
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Flatten,
    nn.Sequential,
    nn.ModuleList,
    nn.ModuleDict,
    *ACTIVATION_TYPES,
    *_CHANNELWISE_POOLS,
}
"""Module types that compute the same in train and eval mode (see :func:`register_mode_independent`)."""

M = TypeVar("M", bound=type[nn.Module])


def register_mode_independent(cls: M) -> M:
    """Class decorator: ``cls`` computes the same in train and eval mode (a reshape, say).

    :func:`mean_abs_activation` with ``on_device=True`` then leaves a model made only of such modules in
    its mode instead of switching it to eval mode and back. Exact types: a subclass is not covered by its
    parent's declaration. The models that define such modules declare them (``activews.models.zoo``).
    """
    _MODE_INDEPENDENT.add(cls)
    return cls


@dataclass(frozen=True)
class Consumer:
    """A layer that reads a group of units: its input columns (``Linear``) or input channels (conv).

    Attributes:
        layer: the ``Linear`` or convolution.
        block: input columns per unit: 1, or, for conv -> ``Flatten`` -> ``Linear``, the positions of
            each channel (unit ``i`` is read by columns ``i * block ... (i + 1) * block - 1``).
    """

    layer: nn.Module
    block: int = 1

    def columns(self, idx: torch.Tensor) -> torch.Tensor:
        """The input columns (or channels) of :attr:`layer` that read the units ``idx``."""
        if self.block == 1:
            return idx
        offsets = torch.arange(self.block, device=idx.device)
        return (idx[:, None] * self.block + offsets).reshape(-1)


@dataclass(frozen=True)
class UnitGroup:
    """One layer's recyclable hidden units and the layers around them.

    Attributes:
        name: the activation module's qualified name (as in ``model.named_modules()``); a fresh draw of
            the same architecture has a group of the same name.
        incoming: the ``Linear`` or convolution whose output rows or channels are the units.
        activation: the activation module whose outputs are measured.
        outgoing: the layer(s) that read the units.
        norm: a BatchNorm between ``incoming`` and ``activation`` (its entries are the units'), or None.
    """

    name: str
    incoming: nn.Module
    activation: nn.Module
    outgoing: tuple[Consumer, ...]
    norm: nn.Module | None = None

    @property
    def size(self) -> int:
        """Number of units."""
        return int(self.incoming.weight.shape[0])

    def entries(self, idx: torch.Tensor) -> Iterator[tuple[nn.Parameter, int, torch.Tensor]]:
        """``(parameter, dim, index)`` for every parameter entry that belongs to the units ``idx``:
        incoming rows and biases, BatchNorm weights and biases, outgoing columns."""
        yield self.incoming.weight, 0, idx
        if self.incoming.bias is not None:
            yield self.incoming.bias, 0, idx
        if self.norm is not None and self.norm.weight is not None:
            yield self.norm.weight, 0, idx
            yield self.norm.bias, 0, idx
        for consumer in self.outgoing:
            yield consumer.layer.weight, 1, consumer.columns(idx)


def _flat_sequential(seq: nn.Sequential, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    for name, child in seq._modules.items():  # not named_children(), which hides a module used twice
        if child is None:
            continue
        qualified = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            yield from _flat_sequential(child, f"{qualified}.")
        else:
            yield qualified, child


def _describe(name: str, module: nn.Module) -> str:
    return f"module {name!r} ({type(module).__name__})"


def _sequential_units(model: nn.Sequential, who: str) -> list[UnitGroup]:
    chain = list(_flat_sequential(model))
    hint = "use a chain of Linear/Conv, BatchNorm, activation, dropout, pooling and Flatten modules, or define hidden_units() on the model"

    def fail(why: str) -> ActivewsError:
        return ActivewsError(f"{who} cannot find the layers around each hidden unit: {why}; {hint}")

    groups: list[UnitGroup] = []
    seen: set[int] = set()
    for i, (name, act) in enumerate(chain):
        if not isinstance(act, ACTIVATION_TYPES):
            continue
        if id(act) in seen:
            raise fail(f"activation {_describe(name, act)} is used at several places")
        seen.add(id(act))
        # Back from the activation to the layer that computes the units.
        norm: nn.Module | None = None
        incoming: nn.Module | None = None
        j = i - 1
        while j >= 0:
            prev_name, prev = chain[j]
            if isinstance(prev, _NORMS) and norm is None:
                norm = prev
            elif isinstance(prev, WEIGHT_LAYERS):
                incoming = prev
                break
            elif isinstance(prev, ACTIVATION_TYPES):
                break
            elif not isinstance(prev, (nn.Identity, *_DROPOUTS)):
                raise fail(f"{_describe(prev_name, prev)} sits between activation {name!r} and its layer")
            j -= 1
        if incoming is None:
            continue  # no parameterized layer computes these outputs: nothing to recycle
        if getattr(incoming, "groups", 1) != 1:
            raise fail(f"grouped convolution {_describe(chain[j][0], incoming)}")
        size = int(incoming.weight.shape[0])
        if norm is not None and norm.num_features != size:
            raise fail(f"BatchNorm of {norm.num_features} features after a layer of {size} outputs")
        # Forward from the activation to the layer that reads the units.
        flattened = False
        consumer: nn.Module | None = None
        for next_name, nxt in chain[i + 1 :]:
            if isinstance(nxt, _CHANNELWISE):
                continue
            if isinstance(nxt, nn.Flatten) and nxt.start_dim == 1 and nxt.end_dim == -1:
                flattened = True
                continue
            if isinstance(nxt, WEIGHT_LAYERS):
                consumer = nxt
                break
            raise fail(
                f"{_describe(next_name, nxt)} sits between activation {name!r} and the layer reading it"
            )
        if consumer is None:
            continue  # the model's output: not a hidden unit
        conv_in = not isinstance(incoming, nn.Linear)
        if isinstance(consumer, nn.Linear):
            if conv_in and not flattened:
                raise fail(f"convolution outputs reach Linear {next_name!r} without a Flatten")
            if consumer.in_features % size != 0 or (not conv_in and consumer.in_features != size):
                raise fail(f"Linear {next_name!r} reads {consumer.in_features} inputs from {size} units")
            block = consumer.in_features // size
        else:
            if flattened or not conv_in:
                raise fail(f"convolution {next_name!r} reads flattened or Linear outputs")
            if consumer.groups != 1 or consumer.in_channels != size:
                raise fail(f"convolution {next_name!r} does not read the {size} channels one each")
            block = 1
        groups.append(UnitGroup(name, incoming, act, (Consumer(consumer, block),), norm))
    return groups


def hidden_units(model: nn.Module, who: str = "unit recycling") -> list[UnitGroup]:
    """The recyclable hidden units of ``model``, one :class:`UnitGroup` per layer, in forward order.

    Where they come from, in this order:

    1. the model's own ``hidden_units()`` method, if it has one (returning ``UnitGroup`` records: the
       way for a custom architecture to declare its units). The built-in ResNets declare theirs this
       way (:func:`activews.models.resnet.resnet_units`): the ``conv1 -> bn1 -> relu1 -> conv2`` units
       inside each block;
    2. for an ``nn.Sequential`` (nested ones are flattened), a walk along the chain: each activation
       module after a ``Linear``/``Conv1d/2d/3d`` (with an optional BatchNorm, identity or dropout in
       between) whose outputs reach another ``Linear``/conv through dropout, pooling, identity or
       ``Flatten`` modules. After ``Flatten`` each channel maps to a contiguous block of the
       ``Linear``'s input columns. Activations without an incoming layer, and the output, are skipped.

    A model with no hidden layer (``logreg``) has none: an empty list.

    Args:
        model: the model.
        who: how error messages start (e.g. ``"strategy 'redo'"``).

    Raises:
        ActivewsError: the model is neither of the above, or its chain has a module whose effect on the
            units is unknown (one line, naming the module).
    """
    declared = getattr(model, "hidden_units", None)
    if callable(declared):
        groups = list(declared())
        if not all(isinstance(g, UnitGroup) for g in groups):
            raise ActivewsError(
                f"{who}: {type(model).__name__}.hidden_units() must return activews.units.UnitGroup records"
            )
    else:
        if isinstance(model, nn.Sequential):
            groups = _sequential_units(model, who)
        else:
            raise ActivewsError(
                f"{who} needs to know which layer feeds and which layer reads each hidden unit, and cannot tell "
                f"for a {type(model).__name__}; use a Sequential model or define hidden_units() on the model"
            )
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ActivewsError(f"{who}: hidden unit groups must have distinct names, got {names}")
    return groups


def unit_activity(model: nn.Module, groups: Sequence[UnitGroup], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean |activation| per unit of each group over ``x`` (one eval-mode forward pass, no gradient),
    on the model's device; a group whose activation did not run gets zeros."""
    measured = mean_abs_activation(model, x, [(g.name, g.activation) for g in groups], on_device=True)
    weight = {g.name: g.incoming.weight for g in groups}
    return {
        g.name: measured[g.name] if g.name in measured else weight[g.name].new_zeros(g.size) for g in groups
    }


@torch.no_grad()
def outgoing_weight_magnitude(group: UnitGroup) -> torch.Tensor:
    """Mean |weight| of each unit's outgoing connections (over every layer, output and position reading it)."""
    if not group.outgoing:
        raise ActivewsError(f"unit group {group.name!r} has no layer reading its units")
    total: torch.Tensor | None = None
    count = 0
    for consumer in group.outgoing:
        w = consumer.layer.weight.detach().abs()
        # (out, units * block, *kernel) -> (out, units, block * kernel): one row of weights per unit
        per_unit = w.reshape(w.shape[0], group.size, -1)
        part = per_unit.sum(dim=(0, 2))
        total = part if total is None else total + part
        count += per_unit.shape[0] * per_unit.shape[2]
    return total / count  # type: ignore[operator]  # set by the first consumer


@torch.no_grad()
def reinit_units(group: UnitGroup, idx: torch.Tensor, source: UnitGroup, *, outgoing: bool = True) -> None:
    """Re-initialize the units ``idx`` of ``group`` in place.

    Incoming weights (rows or output channels) are copied from ``source`` (the same group in a freshly
    drawn model); their bias, if any, is set to 0 (as in the ReDo and continual-backprop authors' code);
    BatchNorm weight, bias, running mean and running variance entries are copied from ``source``'s
    BatchNorm (1, 0, 0, 1 for a fresh draw; ``num_batches_tracked`` is shared by all units and kept);
    outgoing weights (input columns or channels of every layer reading the units) are set to 0, so the
    network computes the same function right after the call if the units were exactly dead.
    ``outgoing=False`` leaves the outgoing weights (see :func:`zero_outgoing`).
    """
    idx = idx.to(group.incoming.weight.device)
    weight = group.incoming.weight
    weight.index_copy_(0, idx, source.incoming.weight.detach().index_select(0, idx).to(weight.dtype))
    if group.incoming.bias is not None:
        group.incoming.bias.index_fill_(0, idx, 0.0)
    if group.norm is not None:
        if source.norm is None:
            raise ActivewsError(
                f"unit group {group.name!r}: the fresh model has no BatchNorm where the model has one; "
                f"fresh_model() must build the same architecture"
            )
        for attr in ("weight", "bias", "running_mean", "running_var"):
            dst, src = getattr(group.norm, attr, None), getattr(source.norm, attr, None)
            if dst is not None and src is not None:
                dst.index_copy_(0, idx, src.detach().index_select(0, idx).to(dst.dtype))
    if outgoing:
        zero_outgoing(group, idx)


@torch.no_grad()
def zero_outgoing(group: UnitGroup, idx: torch.Tensor) -> None:
    """Set the outgoing weights of the units ``idx`` of ``group`` to 0 (every layer reading them)."""
    idx = idx.to(group.incoming.weight.device)
    for consumer in group.outgoing:
        consumer.layer.weight.index_fill_(1, consumer.columns(idx), 0.0)


@torch.no_grad()
def reset_optimizer_units(optimizer: torch.optim.Optimizer, group: UnitGroup, idx: torch.Tensor) -> None:
    """Zero the optimizer's per-entry state for the units ``idx`` of ``group``, and nothing else.

    Every state tensor with its parameter's shape (Adam's ``exp_avg``, ``exp_avg_sq`` and
    ``max_exp_avg_sq``, SGD's ``momentum_buffer``, ...) is zeroed at the units' entries: incoming rows
    and biases, BatchNorm weights and biases, outgoing columns. Scalar step counts (Adam's ``step``,
    shared by all entries of a tensor) are left as they are. Parameters without state yet are skipped.
    """
    idx = idx.to(group.incoming.weight.device)
    for param, dim, index in group.entries(idx):
        for value in optimizer.state.get(param, {}).values():
            if isinstance(value, torch.Tensor) and value.shape == param.shape:
                value.index_fill_(dim, index, 0)


def recycle_units(
    groups: Sequence[UnitGroup],
    selection: Mapping[str, torch.Tensor],
    fresh: nn.Module | Callable[[], nn.Module],
    optimizer: torch.optim.Optimizer | None = None,
    who: str = "unit recycling",
) -> int:
    """Re-initialize the selected units (:func:`reinit_units`) and their optimizer state
    (:func:`reset_optimizer_units`).

    Args:
        groups: the model's :func:`hidden_units`.
        selection: ``{group name: indices of the units to recycle}``; empty index tensors are skipped.
        fresh: a freshly drawn model of the same architecture (the source of the new incoming weights),
            or a function returning one (called only if some unit is selected, e.g. ``ctx.fresh_model``).
        optimizer: the optimizer whose state to reset (None: no optimizer state to reset).
        who: how error messages start.

    Returns:
        The number of units recycled.
    """
    chosen = [(g, selection[g.name]) for g in groups if g.name in selection and selection[g.name].numel()]
    if not chosen:
        return 0
    model = fresh if isinstance(fresh, nn.Module) else fresh()
    source = {g.name: g for g in hidden_units(model, who)}
    for group, _ in chosen:
        src = source.get(group.name)
        if src is None or src.size != group.size:
            raise ActivewsError(
                f"{who}: the fresh model has no hidden units {group.name!r} of size {group.size}"
            )
    # Incoming weights first, outgoing zeros last: where one layer is both the outgoing layer of recycled
    # units and the incoming layer of others, the weight between two recycled units ends at 0 (as in the
    # ReDo authors' masks), so recycled units contribute nothing right after the call.
    for group, idx in chosen:
        reinit_units(group, idx, source[group.name], outgoing=False)
    for group, idx in chosen:
        zero_outgoing(group, idx)
        if optimizer is not None:
            reset_optimizer_units(optimizer, group, idx)
    return sum(int(idx.numel()) for _, idx in chosen)
