"""Acquisition functions on hand-computed probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from activews.errors import UnknownNameError
from activews.streams import get_acquisition, list_acquisitions

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
