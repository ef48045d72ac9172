"""activews.engine.step: the one round step that run_arm, WarmStartClassifier and users' loops share."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from activews.diagnostics import Diagnostic, make_diagnostics
from activews.engine import step as step_module
from activews.engine.arm import run_arm
from activews.engine.config import ArmSpec, BenchConfig
from activews.engine.setup import load_bench_dataset
from activews.engine.step import RoundResult, RoundStep, optimizer_for
from activews.errors import ActivewsError
from activews.models import build_model
from activews.sklearn import WarmStartClassifier
from activews.strategies import InitContext, InitStrategy, make_strategy
from activews.training import TrainConfig, TrainStats
from tests.helpers import assert_one_line, snapshot

CFG = TrainConfig(max_epochs=3, target_accuracy=1.0, batch_size=32)


def _data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 40, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def _model(seed: int = 0) -> nn.Module:
    return build_model("mlp", (40,), 10, {"hidden": [16]}, seed=seed)


class Recorder(InitStrategy):
    """Unregistered: records every call it gets; ``result`` replaces what ``init_round`` returns."""

    def __init__(self, result: object = None) -> None:
        super().__init__()
        self.result = result
        self.calls: list[tuple[str, int]] = []
        self.contexts: list[InitContext] = []

    def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
        self.calls.append(("init_round", ctx.round_index))
        self.contexts.append(ctx)
        return model if self.result is None else self.result  # type: ignore[return-value]

    def loss_term(self, model: nn.Module, ctx: InitContext) -> torch.Tensor | None:
        self.calls.append(("loss_term", ctx.round_index))
        self.contexts.append(ctx)
        return None

    def after_step(self, model: nn.Module, step, ctx: InitContext) -> None:
        self.calls.append(("after_step", ctx.round_index))
        self.contexts.append(ctx)

    def check_model(self, model: nn.Module) -> None:
        self.calls.append(("check_model", -1))


def _run(step: RoundStep, model: nn.Module, round_index: int, seed: int = 0, **kwargs) -> RoundResult:
    x, y = _data()
    kwargs.setdefault("new_mask", torch.arange(len(y)) >= 64)
    initial = snapshot(model)
    init_gen = torch.Generator().manual_seed(seed)
    return step.run(
        model,
        x,
        y,
        round_index=round_index,
        fresh_model=lambda: _model(int(torch.randint(0, 2**31, (1,), generator=init_gen))),
        initial_state=initial,
        init_generator=init_gen,
        train_generator=torch.Generator().manual_seed(seed + 1),
        **kwargs,
    )


def test_round_zero_trains_the_given_model_without_init_round():
    strat = Recorder()
    model = _model()
    result = _run(RoundStep(strat, CFG), model, 0)
    assert result.model is model and result.init_seconds == 0.0
    assert ("init_round", 0) not in strat.calls
    assert isinstance(result.stats, TrainStats) and result.stats.steps == 3 * 3  # 3 epochs of 96 / 32
    assert result.ctx.round_index == 0 and result.fields == {}
    assert result.ctx.device == torch.device("cpu") and result.ctx.new_mask.sum() == 32


class RoundZeroRecorder(Recorder):
    def acts_at_round_zero(self) -> bool:
        return True


def test_a_strategy_acting_at_round_zero_initializes_round_zero_too():
    replacement = _model(seed=5)
    strat = RoundZeroRecorder(result=replacement)
    result = _run(RoundStep(strat, CFG), _model(), 0)
    assert [c for c in strat.calls if c[0] == "init_round"] == [("init_round", 0)]
    assert result.model is replacement and result.init_seconds > 0
    assert strat.contexts[0] is result.ctx and result.ctx.round_index == 0


@pytest.mark.parametrize("params", [{}, {"first_round": False}, {"first_round": True}])
def test_shrink_perturb_changes_round_zero_only_with_first_round(params):
    model = _model()
    before = snapshot(model)
    gen = torch.Generator().manual_seed(7)
    draws = torch.Generator().manual_seed(7)
    step = RoundStep(make_strategy("shrink_perturb", params), CFG)
    out, seconds, ctx = step.initialize(
        model,
        round_index=0,
        fresh_model=lambda: _model(int(torch.randint(0, 2**31, (1,), generator=gen))),
        init_generator=gen,
    )
    assert out is model and ctx.round_index == 0
    if not params.get("first_round"):
        assert seconds == 0.0 and all(torch.equal(v, before[k]) for k, v in snapshot(out).items())
        return
    # The authors' run.py: the first round's model is shrink * theta_0 + perturb * (a fresh draw).
    fresh = snapshot(_model(int(torch.randint(0, 2**31, (1,), generator=draws))))
    assert seconds > 0
    for k, v in snapshot(out).items():
        torch.testing.assert_close(v, 0.4 * before[k] + 0.1 * fresh[k])


def test_later_rounds_call_init_round_once_and_train_what_it_returns():
    replacement = _model(seed=5)
    strat = Recorder(result=replacement)
    result = _run(RoundStep(strat, CFG), _model(), 1)
    assert [c for c in strat.calls if c[0] == "init_round"] == [("init_round", 1)]
    assert result.model is replacement and result.init_seconds > 0
    assert strat.contexts[0] is result.ctx


def test_hooks_get_the_rounds_context_in_every_round():
    strat = Recorder()
    for r in (0, 1):
        result = _run(RoundStep(strat, CFG), _model(), r)
        steps = result.stats.steps
        assert strat.calls.count(("loss_term", r)) == strat.calls.count(("after_step", r)) == steps
    # every hook call of a round saw that round's context
    assert all(ctx.round_index in (0, 1) for ctx in strat.contexts)
    assert strat.contexts[-1] is result.ctx


@pytest.mark.parametrize("bad", ["a string", 3, {}])
def test_init_round_returning_a_non_module_is_a_one_line_error(bad):
    strat = Recorder(result=bad)
    with pytest.raises(
        ActivewsError, match=r"strategy 'mine': init_round returned \w+, expected nn.Module"
    ) as e:
        _run(RoundStep(strat, CFG, name="mine"), _model(), 1)
    assert_one_line(str(e.value))
    # unnamed: the registry name, else the class name
    with pytest.raises(ActivewsError, match="strategy 'Recorder': init_round returned"):
        _run(RoundStep(Recorder(result=bad), CFG), _model(), 1)


def test_the_step_is_deterministic_and_matches_the_plain_loop():
    strat = make_strategy("shrink_perturb")
    a, b = _run(RoundStep(strat, CFG), _model(), 1), _run(RoundStep(strat, CFG), _model(), 1)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert (a.stats.steps, a.stats.train_loss) == (b.stats.steps, b.stats.train_loss)
    other = _run(RoundStep(strat, CFG), _model(), 1, seed=7)
    assert any(
        not torch.equal(p, q) for p, q in zip(a.model.parameters(), other.model.parameters(), strict=True)
    )


def test_check_model_and_first_round_epochs_are_explicit():
    strat = Recorder()
    _run(RoundStep(strat, CFG), _model(), 0)
    assert ("check_model", -1) not in strat.calls
    _run(RoundStep(strat, CFG, check_model=True), _model(), 1)
    assert strat.calls.index(("check_model", -1)) < strat.calls.index(("init_round", 1))

    step = RoundStep(make_strategy("warm"), TrainConfig(target_accuracy=0.01), first_round_epochs=2)
    first, later = _run(step, _model(), 0), _run(step, _model(), 1)
    assert (first.stats.stop_reason, first.stats.epochs) == ("epochs", 2)
    assert later.stats.stop_reason == "target"


def test_the_optimizer_is_new_each_round_unless_its_state_is_kept():
    model = _model()
    previous = _run(RoundStep(make_strategy("warm"), CFG), model, 0).optimizer
    assert previous.state  # Adam has moments after training
    fresh = optimizer_for(model, previous, CFG)
    assert fresh is not previous and not fresh.state
    kept = optimizer_for(model, previous, CFG.model_copy(update={"keep_optimizer_state": True}))
    assert kept is not previous
    for p, q in zip(previous.state.values(), kept.state.values(), strict=True):
        assert torch.equal(p["exp_avg"], q["exp_avg"])
    keep = RoundStep(make_strategy("warm"), CFG.model_copy(update={"keep_optimizer_state": True}))
    result = _run(keep, model, 1, optimizer=previous)
    assert int(next(iter(result.optimizer.state.values()))["step"]) == 2 * 9  # two rounds of steps


class Spy(Diagnostic):
    name = "weights"  # borrows the fields of a real diagnostic

    def __init__(self, log: list[str], sleep: float = 0.0) -> None:
        self.log, self.sleep = log, sleep

    def before_init(self, model, ctx):
        time.sleep(self.sleep)
        self.log.append("before_init")

    def before_training(self, model, ctx):
        self.log.append("before_training")
        return lambda model, idx: self.log.append("probe")

    def after_training(self, model, ctx):
        self.log.append("after_training")
        return {"weight_norm": 1.0}


def test_diagnostics_are_called_around_the_strategy_and_stay_off_its_clock():
    log: list[str] = []
    strat = Recorder()
    step = RoundStep(strat, CFG, diagnostics=[Spy(log, sleep=0.3), Spy(log)])
    result = _run(step, _model(), 1)
    assert result.init_seconds < 0.3  # the sleep in before_init is not the strategy's time
    first_probe = log.index("probe")
    assert log[:first_probe] == ["before_init", "before_init", "before_training", "before_training"]
    assert log.count("probe") == 2 * 3  # both probes, at each of the first epoch's 3 minibatches
    assert log[-2:] == ["after_training", "after_training"]
    assert result.fields == {"weight_norm": 1.0}


def test_real_diagnostics_through_the_step_in_record_order():
    diagnostics = make_diagnostics(["weights", "plasticity", "weight_change"], batch_size=64)
    result = _run(RoundStep(make_strategy("shrink_perturb"), CFG, diagnostics=diagnostics), _model(), 1)
    expected = [f for d in diagnostics for f in d.fields]
    assert list(result.fields) == expected
    assert expected[:3] == ["init_distance", "init_relative_distance", "init_correlation"]
    assert all(v is not None for v in result.fields.values())
    everything = RoundStep(make_strategy("warm"), CFG, diagnostics=make_diagnostics(["all"]))
    zero = _run(everything, _model(), 0, new_mask=torch.ones(96, dtype=torch.bool))  # round 0: all new
    assert zero.fields["init_distance"] is None and zero.fields["grad_norm_new"] is None
    assert zero.fields["distance_from_start"] == zero.fields["distance_from_init"] > 0


# ----------------------------------------------------------------------- every route goes through it


@pytest.fixture
def step_calls(monkeypatch) -> list[tuple[int, RoundStep]]:
    calls: list[tuple[int, RoundStep]] = []
    original = RoundStep.run

    def spy(self, *args, **kwargs):
        calls.append((kwargs["round_index"], self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(step_module.RoundStep, "run", spy)
    return calls


def test_run_arm_runs_every_round_through_the_step(step_calls):
    config = BenchConfig.build(
        n_examples=400,
        rounds=3,
        initial=60,
        query_size=60,
        seeds=1,
        strategies=[],
        max_epochs=5,
        diagnostics="weight_change",
        first_round_epochs=2,
    )
    records = run_arm(config, load_bench_dataset(config), ArmSpec("warm", "warm", {}), 0)
    assert [r for r, _ in step_calls] == [rec["round"] for rec in records] == [0, 1, 2]
    step = step_calls[0][1]
    assert all(s is step for _, s in step_calls)  # one step object for the whole arm
    assert step.first_round_epochs == 2 and not step.check_model and step.name == "warm"
    assert [d.name for d in step.diagnostics] == ["weight_change"]
    assert records[0]["stop_reason"] == "epochs"


def test_the_estimator_runs_every_fit_through_the_step(step_calls):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(90, 6)).astype(np.float32), rng.integers(0, 3, 90)
    clf = WarmStartClassifier(strategy="warm", model_params={"hidden": [8]}, max_epochs=3, random_state=0)
    clf.fit(X[:45], y[:45]).fit(X, y).fit(X[:, :4], y)  # first, round, restart
    assert [r for r, _ in step_calls] == [0, 1, 0]
    assert all(s.check_model and s.name == "warm" and not s.diagnostics for _, s in step_calls)
    assert [h["init_seconds"] == 0.0 for h in clf.fit_history_] == [True, False, True]
    # the previous fit's model is left as it was: the step trained a copy
    previous = clf.model_
    weights = snapshot(previous)
    clf.fit(X[:, :4], y)
    assert clf.model_ is not previous and snapshot(previous).keys() == weights.keys()
    assert all(torch.equal(snapshot(previous)[k], v) for k, v in weights.items())


def test_run_arm_shares_round_zero_unless_shrink_perturb_acts_on_it():
    config = BenchConfig.build(
        n_examples=400, rounds=2, initial=60, query_size=60, seeds=1, strategies=[], max_epochs=3
    )
    data = load_bench_dataset(config)

    def round_zero(spec: ArmSpec) -> tuple:
        rec = run_arm(config, data, spec, 0)[0]
        return rec["test_accuracy"], rec["test_loss"], rec["steps"]

    warm = round_zero(ArmSpec("warm", "warm", {}))
    assert round_zero(ArmSpec("shrink_perturb", "shrink_perturb", {})) == warm
    first = ArmSpec("shrink_perturb[first_round=True]", "shrink_perturb", {"first_round": True})
    assert round_zero(first) != warm
