"""``weight_clipping``: clamp each parameter to ``+-kappa / sqrt(fan_in)`` after every optimizer step."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from activews.errors import ActivewsError
from activews.models import build_model
from activews.strategies import InitContext, get_strategy, make_strategy
from activews.strategies.weight_clipping import WeightClipping, clipping_bounds
from activews.training import Step
from tests.helpers import INPUT_SHAPE, NUM_CLASSES, assert_one_line, assert_same_state, snapshot

R2 = 1 / math.sqrt(2)


def linear_2x2() -> nn.Linear:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -0.2], [-3.0, 0.5]]))
        layer.bias.copy_(torch.tensor([0.9, -0.1]))
    return layer


def clip(model: nn.Module, **params) -> None:
    step = Step(1, 0, torch.zeros(1), torch.zeros(1), torch.optim.SGD(model.parameters(), lr=0.1))
    WeightClipping(**params).after_step(model, step, InitContext(0))


def test_2x2_layer_by_hand():
    layer = linear_2x2()
    clip(layer)  # fan_in 2: bound 1/sqrt(2) for the weight and its bias
    torch.testing.assert_close(layer.weight, torch.tensor([[R2, -0.2], [-R2, 0.5]]))
    torch.testing.assert_close(layer.bias, torch.tensor([R2, -0.1]))
    layer = linear_2x2()
    clip(layer, kappa=2.0)
    torch.testing.assert_close(layer.weight, torch.tensor([[1.0, -0.2], [-2 * R2, 0.5]]))
    torch.testing.assert_close(layer.bias, torch.tensor([0.9, -0.1]))


def test_bounds_follow_the_authors_rule():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    r3 = 1 / math.sqrt(3)
    assert clipping_bounds(model) == [
        ("0.weight", r3),
        ("0.bias", r3),
        ("1.weight", r3),
        ("1.bias", r3),
        ("3.weight", 0.5),
        ("3.bias", 0.5),
    ]
    conv = nn.Sequential(nn.Conv1d(2, 3, kernel_size=5), nn.ReLU())
    assert clipping_bounds(conv) == [("0.weight", 1 / math.sqrt(10)), ("0.bias", 1 / math.sqrt(10))]


def test_norms_and_last_layer_options():
    def model():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
        with torch.no_grad():
            for p in net.parameters():
                p.fill_(5.0)
        return net

    everything = model()
    clip(everything)
    r3 = 1 / math.sqrt(3)
    for p, bound in zip(everything.parameters(), [r3, r3, r3, r3, 0.5, 0.5], strict=True):
        assert torch.allclose(p.detach(), torch.full_like(p, bound))
    assert torch.allclose(
        everything[1].weight, torch.full((4,), 1 / math.sqrt(3))
    )  # BN scale: previous layer's bound
    no_norms = model()
    clip(no_norms, clip_norms=False)
    assert torch.equal(no_norms[1].weight, torch.full((4,), 5.0)) and torch.equal(
        no_norms[1].bias, torch.full((4,), 5.0)
    )
    assert torch.allclose(no_norms[0].weight, torch.full((4, 3), 1 / math.sqrt(3)))
    no_head = model()
    clip(no_head, clip_last_layer=False)
    assert torch.equal(no_head[3].weight, torch.full((2, 4), 5.0)) and torch.equal(
        no_head[3].bias, torch.full((2,), 5.0)
    )
    assert torch.allclose(no_head[0].bias, torch.full((4,), 1 / math.sqrt(3)))


def test_kappa_one_keeps_a_fresh_default_model():
    """The activews models keep PyTorch's default init, U(+-1/sqrt(fan_in)): kappa=1 leaves a fresh draw alone."""
    model = build_model("mlp", INPUT_SHAPE, NUM_CLASSES, {}, seed=0)
    before = snapshot(model)
    clip(model)
    assert_same_state(snapshot(model), before)


def test_round_start_is_warm(trained_cnn):
    model = trained_cnn.copy()
    before = snapshot(model)
    assert WeightClipping().init_round(model, trained_cnn.ctx(0)) is model
    assert_same_state(snapshot(model), before)


def test_a_model_starting_with_a_norm_is_refused():
    model = nn.Sequential(nn.LayerNorm(3), nn.Linear(3, 2))
    with pytest.raises(ActivewsError, match=r"parameter '0.weight' comes before any weight matrix") as exc:
        WeightClipping().check_model(model)
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith("strategy 'weight_clipping':")


def test_defaults_and_metadata():
    cls = get_strategy("weight_clipping")
    default = cls()
    assert (default.params.kappa, default.params.clip_last_layer, default.params.clip_norms) == (
        1.0,
        True,
        True,
    )
    assert default.needs() == frozenset() and default.hooks() == (False, True) and default.state_dict() == {}
    assert "weight-clipping" in cls.reference and "References:" in (cls.__doc__ or "")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kappa": 0.0}, "kappa"),
        ({"kappa": -1.0}, "kappa"),
        ({"kappa": float("nan")}, "kappa"),
        ({"clip_norms": "maybe"}, "clip_norms"),
    ],
)
def test_invalid_params(params, field):
    with pytest.raises(ActivewsError, match=field) as exc:
        make_strategy("weight_clipping", params)
    assert_one_line(str(exc.value))
