"""Hidden units: finding them in every built-in model, measuring them, and recycling exactly their entries."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from activews.errors import ActivewsError
from activews.models import build_model
from activews.units import (
    Consumer,
    UnitGroup,
    hidden_units,
    mean_abs_activation,
    outgoing_weight_magnitude,
    recycle_units,
    reinit_units,
    reset_optimizer_units,
    unit_activity,
)
from tests.helpers import assert_one_line

SHAPE = (40,)


def _model(name: str, params: dict | None = None, shape=SHAPE, seed: int = 0) -> nn.Module:
    return build_model(name, shape, 10, params or {}, seed=seed)


def _summary(model: nn.Module) -> list[tuple]:
    names = {m: n for n, m in model.named_modules()}
    return [
        (
            g.name,
            names[g.incoming],
            None if g.norm is None else names[g.norm],
            g.size,
            [(names[c.layer], c.block) for c in g.outgoing],
        )
        for g in hidden_units(model)
    ]


# ------------------------------------------------------------------------------------------- finding


@pytest.mark.parametrize(
    ("name", "params", "shape", "expected"),
    [
        # Flatten, Linear, ReLU, Linear, ReLU, Linear
        ("mlp", {}, SHAPE, [("2", "1", None, 256, [("3", 1)]), ("4", "3", None, 256, [("5", 1)])]),
        # dropout after each activation sits between the unit and the next layer
        (
            "mlp",
            {"hidden": [16, 8], "dropout": 0.3},
            SHAPE,
            [("2", "1", None, 16, [("4", 1)]), ("5", "4", None, 8, [("7", 1)])],
        ),
        ("paper_mlp", {}, SHAPE, [("2", "1", None, 100, [("3", 1)]), ("4", "3", None, 100, [("5", 1)])]),
        # _AddChannel, Conv, ReLU, MaxPool, Conv, ReLU, MaxPool, Flatten, Linear: 64 channels x 10 positions
        ("cnn", {}, SHAPE, [("2", "1", None, 32, [("4", 1)]), ("5", "4", None, 64, [("8", 10)])]),
        # with BatchNorm and dropout: Conv, BN, ReLU, Dropout, MaxPool per block
        (
            "cnn",
            {"channels": [4, 8], "batchnorm": True, "dropout": 0.2},
            SHAPE,
            [("3", "1", "2", 4, [("6", 1)]), ("8", "6", "7", 8, [("12", 10)])],
        ),
        # 2-D images: 8x8 -> 4x4 -> 2x2, so each of the 6 channels owns 4 columns of the head
        (
            "cnn",
            {"channels": [3, 6], "batchnorm": True},
            (1, 8, 8),
            [("2", "0", "1", 3, [("4", 1)]), ("6", "4", "5", 6, [("9", 4)])],
        ),
        ("logreg", {}, SHAPE, []),
    ],
)
def test_hidden_units_of_the_sequential_models(name, params, shape, expected):
    assert _summary(_model(name, params, shape)) == expected


def test_hidden_units_of_the_resnet_are_the_within_block_units():
    model = _model("resnet18", {"width": 4})
    groups = hidden_units(model)
    blocks = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert [g.name for g in groups] == [f"{b}.relu1" for b in blocks]
    modules = dict(model.named_modules())
    for group, block in zip(groups, blocks, strict=True):
        assert group.incoming is modules[f"{block}.conv1"] and group.incoming.bias is None
        assert group.norm is modules[f"{block}.bn1"] and group.activation is modules[f"{block}.relu1"]
        assert [(c.layer, c.block) for c in group.outgoing] == [(modules[f"{block}.conv2"], 1)]
    # the stem's and every block's output ReLU feed residual sums: not recyclable
    assert "relu" not in [g.name for g in groups] and not any(g.name.endswith("relu2") for g in groups)
    assert [g.size for g in groups] == [4, 4, 8, 8, 16, 16, 32, 32]


def test_nested_sequentials_are_flattened():
    model = nn.Sequential(nn.Sequential(nn.Linear(5, 6), nn.Tanh()), nn.Sequential(nn.Linear(6, 2)))
    assert _summary(model) == [("0.1", "0.0", None, 6, [("1.0", 1)])]


class _Declared(nn.Module):
    """A non-Sequential model that declares its own units."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.act, self.b = nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)

    def forward(self, x):
        return self.b(self.act(self.a(x)))

    def hidden_units(self):
        return [UnitGroup("act", self.a, self.act, (Consumer(self.b),))]


