"""Per-round measurements behind the paper's explanation of the warm-start penalty.

Turned on with ``BenchConfig.diagnostics`` (``--diagnostics NAME,...`` on the CLI); each adds fields to
the round's record, so they are stored, exported and plotted with everything else. None of them
changes the numbers a run produces: they use no random generator and do not touch the optimizer.

``grad_norms``
    During the first epoch of each round, for every minibatch that holds both new and old examples,
    the norm of the loss gradient on the batch's new examples and, separately, on as many of its old
    ones (equal counts, since a mean over fewer examples has a larger norm from noise alone), in eval
    mode (Ash & Adams 2020, Fig. 5: a warm-started model's gradients on new data start far larger than
    on old data; shrink-perturb evens them out). Fields: ``grad_norm_new``, ``grad_norm_old`` (means
    over the probed minibatches), ``grad_norm_ratio`` (their ratio), ``grad_norm_ratio_first`` (the
    ratio on the round's first probed minibatch, before any step on the new data). Empty in round 0,
    where every example is new. Cost: two extra forward/backward passes per step of the first epoch.
``weight_change``
    How far the strategy moved the weights at the start of the round: the L2 distance between the
    round's starting parameters and the previous round's final ones (``init_distance``), that distance
    relative to the previous weights' norm (``init_relative_distance``), and the Pearson correlation of
    the two flattened parameter vectors (``init_correlation``: 1 for ``warm``, about 0 for ``random``).
    Cost: one copy of the parameters per round.

The plasticity diagnostics are measured on the model as training left it at the end of the round (after
``train_to_criterion``, before the test evaluation), in eval mode and without autograd:

``dormant_units``
    The fraction of hidden units (outputs of the activation modules, :mod:`activews.units`) that are
    tau-dormant (Sokar et al. 2023): a unit's mean |activation| over the measured examples divided by
    the mean of that over its layer is at most tau. ``dormant_fraction`` uses tau = 0.025 (the paper's
    value for its figures), ``dead_fraction`` tau = 0 (units whose output is exactly 0 on every
    measured example, e.g. ReLUs that never fire). Cost: one eval forward pass over the measured
    examples.
``feature_rank``
    The effective rank of the penultimate features, the input of the model's last ``nn.Linear`` (the
    head; captured with a forward pre-hook) on the measured examples: ``srank_delta`` of the feature
    matrix (Kumar et al. 2021), the smallest k whose top-k singular values sum to at least
    ``(1 - delta)`` of the total, delta = 0.01 (``feature_rank``), and that rank divided by the most it
    can be, min(examples, feature dim) (``feature_rank_fraction``). ``None`` for a model without a
    ``nn.Linear``. Cost: the same forward pass (shared with ``dormant_units``) and the singular values
    of the (examples x feature dim) float64 matrix (from its smaller Gram matrix).
``weights``
    The L2 norm of all parameters at the end of the round (``weight_norm``), their L2 distance from the
    round's starting parameters (after the strategy's ``init_round``, before training;
    ``distance_from_start``) and from the run's round-0 initial parameters, matched by name
    (``distance_from_init``). Cost: two copies of the parameters per round.

Each diagnostic is also an object (:class:`Diagnostic`) that the round step
(:class:`activews.engine.step.RoundStep`) calls at three points of a round: before the strategy's
``init_round`` (outside the clock of ``init_seconds``), before training (it may hand the trainer a probe)
and after training (it returns its record fields). :func:`make_diagnostics` turns names into objects in
the fixed order of the record's fields; :class:`Counterfactual` (``--counterfactual``) is one more.

The measured examples are the round's labeled examples: all of them when there are at most
:data:`MEASURE_EXAMPLES` (2,048), else that many evenly spaced through the labeled set (positions
``floor(i * n / 2048)``, old and new examples alike); no random generator is involved.

References:
    Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475), Sec. 4.
    Sokar et al., "The Dormant Neuron Phenomenon in Deep Reinforcement Learning", ICML 2023
    (arXiv 2302.12902).
    Kumar et al., "Implicit Under-Parameterization Inhibits Data-Efficient Deep Reinforcement
    Learning", ICLR 2021 (arXiv 2010.14498).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from activews.errors import ActivewsError
from activews.training import TrainConfig, autocast, evaluate, train_to_criterion
from activews.units import activation_modules, dormant_fraction, mean_abs_activation

if TYPE_CHECKING:  # the strategies import the trainer, not the diagnostics: no circle at run time
    from activews.strategies import InitContext

__all__ = [
    "DIAGNOSTICS",
    "DIAGNOSTIC_GROUPS",
    "check_diagnostics",
    "GradNormProbe",
    "flat_parameters",
    "weight_change",
    "RECORD_FIELDS",
    "MEASURE_EXAMPLES",
    "DORMANT_TAU",
    "SRANK_DELTA",
    "measure_positions",
    "srank",
    "singular_values",
    "penultimate_layer",
    "unit_fields",
    "weight_fields",
    "Probe",
    "Diagnostic",
    "WeightChange",
    "GradNorms",
    "UnitActivity",
    "Weights",
    "Counterfactual",
    "COUNTERFACTUAL_FIELDS",
    "make_diagnostics",
]

DIAGNOSTICS: dict[str, str] = {
    "grad_norms": "gradient norm on the new vs the old examples during the round's first epoch (eval mode)",
    "weight_change": "distance and correlation between the round's starting weights and last round's final ones",
    "dormant_units": "fraction of hidden units that are dormant (score <= 0.025) or dead (0) at the round's end",
    "feature_rank": "effective rank (srank, delta 0.01) of the penultimate features at the round's end",
    "weights": "parameter norm at the round's end, and its distance from the round's start and the run's init",
}
"""Diagnostic names and what each records."""

DIAGNOSTIC_GROUPS: dict[str, tuple[str, ...]] = {
    "plasticity": ("dormant_units", "feature_rank", "weights", "grad_norms"),
}
"""Names that stand for several diagnostics (``all`` stands for every one)."""

RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "grad_norms": ("grad_norm_new", "grad_norm_old", "grad_norm_ratio", "grad_norm_ratio_first"),
    "weight_change": ("init_distance", "init_relative_distance", "init_correlation"),
    "dormant_units": ("dormant_fraction", "dead_fraction"),
    "feature_rank": ("feature_rank", "feature_rank_fraction"),
    "weights": ("weight_norm", "distance_from_start", "distance_from_init"),
}
"""The record fields each diagnostic adds."""

MEASURE_EXAMPLES = 2048
"""At most this many of the round's labeled examples are measured by ``dormant_units`` and ``feature_rank``."""

