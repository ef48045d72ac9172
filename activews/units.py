"""Hidden units of a model and how active they are.

A *unit* is one output feature of an activation module (``nn.ReLU``, ``nn.Tanh``, ...): a neuron after
a ``Linear`` layer, or a channel after a convolution (averaged over positions). The dormant-unit
diagnostic and the unit-recycling strategies (``redo``, ``continual_backprop``) all start from the
per-unit mean absolute activation measured here.

References:
    Sokar et al., "The Dormant Neuron Phenomenon in Deep Reinforcement Learning", ICML 2023
    (arXiv 2302.12902): a unit is tau-dormant when its mean |activation|, divided by the mean over its
    layer, is at most tau.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "ACTIVATION_TYPES",
    "activation_modules",
    "mean_abs_activation",
    "dormant_scores",
    "dormant_fraction",
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

    Returns:
        ``{name: tensor of shape (C,)}`` (float64 on the CPU), for every module that produced output.
    """
    modules = activation_modules(model) if modules is None else list(modules)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook_for(name: str):
        def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            out = output.detach()
            per_unit = (
                out.abs().transpose(0, 1).reshape(out.shape[1], -1) if out.dim() > 1 else out.abs()[None]
            )
            total = per_unit.sum(dim=1).to("cpu", torch.float64)
            sums[name] = sums[name] + total if name in sums else total
            counts[name] = counts.get(name, 0) + per_unit.shape[1]

        return hook

    handles = [m.register_forward_hook(hook_for(name)) for name, m in modules]
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {name: sums[name] / counts[name] for name in sums}


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
