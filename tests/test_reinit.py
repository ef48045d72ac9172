"""activews.Reinitializer: a round initializer for a training loop of one's own, and what it shares with
the bench's round step (needs, fresh-draw checks, optimizer rule, training hooks, train_fn)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import activews
from activews import ActivewsError, InitContext, Reinitializer, RoundStep, TrainConfig, TrainStats
from activews.engine.step import TrainHooks, as_train_stats
from activews.reinit import rebuild_optimizer
from activews.strategies import list_strategies, make_strategy
from activews.training import dropout_layers, train_to_criterion


class Net(nn.Sequential):
    """A user's own module (not a registered model)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__(
            nn.Linear(6, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3)
        )

    @property
    def head(self) -> nn.Linear:
        return self[4]


def data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def my_train(reinit: Reinitializer, model: nn.Module, opt: torch.optim.Optimizer, x, y, seed: int) -> int:
    """A user's loop: two epochs of minibatches, with the strategy's hooks."""
    g = torch.Generator().manual_seed(seed)
    steps = 0
    for _ in range(2):
        for idx in torch.randperm(len(y), generator=g).split(32):
            loss = F.cross_entropy(model(x[idx]), y[idx]) + reinit.loss_term(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            reinit.after_step(model, opt, x=x[idx], y=y[idx])
            steps += 1
    return steps


def run(name: str, seed: int = 0, rounds: int = 3, **kwargs) -> nn.Module:
    x, y = data()
    reinit = Reinitializer(name, factory=Net, seed=seed, **kwargs)
    model, opt = None, None
    for r in range(rounds):
        n = 32 * (r + 1)
        model, opt = reinit(model, opt, x=x[:n], y=y[:n], new=torch.arange(n) >= n - 32)
        opt = opt or torch.optim.Adam(model.parameters(), lr=1e-2)
        my_train(reinit, model, opt, x[:n], y[:n], seed=r)
    return model


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------- the three lines


@pytest.mark.parametrize("name", sorted(set(list_strategies()) - {"scheduled"}))
def test_every_registered_strategy_runs_in_a_loop_of_ones_own(name):
    model = run(name)
    x, y = data()
    assert isinstance(model, Net)
    assert torch.isfinite(F.cross_entropy(model(x), y))


def test_same_seed_same_weights_and_another_seed_others():
    assert same(weights(run("shrink_perturb", seed=1)), weights(run("shrink_perturb", seed=1)))
    assert not same(weights(run("shrink_perturb", seed=1)), weights(run("shrink_perturb", seed=2)))


def test_round_zero_returns_the_model_as_given_and_none_builds_the_seeded_draw():
    reinit = Reinitializer("random", factory=Net, seed=3)
    mine = Net()
    assert reinit(mine).model is mine
    assert same(
        weights(Reinitializer("random", factory=Net, seed=3)(None).model), weights(reinit.first_model())
    )
    assert reinit.round == 0


def test_shrink_perturb_first_round_also_transforms_round_zero():
    """As in the authors' run.py; by default round 0 is the model as given (shared by every arm)."""
    mine = Net()
    given = weights(mine)
    plain = Reinitializer("shrink_perturb", factory=Net, seed=4)
    assert plain(mine).model is mine and same(weights(mine), given)

    reinit = Reinitializer("shrink_perturb", {"first_round": True}, factory=Net, seed=4)
    opt = torch.optim.Adam(mine.parameters(), lr=1e-2)
    model, new_opt = reinit(mine, opt)
    assert model is mine and new_opt is opt and reinit.round == 0 and reinit.init_seconds > 0
    # The noise is the seed's first fresh draw: what `random` returns at round 1 with the same seed.
    rnd = Reinitializer("random", factory=Net, seed=4)
    fresh = weights(rnd(rnd(Net()).model).model)
    for k, v in weights(model).items():
        torch.testing.assert_close(v, 0.4 * given[k] + 0.1 * fresh[k])
    # Later rounds as usual.
    assert reinit(model, opt).model is model and reinit.round == 1


def test_random_returns_a_new_module_and_an_optimizer_over_its_parameters():
    reinit = Reinitializer("random", factory=Net, seed=0)
    model = reinit(None).model
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    new, new_opt = reinit(model, opt)
    assert new is not model
    held = {id(p) for group in new_opt.param_groups for p in group["params"]}
    assert held == {id(p) for p in new.parameters()}
    before = weights(new)
    x, y = data()
    loss = F.cross_entropy(new(x), y)
    new_opt.zero_grad()
    loss.backward()
    new_opt.step()
    assert not same(before, weights(new))  # the returned optimizer trains the returned model


def test_the_old_optimizer_would_have_trained_nothing():
    """The friction the optimizer rule removes: the old optimizer holds the discarded model's tensors."""
    reinit = Reinitializer("random", factory=Net, seed=0)
    model = reinit(None).model
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    new, _ = reinit(model, opt)
    before = weights(new)
    x, y = data()
    opt.zero_grad()
    F.cross_entropy(new(x), y).backward()
    opt.step()
    assert same(before, weights(new))


def test_reset_to_init_restores_the_round_zero_state():
    reinit = Reinitializer("reset_to_init", seed=0)
    model = Net()
    initial = weights(model)
    model, opt = reinit(model, torch.optim.Adam(model.parameters()))
    x, y = data()
    my_train(reinit, model, opt, x, y, seed=0)
    assert not same(initial, weights(model))
    model, _ = reinit(model, opt)
    assert same(initial, weights(model))


def test_hooks_reach_the_loop_l2_init_adds_a_term():
    reinit = Reinitializer("l2_init", {"lam": 0.1}, seed=0)
    model = Net()
    model, _ = reinit(model)
    assert reinit.loss_term(model) == 0  # at the initial weights the pull is zero
    with torch.no_grad():
        model.head.weight.add_(1.0)
    assert float(reinit.loss_term(model).detach()) == pytest.approx(0.1 * model.head.weight.numel(), rel=1e-5)


def test_hooks_without_a_round_and_after_step_without_a_minibatch_are_one_line_errors():
    reinit = Reinitializer("redo", factory=Net, seed=0)
    with pytest.raises(ActivewsError, match=r"call reinit\(model, optimizer\) at the start"):
        reinit.loss_term(Net())
    model, _ = reinit(None)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ActivewsError, match=r"after_step\(model, optimizer, x=xb, y=yb\)"):
        reinit.after_step(model, opt)
    Reinitializer("warm")(Net())  # no hooks: after_step without data is fine
    warm = Reinitializer("warm")
    warm(Net())
    warm.after_step(Net(), opt)
    assert warm.hooks.steps == 1


