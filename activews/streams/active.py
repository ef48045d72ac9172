"""The active stream: pool-based selection of the examples the current model wants most."""

from __future__ import annotations

import torch

from activews.errors import ActivewsError
from activews.streams.acquisition import get_acquisition
from activews.streams.base import ProbaFn, Round, Stream, check_sizes, register_stream


@register_stream("active")
class ActiveStream(Stream):
    """Pool-based active learning.

    Round 0 labels ``initial`` random (seeded) examples. After each round the current model scores the
    unlabeled pool with ``acquisition`` (in batches of ``score_batch``; only the score vector is kept)
    and the ``query_size`` highest-scoring examples are labeled next.
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
        check_sizes(pool_size, initial, query_size, rounds)
        self.initial, self.query_size, self._rounds = initial, query_size, rounds
        self.acquisition_name = acquisition
        self.acquisition = get_acquisition(acquisition)
        if score_batch < 1:
            raise ActivewsError(f"score_batch must be >= 1, got {score_batch}")
        self.score_batch = score_batch

    @property
    def num_rounds(self) -> int:
        return self._rounds

    def first(self) -> Round:
        labeled = torch.randperm(self.pool_size, generator=self.generator)[: self.initial]
        return Round(0, labeled, labeled)

    def scores(self, unlabeled: torch.Tensor, predict_proba: ProbaFn) -> torch.Tensor:
        """Acquisition scores of ``unlabeled`` pool indices, computed batch by batch."""
        out = torch.empty(unlabeled.numel(), dtype=torch.float32)
        for start in range(0, unlabeled.numel(), self.score_batch):
            chunk = unlabeled[start : start + self.score_batch]
            probs = predict_proba(chunk)
            out[start : start + chunk.numel()] = (
                self.acquisition(probs, generator=self.generator).float().cpu()
            )
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
        unlabeled = torch.nonzero(~is_labeled).squeeze(1)
        scores = self.scores(unlabeled, predict_proba)
        top = torch.topk(scores, self.query_size, sorted=True).indices
        new = unlabeled[top]
        return Round(r, torch.cat([prev.labeled, new]), new)
