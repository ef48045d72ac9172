"""The contract every registered strategy keeps, checked through :mod:`activews.testing` (the checks
plugin authors run), and the semantics of the built-in strategies."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from activews.errors import ActivewsError
from activews.strategies import get_strategy, list_strategies, make_strategy
from activews.testing import (
    check_batchnorm,
    check_deterministic,
    check_finite,
    check_keeps_architecture,
    check_returns_module,
    strategy_checks,
)
from tests.helpers import assert_one_line, assert_same_state, changed_keys, first_fresh_draw, snapshot

ALL_STRATEGIES = list_strategies()

EXERCISED: list[tuple[str, dict]] = [
    ("redo", {"every": 2, "tau": 0.3, "at_round_start": True}),
    ("continual_backprop", {"replacement_rate": 0.5, "maturity": 1}),
    ("scheduled", {"every": 2, "strategy": "shrink_perturb", "per_round": {"shrink": [0.2, 0.6]}}),
    (
        "scheduled",
        {"every": 2, "strategy": "redo", "strategy_params": {"every": 2, "tau": 0.3}, "reset": "dash"},
    ),
    ("shrink_perturb", {"noise": "gaussian", "buffers": "keep"}),
    ("partial_reset", {"last": 2}),
]
"""Non-default parameters under which the built-ins' state and hooks act within the checks' three short
rounds (the defaults recycle every 1000 steps, reset every 5 rounds, ...): units are recycled and
replaced, the schedule resets, so the state round trip and the determinism checks see them work."""


# ------------------------------------------------------------------------------------------ the contract


@pytest.mark.parametrize("check", [p for name in ALL_STRATEGIES for p in strategy_checks(name)])
def test_strategy_contract(check):
    check()


@pytest.mark.parametrize("check", [p for name, params in EXERCISED for p in strategy_checks(name, params)])
def test_strategy_contract_with_state_at_work(check):
    check()


@pytest.mark.parametrize(
    "check",
    [check_returns_module, check_keeps_architecture, check_finite, check_batchnorm, check_deterministic],
)
@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_strategy_contract_on_a_resnet(name, check):
    """Nested blocks, projection shortcuts and 20 BatchNorm layers (the init_round checks, and two runs)."""
    check(name, models=("resnet18",))


@pytest.mark.parametrize("name", ALL_STRATEGIES)
def test_params_config_and_the_unknown_key_wording(name):
    """What the CLI shows for a typo (the contract checks only ask for a one-line error naming the key)."""
    cls = get_strategy(name)
    assert cls.Params.model_config.get("frozen") and cls.Params.model_config.get("extra") == "forbid"
    params = cls().params
    for field in cls.Params.model_fields:
        with pytest.raises(ValidationError, match="frozen"):
            setattr(params, field, getattr(params, field))
    for build in (lambda: cls.parse_params({"no_such_key": 1}), lambda: cls(no_such_key=1)):
        with pytest.raises(ActivewsError, match="unknown parameter 'no_such_key'") as exc:
            build()
        assert_one_line(str(exc.value))


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("shrink_perturb", {"shrink": 1.5}, "shrink"),
        ("shrink_perturb", {"shrink": -0.1}, "shrink"),
        ("shrink_perturb", {"perturb": -1}, "perturb"),
        ("shrink_perturb", {"noise": "uniform"}, "noise"),
        ("shrink_perturb", {"buffers": "reset"}, "buffers"),
        ("partial_reset", {"last": 0}, "last"),
        ("partial_reset", {"pattern": "("}, "not a valid regular expression"),
    ],
)
def test_invalid_params_raise_one_line_error(name, params, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        make_strategy(name, params)
    message = str(exc.value)
    assert_one_line(message)
    assert message.startswith(f"strategy {name!r}:")


def test_params_object_or_keywords_not_both():
    cls = get_strategy("shrink_perturb")
    assert cls(cls.Params(shrink=0.6)).params.shrink == 0.6
    assert cls(shrink=0.6).params == cls({"shrink": 0.6}).params
    with pytest.raises(ActivewsError, match="not both"):
        cls(cls.Params(), shrink=0.6)
    with pytest.raises(ActivewsError, match="expected ShrinkPerturb.Params"):
        cls(get_strategy("partial_reset").Params())


# ------------------------------------------------------------------------------------------- semantics


def run(name: str, trained, seed: int = 3, **params) -> dict[str, torch.Tensor]:
    """State of ``trained``'s model after ``name``'s init_round with the context seeded by ``seed``."""
    return snapshot(make_strategy(name, params).init_round(trained.copy(), trained.ctx(seed)))


def test_warm_keeps_the_model(trained):
    model = trained.copy()
    assert get_strategy("warm")().init_round(model, trained.ctx(0)) is model
    assert_same_state(snapshot(model), snapshot(trained.model))


def test_shrink_one_perturb_zero_is_warm(trained_mlp):
    assert_same_state(
        run("shrink_perturb", trained_mlp, shrink=1.0, perturb=0.0), snapshot(trained_mlp.model)
    )


def test_shrink_one_perturb_zero_is_warm_with_batchnorm_only_if_buffers_are_kept(trained_cnn):
    """With the default ``buffers="fresh"`` BatchNorm's running statistics come from the fresh draw (as in
    the authors' run.py); ``buffers="keep"`` is exactly warm."""
    warm = snapshot(trained_cnn.model)
    assert_same_state(run("shrink_perturb", trained_cnn, shrink=1.0, perturb=0.0, buffers="keep"), warm)
    fresh_buffers = run("shrink_perturb", trained_cnn, seed=4, shrink=1.0, perturb=0.0)
    fresh = first_fresh_draw("cnn_bn", 4)
    buffers = {name for name, _ in trained_cnn.model.named_buffers()}
    stats = {name for name in buffers if name.endswith(("running_mean", "running_var"))}
    assert stats and stats <= changed_keys(fresh_buffers, warm) <= buffers  # num_batches_tracked too
    for name in buffers:
        assert torch.equal(fresh_buffers[name], fresh[name]), name
    for name in set(warm) - buffers:
        assert torch.equal(fresh_buffers[name], warm[name]), name


