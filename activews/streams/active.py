"""The active stream: pool-based selection of the examples the current model wants most."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from activews.errors import ActivewsError
from activews.streams.acquisition import ScoringSelector, get_acquisition, make_acquisition
from activews.streams.base import ProbaFn, Round, Stream, register_stream, round_sizes

# What a view must offer for each entry of BatchSelector.needs (a plain function offers only "proba").
_NEEDS = {"embed": ("embed", "embed_proba"), "mc_proba": ("mc_proba",)}


@register_stream("active")
class ActiveStream(Stream):
    """Pool-based active learning.

    Round 0 labels ``initial`` random (seeded) examples. After each round the current model looks at the
    candidates (every unlabeled example, or with ``pool_subsample=N`` a seeded random ``N`` of them, drawn
    anew each round) and the acquisition chooses the ``query_size`` it wants most: row-wise functions and
    ``bald`` score the candidates in windows of ``score_batch`` (only the score vector is kept) and take
    the top ones; ``badge`` and ``coreset`` select the batch greedily (see
    :mod:`activews.streams.selectors` for what they keep). ``rounds=0`` runs until the pool is labeled;
    the last round then takes the remainder.

    Args:
        pool_size: examples in the training pool.
        generator: seeds the round-0 draw, the candidate subsample and the acquisition's randomness.
        initial: examples labeled in round 0.
        query_size: examples added per round.
        rounds: number of rounds (0: until the pool is used up).
        acquisition: a registered acquisition (``activews.streams.list_acquisitions()``).
        score_batch: pool examples per forward pass when selecting.
        acquisition_params: the acquisition's parameters, e.g. ``{"samples": 20}`` for ``bald``.
        pool_subsample: candidates per round (None: every unlabeled example); at least ``query_size``.
    """

    def __init__(
        self,
        pool_size: int,
        generator: torch.Generator,
        *,
        initial: int = 1000,
        query_size: int = 1000,
        rounds: int = 7,
        acquisition: str = "margin",
        score_batch: int = 8192,
        acquisition_params: Mapping[str, Any] | None = None,
        pool_subsample: int | None = None,
    ) -> None:
        super().__init__(pool_size, generator)
        self.sizes = round_sizes(pool_size, initial, query_size, rounds)
        self.initial, self.query_size = initial, query_size
        if score_batch < 1:
            raise ActivewsError(f"score_batch must be >= 1, got {score_batch}")
        self.score_batch = score_batch
        self.acquisition_name = acquisition
        self.acquisition = get_acquisition(acquisition)  # the registered entry (function or selector class)
        self.selector = make_acquisition(acquisition, acquisition_params, score_batch=score_batch)
        if pool_subsample is not None:
            largest = max((b - a for a, b in zip(self.sizes, self.sizes[1:], strict=False)), default=0)
            if pool_subsample < max(1, largest):
                raise ActivewsError(
                    f"--pool-subsample {pool_subsample} is smaller than the {largest} examples a round "
                    f"labels; raise it to at least {max(1, largest)} or lower --query-size"
                )
        self.pool_subsample = pool_subsample

    @property
    def num_rounds(self) -> int:
        return len(self.sizes)

    def first(self) -> Round:
        labeled = torch.randperm(self.pool_size, generator=self.generator)[: self.initial]
        return Round(0, labeled, labeled)

    def check_model(self, model: nn.Module) -> None:
        """The acquisition's own check (e.g. ``bald`` needs dropout), before any training."""
        self.selector.check(model)

    def candidates(self, labeled: torch.Tensor) -> torch.Tensor:
        """Sorted pool indices the acquisition chooses from, given the boolean ``labeled`` mask.

        Every unlabeled example, or a seeded random ``pool_subsample`` of them (drawn from the stream's
        generator, so the same seed gives the same candidates) when there are more.
        """
        unlabeled = (~labeled).nonzero().squeeze(1)
        if self.pool_subsample is None or self.pool_subsample >= len(unlabeled):
            return unlabeled
        keep = torch.randperm(len(unlabeled), generator=self.generator)[: self.pool_subsample]
        return unlabeled[keep.sort().values]

    def scores(self, predict_proba: ProbaFn, labeled: torch.Tensor | None = None) -> torch.Tensor:
        """Acquisition scores of every pool example; labeled ones (a boolean mask) score ``-inf``.

        For acquisitions that score examples one by one (row-wise functions, ``bald``). The pool is
        walked in contiguous windows of ``score_batch`` examples and only the unlabeled examples of each
        window are scored, so memory beyond the model's batch is the score vector (4 bytes per example)
        plus the mask (1 byte per example).
        """
        if not isinstance(self.selector, ScoringSelector):
            raise ActivewsError(
                f"acquisition {self.acquisition_name!r} selects whole batches and gives no per-example scores"
            )
        self._check_view(predict_proba)
        out = torch.full((self.pool_size,), float("-inf"))
        for start in range(0, self.pool_size, self.score_batch):
            stop = min(start + self.score_batch, self.pool_size)
            idx: slice | torch.Tensor = slice(start, stop)  # a view of the pool: no gather copy
            if labeled is not None and labeled[start:stop].any():
                idx = torch.arange(start, stop)[~labeled[start:stop]]
                if not idx.numel():
                    continue
            out[idx] = self.selector.score(predict_proba, idx, self.generator).float().cpu()
        return out

    def _check_view(self, view: ProbaFn) -> None:
        for need in sorted(self.selector.needs):
            if any(not callable(getattr(view, attr, None)) for attr in _NEEDS.get(need, ())):
                raise ActivewsError(
                    f"acquisition {self.acquisition_name!r} needs the model itself ({need}), not only its "
                    f"probabilities; pass activews.streams.ModelView(model, x_pool) to next()"
                )

    def next(self, prev: Round, predict_proba: ProbaFn | None = None) -> Round:
        """The next round: the acquisition's choice among the candidates, given the current model.

        ``predict_proba`` is a :class:`~activews.streams.base.ModelView` (what a bench passes) or, for
        acquisitions that only need probabilities, any function from pool indices to probabilities.
        """
        if predict_proba is None:
            raise ActivewsError(
                "the active stream needs the current model's predict_proba to select examples"
            )
        r = prev.index + 1
        if r >= self.num_rounds:
            raise ActivewsError(f"the stream has only {self.num_rounds} rounds")
        self._check_view(predict_proba)
        is_labeled = torch.zeros(self.pool_size, dtype=torch.bool)
        is_labeled[prev.labeled] = True
        k = self.sizes[r] - self.sizes[r - 1]
        candidates = self.candidates(is_labeled)
        new = self.selector.select(predict_proba, candidates, prev.labeled, k, self.generator)
        new = torch.as_tensor(new, dtype=torch.long).cpu()
        valid = new.shape == (k,) and len(new.unique()) == k and bool(torch.isin(new, candidates).all())
        if not valid:
            raise ActivewsError(
                f"acquisition {self.acquisition_name!r} returned {tuple(new.shape)} indices; it must return "
                f"{k} distinct unlabeled pool indices taken from its candidates"
            )
        return Round(r, torch.cat([prev.labeled, new]), new)
