"""``shrink_perturb``: shrink the previous weights and add fresh-initialization noise."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from activews.params import Tune
from activews.strategies._util import copy_buffers
from activews.strategies.base import InitContext, InitStrategy, register_strategy


@register_strategy("shrink_perturb")
class ShrinkPerturb(InitStrategy):
    """Shrink and perturb: ``theta <- shrink * theta + perturb * theta_fresh``.

    As in the authors' released code, the noise is a freshly initialized copy of the model scaled by
    ``perturb``, so each layer's noise has that layer's own init scale. ``shrink=0, perturb=1`` is a
    fresh draw (random init). ``shrink=1, perturb=0`` keeps the weights, so it is exactly ``warm`` for a
    model without BatchNorm, or with ``buffers="keep"``; with the default ``buffers="fresh"`` BatchNorm's
    running statistics still come from a fresh model (as in the authors' ``run.py``, whose
    ``shrink_perturb`` returns the fresh model with only its parameters overwritten), so a BatchNorm
    model does not equal ``warm``. With ``noise="gaussian"`` the noise is ``N(0, perturb^2)`` per entry
    instead (as in later papers).

    BatchNorm running statistics are taken from the fresh model (``buffers="fresh"``, the authors'
    behaviour) or kept (``buffers="keep"``).

    By default round 0 trains the arm's initial draw untouched, as for every strategy (all arms of a
    seed share round 0: a paired comparison). ``first_round=True`` also shrinks and perturbs that draw
    before round 0, as the authors' ``run.py`` does (it calls ``shrink_perturb`` at the top of every
    round, the first included, so their round-0 model is ``shrink * theta_0 + perturb * theta_fresh``
    with BatchNorm buffers from ``theta_fresh``).

    References:
        Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475), §4.
    """

    class Params(InitStrategy.Params):
        # Search space: shrink over its whole range, from 0 (nothing kept) to 1 (everything kept: with
        # perturb 0, warm); perturb by order of magnitude, three decades up to 1 (shrink 0, perturb 1 is
        # `random`), around the default 0.1.
        shrink: Annotated[float, Tune(0.0, 1.0)] = Field(
            0.4, ge=0.0, le=1.0, description="factor applied to the previous weights"
        )
        perturb: Annotated[float, Tune(1e-3, 1.0, log=True)] = Field(
            0.1, ge=0.0, description="scale of the added noise"
        )
        noise: Literal["fresh_init", "gaussian"] = Field(
            "fresh_init", description="noise source: a fresh model's weights, or N(0, perturb^2)"
        )
        buffers: Literal["fresh", "keep"] = Field(
            "fresh", description="BatchNorm running stats: from the fresh model, or kept"
        )
        first_round: bool = Field(
            False,
            description="also shrink and perturb the initial draw before round 0 (as the authors' run.py)",
        )

    reference = "Ash & Adams, NeurIPS 2020, arXiv:1910.08475 (section 4)"
    batchnorm = "running statistics from a fresh model (buffers='fresh', default) or kept (buffers='keep')"

    def acts_at_round_zero(self) -> bool:
        return self.params.first_round

    def needs(self) -> frozenset[str]:
        p = self.params
        needs = set()
        if p.noise == "fresh_init" or p.buffers == "fresh":
            needs.add("fresh_model")
        if p.noise == "gaussian" and p.perturb > 0:
            needs.add("generator")
        return frozenset(needs)

    @torch.no_grad()
    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        p = self.params
        fresh = ctx.fresh_model() if (p.noise == "fresh_init" or p.buffers == "fresh") else None
        fresh_params = dict(fresh.named_parameters()) if fresh is not None else {}
        for name, param in model.named_parameters():
            param.mul_(p.shrink)
            if p.perturb == 0.0:
                continue
            if p.noise == "fresh_init":
                param.add_(fresh_params[name], alpha=p.perturb)
            else:
                noise = torch.randn(param.shape, generator=ctx.generator, dtype=param.dtype)
                param.add_(noise.to(param.device), alpha=p.perturb)
        if p.buffers == "fresh" and fresh is not None:
            copy_buffers(model, fresh)
        return model
