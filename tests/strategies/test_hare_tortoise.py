"""``hare_tortoise``: an EMA tortoise of the trained hare; the hare is reset to it at round starts."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from activews.errors import ActivewsError
from activews.strategies import InitContext, get_strategy, make_strategy
from activews.strategies.hare_tortoise import HareTortoise
from activews.testing import strategy_checks
from activews.training import Step
from tests.helpers import assert_one_line, assert_same_state, snapshot

W0, B0 = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0.0, 0.0])
W1, B1 = torch.tensor([[3.0, -2.0], [4.0, 1.0]]), torch.tensor([2.0, -4.0])


def hare_after_a_step() -> tuple[nn.Linear, InitContext]:
    """A 2x2 layer whose round-0 draw is (W0, B0) and whose weights are (W1, B1) after a step."""
    layer = nn.Linear(2, 2)
    initial = {"weight": W0.clone(), "bias": B0.clone()}
    with torch.no_grad():
        layer.weight.copy_(W1)
        layer.bias.copy_(B1)
    return layer, InitContext(0, initial_state=initial)


def step_of(model: nn.Module, index: int = 1) -> Step:
    return Step(index, 0, torch.zeros(1, 2), torch.zeros(1), torch.optim.SGD(model.parameters(), lr=0.1))


def test_ema_and_round_start_reset_by_hand():
    hare, ctx = hare_after_a_step()
    strategy = HareTortoise(momentum=0.75)
    strategy.after_step(hare, step_of(hare), ctx)
    tortoise = strategy.tortoise_state()
    torch.testing.assert_close(
        tortoise["weight"], torch.tensor([[1.5, -0.5], [1.0, 1.0]])
    )  # 0.75 W0 + 0.25 W1
    torch.testing.assert_close(tortoise["bias"], torch.tensor([0.5, -1.0]))
    assert torch.equal(hare.weight, W1)  # the hare trains on
    assert strategy.init_round(hare, ctx.replace(round_index=1)) is hare
    assert_same_state(snapshot(hare), tortoise)
    assert torch.equal(ctx.initial_state["weight"], W0)  # the round-0 draw is never written


def test_reset_every_n_steps():
    hare, ctx = hare_after_a_step()
    strategy = HareTortoise(momentum=0.5, reset_every=2)
    strategy.after_step(hare, step_of(hare, 1), ctx)
    assert torch.equal(hare.weight, W1)
    strategy.after_step(hare, step_of(hare, 2), ctx)  # tortoise 0.5 * (0.5 W0 + 0.5 W1) + 0.5 W1, then reset
    torch.testing.assert_close(hare.weight, 0.25 * W0 + 0.75 * W1)
    assert (strategy.steps, strategy.resets) == (2, 1)


def test_batchnorm_buffers_are_averaged_and_counts_follow_the_hare(trained_cnn):
    hare = trained_cnn.copy()
    strategy = HareTortoise(momentum=0.5)
    strategy.after_step(hare, step_of(hare), trained_cnn.ctx(0))
    tortoise, live, initial = strategy.tortoise_state(), snapshot(hare), trained_cnn.initial_state
    for name, value in live.items():
        if value.is_floating_point():
            torch.testing.assert_close(tortoise[name], 0.5 * initial[name] + 0.5 * value)
        else:
            assert torch.equal(tortoise[name], value), name
    assert any("running_var" in name for name in tortoise)


def test_state_round_trip_continues_identically(trained_mlp):
    def steps(strategy, model, n):
        for i in range(n):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.01 * (i + 1))
            strategy.after_step(model, step_of(model), trained_mlp.ctx(0))

    full, model = HareTortoise(momentum=0.9, reset_every=3), trained_mlp.copy()
    steps(full, model, 2)
    buffer = io.BytesIO()
    torch.save(full.state_dict(), buffer)
    resumed = HareTortoise(momentum=0.9, reset_every=3)
    resumed.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    resumed_model = trained_mlp.copy()
    resumed_model.load_state_dict(model.state_dict())
    steps(full, model, 3)
    steps(resumed, resumed_model, 3)
    assert_same_state(snapshot(model), snapshot(resumed_model))
    assert_same_state(full.tortoise_state(), resumed.tortoise_state())
    assert (resumed.steps, resumed.resets) == (full.steps, full.resets) == (5, 1)


def test_state_errors():
    with pytest.raises(ActivewsError, match="expected") as exc:
        HareTortoise().load_state_dict({"steps": 1})
    assert_one_line(str(exc.value))
    hare, ctx = hare_after_a_step()
    with pytest.raises(ActivewsError, match="no entry for 'bias'") as exc:
        HareTortoise().init_round(hare, ctx.replace(initial_state={"weight": W0}))
    assert_one_line(str(exc.value))


def test_defaults_and_metadata():
    cls = get_strategy("hare_tortoise")
    default = cls()
    assert (default.params.momentum, default.params.reset_every) == (0.999, 0)
    assert default.needs() == frozenset({"initial_state"}) and default.hooks() == (False, True)
    assert default.tortoise_state() == {}
    assert "2406.02596" in cls.reference and "References:" in (cls.__doc__ or "")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.1}, "momentum"),
        ({"reset_every": -1}, "reset_every"),
        ({"reset_every": 1.5}, "reset_every"),
    ],
)
def test_invalid_params(params, field):
    with pytest.raises(ActivewsError, match=field) as exc:
        make_strategy("hare_tortoise", params)
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith("strategy 'hare_tortoise':")


@pytest.mark.parametrize("check", strategy_checks("hare_tortoise", {"momentum": 0.5, "reset_every": 2}))
def test_contract_with_resets_within_rounds(check):
    check()
