"""``weight_clipping``: clamp every weight to a multiple of its layer's initialization bound after each step."""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn

from activews.errors import ActivewsError
from activews.params import Tune
from activews.strategies._util import parameterized_leaves
from activews.strategies.base import InitContext, InitStrategy, register_strategy
from activews.training import Step

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm1d/2d/3d, InstanceNorm with affine parameters
    nn.LayerNorm,
    nn.GroupNorm,
)


def clipping_bounds(model: nn.Module, *, who: str = "weight clipping") -> list[tuple[str, float]]:
    """``(parameter name, bound)`` for every parameter of ``model``, in ``named_parameters()`` order.

    The bound follows the weight-clipping authors' code (``InitBounds`` in mohmdelsayed/weight-clipping):
    a weight tensor (2 or more dimensions) gets ``1 / sqrt(fan_in)``, with ``fan_in`` as PyTorch
    computes it (input features, times the kernel size for a convolution), which is the bound of
    PyTorch's default ``Linear``/``Conv`` initialization ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``; a
    one-dimensional parameter (a bias, a BatchNorm/LayerNorm weight or bias) gets the bound of the
    weight tensor that precedes it in parameter order.

    Raises:
        ActivewsError: a one-dimensional parameter comes before any weight tensor, or a parameter is a
            scalar (the authors' rule gives neither a bound).
    """
    bounds: list[tuple[str, float]] = []
    previous: float | None = None
    for name, param in model.named_parameters():
        if param.dim() >= 2:
            fan_in, _ = nn.init._calculate_fan_in_and_fan_out(param)
            previous = 1.0 / math.sqrt(fan_in)
            bounds.append((name, previous))
        elif param.dim() == 1 and previous is not None:
            bounds.append((name, previous))
        else:
            why = "is a scalar" if param.dim() == 0 else "comes before any weight matrix or kernel"
            raise ActivewsError(
                f"{who}: parameter {name!r} {why}, so it has no initialization bound to clip to; "
                f"use a model whose parameters start with a Linear or convolution weight"
            )
    return bounds


@register_strategy("weight_clipping")
class WeightClipping(InitStrategy):
    """Weight clipping: after every optimizer step, clamp each parameter to ``+-kappa * bound``.

    ``bound`` is the parameter's layer initialization bound as the authors' code defines it (see
    :func:`clipping_bounds`): ``1 / sqrt(fan_in)`` of the layer's weight tensor, PyTorch's default
    ``Linear``/``Conv`` initialization bound (the activews models keep PyTorch's default
    initialization, so with ``kappa=1`` the weights stay inside the range they were drawn from). Biases
    use their layer's bound. As in the authors' code, a one-dimensional parameter that is not a bias
    (BatchNorm, LayerNorm, GroupNorm affine weights and biases) takes the bound of the weight tensor just
    before it in parameter order, so with ``kappa=1`` a BatchNorm scale initialized at 1 is clipped to
    ``1/sqrt(fan_in)`` of the preceding layer after the first step; ``clip_norms=False`` leaves the
    normalization layers' affine parameters unclipped instead (not the authors' behaviour).
    ``clip_last_layer=False`` leaves the output layer's weight and bias unclipped (the authors' option,
    which they swept).

    Clipping runs after every optimizer step, in every round, round 0 included; the start of a round is
    a warm start. Optimizer state is not touched (the authors wrap the optimizer and clamp after its
    step). Default ``kappa=1.0``, the default of the authors' released optimizers and README (the paper
    sweeps 1 to 5 on its MNIST problems and up to 20 on CIFAR-10; their PPO runs use 3).

    References:
        Elsayed, Lan, Lyle & Mahmood, "Weight Clipping for Deep Continual and Reinforcement Learning",
        Reinforcement Learning Journal 5, 2198-2217 (RLC 2024); code: github.com/mohmdelsayed/weight-clipping.
    """

    class Params(InitStrategy.Params):
        # Search space: log-uniform 1 to 20, the paper's sweeps (1 to 5 on its MNIST problems, the
        # authors' experiment grids; up to 20 on CIFAR-10). Below 1 a fresh draw would be clipped.
        kappa: Annotated[float, Tune(1.0, 20.0, log=True)] = Field(
            1.0, gt=0.0, description="clip each parameter to +-kappa times its layer's init bound"
        )
        clip_last_layer: bool = Field(True, description="also clip the output layer's weight and bias")
        clip_norms: bool = Field(
            True,
            description="also clip BatchNorm/LayerNorm affine parameters (to the preceding layer's bound)",
        )

    reference = "Elsayed, Lan, Lyle & Mahmood, RLJ 2024 (RLC 2024); github.com/mohmdelsayed/weight-clipping"
    batchnorm = (
        "running statistics kept; affine parameters clipped to the preceding layer's bound "
        "(clip_norms=True, the authors' rule) or left alone (clip_norms=False)"
    )
    optimizer = (
        "new optimizer every round (unless keep_optimizer_state); its state is never touched by the clipping"
    )

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._model: nn.Module | None = None
        self._targets: list[tuple[nn.Parameter, float]] = []

    def check_model(self, model: nn.Module) -> None:
        clipping_bounds(model, who=self.label())

    def _clipped(self, model: nn.Module) -> list[tuple[nn.Parameter, float]]:
        """The parameters to clip and their clamp values, computed once per model object."""
        if model is self._model:
            return self._targets
        bounds = dict(clipping_bounds(model, who=self.label()))
        skip: set[str] = set()
        leaves = parameterized_leaves(model)
        if not self.params.clip_norms:
            for prefix, module in leaves:
                if isinstance(module, _NORM_TYPES):
                    skip.update(
                        f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)
                    )
        if not self.params.clip_last_layer:
            # The authors skip the last two parameters (the output layer's weight and bias).
            head = [(p, m) for p, m in leaves if not isinstance(m, _NORM_TYPES)]
            if head:
                prefix, module = head[-1]
                skip.update(
                    f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)
                )
        kappa = self.params.kappa
        self._targets = [
            (param, kappa * bounds[name]) for name, param in model.named_parameters() if name not in skip
        ]
        self._model = model
        return self._targets

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        return model

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: Step, ctx: InitContext) -> None:
        for param, limit in self._clipped(model):
            param.clamp_(-limit, limit)