def test_a_model_can_declare_its_units():
    model = _Declared()
    assert [(g.name, g.incoming, g.outgoing[0].layer) for g in hidden_units(model)] == [
        ("act", model.a, model.b)
    ]


class _Opaque(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        return self.b(F.relu(self.a(x)))


class _Reshape(nn.Module):
    def forward(self, x):
        return x.reshape(len(x), -1)


def _shared_relu() -> nn.Module:
    relu = nn.ReLU()
    return nn.Sequential(nn.Linear(4, 4), relu, nn.Linear(4, 4), relu, nn.Linear(4, 2))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (_Opaque, "cannot tell for a _Opaque; use a Sequential model or define hidden_units"),
        (
            lambda: nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 2)),
            r"module '1' \(LayerNorm\) sits between activation '2' and its layer",
        ),
        (
            lambda: nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), _Reshape(), nn.Linear(4, 2)),
            r"module '2' \(_Reshape\) sits between activation '1' and the layer reading it",
        ),
        (_shared_relu, "is used at several places"),
        (lambda: nn.Sequential(nn.Conv1d(1, 2, 3), nn.ReLU(), nn.Linear(4, 2)), "without a Flatten"),
        (lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(4, 2)), "reads 4 inputs from 3 units"),
        (lambda: nn.Sequential(nn.Conv1d(2, 4, 3, groups=2), nn.ReLU(), nn.Conv1d(4, 1, 1)), "grouped"),
    ],
)
def test_models_it_cannot_read_raise_one_line_errors(build, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        hidden_units(build(), who="strategy 'redo'")
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith("strategy 'redo'")


def test_consumer_columns_cover_each_units_block():
    idx = torch.tensor([0, 2])
    assert Consumer(nn.Linear(6, 1), block=1).columns(idx).tolist() == [0, 2]
    assert Consumer(nn.Linear(6, 1), block=2).columns(idx).tolist() == [0, 1, 4, 5]


# ----------------------------------------------------------------------------------------- measuring


def test_unit_activity_matches_mean_abs_activation_and_changes_nothing():
    model = _model("cnn", {"channels": [4, 8], "batchnorm": True, "dropout": 0.5})
    model.train()
    x = torch.randn(32, *SHAPE, generator=torch.Generator().manual_seed(0))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = hidden_units(model)
    on_device = unit_activity(model, groups, x)
    reference = mean_abs_activation(model, x, [(g.name, g.activation) for g in groups])
    assert model.training, "the caller's mode is restored"
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed: the measurement is an eval-mode pass"
    for g in groups:
        assert on_device[g.name].dtype == torch.float32
        torch.testing.assert_close(on_device[g.name].double(), reference[g.name], rtol=1e-5, atol=1e-7)


def test_outgoing_weight_magnitude_averages_each_units_columns():
    model = _model("cnn", {"channels": [3, 5]})
    first, second = hidden_units(model)
    conv = first.outgoing[0].layer.weight.detach().abs()  # (5, 3, k)
    torch.testing.assert_close(outgoing_weight_magnitude(first), conv.mean(dim=(0, 2)))
    head = second.outgoing[0].layer.weight.detach().abs()  # (10, 5 * 10): channel c owns columns 10c..10c+9
    torch.testing.assert_close(outgoing_weight_magnitude(second), head.reshape(10, 5, 10).mean(dim=(0, 2)))


# ----------------------------------------------------------------------------------------- recycling


def _adam_after_one_step(model: nn.Module, x: torch.Tensor, momentum: bool = False) -> torch.optim.Optimizer:
    opt = (
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        if momentum
        else torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    )
    y = torch.arange(len(x)) % 10
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return opt


@pytest.mark.parametrize("momentum", [False, True])
def test_reinit_and_optimizer_reset_touch_exactly_the_units_entries(momentum):
    model = _model("cnn", {"channels": [4, 6], "batchnorm": True})
    x = torch.randn(16, *SHAPE, generator=torch.Generator().manual_seed(1))
    opt = _adam_after_one_step(model, x, momentum)
    fresh = _model("cnn", {"channels": [4, 6], "batchnorm": True}, seed=9)
    with torch.no_grad():  # move BatchNorm away from its init so the reset is visible
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.add_(0.5), m.bias.add_(0.5), m.running_mean.add_(1.0), m.running_var.add_(1.0)
        for state in opt.state.values():  # every per-entry state value non-zero, so resets are visible
            for key, value in state.items():
                if key != "step":
                    value.uniform_(0.5, 1.0, generator=torch.Generator().manual_seed(3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state_before = {p: {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}
    assert len(state_before) == len(list(model.parameters()))
    group = hidden_units(model)[1]  # conv "5" -> BN "6" -> ReLU "7" -> pool, Flatten -> Linear "10"
    source = hidden_units(fresh)[1]
    idx = torch.tensor([1, 4])
    reinit_units(group, idx, source)
    reset_optimizer_units(opt, group, idx)

    after = model.state_dict()
    rows, cols = [1, 4], [c for u in (1, 4) for c in range(u * 10, u * 10 + 10)]
    others = [0, 2, 3, 5]
    assert torch.equal(after["5.weight"][rows], fresh.state_dict()["5.weight"][rows])
    assert torch.equal(after["5.weight"][others], before["5.weight"][others])
    assert after["5.bias"][rows].eq(0).all() and torch.equal(
        after["5.bias"][others], before["5.bias"][others]
    )
    for key, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
        assert after[f"6.{key}"][rows].eq(value).all(), key
        assert torch.equal(after[f"6.{key}"][others], before[f"6.{key}"][others]), key
    assert after["6.num_batches_tracked"] == before["6.num_batches_tracked"]
    assert after["10.weight"][:, cols].eq(0).all()
    keep = [c for c in range(60) if c not in cols]
    assert torch.equal(after["10.weight"][:, keep], before["10.weight"][:, keep])
    for name in ("1.weight", "1.bias", "2.weight", "10.bias"):
        assert torch.equal(after[name], before[name]), name

    # optimizer state: zero at exactly those entries, untouched elsewhere; step counts kept
    params = dict(model.named_parameters())
    where = {
        "5.weight": (0, rows),
        "5.bias": (0, rows),
        "6.weight": (0, rows),
        "6.bias": (0, rows),
        "10.weight": (1, cols),
    }
    for pname, param in params.items():
        for key, old in state_before[param].items():
            new = opt.state[param][key]
            if key == "step" or pname not in where:
                assert torch.equal(new, old), (pname, key)
                continue
            dim, index = where[pname]
            assert new.index_select(dim, torch.tensor(index)).eq(0).all(), (pname, key)
            rest = [i for i in range(param.shape[dim]) if i not in index]
            assert torch.equal(
                new.index_select(dim, torch.tensor(rest)), old.index_select(dim, torch.tensor(rest))
            )


def test_recycling_dead_units_leaves_the_function_unchanged():
    model = _model("mlp", {"hidden": [32, 16]})
    group = hidden_units(model)[0]
    with torch.no_grad():  # kill units 3 and 7: zero incoming weights and bias -> ReLU output exactly 0
        group.incoming.weight[[3, 7]] = 0.0
        group.incoming.bias[[3, 7]] = 0.0
    x = torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out_before = model(x)
    draws = []

    def fresh():
        draws.append(1)
        return _model("mlp", {"hidden": [32, 16]}, seed=5)

    assert recycle_units(hidden_units(model), {"2": torch.tensor([3, 7]), "4": torch.tensor([])}, fresh) == 2
    assert draws == [1]
    with torch.no_grad():
        out_after = model(x)
    torch.testing.assert_close(out_after, out_before)
    assert group.incoming.weight[[3, 7]].ne(0).any(), "the units were re-drawn"
    assert recycle_units(hidden_units(model), {}, fresh) == 0 and draws == [1], "nothing selected: no draw"


def test_recycle_units_rejects_a_fresh_model_of_another_shape():
    model = _model("mlp", {"hidden": [8]})
    with pytest.raises(ActivewsError, match="no hidden units '2' of size 8") as exc:
        recycle_units(hidden_units(model), {"2": torch.tensor([0])}, _model("mlp", {"hidden": [9]}))
    assert_one_line(str(exc.value))


def test_recycled_copy_is_independent_of_the_fresh_model():
    model = _model("mlp", {"hidden": [8]})
    fresh = _model("mlp", {"hidden": [8]}, seed=3)
    snapshot = copy.deepcopy(fresh.state_dict())
    recycle_units(hidden_units(model), {"2": torch.tensor([1])}, fresh)
    with torch.no_grad():
        model[1].weight.mul_(2.0)
    assert all(torch.equal(v, snapshot[k]) for k, v in fresh.state_dict().items())
