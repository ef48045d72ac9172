"""What decides which examples are labeled at each round."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from activews.errors import ActivewsError
from activews.registry import Registry

__all__ = ["Round", "Stream", "STREAMS", "register_stream", "ProbaFn", "check_sizes", "round_sizes"]

ProbaFn = Callable[[torch.Tensor | slice], torch.Tensor]
"""Maps pool indices (a 1-D index tensor, or a ``slice`` for a contiguous window) to predicted class
probabilities of shape ``(number of examples, C)``; ``x_pool[indices]`` works for both."""


@dataclass(frozen=True)
class Round:
    """One round's labeled set.

    Attributes:
        index: round number, from 0.
        labeled: indices (into the training pool) of every example labeled so far, in labeling order.
        new: the indices that were added in this round (all of ``labeled`` in round 0).
    """

    index: int
    labeled: torch.Tensor
    new: torch.Tensor

    @property
    def n_labeled(self) -> int:
        return int(self.labeled.numel())

    @property
    def n_new(self) -> int:
        return int(self.new.numel())

    def new_mask(self) -> torch.Tensor:
        """Boolean mask over ``labeled``: True where the example is new this round."""
        mask = torch.zeros(self.n_labeled, dtype=torch.bool)
        mask[self.n_labeled - self.n_new :] = True
        return mask


class Stream(ABC):
    """A sequence of rounds over a pool of ``pool_size`` training examples.

    Subclasses implement :meth:`first` and :meth:`next`. ``num_rounds`` is fixed at construction so
    that a bench can show progress and validate sizes before any training.
    """

    name: str = ""

    def __init__(self, pool_size: int, generator: torch.Generator) -> None:
        self.pool_size = int(pool_size)
        self.generator = generator

    @property
    @abstractmethod
    def num_rounds(self) -> int: ...

    @abstractmethod
    def first(self) -> Round:
        """The round-0 labeled set."""

    @abstractmethod
    def next(self, prev: Round, predict_proba: ProbaFn | None = None) -> Round:
        """The round after ``prev``; active streams query ``predict_proba`` on unlabeled examples."""

    def rounds(self, predict_proba_for: Callable[[Round], ProbaFn | None] | None = None):
        """Iterate over all rounds (``predict_proba_for(prev)`` supplies the model after each round)."""
        current = self.first()
        yield current
        for _ in range(1, self.num_rounds):
            current = self.next(current, predict_proba_for(current) if predict_proba_for else None)
            yield current


STREAMS: Registry[type[Stream]] = Registry("stream")


def register_stream(name: str) -> Callable[[type[Stream]], type[Stream]]:
    def decorate(cls: type[Stream]) -> type[Stream]:
        cls.name = name
        STREAMS.register(name, cls)
        return cls

    return decorate


def check_sizes(pool_size: int, initial: int, query_size: int, rounds: int) -> None:
    """Raise a one-line error unless ``initial + (rounds-1) * query_size`` examples fit in the pool.

    ``rounds=0`` means "until the pool is used up" and only needs ``initial`` to fit.
    """
    if rounds < 0:
        raise ActivewsError(f"rounds must be >= 1 (or 0: until the pool is used up), got {rounds}")
    if initial < 1:
        raise ActivewsError(f"initial must be >= 1, got {initial}")
    if query_size < 1:
        raise ActivewsError(f"query size must be >= 1, got {query_size}")
    if rounds == 0 and initial > pool_size:
        raise ActivewsError(
            f"initial {initial} is larger than the training pool ({pool_size} examples); lower --initial"
        )
    need = initial + (max(rounds, 1) - 1) * query_size
    if need > pool_size:
        most = (pool_size - initial) // query_size + 1 if initial <= pool_size else 0
        raise ActivewsError(
            f"initial {initial} + {max(rounds, 1) - 1} rounds x query size {query_size} = {need} examples, but the "
            f"training pool has {pool_size}; lower --initial, --query-size or --rounds (at most {most} round{'s' if most != 1 else ''})"
        )


def round_sizes(pool_size: int, initial: int, query_size: int, rounds: int) -> list[int]:
    """Labeled-set size of every round: ``initial + r * query_size``.

    ``rounds=0`` runs until the pool is used up (the paper's online protocol); the last round then adds
    the remainder, which may be smaller than ``query_size``.
    """
    check_sizes(pool_size, initial, query_size, rounds)
    if rounds == 0:
        rounds = -(-(pool_size - initial) // query_size) + 1
    return [min(initial + r * query_size, pool_size) for r in range(rounds)]
