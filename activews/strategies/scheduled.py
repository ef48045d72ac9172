"""``scheduled``: combine strategies by round (a periodic full reset, parameters that change with the round)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, cast

import torch
from pydantic import Field, model_validator
from torch import nn

from activews.errors import ActivewsError
from activews.params import Tune
from activews.strategies.base import STRATEGIES, InitContext, InitStrategy, register_strategy

# The default sub-strategies, registered before Scheduled: registering it checks its search space with the
# default Params, which look 'warm' and 'random' up.
from activews.strategies.random_init import RandomInit  # noqa: F401
from activews.strategies.warm import Warm  # noqa: F401
from activews.training import Step

__all__ = ["Scheduled"]

_Value = bool | int | float | str | None


def _sub_class(field: str, name: str) -> type[InitStrategy]:
    """The strategy class ``name`` names (one-line error naming ``field`` and close matches)."""
    try:
        cls = STRATEGIES.get(name)
    except ActivewsError as exc:
        raise ActivewsError(f"{field}: {exc}") from None
    if getattr(cls, "_is_schedule", False):  # not issubclass: unbound while Scheduled itself registers
        raise ActivewsError(
            f"{field}={name!r}: a schedule cannot contain another schedule; name the strategies it combines"
        )
    return cls


def _parse(cls: type[InitStrategy], where: str, values: Mapping[str, Any]) -> InitStrategy.Params:
    """``cls``'s validated Params; the sub-strategy's own one-line message, prefixed with ``where``."""
    try:
        return cls.parse_params(values)
    except ActivewsError as exc:
        raise ActivewsError(f"{where}: {exc}") from None


@register_strategy("scheduled")
class Scheduled(InitStrategy):
    """Scheduled: run another strategy by round, with a periodic reset and per-round parameter values.

    Round ``r`` (1, 2, ...) starts with ``reset`` (parameters ``reset_params``) when ``every`` is set
    and ``r % every == 0``, and with ``strategy`` (parameters ``strategy_params``) otherwise.
    ``per_round`` gives values of ``strategy``'s parameters for rounds 1, 2, 3, ... (the last value
    repeats), overriding ``strategy_params``; e.g. ``strategy="shrink_perturb",
    per_round={"shrink": [0.2, 0.4, 0.6]}`` shrinks less and less. The default, ``warm`` with a
    ``random`` re-draw every 5 rounds, is a periodic full reset.

    The training hooks (loss term, after-step call) and the model check are those of the sub-strategy
    of the round; in round 0 (no ``init_round``) that is ``strategy`` with ``strategy_params``. Each
    sub-strategy keeps its own state across rounds (one instance each; ``per_round`` changes the
    instance's parameters, not the instance), saved in checkpoints. What happens to BatchNorm buffers
    and optimizer state is what the round's sub-strategy does.

    From the command line, dict parameters are JSON:
    ``--param scheduled.strategy=shrink_perturb --param 'scheduled.per_round={"shrink":[0.2,0.4,0.6]}'``.

    References:
        Nikishin et al., "The Primacy Bias in Deep Reinforcement Learning", ICML 2022 (arXiv 2205.07802),
        periodic resets; Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020
        (arXiv 1910.08475), shrink and perturb between rounds.
    """

    class Params(InitStrategy.Params):
        strategy: str = Field("warm", description="strategy of the ordinary rounds")
        strategy_params: dict[str, Any] = Field({}, description="parameters of 'strategy'")
        # Search space: the reset period, 2 to 8 rounds (1 would be `random`; 8 never resets within the
        # default benchmark's 7 rounds, i.e. `warm`). Nikishin et al. reset periodically, at a fixed period.
        every: Annotated[int | None, Tune(2, 8)] = Field(
            5, ge=1, description="rounds r with r % every == 0 use 'reset' (None: never)"
        )
        reset: str = Field("random", description="strategy of the reset rounds")
        reset_params: dict[str, Any] = Field({}, description="parameters of 'reset'")
        per_round: dict[str, list[_Value]] = Field(
            {},
            description="values of 'strategy' parameters for rounds 1, 2, ... (the last repeats)",
        )

        @model_validator(mode="after")
        def _consistent(self) -> Scheduled.Params:
            self.round_params()  # raises on the first problem
            return self

        def round_params(
            self,
        ) -> tuple[InitStrategy.Params, list[InitStrategy.Params], InitStrategy.Params | None]:
            """Validated sub-strategy parameters: ``strategy``'s base and per-round ones, ``reset``'s."""
            cls = _sub_class("strategy", self.strategy)
            base = _parse(cls, "strategy_params", self.strategy_params)
            for key, values in self.per_round.items():
                if key not in cls.Params.model_fields:
                    known = ", ".join(cls.Params.model_fields) or "none"
                    raise ActivewsError(
                        f"per_round: {key!r} is not a parameter of {self.strategy!r} (its parameters: {known})"
                    )
                if not values:
                    raise ActivewsError(f"per_round.{key}: give at least one value, e.g. [0.2, 0.4]")
            rounds = max((len(v) for v in self.per_round.values()), default=0)
            per_round = [
                _parse(
                    cls,
                    f"per_round (round {i + 1})",
                    self.strategy_params | {k: v[min(i, len(v) - 1)] for k, v in self.per_round.items()},
                )
                for i in range(rounds)
            ]
            # checked even when every=None (never used then), so a sweep over every=null,5 fails early, not late
            reset = _parse(_sub_class("reset", self.reset), "reset_params", self.reset_params)
            return base, per_round, (reset if self.every is not None else None)

    reference = "Nikishin et al., ICML 2022, arXiv:2205.07802; Ash & Adams, NeurIPS 2020, arXiv:1910.08475"
    batchnorm = "what the round's sub-strategy does"
    optimizer = "what the round's sub-strategy does (by default re-created every round by the trainer)"
    _is_schedule: ClassVar[bool] = True  # what _sub_class refuses inside a schedule (subclasses too)

    def __init__(self, params: InitStrategy.Params | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        p = cast(Scheduled.Params, self.params)
        self._base, self._per_round, reset_params = p.round_params()
        self.ordinary: InitStrategy = STRATEGIES.get(p.strategy)(self._base)
        self.resetter: InitStrategy | None = (
            STRATEGIES.get(p.reset)(reset_params) if reset_params is not None else None
        )

    # ----------------------------------------------------------------------------------- the schedule

    def is_reset_round(self, round_index: int) -> bool:
        every = self.params.every
        return every is not None and round_index > 0 and round_index % every == 0

    def active(self, round_index: int) -> InitStrategy:
        """The sub-strategy of round ``round_index``, with that round's parameters set."""
        if self.resetter is not None and self.is_reset_round(round_index):  # resetter is None iff every is
            return self.resetter
        if round_index == 0 or not self._per_round:
            self.ordinary.params = self._base
        else:
            self.ordinary.params = self._per_round[min(round_index, len(self._per_round)) - 1]
        return self.ordinary

    def hooks(self) -> tuple[bool, bool]:
        """Whether any sub-strategy uses ``loss_term`` and ``after_step`` (this class forwards both)."""
        subs = [s for s in (self.ordinary, self.resetter) if s is not None]
        flags = [s.hooks() for s in subs]
        return any(f[0] for f in flags), any(f[1] for f in flags)

    def needs(self) -> frozenset[str]:
        """What any sub-strategy needs, with any parameter set it will run with."""
        try:
            needs = set()
            for params in (self._base, *self._per_round):
                self.ordinary.params = params
                needs |= self.ordinary.needs()
        finally:
            self.ordinary.params = self._base
        return frozenset(needs | (self.resetter.needs() if self.resetter is not None else set()))

    # ------------------------------------------------------------------------------- forwarded seams

    def acts_at_round_zero(self) -> bool:
        """Round 0 belongs to ``strategy`` (with ``strategy_params``): whether it acts there."""
        return self.active(0).acts_at_round_zero()

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        return self.active(ctx.round_index).init_round(model, ctx)

    def loss_term(self, model: nn.Module, ctx: InitContext) -> torch.Tensor | None:
        return self.active(ctx.round_index).loss_term(model, ctx)

    def after_step(self, model: nn.Module, step: Step, ctx: InitContext) -> None:
        self.active(ctx.round_index).after_step(model, step, ctx)

    def check_model(self, model: nn.Module) -> None:
        """Check the model against every sub-strategy, with every parameter set it will run with."""
        try:
            for params in (self._base, *self._per_round):
                self.ordinary.params = params
                self.ordinary.check_model(model)
        finally:
            self.ordinary.params = self._base
        if self.resetter is not None:
            self.resetter.check_model(model)

    def state_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.ordinary.state_dict(),
            "reset": self.resetter.state_dict() if self.resetter is not None else {},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        unknown = set(state) - {"strategy", "reset"}
        if unknown:
            raise ActivewsError(f"{self.label()}: unexpected checkpoint state {sorted(unknown)}")
        self.ordinary.load_state_dict(state.get("strategy", {}))
        if self.resetter is not None:
            self.resetter.load_state_dict(state.get("reset", {}))
        elif state.get("reset"):
            raise ActivewsError(f"{self.label()}: the checkpoint holds reset state but 'every' is not set")
