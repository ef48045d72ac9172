"""``scheduled``: which sub-strategy runs in which round, per-round values, forwarded hooks, state, CLI."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from activews import BenchConfig
from activews.cli import main
from activews.engine.arm import run_arm
from activews.engine.setup import load_bench_dataset
from activews.errors import ActivewsError
from activews.strategies import (
    STRATEGIES,
    InitStrategy,
    get_strategy,
    make_strategy,
    register_strategy,
    training_hooks,
)
from activews.strategies.scheduled import Scheduled
from activews.training import Step
from tests.helpers import (
    INPUT_SHAPE,
    NUM_CLASSES,
    assert_one_line,
    assert_same_state,
    changed_keys,
    first_fresh_draw,
    make_ctx,
    snapshot,
)
from tests.run_helpers import TINY, TINY_FLAGS

RECORDER = "recording_test_strategy"


@pytest.fixture
def recorder():
    """A warm strategy with both hooks and a model check, recording every call with its round."""

    @register_strategy(RECORDER)
    class Recorder(InitStrategy):
        class Params(InitStrategy.Params):
            tag: str = "a"
            max_layers: int = 100

        calls: list[tuple[str, int, str]] = []

        def init_round(self, model, ctx):
            type(self).calls.append(("init", ctx.round_index, self.params.tag))
            return model

        def loss_term(self, model, ctx):
            type(self).calls.append(("loss", ctx.round_index, self.params.tag))
            return None

        def after_step(self, model, step, ctx):
            type(self).calls.append(("step", ctx.round_index, self.params.tag))

        def check_model(self, model):
            n = len([m for m in model.modules() if isinstance(m, nn.Linear)])
            if n > self.params.max_layers:
                raise ActivewsError(f"recorder: {n} Linear layers, max_layers={self.params.max_layers}")

        def state_dict(self):
            return {"seen": torch.tensor([len(type(self).calls)])}

        def load_state_dict(self, state):
            type(self).loaded = state

    Recorder.calls = []
    try:
        yield Recorder
    finally:
        STRATEGIES.unregister(RECORDER)


def ctx_at(trained, r: int, seed: int = 3):
    return make_ctx(trained.key, seed, trained.initial_state, round_index=r)


# ------------------------------------------------------------------------------------------- schedule


def test_default_is_warm_with_a_random_redraw_every_5_rounds(trained_mlp):
    strategy = Scheduled()
    assert [strategy.active(r).name for r in range(12)] == ["warm"] * 5 + ["random"] + ["warm"] * 4 + [
        "random",
        "warm",
    ]
    model = trained_mlp.copy()
    assert strategy.init_round(model, ctx_at(trained_mlp, 1)) is model
    assert_same_state(
        snapshot(strategy.init_round(trained_mlp.copy(), ctx_at(trained_mlp, 5, seed=9))),
        first_fresh_draw("mlp", 9),
    )
    never = Scheduled(every=None)
    assert {never.active(r).name for r in range(50)} == {"warm"} and never.resetter is None
    assert Scheduled(every=None, reset="reset_to_init").resetter is None  # allowed: sweeps over every=null,5


def test_per_round_values_and_the_last_repeats(trained_mlp):
    strategy = make_strategy(
        "scheduled",
        {
            "strategy": "shrink_perturb",
            "strategy_params": {"perturb": 0.0, "shrink": 0.9},
            "every": None,
            "per_round": {"shrink": [0.2, 0.4, 0.6]},
        },
    )
    weights = snapshot(trained_mlp.model)
    for r, shrink in [(1, 0.2), (2, 0.4), (3, 0.6), (4, 0.6), (10, 0.6)]:
        out = snapshot(strategy.init_round(trained_mlp.copy(), ctx_at(trained_mlp, r)))
        for key in out:
            torch.testing.assert_close(out[key], shrink * weights[key])
    assert strategy.active(0).params.shrink == 0.9  # round 0 (hooks only) uses strategy_params
    assert strategy.active(7).params.perturb == 0.0  # strategy_params fills what per_round leaves out


def test_reset_rounds_ignore_per_round(trained_mlp):
    strategy = Scheduled(
        strategy="shrink_perturb", every=2, reset="reset_to_init", per_round={"shrink": [0.5]}
    )
    assert_same_state(
        snapshot(strategy.init_round(trained_mlp.copy(), ctx_at(trained_mlp, 4))), trained_mlp.initial_state
    )
    assert changed_keys(
        snapshot(strategy.init_round(trained_mlp.copy(), ctx_at(trained_mlp, 3))), trained_mlp.initial_state
    )


def test_deterministic_under_a_fixed_generator(trained):
    strategy = Scheduled(strategy="shrink_perturb", every=3, reset="random")
    for r in (1, 3):
        a = snapshot(strategy.init_round(trained.copy(), ctx_at(trained, r, seed=4)))
        b = snapshot(strategy.init_round(trained.copy(), ctx_at(trained, r, seed=4)))
        c = snapshot(strategy.init_round(trained.copy(), ctx_at(trained, r, seed=5)))
        assert_same_state(a, b)
        assert changed_keys(a, c)


# ---------------------------------------------------------------------------------- forwarded seams


def test_hooks_and_model_check_are_those_of_the_rounds_sub_strategy(recorder, trained_mlp):
    strategy = Scheduled(
        strategy=RECORDER, strategy_params={"tag": "base"}, per_round={"tag": ["r1", "r2"]}, every=3
    )
    # the class forwards both
    assert (
        Scheduled.loss_term is not InitStrategy.loss_term
        and Scheduled.after_step is not InitStrategy.after_step
    )
    assert strategy.hooks() == (True, True)  # this instance's sub-strategies use both
    model = trained_mlp.copy()
    step = Step(1, 0, torch.zeros(1), torch.zeros(1), torch.optim.SGD(model.parameters(), lr=0.1))
    for r in range(5):
        ctx = ctx_at(trained_mlp, r)
        if r:
            strategy.init_round(model, ctx)
        hooks = training_hooks(strategy, ctx)
        assert hooks["loss_term"](model) is None
        hooks["after_step"](model, step)
    assert recorder.calls == [
        ("loss", 0, "base"),
        ("step", 0, "base"),
        *[(kind, 1, "r1") for kind in ("init", "loss", "step")],
        *[(kind, 2, "r2") for kind in ("init", "loss", "step")],
        # round 3 is a reset (random): no hooks of the recorder run
        *[(kind, 4, "r2") for kind in ("init", "loss", "step")],
    ]
    with_limit = Scheduled(strategy=RECORDER, per_round={"max_layers": [5, 2]}, every=None)
    with pytest.raises(ActivewsError, match="3 Linear layers, max_layers=2"):
        with_limit.check_model(trained_mlp.model)  # round 2's parameters are checked before training
    assert with_limit.ordinary.params.max_layers == 100  # and the base parameters are put back
    resetting = Scheduled(reset="partial_reset", reset_params={"last": 4})
    with pytest.raises(ActivewsError, match="has only 3 parameterized layers"):
        resetting.check_model(trained_mlp.model)


def test_only_the_hooks_a_sub_strategy_uses_are_passed_to_the_trainer(trained_mlp):
    plain = Scheduled()
    assert plain.hooks() == (False, False) and training_hooks(plain, ctx_at(trained_mlp, 0)) == {}
    l2 = Scheduled(strategy="l2_init", strategy_params={"lam": 0.5}, every=2)
    assert l2.hooks() == (True, False)
    model = trained_mlp.copy()
    term = training_hooks(l2, ctx_at(trained_mlp, 1))["loss_term"](model)
    expected = make_strategy("l2_init", {"lam": 0.5}).loss_term(model, ctx_at(trained_mlp, 1))
    torch.testing.assert_close(term, expected)
    assert training_hooks(l2, ctx_at(trained_mlp, 2))["loss_term"](model) is None  # random's round


def test_sub_strategy_state_round_trips(tmp_path, trained_mlp, recorder):
    strategy = Scheduled(strategy="dash", every=2, reset=RECORDER)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, *INPUT_SHAPE, generator=gen), torch.randint(0, NUM_CLASSES, (50,), generator=gen)
    mask = torch.arange(50) >= 30
    ctx = ctx_at(trained_mlp, 1).replace(x_labeled=x, y_labeled=y, new_mask=mask)
    strategy.init_round(trained_mlp.copy(), ctx)
    state = strategy.state_dict()
    assert state["strategy"] == {"groups": [30, 20]}
    torch.save(state, tmp_path / "s.pt")
    restored = Scheduled(strategy="dash", every=2, reset=RECORDER)
    restored.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert restored.ordinary.groups == [30, 20]
    assert torch.equal(recorder.loaded["seen"], state["reset"]["seen"])
    with pytest.raises(ActivewsError, match="unexpected checkpoint state") as exc:
        restored.load_state_dict({"other": 1})
    assert_one_line(str(exc.value))
    Scheduled().load_state_dict({})  # stateless sub-strategies, nothing saved: fine


# --------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"strategy": "wram"}, r"strategy: unknown strategy 'wram'; did you mean 'warm'"),
        ({"reset": "randon"}, r"reset: unknown strategy 'randon'; did you mean 'random'"),
        ({"strategy": "scheduled"}, "a schedule cannot contain another schedule"),
        ({"reset": "scheduled"}, "a schedule cannot contain another schedule"),
        (
            {"strategy": "shrink_perturb", "strategy_params": {"shrink": 1.5}},
            r"strategy_params: strategy 'shrink_perturb': shrink",
        ),
        ({"strategy": "shrink_perturb", "strategy_params": {"shrnk": 0.5}}, "unknown parameter 'shrnk'"),
        ({"reset_params": {"last": 1}}, r"reset_params: strategy 'random': unknown parameter 'last'"),
        (
            {"strategy": "shrink_perturb", "per_round": {"foo": [1]}},
            "'foo' is not a parameter of 'shrink_perturb'",
        ),
        ({"per_round": {"shrink": [0.5]}}, r"'shrink' is not a parameter of 'warm' \(its parameters: none\)"),
        (
            {"strategy": "shrink_perturb", "per_round": {"shrink": []}},
            "per_round.shrink: give at least one value",
        ),
        (
            {"strategy": "shrink_perturb", "per_round": {"shrink": [0.2, 1.5]}},
            r"per_round \(round 2\): strategy 'shrink_perturb': shrink",
        ),
        (
            {"strategy": "shrink_perturb", "per_round": {"shrink": 0.2}},
            "per_round.shrink: Input should be a valid list",
        ),
        ({"every": 0}, "every"),
        ({"every": None, "reset": "nope"}, "reset: unknown strategy 'nope'"),  # checked even if unused
        (
            {"every": None, "reset_params": {"shrink": 0.1}},
            r"reset_params: strategy 'random': unknown parameter",
        ),
    ],
)
def test_invalid_params_raise_one_line_errors(params, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        make_strategy("scheduled", params)
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith("strategy 'scheduled':")


def test_metadata():
    cls = get_strategy("scheduled")
    assert "References:" in (cls.__doc__ or "") and "2205.07802" in cls.reference and cls.batchnorm


# ------------------------------------------------------------------------------------------- in a run


def test_run_arm_with_a_reset_every_2_rounds():
    params = {"scheduled": {"strategy": "shrink_perturb", "every": 2, "reset": "random"}}
    config = BenchConfig.build(**(TINY | {"rounds": 3, "strategies": ["scheduled"], "params": params}))
    data = load_bench_dataset(config)
    records = run_arm(config, data, "scheduled", 0)
    assert [r["round"] for r in records] == [0, 1, 2]


def _bench(tmp_path, name: str, *params: str) -> tuple[int, str, Path]:
    """``activews bench`` (tiny, one seed) in-process with ``--param`` values; (exit code, stderr, folder)."""
    flags = list(TINY_FLAGS)
    flags[flags.index("--seeds") + 1] = "1"
    folder = tmp_path / name
    argv = [
        "bench",
        *flags,
        "--quiet",
        "--no-plot",
        "--output",
        str(folder),
        "--json",
        str(tmp_path / f"{name}.json"),
    ]
    argv += ["--strategy", "scheduled"] + [a for p in params for a in ("--param", p)]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue(), folder


def test_cli_takes_json_dict_params(tmp_path):
    rc, err, folder = _bench(
        tmp_path,
        "ok",
        "scheduled.strategy=shrink_perturb",
        'scheduled.per_round={"shrink":[0.2,0.4,0.6]}',
        'scheduled.strategy_params={"perturb":0.05}',
        "scheduled.every=null",
    )
    assert rc == 0, err
    summary = json.loads((tmp_path / "ok.json").read_text())
    assert "scheduled" in {arm["strategy"] for arm in summary["arms"]}
    config = json.loads((folder / "config.json").read_text())
    assert '"per_round": {"shrink": [0.2, 0.4, 0.6]}' in json.dumps(config)

    rc, err, _ = _bench(
        tmp_path, "bad", "scheduled.strategy=shrink_perturb", 'scheduled.per_round={"shrnk":[0.2]}'
    )
    assert rc == 2
    assert_one_line(err.strip())
    assert "'shrnk' is not a parameter of 'shrink_perturb'" in err


def test_round_zero_action_is_that_of_the_ordinary_strategy():
    assert not make_strategy("scheduled").acts_at_round_zero()
    acts = make_strategy(
        "scheduled", {"strategy": "shrink_perturb", "strategy_params": {"first_round": True}}
    )
    assert acts.acts_at_round_zero()
    # per_round values start at round 1: round 0 keeps strategy_params
    later = make_strategy("scheduled", {"strategy": "shrink_perturb", "per_round": {"first_round": [True]}})
    assert not later.acts_at_round_zero()
