"""``l2``: a warm start plus ``lam * ||theta||^2`` in every step's loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from activews.errors import ActivewsError
from activews.strategies import InitContext, get_strategy, make_strategy
from activews.strategies.l2 import L2
from tests.helpers import assert_one_line, assert_same_state, snapshot


def test_term_and_gradient_by_hand():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        layer.bias.copy_(torch.tensor([0.5, -0.5]))
    term = L2(lam=0.1).loss_term(layer, InitContext(0))
    assert term.dim() == 0
    torch.testing.assert_close(term.detach(), torch.tensor(3.05))  # 0.1 * (1 + 4 + 9 + 16 + 0.25 + 0.25)
    term.backward()
    torch.testing.assert_close(layer.weight.grad, torch.tensor([[0.2, 0.4], [0.6, 0.8]]))  # 2 * lam * theta
    torch.testing.assert_close(layer.bias.grad, torch.tensor([0.1, -0.1]))


def test_round_start_is_warm_and_buffers_are_not_pulled(trained_cnn):
    model = trained_cnn.copy()
    before = snapshot(model)
    assert L2().init_round(model, trained_cnn.ctx(0)) is model
    assert_same_state(snapshot(model), before)
    with torch.no_grad():
        for buf in model.buffers():
            buf.add_(3)
    expected = 1e-2 * sum(p.detach().pow(2).sum() for p in model.parameters())
    torch.testing.assert_close(L2().loss_term(model, InitContext(0)).detach(), expected)


def test_needs_nothing_and_metadata():
    cls = get_strategy("l2")
    assert cls().params.lam == 1e-2
    assert cls().needs() == frozenset()
    assert cls().hooks() == (True, False)
    assert cls().state_dict() == {}
    assert "2308.11958" in cls.reference and "References:" in (cls.__doc__ or "")


@pytest.mark.parametrize("lam", [0.0, -1e-3, 2.0, float("nan")])
def test_invalid_lam(lam):
    with pytest.raises(ActivewsError, match="lam") as exc:
        make_strategy("l2", {"lam": lam})
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith("strategy 'l2':")
