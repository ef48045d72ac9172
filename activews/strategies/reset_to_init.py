"""``reset_to_init``: restore the arm's round-0 draw at the start of every round."""

from __future__ import annotations

from torch import nn

from activews.strategies._util import load_state_in_place
from activews.strategies.base import InitContext, InitStrategy, register_strategy


@register_strategy("reset_to_init")
class ResetToInit(InitStrategy):
    """Reset to the initial weights: every round restarts from the *same* round-0 parameters.

    This is what several active-learning libraries do by default; it differs from ``random``, which
    draws new weights every round.

    References:
        Frankle & Carbin, "The Lottery Ticket Hypothesis", ICLR 2019 (rewinding to the initial draw);
        Ash & Adams, NeurIPS 2020, arXiv:1910.08475 (random-init baseline).
    """

    reference = "Frankle & Carbin, ICLR 2019, arXiv:1803.03635"
    batchnorm = "running statistics restored to their round-0 values"

    def needs(self) -> frozenset[str]:
        return frozenset({"initial_state"})

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        load_state_in_place(model, dict(ctx.initial_state))
        return model
