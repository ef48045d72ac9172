"""``partial_reset`` and its presets: re-draw some layers (the head, the later layers, the last k layers, or a
name pattern), keep the rest.

``head_reset`` (the output layer) and ``later_reset`` (the later part of the network) are
:class:`PartialReset` with another way of choosing the layers: they override :meth:`PartialReset.selected`
and share everything else.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

import torch
from pydantic import Field, field_validator
from torch import nn

from activews.errors import ActivewsError
from activews.params import Tune
from activews.strategies._util import parameterized_leaves
from activews.strategies.base import InitContext, InitStrategy, register_strategy

__all__ = ["PartialReset", "HeadReset", "LaterReset", "layer_names"]

_RESETS_REFERENCE = "Nikishin et al., ICML 2022, arXiv:2205.07802; Zhou et al., ICLR 2022, arXiv:2202.00155"
_RESETS_BATCHNORM = "reset layers (BatchNorm included) take the fresh model's parameters and running stats"


def layer_names(model: nn.Module, owner: str = "partial_reset") -> list[str]:
    """The *layers* the reset strategies count: modules that own parameters directly, in definition order.

    Raises :class:`ActivewsError` (naming ``owner``) if the model has none.
    """
    names = [name for name, _ in parameterized_leaves(model)]
    if not names:
        raise ActivewsError(f"{owner}: the model has no module with parameters; nothing to reset")
    return names


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
        # Search space: 1 (the head, Nikishin et al.'s reset of the last layers) or 2. Kept small because a
        # `last` above the model's layer count is refused before training: 2 fits every model with two
        # parameterized layers, and 3 on the default 3-layer MLP would be `random`.
        last: Annotated[int, Tune(1, 2)] = Field(
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

    reference = _RESETS_REFERENCE
    batchnorm = _RESETS_BATCHNORM

    def selected(self, model: nn.Module) -> list[str]:
        """Names of the modules this strategy resets in ``model``."""
        leaves = layer_names(model, self.label())
        if self.params.pattern is not None:
            rx = re.compile(self.params.pattern)
            chosen = [name for name in leaves if rx.search(name)]
            if not chosen:
                raise ActivewsError(
                    f"{self.label()}: pattern {self.params.pattern!r} matches no layer; "
                    f"layers are: {', '.join(leaves)}"
                )
            return chosen
        if self.params.last > len(leaves):
            raise ActivewsError(
                f"{self.label()}: last={self.params.last} but the model has only "
                f"{len(leaves)} parameterized layers; use last <= {len(leaves)}"
            )
        return leaves[-self.params.last :]

    def check_model(self, model: nn.Module) -> None:
        self.selected(model)

    def needs(self) -> frozenset[str]:
        return frozenset({"fresh_model"})

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


@register_strategy("head_reset")
class HeadReset(PartialReset):
    """Head reset: re-draw the output layer every round and warm-start everything else.

    The output layer is the last module that owns parameters, in definition order (the classifier of
    the built-in models); its weight and bias come from a fresh draw. Same as ``partial_reset`` with
    ``last=1``; no parameters.

    References:
        Nikishin et al., "The Primacy Bias in Deep Reinforcement Learning", ICML 2022 (arXiv 2205.07802);
        Zhou et al., "Fortuitous Forgetting in Connectionist Networks", ICLR 2022 (arXiv 2202.00155).
    """

    class Params(InitStrategy.Params):
        pass

    reference = _RESETS_REFERENCE
    batchnorm = "kept (only the output layer is reset; it is a Linear layer in the built-in models)"

    def selected(self, model: nn.Module) -> list[str]:
        return layer_names(model, self.label())[-1:]


@register_strategy("later_reset")
class LaterReset(PartialReset):
    """Later-layer reset: re-draw the later part of the network every round, warm-start the earlier part.

    Resets the last ``ceil(fraction * L)`` of the model's ``L`` layers (at least one), where a *layer*
    is a module that owns parameters directly (``Linear``, ``Conv*``, ``BatchNorm*``, ...), counted from
    the output back in definition order, as in ``partial_reset``. The default ``fraction=0.5`` resets
    the last 2 of the built-in MLP's 3 Linear layers, and exactly the head plus ``layer3`` and
    ``layer4`` (21 of 41 layers) of the built-in ResNet-18. ``fraction=1`` re-draws every layer.

    References:
        Zhou et al., "Fortuitous Forgetting in Connectionist Networks", ICLR 2022 (arXiv 2202.00155),
        later-layer forgetting; Nikishin et al., "The Primacy Bias in Deep Reinforcement Learning",
        ICML 2022 (arXiv 2205.07802).
    """

    class Params(InitStrategy.Params):
        # Search space: 0.1 to 0.9 of the layers, from the head alone on small models to all but the first
        # few layers on deep ones (1 would re-draw every layer: `random`).
        fraction: Annotated[float, Tune(0.1, 0.9)] = Field(
            0.5,
            gt=0.0,
            le=1.0,
            description="share of parameterized layers to reset, counted from the output (at least one)",
        )

    reference = "Zhou et al., ICLR 2022, arXiv:2202.00155; Nikishin et al., ICML 2022, arXiv:2205.07802"
    batchnorm = _RESETS_BATCHNORM

    def count(self, model: nn.Module) -> int:
        """How many layers of ``model`` this strategy resets."""
        total = len(layer_names(model, self.label()))
        # round() first, so that e.g. 0.3 * 10 = 3.0000000000000004 does not become 4
        return min(total, max(1, math.ceil(round(self.params.fraction * total, 9))))

    def selected(self, model: nn.Module) -> list[str]:
        return layer_names(model, self.label())[-self.count(model) :]