# ---------------------------------------------------------------------------------- optimizer rule


def test_rebuilt_optimizer_keeps_class_hyperparameters_and_groups_with_fresh_state():
    reinit = Reinitializer("shrink_perturb", factory=Net, seed=0)
    model = reinit(None).model
    opt = torch.optim.Adam(
        [
            {"params": [p for m in list(model)[:4] for p in m.parameters()], "lr": 1e-3},
            {"params": model.head.parameters(), "lr": 5e-2},
        ],
        betas=(0.8, 0.9),
    )
    x, y = data()
    my_train(reinit, model, opt, x, y, seed=0)
    assert opt.state
    new, new_opt = reinit(model, opt)
    assert new is model  # shrink_perturb works in place
    assert type(new_opt) is torch.optim.Adam and new_opt is not opt
    assert [g["lr"] for g in new_opt.param_groups] == [1e-3, 5e-2]
    assert new_opt.param_groups[0]["betas"] == (0.8, 0.9)
    assert new_opt.param_groups[1]["params"] == list(model.head.parameters())
    assert not new_opt.state  # fresh state: the bench's protocol


def test_optimizer_state_keep_carries_the_moments_to_a_new_module():
    reinit = Reinitializer("random", factory=Net, seed=0, optimizer_state="keep")
    model = reinit(None).model
    opt = torch.optim.Adam(model.parameters())
    x, y = data()
    my_train(reinit, model, opt, x, y, seed=0)
    moments = [opt.state[p]["exp_avg"].clone() for p in model.parameters()]
    new, new_opt = reinit(model, opt)
    assert new is not model
    assert all(
        torch.equal(new_opt.state[p]["exp_avg"], m) for p, m in zip(new.parameters(), moments, strict=True)
    )


