"""Re-initialize a model of one's own at the start of every round: :class:`Reinitializer`.

For a training loop activews does not run (a user's own PyTorch loop, baal's ``ModelWrapper``, a
Lightning or skorch fit): call the re-initializer at the start of every round, before training, and
keep training as before::

    reinit = activews.Reinitializer("shrink_perturb", factory=MyNet, seed=0)
    for x, y in rounds:
        model, optimizer = reinit(model, optimizer, x=x, y=y)   # round 0: returned as given
        my_train(model, optimizer, x, y)

Each call is one round of the same round step the bench and
:class:`~activews.sklearn.WarmStartClassifier` run (:meth:`activews.engine.step.RoundStep.initialize`):
the strategy's needs are checked, ``init_round`` runs (from round 1 on), and every fresh draw is
checked to be a new module of the model's architecture. What the re-initializer adds is what a loop of
one's own lacks:

- the round-0 state, snapshotted at the first call (``reset_to_init``, ``l2_init``);
- seeded fresh draws from ``factory`` (``random``, ``shrink_perturb``, ``partial_reset``, ...): a class or
  zero-argument function building the model on the CPU; draw ``k`` is seeded from ``seed``, so the same
  seed gives the same weights;
- the round count and the strategy's generator;
- the optimizer rule: a strategy may return a *new* module (``random`` does), whose parameters the old
  optimizer does not hold: training it with the old optimizer silently changes nothing. The
  re-initializer returns an optimizer over the returned model's parameters: of the same class, with the
  same hyperparameters and parameter groups, and fresh state (``optimizer_state="reset"``, the paper's
  protocol and the bench's default) or the previous state carried over (``"keep"``);
- the strategy's training hooks for the loop: ``loss = loss + reinit.loss_term(model)`` and
  ``reinit.after_step(model, optimizer, x=xb, y=yb)`` (no-ops for strategies without hooks);
- ``state_dict()`` / ``load_state_dict()`` for checkpoints.

The re-initializer does not train and does not seed the training loop's own randomness (minibatch
order, dropout masks): seed those in the loop. Learning-rate schedulers bound to the old optimizer must
be rebuilt over the returned one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from activews.engine.setup import derive_seed
from activews.engine.step import RoundStep, model_device
from activews.errors import ActivewsError
from activews.models import draw_seeded
from activews.params import what_is
from activews.strategies import InitStrategy, RoundHooks, make_strategy
from activews.training import TrainConfig

__all__ = ["Reinitialized", "Reinitializer", "rebuild_optimizer"]

_MODEL, _INIT = 0, 1  # the purposes of the seeds derived from ``seed``


class Reinitialized(NamedTuple):
    """What a :class:`Reinitializer` call returns: the model to train this round and its optimizer."""

    model: nn.Module
    optimizer: torch.optim.Optimizer | None


def rebuild_optimizer(
    optimizer: torch.optim.Optimizer, old: nn.Module, new: nn.Module, *, keep_state: bool = False
) -> torch.optim.Optimizer:
    """An optimizer like ``optimizer`` (class, hyperparameters, parameter groups) over ``new``'s
    parameters, where ``optimizer`` holds ``old``'s. Parameters are matched by name; the state is fresh,
    or carried over with ``keep_state`` (by position, as ``Optimizer.load_state_dict`` does).

    Raises:
        ActivewsError: the optimizer holds a tensor that is not a parameter of ``old``, or its class
            cannot be rebuilt from its parameter groups and defaults.
    """
    names = {id(p): name for name, p in old.named_parameters()}
    params = dict(new.named_parameters())
    groups = []
    for group in optimizer.param_groups:
        members = []
        for p in group["params"]:
            name = names.get(id(p))
            if name is None:
                raise ActivewsError(
                    f"the optimizer ({type(optimizer).__name__}) holds a tensor of shape {list(p.shape)} that "
                    "is not a parameter of the model: build the optimizer over model.parameters()"
                )
            members.append(params[name])
        groups.append({k: v for k, v in group.items() if k != "params"} | {"params": members})
    cls = type(optimizer)
    try:
        rebuilt = cls(groups, **optimizer.defaults)
    except TypeError:
        try:
            rebuilt = cls(groups)
        except TypeError as exc:
            raise ActivewsError(
                f"cannot rebuild {cls.__name__} over the new model's parameters ({exc}); pass "
                "make_optimizer=lambda params: ... to the Reinitializer"
            ) from None
    if keep_state:
        rebuilt.load_state_dict(optimizer.state_dict())
    return rebuilt


class Reinitializer:
    """Re-initialize a model of one's own with a registered strategy at the start of every round.

    Args:
        strategy: a registered strategy name (``"shrink_perturb"``, ``"random"``, ``"warm"``, a
            plugin's, ...) or an :class:`~activews.strategies.InitStrategy` instance.
        params: the strategy's parameters (with a name only), validated as everywhere else.
        factory: builds a new model of the same architecture on the CPU when called with no argument
            (``MyNet``, ``lambda: MyNet(width=64)``); needed by strategies that draw fresh weights
            (``random``, ``shrink_perturb``, ``partial_reset``, ``redo``, ...) and to build round 0's
            model from ``seed`` (call with ``model=None``). Every draw is checked to be a new module
            with the model's parameter names, shapes and dtypes.
        seed: seeds round 0's draw (with ``model=None``), the fresh draws and the strategy's generator
            (``0 <= seed < 2**32``).
        optimizer_state: ``"reset"`` (default): each round's optimizer starts with fresh state, as the
            bench trains (the paper's protocol); ``"keep"``: the previous round's state is carried over.
        make_optimizer: ``make_optimizer(params) -> Optimizer``, called for every round's optimizer
            (then the optimizer passed in, if any, is ignored); for optimizers that cannot be rebuilt
            from their parameter groups.

    Example:
        >>> reinit = Reinitializer("shrink_perturb", factory=lambda: nn.Linear(4, 2), seed=0)  # doctest: +SKIP
        >>> model, optimizer = reinit(model, optimizer)  # at the start of every round  # doctest: +SKIP
    """

    def __init__(
        self,
        strategy: str | InitStrategy,
        params: Mapping[str, Any] | None = None,
        *,
        factory: Callable[[], nn.Module] | None = None,
        seed: int = 0,
        optimizer_state: Literal["reset", "keep"] = "reset",
        make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    ) -> None:
        if isinstance(strategy, InitStrategy):
            if params is not None:
                raise ActivewsError(
                    "pass params= only with a strategy name; an InitStrategy instance already has its params"
                )
            self.strategy = strategy
        elif isinstance(strategy, str):
            self.strategy = make_strategy(strategy, params)
        else:
            raise ActivewsError(
                f"strategy is {what_is(strategy)}: pass a registered name (see activews.list_strategies()) "
                "or an InitStrategy instance"
            )
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ActivewsError(f"seed={seed!r}: pass an int with 0 <= seed < 2**32")
        if optimizer_state not in ("reset", "keep"):
            raise ActivewsError(
                f"optimizer_state={optimizer_state!r}: use 'reset' (fresh state each round) or 'keep'"
            )
        if factory is not None and not callable(factory):
            raise ActivewsError(f"factory is {what_is(factory)}: pass a class or function building the model")
        if factory is not None and inspect.isclass(factory) and not issubclass(factory, nn.Module):
            raise ActivewsError(f"factory is the class {factory.__name__}, not an nn.Module subclass")
        if make_optimizer is not None and not callable(make_optimizer):
            raise ActivewsError(f"make_optimizer is {what_is(make_optimizer)}: pass params -> Optimizer")
        name = self.strategy.label()
        if "fresh_model" in self.strategy.needs() and factory is None:
            raise ActivewsError(
                f"{name} draws fresh weights: pass factory= (a class or function building a new model, "
                "e.g. factory=MyNet)"
            )
        self.factory = factory
        self.seed = seed
        self.optimizer_state = optimizer_state
        self.make_optimizer = make_optimizer
        self._step = RoundStep(self.strategy, TrainConfig(), check_model=True, name=name)
        self._generator = torch.Generator().manual_seed(derive_seed(seed, _INIT))
        self._initial_state: dict[str, torch.Tensor] | None = None
        self._hooks: RoundHooks | None = None
        self.round = -1
        """The round last started (-1 before the first call)."""
        self.init_seconds = 0.0
        """Wall time of the last call's ``init_round``."""

    def __repr__(self) -> str:
        return f"Reinitializer({self.strategy.label()}, seed={self.seed}, round={self.round})"

    # ------------------------------------------------------------------------------------------ rounds

    def first_model(self) -> nn.Module:
        """Round 0's model: the factory's draw seeded from ``seed`` (what ``reinit(None)`` starts from)."""
        if self.factory is None:
            raise ActivewsError("no factory to build the model from: pass factory= or pass the model")
        return draw_seeded(self.factory, derive_seed(self.seed, _MODEL))

    def _fresh(self, device: torch.device) -> Callable[[], nn.Module] | None:
        factory = self.factory
        if factory is None:
            return None
        generator = self._generator

        def draw() -> nn.Module:
            seed = int(torch.randint(0, 2**62, (1,), generator=generator))
            return draw_seeded(factory, seed).to(device)

        return draw

    def __call__(
        self,
        model: nn.Module | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        new: torch.Tensor | None = None,
    ) -> Reinitialized:
        """Start the next round: return the model to train and its optimizer.

        The first call is round 0: the model is returned as given (with ``model=None``, the factory's
        seeded draw) and its state is kept as the round-0 state; a strategy that acts at round 0
        (:meth:`~activews.strategies.InitStrategy.acts_at_round_zero`, e.g. ``shrink_perturb`` with
        ``first_round=True``) passes it through ``init_round`` first. Every later call passes last
        round's trained model through the strategy's ``init_round``.

        Args:
            model: last round's trained model (round 0: the untrained model, or None).
            optimizer: the optimizer the loop trains with; the returned optimizer holds the returned
                model's parameters (see the class docstring). None: none is returned, unless
                ``make_optimizer`` was given.
            x, y: this round's labeled data (strategies that use data: ``dash``,
                ``redo(at_round_start=True)``).
            new: boolean mask over ``x``, True for the examples new this round (``dash``).

        Raises:
            ActivewsError: a missing model, factory or datum the strategy needs, a model the strategy
                cannot work on, or a fresh draw of another architecture.
        """
        index = self.round + 1
        if model is None:
            if index > 0:
                raise ActivewsError(f"round {index}: pass the model trained in round {index - 1}")
            model = self.first_model()
        elif not isinstance(model, nn.Module):
            raise ActivewsError(f"model is {what_is(model)}: pass the torch.nn.Module to train")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise ActivewsError(f"optimizer is {what_is(optimizer)}: pass a torch.optim.Optimizer or None")
        device = model_device(model)
        x, y, new = (_tensor(value, label, device) for value, label in ((x, "x"), (y, "y"), (new, "new")))
        if index == 0:
            self._initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        new_model, seconds, ctx = self._step.initialize(
            model,
            round_index=index,
            fresh_model=self._fresh(device),
            initial_state=self._initial_state,
            init_generator=self._generator,
            device=device,
            x=x,
            y=y,
            new_mask=new,
        )
        if self.make_optimizer is not None:
            optimizer = self.make_optimizer(new_model.parameters())
            if not isinstance(optimizer, torch.optim.Optimizer):
                raise ActivewsError(
                    f"make_optimizer returned {what_is(optimizer)}, not a torch.optim.Optimizer"
                )
        elif optimizer is not None and (index > 0 or new_model is not model):
            if new_model is not model or self.optimizer_state == "reset":
                optimizer = rebuild_optimizer(
                    optimizer, model, new_model, keep_state=self.optimizer_state == "keep"
                )
        self.round, self.init_seconds = index, seconds
        self._hooks = RoundHooks(self.strategy, ctx)
        return Reinitialized(new_model, optimizer)

    # ------------------------------------------------------------------------------ training hooks

    @property
    def hooks(self) -> RoundHooks:
        """This round's training hooks (see :class:`~activews.strategies.RoundHooks`)."""
        if self._hooks is None:
            raise ActivewsError(
                "no round started yet: call reinit(model, optimizer) at the start of the round"
            )
        return self._hooks

    def loss_term(self, model: nn.Module) -> torch.Tensor | float:
        """The strategy's term to add to each minibatch's loss (``0.0`` for strategies without one)."""
        return self.hooks.loss_term(model)

    def after_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        *,
        epoch: int = 0,
    ) -> None:
        """Call after every ``optimizer.step()`` with the step's minibatch (a no-op for most strategies)."""
        self.hooks.after_step(model, optimizer, x, y, epoch=epoch)

    # ------------------------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint needs to continue the rounds identically (tensors, numbers and dicts only)."""
        return {
            "round": self.round,
            "initial_state": self._initial_state or {},
            "generator": self._generator.get_state(),
            "strategy": self.strategy.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s result (the strategy and seed must be the same)."""
        missing = sorted({"round", "initial_state", "generator", "strategy"} - set(state))
        if missing:
            raise ActivewsError(f"not a Reinitializer state: it lacks {', '.join(missing)}")
        self.round = int(state["round"])
        self._initial_state = dict(state["initial_state"]) or None
        self._generator.set_state(state["generator"])
        self.strategy.load_state_dict(state["strategy"])
        self._hooks = None


def _tensor(value: Any, name: str, device: torch.device) -> torch.Tensor | None:
    """``value`` (a tensor, NumPy array or nested list) as a tensor on ``device``; None stays None."""
    if value is None or isinstance(value, torch.Tensor):
        return value if value is None else value.to(device)
    try:
        return torch.as_tensor(value).to(device)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ActivewsError(
            f"{name} is {what_is(value)} ({exc}): pass a torch.Tensor or NumPy array"
        ) from None
