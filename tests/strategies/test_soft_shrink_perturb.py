"""``soft_shrink_perturb``: ``theta <- shrink * theta + sigma * eps`` after every optimizer step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from activews.errors import ActivewsError
from activews.strategies import InitContext, get_strategy, make_strategy
from activews.strategies.soft_shrink_perturb import SoftShrinkPerturb
from activews.testing import strategy_checks
from activews.training import Step
from tests.helpers import assert_one_line, assert_same_state, snapshot


def linear_2x2() -> nn.Linear:
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 4.0]]))
        layer.bias.copy_(torch.tensor([0.25, -1.0]))
    return layer


def step_of(model: nn.Module) -> Step:
    x, y = torch.zeros(1, 2), torch.zeros(1, dtype=torch.long)
    return Step(1, 0, x, y, torch.optim.SGD(model.parameters(), lr=0.1))


def test_shrink_only_by_hand():
    layer = linear_2x2()
    SoftShrinkPerturb(shrink=0.5, sigma=0.0).after_step(layer, step_of(layer), InitContext(0))
    assert torch.equal(layer.weight, torch.tensor([[0.5, -1.0], [0.25, 2.0]]))
    assert torch.equal(layer.bias, torch.tensor([0.125, -0.5]))


def test_gaussian_noise_by_hand():
    layer = linear_2x2()
    ctx = InitContext(0, generator=torch.Generator().manual_seed(3))
    SoftShrinkPerturb(shrink=0.5, sigma=0.1).after_step(layer, step_of(layer), ctx)
    # The same draws, in named_parameters() order (weight, then bias), from a generator seeded alike.
    gen = torch.Generator().manual_seed(3)
    eps_w, eps_b = torch.randn(2, 2, generator=gen), torch.randn(2, generator=gen)
    torch.testing.assert_close(layer.weight, torch.tensor([[0.5, -1.0], [0.25, 2.0]]) + 0.1 * eps_w)
    torch.testing.assert_close(layer.bias, torch.tensor([0.125, -0.5]) + 0.1 * eps_b)


def test_fresh_init_noise_by_hand():
    layer = linear_2x2()
    fresh = nn.Linear(2, 2)
    with torch.no_grad():
        fresh.weight.fill_(1.0)
        fresh.bias.fill_(-2.0)
    ctx = InitContext(0, fresh_model=lambda: fresh)
    SoftShrinkPerturb(shrink=0.5, sigma=0.1, noise="fresh_init").after_step(layer, step_of(layer), ctx)
    torch.testing.assert_close(layer.weight, torch.tensor([[0.6, -0.9], [0.35, 2.1]]))
    torch.testing.assert_close(layer.bias, torch.tensor([-0.075, -0.7]))


def test_round_start_is_warm_and_buffers_are_kept(trained_cnn):
    model = trained_cnn.copy()
    before = snapshot(model)
    assert SoftShrinkPerturb().init_round(model, trained_cnn.ctx(0)) is model
    assert_same_state(snapshot(model), before)
    SoftShrinkPerturb().after_step(model, step_of(model), trained_cnn.ctx(0))
    after = snapshot(model)
    for name, value in before.items():  # parameters move, BatchNorm running statistics do not
        is_param = name in dict(model.named_parameters())
        assert torch.equal(after[name], value) != is_param, name


def test_deterministic_given_the_generator(trained_mlp):
    def run(seed):
        model = trained_mlp.copy()
        strategy = SoftShrinkPerturb()
        ctx = trained_mlp.ctx(seed)
        for _ in range(3):
            strategy.after_step(model, step_of(model), ctx)
        return snapshot(model)

    assert_same_state(run(1), run(1))
    assert run(1)["1.weight"].ne(run(2)["1.weight"]).any()


def test_needs_and_metadata():
    cls = get_strategy("soft_shrink_perturb")
    default = cls()
    assert (default.params.shrink, default.params.sigma, default.params.noise) == (1 - 1e-4, 1e-2, "gaussian")
    assert default.needs() == frozenset({"generator"})
    assert cls(noise="fresh_init").needs() == frozenset({"fresh_model"})
    assert cls(sigma=0.0).needs() == frozenset()
    assert default.hooks() == (False, True)
    assert default.state_dict() == {}
    assert "2308.11958" in cls.reference and "References:" in (cls.__doc__ or "")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"shrink": 1.5}, "shrink"),
        ({"shrink": -0.1}, "shrink"),
        ({"sigma": -1e-3}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"noise": "uniform"}, "noise"),
    ],
)
def test_invalid_params(params, field):
    with pytest.raises(ActivewsError, match=field) as exc:
        make_strategy("soft_shrink_perturb", params)
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith("strategy 'soft_shrink_perturb':")


@pytest.mark.parametrize(
    "check", strategy_checks("soft_shrink_perturb", {"noise": "fresh_init", "sigma": 1e-3})
)
def test_contract_with_fresh_init_noise(check):
    check()
