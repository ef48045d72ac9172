"""``dash``: Direction-Aware SHrinking of the previous weights, guided by the loss gradient on the labeled data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from activews.errors import ActivewsError
from activews.params import Tune
from activews.strategies.base import InitContext, InitStrategy, register_strategy

__all__ = ["Dash", "shrinkable_layers", "direction_aware_shrink"]

_SHRUNK = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def shrinkable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers DASH shrinks: every ``Linear`` and ``Conv1d/2d/3d`` module, in definition order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, _SHRUNK)]


def _cosine_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity along the last dimension (0 where either vector is zero, as in torch)."""
    return F.cosine_similarity(a, b, dim=-1, eps=1e-8)


@torch.no_grad()
def direction_aware_shrink(
    model: nn.Module, direction: Mapping[str, torch.Tensor], lam: float
) -> dict[str, torch.Tensor]:
    """Scale each weight slice of ``model`` by ``clamp(cos(w, d), lam, 1)`` in place; return the scales.

    ``direction`` maps parameter names (``"3.weight"``, ``"3.bias"``) of the :func:`shrinkable_layers`
    to the direction the weights are compared with (DASH uses the negative loss gradient). A slice is:

    - ``Linear``: one output neuron's incoming weights (a row of the weight matrix);
    - ``Conv``: one kernel slice, the ``(output channel, input channel)`` kernel over its spatial positions
      (so a 1x1 convolution's slices have one entry, and their scale is 1 or ``lam`` by sign);
    - a bias: the layer's whole bias vector, one scale.

    Parameters that ``direction`` lacks, and every other layer (BatchNorm, LayerNorm, ...), are left as
    they are.
    """
    scales: dict[str, torch.Tensor] = {}
    for name, module in shrinkable_layers(model):
        prefix = f"{name}." if name else ""
        weight = module.weight
        d = direction.get(prefix + "weight")
        if d is not None:
            if isinstance(module, nn.Linear):
                scale = _cosine_rows(weight, d).clamp(lam, 1.0)  # (out,)
                weight.mul_(scale[:, None])
            else:
                # (out, in/groups, positions) -> one scale per (out, in/groups) kernel slice
                scale = _cosine_rows(weight.flatten(2), d.flatten(2)).clamp(lam, 1.0)
                weight.mul_(scale.reshape(*scale.shape, *[1] * (weight.dim() - 2)))
            scales[prefix + "weight"] = scale
        bias = module.bias
        d = direction.get(prefix + "bias") if bias is not None else None
        if bias is not None and d is not None:
            scale = _cosine_rows(bias.reshape(1, -1), d.reshape(1, -1)).clamp(lam, 1.0)  # (1,)
            bias.mul_(scale)
            scales[prefix + "bias"] = scale
    return scales


