"""The passive stream: examples arrive in a seeded order, by fixed increments or a fraction schedule."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from activews.errors import ActivewsError
from activews.streams.base import ProbaFn, Round, Stream, register_stream, round_sizes


@register_stream("passive")
class PassiveStream(Stream):
    """Examples arrive in a random (seeded) order.

    Either ``initial`` examples then ``query_size`` more per round, for ``rounds`` rounds (``0``: until the
    pool is used up, the paper's online protocol); or a
    fraction ``schedule`` of the pool, e.g. ``(0.5, 1.0)`` for the paper's two-phase protocol.
    """

    def __init__(
        self,
        pool_size: int,
        generator: torch.Generator,
        *,
        initial: int = 1000,
        query_size: int = 1000,
        rounds: int = 7,
        schedule: Sequence[float] | None = None,
    ) -> None:
        super().__init__(pool_size, generator)
        if schedule:
            sizes = schedule_sizes(schedule, pool_size)
        else:
            sizes = round_sizes(pool_size, initial, query_size, rounds)
        self.sizes = sizes
        self.order = torch.randperm(pool_size, generator=generator)

    @property
    def num_rounds(self) -> int:
        return len(self.sizes)

    def first(self) -> Round:
        labeled = self.order[: self.sizes[0]]
        return Round(0, labeled, labeled)

    def next(self, prev: Round, predict_proba: ProbaFn | None = None) -> Round:
        r = prev.index + 1
        if r >= self.num_rounds:
            raise ActivewsError(f"the stream has only {self.num_rounds} rounds")
        return Round(r, self.order[: self.sizes[r]], self.order[self.sizes[r - 1] : self.sizes[r]])


def schedule_sizes(schedule: Sequence[float], pool_size: int) -> list[int]:
    """Labeled-set sizes for a fraction schedule; fractions must increase within (0, 1]."""
    fractions = [float(f) for f in schedule]
    if any(not 0.0 < f <= 1.0 for f in fractions):
        raise ActivewsError(
            f"schedule fractions must lie in (0, 1], got {fractions}; e.g. --schedule 0.5,1.0"
        )
    if any(b <= a for a, b in zip(fractions, fractions[1:], strict=False)):
        raise ActivewsError(f"schedule fractions must increase, got {fractions}; e.g. --schedule 0.5,1.0")
    sizes = [max(1, int(round(f * pool_size))) for f in fractions]
    if any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)):
        raise ActivewsError(f"schedule {fractions} adds no example in some round for a pool of {pool_size}")
    return sizes