DORMANT_TAU = 0.025
"""The threshold of ``dormant_fraction`` (``dead_fraction`` uses 0)."""

SRANK_DELTA = 0.01
"""The ``delta`` of ``feature_rank``'s srank."""


def check_diagnostics(names: Iterable[str]) -> tuple[str, ...]:
    """Validate diagnostic names (``all`` and the :data:`DIAGNOSTIC_GROUPS` expand); a one-line error
    names the known ones."""
    out: list[str] = []
    for name in names:
        if name == "all":
            out += list(DIAGNOSTICS)
        elif name in DIAGNOSTIC_GROUPS:
            out += list(DIAGNOSTIC_GROUPS[name])
        elif name in DIAGNOSTICS:
            out.append(name)
        else:
            groups = ", ".join(f"{g} (= {','.join(members)})" for g, members in DIAGNOSTIC_GROUPS.items())
            raise ActivewsError(
                f"unknown diagnostic {name!r}; choose from {', '.join(DIAGNOSTICS)}, {groups} or all "
                f"(e.g. --diagnostics plasticity,weight_change)"
            )
    return tuple(dict.fromkeys(out))


def _grad_norm(model: nn.Module, params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))


class GradNormProbe:
    """Measures the gradient norm on the new and on the old part of minibatches (``grad_norms``).

    Call it with a minibatch's positions in the labeled set before the optimizer step; it switches the
    model to eval mode (BatchNorm uses its running statistics, as in the paper's measurement), computes
    both gradients with :func:`torch.autograd.grad` (the parameters' ``.grad`` are left alone) and
    switches back.

    Args:
        x, y: the round's labeled data.
        new_mask: boolean mask over the labeled data, True for examples new this round.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, new_mask: torch.Tensor) -> None:
        self.x, self.y = x, y
        self.new_mask = new_mask.to(x.device)
        self.pairs: list[tuple[float, float]] = []

    def __call__(self, model: nn.Module, idx: torch.Tensor) -> None:
        is_new = self.new_mask[idx]
        new, old = idx[is_new], idx[~is_new]
        # The norm of a mean gradient shrinks with the number of examples averaged (noise averages out),
        # so both parts use the same count: the first k of each (the batch is already in random order).
        k = min(new.numel(), old.numel())
        if not k:
            return
        new, old = new[:k], old[:k]
        params = [p for p in model.parameters() if p.requires_grad]
        was_training = model.training
        model.eval()
        try:
            g_new = _grad_norm(model, params, self.x[new], self.y[new])
            g_old = _grad_norm(model, params, self.x[old], self.y[old])
        finally:
            model.train(was_training)
        self.pairs.append((g_new, g_old))

    def fields(self) -> dict[str, float | None]:
        """The record fields (``None`` when no minibatch held both new and old examples)."""
        if not self.pairs:
            return dict.fromkeys(RECORD_FIELDS["grad_norms"])
        new = sum(p[0] for p in self.pairs) / len(self.pairs)
        old = sum(p[1] for p in self.pairs) / len(self.pairs)
        first_new, first_old = self.pairs[0]
        return {
            "grad_norm_new": new,
            "grad_norm_old": old,
            "grad_norm_ratio": new / old if old > 0 else None,
            "grad_norm_ratio_first": first_new / first_old if first_old > 0 else None,
        }


def flat_parameters(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` as one detached float64 vector on the CPU (a copy)."""
    return torch.cat([p.detach().reshape(-1).to("cpu", torch.float64) for p in model.parameters()])


