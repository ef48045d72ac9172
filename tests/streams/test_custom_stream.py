"""A stream registered by a user runs in a bench: :meth:`Stream.from_config` hands it the bench settings
its ``__init__`` names."""

from __future__ import annotations

import pytest
import torch

from activews import BenchConfig, run_bench
from activews.engine.setup import make_stream
from activews.streams import STREAMS, Round, Stream, register_stream
from activews.streams.base import round_sizes


class Doubling(Stream):
    """Labels ``initial`` examples, then doubles the labeled set each round (in a seeded order)."""

    def __init__(self, pool_size: int, generator: torch.Generator, *, initial: int = 10, rounds: int = 3):
        super().__init__(pool_size, generator)
        self.sizes = [min(initial * 2**r, pool_size) for r in range(rounds)]
        self.order = torch.randperm(pool_size, generator=generator)

    @property
    def num_rounds(self) -> int:
        return len(self.sizes)

    def first(self) -> Round:
        return Round(0, self.order[: self.sizes[0]], self.order[: self.sizes[0]])

    def next(self, prev: Round, predict_proba=None) -> Round:
        r = prev.index + 1
        return Round(r, self.order[: self.sizes[r]], self.order[self.sizes[r - 1] : self.sizes[r]])


@pytest.fixture
def doubling():
    register_stream("doubling")(Doubling)
    yield
    STREAMS.unregister("doubling")


def test_a_registered_stream_runs_in_a_bench_with_the_settings_it_names(doubling):
    config = BenchConfig.build(
        stream="doubling", n_examples=600, initial=40, rounds=3, seeds=1, strategies=[]
    )
    stream = make_stream(config, 420, torch.Generator().manual_seed(0))
    assert isinstance(stream, Doubling) and stream.sizes == [40, 80, 160]  # initial and rounds came through
    result = run_bench(config)
    assert sorted({(r["round"], r["n_labeled"]) for r in result.records}) == [(0, 40), (1, 80), (2, 160)]
    assert {row["arm"] for row in result.summary} == {"random", "warm"}


def test_from_config_passes_only_keyword_parameters_the_stream_declares():
    config = BenchConfig.build(stream="passive", initial=100, query_size=50, rounds=4)
    built = make_stream(config, 1000, torch.Generator().manual_seed(0))
    assert built.sizes == round_sizes(1000, 100, 50, 4)
    assert not hasattr(built, "acquisition")  # active-stream settings are not passed to a passive stream
