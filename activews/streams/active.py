"""The active stream: pool-based selection of the examples the current model wants most."""

from __future__ import annotations

import torch

from activews.errors import ActivewsError
from activews.streams.acquisition import get_acquisition
from activews.streams.base import ProbaFn, Round, Stream, register_stream, round_sizes


@register_stream("active")
class ActiveStream(Stream):
    """Pool-based active learning.

    Round 0 labels ``initial`` random (seeded) examples. After each round the current model scores the
    unlabeled pool with ``acquisition`` (in batches of ``score_batch``; only the score vector is kept)
    and the ``query_size`` highest-scoring examples are labeled next. ``rounds=0`` runs until the pool
    is labeled; the last round then takes the remainder.
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
    ) -> None:
        super().__init__(pool_size, generator)
        self.sizes = round_sizes(pool_size, initial, query_size, rounds)
        self.initial, self.query_size = initial, query_size
        self.acquisition_name = acquisition
        self.acquisition = get_acquisition(acquisition)
        if score_batch < 1:
            raise ActivewsError(f"score_batch must be >= 1, got {score_batch}")
        self.score_batch = score_batch

    @property
    def num_rounds(self) -> int:
        return len(self.sizes)

    def first(self) -> Round:
        labeled = torch.randperm(self.pool_size, generator=self.generator)[: self.initial]
        return Round(0, labeled, labeled)

    def scores(self, predict_proba: ProbaFn, labeled: torch.Tensor | None = None) -> torch.Tensor:
        """Acquisition scores of every pool example; labeled ones (a boolean mask) score ``-inf``.

        The pool is walked in contiguous windows of ``score_batch`` examples and only the unlabeled
        examples of each window are scored, so memory beyond the model's batch is the score vector
        (4 bytes per example) plus the mask (1 byte per example).
        """
        out = torch.full((self.pool_size,), float("-inf"))
        for start in range(0, self.pool_size, self.score_batch):
            stop = min(start + self.score_batch, self.pool_size)
            idx: slice | torch.Tensor = slice(start, stop)  # a view of the pool: no gather copy
            if labeled is not None and labeled[start:stop].any():
                idx = torch.arange(start, stop)[~labeled[start:stop]]
                if not idx.numel():
                    continue
            probs = predict_proba(idx)
            out[idx] = self.acquisition(probs, generator=self.generator).float().cpu()
        return out

    def next(self, prev: Round, predict_proba: ProbaFn | None = None) -> Round:
        if predict_proba is None:
            raise ActivewsError(
                "the active stream needs the current model's predict_proba to select examples"
            )
        r = prev.index + 1
        if r >= self.num_rounds:
            raise ActivewsError(f"the stream has only {self.num_rounds} rounds")
        is_labeled = torch.zeros(self.pool_size, dtype=torch.bool)
        is_labeled[prev.labeled] = True
        scores = self.scores(predict_proba, is_labeled)
        new = torch.topk(scores, self.sizes[r] - self.sizes[r - 1], sorted=True).indices
        return Round(r, torch.cat([prev.labeled, new]), new)
