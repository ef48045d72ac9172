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

References:
    Ash & Adams, "On Warm-Starting Neural Network Training", NeurIPS 2020 (arXiv 1910.08475), Sec. 4.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from activews.errors import ActivewsError

__all__ = [
    "DIAGNOSTICS",
    "check_diagnostics",
    "GradNormProbe",
    "flat_parameters",
    "weight_change",
    "RECORD_FIELDS",
]

DIAGNOSTICS: dict[str, str] = {
    "grad_norms": "gradient norm on the new vs the old examples during the round's first epoch (eval mode)",
    "weight_change": "distance and correlation between the round's starting weights and last round's final ones",
}
"""Diagnostic names and what each records."""

RECORD_FIELDS: dict[str, tuple[str, ...]] = {
    "grad_norms": ("grad_norm_new", "grad_norm_old", "grad_norm_ratio", "grad_norm_ratio_first"),
    "weight_change": ("init_distance", "init_relative_distance", "init_correlation"),
}
"""The record fields each diagnostic adds."""


def check_diagnostics(names: Iterable[str]) -> tuple[str, ...]:
    """Validate diagnostic names (``all`` expands to every one); a one-line error names the known ones."""
    out: list[str] = []
    for name in names:
        if name == "all":
            out += list(DIAGNOSTICS)
        elif name in DIAGNOSTICS:
            out.append(name)
        else:
            raise ActivewsError(
                f"unknown diagnostic {name!r}; choose from {', '.join(DIAGNOSTICS)} or all "
                f"(e.g. --diagnostics grad_norms,weight_change)"
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
