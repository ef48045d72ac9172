"""Acquisition functions on hand-computed probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from activews.errors import ActivewsError, UnknownNameError
from activews.streams import (
    ACQUISITIONS,
    ActiveStream,
    BatchSelector,
    ScoringSelector,
    get_acquisition,
    list_acquisitions,
    make_acquisition,
    register_acquisition,
)

# rows: a typical prediction, a certain one (with exact zeros), a uniform one
PROBS = torch.tensor([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64)

EXPECTED = {
    "least_confidence": [0.5, 0.0, 2 / 3],
    "margin": [-0.2, -1.0, 0.0],
    "entropy": [-(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2)), 0.0, math.log(3)],
}


def test_registered_acquisitions():
    assert set(list_acquisitions()) >= {"least_confidence", "margin", "entropy", "random"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hand_computed_scores(name):
    scores = get_acquisition(name)(PROBS)
    assert scores.shape == (3,)
    torch.testing.assert_close(scores, torch.tensor(EXPECTED[name], dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.isfinite(scores).all()  # 0 * log 0 counts as 0 in the entropy, not NaN


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_higher_score_means_more_uncertain(name):
    scores = get_acquisition(name)(PROBS)
    # uniform > typical > certain
    assert scores.argsort(descending=True).tolist() == [2, 0, 1]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_scores_are_row_wise(name):
    probs = torch.softmax(torch.randn(50, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    fn = get_acquisition(name)
    whole = fn(probs)
    torch.testing.assert_close(torch.cat([fn(probs[i : i + 7]) for i in range(0, 50, 7)]), whole)


def test_margin_with_one_class_is_zero():
    assert torch.equal(get_acquisition("margin")(torch.ones(4, 1)), torch.zeros(4))


def test_random_is_seeded_by_the_generator():
    fn = get_acquisition("random")
    probs = torch.full((20, 3), 1 / 3)

    def draw(seed: int) -> torch.Tensor:
        return fn(probs, generator=torch.Generator().manual_seed(seed))

    a = draw(0)
    assert a.shape == (20,) and a.dtype == probs.dtype
    assert ((a >= 0) & (a < 1)).all()
    assert torch.equal(a, draw(0))
    assert not torch.equal(a, draw(1))
    assert fn(probs.double(), generator=torch.Generator().manual_seed(0)).dtype == torch.float64


def test_unknown_acquisition_suggests_a_close_match():
    with pytest.raises(UnknownNameError, match="did you mean 'entropy'"):
        get_acquisition("entropi")


# ------------------------------------------------------------------ one registry: functions and selectors


def test_batch_selectors_share_the_registry():
    assert {"bald", "badge", "coreset"} <= set(list_acquisitions())
    assert issubclass(get_acquisition("badge"), BatchSelector)
    assert isinstance(make_acquisition("bald"), ScoringSelector)
    assert make_acquisition("margin").fn is get_acquisition("margin")  # a function, wrapped row-wise
    assert make_acquisition("bald").params.samples == 20
    assert make_acquisition("bald", {"samples": 5}).describe() == "bald(samples=5)"


@pytest.fixture
def registered():
    names: list[str] = []
    yield names
    for name in names:
        ACQUISITIONS.unregister(name)


def test_user_row_wise_function_still_works(registered):
    @register_acquisition("second_class")
    def second_class(probs, *, generator=None):
        return probs[:, 1]

    registered.append("second_class")
    probs = torch.linspace(0, 1, 30)
    stream = ActiveStream(
        30, torch.Generator().manual_seed(0), initial=5, query_size=4, rounds=2, acquisition="second_class"
    )
    first = stream.first()
    second = stream.next(first, lambda idx: torch.stack([1 - probs[idx], probs[idx]], dim=1))
    expected = [i for i in range(29, -1, -1) if i not in set(first.labeled.tolist())][:4]
    assert second.new.tolist() == expected


def test_user_batch_selector(registered):
    @register_acquisition("lowest_indices")
    class LowestIndices(BatchSelector):
        """Take the ``k`` candidates with the smallest pool indices, skipping ``skip`` of them."""

        class Params(BatchSelector.Params):
            skip: int = 0

        def select(self, view, candidates, labeled, k, generator):
            self.check_batch(k + self.params.skip, candidates)
            return candidates[self.params.skip : self.params.skip + k]

    registered.append("lowest_indices")
    assert LowestIndices.name == "lowest_indices"
    stream = ActiveStream(
        30,
        torch.Generator().manual_seed(0),
        initial=5,
        query_size=4,
        rounds=2,
        acquisition="lowest_indices",
        acquisition_params={"skip": 1},
    )
    first = stream.first()
    unlabeled = sorted(set(range(30)) - set(first.labeled.tolist()))
    assert stream.next(first, lambda idx: None).new.tolist() == unlabeled[1:5]


def test_a_selector_returning_bad_indices_is_named(registered):
    @register_acquisition("labeled_again")
    class LabeledAgain(BatchSelector):
        def select(self, view, candidates, labeled, k, generator):
            return labeled[:k]

    registered.append("labeled_again")
    stream = ActiveStream(
        30, torch.Generator().manual_seed(0), initial=5, query_size=4, rounds=2, acquisition="labeled_again"
    )
    with pytest.raises(ActivewsError, match="acquisition 'labeled_again' returned .* 4 distinct unlabeled"):
        stream.next(stream.first(), lambda idx: None)


def test_register_acquisition_refuses_other_classes():
    with pytest.raises(
        ActivewsError, match="must decorate a function f\\(probs, \\*, generator\\) or a BatchSelector"
    ):
        register_acquisition("not_a_selector")(type("NotASelector", (), {}))
