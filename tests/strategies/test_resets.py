"""The layer-reset presets: ``head_reset`` (the output layer) and ``later_reset`` (the later layers)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from activews import BenchConfig
from activews.engine.arm import run_arm
from activews.engine.setup import load_bench_dataset
from activews.errors import ActivewsError
from activews.strategies import get_strategy, make_strategy
from activews.strategies.partial_reset import HeadReset, LaterReset, PartialReset, layer_names
from tests.helpers import (
    assert_one_line,
    assert_same_state,
    changed_keys,
    first_fresh_draw,
    make_ctx,
    snapshot,
)
from tests.run_helpers import TINY

HEADS = {"mlp": "5", "cnn_bn": "10", "resnet18": "linear"}


def run(name: str, trained, seed: int = 3, **params) -> dict[str, torch.Tensor]:
    return snapshot(make_strategy(name, params).init_round(trained.copy(), trained.ctx(seed)))


def keys_of(modules: list[str], state: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in state if k.rpartition(".")[0] in modules}


def test_presets_reuse_partial_reset():
    assert issubclass(HeadReset, PartialReset) and issubclass(LaterReset, PartialReset)
    for cls in (HeadReset, LaterReset):
        assert cls.init_round is PartialReset.init_round and cls.check_model is PartialReset.check_model
        assert "References:" in (cls.__doc__ or "") and cls.reference and cls.batchnorm


def test_head_reset_changes_exactly_the_head(trained):
    head = HEADS[trained.key]
    out = run("head_reset", trained, seed=6)
    assert changed_keys(out, snapshot(trained.model)) == {f"{head}.weight", f"{head}.bias"}
    fresh = first_fresh_draw(trained.key, 6)
    assert_same_state({k: out[k] for k in keys_of([head], out)}, {k: fresh[k] for k in keys_of([head], out)})
    assert_same_state(out, run("partial_reset", trained, seed=6, last=1))  # the same as last=1


@pytest.mark.parametrize(
    ("key", "fraction", "expected"),
    [
        ("mlp", 0.5, ["3", "5"]),
        ("mlp", 0.1, ["5"]),  # at least one layer
        ("mlp", 1.0, ["1", "3", "5"]),
        ("cnn_bn", 0.5, ["5", "6", "10"]),  # the second conv, its BatchNorm and the head
        ("cnn_bn", 0.2, ["10"]),
    ],
)
def test_later_reset_layer_counts(trained_models, key, fraction, expected):
    assert LaterReset(fraction=fraction).selected(trained_models[key].model) == expected


def test_later_reset_on_resnet_resets_layer3_layer4_and_the_head(trained_models):
    model = trained_models["resnet18"].model
    chosen = LaterReset().selected(model)
    assert len(layer_names(model)) == 41 and len(chosen) == 21
    assert chosen[-1] == "linear"
    assert {name.split(".")[0] for name in chosen} == {"layer3", "layer4", "linear"}
    assert [n for n in layer_names(model) if n.startswith(("layer3", "layer4"))] == chosen[:-1]


def test_later_reset_fraction_rounds_up_without_float_noise():
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(10)])
    assert LaterReset(fraction=0.3).count(model) == 3  # 0.3 * 10 is 3.0000000000000004 in floats
    assert LaterReset(fraction=0.31).count(model) == 4


def test_later_reset_takes_fresh_weights_and_buffers_and_keeps_the_rest(trained_cnn):
    out = run("later_reset", trained_cnn, seed=8)
    fresh = first_fresh_draw("cnn_bn", 8)
    reset = keys_of(["5", "6", "10"], out)
    assert any("running_mean" in k for k in reset)
    assert_same_state({k: out[k] for k in reset}, {k: fresh[k] for k in reset})
    kept = set(out) - reset
    assert_same_state({k: out[k] for k in kept}, {k: snapshot(trained_cnn.model)[k] for k in kept})


def test_deterministic_for_a_seed(trained):
    for name in ("head_reset", "later_reset"):
        assert_same_state(run(name, trained, seed=4), run(name, trained, seed=4))
        assert changed_keys(run(name, trained, seed=4), run(name, trained, seed=5))


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("later_reset", {"fraction": 0.0}, "fraction"),
        ("later_reset", {"fraction": 1.5}, "fraction"),
        ("later_reset", {"last": 2}, "unknown parameter 'last'"),
        ("head_reset", {"last": 2}, r"unknown parameter 'last' \(known: none\)"),
    ],
)
def test_invalid_params(name, params, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        make_strategy(name, params)
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith(f"strategy {name!r}:")


def test_a_model_without_parameterized_layers_is_refused():
    for name in ("head_reset", "later_reset", "partial_reset"):
        with pytest.raises(ActivewsError, match="no module with parameters; nothing to reset") as exc:
            get_strategy(name)().check_model(nn.Sequential(nn.ReLU()))
        assert_one_line(str(exc.value))
        assert str(exc.value).startswith(f"strategy {name!r}:")


def test_partial_reset_is_unchanged(trained_mlp):
    assert PartialReset(last=2).selected(trained_mlp.model) == ["3", "5"]
    assert PartialReset(pattern="^1$").selected(trained_mlp.model) == ["1"]
    ctx = make_ctx("mlp", 1, trained_mlp.initial_state)
    out = snapshot(PartialReset().init_round(trained_mlp.copy(), ctx))
    assert changed_keys(out, snapshot(trained_mlp.model)) == {"5.weight", "5.bias"}


def test_short_runs():
    config = BenchConfig.build(**(TINY | {"rounds": 3, "strategies": ["head_reset", "later_reset"]}))
    data = load_bench_dataset(config)
    warm = run_arm(config, data, "warm", 0)
    for name in ("head_reset", "later_reset"):
        records = run_arm(config, data, name, 0)
        assert [r["round"] for r in records] == [0, 1, 2]
        assert records[0]["test_accuracy"] == warm[0]["test_accuracy"]  # round 0 is shared
        assert (
            records[1]["steps"] != warm[1]["steps"] or records[1]["test_accuracy"] != warm[1]["test_accuracy"]
        )
