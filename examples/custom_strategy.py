"""A custom initialization strategy: shrink the previous weights toward the arm's round-0 weights.

    theta <- alpha * theta + (1 - alpha) * theta_0

``alpha=1`` keeps the previous weights (``warm``); ``alpha=0`` restores the round-0 parameters
(``reset_to_init``, except that BatchNorm running statistics are kept). It is shrink-and-perturb
(Ash & Adams, 2020, section 4) with the perturbation taken from the arm's *initial* weights instead
of a new draw, and a one-shot, start-of-round analogue of L2 Init (Kumar, Marklund & Van Roy, 2023),
which pulls toward theta_0 through a loss term during training instead.

Use it from Python::

    python examples/custom_strategy.py

or from the command line, by loading this file as a plugin::

    activews --plugin examples/custom_strategy.py bench --strategy shrink_to_init \
        --param shrink_to_init.alpha=0.5
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from activews import InitContext, InitStrategy, register_strategy


@register_strategy("shrink_to_init")
class ShrinkToInit(InitStrategy):
    """Shrink toward the initial weights: ``theta <- alpha * theta + (1 - alpha) * theta_0``.

    ``theta_0`` is the arm's round-0 draw (``ctx.initial_state``). Only parameters are interpolated;
    buffers (BatchNorm running statistics) are kept from the previous round. The optimizer is
    re-created every round by the trainer (unless ``keep_optimizer_state`` is set).

    References:
        Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475), section 4;
        Kumar, Marklund & Van Roy, "Maintaining Plasticity in Continual Learning via Regenerative
        Regularization", 2023 (arXiv 2308.11958).
    """

    class Params(InitStrategy.Params):
        alpha: float = Field(0.5, ge=0.0, le=1.0, description="share of the previous weights kept (1 = warm)")

    reference = "Ash & Adams, NeurIPS 2020, arXiv:1910.08475 (a variant); Kumar et al. 2023, arXiv:2308.11958"
    batchnorm = "running statistics kept from the previous round"

    def needs(self) -> frozenset[str]:
        return frozenset({"initial_state"})  # what init_round reads from ctx (checked before training)

    @torch.no_grad()
    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        alpha = self.params.alpha
        for name, param in model.named_parameters():
            theta0 = ctx.initial_state[name].to(device=param.device, dtype=param.dtype)
            param.mul_(alpha).add_(theta0, alpha=1.0 - alpha)
        return model


if __name__ == "__main__":
    from activews import BenchConfig, run_bench

    # Models this small train fastest on one CPU thread (and results do not change).
    torch.set_num_threads(1)
    # Tiny settings so that the script finishes in seconds; see docs/cli.md for real benchmarks.
    config = BenchConfig(
        strategies=["shrink_to_init"],
        params={"shrink_to_init": {"alpha": 0.5}},
        n_examples=1500,
        rounds=2,
        initial=200,
        query_size=200,
        seeds=2,
    )
    result = run_bench(config)
    print(f"{'strategy':<16}{'acc %':>8}{'penalty':>10}{'step ratio':>12}")
    for arm in result.summary:
        penalty = "ref" if arm["strategy"] == "random" else f"{arm['penalty'] * 100:+.2f}"
        accuracy = arm["final_accuracy"] * 100
        print(f"{arm['strategy']:<16}{accuracy:>8.1f}{penalty:>10}{arm['compute_ratio']:>12.2f}")
