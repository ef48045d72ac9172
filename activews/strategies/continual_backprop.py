"""``continual_backprop``: replace a small fraction of mature, low-utility units at every step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field
from torch import nn

from activews.errors import ActivewsError
from activews.strategies.base import InitContext, InitStrategy, register_strategy
from activews.training import Step
from activews.units import UnitGroup, hidden_units, outgoing_weight_magnitude, recycle_units, unit_activity


@dataclass
class _LayerState:
    utility: torch.Tensor  # running contribution utility, on the model's device
    age: torch.Tensor  # steps since each unit was (re)born, int64 on the CPU (no device sync to count)
    pending: float  # replacements owed but not yet made (the fractional part of rho * eligible, summed)


@register_strategy("continual_backprop")
class ContinualBackprop(InitStrategy):
    """Continual backprop: after every optimizer step, replace a tiny fraction of mature units of low utility.

    After each step, for every group of recyclable hidden units (:func:`activews.units.hidden_units`):

    1. each unit's *contribution utility* is updated, ``u <- decay * u + (1 - decay) * |h| * mean_k |w_k|``,
       with ``|h|`` its mean |activation| on the step's minibatch (one extra forward pass in eval mode,
       no gradient: BatchNorm uses its running statistics and dropout is off, so the pass changes nothing)
       and ``w_k`` its outgoing weights;
    2. every unit's age grows by one; units older than ``maturity`` steps are *eligible*;
    3. ``replacement_rate * (number eligible)`` is added to the layer's count of replacements owed, and
       its whole part is made now: that many eligible units with the lowest bias-corrected utility
       ``u / (1 - decay**age)`` (ties: lowest index) are replaced. Their incoming weights are re-drawn from
       a fresh model (``ctx.fresh_model()``, seeded from the context generator) with bias 0, their
       outgoing weights set to 0, their BatchNorm entries reset, the optimizer state of exactly those
       entries zeroed, and their utility and age set to 0.

    Utilities, ages and owed counts persist across rounds (round 0 included) and through checkpoints
    (:meth:`state_dict`). The start of a round is a warm start. With the defaults a 256-unit layer
    replaces one unit about every 390 steps once its units are older than 1,000 steps.

    Defaults follow the authors' ResNet-18 (incremental CIFAR-100) configuration: replacement rate
    1e-5, maturity threshold 1000, utility decay 0.99, contribution utility. As in their code the
    replaced units' bias is 0; unlike their MLP code, the incoming weights come from the model's own
    initializer (a fresh draw) rather than a separate uniform bound, and the next layer's bias is not
    corrected for the removed contribution.

    References:
        Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood, Sutton, "Loss of plasticity in deep continual
        learning", Nature 632, 768-774 (2024); code: github.com/shibhansh/loss-of-plasticity.
    """

    class Params(InitStrategy.Params):
        replacement_rate: float = Field(
            1e-5,
            ge=0.0,
            le=1.0,
            description="rho: fraction of the eligible units replaced per step (accumulated until whole)",
        )
        maturity: int = Field(
            1000, ge=0, description="steps a unit must have lived before it may be replaced"
        )
        decay: float = Field(0.99, ge=0.0, lt=1.0, description="decay of the running utility average")

    reference = "Dohare et al., Nature 2024, doi:10.1038/s41586-024-07711-7"
    batchnorm = (
        "replaced units' entries in a BatchNorm between their layer and activation (ResNet blocks, cnn with "
        "batchnorm) reset to a fresh draw's (weight 1, bias 0, running mean 0, variance 1); others kept"
    )
    optimizer = (
        "new optimizer every round (unless keep_optimizer_state); when units are replaced, the state of "
        "their entries (Adam exp_avg/exp_avg_sq/max_exp_avg_sq, SGD momentum_buffer; incoming rows, biases, "
        "BatchNorm entries, outgoing columns) is zeroed; Adam's per-tensor step count is kept"
    )

    def __init__(self, params: Any = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._layers: dict[str, _LayerState] = {}
        self._loaded: Mapping[str, Any] | None = None
        self._steps = 0
        self._replaced = 0
        self._model: nn.Module | None = None
        self._groups: list[UnitGroup] = []

    # -------------------------------------------------------------------------------- units and state

    def check_model(self, model: nn.Module) -> None:
        if not hidden_units(model, who=self.label()):
            raise ActivewsError(
                f"{self.label()}: the model has no hidden units to replace (no activation between two "
                f"weight layers, e.g. logreg); use a model with hidden layers"
            )

    def _units(self, model: nn.Module) -> list[UnitGroup]:
        if model is not self._model:
            self._groups = hidden_units(model, who=self.label())
            self._model = model
            self._bind(self._groups)
        return self._groups

    def _bind(self, groups: list[UnitGroup]) -> None:
        """Match the per-unit state to ``groups``: new state for a first model, the loaded state on resume."""
        sizes = {g.name: g.size for g in groups}
        devices = {g.name: g.incoming.weight.device for g in groups}
        if self._loaded is not None:
            loaded, self._loaded = self._loaded, None
            have = {name: int(layer["age"].numel()) for name, layer in loaded.items()}
            if have != sizes:
                raise ActivewsError(
                    f"{self.label()}: checkpoint state is for units {have}, but the model has {sizes}; "
                    f"resume with the model the run started with"
                )
            self._layers = {
                name: _LayerState(
                    layer["utility"].to(devices[name], torch.float32).clone(),
                    layer["age"].to("cpu", torch.int64).clone(),
                    float(layer["pending"]),
                )
                for name, layer in loaded.items()
            }
            return
        if self._layers:
            have = {name: int(layer.age.numel()) for name, layer in self._layers.items()}
            if have != sizes:
                raise ActivewsError(
                    f"{self.label()}: the model's units changed between rounds ({have} -> {sizes}); "
                    f"keep the architecture fixed"
                )
            for (
                name,
                layer,
            ) in self._layers.items():  # the same units in a new module object: follow its device
                layer.utility = layer.utility.to(devices[name])
            return
        self._layers = {
            g.name: _LayerState(
                torch.zeros(g.size, device=devices[g.name]),
                torch.zeros(g.size, dtype=torch.int64),
                0.0,
            )
            for g in groups
        }

    # ----------------------------------------------------------------------------------- the method

    def needs(self) -> frozenset[str]:
        return frozenset({"fresh_model"})

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        return model

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: Step, ctx: InitContext) -> None:
        self._steps += 1
        groups = self._units(model)
        if not groups:
            return
        p = self.params
        activity = unit_activity(model, groups, step.x)
        selection: dict[str, torch.Tensor] = {}
        for group in groups:
            layer = self._layers[group.name]
            contribution = activity[group.name].to(layer.utility.dtype) * outgoing_weight_magnitude(group)
            layer.utility.mul_(p.decay).add_(contribution, alpha=1.0 - p.decay)
            layer.age += 1
            eligible = (layer.age > p.maturity).nonzero().flatten()
            if eligible.numel() == 0:
                continue
            layer.pending += p.replacement_rate * eligible.numel()
            n = int(layer.pending)
            if n == 0:
                continue
            layer.pending -= n
            # Bias-corrected utility (the running average starts at 0 when a unit is born), on the CPU.
            corrected = layer.utility.to("cpu", torch.float64) / (
                1.0 - p.decay ** layer.age.to(torch.float64)
            )
            order = torch.sort(corrected[eligible], stable=True).indices[:n]
            chosen = eligible[order]
            layer.age[chosen] = 0
            device_idx = chosen.to(layer.utility.device)
            layer.utility[device_idx] = 0.0
            selection[group.name] = device_idx
        if selection:
            self._replaced += recycle_units(
                groups, selection, ctx.fresh_model, step.optimizer, who=self.label()
            )

    # ------------------------------------------------------------------------------------ checkpoints

    @property
    def steps(self) -> int:
        """Optimizer steps seen so far, over all rounds."""
        return self._steps

    @property
    def replaced(self) -> int:
        """Units replaced so far, over all rounds."""
        return self._replaced

    def state_dict(self) -> dict[str, Any]:
        layers = (
            {
                name: {
                    "utility": s.utility.detach().cpu().clone(),
                    "age": s.age.clone(),
                    "pending": s.pending,
                }
                for name, s in self._layers.items()
            }
            if self._loaded is None
            else dict(self._loaded)
        )
        return {"steps": self._steps, "replaced": self._replaced, "units": layers}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) != {"steps", "replaced", "units"}:
            raise ActivewsError(
                f"{self.label()}: checkpoint state has keys {sorted(state)}, expected ['replaced', 'steps', 'units']"
            )
        self._steps = int(state["steps"])
        self._replaced = int(state["replaced"])
        self._layers = {}
        self._model = None
        self._groups = []
        # Bound to the model's units (and moved to its device) at the next step.
        self._loaded = dict(state["units"]) if state["units"] else None
