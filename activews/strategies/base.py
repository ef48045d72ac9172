"""The strategy seam: how a model is initialized at the start of each round.

A strategy receives the previous round's trained model and an :class:`InitContext`, and returns the
model to train in this round. Everything it may use comes through the context: no globals, no hidden
device choice, randomness only from ``ctx.generator``.

Methods that act during training rather than (or as well as) at the round's start override one or both
optional hooks: :meth:`InitStrategy.loss_term` (a term added to every minibatch's loss) and
:meth:`InitStrategy.after_step` (called after every optimizer step). They run in every round, round 0
included, with that round's context.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import nn

from activews.errors import ActivewsError
from activews.params import Configurable, what_is
from activews.registry import Registry
from activews.training import Step

__all__ = [
    "NEEDS",
    "InitContext",
    "InitStrategy",
    "STRATEGIES",
    "register_strategy",
    "get_strategy",
    "list_strategies",
    "make_strategy",
    "training_hooks",
    "RoundHooks",
]


NEEDS: dict[str, str] = {
    "fresh_model": "pass fresh_model= (a function returning a new draw of the model; "
    "activews.Reinitializer(..., factory=MyNet) builds it)",
    "initial_state": "pass initial_state= (the state dict of the round-0 model, copied before round 0 trains: "
    "{k: v.clone() for k, v in model.state_dict().items()})",
    "generator": "pass generator=torch.Generator().manual_seed(seed)",
    "data": "pass x_labeled= and y_labeled= (this round's labeled data)",
}
"""What a strategy may need from its :class:`InitContext`, and how a caller supplies each."""


class InitContext:
    """What a strategy may use to initialize a round (and, in its training hooks, to train it).

    Only ``round_index`` is required. A strategy says what else it needs (:meth:`InitStrategy.needs`);
    the round step checks that before any training, and reading ``fresh_model``, ``initial_state`` or
    ``generator`` where the caller gave none raises a one-line :class:`ActivewsError` that names the fix
    (an empty ``initial_state`` counts as none).

    Attributes:
        round_index: the round about to be trained (1 for the first re-initialization; round 0 starts
            from the arm's initial draw, so ``init_round`` sees 0 only for a strategy whose
            :meth:`InitStrategy.acts_at_round_zero` is True; the training hooks see every round).
        fresh_model: returns a new model drawn from the model's own initializers, on the same device,
            seeded from ``generator`` (so two calls give two different draws).
        initial_state: the state dict of the arm's round-0 model (for ``reset_to_init``-like methods).
        generator: a seeded CPU ``torch.Generator``; the only randomness a strategy may use.
        device: the device the model lives on.
        x_labeled, y_labeled: this round's labeled training data (optional; strategies that need data).
        new_mask: boolean mask over the labeled data, True for examples that are new this round.
    """

    def __init__(
        self,
        round_index: int,
        fresh_model: Callable[[], nn.Module] | None = None,
        initial_state: Mapping[str, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        x_labeled: torch.Tensor | None = None,
        y_labeled: torch.Tensor | None = None,
        new_mask: torch.Tensor | None = None,
    ) -> None:
        self.round_index = round_index
        self._fresh_model = fresh_model
        self._initial_state = initial_state
        self._generator = generator
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.x_labeled = x_labeled
        self.y_labeled = y_labeled
        self.new_mask = new_mask

    def has(self, need: str) -> bool:
        """Whether the context holds ``need`` (one of :data:`NEEDS`)."""
        if need == "fresh_model":
            return self._fresh_model is not None
        if need == "initial_state":
            return bool(self._initial_state)
        if need == "generator":
            return self._generator is not None
        if need == "data":
            return self.x_labeled is not None and self.y_labeled is not None
        raise ActivewsError(f"unknown context need {need!r}; the needs are {', '.join(NEEDS)}")

    def _get(self, need: str, value: Any) -> Any:
        if not self.has(need):
            raise ActivewsError(
                f"this round's InitContext has no {need}, which the strategy uses: {NEEDS[need]}"
            )
        return value

    @property
    def fresh_model(self) -> Callable[[], nn.Module]:
        return self._get("fresh_model", self._fresh_model)

    @fresh_model.setter
    def fresh_model(self, value: Callable[[], nn.Module] | None) -> None:
        self._fresh_model = value

    @property
    def initial_state(self) -> Mapping[str, torch.Tensor]:
        return self._get("initial_state", self._initial_state)

    @initial_state.setter
    def initial_state(self, value: Mapping[str, torch.Tensor] | None) -> None:
        self._initial_state = value

    @property
    def generator(self) -> torch.Generator:
        return self._get("generator", self._generator)

    @generator.setter
    def generator(self, value: torch.Generator | None) -> None:
        self._generator = value

    def replace(self, **changes: Any) -> InitContext:
        """A copy with ``changes`` (keyword arguments of the constructor) applied."""
        values = {
            "round_index": self.round_index,
            "fresh_model": self._fresh_model,
            "initial_state": self._initial_state,
            "generator": self._generator,
            "device": self.device,
            "x_labeled": self.x_labeled,
            "y_labeled": self.y_labeled,
            "new_mask": self.new_mask,
        }
        unknown = sorted(set(changes) - set(values))
        if unknown:
            raise ActivewsError(
                f"InitContext has no field {unknown[0]!r}; the fields are {', '.join(values)}"
            )
        return InitContext(**(values | changes))

    def __repr__(self) -> str:
        given = [need for need in NEEDS if self.has(need)]
        return f"InitContext(round_index={self.round_index}, device={self.device}, holds {given})"


class InitStrategy(Configurable):
    """Base class of every initialization strategy.

    Subclasses set a nested ``Params`` (a frozen pydantic model derived from ``InitStrategy.Params``)
    and implement :meth:`init_round`. Register them with :func:`register_strategy` to make them
    available by name in Python, configs and the CLI. ``label()``, ``parse_params()`` (both also on the
    class) and ``describe()`` come from :class:`activews.params.Configurable`.

    Class attributes:
        name: the registry name (set by :func:`register_strategy`).
        reference: the paper the method comes from ("" for the plain baselines).
        batchnorm: what the strategy does to BatchNorm running statistics.
        optimizer: what happens to optimizer state (the trainer re-creates it every round by default).
    """

    class Params(Configurable.Params):
        """Parameters of the strategy; validated, frozen, unknown keys rejected."""

    kind: ClassVar[str] = "strategy"
    reference: ClassVar[str] = ""
    batchnorm: ClassVar[str] = ""
    optimizer: ClassVar[str] = "re-created every round by the trainer unless keep_optimizer_state is set"

    def __init__(self, params: BaseModel | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if params is not None and kwargs:
            raise ActivewsError(
                f"{self.label()}: pass either a Params object or keyword parameters, not both"
            )
        self.params = self.coerce_params(kwargs if params is None else params)

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        """Return the model to train in round ``ctx.round_index``, given last round's trained ``model``.

        Implementations may modify ``model`` in place and return it, or return another module with the
        same architecture. They must keep parameter shapes, dtypes and the device.
        """
        raise NotImplementedError

    def loss_term(self, model: nn.Module, ctx: InitContext) -> torch.Tensor | None:
        """Optional hook: a scalar added to every minibatch's cross-entropy during training.

        Called once per optimizer step, in every round (round 0 included), with the round's context;
        return ``None`` to add nothing. The recorded ``train_loss`` stays the plain cross-entropy.
        The default adds nothing and costs nothing (the trainer skips hooks a strategy leaves alone).
        """
        return None

    def after_step(self, model: nn.Module, step: Step, ctx: InitContext) -> None:
        """Optional hook: called after every optimizer step, in every round (round 0 included).

        May change weights in place (under ``torch.no_grad()``); a method that re-initializes weights
        should also reset their state in ``step.optimizer``. Randomness only from ``ctx.generator``.
        Its time counts as training time (it is part of the method's compute).
        """

    def hooks(self) -> tuple[bool, bool]:
        """Whether this strategy uses :meth:`loss_term` and :meth:`after_step` (the trainer calls only those).

        By default: whether its class overrides them. A strategy that forwards the hooks to others
        (``scheduled``) overrides this to say which ones its sub-strategies actually use.
        """
        cls = type(self)
        return (cls.loss_term is not InitStrategy.loss_term, cls.after_step is not InitStrategy.after_step)

    def acts_at_round_zero(self) -> bool:
        """Whether :meth:`init_round` also runs before round 0's training (then with ``ctx.round_index == 0``).

        By default no: round 0 trains the arm's initial draw as it is, so every arm of a seed starts from
        the same round-0 model and the arms differ only from round 1 on (a paired comparison). A strategy
        whose method also transforms the very first model returns True (``shrink_perturb`` with
        ``first_round=True``, as in Ash & Adams' ``run.py``); its ``init_round`` then receives the untrained
        initial draw, and ``ctx.initial_state`` is that draw's state, before ``init_round``.
        """
        return False

    def needs(self) -> frozenset[str]:
        """What this strategy reads from its :class:`InitContext` besides the round index and device: a
        subset of :data:`NEEDS` (``fresh_model``, ``initial_state``, ``generator``, ``data``).

        The round step checks them before any training, so a caller that leaves one out gets a one-line
        error naming it instead of a failure mid-run, and callers need not build what a strategy never
        reads (``warm`` needs nothing). The default says nothing; a strategy that reads something
        undeclared still gets a one-line error when it reads it. ``activews.testing.check_strategy``
        checks the declaration: ``init_round`` and the hooks must work with only what is declared.
        """
        return frozenset()

    def check_model(self, model: nn.Module) -> None:
        """Raise :class:`ActivewsError` if this strategy cannot work on ``model`` (called before any training)."""

    def state_dict(self) -> dict[str, Any]:
        """State the strategy carries across rounds (saved in checkpoints); stateless strategies return {}.

        Values must be tensors, numbers, strings, lists or dicts of those (loadable with
        ``torch.load(weights_only=True)``).
        """
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (on resume)."""
        if state:
            raise ActivewsError(f"{self.label()} is stateless but its checkpoint holds state {sorted(state)}")


class RoundHooks:
    """A strategy's training hooks for one round, for a training loop of one's own.

    ``loss_term(model)`` is what to add to each minibatch's loss (``0.0`` when the strategy adds
    nothing, so ``loss = loss + hooks.loss_term(model)`` always works); ``after_step(model, optimizer,
    x=xb, y=yb)`` is what to call after each ``optimizer.step()`` (it counts the steps). Both cost
    nothing for strategies without hooks (``warm``, ``random``, ``shrink_perturb``, ...).

    Args:
        strategy: the round's strategy.
        ctx: the round's context (the one ``init_round`` saw).
    """

    def __init__(self, strategy: InitStrategy, ctx: InitContext) -> None:
        self.strategy = strategy
        self.ctx = ctx
        self.uses_loss_term, self.uses_after_step = strategy.hooks()
        self.steps = 0
        """Optimizer steps reported through :meth:`after_step` in this round."""

    def loss_term(self, model: nn.Module) -> torch.Tensor | float:
        """The strategy's term to add to this minibatch's loss (``0.0`` if it adds none)."""
        if not self.uses_loss_term:
            return 0.0
        term = self.strategy.loss_term(model, self.ctx)
        return 0.0 if term is None else term

    def after_step(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        x: torch.Tensor | None = None,
        y: torch.Tensor | None = None,
        *,
        epoch: int = 0,
    ) -> None:
        """Call after every ``optimizer.step()``, with the step's minibatch ``(x, y)``.

        Raises:
            ActivewsError: the strategy acts after steps (``redo``, ``continual_backprop``) and no
                minibatch was given.
        """
        self.steps += 1
        if not self.uses_after_step:
            return
        if x is None or y is None:
            raise ActivewsError(
                f"{self.strategy.label()} acts after every optimizer step on the step's minibatch: "
                "call after_step(model, optimizer, x=xb, y=yb)"
            )
        self.strategy.after_step(model, Step(self.steps, epoch, x, y, optimizer), self.ctx)


def training_hooks(strategy: InitStrategy, ctx: InitContext) -> dict[str, Callable[..., Any]]:
    """Keyword arguments for :func:`activews.training.train_to_criterion`: the hooks ``strategy``
    overrides, bound to this round's ``ctx``.

    Example:
        >>> stats, _ = train_to_criterion(model, x, y, config, gen, **training_hooks(strategy, ctx))  # doctest: +SKIP
    """
    has_loss, has_step = strategy.hooks()
    hooks: dict[str, Callable[..., Any]] = {}
    if has_loss:
        hooks["loss_term"] = lambda model: strategy.loss_term(model, ctx)
    if has_step:
        hooks["after_step"] = lambda model, step: strategy.after_step(model, step, ctx)
    return hooks


def _check_entry_point(name: str, obj: Any) -> type[InitStrategy]:
    """What an ``activews.strategies`` entry point may load: an :class:`InitStrategy` subclass that
    implements ``init_round``, with the checks of :func:`register_strategy`. Its ``name`` becomes the
    entry point's name. Raises a one-line :class:`ActivewsError` saying what is wrong otherwise (the
    registry adds which plugin it was)."""
    if not (inspect.isclass(obj) and issubclass(obj, InitStrategy)):
        raise ActivewsError(f"it is {what_is(obj)}, not an InitStrategy subclass")
    InitStrategy.check_implements(obj, "init_round")
    return InitStrategy.admit(obj, name, claim=True)


STRATEGIES: Registry[type[InitStrategy]] = Registry(
    "strategy", entry_point_group="activews.strategies", check=_check_entry_point
)


def register_strategy(
    name: str, *, overwrite: bool = False
) -> Callable[[type[InitStrategy]], type[InitStrategy]]:
    """Class decorator: register an :class:`InitStrategy` subclass under ``name``.

    Example:
        >>> @register_strategy("my_shrink")
        ... class MyShrink(InitStrategy):
        ...     class Params(InitStrategy.Params):
        ...         factor: float = 0.5
        ...     def init_round(self, model, ctx):
        ...         ...
    """

    def decorate(cls: type[InitStrategy]) -> type[InitStrategy]:
        if not (inspect.isclass(cls) and issubclass(cls, InitStrategy)):
            raise ActivewsError(f"@register_strategy({name!r}) must decorate an InitStrategy subclass")
        STRATEGIES.register(name, InitStrategy.admit(cls, name), overwrite=overwrite)
        return cls

    return decorate


def get_strategy(name: str) -> type[InitStrategy]:
    """The strategy class registered under ``name`` (close-match error if unknown)."""
    return STRATEGIES.get(name)


def make_strategy(name: str, params: Mapping[str, Any] | None = None) -> InitStrategy:
    """Instantiate the strategy ``name`` with validated ``params``."""
    return get_strategy(name)(params)


def list_strategies() -> list[str]:
    """Names of all registered strategies, plugins included."""
    return STRATEGIES.names()
