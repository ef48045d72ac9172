"""Built-in models: a configurable MLP, the paper's MLP, logistic regression and a small CNN."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from activews.errors import ActivewsError
from activews.models.base import ModelParams, register_model
from activews.units import register_mode_independent

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def _dropout_field() -> Any:
    return Field(
        0.0, ge=0.0, lt=1.0, description="dropout probability after each hidden activation (0: no layer)"
    )


class MLPParams(ModelParams):
    hidden: tuple[int, ...] = Field((256, 256), description="hidden layer widths")
    activation: Literal["relu", "tanh"] = "relu"
    dropout: float = _dropout_field()

    @field_validator("hidden", mode="before")
    @classmethod
    def _one_width(cls, value: object) -> object:
        return (value,) if isinstance(value, int) else value  # --model-param hidden=128

    @field_validator("hidden")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(w < 1 for w in value):
            raise ValueError(f"hidden widths must be >= 1, got {value}")
        return value


@register_model("mlp", MLPParams)
def mlp(input_shape: tuple[int, ...], num_classes: int, params: MLPParams) -> nn.Module:
    """Multi-layer perceptron: flatten, then Linear + activation (+ dropout) per hidden width, then a linear head.

    With ``dropout=0`` (the default) no dropout layer is added, so module names and checkpoints are those
    of a model without dropout.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for h in params.hidden:
        layers += [nn.Linear(width, h), _ACTIVATIONS[params.activation]()]
        if params.dropout > 0:
            layers.append(nn.Dropout(params.dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class PaperMLPParams(ModelParams):
    activation: Literal["tanh", "relu"] = Field(
        "tanh", description="hidden activation: tanh (the default) or relu (the authors' run.py)"
    )
    dropout: float = _dropout_field()


@register_model("paper_mlp", PaperMLPParams)
def paper_mlp(input_shape: tuple[int, ...], num_classes: int, params: PaperMLPParams) -> nn.Module:
    """The paper's 3-layer MLP: flattened input -> 100 -> 100 -> classes, tanh by default.

    The authors' released code (``run.py`` in github.com/JordanAsh/warm_start, one script for the online
    and the two-phase experiments, ``--n_samples`` <= 1 selecting two-phase) builds this network with
    ReLU after both hidden layers (its class ``mlp``); no version of that repository uses tanh. tanh is
    this toolkit's default, kept so that recorded results keep their meaning; ``activation="relu"``
    gives the authors' network. A model of its own (rather than ``mlp`` with ``hidden=100,100``) so that experiment
    grids over model names need no per-model parameters. 15,210 parameters for 40 inputs and 10 classes.

    References:
        Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475).
    """
    mlp_params = MLPParams(hidden=(100, 100), activation=params.activation, dropout=params.dropout)
    return mlp(input_shape, num_classes, mlp_params)


@register_model("logreg")
def logreg(input_shape: tuple[int, ...], num_classes: int, params: ModelParams) -> nn.Module:
    """Multinomial logistic regression: one linear layer on the flattened input (a convex model)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


class CNNParams(ModelParams):
    channels: tuple[int, ...] = Field((32, 64), description="output channels of each conv block")
    kernel_size: int = Field(5, ge=1)
    batchnorm: bool = Field(False, description="add BatchNorm after each convolution")
    dropout: float = _dropout_field()

    @field_validator("channels", mode="before")
    @classmethod
    def _one_width(cls, value: object) -> object:
        return (value,) if isinstance(value, int) else value

    @field_validator("channels")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(c < 1 for c in value):
            raise ValueError(f"channels must be a non-empty list of positive ints, got {value}")
        return value


@register_mode_independent  # a reshape: unit measurements need not switch a cnn to eval mode
class _AddChannel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1)


@register_model("cnn", CNNParams)
def cnn(input_shape: tuple[int, ...], num_classes: int, params: CNNParams) -> nn.Module:
    """Small CNN: (conv, [BatchNorm], ReLU, [dropout], 2x max-pool) per block, then a linear head.

    1-D inputs ``(L,)`` or ``(C, L)`` use ``Conv1d`` (MNIST-1D); ``(C, H, W)`` inputs use ``Conv2d``
    (digits). Pooling stops shrinking a dimension once it reaches 1.
    """
    if len(input_shape) == 1:
        prefix: list[nn.Module] = [_AddChannel()]
        shape = (1, input_shape[0])
    else:
        prefix, shape = [], tuple(input_shape)
    dims = len(shape) - 1
    if dims not in (1, 2):
        raise ActivewsError(
            f"model 'cnn' supports 1-D (L or C,L) and 2-D (C,H,W) inputs, got example shape {input_shape}; "
            f"use --model mlp or reshape the data"
        )
    conv, bn, pool = (
        (nn.Conv1d, nn.BatchNorm1d, nn.MaxPool1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)
    )
    layers = list(prefix)
    c_in, spatial = shape[0], list(shape[1:])
    for c_out in params.channels:
        layers.append(conv(c_in, c_out, params.kernel_size, padding=params.kernel_size // 2))
        if params.batchnorm:
            layers.append(bn(c_out))
        layers.append(nn.ReLU())
        if params.dropout > 0:
            layers.append(nn.Dropout(params.dropout))
        if min(spatial) >= 2:
            layers.append(pool(2))
            spatial = [s // 2 for s in spatial]
        c_in = c_out
    layers += [nn.Flatten(), nn.Linear(c_in * math.prod(spatial), num_classes)]
    return nn.Sequential(*layers)