@register_strategy("dash")
class Dash(InitStrategy):
    """DASH: shrink each weight slice by how well it aligns with the negative loss gradient.

    At the start of every round, for each ``Linear`` and ``Conv`` layer, every output neuron's weights
    (``Linear``) or every ``(output, input)`` kernel slice (``Conv``) is multiplied by
    ``clamp(cos(w, -g), lam, 1)``: weights that point where the loss wants to go (learned features) are
    kept, the others (memorized noise) shrink, down to ``lam`` times their value. Each layer's bias
    vector gets one scale the same way. BatchNorm layers (affine parameters and running statistics) are
    left as they are, as in the authors' code.

    ``g`` follows the authors' released code: the loss gradient at the current weights, in eval mode,
    of each arrival group of the labeled set (the round-0 set, then each round's new examples, in
    labeling order), averaged as an exponential moving average over the groups, oldest first:
    ``g <- (1 - alpha) g + alpha * grad(group)``. The newest data weigh most. Each group's gradient
    is the mean over its examples, computed ``batch_size`` examples at a time (in eval mode the result
    does not depend on ``batch_size``, up to rounding). The strategy remembers the group sizes across
    rounds (its state, saved in checkpoints); examples whose round it did not see form one group.

    Needs the round's labeled data (``ctx.x_labeled``, ``ctx.y_labeled``; ``ctx.new_mask`` marks the
    new examples). Uses no randomness.

    References:
        Shin, Oh, Cho & Yun, "DASH: Warm-Starting Neural Network Training in Stationary Settings without
        Loss of Plasticity", NeurIPS 2024 (arXiv 2410.23495); code: github.com/baekrok/DASH.
    """

    class Params(InitStrategy.Params):
        # Search space: both over their valid ranges around the paper's defaults (0.3 and 0.3). lam from 0
        # (misaligned slices zeroed) to 1 (no shrink: warm); alpha from 0.01 (the arrival groups weigh
        # about equally) to 1 (only the newest group's gradient).
        lam: Annotated[float, Tune(0.0, 1.0)] = Field(
            0.3, ge=0.0, le=1.0, description="shrink floor: the smallest factor a weight slice is scaled by"
        )
        alpha: Annotated[float, Tune(0.01, 1.0)] = Field(
            0.3, gt=0.0, le=1.0, description="EMA coefficient of the gradients, over arrival groups"
        )
        batch_size: int = Field(
            1024, ge=1, description="examples per forward/backward pass when computing the gradients"
        )

    reference = "Shin, Oh, Cho & Yun, NeurIPS 2024, arXiv:2410.23495"
    batchnorm = "kept: BatchNorm parameters and running statistics are not shrunk (gradients in eval mode)"

    def __init__(self, params: InitStrategy.Params | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.groups: list[int] = []  # sizes of the labeled set's arrival groups, in labeling order

    # --------------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        return {"groups": list(self.groups)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unknown = set(state) - {"groups"}
        if unknown:
            raise ActivewsError(f"{self.label()}: unexpected checkpoint state {sorted(unknown)}")
        self.groups = [int(n) for n in state.get("groups", [])]

    # ------------------------------------------------------------------------------------- the method

    def arrival_groups(self, n: int, new_mask: torch.Tensor | None) -> list[int]:
        """Sizes of the arrival groups of ``n`` labeled examples (updates the remembered sizes).

        The examples not marked new are split by the sizes remembered from earlier rounds, as far as
        they fit; the rest of them form one group; the new examples are the last group.
        """
        n_new = int(new_mask.sum()) if new_mask is not None else 0
        n_old = n - n_new
        groups: list[int] = []
        for size in self.groups:
            if sum(groups) + size > n_old:
                break
            groups.append(size)
        if sum(groups) < n_old:
            groups.append(n_old - sum(groups))
        if n_new:
            groups.append(n_new)
        self.groups = groups
        return groups

    def _mean_gradient(
        self, model: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor
    ) -> list[torch.Tensor]:
        total = [torch.zeros_like(p) for p in params.values()]
        bs = self.params.batch_size
        for i in range(0, len(y), bs):
            loss = F.cross_entropy(model(x[i : i + bs]), y[i : i + bs], reduction="sum")
            grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            for acc, g in zip(total, grads, strict=True):
                if g is not None:
                    acc.add_(g)
        return [t.div_(len(y)) for t in total]

    def negative_gradient_ema(self, model: nn.Module, ctx: InitContext) -> dict[str, torch.Tensor]:
        """``-g``: the EMA over arrival groups of the negative mean loss gradient, per shrunk parameter."""
        x, y = ctx.x_labeled, ctx.y_labeled
        if x is None or y is None:
            raise ActivewsError(
                f"{self.label()} needs the round's labeled data; pass x_labeled and y_labeled in the InitContext"
            )
        if len(y) == 0:
            raise ActivewsError(f"{self.label()}: the labeled set is empty; DASH needs labeled examples")
        mask = ctx.new_mask.to(x.device) if ctx.new_mask is not None else None
        if mask is not None and mask.numel() != len(y):
            raise ActivewsError(
                f"{self.label()}: new_mask has {mask.numel()} entries for {len(y)} labeled examples"
            )
        order = (
            torch.cat([torch.nonzero(~mask).flatten(), torch.nonzero(mask).flatten()])
            if mask is not None
            else None
        )
        if ctx.round_index <= 1:  # a new run: sizes remembered from another run do not apply
            self.groups = []
        groups = self.arrival_groups(len(y), mask)
        params = {
            f"{name}.{kind}" if name else kind: t
            for name, m in shrinkable_layers(model)
            for kind, t in (("weight", m.weight), ("bias", m.bias))
            if t is not None and t.requires_grad
        }
        ema = [torch.zeros_like(p) for p in params.values()]
        a = self.params.alpha
        modes = [(m, m.training) for m in model.modules()]  # restored module by module afterwards
        model.eval()
        try:
            with torch.enable_grad():
                start = 0
                for size in groups:
                    idx = order[start : start + size] if order is not None else slice(start, start + size)
                    start += size
                    grads = self._mean_gradient(model, params, x[idx], y[idx])
                    for e, g in zip(ema, grads, strict=True):
                        e.mul_(1 - a).sub_(g, alpha=a)  # EMA of the *negative* gradient
        finally:
            for module, training in modes:
                module.training = training
        return dict(zip(params, ema, strict=True))

    def check_model(self, model: nn.Module) -> None:
        if not shrinkable_layers(model):
            raise ActivewsError(
                f"{self.label()} shrinks Linear and Conv layers, and the model has none; use shrink_perturb"
            )

    def needs(self) -> frozenset[str]:
        return frozenset({"data"})

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        direction = self.negative_gradient_ema(model, ctx)
        direction_aware_shrink(model, direction, self.params.lam)
        return model
