"""Built-in models: architecture, seeded construction, errors, user models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from activews.errors import ActivewsError, UnknownNameError
from activews.models import MODELS, build_model, model_params, register_model
from tests.helpers import assert_one_line, assert_same_state, changed_keys, snapshot


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def test_mlp_default_is_40_256_256_10():
    model = build_model("mlp", (40,), 10)
    assert linear_shapes(model) == [(40, 256), (256, 256), (256, 10)]
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 2
    assert model(torch.zeros(3, 40)).shape == (3, 10)


def test_mlp_hidden_and_activation():
    model = build_model("mlp", (1, 8, 8), 4, {"hidden": [32, 16, 8], "activation": "tanh"})
    assert linear_shapes(model) == [(64, 32), (32, 16), (16, 8), (8, 4)]
    assert sum(isinstance(m, nn.Tanh) for m in model.modules()) == 3
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert linear_shapes(build_model("mlp", (40,), 10, {"hidden": []})) == [(40, 10)]


def test_logreg_is_one_linear_layer():
    model = build_model("logreg", (40,), 10)
    assert linear_shapes(model) == [(40, 10)]
    assert sum(p.numel() for p in model.parameters()) == 40 * 10 + 10


@pytest.mark.parametrize(
    ("input_shape", "params", "conv", "norm"),
    [
        ((40,), {}, nn.Conv1d, None),
        ((2, 40), {"channels": [4]}, nn.Conv1d, None),
        ((40,), {"channels": [4, 8], "batchnorm": True}, nn.Conv1d, nn.BatchNorm1d),
        ((1, 8, 8), {"channels": [4, 8, 8, 8]}, nn.Conv2d, None),  # pooling stops once a side reaches 1
        ((1, 8, 8), {"channels": [4], "batchnorm": True, "kernel_size": 3}, nn.Conv2d, nn.BatchNorm2d),
    ],
)
def test_cnn_forward_shapes(input_shape, params, conv, norm):
    model = build_model("cnn", input_shape, 10, params, seed=0)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    assert convs and all(type(m) is conv for m in convs)
    assert len(convs) == len(params.get("channels", [32, 64]))
    assert sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()) == (
        len(convs) if norm else 0
    )
    if norm:
        assert all(type(m) is norm for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    model.eval()
    assert model(torch.zeros(5, *input_shape)).shape == (5, 10)


def test_cnn_rejects_3d_inputs_with_activews_error():
    with pytest.raises(ActivewsError, match="'cnn' supports 1-D"):
        build_model("cnn", (1, 2, 4, 4), 3)


@pytest.mark.parametrize("name", ["mlp", "logreg", "cnn"])
def test_seeded_build_is_reproducible_and_leaves_global_rng_alone(name):
    state = torch.get_rng_state()
    a, b = build_model(name, (40,), 10, seed=1), build_model(name, (40,), 10, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert_same_state(snapshot(a), snapshot(b))
    c = build_model(name, (40,), 10, seed=2)
    assert changed_keys(snapshot(a), snapshot(c)) >= {k for k in snapshot(a) if k.endswith("weight")}


@pytest.mark.parametrize(
    ("name", "params", "error", "match"),
    [
        ("mpl", {}, UnknownNameError, "unknown model 'mpl'; did you mean 'mlp'"),
        (
            "mlp",
            {"depth": 3},
            ActivewsError,
            r"model 'mlp': unknown parameter 'depth' \(known: hidden, activation, dropout\)",
        ),
        ("mlp", {"hidden": [0]}, ActivewsError, "hidden widths must be >= 1"),
        ("mlp", {"activation": "gelu"}, ActivewsError, "model 'mlp': activation"),
        ("cnn", {"channels": []}, ActivewsError, "channels must be a non-empty list"),
        ("cnn", {"kernel_size": 0}, ActivewsError, "kernel_size"),
        ("logreg", {"hidden": [3]}, ActivewsError, r"unknown parameter 'hidden' \(known: none\)"),
    ],
)
def test_model_errors(name, params, error, match):
    with pytest.raises(error, match=match) as exc:
        build_model(name, (40,), 10, params)
    assert_one_line(str(exc.value))


def test_model_params_are_validated_and_frozen():
    params = model_params("mlp", {"hidden": [8]})
    assert params.hidden == (8,)
    with pytest.raises(ValueError, match="frozen"):
        params.hidden = (4,)


def test_user_model():
    @register_model("tiny_test_model")
    def tiny(input_shape, num_classes, params):
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))

    @register_model("not_a_module_test_model")
    def broken(input_shape, num_classes, params):
        return "nope"

    try:
        assert build_model("tiny_test_model", (5,), 3)(torch.zeros(2, 5)).shape == (2, 3)
        with pytest.raises(ActivewsError, match="builder returned str, expected a torch.nn.Module"):
            build_model("not_a_module_test_model", (5,), 3)
    finally:
        MODELS.unregister("tiny_test_model")
        MODELS.unregister("not_a_module_test_model")


@pytest.mark.parametrize("name", ["mlp", "paper_mlp", "cnn"])
def test_dropout_after_each_hidden_activation(name):
    params = {"channels": [4, 8]} if name == "cnn" else {}
    plain = build_model(name, (40,), 10, params, seed=0)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())  # dropout=0: no layer, same names
    model = build_model(name, (40,), 10, {**params, "dropout": 0.25}, seed=0)
    layers = list(model.children())
    drops = [i for i, m in enumerate(layers) if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(layers[i].p == 0.25 for i in drops)
    assert all(isinstance(layers[i - 1], (nn.ReLU, nn.Tanh)) for i in drops)
    # the draw of the weights does not change with dropout
    assert [p.tolist() for p in plain.parameters()] == [p.tolist() for p in model.parameters()]