def test_make_optimizer_builds_each_rounds_optimizer():
    reinit = Reinitializer("random", factory=Net, seed=0, make_optimizer=lambda p: torch.optim.SGD(p, lr=0.5))
    model, opt = reinit(None)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.5
    new, new_opt = reinit(model)
    assert {id(p) for p in new_opt.param_groups[0]["params"]} == {id(p) for p in new.parameters()}


def test_an_optimizer_over_other_tensors_is_refused():
    model, other = Net(), Net()
    with pytest.raises(ActivewsError, match=r"not a parameter of the model: build the optimizer over model"):
        rebuild_optimizer(torch.optim.SGD(other.parameters(), lr=0.1), model, Net())


# ---------------------------------------------------------------------------------- factory checks


def test_a_strategy_drawing_fresh_weights_needs_a_factory():
    with pytest.raises(ActivewsError, match=r"'random'.* draws fresh weights: pass factory="):
        Reinitializer("random")
    Reinitializer("warm")
    Reinitializer("reset_to_init")
    Reinitializer("shrink_perturb", {"noise": "gaussian", "buffers": "keep"})  # needs only the generator


def test_a_factory_returning_the_same_object_is_detected():
    net = Net()
    reinit = Reinitializer("random", factory=lambda: net, seed=0)
    reinit(net)
    with pytest.raises(ActivewsError, match=r"same module object twice; it must build a new one each call"):
        reinit(net)


def test_a_factory_of_another_architecture_is_a_one_line_error():
    reinit = Reinitializer("shrink_perturb", factory=lambda: Net(width=8), seed=0)
    reinit(Net())
    with pytest.raises(
        ActivewsError,
        match=r"another architecture.*0.weight has shape \[8, 6\] where the model has \[16, 6\]",
    ):
        reinit(Net())
    reinit = Reinitializer("head_reset", factory=lambda: nn.Sequential(nn.Linear(6, 3)), seed=0)
    reinit(Net())
    with pytest.raises(ActivewsError, match=r"another architecture.*lacks 2.weight"):
        reinit(Net())


def test_a_factory_returning_no_module_is_a_one_line_error():
    reinit = Reinitializer("random", factory=lambda: "net", seed=0)
    with pytest.raises(
        ActivewsError, match=r"returned str; it must return a torch.nn.Module \(a new one each call\)"
    ):
        reinit(None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, r"seed=-1: pass an int with 0 <= seed < 2\*\*32"),
        ({"seed": 1.5}, r"seed=1.5"),
        ({"optimizer_state": "fresh"}, r"optimizer_state='fresh': use 'reset'"),
        ({"factory": 3}, r"factory is .*: pass a class or function"),
        ({"factory": dict}, r"factory is the class dict, not an nn.Module subclass"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ActivewsError, match=message):
        Reinitializer("warm", **kwargs)


def test_unknown_strategy_gets_a_close_match():
    with pytest.raises(ActivewsError, match=r"shrink_perturb"):
        Reinitializer("shrink_pertub")


# ------------------------------------------------------------------------------------- checkpoints


