"""The training hooks: a strategy's loss term and after-step call, in every round, through every route."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from activews import BenchConfig, InitContext, InitStrategy, Step, WarmStartClassifier, register_strategy
from activews.engine.arm import run_arm
from activews.engine.setup import load_bench_dataset
from activews.models import build_model
from activews.strategies import STRATEGIES, training_hooks
from activews.training import TrainConfig, train_to_criterion
from tests.run_helpers import TINY

NAME = "hook_probe_strategy"


@pytest.fixture
def hook_strategy():
    """A warm strategy whose hooks record what they see; ``pull`` scales an L2 term toward zero."""

    @register_strategy(NAME)
    class HookProbe(InitStrategy):
        class Params(InitStrategy.Params):
            pull: float = 0.0

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_calls: dict[int, int] = {}
            self.steps: dict[int, list[int]] = {}

        def init_round(self, model, ctx):
            return model

        def loss_term(self, model, ctx):
            self.loss_calls[ctx.round_index] = self.loss_calls.get(ctx.round_index, 0) + 1
            if self.params.pull == 0:
                return None
            return self.params.pull * sum(p.pow(2).sum() for p in model.parameters())

        def after_step(self, model, step, ctx):
            assert isinstance(step, Step) and step.x.shape[0] == step.y.shape[0]
            assert isinstance(step.optimizer, torch.optim.Optimizer)
            self.steps.setdefault(ctx.round_index, []).append(step.index)

    try:
        yield HookProbe
    finally:
        STRATEGIES.unregister(NAME)


def _data(n=256, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 40, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _ctx(model, x, y, round_index=0):
    gen = torch.Generator().manual_seed(0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return InitContext(round_index, lambda: copy.deepcopy(model), state, gen, x_labeled=x, y_labeled=y)


def test_base_strategies_have_no_hooks_and_cost_nothing():
    for name in ("warm", "random", "shrink_perturb", "partial_reset", "reset_to_init"):
        assert STRATEGIES.get(name)().hooks() == (False, False)
    warm = STRATEGIES.get("warm")()
    model = build_model("mlp", (40,), 10, seed=0)
    x, y = _data()
    assert training_hooks(warm, _ctx(model, x, y)) == {}


def test_hooks_run_at_every_step_and_loss_term_changes_training(hook_strategy):
    x, y = _data()
    cfg = TrainConfig(max_epochs=2, target_accuracy=1.0)
    plain = build_model("mlp", (40,), 10, seed=0)
    pulled = copy.deepcopy(plain)

    strat = hook_strategy()
    stats, _ = train_to_criterion(
        plain, x, y, cfg, torch.Generator().manual_seed(1), **training_hooks(strat, _ctx(plain, x, y))
    )
    assert strat.hooks() == (True, True)
    assert strat.loss_calls == {0: stats.steps}
    assert strat.steps[0] == list(range(1, stats.steps + 1))

    reference = build_model("mlp", (40,), 10, seed=0)
    ref_stats, _ = train_to_criterion(reference, x, y, cfg, torch.Generator().manual_seed(1))
    # A loss term that returns None changes nothing: same weights, same recorded loss.
    for a, b in zip(plain.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)
    assert stats.train_loss == ref_stats.train_loss

    strong = hook_strategy(pull=1e-2)
    pulled_stats, _ = train_to_criterion(
        pulled, x, y, cfg, torch.Generator().manual_seed(1), **training_hooks(strong, _ctx(pulled, x, y))
    )
    norm = lambda m: float(sum(p.detach().pow(2).sum() for p in m.parameters()))  # noqa: E731
    assert norm(pulled) < norm(reference)  # the term pulled the weights toward zero
    assert pulled_stats.steps > 0


def test_recorded_loss_is_the_cross_entropy_alone(hook_strategy, monkeypatch):
    # A constant term changes no gradient, so the weights match a run without it; the recorded loss
    # must match too (the term is not part of train_loss).
    monkeypatch.setattr(hook_strategy, "loss_term", lambda self, model, ctx: torch.tensor(100.0))
    x, y = _data()
    cfg = TrainConfig(max_epochs=2, target_accuracy=1.0)
    with_term, reference = build_model("mlp", (40,), 10, seed=0), build_model("mlp", (40,), 10, seed=0)
    stats, _ = train_to_criterion(
        with_term,
        x,
        y,
        cfg,
        torch.Generator().manual_seed(1),
        **training_hooks(hook_strategy(), _ctx(with_term, x, y)),
    )
    ref_stats, _ = train_to_criterion(reference, x, y, cfg, torch.Generator().manual_seed(1))
    assert stats.train_loss == ref_stats.train_loss < 100
    for a, b in zip(with_term.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.fixture
def created(hook_strategy, monkeypatch) -> list[InitStrategy]:
    """The instances of the hook strategy that code under test creates."""
    seen: list[InitStrategy] = []
    original = hook_strategy.__init__

    def remember(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self)

    monkeypatch.setattr(hook_strategy, "__init__", remember)
    return seen


def test_run_arm_calls_hooks_in_every_round_round_zero_included(created):
    seen = created
    config = BenchConfig.build(**(TINY | {"strategies": [NAME], "seeds": 1}))
    records = run_arm(config, load_bench_dataset(config), NAME, 0)
    (strat,) = seen
    assert sorted(strat.steps) == [r["round"] for r in records] == list(range(config.rounds))
    for r in records:
        assert strat.steps[r["round"]] == list(range(1, r["steps"] + 1))
        assert strat.loss_calls[r["round"]] == r["steps"]


def test_sklearn_estimator_calls_hooks_in_every_fit(created):
    seen = created
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(120, 40)).astype(np.float32), rng.integers(0, 3, 120)
    clf = WarmStartClassifier(strategy=NAME, random_state=0, max_epochs=2)
    clf.fit(X[:60], y[:60]).fit(X, y)
    rounds = sorted({r for s in seen for r in s.steps})
    assert rounds == [0, 1]
    assert all(s.steps[r] and s.loss_calls[r] == len(s.steps[r]) for s in seen for r in s.steps)


def test_after_step_can_modify_weights_in_place(hook_strategy):
    @register_strategy("zero_head_after_step", overwrite=True)
    class ZeroHead(InitStrategy):
        def init_round(self, model, ctx):
            return model

        @torch.no_grad()
        def after_step(self, model, step, ctx):
            last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
            last.weight.zero_()

    try:
        model = build_model("mlp", (40,), 10, seed=0)
        x, y = _data()
        strat = ZeroHead()
        train_to_criterion(
            model,
            x,
            y,
            TrainConfig(max_epochs=1),
            torch.Generator().manual_seed(0),
            **training_hooks(strat, _ctx(model, x, y)),
        )
        assert torch.count_nonzero(model[-1].weight) == 0
    finally:
        STRATEGIES.unregister("zero_head_after_step")
