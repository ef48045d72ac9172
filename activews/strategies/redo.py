"""``redo``: recycle dormant units during training (ReDo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn

from activews.errors import ActivewsError
from activews.params import Tune
from activews.strategies.base import InitContext, InitStrategy, register_strategy
from activews.training import Step
from activews.units import UnitGroup, dormant_scores, hidden_units, recycle_units, unit_activity

ROUND_START_EXAMPLES = 2048
"""At most this many of the round's labeled examples (evenly spaced) are measured at a round's start."""


@register_strategy("redo")
class ReDo(InitStrategy):
    """ReDo: recycle the tau-dormant hidden units once per ``every`` optimizer steps.

    A unit's score is its mean |activation| over the step's minibatch (``step.x``, one extra forward
    pass in eval mode, no gradient), divided by the mean over its layer (:func:`activews.units.dormant_scores`).
    Units with score ``<= tau`` are recycled: their incoming weights are re-drawn from a fresh model
    (``ctx.fresh_model()``, seeded from the context generator) with bias 0, their outgoing weights are
    set to 0 (so the network's function barely moves: a dormant unit contributed almost nothing), and
    the optimizer state of exactly those entries is zeroed. Which units are recyclable comes from
    :func:`activews.units.hidden_units`: every hidden layer of a Sequential MLP/CNN, and in the ResNets
    the ``conv1 -> bn1 -> relu1 -> conv2`` units inside each block (units that feed a residual sum are
    left alone, as in the authors' ResNet setting).

    Steps are counted across rounds (round 0 included), in the strategy's state, so the schedule runs
    on over round boundaries and through a checkpoint resume. The start of a round is a warm start,
    unless ``at_round_start=True``: then units dormant on the round's labeled data (at most
    2,048 examples, evenly spaced) are recycled before training as well. That measures the old model on
    the new data, where dormancy is what hinders learning it; there is no optimizer to reset then (the
    trainer creates a new one every round, unless ``keep_optimizer_state`` carries the old state over, in
    which case the recycled units' carried moments are kept).

    Defaults: ``tau=0.025``, the paper's threshold for its default setting (Sokar et al., appendix
    Table 1; the authors used 0.1 for their high-replay-ratio runs: google/dopamine issue 226);
    ``every=1000`` steps, as a PyTorch reimplementation (timoklein/redo, ``redo_check_interval``) — the
    authors' code sets the period per experiment (its ``reset_period`` default is 200,000 gradient steps,
    far more than an active-learning run takes), and a round here takes a few hundred to a few thousand
    steps, so 1000 recycles about once a round.

    References:
        Sokar, Agarwal, Castro, Evci, "The Dormant Neuron Phenomenon in Deep Reinforcement Learning",
        ICML 2023 (arXiv 2302.12902); code: github.com/google/dopamine, ``dopamine/labs/redo``.
    """

    class Params(InitStrategy.Params):
        # Search space: tau log-uniform 0.01 to 0.3, around the paper's 0.025 and the authors' 0.1 for
        # high replay ratios; every log-int 10 to 1000 steps, from the default (about once a round here)
        # down to every 10 steps (every=100 with tau=0.1 did not help in the docs' sensitivity run).
        tau: Annotated[float, Tune(0.01, 0.3, log=True)] = Field(
            0.025, ge=0.0, le=1.0, description="dormancy threshold on the unit's normalized mean |activation|"
        )
        every: Annotated[int, Tune(10, 1000, log=True)] = Field(
            1000, ge=1, description="recycle every this many optimizer steps, counted across rounds"
        )
        at_round_start: bool = Field(
            False, description="also recycle units dormant on the round's labeled data before training"
        )

    reference = "Sokar et al., ICML 2023, arXiv:2302.12902"
    batchnorm = (
        "recycled units' entries in a BatchNorm between their layer and activation (ResNet blocks, cnn with "
        "batchnorm) reset to a fresh draw's (weight 1, bias 0, running mean 0, variance 1); others kept"
    )
    optimizer = (
        "new optimizer every round (unless keep_optimizer_state); at each recycling step the state of the "
        "recycled entries (Adam exp_avg/exp_avg_sq/max_exp_avg_sq, SGD momentum_buffer; incoming rows, "
        "biases, BatchNorm entries, outgoing columns) is zeroed; Adam's per-tensor step count is kept"
    )

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._steps = 0
        self._recycled = 0
        self._model: nn.Module | None = None
        self._groups: list[UnitGroup] = []

    def _units(self, model: nn.Module) -> list[UnitGroup]:
        if model is not self._model:
            self._groups = hidden_units(model, who=self.label())
            self._model = model
        return self._groups

    def check_model(self, model: nn.Module) -> None:
        if not hidden_units(model, who=self.label()):
            raise ActivewsError(
                f"{self.label()}: the model has no hidden units to recycle (no activation between two "
                f"weight layers, e.g. logreg); use a model with hidden layers"
            )

    @torch.no_grad()
    def _recycle(
        self, model: nn.Module, x: torch.Tensor, ctx: InitContext, optimizer: torch.optim.Optimizer | None
    ) -> int:
        groups = self._units(model)
        if not groups:
            return 0
        activity = unit_activity(model, groups, x)
        selection = {}
        for group in groups:
            dormant = (dormant_scores(activity[group.name]) <= self.params.tau).nonzero().flatten()
            if dormant.numel():
                selection[group.name] = dormant
        n = recycle_units(groups, selection, ctx.fresh_model, optimizer, who=self.label())
        self._recycled += n
        return n

    def needs(self) -> frozenset[str]:
        return frozenset({"fresh_model", "data"} if self.params.at_round_start else {"fresh_model"})

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        if not self.params.at_round_start:
            return model
        if ctx.x_labeled is None:
            raise ActivewsError(
                f"{self.label()}: at_round_start=True needs the round's labeled data in the context "
                f"(x_labeled); pass it, or set at_round_start=False"
            )
        x = ctx.x_labeled
        if len(x) > ROUND_START_EXAMPLES:
            x = x[torch.linspace(0, len(x) - 1, ROUND_START_EXAMPLES).long().to(x.device)]
        if len(x):
            self._recycle(model, x, ctx, None)
        return model

    def after_step(self, model: nn.Module, step: Step, ctx: InitContext) -> None:
        self._steps += 1
        if self._steps % self.params.every == 0:
            self._recycle(model, step.x, ctx, step.optimizer)

    @property
    def steps(self) -> int:
        """Optimizer steps seen so far, over all rounds."""
        return self._steps

    @property
    def recycled(self) -> int:
        """Units recycled so far, over all rounds."""
        return self._recycled

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self._steps, "recycled": self._recycled}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) != {"steps", "recycled"}:
            raise ActivewsError(
                f"{self.label()}: checkpoint state has keys {sorted(state)}, expected ['recycled', 'steps']"
            )
        self._steps = int(state["steps"])
        self._recycled = int(state["recycled"])
