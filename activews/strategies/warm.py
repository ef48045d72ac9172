"""``warm``: keep the previous round's weights (the compute reference arm)."""

from __future__ import annotations

from torch import nn

from activews.strategies.base import InitContext, InitStrategy, register_strategy


@register_strategy("warm")
class Warm(InitStrategy):
    """Warm start: continue from the previous round's trained weights, unchanged.

    References:
        Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475).
    """

    reference = "Ash & Adams, NeurIPS 2020, arXiv:1910.08475"
    batchnorm = "running statistics kept from the previous round"

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        return model
