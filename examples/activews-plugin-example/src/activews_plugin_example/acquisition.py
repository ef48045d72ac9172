"""``stochastic_power``: sample the batch with probability proportional to ``score ** beta``."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from activews.streams.acquisition import ScoringSelector, entropy, least_confidence

_BASES = {"entropy": entropy, "least_confidence": least_confidence}


class StochasticPower(ScoringSelector):
    """Power acquisition: draw the batch without replacement, ``P(x) proportional to s(x) ** beta``.

    ``s`` is a non-negative uncertainty score (predictive ``entropy`` or ``least_confidence``). Taking
    the top ``k`` of ``beta * log s(x) + G(x)``, with ``G`` independent standard Gumbel noise drawn
    from the stream's generator, is exactly that draw (the Gumbel-top-k trick). Large ``beta`` tends
    to the deterministic top-``k`` of ``s``; ``beta -> 0`` to uniform random sampling. The stochastic
    draw avoids the redundant batches that top-``k`` picks when nearby examples score alike.

    References:
        Kirsch et al., "Stochastic Batch Acquisition: A Simple Baseline for Deep Active Learning",
        TMLR 2023 (arXiv 2106.12059); Kool, van Hoof & Welling, "Stochastic Beams and Where to Find
        Them", ICML 2019 (Gumbel-top-k).
    """

    class Params(ScoringSelector.Params):
        base: Literal["entropy", "least_confidence"] = Field(
            "entropy", description="the uncertainty score s(x) to sample by"
        )
        beta: float = Field(1.0, gt=0.0, description="power: larger is closer to top-k of the score")

    reference = "Kirsch et al., TMLR 2023, arXiv:2106.12059 (power acquisition)"

    def score(self, view, idx, generator: torch.Generator) -> torch.Tensor:
        probs = view(idx)
        s = _BASES[self.params.base](probs).float().cpu()
        u = torch.rand(s.shape, generator=generator).clamp(1e-12, 1.0 - 1e-7)
        gumbel = -torch.log(-torch.log(u))
        return self.params.beta * s.clamp_min(1e-30).log() + gumbel
