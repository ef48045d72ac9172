"""``l2``: warm start, plus an L2 penalty toward the origin in every training step."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from activews.errors import ActivewsError
from activews.params import Tune
from activews.strategies.base import InitContext, InitStrategy, register_strategy


@register_strategy("l2")
class L2(InitStrategy):
    """L2 regularization: keep the previous weights and add ``lam * ||theta||^2`` to every step's loss.

    The plain-L2 baseline that L2 Init (``l2_init``) modifies: the same term, pulled toward the origin
    instead of toward the round-0 weights. It covers every parameter (weights, biases, BatchNorm's
    affine parameters), in every round, round 0 included; ``init_round`` keeps the weights (a warm
    start). The form is Kumar et al.'s (``lambda * ||theta||_2^2``, no factor 1/2, so the gradient is
    ``2 * lam * theta``). Through the loss it also passes through Adam's moment estimates: it is L2
    regularization, not decoupled weight decay. ``TrainConfig.weight_decay=w`` of plain Adam or SGD is
    the same penalty with ``lam = w / 2``, applied to every parameter; this strategy makes it an arm of
    its own next to ``l2_init`` and ``warm``.

    Default ``lam=1e-2``: Kumar et al.'s selected value for L2 with Adam on Permuted MNIST, Random
    Label MNIST and Random Label CIFAR, and with SGD on all three (their Table 3; 1e-3 and 1e-4 on
    5+1 CIFAR). Ash & Adams report that L2 regularization (1e-1 to 1e-4) does not close the warm-start
    gap; this arm lets a user check that in their own loop.

    References:
        Kumar, Marklund & Van Roy, "Maintaining Plasticity in Continual Learning via Regenerative
        Regularization", CoLLAs 2024 (arXiv 2308.11958), sections 2.3 and 5, Table 3.
    """

    class Params(InitStrategy.Params):
        # Search space: log-uniform 1e-5 to 1e-1, the union of Ash & Adams' L2 strengths (1e-4 to 1e-1)
        # and Kumar et al.'s grid (1e-5 to 1e-2; their selected L2 values 1e-2 to 1e-4, Table 3).
        lam: Annotated[float, Tune(1e-5, 1e-1, log=True)] = Field(
            1e-2, gt=0.0, le=1.0, description="strength of the pull toward zero"
        )

    reference = "Kumar, Marklund & Van Roy, CoLLAs 2024, arXiv:2308.11958 (the L2 baseline)"
    batchnorm = "running statistics kept (warm start); the affine parameters are pulled toward zero"

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        return model

    def loss_term(self, model: nn.Module, ctx: InitContext) -> torch.Tensor:
        terms = [param.pow(2).sum() for param in model.parameters()]
        if not terms:
            raise ActivewsError(f"{self.label()}: the model has no parameters to regularize")
        return self.params.lam * torch.stack(terms).sum()
