"""``norm_to_init``: rescale each weight tensor back to its round-0 norm, keeping its direction."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from activews import InitContext, InitStrategy


class NormToInit(InitStrategy):
    """Norm restoration: ``W <- W * ((1 - mix) + mix * ||W_0|| / ||W||)`` for every weight tensor.

    Training tends to grow the weights' norms, which lowers the effective learning rate of the next
    round; this puts each tensor's Frobenius norm back (``mix=1``) or part of the way back toward its
    norm in the arm's round-0 draw ``W_0`` (``ctx.initial_state``), without changing its direction.
    ``mix=0`` is the warm start. Only parameters with at least ``min_ndim`` dimensions are rescaled
    (by default weight matrices and convolution kernels, not biases or BatchNorm scales); a tensor
    whose norm is zero is left alone. BatchNorm running statistics are kept from the previous round;
    the optimizer is re-created every round by the trainer (unless ``keep_optimizer_state`` is set).

    A one-shot, start-of-round variant of the projection step of Normalize-and-Project, which
    projects the weights back to their initial norm after every optimizer step.

    References:
        Lyle et al., "Normalization and Effective Learning Rates in Reinforcement Learning",
        NeurIPS 2024 (the projection step; here applied once per round).
    """

    class Params(InitStrategy.Params):
        mix: float = Field(1.0, ge=0.0, le=1.0, description="how far back to the round-0 norm (0 = warm)")
        min_ndim: int = Field(2, ge=1, description="rescale parameters with at least this many dimensions")

    reference = "Lyle et al., NeurIPS 2024 (Normalize-and-Project's projection, once per round)"
    batchnorm = "running statistics kept from the previous round"

    def needs(self) -> frozenset[str]:
        return frozenset({"initial_state"})  # reads ctx.initial_state; callers may leave out the rest

    @torch.no_grad()
    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        mix, min_ndim = self.params.mix, self.params.min_ndim
        for name, param in model.named_parameters():
            if param.ndim < min_ndim:
                continue
            norm = param.norm()
            if norm == 0:
                continue
            norm0 = ctx.initial_state[name].to(device=param.device, dtype=param.dtype).norm()
            param.mul_((1.0 - mix) + mix * norm0 / norm)
        return model