def test_shrink_zero_perturb_one_is_the_fresh_draw(trained):
    assert_same_state(
        run("shrink_perturb", trained, seed=5, shrink=0.0, perturb=1.0, noise="fresh_init"),
        first_fresh_draw(trained.key, 5),
    )
    # ... which is what `random` returns for the same context seed
    assert_same_state(run("random", trained, seed=5), first_fresh_draw(trained.key, 5))


def test_shrink_perturb_default_formula(trained_mlp):
    out = run("shrink_perturb", trained_mlp, seed=2)
    fresh = first_fresh_draw("mlp", 2)
    for name, old in snapshot(trained_mlp.model).items():
        torch.testing.assert_close(out[name], 0.4 * old + 0.1 * fresh[name])


def test_gaussian_noise_changes_weights_and_is_seeded(trained_mlp):
    shrunk_only = run("shrink_perturb", trained_mlp, shrink=0.5, perturb=0.0)
    noisy = run("shrink_perturb", trained_mlp, seed=1, shrink=0.5, perturb=0.01, noise="gaussian")
    assert changed_keys(noisy, shrunk_only) == set(shrunk_only)
    for name in noisy:  # the noise is N(0, 0.01^2): small, but present in every tensor
        assert 0 < (noisy[name] - shrunk_only[name]).abs().max() < 0.1
    assert_same_state(
        noisy, run("shrink_perturb", trained_mlp, seed=1, shrink=0.5, perturb=0.01, noise="gaussian")
    )
    other_seed = run("shrink_perturb", trained_mlp, seed=2, shrink=0.5, perturb=0.01, noise="gaussian")
    assert changed_keys(noisy, other_seed) == set(noisy)


def _bn_buffers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if "running_" in k or "num_batches_tracked" in k}


def test_shrink_perturb_buffers_fresh_by_default_or_kept(trained_cnn):
    trained_buffers = _bn_buffers(snapshot(trained_cnn.model))
    fresh_buffers = _bn_buffers(first_fresh_draw("cnn_bn", 4))
    assert trained_buffers and changed_keys(trained_buffers, fresh_buffers), (
        "training must move BN statistics"
    )

    assert_same_state(_bn_buffers(run("shrink_perturb", trained_cnn, seed=4)), fresh_buffers)
    assert_same_state(
        _bn_buffers(run("shrink_perturb", trained_cnn, seed=4, buffers="keep")), trained_buffers
    )


def test_reset_to_init_restores_the_initial_state(trained):
    assert changed_keys(snapshot(trained.model), trained.initial_state), "training must move the weights"
    assert_same_state(run("reset_to_init", trained), trained.initial_state)


def test_random_differs_from_previous_and_initial_weights(trained):
    out = run("random", trained)
    # every randomly drawn tensor (BatchNorm's affine init is constant, 1 and 0, in every draw)
    drawn = changed_keys(first_fresh_draw(trained.key, 100), first_fresh_draw(trained.key, 101))
    weights = {
        f"{n}.weight" for n, m in trained.model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d))
    }
    assert weights <= drawn
    assert drawn <= changed_keys(out, snapshot(trained.model))
    assert drawn <= changed_keys(out, trained.initial_state)


def _linear_names(model: nn.Module) -> list[str]:
    return [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]


def test_partial_reset_last_one_resets_only_the_head(trained):
    head = _linear_names(trained.model)[-1]
    out = run("partial_reset", trained, seed=6, last=1)
    assert changed_keys(out, snapshot(trained.model)) == {f"{head}.weight", f"{head}.bias"}
    fresh = first_fresh_draw(trained.key, 6)
    assert_same_state(
        {k: out[k] for k in (f"{head}.weight", f"{head}.bias")},
        {k: fresh[k] for k in (f"{head}.weight", f"{head}.bias")},
    )


def test_partial_reset_pattern_selects_modules_by_name(trained_mlp, trained_cnn):
    # MLP: Sequential(Flatten, Linear "1", ReLU, Linear "3", ReLU, Linear "5")
    assert changed_keys(run("partial_reset", trained_mlp, pattern="^3$"), snapshot(trained_mlp.model)) == {
        "3.weight",
        "3.bias",
    }
    # CNN: the BatchNorm modules ("2" and "6") take the fresh draw's parameters *and* running statistics
    bn = [n for n, m in trained_cnn.model.named_modules() if isinstance(m, nn.BatchNorm1d)]
    out = run("partial_reset", trained_cnn, seed=8, pattern="^(" + "|".join(bn) + ")$")
    fresh = first_fresh_draw("cnn_bn", 8)
    reset = {k for k in out if k.split(".")[0] in bn}
    assert changed_keys(out, snapshot(trained_cnn.model)) <= reset
    assert_same_state({k: out[k] for k in reset}, {k: fresh[k] for k in reset})
    assert get_strategy("partial_reset")(pattern="^(1|3)$").selected(trained_mlp.model) == ["1", "3"]
    assert get_strategy("partial_reset")(last=2).selected(trained_mlp.model) == ["3", "5"]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"pattern": "no_such_layer"}, "matches no layer; layers are: 1, 3, 5"),
        ({"last": 4}, "has only 3 parameterized layers; use last <= 3"),
    ],
)
def test_partial_reset_selection_errors(trained_mlp, params, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        run("partial_reset", trained_mlp, **params)
    assert_one_line(str(exc.value))
