"""``hare_tortoise``: a slow EMA copy of the trained network, to which the trained network is reset."""

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


@register_strategy("hare_tortoise")
class HareTortoise(InitStrategy):
    """Hare & Tortoise: reset the trained ("hare") network to a slow EMA ("tortoise") of it each round.

    The tortoise starts as the arm's round-0 draw (``ctx.initial_state``, as the authors' trainer
    copies the model before training) and, after every optimizer step in every round (round 0
    included), moves toward the hare: ``tortoise <- momentum * tortoise + (1 - momentum) * hare``, for
    every parameter and every floating-point buffer (BatchNorm running mean and variance, as the authors
    average all buffers; integer buffers such as ``num_batches_tracked`` follow the hare). At the start
    of each round the hare is reset to the tortoise (parameters and buffers), and, with
    ``reset_every=N``, also after every ``N``-th optimizer step (counted across rounds). The tortoise
    and the step count are strategy state: they are saved in checkpoints and restored on resume.

    Mapping onto rounds. The authors reset the hare at the end of every ``reset_every`` epochs of a
    task (epochs 0, 10, 20, ...: 10 in all their scripts), i.e. right after the first epoch of each new
    task and every 10 epochs after that; their optimizer is re-created per task and kept through resets.
    Here a round (all labeled data so far, trained to the training-accuracy target) plays the role of
    a task, and the reset comes at the round's start, before the first step; ``reset_every`` counts
    optimizer steps, not epochs (set it to ``10 * steps per epoch`` for the authors' schedule). Two
    smaller differences: the authors alias the hare's tensors to the tortoise's at a reset
    (``fast.data = slow.data``), so the first step after a reset also moves the tortoise fully; here the
    tortoise is copied, and the EMA applies to that step too. Their trainer also clips gradients and
    uses AdamW with a cosine schedule, which belong to the training configuration here, not to the
    strategy.

    Which network is evaluated. The authors' trainer tests both networks at every evaluation (the
    hare as ``test_acc1``, the tortoise as ``test_target_acc1``). activews evaluates the model that was
    trained in the round, i.e. the **hare**, because no strategy hook runs at a round's end (the
    trainer stops when the accuracy target is reached). The tortoise's weights at any time are
    available from :meth:`tortoise_state` to evaluate it yourself.

    Defaults: ``momentum=0.999`` (every script of the authors), ``reset_every=0`` (reset only at round
    starts).

    References:
        Lee, Cho, Kim, Kim, Min, Choo & Lyle, "Slow and Steady Wins the Race: Maintaining Plasticity
        with Hare and Tortoise Networks", ICML 2024 (arXiv 2406.02596); code:
        github.com/dojeon-ai/hare-tortoise (``src/trainers/base.py``).
    """

    class Params(InitStrategy.Params):
        # Search space: momentum 0.99 to 0.9999, a decade either side of the authors' 0.999 in
        # 1 - momentum (the tortoise's memory, 100 to 10,000 steps; at 0.9 it would follow the hare
        # within ~10 steps, i.e. warm). reset_every: 0 (round starts only, the default) or a period
        # around the authors' every 10 epochs, which on the default benchmark (batch 128, 1,000 to 8,000
        # labels) is 80 to 630 steps; 0 cannot share a log range with the periods, hence choices.
        momentum: Annotated[float, Tune(0.99, 0.9999)] = Field(
            0.999, ge=0.0, lt=1.0, description="EMA momentum of the tortoise (per optimizer step)"
        )
        reset_every: Annotated[int, Tune(choices=(0, 100, 300, 1000))] = Field(
            0,
            ge=0,
            description="also reset the hare to the tortoise every this many optimizer steps (0: only at round starts)",
        )

    reference = "Lee et al., ICML 2024, arXiv:2406.02596; github.com/dojeon-ai/hare-tortoise"
    batchnorm = "running statistics averaged into the tortoise like the weights, and reset to the tortoise's with them"
    optimizer = "new optimizer every round (unless keep_optimizer_state); kept through the resets every reset_every steps"

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._steps = 0
        self._resets = 0
        self._tortoise: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------------------------ the tortoise

    def needs(self) -> frozenset[str]:
        return frozenset({"initial_state"})

    def _bind(self, model: nn.Module, ctx: InitContext) -> dict[str, torch.Tensor]:
        """The tortoise, matched to ``model``'s state entries (names, shapes, devices and dtypes)."""
        own = model.state_dict(keep_vars=True)
        source: Mapping[str, torch.Tensor] = (
            self._tortoise if self._tortoise is not None else ctx.initial_state
        )
        missing = sorted(set(own) - set(source))
        if missing:
            raise ActivewsError(
                f"{self.label()}: the tortoise has no entry for {missing[0]!r}; pass the round-0 model's "
                f"state_dict() as InitContext.initial_state, and resume with the model the run started with"
            )
        tortoise: dict[str, torch.Tensor] = {}
        for name, live in own.items():
            value = source[name]
            if value.shape != live.shape:
                raise ActivewsError(
                    f"{self.label()}: tortoise entry {name!r} has shape {tuple(value.shape)} but the model's "
                    f"has {tuple(live.shape)}; keep the architecture fixed"
                )
            if value.device == live.device and value.dtype == live.dtype and source is self._tortoise:
                tortoise[name] = value
            else:  # a copy: never write into ctx.initial_state
                tortoise[name] = value.detach().to(device=live.device, dtype=live.dtype, copy=True)
        self._tortoise = tortoise
        return tortoise

    def _current(self, model: nn.Module, ctx: InitContext) -> dict[str, torch.Tensor]:
        tortoise = self._tortoise
        if tortoise is not None:
            first = next(iter(model.state_dict(keep_vars=True).items()), None)
            if first is None or (
                first[0] in tortoise
                and tortoise[first[0]].device == first[1].device
                and tortoise[first[0]].dtype == first[1].dtype
                and len(tortoise) == len(model.state_dict())
            ):
                return tortoise
        return self._bind(model, ctx)

    @torch.no_grad()
    def _reset_hare(self, model: nn.Module, ctx: InitContext) -> None:
        tortoise = self._current(model, ctx)
        for name, live in model.state_dict(keep_vars=True).items():
            live.data.copy_(tortoise[name])
        self._resets += 1

    # ----------------------------------------------------------------------------------- the method

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        self._reset_hare(model, ctx)
        return model

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: Step, ctx: InitContext) -> None:
        self._steps += 1
        tortoise = self._current(model, ctx)
        weight = 1.0 - self.params.momentum
        for name, live in model.state_dict(keep_vars=True).items():
            slow = tortoise[name]
            if slow.is_floating_point():
                slow.lerp_(live.detach(), weight)  # momentum * slow + (1 - momentum) * fast
            else:
                slow.copy_(live)
        every = self.params.reset_every
        if every and self._steps % every == 0:
            self._reset_hare(model, ctx)

    def tortoise_state(self) -> dict[str, torch.Tensor]:
        """A copy of the tortoise's parameters and buffers (a state dict for the model), or {} before
        the first step or round start."""
        if self._tortoise is None:
            return {}
        return {k: v.detach().clone() for k, v in self._tortoise.items()}

    @property
    def steps(self) -> int:
        """Optimizer steps seen so far, over all rounds."""
        return self._steps

    @property
    def resets(self) -> int:
        """Times the hare was reset to the tortoise (round starts included)."""
        return self._resets

    # ------------------------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        tortoise = (
            {} if self._tortoise is None else {k: v.detach().cpu().clone() for k, v in self._tortoise.items()}
        )
        return {"steps": self._steps, "resets": self._resets, "tortoise": tortoise}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) != {"steps", "resets", "tortoise"}:
            raise ActivewsError(
                f"{self.label()}: checkpoint state has keys {sorted(state)}, expected ['resets', 'steps', 'tortoise']"
            )
        self._steps = int(state["steps"])
        self._resets = int(state["resets"])
        # Moved to the model's device and dtype at the next use (see _bind).
        self._tortoise = {k: v.clone() for k, v in state["tortoise"].items()} or None
