"""``continual_backprop``: replace a small fraction of mature, low-utility units at every step."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn

from activews.errors import ActivewsError
from activews.params import Tune
from activews.strategies.base import InitContext, InitStrategy, register_strategy
from activews.training import Step
from activews.units import UnitGroup, hidden_units, outgoing_weight_magnitude, recycle_units, unit_activity

_NEVER = torch.iinfo(torch.int64).max  # the step count of an entry no replacement touched


def _adam_factors(
    steps: torch.Tensor, lr: float, beta1: float, beta2: float, eps: float, like: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each step count ``k`` of the 1-D tensor ``steps``: ``lr / (1 - beta1**k) * sqrt(1 - beta2**k)``
    and ``eps * sqrt(1 - beta2**k)``, in ``like``'s dtype and device. torch's Adam update of an entry
    with count ``k`` is ``m * first / (sqrt(v) + second)`` (its formula, multiplied through by
    ``sqrt(1 - beta2**k)``)."""
    roots = [math.sqrt(1.0 - beta2**k) for k in steps.tolist()]
    first = [lr / (1.0 - beta1**k) * root for k, root in zip(steps.tolist(), roots, strict=True)]
    return (
        torch.tensor(first, dtype=like.dtype, device=like.device),
        torch.tensor([eps * root for root in roots], dtype=like.dtype, device=like.device),
    )


