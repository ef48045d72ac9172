"""One round: initialize the model with a strategy, then train it to the criterion with the strategy's hooks.

The same step runs every round of an arm (:func:`activews.engine.arm.run_arm`), every fit of
:class:`activews.sklearn.WarmStartClassifier`, and a round of a user's own loop:

1. build the round's :class:`~activews.strategies.InitContext` and, where asked, check that the strategy
   can work on the model (``strategy.check_model``);
2. the diagnostics see the model the strategy starts from (outside the clock);
3. from round 1 on, the strategy's ``init_round`` (round 0 trains the model it is given): timed as
   ``init_seconds``, its result checked to be an ``nn.Module``, and laid out channels-last when the
   training settings say so;
4. the diagnostics see the model this round trains (and may hand the trainer a probe);
5. the optimizer: a new one every round (the paper's protocol), or the previous round's state carried
   over with ``keep_optimizer_state``;
6. :func:`~activews.training.train_to_criterion` with the strategy's training hooks
   (:func:`~activews.strategies.training_hooks`), in every round, round 0 included;
7. the diagnostics measure the trained model and return their record fields.

Example:
    >>> step = RoundStep(make_strategy("shrink_perturb"), TrainConfig())  # doctest: +SKIP
    >>> for r, (x, y, new) in enumerate(rounds):  # doctest: +SKIP
    ...     result = step.run(model, x, y, round_index=r, new_mask=new, fresh_model=draw,
    ...                       initial_state=initial, init_generator=g_init, train_generator=g_train)
    ...     model = result.model
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from activews.diagnostics import Diagnostic, Probe
from activews.errors import ActivewsError
from activews.strategies import InitContext, InitStrategy, training_hooks
from activews.training import TrainConfig, TrainStats, make_optimizer, train_to_criterion

__all__ = ["RoundResult", "RoundStep", "optimizer_for"]


@dataclass(frozen=True)
class RoundResult:
    """What one round step produced.

    Attributes:
        model: the trained model (the strategy's returned module; in round 0, the model given).
        optimizer: the optimizer it was trained with (pass it to the next round's step).
        stats: the training's compute and how it ended.
        init_seconds: wall time of the strategy's ``init_round`` (and the channels-last layout of its
            result); 0.0 in round 0, where no strategy runs. Diagnostics are outside this clock.
        ctx: the round's context (the one the strategy and its training hooks saw).
        fields: the diagnostics' record fields, in the diagnostics' order (empty without diagnostics).
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    stats: TrainStats
    init_seconds: float
    ctx: InitContext
    fields: dict[str, Any] = field(default_factory=dict)


def optimizer_for(
    model: nn.Module, previous: torch.optim.Optimizer | None, config: TrainConfig
) -> torch.optim.Optimizer:
    """A new optimizer each round (the paper's protocol) unless ``keep_optimizer_state`` is set, in
    which case the new optimizer takes ``previous``'s state (when there is one)."""
    fresh = make_optimizer(model, config)
    if config.keep_optimizer_state and previous is not None:
        # Parameters may be new tensors (e.g. a fresh model); the state maps by position.
        fresh.load_state_dict(previous.state_dict())
    return fresh


def _one_probe(probes: Sequence[Probe]) -> Probe | None:
    if not probes:
        return None
    if len(probes) == 1:
        return probes[0]

    def every(model: nn.Module, idx: torch.Tensor) -> None:
        for probe in probes:
            probe(model, idx)

    return every


@dataclass(frozen=True)
class RoundStep:
    """How every round of one sequence is run (the settings that stay the same from round to round).

    Args:
        strategy: the initialization strategy (kept across rounds: strategies may carry state).
        train: how each round is trained (``channels_last`` also lays out ``init_round``'s result;
            ``keep_optimizer_state`` carries the optimizer's state from round to round).
        diagnostics: per-round measurements (:func:`activews.diagnostics.make_diagnostics`), called in
            this order; their fields land in :attr:`RoundResult.fields` in the same order.
        first_round_epochs: train round 0 for exactly this many epochs instead of to the criterion
            (``BenchConfig.first_round_epochs``); ``None``: every round to the criterion.
        check_model: call ``strategy.check_model(model)`` at the start of every round, before anything
            else (the estimator does; ``run_arm`` does not, since the bench checks every arm's model
            once before any training).
        name: how errors name the strategy (default: its registry name, else its class name).
    """

    strategy: InitStrategy
    train: TrainConfig
    diagnostics: Sequence[Diagnostic] = ()
    first_round_epochs: int | None = None
    check_model: bool = False
    name: str | None = None

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        round_index: int,
        fresh_model: Callable[[], nn.Module],
        initial_state: Mapping[str, torch.Tensor],
        init_generator: torch.Generator,
        train_generator: torch.Generator,
        device: torch.device | None = None,
        new_mask: torch.Tensor | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> RoundResult:
        """Run round ``round_index``: initialize ``model`` with the strategy (not in round 0), train it.

        Args:
            model: round 0: the model to train (the initial draw); later rounds: the previous round's
                trained model, which the strategy may change in place (pass a copy to keep it).
            x, y: this round's labeled data, on the model's device.
            round_index: 0 for the first round (no ``init_round``), then 1, 2, ...
            fresh_model: returns a new draw of the model on its device (``ctx.fresh_model``).
            initial_state: the state dict of the sequence's round-0 model (``ctx.initial_state``).
            init_generator: the strategy's generator (``ctx.generator``).
            train_generator: the minibatch order (and dropout masks) of the training.
            device: ``ctx.device`` (default: ``x``'s device).
            new_mask: boolean mask over ``x``, True for the examples new this round.
            optimizer: the previous round's optimizer (used only with ``keep_optimizer_state``).

        Raises:
            ActivewsError: ``init_round`` returned something else than an ``nn.Module``, or
                ``check_model`` refused the model.
        """
        ctx = InitContext(
            round_index,
            fresh_model,
            initial_state,
            init_generator,
            x.device if device is None else device,
            x,
            y,
            new_mask,
        )
        if self.check_model:
            self.strategy.check_model(model)
        for diagnostic in self.diagnostics:
            diagnostic.before_init(model, ctx)
        init_seconds = 0.0
        if round_index > 0:
            t_init = time.perf_counter()
            model = self.strategy.init_round(model, ctx)
            if not isinstance(model, nn.Module):
                name = self.name or self.strategy.name or type(self.strategy).__name__
                raise ActivewsError(
                    f"strategy {name!r}: init_round returned {type(model).__name__}, expected nn.Module"
                )
            if self.train.channels_last:
                model = model.to(memory_format=torch.channels_last)
            init_seconds = time.perf_counter() - t_init
        probes = [p for d in self.diagnostics if (p := d.before_training(model, ctx)) is not None]
        optimizer = optimizer_for(model, optimizer, self.train)
        stats, optimizer = train_to_criterion(
            model,
            x,
            y,
            self.train,
            train_generator,
            optimizer=optimizer,
            epochs=self.first_round_epochs if round_index == 0 else None,
            probe=_one_probe(probes),
            **training_hooks(self.strategy, ctx),
        )
        fields: dict[str, Any] = {}
        for diagnostic in self.diagnostics:
            fields |= diagnostic.after_training(model, ctx)
        return RoundResult(model, optimizer, stats, init_seconds, ctx, fields)