def test_state_dict_continues_the_rounds_identically():
    x, y = data()

    def rounds(reinit, model, opt, start, stop):
        for r in range(start, stop):
            model, opt = reinit(model, opt)
            my_train(reinit, model, opt, x, y, seed=r)
        return model, opt

    whole = Reinitializer("shrink_perturb", {"noise": "gaussian"}, factory=Net, seed=4)
    m0 = whole.first_model()
    model, _ = rounds(whole, m0, torch.optim.Adam(m0.parameters()), 0, 4)

    first = Reinitializer("shrink_perturb", {"noise": "gaussian"}, factory=Net, seed=4)
    m0 = first.first_model()
    half, opt = rounds(first, m0, torch.optim.Adam(m0.parameters()), 0, 2)
    state = first.state_dict()
    saved = weights(half)

    second = Reinitializer("shrink_perturb", {"noise": "gaussian"}, factory=Net, seed=4)
    second.load_state_dict(state)
    restored = Net()
    restored.load_state_dict(saved)
    resumed, _ = rounds(second, restored, torch.optim.Adam(restored.parameters()), 2, 4)
    assert second.round == 3
    assert same(weights(model), weights(resumed))


# ---------------------------------------------------------------- the shared round step (one step)


def test_the_reinitializer_runs_the_bench_round_step(monkeypatch):
    calls = []
    original = RoundStep.initialize

    def spy(self, model, **kwargs):
        calls.append(kwargs["round_index"])
        return original(self, model, **kwargs)

    monkeypatch.setattr(RoundStep, "initialize", spy)
    run("warm", rounds=3)
    assert calls == [0, 1, 2]


def test_missing_needs_are_one_line_errors_before_training():
    step = RoundStep(make_strategy("reset_to_init"), TrainConfig(max_epochs=1))
    x, y = data()
    with pytest.raises(ActivewsError, match=r"'reset_to_init' needs initial_state: pass initial_state="):
        step.run(Net(), x, y, round_index=1, initial_state={}, train_generator=torch.Generator())
    random_step = RoundStep(make_strategy("random"), TrainConfig(max_epochs=1))
    with pytest.raises(ActivewsError, match=r"'random' needs fresh_model: pass fresh_model="):
        random_step.run(Net(), x, y, round_index=1, train_generator=torch.Generator())


def test_warm_needs_neither_initial_state_nor_generators_nor_a_factory():
    step = RoundStep(make_strategy("warm"), TrainConfig(max_epochs=1))
    x, y = data()
    model = Net()
    result = step.run(model, x, y, round_index=1, train_generator=torch.Generator().manual_seed(0))
    assert result.model is model and result.stats.steps > 0


def test_reading_a_missing_context_field_names_the_fix():
    ctx = InitContext(1)
    with pytest.raises(ActivewsError, match=r"no generator, which the strategy uses: pass generator="):
        ctx.generator  # noqa: B018
    with pytest.raises(ActivewsError, match=r"no initial_state"):
        InitContext(1, initial_state={}).initial_state  # noqa: B018
    with pytest.raises(ActivewsError, match=r"no fresh_model"):
        ctx.fresh_model  # noqa: B018
    assert ctx.replace(generator=torch.Generator()).has("generator")
    with pytest.raises(ActivewsError, match=r"InitContext has no field 'seed'"):
        ctx.replace(seed=1)


def test_declared_needs():
    assert make_strategy("warm").needs() == frozenset()
    assert make_strategy("random").needs() == {"fresh_model"}
    assert make_strategy("reset_to_init").needs() == {"initial_state"}
    assert make_strategy("shrink_perturb").needs() == {"fresh_model"}
    assert make_strategy("shrink_perturb", {"noise": "gaussian", "buffers": "keep"}).needs() == {"generator"}
    assert make_strategy("dash").needs() == {"data"}
    assert make_strategy("redo", {"at_round_start": True}).needs() == {"fresh_model", "data"}
    assert make_strategy("scheduled", {"strategy": "warm", "reset": "reset_to_init", "every": 2}).needs() == {
        "initial_state"
    }


# --------------------------------------------------------------------------------------- train_fn


def sgd_train_fn(model, x, y, hooks: TrainHooks):
    steps = 0
    for idx in torch.randperm(len(y), generator=hooks.generator).split(32):
        loss = F.cross_entropy(model(x[idx]), y[idx]) + hooks.loss_term(model)
        hooks.optimizer.zero_grad()
        loss.backward()
        hooks.optimizer.step()
        hooks.after_step(model, hooks.optimizer, x=x[idx], y=y[idx])
        steps += 1
    return {"steps": steps}


class DropNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.5))
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.body(x))


def test_train_fn_trains_the_round_with_the_hooks_and_seeded_dropout():
    x, y = data()
    results = []
    for _ in range(2):
        step = RoundStep(make_strategy("l2_init"), TrainConfig(), train_fn=sgd_train_fn)
        model = activews.models.draw_seeded(DropNet, 5)
        torch.manual_seed(len(results))  # another global state each time: the call is seeded anyway
        result = step.run(
            model,
            x,
            y,
            round_index=0,
            initial_state=weights(model),
            train_generator=torch.Generator().manual_seed(7),
        )
        results.append((weights(result.model), result.stats))
    assert same(results[0][0], results[1][0])
    stats = results[0][1]
    assert stats.steps == 3 and stats.stop_reason == "train_fn" and stats.seconds > 0


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (5, r"returned int; return a TrainStats or a dict with at least 'steps'"),
        ({"epochs": 1}, r"steps=None; return the number of optimizer steps"),
        ({"steps": -1}, r"steps=-1"),
        ({"steps": 3, "loss": 0.1}, r"unknown keys \['loss'\]"),
        ({"steps": 3, "stop_reason": "done"}, r"stop_reason='done'; use one of target"),
        ({"steps": 3, "seconds": float("nan")}, r"seconds=nan"),
    ],
)
def test_bad_train_fn_results_are_one_line_errors(result, message):
    with pytest.raises(ActivewsError, match=message):
        as_train_stats(result, 0.1)


def test_train_fn_stats_pass_through():
    stats = TrainStats(4, 1, 0.5, 0.9, 0.3, "target")
    assert as_train_stats(stats, 9.0) is stats
    assert as_train_stats({"steps": 4, "epochs": 2, "train_accuracy": 1}, 0.25) == TrainStats(
        4, 2, 0.25, 1.0, None, "train_fn"
    )


# ---------------------------------------------------------------------------------------- dropout


class LibraryDropout(nn.modules.dropout._DropoutNd):
    """Like baal's Dropout: built on torch's base class, always on."""

    def forward(self, x):
        return F.dropout(x, self.p, True, self.inplace)


class MCDropout(nn.Module):
    """A dropout module not built on torch's base class."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, training=True)


@pytest.mark.parametrize(
    "layer", [LibraryDropout(0.3), MCDropout(0.3), nn.AlphaDropout(0.2), nn.Dropout1d(0.1)]
)
def test_every_dropout_kind_is_seeded(layer):
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), layer, nn.Linear(16, 3))
    assert dropout_layers(model) == [layer]
    x, y = data()
    states = []
    for _ in range(2):
        torch.manual_seed(len(states))  # another global state each time: the masks must not depend on it
        m = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), layer, nn.Linear(16, 3))
        with torch.no_grad():
            for p in m.parameters():
                p.fill_(0.1)
        train_to_criterion(m, x, y, TrainConfig(max_epochs=2), torch.Generator().manual_seed(0))
        states.append(weights(m))
    assert same(*states)


def test_dropout_that_drops_nothing_is_not_counted():
    assert dropout_layers(nn.Sequential(nn.Linear(2, 2), MCDropout(0.0), nn.Dropout(0.0))) == []


def test_top_level_exports():
    assert activews.Reinitializer is Reinitializer
    assert activews.TrainHooks is TrainHooks


def test_numpy_data_is_taken_as_tensors_and_other_things_are_one_line_errors():
    import numpy as np

    x, y = data()
    reinit = Reinitializer("dash", seed=0)
    model = Net()
    reinit(model, x=x.numpy(), y=y.numpy(), new=np.ones(len(y), dtype=bool))
    before = weights(model)
    reinit(model, x=x.numpy(), y=y.numpy(), new=np.ones(len(y), dtype=bool))
    assert not same(before, weights(model))  # dash shrank the weights using the NumPy data
    with pytest.raises(ActivewsError, match=r"^x is .*: pass a torch.Tensor or NumPy array$"):
        reinit(model, x=object(), y=y)
