"""The selective stream: examples arrive in chunks and the learner labels only those it wants.

Stream-based (selective-sampling) active learning: round 0 labels ``initial`` examples of a seeded
arrival order; then each round ``query_size`` more examples arrive, the current model scores them with a
row-wise acquisition function (e.g. ``margin``), and only the most wanted are labeled. The others are
discarded: a stream does not come back to them. What gets labeled is set by a budget:

- ``label_fraction``: the top fraction of each chunk by score (e.g. 0.25: a quarter of every chunk);
- ``label_threshold``: every arrival whose score is at least this value (an uncertainty threshold;
  how many that is changes from round to round);
- ``label_budget``: an overall cap on labels after round 0; once spent, later chunks label nothing.

A threshold may be combined with a fraction (both must hold) and either with the overall cap.

References:
    Cohn, Atlas & Ladner, "Improving Generalization with Active Learning", Machine Learning 15, 1994
    (selective sampling); Settles, "Active Learning Literature Survey", 2009, Sec. 2.2.
"""

from __future__ import annotations

import math

import torch

from activews.errors import ActivewsError
from activews.streams.acquisition import get_acquisition
from activews.streams.base import ProbaFn, Round, Stream, register_stream, round_sizes

NEEDS_BUDGET = (
    "the selective stream needs a labeling budget: --label-fraction F (e.g. 0.25) and/or --label-threshold T"
)


@register_stream("selective")
class SelectiveStream(Stream):
    """Chunks arrive in a seeded order; the learner labels the most wanted part of each chunk.

    Args:
        pool_size: examples in the training pool (the whole stream).
        generator: seeds the arrival order and the ``random`` acquisition.
        initial: examples labeled in round 0 (the first arrivals, all labeled).
        query_size: examples arriving in each later round (the chunk size).
        rounds: number of rounds; 0 runs until the pool has arrived.
        acquisition: a row-wise acquisition function (scores from predicted probabilities).
        label_fraction: label this top fraction of each chunk (rounded up; at least one when > 0).
        label_threshold: label arrivals whose score is at least this value.
        label_budget: at most this many labels after round 0, over the whole stream.
        score_batch: arrivals scored per forward pass.
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
        label_fraction: float | None = None,
        label_threshold: float | None = None,
        label_budget: int | None = None,
        score_batch: int = 8192,
    ) -> None:
        super().__init__(pool_size, generator)
        self.arrived = round_sizes(pool_size, initial, query_size, rounds)  # examples arrived by each round
        if label_fraction is None and label_threshold is None:
            raise ActivewsError(NEEDS_BUDGET)
        if label_fraction is not None and not 0.0 < label_fraction <= 1.0:
            raise ActivewsError(f"--label-fraction must be in (0, 1], got {label_fraction}")
        if label_budget is not None and label_budget < 0:
            raise ActivewsError(f"--label-budget must be >= 0, got {label_budget}")
        if score_batch < 1:
            raise ActivewsError(f"score_batch must be >= 1, got {score_batch}")
        self.acquisition_name = acquisition
        self.acquisition = get_acquisition(acquisition)
        if not callable(self.acquisition) or getattr(self.acquisition, "select", None) is not None:
            raise ActivewsError(
                f"the selective stream scores each arrival on its own; acquisition {acquisition!r} selects "
                f"whole batches; use least_confidence, margin, entropy or random"
            )
        self.label_fraction, self.label_threshold, self.label_budget = (
            label_fraction,
            label_threshold,
            label_budget,
        )
        self.score_batch = score_batch
        self.order = torch.randperm(pool_size, generator=generator)

    @property
    def num_rounds(self) -> int:
        return len(self.arrived)

    def first(self) -> Round:
        labeled = self.order[: self.arrived[0]]
        return Round(0, labeled, labeled)

    def chunk(self, r: int) -> torch.Tensor:
        """Pool indices of the examples arriving in round ``r`` (``r >= 1``)."""
        return self.order[self.arrived[r - 1] : self.arrived[r]]

    def next(self, prev: Round, predict_proba: ProbaFn | None = None) -> Round:
        r = prev.index + 1
        if r >= self.num_rounds:
            raise ActivewsError(f"the stream has only {self.num_rounds} rounds")
        if predict_proba is None:
            raise ActivewsError(
                "the selective stream needs the current model's predict_proba to choose labels"
            )
        arrivals = self.chunk(r)
        scores = torch.cat(
            [
                self.acquisition(predict_proba(arrivals[i : i + self.score_batch]), generator=self.generator)
                .float()
                .cpu()
                for i in range(0, len(arrivals), self.score_batch)
            ]
        )
        keep = torch.ones(len(arrivals), dtype=torch.bool)
        if self.label_threshold is not None:
            keep &= scores >= self.label_threshold
        order = torch.argsort(scores, descending=True, stable=True)
        limit = len(arrivals)
        if self.label_fraction is not None:
            limit = math.ceil(self.label_fraction * len(arrivals))
        if self.label_budget is not None:
            spent = prev.n_labeled - self.arrived[0]
            limit = min(limit, max(0, self.label_budget - spent))
        chosen = order[keep[order]][:limit]
        new = arrivals[chosen]
        return Round(r, torch.cat([prev.labeled, new]), new)
