"""``l2_init``: a warm start plus ``lam * ||theta - theta_0||^2`` in every step's loss."""

from __future__ import annotations

import copy

import pytest
import torch

from activews import BenchConfig
from activews.engine.arm import run_arm
from activews.engine.setup import load_bench_dataset
from activews.errors import ActivewsError
from activews.strategies import get_strategy, make_strategy, training_hooks
from activews.strategies.l2_init import L2Init
from activews.training import TrainConfig, train_to_criterion
from tests.helpers import INPUT_SHAPE, NUM_CLASSES, assert_one_line, assert_same_state, snapshot
from tests.run_helpers import TINY


def distance_sq(model, initial) -> torch.Tensor:
    return sum(((p.detach() - initial[n]) ** 2).sum() for n, p in model.named_parameters())


def test_loss_term_value_and_gradient(trained):
    strategy = L2Init(lam=0.05)
    model = trained.copy()
    term = strategy.loss_term(model, trained.ctx(0))
    assert term.dim() == 0 and term.requires_grad
    torch.testing.assert_close(term.detach(), 0.05 * distance_sq(model, trained.initial_state))
    term.backward()
    for name, p in model.named_parameters():  # d/dtheta lam * ||theta - theta_0||^2 = 2 lam (theta - theta_0)
        torch.testing.assert_close(p.grad, 2 * 0.05 * (p.detach() - trained.initial_state[name]))


def test_term_is_zero_at_the_initial_weights_and_ignores_buffers(trained_cnn):
    model = copy.deepcopy(trained_cnn.model)
    model.load_state_dict(trained_cnn.initial_state)
    with torch.no_grad():  # buffers (BatchNorm running statistics) are not parameters: not pulled
        for buf in model.buffers():
            buf.add_(3)
    assert L2Init().loss_term(model, trained_cnn.ctx(0)).item() == 0.0


def test_init_round_keeps_the_model(trained):
    model = trained.copy()
    assert L2Init().init_round(model, trained.ctx(0)) is model
    assert_same_state(snapshot(model), snapshot(trained.model))


def test_cache_follows_the_context(trained_mlp):
    strategy = L2Init(lam=1.0)
    model = trained_mlp.copy()
    ctx = trained_mlp.ctx(0)
    first = strategy.loss_term(model, ctx)
    anchors = dict(strategy._anchors)
    strategy.loss_term(model, ctx)
    assert all(strategy._anchors[k] is v for k, v in anchors.items())  # moved once, then reused
    # another run's initial state: the term follows it, not the cached one
    other = {k: torch.zeros_like(v) for k, v in trained_mlp.initial_state.items()}
    zero_ctx = ctx.replace(initial_state=other)
    torch.testing.assert_close(strategy.loss_term(model, zero_ctx).detach(), distance_sq(model, other))
    torch.testing.assert_close(strategy.loss_term(model, ctx), first)
    # another dtype: the anchors are converted again
    double = copy.deepcopy(model).double()
    value = strategy.loss_term(double, ctx)
    assert value.dtype == torch.float64
    torch.testing.assert_close(value.float(), first.detach())


def test_pulls_the_weights_toward_their_initial_values_in_training(trained_mlp):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(128, *INPUT_SHAPE, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (128,), generator=gen)
    cfg = TrainConfig(max_epochs=3)
    plain, pulled = trained_mlp.copy(), trained_mlp.copy()
    train_to_criterion(plain, x, y, cfg, torch.Generator().manual_seed(1), epochs=3)
    strategy = L2Init(lam=0.1)
    ctx = trained_mlp.ctx(0).replace(x_labeled=x, y_labeled=y)
    hooks = training_hooks(strategy, ctx)
    assert set(hooks) == {"loss_term"}
    train_to_criterion(pulled, x, y, cfg, torch.Generator().manual_seed(1), epochs=3, **hooks)
    assert distance_sq(pulled, trained_mlp.initial_state) < 0.9 * distance_sq(
        plain, trained_mlp.initial_state
    )


def test_mismatched_initial_state_errors(trained_mlp):
    model = trained_mlp.copy()
    missing = {k: v for k, v in trained_mlp.initial_state.items() if k != "5.bias"}
    with pytest.raises(ActivewsError, match="no entry for parameter '5.bias'") as exc:
        L2Init().loss_term(model, trained_mlp.ctx(0).replace(initial_state=missing))
    assert_one_line(str(exc.value))
    wrong = dict(trained_mlp.initial_state) | {"5.bias": torch.zeros(3)}
    with pytest.raises(
        ActivewsError, match=r"has shape \(3,\) but the model's parameter has shape \(10,\)"
    ) as exc:
        L2Init().loss_term(model, trained_mlp.ctx(0).replace(initial_state=wrong))
    assert_one_line(str(exc.value))


@pytest.mark.parametrize("lam", [0.0, -1e-3, 2.0, float("nan")])
def test_invalid_lam(lam):
    with pytest.raises(ActivewsError, match="lam") as exc:
        make_strategy("l2_init", {"lam": lam})
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith("strategy 'l2_init':")


def test_default_and_metadata():
    cls = get_strategy("l2_init")
    assert cls().params.lam == 1e-2
    assert cls().hooks() == (True, False)
    assert "References:" in (cls.__doc__ or "") and "2308.11958" in cls.reference and cls.batchnorm


def test_run_arm_uses_the_term_from_round_0():
    config = BenchConfig.build(
        **(TINY | {"rounds": 3, "strategies": ["l2_init"], "params": {"l2_init": {"lam": 0.1}}})
    )
    data = load_bench_dataset(config)
    l2 = run_arm(config, data, "l2_init", 0)
    warm = run_arm(config, data, "warm", 0)
    assert len(l2) == 3
    assert (l2[0]["test_accuracy"], l2[0]["steps"]) != (warm[0]["test_accuracy"], warm[0]["steps"])
    assert all(r["strategy"] == "l2_init" for r in l2)
    again = run_arm(config, data, "l2_init", 0)  # deterministic for a seed
    assert [_timeless(r) for r in again] == [_timeless(r) for r in l2]


def _timeless(record: dict) -> dict:
    return {k: v for k, v in record.items() if "seconds" not in k}
