"""The selective stream: chunks arrive in a seeded order; a budget decides which arrivals get labels."""

from __future__ import annotations

import math

import pytest
import torch

from activews.engine.config import BenchConfig
from activews.errors import ActivewsError
from activews.streams import PassiveStream, SelectiveStream
from tests.helpers import assert_one_line

POOL = 100
# A fixed "uncertainty" per pool example; the fake model's probabilities make margin = -(1 - 2u) rank them.
UNCERTAINTY = torch.rand(POOL, generator=torch.Generator().manual_seed(7)) * 0.49


def proba(idx: torch.Tensor) -> torch.Tensor:
    u = UNCERTAINTY[idx]
    return torch.stack([1 - u, u], dim=1)  # margin score = -(1 - 2u): higher u, more wanted


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rounds_of(stream: SelectiveStream) -> list:
    return list(stream.rounds(lambda _prev: proba))


def test_arrivals_follow_the_passive_order_and_the_fraction_labels_the_top_of_each_chunk():
    stream = SelectiveStream(POOL, gen(), initial=10, query_size=30, rounds=4, label_fraction=0.25)
    order = PassiveStream(POOL, gen(), initial=10, query_size=30, rounds=4).order
    assert torch.equal(stream.order, order)  # same seed, same arrival order as the passive stream
    rounds = rounds_of(stream)
    assert torch.equal(rounds[0].labeled, order[:10])
    for r in range(1, 4):
        arrivals = order[10 + 30 * (r - 1) : 10 + 30 * r]
        top = arrivals[torch.argsort(UNCERTAINTY[arrivals], descending=True)][: math.ceil(0.25 * 30)]
        assert rounds[r].new.tolist() == top.tolist()  # the 8 most uncertain arrivals, most wanted first
        assert torch.equal(rounds[r].labeled[: rounds[r - 1].n_labeled], rounds[r - 1].labeled)
    assert [r.n_labeled for r in rounds] == [10, 18, 26, 34]


def test_threshold_labels_every_arrival_above_it_and_an_overall_budget_caps_the_total():
    threshold = -0.6  # margin >= -0.6  <=>  u >= 0.2
    stream = SelectiveStream(POOL, gen(), initial=10, query_size=30, rounds=4, label_threshold=threshold)
    rounds = rounds_of(stream)
    for r in range(1, 4):
        arrivals = stream.chunk(r)
        assert set(rounds[r].new.tolist()) == set(arrivals[UNCERTAINTY[arrivals] >= 0.2].tolist())
    capped = rounds_of(
        SelectiveStream(
            POOL, gen(), initial=10, query_size=30, rounds=4, label_threshold=threshold, label_budget=15
        )
    )
    assert capped[-1].n_labeled - 10 == 15  # the cap, not the threshold, set the total
    spent = 0
    for r in range(
        1, 4
    ):  # each chunk takes its above-threshold arrivals, most wanted first, while budget lasts
        take = min(rounds[r].n_new, 15 - spent)
        assert capped[r].new.tolist() == rounds[r].new[:take].tolist()
        spent += take


def test_discarded_arrivals_never_come_back_and_rounds_zero_runs_to_the_end_of_the_stream():
    stream = SelectiveStream(POOL, gen(), initial=10, query_size=40, rounds=0, label_fraction=0.5)
    rounds = rounds_of(stream)
    assert len(rounds) == 4 and stream.arrived == [10, 50, 90, 100]
    seen = set(rounds[0].labeled.tolist())
    for r in range(1, 4):
        arrived = set(stream.chunk(r).tolist())
        assert set(rounds[r].new.tolist()) <= arrived and not arrived & seen
        seen |= arrived
    assert rounds[-1].n_new == 5  # half of the last, 10-example chunk


def test_the_random_acquisition_is_seeded():
    def new(seed: int) -> list[int]:
        stream = SelectiveStream(
            POOL, gen(seed), initial=10, query_size=30, rounds=2, label_fraction=0.5, acquisition="random"
        )
        return rounds_of(stream)[1].new.tolist()

    assert new(3) == new(3) and new(3) != new(4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a labeling budget: --label-fraction F"),
        ({"label_fraction": 1.5}, "--label-fraction must be in (0, 1]"),
        ({"label_fraction": 0.5, "label_budget": -1}, "--label-budget must be >= 0"),
    ],
)
def test_stream_errors(kwargs, message):
    with pytest.raises(
        ActivewsError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        SelectiveStream(POOL, gen(), initial=10, query_size=30, rounds=3, **kwargs)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"stream": "selective"}, "the selective stream needs a labeling budget"),
        ({"stream": "active", "label_fraction": 0.5}, "--label-fraction applies to the selective stream"),
        ({"stream": "passive", "counterfactual": True}, "--counterfactual splits the gap of streams"),
        ({"stream": "selective", "label_fraction": 0}, "label_fraction: Input should be greater than 0"),
    ],
)
def test_config_errors(values, message):
    with pytest.raises(ActivewsError) as exc:
        BenchConfig.build(**values)
    assert_one_line(str(exc.value))
    assert message in str(exc.value)