def _adam_correction(
    m: torch.Tensor,
    v: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    t: int,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> torch.Tensor:
    """What to add to entries that torch's Adam stepped with the tensor's count ``t`` so that they are
    stepped with their own counts instead: the update with count ``t`` minus the update with the
    entries' own :func:`_adam_factors` ``first`` and ``second`` (broadcastable to ``m``), both from the
    moments ``m``, ``v`` after the step (``v``: AMSGrad's running maximum where used)."""
    root = v.sqrt()
    by_tensor = lr / (1.0 - beta1**t) * math.sqrt(1.0 - beta2**t)
    own = torch.div(first, root + second)
    return m * (torch.div(by_tensor, root + eps * math.sqrt(1.0 - beta2**t)) - own)


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

    With Adam or AdamW (AMSGrad included), the replaced entries also restart Adam's step count, as in
    the authors' AdamGnT: torch keeps one count per tensor, so a new entry (moments 0, tensor count
    ``t`` large) would take steps ``(1 - b1**k) / sqrt(1 - b2**k)`` times too large at its ``k``-th
    step (3.2x at the first, 6.5x at the 10th, 3.2x at the 100th, 1.3x at the 1000th, for a steady
    gradient and the default betas). So before step 1 above, every entry of a unit replaced ``a`` steps
    ago (incoming row and bias, BatchNorm entries, outgoing columns; a weight between two replaced units
    takes the younger) has torch's update of this step replaced by the update with its own count
    ``min(a, t)``, computed from the moments after the step (they do not depend on the count). Entries of
    units never replaced, and entries whose count has caught up with the tensor's (a new optimizer, each
    round by default), are left alone, and so is any other optimizer (SGD: the momentum of replaced
    entries is zeroed, nothing else). The formula is torch's (``eps`` added after the bias correction of
    ``sqrt(v)``; AdamGnT adds it before, a difference of ``eps * sqrt(1 - b2**k)``), and AMSGrad's
    running maximum is zeroed with the moments (AdamGnT keeps it). The counts are the units' ages, so
    they persist in :meth:`state_dict`; they assume one optimizer step of every parameter per call (a
    parameter without gradient is skipped; a step skipped by a ``GradScaler`` still counts).

    Utilities, ages and owed counts persist across rounds (round 0 included) and through checkpoints
    (:meth:`state_dict`). The start of a round is a warm start. With the defaults a 256-unit layer
    replaces one unit about every 390 steps once its units are older than 1,000 steps.

    Defaults follow the authors' ResNet-18 (incremental CIFAR-100) configuration: replacement rate
    1e-5, maturity threshold 1000, utility decay 0.99, contribution utility. As in their code the
    replaced units' bias is 0; unlike their MLP code (``lop/algos/gnt.py``), the incoming weights come
    from the model's own initializer (a fresh draw) rather than a separate uniform bound, and the next
    layer's bias is not corrected for the removed contribution.

    On a ResNet this is the MLP rule applied to the units the model declares
    (:func:`activews.models.resnet.resnet_units`), not the authors' ResNet code (``lop/algos/res_gnt.py``),
    which differs in five ways: (1) it recycles the output channels of every convolution but the
    shortcut projections (``downsample``): the stem, and both convolutions of every block, the block
    output's reader being the next block's first convolution, although the skip path still carries the
    unit; activews recycles only ``conv1 -> bn1 -> relu1 -> conv2`` inside each block, the units
    zeroing ``conv2``'s columns disconnects; (2) its utility is ``mean_k |w_k|`` times a running sum of
    ``(1 - decay) * |h|`` (never decayed, not reset at replacement, measured on the training forward pass
    in train mode), without bias correction; activews uses the bias-corrected running average above,
    from an eval-mode pass; (3) it owes ``replacement_rate * (all units of the layer)`` per step once any
    unit is mature, activews ``replacement_rate * (mature units)``; (4) its new incoming weights are
    ``N(0, gain^2 / fan_in)``, activews' a fresh draw; (5) it never touches the optimizer (their ResNet
    runs use SGD with momentum 0.9, kept for replaced entries), while activews zeroes the replaced
    entries' momentum. BatchNorm entries are reset the same way (1, 0, 0, 1).

    References:
        Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood, Sutton, "Loss of plasticity in deep continual
        learning", Nature 632, 768-774 (2024); code: github.com/shibhansh/loss-of-plasticity.
    """

    class Params(InitStrategy.Params):
        # Search space: replacement_rate log-uniform 1e-6 to 1e-3 (the authors' MLP runs 1e-6 to 1e-4, their
        # ResNet 1e-5; 1e-3 is the docs' sensitivity run); maturity log-int 10 to 1000 (the authors' MLP
        # value 100 and ResNet value 1000, a decade lower for short runs: a whole arm of the default
        # benchmark takes about 3,500 steps, so a larger maturity replaces next to nothing); decay 0.9 to
        # 0.999 around the authors' 0.99.
        replacement_rate: Annotated[float, Tune(1e-6, 1e-3, log=True)] = Field(
            1e-5,
            ge=0.0,
            le=1.0,
            description="rho: fraction of the eligible units replaced per step (accumulated until whole)",
        )
        maturity: Annotated[int, Tune(10, 1000, log=True)] = Field(
            1000, ge=0, description="steps a unit must have lived before it may be replaced"
        )
        decay: Annotated[float, Tune(0.9, 0.999)] = Field(
            0.99, ge=0.0, lt=1.0, description="decay of the running utility average"
        )

    reference = "Dohare et al., Nature 2024, doi:10.1038/s41586-024-07711-7"
    batchnorm = (
        "replaced units' entries in a BatchNorm between their layer and activation (ResNet blocks, cnn with "
        "batchnorm) reset to a fresh draw's (weight 1, bias 0, running mean 0, variance 1); others kept"
    )
    optimizer = (
        "new optimizer every round (unless keep_optimizer_state); when units are replaced, the state of "
        "their entries (Adam exp_avg/exp_avg_sq/max_exp_avg_sq, SGD momentum_buffer; incoming rows, biases, "
        "BatchNorm entries, outgoing columns) is zeroed, and with Adam/AdamW those entries then step with "
        "their own step count from 0 (the authors' AdamGnT), not the tensor's"
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
        for group in groups:
            self._layers[group.name].age += 1
        if isinstance(step.optimizer, (torch.optim.Adam, torch.optim.AdamW)):
            # First the step the optimizer should have taken (per-entry step counts), then the utilities
            # of the weights it gives, as with the authors' AdamGnT.
            self._restart_adam_steps(groups, step.optimizer)
        activity = unit_activity(model, groups, step.x)
        selection: dict[str, torch.Tensor] = {}
        for group in groups:
            layer = self._layers[group.name]
            contribution = activity[group.name].to(layer.utility.dtype) * outgoing_weight_magnitude(group)
            layer.utility.mul_(p.decay).add_(contribution, alpha=1.0 - p.decay)
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

    def _restart_adam_steps(self, groups: list[UnitGroup], optimizer: torch.optim.Optimizer) -> None:
        """Redo this step's Adam update of the entries of replaced units with their own step counts.

        torch's Adam keeps one step count per tensor; the authors' AdamGnT keeps one per entry and sets it
        to 0 when the entry's unit is replaced, so a new entry's bias correction starts again. An entry of
        a unit replaced ``a`` steps ago (``a`` = the unit's age; an entry of two units, a weight between a
        replaced unit and a replaced input, takes the younger) has had ``s = min(a, t)`` steps of its own,
        ``t`` being the tensor's count (smaller when the optimizer is newer than the replacement). Where
        ``s < t`` torch's update ``lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)`` is replaced
        by the same with ``s``: both come from the moments after the step, which do not depend on the
        count. A unit never replaced has ``age == self._steps`` and is left alone, whatever the optimizer's
        count.
        """
        settings = {id(q): g for g in optimizer.param_groups for q in g["params"]}
        counts: dict[int, int | None] = {}

        def count(param: nn.Parameter) -> int | None:
            """The tensor's Adam step count; None where this step did not update it."""
            if id(param) not in counts:
                state = optimizer.state.get(param)
                # torch's Adam skips a parameter without gradient: it took no step to redo.
                usable = state and "step" in state and id(param) in settings and param.grad is not None
                counts[id(param)] = int(float(state["step"])) if usable else None  # type: ignore[index]
            return counts[id(param)]

        # Per parameter and dimension, each index's own count (``_NEVER``: none of its units is young).
        own: dict[int, tuple[nn.Parameter, dict[int, torch.Tensor]]] = {}
        for group in groups:
            age = self._layers[group.name].age
            reborn = (age < self._steps).nonzero().flatten()
            if reborn.numel() == 0:
                continue
            newest = max((count(p) or 0 for p, _, _ in group.entries(reborn[:1])), default=0)
            young = reborn[age[reborn] < newest]
            if young.numel() == 0:
                continue
            for param, dim, index in group.entries(young):
                dims = own.setdefault(id(param), (param, {}))[1]
                if dim not in dims:
                    dims[dim] = torch.full((param.shape[dim],), _NEVER, dtype=torch.int64)
                # Outgoing columns: each unit's block of columns, in the units' order.
                per_index = age[young].repeat_interleave(index.numel() // young.numel())
                dims[dim].scatter_reduce_(0, index, per_index, "amin")
        for param, dims in own.values():
            t = count(param)
            if t is None:
                continue
            setting = settings[id(param)]
            state = optimizer.state[param]
            moments = (state["exp_avg"], state["max_exp_avg_sq" if setting.get("amsgrad") else "exp_avg_sq"])
            lr, eps = float(setting["lr"]), float(setting["eps"])
            beta1, beta2 = (float(b) for b in setting["betas"])
            hyper = (t, lr, beta1, beta2, eps)
            tail = [1] * (param.dim() - 1)
            rows, cols = dims.get(0), dims.get(1)
            young_rows = None if rows is None else rows < t
            young_cols = None if cols is None else cols < t
            if young_rows is not None and bool(young_rows.any()):
                r = young_rows.nonzero().flatten()
                first, second = _adam_factors(rows[r], *hyper[1:], param)
                first, second = first.view(-1, *tail), second.view(-1, *tail)
                if young_cols is not None and bool(young_cols.any()):  # entries of two young units
                    # Only the young columns' factors are ever picked (the others' counts are _NEVER).
                    c = young_cols.nonzero().flatten()
                    col_first, col_second = (
                        torch.zeros(len(cols), dtype=param.dtype, device=param.device).index_copy_(
                            0, c.to(param.device), factor
                        )
                        for factor in _adam_factors(cols[c], *hyper[1:], param)
                    )
                    col_view = (1, -1, *tail[1:])
                    by_row = (rows[r].view(-1, 1) <= cols.view(1, -1)).view(len(r), -1, *tail[1:])
                    by_row = by_row.to(param.device)
                    first = torch.where(by_row, first, col_first.view(col_view))
                    second = torch.where(by_row, second, col_second.view(col_view))
                r = r.to(param.device)
                m, v = (x.index_select(0, r) for x in moments)
                param.index_add_(0, r, _adam_correction(m, v, first, second, *hyper))
            if young_cols is not None and bool(young_cols.any()):
                c = young_cols.nonzero().flatten()
                first, second = _adam_factors(cols[c], *hyper[1:], param)
                col_view = (1, -1, *tail[1:])
                c = c.to(param.device)
                m, v = (x.index_select(1, c) for x in moments)
                correction = _adam_correction(m, v, first.view(col_view), second.view(col_view), *hyper)
                if young_rows is not None:  # corrected with both counts above
                    correction.masked_fill_(young_rows.to(param.device).view(-1, *tail), 0.0)
                param.index_add_(1, c, correction)

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
