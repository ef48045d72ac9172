"""``random``: a fresh draw of the weights every round (the accuracy reference arm)."""

from __future__ import annotations

from torch import nn

from activews.strategies.base import InitContext, InitStrategy, register_strategy


@register_strategy("random")
class RandomInit(InitStrategy):
    """Random initialization: discard the previous model and train a new draw from scratch.

    Every round draws *new* weights from the model's own initializers (unlike ``reset_to_init``,
    which restores the same round-0 draw).

    References:
        Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475).
    """

    reference = "Ash & Adams, NeurIPS 2020, arXiv:1910.08475"
    batchnorm = "fresh running statistics (new model)"

    def needs(self) -> frozenset[str]:
        return frozenset({"fresh_model"})

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        return ctx.fresh_model()
