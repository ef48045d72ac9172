"""One round: initialize the model with a strategy, then train it to the criterion with the strategy's hooks.

The same step runs every round of an arm (:func:`activews.engine.arm.run_arm`), every fit of
:class:`activews.sklearn.WarmStartClassifier`, and, through :meth:`RoundStep.initialize` (steps 1-3),
every call of :class:`activews.reinit.Reinitializer` in a user's own loop:

1. build the round's :class:`~activews.strategies.InitContext`, check that it holds what the strategy
   needs (:meth:`~activews.strategies.InitStrategy.needs`) and, where asked, that the strategy can work on
   the model (``strategy.check_model``); ``fresh_model`` is wrapped so that every draw is checked to be a
   new module with the model's parameter and buffer names, shapes and dtypes;
2. the diagnostics see the model the strategy starts from (outside the clock);
3. from round 1 on (round 0 too where ``acts_at_round_zero()``), the strategy's ``init_round``: timed as
   ``init_seconds``, its result checked to be an ``nn.Module``, and laid out channels-last when the
   training settings say so;
4. the diagnostics see the model this round trains (and may hand the trainer a probe);
5. the optimizer: a new one every round (the paper's protocol), or the previous round's state carried
   over with ``keep_optimizer_state``;
6. :func:`~activews.training.train_to_criterion` with the strategy's training hooks
   (:func:`~activews.strategies.training_hooks`), in every round, round 0 included; or, with
   ``train_fn``, the user's own training function, handed the hooks as a :class:`TrainHooks`;
7. the diagnostics measure the trained model and return their record fields.

Example:
    >>> step = RoundStep(make_strategy("shrink_perturb"), TrainConfig())  # doctest: +SKIP
    >>> for r, (x, y, new) in enumerate(rounds):  # doctest: +SKIP
    ...     result = step.run(model, x, y, round_index=r, new_mask=new, fresh_model=draw,
    ...                       initial_state=initial, init_generator=g_init, train_generator=g_train)
    ...     model = result.model
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import torch
from torch import nn

from activews.diagnostics import Diagnostic, Probe
from activews.errors import ActivewsError
from activews.models import same_architecture
from activews.strategies import NEEDS, InitContext, InitStrategy, RoundHooks, training_hooks
from activews.training import (
    StopReason,
    TrainConfig,
    TrainStats,
    global_rng_from,
    make_optimizer,
    train_to_criterion,
)

__all__ = [
    "RoundResult",
    "RoundStep",
    "TrainFn",
    "TrainHooks",
    "as_train_stats",
    "checked_factory",
    "model_device",
    "optimizer_for",
]


class TrainHooks(RoundHooks):
    """What a training function of one's own receives each round (``RoundStep(train_fn=...)``,
    ``run_bench(config, train_fn=...)``), besides the model and the round's labeled data.

    A training function has the signature ``train_fn(model, x, y, hooks) -> TrainStats | Mapping`` and
    should: train ``model`` in place on ``(x, y)`` with ``hooks.optimizer``; add
    ``hooks.loss_term(model)`` to each minibatch's loss; call ``hooks.after_step(model, optimizer, x=xb,
    y=yb)`` after each optimizer step; draw its minibatch order from ``hooks.generator``; and return its
    compute: a :class:`~activews.training.TrainStats` or a mapping with ``"steps"`` (required) and
    optionally ``"epochs"``, ``"seconds"`` (default: the call's wall time), ``"train_accuracy"``,
    ``"train_loss"`` and ``"stop_reason"`` (default ``"train_fn"``). torch's global RNG (dropout masks,
    ``torch.randperm`` without a generator) is seeded from ``hooks.generator`` for the call, so the
    function's results are reproducible from the run's seed.

    Attributes:
        round_index: the round being trained (0, 1, ...).
        optimizer: the round's optimizer: a new one each round (the paper's protocol) unless
            ``keep_optimizer_state`` is set; a function that replaces it sets ``hooks.optimizer``.
        generator: the round's training generator (minibatch order).
        config: the run's :class:`~activews.training.TrainConfig` (learning rate, batch size,
            stopping rule), for functions that want to honour it.
        device: the device of the model and data.
        epochs: ``None``, or the exact number of epochs to train (round 0 with ``first_round_epochs``).
        steps: optimizer steps reported through :meth:`after_step` so far.
    """

    def __init__(
        self,
        strategy: InitStrategy,
        ctx: InitContext,
        *,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        config: TrainConfig,
        epochs: int | None = None,
    ) -> None:
        super().__init__(strategy, ctx)
        self.round_index = ctx.round_index
        self.optimizer = optimizer
        self.generator = generator
        self.config = config
        self.device = ctx.device
        self.epochs = epochs


TrainFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, TrainHooks], Any]
"""``train_fn(model, x, y, hooks) -> TrainStats | Mapping``: see :class:`TrainHooks`."""

_STOP_REASONS: tuple[str, ...] = get_args(StopReason)


def as_train_stats(result: Any, seconds: float, who: str = "train_fn") -> TrainStats:
    """A training function's return value as :class:`TrainStats` (``seconds``: the call's wall time,
    used where the result gives none).

    Raises:
        ActivewsError: the result is neither a ``TrainStats`` nor a mapping with a non-negative integer
            ``"steps"``, or holds an unknown key or a bad value.
    """
    if isinstance(result, TrainStats):
        return result
    if not isinstance(result, Mapping):
        raise ActivewsError(
            f"{who} returned {type(result).__name__}; return a TrainStats or a dict with at least "
            "'steps' (optimizer steps taken), e.g. {'steps': n}"
        )
    known = {"steps", "epochs", "seconds", "train_accuracy", "train_loss", "stop_reason"}
    unknown = sorted(set(result) - known)
    if unknown:
        raise ActivewsError(f"{who} returned unknown keys {unknown}; the keys are {', '.join(sorted(known))}")
    steps = result.get("steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ActivewsError(
            f"{who} returned steps={steps!r}; return the number of optimizer steps taken, an int >= 0"
        )
    epochs = result.get("epochs", 0)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
        raise ActivewsError(f"{who} returned epochs={epochs!r}; return an int >= 0 (or leave it out)")
    took = result.get("seconds", seconds)
    if not isinstance(took, (int, float)) or isinstance(took, bool) or not math.isfinite(took) or took < 0:
        raise ActivewsError(f"{who} returned seconds={took!r}; return a finite number >= 0 (or leave it out)")
    numbers = {}
    for key in ("train_accuracy", "train_loss"):
        value = result.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ActivewsError(f"{who} returned {key}={value!r}; return a number (or leave it out)")
        numbers[key] = None if value is None else float(value)
    reason = result.get("stop_reason", "train_fn")
    if reason not in _STOP_REASONS:
        raise ActivewsError(
            f"{who} returned stop_reason={reason!r}; use one of {', '.join(_STOP_REASONS)} (or leave it out)"
        )
    return TrainStats(steps, epochs, float(took), numbers["train_accuracy"], numbers["train_loss"], reason)


def checked_factory(
    fresh_model: Callable[[], nn.Module], reference: nn.Module, who: str = "fresh_model"
) -> Callable[[], nn.Module]:
    """``fresh_model`` with every draw checked: an ``nn.Module``, not ``reference`` itself (a factory
    returning the model it was given makes ``random`` act as ``warm``), nor the previous draw, and with
    ``reference``'s parameter and buffer names, shapes and dtypes. Each failure is a one-line
    :class:`ActivewsError`."""
    previous: list[weakref.ref[nn.Module]] = []

    def draw() -> nn.Module:
        model = fresh_model()
        if not isinstance(model, nn.Module):
            raise ActivewsError(
                f"{who} returned {type(model).__name__}; it must return a new torch.nn.Module each call"
            )
        if model is reference or (previous and model is previous[0]()):
            raise ActivewsError(
                f"{who} returned the same module object twice; it must build a new one each call "
                "(factory=MyNet or lambda: MyNet(), not lambda: net)"
            )
        problem = same_architecture(model, reference)
        if problem is not None:
            raise ActivewsError(
                f"{who} built another architecture than the model's: the draw {problem}; "
                "it must build the same model as round 0"
            )
        previous[:] = [weakref.ref(model)]
        return model

    return draw


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
        train_fn: train with this function instead of :func:`~activews.training.train_to_criterion`
            (see :class:`TrainHooks` for its contract). Diagnostics that probe training steps
            (``grad_norms``) need activews' own training.
    """

    strategy: InitStrategy
    train: TrainConfig
    diagnostics: Sequence[Diagnostic] = ()
    first_round_epochs: int | None = None
    check_model: bool = False
    name: str | None = None
    train_fn: TrainFn | None = None

    @property
    def who(self) -> str:
        """How errors name the strategy."""
        return self.name or self.strategy.name or type(self.strategy).__name__

    def initialize(
        self,
        model: nn.Module,
        *,
        round_index: int,
        fresh_model: Callable[[], nn.Module] | None = None,
        initial_state: Mapping[str, torch.Tensor] | None = None,
        init_generator: torch.Generator | None = None,
        device: torch.device | None = None,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        new_mask: torch.Tensor | None = None,
    ) -> tuple[nn.Module, float, InitContext]:
        """Steps 1-3 of the round (no training): the model to train, ``init_round``'s seconds, the context.

        Arguments as in :meth:`run`; those a strategy does not need (:meth:`InitStrategy.needs`) may be
        left out. ``device`` defaults to ``x``'s, else the model's.

        Raises:
            ActivewsError: the context lacks something the strategy needs, ``check_model`` refused the
                model, ``init_round`` returned something else than an ``nn.Module``, or a
                ``fresh_model`` draw is not a new module of the model's architecture.
        """
        if device is None:
            device = x.device if x is not None else model_device(model)
        ctx = InitContext(
            round_index,
            None if fresh_model is None else checked_factory(fresh_model, model, "fresh_model"),
            initial_state,
            init_generator,
            device,
            x,
            y,
            new_mask,
        )
        missing = [need for need in sorted(self.strategy.needs()) if not ctx.has(need)]
        if missing:
            raise ActivewsError(
                f"strategy {self.who!r} needs {' and '.join(missing)}: {'; '.join(NEEDS[m] for m in missing)}"
            )
        if self.check_model:
            self.strategy.check_model(model)
        for diagnostic in self.diagnostics:
            diagnostic.before_init(model, ctx)
        init_seconds = 0.0
        if round_index > 0 or self.strategy.acts_at_round_zero():
            t_init = time.perf_counter()
            model = self.strategy.init_round(model, ctx)
            if not isinstance(model, nn.Module):
                raise ActivewsError(
                    f"strategy {self.who!r}: init_round returned {type(model).__name__}, expected nn.Module"
                )
            if self.train.channels_last:
                model = model.to(memory_format=torch.channels_last)
            init_seconds = time.perf_counter() - t_init
        return model, init_seconds, ctx

    def run(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        round_index: int,
        fresh_model: Callable[[], nn.Module] | None = None,
        initial_state: Mapping[str, torch.Tensor] | None = None,
        init_generator: torch.Generator | None = None,
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
            round_index: 0 for the first round (no ``init_round`` unless the strategy
                ``acts_at_round_zero()``), then 1, 2, ...
            fresh_model: returns a new draw of the model on its device (``ctx.fresh_model``).
            initial_state: the state dict of the sequence's round-0 model (``ctx.initial_state``).
            init_generator: the strategy's generator (``ctx.generator``).
            train_generator: the minibatch order (and dropout masks) of the training.
            device: ``ctx.device`` (default: ``x``'s device).
            new_mask: boolean mask over ``x``, True for the examples new this round.
            optimizer: the previous round's optimizer (used only with ``keep_optimizer_state``).

        ``fresh_model``, ``initial_state`` and ``init_generator`` may be left out where the strategy does
        not need them (:meth:`InitStrategy.needs`).

        Raises:
            ActivewsError: see :meth:`initialize`; or a ``train_fn`` returned something unusable.
        """
        model, init_seconds, ctx = self.initialize(
            model,
            round_index=round_index,
            fresh_model=fresh_model,
            initial_state=initial_state,
            init_generator=init_generator,
            device=device,
            x=x,
            y=y,
            new_mask=new_mask,
        )
        probes = [p for d in self.diagnostics if (p := d.before_training(model, ctx)) is not None]
        optimizer = optimizer_for(model, optimizer, self.train)
        epochs = self.first_round_epochs if round_index == 0 else None
        if self.train_fn is None:
            stats, optimizer = train_to_criterion(
                model,
                x,
                y,
                self.train,
                train_generator,
                optimizer=optimizer,
                epochs=epochs,
                probe=_one_probe(probes),
                **training_hooks(self.strategy, ctx),
            )
        else:
            if probes:
                raise ActivewsError(
                    "diagnostics that watch training steps (grad_norms) need activews' own training; "
                    "leave them out with a train_fn"
                )
            hooks = TrainHooks(
                self.strategy,
                ctx,
                optimizer=optimizer,
                generator=train_generator,
                config=self.train,
                epochs=epochs,
            )
            who = f"train_fn {getattr(self.train_fn, '__qualname__', self.train_fn)!r}"
            t_train = time.perf_counter()
            with global_rng_from(train_generator, ctx.device):
                result = self.train_fn(model, x, y, hooks)
            stats = as_train_stats(result, time.perf_counter() - t_train, who)
            optimizer = hooks.optimizer
        fields: dict[str, Any] = {}
        for diagnostic in self.diagnostics:
            fields |= diagnostic.after_training(model, ctx)
        return RoundResult(model, optimizer, stats, init_seconds, ctx, fields)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (else buffer); the CPU for a model without tensors."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")
