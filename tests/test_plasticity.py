"""Plasticity diagnostics (``dormant_units``, ``feature_rank``, ``weights``) on hand-built models.

Every number here can be worked out on paper: ReLU layers whose units are active, dormant or dead by
construction, feature matrices with known singular values, and weights whose norms and distances are
Pythagorean triples.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from activews.diagnostics import (
    DORMANT_TAU,
    MEASURE_EXAMPLES,
    RECORD_FIELDS,
    SRANK_DELTA,
    UnitActivity,
    Weights,
    flat_parameters,
    measure_positions,
    penultimate_layer,
    singular_values,
    srank,
    unit_fields,
    weight_fields,
)
from activews.errors import ActivewsError
from activews.strategies import InitContext
from tests.helpers import assert_one_line, assert_same_state, snapshot

# ----------------------------------------------------------------------------------------- dormant units


def relu_layer(weights: list[float]) -> nn.Sequential:
    """x (1 input) -> Linear(1, k) with the given weights and zero bias -> ReLU -> Linear(k, 2)."""
    model = nn.Sequential(nn.Linear(1, len(weights)), nn.ReLU(), nn.Linear(len(weights), 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor(weights)[:, None])
        model[0].bias.zero_()
    return model


POSITIVE = torch.tensor([[1.0], [2.0], [3.0]])  # inputs > 0: unit i's mean activation is 2 * max(w_i, 0)


def test_two_units_one_dead():
    fields = unit_fields(relu_layer([1.0, -1.0]), POSITIVE, rank=False)
    assert fields == {"dormant_fraction": 0.5, "dead_fraction": 0.5}


def test_dormant_but_not_dead():
    # mean |activation| 2 * [2, 1.9, 0.01, 0]; layer mean 2 * 0.9775; scores 2.046, 1.944, 0.0102, 0
    fields = unit_fields(relu_layer([2.0, 1.9, 0.01, -1.0]), POSITIVE, rank=False)
    assert fields == {"dormant_fraction": 0.5, "dead_fraction": 0.25}
    # 0.1 / 0.9975 = 0.1003 > 0.025: active
    fields = unit_fields(relu_layer([2.0, 1.9, 0.1, -1.0]), POSITIVE, rank=False)
    assert fields == {"dormant_fraction": 0.25, "dead_fraction": 0.25}
    assert DORMANT_TAU == 0.025


def test_units_of_all_layers_are_pooled():
    # layer 1: 4 units, one dormant (0.01) and one dead; layer 2: 2 units, one dead -> 3/6 and 2/6
    model = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[2.0], [1.9], [0.01], [-1.0]]))
        model[0].bias.zero_()
        model[2].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]]))
        model[2].bias.zero_()
    fields = unit_fields(model, POSITIVE, rank=False)
    assert fields["dormant_fraction"] == pytest.approx(3 / 6)
    assert fields["dead_fraction"] == pytest.approx(2 / 6)


def test_a_unit_active_on_one_example_is_not_dead():
    # unit 1 fires only for x = -3 (activation 3): mean 1 vs unit 0's mean 2 -> neither dormant nor dead
    x = torch.tensor([[1.0], [2.0], [-3.0]])
    model = relu_layer([1.0, -1.0])
    assert unit_fields(model, x, rank=False) == {"dormant_fraction": 0.0, "dead_fraction": 0.0}


def test_no_activation_module_gives_none():
    model = nn.Sequential(nn.Linear(3, 2))
    assert unit_fields(model, torch.ones(2, 3), rank=False) == {
        "dormant_fraction": None,
        "dead_fraction": None,
    }


# ------------------------------------------------------------------------------------------ feature rank


def test_srank_by_hand():
    assert SRANK_DELTA == 0.01
    assert srank(torch.tensor([100.0, 1.0])) == 1  # 100 >= 0.99 * 101
    assert srank(torch.tensor([98.0, 2.0])) == 2  # 98 < 0.99 * 100
    assert srank(torch.tensor([10.0, 5.0, 5.0])) == 3
    assert srank(torch.ones(7)) == 7
    assert srank(torch.tensor([1.0, 3.0, 2.0]), delta=0.2) == 2  # any order; 3 + 2 >= 0.8 * 6
    assert srank(torch.tensor([3.0, 2.0, 1.0]), delta=0.5) == 1  # 3 >= 0.5 * 6, exactly
    assert srank(torch.tensor([4.0, 0.0, 0.0])) == 1
    assert srank(torch.zeros(3)) == 0 and srank(torch.zeros(0)) == 0


@pytest.mark.parametrize("shape", [(7, 4), (4, 7), (5, 5)])
def test_singular_values_match_an_svd(shape):
    m = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    sv = singular_values(m)
    assert sv.dtype == torch.float64 and sv.shape == (min(shape),)
    assert sv.tolist() == pytest.approx(torch.linalg.svdvals(m.double()).tolist(), rel=1e-9)
    assert singular_values(torch.tensor([[3.0, 4.0]])).tolist() == pytest.approx([5.0])


def head_model(d: int, hidden: nn.Module | None = None) -> nn.Sequential:
    """A model whose penultimate features are its input (or ``hidden``'s output): [hidden,] Linear(d, 3)."""
    return nn.Sequential(*([hidden] if hidden is not None else []), nn.Linear(d, 3))


def with_singular_values(values: list[float], n: int, d: int, seed: int = 0) -> torch.Tensor:
    """An (n, d) matrix U diag(values) V^T with random orthonormal U, V (known singular values)."""
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, len(values), generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, len(values), generator=gen, dtype=torch.float64))
    return (u * torch.tensor(values, dtype=torch.float64)) @ v.T


