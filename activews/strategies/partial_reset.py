"""``partial_reset``: re-draw some layers (the head, the last k layers, or a name pattern), keep the rest."""

from __future__ import annotations

import re

import torch
from pydantic import Field, field_validator
from torch import nn

from activews.errors import ActivewsError
from activews.strategies._util import parameterized_leaves
from activews.strategies.base import InitContext, InitStrategy, register_strategy


@register_strategy("partial_reset")
class PartialReset(InitStrategy):
    """Partial reset: re-initialize chosen layers from a fresh draw and warm-start the others.

    A *layer* is a module that owns parameters directly (``Linear``, ``Conv*``, ``BatchNorm*``, ...),
    counted in definition order. ``last=1`` resets the output layer (head reset); ``last=k`` resets
    the last ``k`` such layers. ``pattern`` (a regular expression searched in module names such as
    ``"3"`` for the built-in MLP's second Linear, or ``"layer4"`` in a ResNet) selects layers by name
    instead and overrides ``last``. Both are checked against the model before any training.

    References:
        Nikishin et al., "The Primacy Bias in Deep Reinforcement Learning", ICML 2022 (arXiv 2205.07802);
        Zhou et al., "Fortuitous Forgetting in Connectionist Networks", ICLR 2022 (arXiv 2202.00155).
    """

    class Params(InitStrategy.Params):
        last: int = Field(
            1, ge=1, description="number of parameterized layers to reset, from the output back"
        )
        pattern: str | None = Field(None, description="regex over module names; overrides 'last' when set")

        @field_validator("pattern")
        @classmethod
        def _compiles(cls, value: str | None) -> str | None:
            if value is not None:
                try:
                    re.compile(value)
                except re.error as exc:
                    raise ValueError(f"not a valid regular expression ({exc})") from None
            return value

    reference = "Nikishin et al., ICML 2022, arXiv:2205.07802; Zhou et al., ICLR 2022, arXiv:2202.00155"
    batchnorm = "reset layers (BatchNorm included) take the fresh model's parameters and running stats"

    def selected(self, model: nn.Module) -> list[str]:
        """Names of the modules this strategy resets in ``model``."""
        leaves = [name for name, _ in parameterized_leaves(model)]
        if self.params.pattern is not None:
            rx = re.compile(self.params.pattern)
            chosen = [name for name in leaves if rx.search(name)]
            if not chosen:
                raise ActivewsError(
                    f"strategy 'partial_reset': pattern {self.params.pattern!r} matches no layer; "
                    f"layers are: {', '.join(leaves)}"
                )
            return chosen
        if self.params.last > len(leaves):
            raise ActivewsError(
                f"strategy 'partial_reset': last={self.params.last} but the model has only "
                f"{len(leaves)} parameterized layers; use last <= {len(leaves)}"
            )
        return leaves[-self.params.last :]

    def check_model(self, model: nn.Module) -> None:
        self.selected(model)

    @torch.no_grad()
    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        chosen = self.selected(model)
        fresh_modules = dict(ctx.fresh_model().named_modules())
        own_modules = dict(model.named_modules())
        for name in chosen:
            dst, src = own_modules[name], fresh_modules[name]
            for (_, t_dst), (_, t_src) in zip(
                list(dst.named_parameters(recurse=False)) + list(dst.named_buffers(recurse=False)),
                list(src.named_parameters(recurse=False)) + list(src.named_buffers(recurse=False)),
                strict=True,
            ):
                t_dst.copy_(t_src)
        return model
