"""The model registry and seeded model construction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from torch import nn

from activews.errors import ActivewsError, format_validation_error
from activews.registry import Registry

__all__ = ["ModelParams", "ModelSpec", "MODELS", "register_model", "build_model", "model_params"]


class ModelParams(BaseModel):
    """Base of every model's parameters: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its builder ``f(input_shape, num_classes, params) -> nn.Module`` and params."""

    name: str
    builder: Callable[[tuple[int, ...], int, Any], nn.Module]
    Params: type[ModelParams]
    doc: str = ""


MODELS: Registry[ModelSpec] = Registry("model", entry_point_group="activews.models")


def register_model(name: str, params: type[ModelParams] = ModelParams) -> Callable[[Callable], Callable]:
    """Decorator: register ``builder(input_shape, num_classes, params)`` under ``name``."""

    def decorate(builder: Callable) -> Callable:
        MODELS.register(name, ModelSpec(name, builder, params, (builder.__doc__ or "").strip()))
        return builder

    return decorate


def model_params(name: str, values: Mapping[str, Any] | None = None) -> ModelParams:
    """Validate ``values`` for model ``name``; one-line :class:`ActivewsError` if invalid."""
    spec = MODELS.get(name)
    try:
        return spec.Params(**dict(values or {}))
    except ValidationError as exc:
        raise ActivewsError(
            f"model {name!r}: {format_validation_error(exc, spec.Params.model_fields)}"
        ) from None


def build_model(
    name: str,
    input_shape: tuple[int, ...],
    num_classes: int,
    params: ModelParams | Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    device: torch.device | str = "cpu",
) -> nn.Module:
    """Build model ``name`` with its default initializers, seeded by ``seed``.

    The draw happens on the CPU under a forked global RNG, so it is reproducible and leaves the
    caller's random state untouched; the model is then moved to ``device``.
    """
    spec = MODELS.get(name)
    if not isinstance(params, ModelParams):
        params = model_params(name, params)
    if seed is None:
        model = spec.builder(tuple(input_shape), int(num_classes), params)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = spec.builder(tuple(input_shape), int(num_classes), params)
    if not isinstance(model, nn.Module):
        raise ActivewsError(
            f"model {name!r}: builder returned {type(model).__name__}, expected a torch.nn.Module"
        )
    return model.to(device)