@pytest.mark.parametrize(
    "values, rank",
    [([200.0, 1.0], 1), ([10.0, 5.0, 5.0], 3), ([1.0] * 5, 5), ([50.0, 30.0, 19.5, 0.25, 0.25], 3)],
)
def test_feature_rank_of_known_singular_values(values, rank):
    n, d = 12, 6
    x = with_singular_values(values, n, d).float()
    fields = unit_fields(head_model(d), x, dormant=False)
    assert fields == {"feature_rank": rank, "feature_rank_fraction": pytest.approx(rank / min(n, d))}


def test_feature_rank_fraction_divides_by_the_most_possible():
    # 3 examples of 8 features: at most rank 3
    x = torch.eye(8)[:3]
    assert unit_fields(head_model(8), x, dormant=False) == {"feature_rank": 3, "feature_rank_fraction": 1.0}
    # 8 examples of 2 features, all in one direction: rank 1 of at most 2
    x = torch.arange(1.0, 9.0)[:, None] * torch.tensor([[3.0, 4.0]])
    assert unit_fields(head_model(2), x, dormant=False) == {"feature_rank": 1, "feature_rank_fraction": 0.5}


def test_features_are_the_last_linears_input_in_eval_mode():
    # Linear(2, 4) -> BatchNorm (running mean 1, var 1, so eval subtracts 1) -> ReLU -> Linear(4, 3)
    body = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU())
    model = head_model(4, body)
    with torch.no_grad():
        body[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]))
        body[0].bias.zero_()
        body[1].running_mean.fill_(1.0)
    model.train()
    before = snapshot(model)
    # eval: features relu([x0 - 1, x1 - 1, x0 + x1 - 1, -1]); inputs chosen so that only unit 0 is ever
    # on (x0 = 2, 3, 4; x1 = 0): features (1, 0, 1, 0), (2, 0, 2, 0), (3, 0, 3, 0): rank 1 of 3;
    # in train mode BatchNorm would normalize with the batch statistics and units 1..3 would fire too
    x = torch.tensor([[2.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
    fields = unit_fields(model, x)
    assert fields["feature_rank"] == 1 and fields["feature_rank_fraction"] == pytest.approx(1 / 3)
    # dead: unit 1 (x1 - 1 = -1) and unit 3; unit 0 and 2 have equal means -> none merely dormant
    assert fields["dormant_fraction"] == 0.5 and fields["dead_fraction"] == 0.5
    assert model.training and all(m.training for m in model.modules())
    assert_same_state(before, snapshot(model))  # running statistics untouched
    assert not model[-1]._forward_pre_hooks and not body[2]._forward_hooks  # hooks removed
    assert all(p.grad is None for p in model.parameters())


def test_features_are_pooled_over_batches():
    x = with_singular_values([10.0, 5.0, 5.0], 12, 6).float()
    model = head_model(6)
    assert unit_fields(model, x, dormant=False, batch_size=5) == unit_fields(model, x, dormant=False)


def test_no_linear_head_gives_none():
    conv = nn.Sequential(nn.Conv1d(1, 2, 1), nn.ReLU(), nn.Flatten())
    assert penultimate_layer(conv) is None
    fields = unit_fields(conv, torch.ones(4, 1, 3))
    assert fields["feature_rank"] is None and fields["feature_rank_fraction"] is None
    assert fields["dead_fraction"] is not None  # the units are still measured

    class Unused(nn.Module):  # a head that the forward pass never calls
        def __init__(self) -> None:
            super().__init__()
            self.act = nn.ReLU()
            self.head = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(x)

    assert unit_fields(Unused(), torch.ones(4, 3), dormant=False) == dict.fromkeys(
        RECORD_FIELDS["feature_rank"]
    )


def test_no_examples():
    assert unit_fields(relu_layer([1.0]), torch.zeros(0, 1)) == {
        "dormant_fraction": None,
        "dead_fraction": None,
        "feature_rank": None,
        "feature_rank_fraction": None,
    }


def test_measure_positions():
    assert MEASURE_EXAMPLES == 2048
    assert measure_positions(5).tolist() == [0, 1, 2, 3, 4]
    assert measure_positions(2048).tolist() == list(range(2048))
    assert measure_positions(10, limit=4).tolist() == [0, 2, 5, 7]  # floor(i * 10 / 4)
    pos = measure_positions(5000)
    assert pos.numel() == 2048 and pos[0] == 0 and pos[-1] < 5000
    assert bool((pos[1:] > pos[:-1]).all())  # distinct, increasing
    steps = (pos[1:] - pos[:-1]).unique().tolist()
    assert steps == [2, 3]  # evenly spread: 5000 / 2048 = 2.44


# ----------------------------------------------------------------------------------------------- weights


def linear(weight: list[float], bias: float) -> nn.Linear:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([weight]))
        model.bias.fill_(bias)
    return model


def test_weight_fields_by_hand():
    model = linear([3.0, 4.0], 12.0)  # norm sqrt(9 + 16 + 144) = 13
    start = torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)  # distance sqrt(16 + 144)
    initial = {"weight": torch.tensor([[0.0, 4.0]]), "bias": torch.tensor([12.0])}  # distance 3
    fields = weight_fields(model, start, initial)
    assert set(fields) == set(RECORD_FIELDS["weights"])
    assert fields["weight_norm"] == pytest.approx(13.0)
    assert fields["distance_from_start"] == pytest.approx(math.sqrt(160))
    assert fields["distance_from_init"] == pytest.approx(3.0)


def test_weight_fields_match_parameters_by_name_and_skip_buffers():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    initial["1.running_mean"] += 5.0  # buffers are not parameters: no effect
    with torch.no_grad():
        model[1].bias.add_(torch.tensor([3.0, 4.0]))
    fields = weight_fields(model, flat_parameters(model), initial)
    assert fields["distance_from_init"] == pytest.approx(5.0)
    assert fields["distance_from_start"] == 0.0
    assert fields["weight_norm"] == pytest.approx(float(flat_parameters(model).norm()))
    # the initial state's key order does not matter
    reordered = dict(reversed(list(initial.items())))
    assert weight_fields(model, flat_parameters(model), reordered) == fields


def test_weight_fields_errors_are_one_line():
    model = linear([1.0, 2.0], 3.0)
    with pytest.raises(ActivewsError, match=r"parameter 'bias' is not in the run's initial model") as exc:
        weight_fields(model, flat_parameters(model), {"weight": torch.zeros(1, 2)})
    assert_one_line(str(exc.value))
    assert "drop --diagnostics weights" in str(exc.value)
    with pytest.raises(ActivewsError, match=r"'weight' changed shape since round 0") as exc:
        weight_fields(model, flat_parameters(model), {"weight": torch.zeros(1, 3), "bias": torch.zeros(1)})
    assert_one_line(str(exc.value))
    with pytest.raises(
        ActivewsError, match=r"number of parameters changed during the round \(4 -> 3\)"
    ) as exc:
        weight_fields(model, torch.zeros(4, dtype=torch.float64), dict(model.state_dict()))
    assert_one_line(str(exc.value))


# ------------------------------------------------------------------------------------ as objects


def _ctx(x: torch.Tensor, initial: dict[str, torch.Tensor]) -> InitContext:
    return InitContext(1, lambda: None, initial, torch.Generator(), x_labeled=x, y_labeled=None)


def test_unit_activity_object_measures_the_rounds_measured_examples():
    torch.manual_seed(0)
    model = head_model(8, nn.Sequential(nn.Linear(3, 8), nn.ReLU()))
    x = torch.randn(MEASURE_EXAMPLES + 500, 3, generator=torch.Generator().manual_seed(0))
    expected = unit_fields(model, x[measure_positions(len(x))])
    ctx = _ctx(x, {})
    assert UnitActivity(batch_size=100).after_training(model, ctx) == expected
    rank_only = UnitActivity(dormant=False).after_training(model, ctx)
    assert list(rank_only) == list(RECORD_FIELDS["feature_rank"])
    assert rank_only == {k: expected[k] for k in RECORD_FIELDS["feature_rank"]}
    with pytest.raises(ValueError):
        UnitActivity(dormant=False, rank=False)


def test_weights_object_measures_from_the_rounds_start():
    model = linear([3.0, 4.0], 12.0)
    initial = {"weight": torch.tensor([[0.0, 4.0]]), "bias": torch.tensor([12.0])}
    ctx = _ctx(torch.zeros(1, 2), initial)
    diag = Weights()
    start = flat_parameters(model)
    assert diag.before_training(model, ctx) is None
    with torch.no_grad():
        model.bias.fill_(0.0)  # training moved the bias by 12
    assert diag.after_training(model, ctx) == weight_fields(model, start, initial)
    assert diag.fields == RECORD_FIELDS["weights"]