def weight_change(previous: torch.Tensor, model: nn.Module) -> dict[str, Any]:
    """``weight_change`` fields: ``model``'s parameters vs ``previous`` (from :func:`flat_parameters`)."""
    current = flat_parameters(model)
    if current.shape != previous.shape:
        raise ActivewsError(
            f"weight_change: the strategy changed the number of parameters ({previous.numel()} -> "
            f"{current.numel()}); drop --diagnostics weight_change for this strategy"
        )
    distance = float(torch.linalg.vector_norm(current - previous))
    norm = float(torch.linalg.vector_norm(previous))
    a, b = current - current.mean(), previous - previous.mean()
    denom = float(torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b))
    return {
        "init_distance": distance,
        "init_relative_distance": distance / norm if norm > 0 else None,
        "init_correlation": float((a * b).sum()) / denom if denom > 0 else None,
    }


# ------------------------------------------------------------------------ end-of-round measurements


def measure_positions(n: int, limit: int = MEASURE_EXAMPLES) -> torch.Tensor:
    """Positions of the examples measured out of ``n``: all of them when ``n <= limit``, else ``limit``
    evenly spaced ones, ``floor(i * n / limit)`` for ``i < limit`` (deterministic, no generator)."""
    if n <= limit:
        return torch.arange(n)
    return torch.arange(limit, dtype=torch.int64) * n // limit


def srank(singular_values: torch.Tensor, delta: float = SRANK_DELTA) -> int:
    """``srank_delta`` (Kumar et al. 2021): the smallest k with ``sum(top-k) >= (1 - delta) * sum(all)``
    of the singular values (any order); 0 when they are all 0 or there are none."""
    sv = torch.sort(singular_values.detach().to("cpu", torch.float64).reshape(-1), descending=True).values
    if sv.numel() == 0:
        return 0
    cumulative = torch.cumsum(sv, 0)
    total = float(cumulative[-1])
    if total <= 0:
        return 0
    return min(int((cumulative < (1 - delta) * total).sum()) + 1, sv.numel())


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """Singular values of a 2-D ``matrix`` in float64 on the CPU, as the square roots of the eigenvalues
    of its smaller Gram matrix (about 10x faster than an SVD for 2,048 x 4,096; values below about
    1e-8 of the largest lose their precision, which moves no srank)."""
    m = matrix.detach().to("cpu", torch.float64)
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    return torch.linalg.eigvalsh(gram).clamp_min(0).sqrt().flip(0)


def penultimate_layer(model: nn.Module) -> nn.Linear | None:
    """The model's last ``nn.Linear`` in ``model.modules()`` order (the head, for the built-in models),
    whose input ``feature_rank`` measures; None if it has none."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1] if linears else None


@torch.no_grad()
def unit_fields(
    model: nn.Module,
    x: torch.Tensor,
    *,
    dormant: bool = True,
    rank: bool = True,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """``dormant_units`` and/or ``feature_rank`` fields of ``model`` on the examples ``x``, from one
    eval-mode pass without autograd (the model's mode is restored; nothing else is touched).

    ``x`` is measured as given (:func:`measure_positions` picks a round's examples). Fields are ``None``
    when there is nothing to measure: no activation module (``dormant_units``), no ``nn.Linear`` or
    one that the forward pass never calls, or no example (``feature_rank``).
    """
    out: dict[str, Any] = {}
    head = penultimate_layer(model) if rank else None
    features: list[torch.Tensor] = []
    handle = None
    if head is not None:

        def capture(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            features.append(inputs[0].detach().reshape(-1, inputs[0].shape[-1]).to("cpu", torch.float64))

        handle = head.register_forward_pre_hook(capture)
    try:
        # mean_abs_activation drives the forward passes (eval mode, no autograd) even when it measures
        # no module, so the features come from the same pass as the activations.
        activity = mean_abs_activation(
            model, x, activation_modules(model) if dormant else [], batch_size=batch_size
        )
    finally:
        if handle is not None:
            handle.remove()
    if dormant:
        out["dormant_fraction"] = dormant_fraction(activity, DORMANT_TAU)
        out["dead_fraction"] = dormant_fraction(activity, 0.0)
    if rank:
        if features:
            phi = torch.cat(features)
            k = srank(singular_values(phi))
            most = min(phi.shape)
            out["feature_rank"] = k
            out["feature_rank_fraction"] = k / most if most else None
        else:
            out |= dict.fromkeys(RECORD_FIELDS["feature_rank"])
    return out


def _initial_vector(model: nn.Module, initial_state: Mapping[str, torch.Tensor]) -> torch.Tensor:
    parts = []
    for name, p in model.named_parameters():
        init = initial_state.get(name)
        if init is None or init.shape != p.shape:
            raise ActivewsError(
                f"weights: the model's parameter {name!r} "
                + ("is not in the run's initial model" if init is None else "changed shape since round 0")
                + "; drop --diagnostics weights for this strategy"
            )
        parts.append(init.detach().reshape(-1).to("cpu", torch.float64))
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


def weight_fields(
    model: nn.Module, start: torch.Tensor, initial_state: Mapping[str, torch.Tensor]
) -> dict[str, float]:
    """``weights`` fields of ``model`` (at the end of a round).

    Args:
        model: the trained model.
        start: :func:`flat_parameters` of the model the round's training started from.
        initial_state: the run's round-0 model (a ``state_dict``); only its parameters are used, matched
            by name to ``model.named_parameters()`` (buffers such as BatchNorm statistics are left out).
    """
    current = flat_parameters(model)
    if current.shape != start.shape:
        raise ActivewsError(
            f"weights: the number of parameters changed during the round ({start.numel()} -> "
            f"{current.numel()}); drop --diagnostics weights"
        )
    initial = _initial_vector(model, initial_state)
    return {
        "weight_norm": float(torch.linalg.vector_norm(current)),
        "distance_from_start": float(torch.linalg.vector_norm(current - start)),
        "distance_from_init": float(torch.linalg.vector_norm(current - initial)),
    }


# ------------------------------------------------------------------------ diagnostics as objects

Probe = Callable[[nn.Module, torch.Tensor], None]
"""What :func:`activews.training.train_to_criterion` calls before each step of a round's first epoch."""


class Diagnostic:
    """One per-round measurement, called by the round step (:class:`activews.engine.step.RoundStep`).

    A round calls, in this order: :meth:`before_init` with the previous round's trained model (before
    the strategy's ``init_round``, outside the clock of ``init_seconds``; in round 0, the initial draw),
    :meth:`before_training` with the model the round trains (after ``init_round``), which may return a
    probe for the first epoch's minibatches, and :meth:`after_training` with the trained model, which
    returns the record fields (before the test evaluation). ``ctx`` is the round's
    :class:`~activews.strategies.InitContext`: round index, labeled data, new-example mask and the
    run's initial weights. An object may keep state between these calls of one round; it must use no
    random generator the run uses and must leave the model and the optimizer as they were.

    Class attributes:
        name: the diagnostic's name (a key of :data:`DIAGNOSTICS`, or ``"counterfactual"``).

    Example:
        >>> class LossOnNew(Diagnostic):  # doctest: +SKIP
        ...     name = "loss_on_new"
        ...     fields = ("loss_on_new",)
        ...     def after_training(self, model, ctx):
        ...         x, y = ctx.x_labeled[ctx.new_mask], ctx.y_labeled[ctx.new_mask]
        ...         return {"loss_on_new": evaluate(model, x, y)[1]}
    """

    name: ClassVar[str] = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The diagnostic names this object measures (one, except for :class:`UnitActivity`)."""
        return (self.name,)

    @property
    def fields(self) -> tuple[str, ...]:
        """The record fields :meth:`after_training` returns, in their order (those of
        :data:`RECORD_FIELDS` for the built-in names; a diagnostic of another name overrides this)."""
        return tuple(f for name in self.names for f in RECORD_FIELDS.get(name, ()))

    def before_init(self, model: nn.Module, ctx: InitContext) -> None:
        """Called with the model the strategy will initialize from."""

    def before_training(self, model: nn.Module, ctx: InitContext) -> Probe | None:
        """Called with the model this round trains; may return a probe for the first epoch."""
        return None

    def after_training(self, model: nn.Module, ctx: InitContext) -> dict[str, Any]:
        """Called with the trained model; returns the record fields (keys in :attr:`fields` order)."""
        return {}


class WeightChange(Diagnostic):
    """``weight_change``: the round's starting weights vs the previous round's final ones
    (:func:`weight_change`); ``None`` fields in round 0."""

    name = "weight_change"

    def __init__(self) -> None:
        self._previous: torch.Tensor | None = None
        self._fields: dict[str, Any] = {}

    def before_init(self, model: nn.Module, ctx: InitContext) -> None:
        # A copy: strategies may work in place. Taken before the clock starts, so init_seconds stays
        # the strategy's own time.
        self._previous = flat_parameters(model) if ctx.round_index > 0 else None

    def before_training(self, model: nn.Module, ctx: InitContext) -> Probe | None:
        previous, self._previous = self._previous, None
        if previous is None:
            self._fields = dict.fromkeys(self.fields)
        else:
            self._fields = weight_change(previous, model)
        return None

    def after_training(self, model: nn.Module, ctx: InitContext) -> dict[str, Any]:
        return self._fields


class GradNorms(Diagnostic):
    """``grad_norms``: a :class:`GradNormProbe` over the round's first epoch."""

    name = "grad_norms"

    def __init__(self) -> None:
        self._probe: GradNormProbe | None = None

    def before_training(self, model: nn.Module, ctx: InitContext) -> Probe | None:
        if ctx.x_labeled is None or ctx.y_labeled is None or ctx.new_mask is None:
            self._probe = None  # nothing to tell new from old examples with
        else:
            self._probe = GradNormProbe(ctx.x_labeled, ctx.y_labeled, ctx.new_mask)
        return self._probe

    def after_training(self, model: nn.Module, ctx: InitContext) -> dict[str, Any]:
        probe, self._probe = self._probe, None
        return probe.fields() if probe is not None else dict.fromkeys(self.fields)


class UnitActivity(Diagnostic):
    """``dormant_units`` and/or ``feature_rank``: :func:`unit_fields` of the trained model on the
    round's measured examples (:func:`measure_positions`).

    One object stands for both names, because both come from the same forward pass.

    Args:
        dormant: measure ``dormant_units``.
        rank: measure ``feature_rank``.
        batch_size: examples per forward pass.
    """

    name = "unit_activity"

    def __init__(self, *, dormant: bool = True, rank: bool = True, batch_size: int = 4096) -> None:
        if not (dormant or rank):
            raise ValueError("UnitActivity measures dormant_units, feature_rank or both")
        self.dormant, self.rank, self.batch_size = dormant, rank, batch_size

    @property
    def names(self) -> tuple[str, ...]:
        return (("dormant_units",) if self.dormant else ()) + (("feature_rank",) if self.rank else ())

    def after_training(self, model: nn.Module, ctx: InitContext) -> dict[str, Any]:
        x = ctx.x_labeled
        if x is None:
            return dict.fromkeys(self.fields)
        x_m = x[measure_positions(len(x)).to(x.device)]
        return unit_fields(model, x_m, dormant=self.dormant, rank=self.rank, batch_size=self.batch_size)


class Weights(Diagnostic):
    """``weights``: :func:`weight_fields` of the trained model, from the round's starting weights and
    the run's initial ones (``ctx.initial_state``)."""

    name = "weights"

    def __init__(self) -> None:
        self._start: torch.Tensor | None = None

    def before_training(self, model: nn.Module, ctx: InitContext) -> Probe | None:
        self._start = flat_parameters(model)  # the weights this round's training starts from
        return None

    def after_training(self, model: nn.Module, ctx: InitContext) -> dict[str, Any]:
        start, self._start = self._start, None
        if start is None:
            raise RuntimeError("Weights.after_training without before_training (please report this)")
        return weight_fields(model, start, ctx.initial_state)


COUNTERFACTUAL_FIELDS: tuple[str, ...] = ("counterfactual_accuracy", "counterfactual_steps")
"""The record fields of :class:`Counterfactual`."""


class Counterfactual(Diagnostic):
    """A fresh model trained to the same criterion on this round's labeled set (``--counterfactual``).

    Its accuracy separates the two effects in an arm's gap to ``random``: the arm vs its counterfactual
    (same data, different start) is the initialization effect; the counterfactual vs ``random`` (fresh
    starts, different data) is the selection effect. Round 0 has no counterfactual (``None`` fields):
    every arm starts fresh on the same data there.

    Args:
        build: ``build(seed)`` returns a new draw of the arm's model, seeded by ``seed``, on its device.
        train: how the counterfactual is trained (the arm's training settings).
        x_test, y_test: the test data its accuracy is measured on.
        generator: its own generator (the seeds of its draws and its minibatch order), so that the
            arm's numbers do not depend on whether it runs.
    """

    name = "counterfactual"

    def __init__(
        self,
        build: Callable[[int], nn.Module],
        train: TrainConfig,
        x_test: torch.Tensor,
        y_test: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        self.build, self.train = build, train
        self.x_test, self.y_test, self.generator = x_test, y_test, generator

    @property
    def fields(self) -> tuple[str, ...]:
        return COUNTERFACTUAL_FIELDS

    def after_training(self, model: nn.Module, ctx: InitContext) -> dict[str, Any]:
        if ctx.round_index == 0 or ctx.x_labeled is None or ctx.y_labeled is None:
            return dict.fromkeys(COUNTERFACTUAL_FIELDS)
        draw = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        fresh = self.build(draw)
        stats, _ = train_to_criterion(fresh, ctx.x_labeled, ctx.y_labeled, self.train, self.generator)
        with autocast(ctx.device, self.train.precision):
            accuracy, _ = evaluate(fresh, self.x_test, self.y_test, self.train.eval_batch_size)
        return {"counterfactual_accuracy": accuracy, "counterfactual_steps": stats.steps}


def make_diagnostics(
    names: Iterable[str],
    *,
    batch_size: int = 4096,
    counterfactual: Counterfactual | None = None,
) -> list[Diagnostic]:
    """The :class:`Diagnostic` objects for ``names`` (as :func:`check_diagnostics` takes them).

    Whatever the order of ``names``, the objects come in one fixed order, which is the order of their
    fields in a round's record: ``weight_change``, ``grad_norms``, ``dormant_units`` and
    ``feature_rank`` (one :class:`UnitActivity`), ``weights``, then ``counterfactual`` if given.

    Args:
        names: diagnostic names, groups or ``all``.
        batch_size: examples per forward pass of :class:`UnitActivity`.
        counterfactual: appended last.
    """
    wanted = set(check_diagnostics(names))
    out: list[Diagnostic] = []
    if "weight_change" in wanted:
        out.append(WeightChange())
    if "grad_norms" in wanted:
        out.append(GradNorms())
    dormant, rank = "dormant_units" in wanted, "feature_rank" in wanted
    if dormant or rank:
        out.append(UnitActivity(dormant=dormant, rank=rank, batch_size=batch_size))
    if "weights" in wanted:
        out.append(Weights())
    if counterfactual is not None:
        out.append(counterfactual)
    return out
