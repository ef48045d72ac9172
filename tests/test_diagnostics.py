"""Diagnostics (``--diagnostics``): gradient norms on new vs old examples, weight change at a round's start.

The numbers are pinned on hand-made models whose gradients can be worked out on paper, and a real tiny
bench checks that turning diagnostics on (every one, the plasticity ones of test_plasticity.py
included) changes none of the numbers a run produces.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from activews.cli import main
from activews.diagnostics import (
    COUNTERFACTUAL_FIELDS,
    DIAGNOSTIC_GROUPS,
    DIAGNOSTICS,
    RECORD_FIELDS,
    Counterfactual,
    Diagnostic,
    GradNormProbe,
    GradNorms,
    UnitActivity,
    WeightChange,
    Weights,
    check_diagnostics,
    flat_parameters,
    make_diagnostics,
    weight_change,
)
from activews.engine.arm import run_arm
from activews.engine.bench import BenchResult
from activews.engine.config import ArmSpec, BenchConfig
from activews.engine.setup import load_bench_dataset
from activews.engine.summary import summarize
from activews.errors import ActivewsError
from activews.strategies import InitContext
from tests.helpers import assert_one_line, assert_same_state, snapshot
from tests.run_helpers import TINY_FLAGS

# --------------------------------------------------------------------------------------- GradNormProbe

# A linear model with zero weights and bias predicts [0.5, 0.5] for every input, so the gradient of the
# mean cross-entropy over k examples is G_W = mean_i (p - e_{y_i}) x_i^T and G_b = mean_i (p - e_{y_i}),
# with p - e_0 = [-0.5, 0.5] and p - e_1 = [0.5, -0.5]. Per example:
#   0: x=[1,0], y=0 -> |G|^2 = 0.25 * 2 * 1 + 0.5 = 1
#   1: x=[0,2], y=1 -> |G|^2 = 0.25 * 2 * 4 + 0.5 = 2.5
#   2: x=[3,0], y=0 -> |G|^2 = 0.25 * 2 * 9 + 0.5 = 5
#   3: x=[0,4], y=1 -> |G|^2 = 0.25 * 2 * 16 + 0.5 = 8.5
X4 = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0], [0.0, 4.0]])
Y4 = torch.tensor([0, 1, 0, 1])
NEW4 = torch.tensor([False, False, True, True])  # examples 2 and 3 are new this round


def zero_linear() -> nn.Linear:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    return model


def pairs(probe: GradNormProbe) -> list[float]:
    """The probe's (new, old) norm pairs, flattened (pytest.approx compares flat sequences)."""
    return [v for pair in probe.pairs for v in pair]


def test_grad_norms_by_hand():
    probe = GradNormProbe(X4, Y4, NEW4)
    model = zero_linear()
    probe(model, torch.tensor([2, 0]))  # new [2], old [0]
    probe(model, torch.tensor([1, 3]))  # new [3], old [1]
    assert pairs(probe) == pytest.approx([math.sqrt(5), 1.0, math.sqrt(8.5), math.sqrt(2.5)])
    fields = probe.fields()
    assert set(fields) == set(RECORD_FIELDS["grad_norms"])
    new, old = (math.sqrt(5) + math.sqrt(8.5)) / 2, (1 + math.sqrt(2.5)) / 2
    assert fields["grad_norm_new"] == pytest.approx(new)
    assert fields["grad_norm_old"] == pytest.approx(old)
    assert fields["grad_norm_ratio"] == pytest.approx(new / old)
    assert fields["grad_norm_ratio_first"] == pytest.approx(math.sqrt(5))  # first probed batch only


def test_grad_norms_use_equal_counts_in_batch_order():
    model = zero_linear()
    # 2 new and 1 old example: the new part is cut to the first new example in batch order (here 3)
    probe = GradNormProbe(X4, Y4, NEW4)
    probe(model, torch.tensor([3, 0, 2]))
    assert pairs(probe) == pytest.approx([math.sqrt(8.5), 1.0])
    probe = GradNormProbe(X4, Y4, NEW4)
    probe(model, torch.tensor([2, 0, 3]))
    assert pairs(probe) == pytest.approx([math.sqrt(5), 1.0])
    # 2 and 2: the mean gradient over both examples of each part.
    # new: G_W = [[-0.75, 1], [0.75, -1]], G_b = 0 -> 3.125; old: G_W = [[-0.25, 0.5], [0.25, -0.5]] -> 0.625
    probe = GradNormProbe(X4, Y4, NEW4)
    probe(model, torch.tensor([0, 2, 1, 3]))
    assert pairs(probe) == pytest.approx([math.sqrt(3.125), math.sqrt(0.625)])


def test_batches_without_both_parts_are_skipped():
    probe = GradNormProbe(X4, Y4, NEW4)
    model = zero_linear()
    probe(model, torch.tensor([2, 3]))  # only new
    probe(model, torch.tensor([1, 0]))  # only old
    assert probe.pairs == []
    assert probe.fields() == dict.fromkeys(RECORD_FIELDS["grad_norms"])
    probe(model, torch.tensor([0, 3]))
    assert len(probe.pairs) == 1 and probe.fields()["grad_norm_ratio_first"] == pytest.approx(math.sqrt(8.5))
    # round 0: every example is new, so nothing is ever probed
    all_new = GradNormProbe(X4, Y4, torch.ones(4, dtype=torch.bool))
    all_new(model, torch.arange(4))
    assert all_new.fields() == dict.fromkeys(RECORD_FIELDS["grad_norms"])


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    model.train()
    with torch.no_grad():  # move the running statistics away from their initial values
        model(torch.randn(16, 2) * 3 + 1)
    return model


def eval_grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    try:
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    finally:
        model.train()
    return math.sqrt(sum(float(g.pow(2).sum()) for g in grads))


def test_probe_runs_in_eval_mode_and_leaves_the_model_alone():
    model = bn_model()
    before = snapshot(model)
    model[0].weight.grad = torch.full_like(model[0].weight, 7.0)  # a .grad left from the last step
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    new = torch.tensor([False, False, False, True, True, True])
    probe = GradNormProbe(x, y, new)
    probe(model, torch.tensor([3, 0, 4, 1]))  # new [3, 4], old [0, 1]
    assert model.training and all(m.training for m in model.modules())
    assert_same_state(before, snapshot(model))  # weights and BatchNorm running statistics untouched
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 7.0))
    assert all(p.grad is None for name, p in model.named_parameters() if name != "0.weight")
    # the norms are those of the eval-mode model (running statistics), not of the train-mode one
    g_new = eval_grad_norm(model, x[[3, 4]], y[[3, 4]])
    g_old = eval_grad_norm(model, x[[0, 1]], y[[0, 1]])
    assert pairs(probe) == pytest.approx([g_new, g_old])
    train_mode = math.sqrt(
        sum(
            float(g.pow(2).sum())
            for g in torch.autograd.grad(
                F.cross_entropy(model(x[[3, 4]]), y[[3, 4]]), list(model.parameters())
            )
        )
    )
    assert train_mode != pytest.approx(g_new, rel=1e-3)
    # a model that was in eval mode stays in eval mode
    model.eval()
    probe(model, torch.tensor([5, 2]))
    assert not model.training and len(probe.pairs) == 2


def test_probe_skips_frozen_parameters():
    model = zero_linear()
    model.bias.requires_grad_(False)
    probe = GradNormProbe(X4, Y4, NEW4)
    probe(model, torch.tensor([2, 0]))
    # without the bias term (0.5 each): |G_W|^2 = 4.5 and 0.5
    assert pairs(probe) == pytest.approx([math.sqrt(4.5), math.sqrt(0.5)])


# --------------------------------------------------------------------------------------- weight_change


def linear3(weight: list[float], bias: float) -> nn.Linear:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([weight]))
        model.bias.fill_(bias)
    return model


def test_weight_change_of_a_warm_start_is_zero():
    model = bn_model()
    previous = flat_parameters(model)
    assert previous.dtype == torch.float64 and previous.numel() == sum(p.numel() for p in model.parameters())
    change = weight_change(previous, model)
    assert set(change) == set(RECORD_FIELDS["weight_change"])
    assert change["init_distance"] == 0.0 and change["init_relative_distance"] == 0.0
    assert change["init_correlation"] == pytest.approx(1.0)


def test_flat_parameters_is_a_copy():
    model = linear3([1.0, 2.0], 3.0)
    flat = flat_parameters(model)
    assert flat.tolist() == [1.0, 2.0, 3.0]  # weight, then bias
    with torch.no_grad():
        model.weight.mul_(10)
    assert flat.tolist() == [1.0, 2.0, 3.0]


def test_weight_change_by_hand():
    previous = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    change = weight_change(previous, linear3([3.0, 2.0], 1.0))  # current [3, 2, 1]
    assert change["init_distance"] == pytest.approx(math.sqrt(8))
    assert change["init_relative_distance"] == pytest.approx(math.sqrt(8 / 14))
    assert change["init_correlation"] == pytest.approx(-1.0)
    previous = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    change = weight_change(previous, linear3([3.0, 2.0], 1.0))
    assert change["init_distance"] == pytest.approx(math.sqrt(4 + 0 + 9))
    assert change["init_relative_distance"] == pytest.approx(math.sqrt(13 / 21))
    assert change["init_correlation"] == pytest.approx(-9 / math.sqrt(84))
    assert change["init_correlation"] == pytest.approx(np.corrcoef([3, 2, 1], [1, 2, 4])[0, 1])
    # shrinking the weights keeps their direction: correlation 1, relative distance 1 - shrink
    previous = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    change = weight_change(previous, linear3([0.4, 0.8], 1.6))
    assert change["init_relative_distance"] == pytest.approx(0.6)
    assert change["init_correlation"] == pytest.approx(1.0)


def test_weight_change_degenerate_vectors():
    zero = torch.zeros(3, dtype=torch.float64)
    change = weight_change(zero, linear3([1.0, 2.0], 2.0))
    assert change["init_distance"] == pytest.approx(3.0)
    assert change["init_relative_distance"] is None and change["init_correlation"] is None


def test_weight_change_needs_the_same_parameter_count():
    with pytest.raises(ActivewsError, match=r"number of parameters \(4 -> 3\); drop --diagnostics") as exc:
        weight_change(torch.zeros(4, dtype=torch.float64), linear3([1.0, 2.0], 3.0))
    assert_one_line(str(exc.value))


# ------------------------------------------------------------------------------------------ names


ALL = ("grad_norms", "weight_change", "dormant_units", "feature_rank", "weights")
PLASTICITY = ("dormant_units", "feature_rank", "weights", "grad_norms")
KNOWN = (
    "grad_norms, weight_change, dormant_units, feature_rank, weights, "
    "plasticity (= dormant_units,feature_rank,weights,grad_norms) or all"
)


def test_check_diagnostics():
    assert check_diagnostics(["all"]) == ALL == tuple(DIAGNOSTICS)
    assert check_diagnostics(["weight_change", "all", "weight_change"]) == (
        "weight_change",
        "grad_norms",
        "dormant_units",
        "feature_rank",
        "weights",
    )
    assert check_diagnostics(["plasticity"]) == PLASTICITY == DIAGNOSTIC_GROUPS["plasticity"]
    assert check_diagnostics(["grad_norms", "plasticity", "weight_change"]) == (
        "grad_norms",
        "dormant_units",
        "feature_rank",
        "weights",
        "weight_change",
    )
    assert set(check_diagnostics(["plasticity", "all"])) == set(ALL)
    assert check_diagnostics([]) == ()
    for bad in ("grad_norm", "dormant", "Plasticity"):
        with pytest.raises(ActivewsError) as exc:
            check_diagnostics(["grad_norms", bad])
        message = str(exc.value)
        assert_one_line(message)
        assert f"unknown diagnostic {bad!r}; choose from {KNOWN}" in message
    assert set(RECORD_FIELDS) == set(DIAGNOSTICS)
    fields = [f for group in RECORD_FIELDS.values() for f in group]
    assert len(fields) == len(set(fields))  # no field is recorded by two diagnostics


def test_bench_config_diagnostics():
    assert BenchConfig.build(diagnostics="all").diagnostics == ALL
    assert BenchConfig.build(diagnostics="plasticity,weight_change").diagnostics == (
        *PLASTICITY,
        "weight_change",
    )
    assert BenchConfig.build(diagnostics="weight_change").diagnostics == ("weight_change",)
    assert BenchConfig().diagnostics == ()
    with pytest.raises(ActivewsError, match="unknown diagnostic 'nope'") as exc:
        BenchConfig.build(diagnostics=["nope"])
    assert_one_line(str(exc.value))


def test_cli_rejects_an_unknown_diagnostic(tmp_path, capsys):
    rc = main(["bench", "--diagnostics", "grad_norms,nope", "--output", str(tmp_path / "run"), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert_one_line(captured.err.rstrip("\n"))
    assert f"unknown diagnostic 'nope'; choose from {KNOWN}" in captured.err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ diagnostics as objects

ORDERED_FIELDS = (  # the order of the fields in a record, whatever the order of the names
    *RECORD_FIELDS["weight_change"],
    *RECORD_FIELDS["grad_norms"],
    *RECORD_FIELDS["dormant_units"],
    *RECORD_FIELDS["feature_rank"],
    *RECORD_FIELDS["weights"],
)


@pytest.mark.parametrize(
    "names",
    [
        ["all"],
        ["weights", "feature_rank", "dormant_units", "grad_norms", "weight_change"],
        ["plasticity", "all"],
    ],
)
def test_make_diagnostics_has_one_fixed_order(names):
    objects = make_diagnostics(names)
    assert [type(d) for d in objects] == [WeightChange, GradNorms, UnitActivity, Weights]
    assert tuple(f for d in objects for f in d.fields) == ORDERED_FIELDS
    assert [n for d in objects for n in d.names] == [
        "weight_change",
        "grad_norms",
        "dormant_units",
        "feature_rank",
        "weights",
    ]
    assert all(isinstance(d, Diagnostic) for d in objects)


def test_make_diagnostics_some_names_and_the_counterfactual():
    assert make_diagnostics([]) == []
    (units,) = make_diagnostics(["feature_rank"], batch_size=7)
    assert (units.dormant, units.rank, units.batch_size) == (False, True, 7)
    assert units.fields == RECORD_FIELDS["feature_rank"]
    counter = Counterfactual(lambda seed: nn.Linear(2, 2), None, torch.zeros(1, 2), torch.zeros(1), None)
    objects = make_diagnostics(["grad_norms", "weight_change"], counterfactual=counter)
    assert [type(d) for d in objects] == [WeightChange, GradNorms, Counterfactual]
    assert objects[-1] is counter and counter.fields == COUNTERFACTUAL_FIELDS
    with pytest.raises(ActivewsError, match="unknown diagnostic 'nope'"):
        make_diagnostics(["nope"])


def _ctx(round_index: int, new: torch.Tensor = NEW4) -> InitContext:
    return InitContext(
        round_index, lambda: zero_linear(), {}, torch.Generator(), x_labeled=X4, y_labeled=Y4, new_mask=new
    )


def test_weight_change_object_measures_what_init_round_did():
    diag = WeightChange()
    model = linear3([1.0, 2.0], 3.0)
    diag.before_init(model, _ctx(1))
    moved = linear3([3.0, 2.0], 1.0)  # what a strategy returned
    assert diag.before_training(moved, _ctx(1)) is None
    assert diag.after_training(moved, _ctx(1)) == weight_change(flat_parameters(model), moved)
    diag.before_init(model, _ctx(0))  # round 0: no previous weights
    diag.before_training(model, _ctx(0))
    assert diag.after_training(model, _ctx(0)) == dict.fromkeys(RECORD_FIELDS["weight_change"])


def test_grad_norms_object_hands_the_trainer_a_probe():
    diag = GradNorms()
    probe = diag.before_training(zero_linear(), _ctx(1))
    assert isinstance(probe, GradNormProbe)
    reference = GradNormProbe(X4, Y4, NEW4)
    for p in (probe, reference):
        p(zero_linear(), torch.tensor([2, 0]))
    assert diag.after_training(zero_linear(), _ctx(1)) == reference.fields()
    diag.before_training(zero_linear(), _ctx(0, torch.ones(4, dtype=torch.bool)))
    assert diag.after_training(zero_linear(), _ctx(0)) == dict.fromkeys(RECORD_FIELDS["grad_norms"])


def test_counterfactual_object_trains_a_fresh_model_from_its_own_generator():
    from activews.training import TrainConfig

    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Linear(2, 2)

    train = TrainConfig(max_epochs=2, target_accuracy=1.0, batch_size=2)
    ctx = _ctx(1)
    before = ctx.generator.get_state()

    def counter(seed: int) -> Counterfactual:
        return Counterfactual(build, train, X4, Y4, torch.Generator().manual_seed(seed))

    fields = counter(0).after_training(zero_linear(), ctx)
    assert list(fields) == list(COUNTERFACTUAL_FIELDS)
    assert fields["counterfactual_steps"] == 4 and 0 <= fields["counterfactual_accuracy"] <= 1
    assert counter(0).after_training(zero_linear(), ctx) == fields  # reproducible from its generator
    assert torch.equal(ctx.generator.get_state(), before)  # the run's generators are left alone
    assert counter(0).after_training(zero_linear(), _ctx(0)) == dict.fromkeys(COUNTERFACTUAL_FIELDS)


# ---------------------------------------------------------------------------------- in a real bench

TINY = dict(n_examples=600, rounds=3, initial=100, query_size=100, seeds=1, strategies=[])
WALL_TIME = {"seconds", "init_seconds", "select_seconds", "cumulative_seconds"}
DIAG_FIELDS = {f for fields in RECORD_FIELDS.values() for f in fields}
START_FIELDS = set(RECORD_FIELDS["grad_norms"]) | set(RECORD_FIELDS["weight_change"])  # None in round 0
END_FIELDS = DIAG_FIELDS - START_FIELDS  # measured on the trained model: every round has them
ARMS = ("random", "warm", "reset_to_init")


def arm_spec(label: str) -> ArmSpec:
    return ArmSpec(label, label, {})


@pytest.fixture(scope="module")
def tiny_dataset():
    return load_bench_dataset(BenchConfig.build(**TINY))


@pytest.fixture(scope="module", params=["passive", "active"])
def with_and_without(request, tiny_dataset):
    """Records of three arms of one tiny stream, without and with every diagnostic."""
    out = {}
    for diagnostics in ((), ("all",)):
        cfg = BenchConfig.build(**TINY, stream=request.param, diagnostics=diagnostics)
        out[diagnostics] = {arm: run_arm(cfg, tiny_dataset, arm_spec(arm), 0) for arm in ARMS}
    return out[()], out[("all",)]


def test_diagnostics_do_not_change_the_numbers(with_and_without):
    plain, diag = with_and_without
    for arm in ARMS:
        assert len(plain[arm]) == len(diag[arm]) == 3
        for a, b in zip(plain[arm], diag[arm], strict=True):
            assert set(b) - set(a) == DIAG_FIELDS
            assert not set(a) & DIAG_FIELDS
            assert {k: v for k, v in a.items() if k not in WALL_TIME} == {
                k: v for k, v in b.items() if k not in WALL_TIME | DIAG_FIELDS
            }


def test_diagnostic_fields_in_the_records(with_and_without):
    _, diag = with_and_without
    for arm in ARMS:
        first, *later = diag[arm]
        assert all(first[k] is None for k in START_FIELDS)  # round 0: all new, no previous weights
        for rec in later:
            assert all(isinstance(rec[k], float) and rec[k] > 0 for k in RECORD_FIELDS["grad_norms"])
            assert rec["grad_norm_ratio"] == pytest.approx(rec["grad_norm_new"] / rec["grad_norm_old"])
        for rec in diag[arm]:  # the plasticity fields are measured at every round's end
            assert all(rec[k] is not None for k in END_FIELDS)
            assert 0 <= rec["dead_fraction"] <= rec["dormant_fraction"] < 0.5
            # mlp: the head's input is the last hidden layer (256 units), measured on all n_labeled examples
            assert isinstance(rec["feature_rank"], int) and 1 <= rec["feature_rank"] <= rec["n_labeled"]
            assert rec["feature_rank_fraction"] == pytest.approx(
                rec["feature_rank"] / min(256, rec["n_labeled"])
            )
            assert rec["weight_norm"] > 0 and rec["distance_from_start"] > 0
        # round 0 starts from the run's initial weights
        assert first["distance_from_start"] == first["distance_from_init"]
    for rec in diag["warm"][1:]:
        assert rec["init_distance"] == 0.0 and rec["init_relative_distance"] == 0.0
        assert rec["init_correlation"] == pytest.approx(1.0)
        # a warm-started model already fits the old examples: new ones have the larger gradients
        assert rec["grad_norm_ratio"] > 1
    # triangle inequality: a warm round starts from the last round's end
    for prev, rec in zip(diag["warm"], diag["warm"][1:], strict=False):
        assert (
            abs(rec["distance_from_init"] - prev["distance_from_init"]) <= rec["distance_from_start"] + 1e-9
        )
    for rec in diag["reset_to_init"]:  # every round starts from the initial weights again
        assert rec["distance_from_start"] == pytest.approx(rec["distance_from_init"], rel=1e-12)
    for rec in diag["random"][1:]:
        assert rec["init_distance"] > 0 and rec["init_relative_distance"] > 0.5
        assert abs(rec["init_correlation"]) < 0.1
        assert rec["distance_from_init"] > rec["distance_from_start"]  # a fresh draw, far from round 0's


def test_summary_and_figure_carry_the_diagnostics(with_and_without, request, monkeypatch):
    from activews.report import plots as report

    plain, diag = with_and_without
    cfg = BenchConfig.build(**TINY, diagnostics="all")
    records = [r for arm in ARMS for r in diag[arm]]
    summary = summarize(records, list(ARMS))
    warm = next(row for row in summary if row["arm"] == "warm")
    assert warm["per_round"][0]["init_correlation"] is None
    assert warm["per_round"][0]["grad_norm_ratio"] is None
    for r in (1, 2):
        assert warm["per_round"][r]["init_correlation"] == pytest.approx(1.0)
        assert warm["per_round"][r]["grad_norm_ratio"] == pytest.approx(diag["warm"][r]["grad_norm_ratio"])
    for r in (0, 1, 2):  # one seed: the means are the records' values
        for key in END_FIELDS:
            assert warm["per_round"][r][key] == pytest.approx(diag["warm"][r][key])
    plain_records = [r for arm in ARMS for r in plain[arm]]
    plain_summary = summarize(plain_records, list(ARMS))
    assert not DIAG_FIELDS & set(plain_summary[0]["per_round"][1])
    assert (
        report._diagnostics_figure(BenchResult(BenchConfig.build(**TINY), plain_records, plain_summary))
        is None
    )
    if "passive" not in request.node.callspec.id:  # the figures cost a second or two: draw them once
        return
    figs = report.figures(BenchResult(cfg, records, summary))
    assert figs["diagnostics.png"][:8] == b"\x89PNG\r\n\x1a\n"
    # every recorded measurement gets a panel, in rows of three
    drawn = []
    monkeypatch.setattr(report, "png", lambda fig: drawn.append(fig) or b"png")
    report._diagnostics_figure(BenchResult(cfg, records, summary))
    (fig,) = drawn
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [p[2] for p in report._DIAGNOSTIC_PANELS]
    assert len(visible) == 9 and visible[0].get_subplotspec().get_geometry()[:2] == (3, 3)
    assert all(
        len(ax.get_lines()) >= len(ARMS) for ax in visible[3:]
    )  # round 0 included: drawn for every arm
    # only some diagnostics: only their panels, in one row
    drawn.clear()
    keep = set(RECORD_FIELDS["dormant_units"]) | {"n_labeled"}
    some = [{k: v for k, v in r.items() if k not in DIAG_FIELDS or k in keep} for r in records]
    report._diagnostics_figure(BenchResult(cfg, some, summarize(some, list(ARMS))))
    visible = [ax for ax in drawn[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == [
        "Dormant units (score <= 0.025), round's end",
        "Dead units (never active), round's end",
    ]
    assert visible[0].get_subplotspec().get_geometry()[:2] == (1, 2)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_diagnostics_through_the_cli(tmp_path):
    """A tiny bench through ``main``: the records, summary, CSV, figure and report carry the fields."""
    folder = tmp_path / "run"
    flags = list(TINY_FLAGS)
    flags[flags.index("--seeds") + 1] = "2"
    argv = ["bench", *flags, "--stream", "passive", "--diagnostics", "plasticity", "--output", str(folder)]
    assert main([*argv, "--quiet", "--strategy", "reset_to_init"]) == 0
    wanted = {f for name in PLASTICITY for f in RECORD_FIELDS[name]}
    records = json.loads((folder / "records.json").read_text())
    assert len(records) == 3 * 2 * 3  # random, warm and reset_to_init; 2 seeds; 3 rounds
    for rec in records:
        assert wanted <= set(rec) and not set(RECORD_FIELDS["weight_change"]) & set(rec)
        assert all(rec[f] is not None for f in wanted - set(RECORD_FIELDS["grad_norms"]))
        assert (rec["grad_norm_ratio"] is None) == (rec["round"] == 0)
    header = (folder / "records.csv").read_text().splitlines()[0].split(",")
    assert header[header.index("cumulative_seconds") + 1 :] == [
        *RECORD_FIELDS["grad_norms"],
        *RECORD_FIELDS["dormant_units"],
        *RECORD_FIELDS["feature_rank"],
        *RECORD_FIELDS["weights"],
    ]
    summary = json.loads((folder / "summary.json").read_text())
    warm = next(arm for arm in summary["arms"] if arm["arm"] == "warm")
    for r, entry in enumerate(warm["per_round"]):
        values = [rec["weight_norm"] for rec in records if rec["arm"] == "warm" and rec["round"] == r]
        assert len(values) == 2 and entry["weight_norm"] == pytest.approx(sum(values) / 2)
        assert entry["dormant_fraction"] is not None and entry["feature_rank"] > 0
    assert (folder / "diagnostics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (folder / "report.html").read_text()
    assert "alt='diagnostics.png'" in page and "dormant units, feature rank" in page


def test_summary_means_diagnostics_over_seeds():
    def rec(seed: int, rnd: int, ratio: float | None) -> dict:
        return {
            "arm": "warm",
            "strategy": "warm",
            "seed": seed,
            "round": rnd,
            "n_labeled": 10 * (rnd + 1),
            "test_accuracy": 0.5,
            "steps": 1,
            "seconds": 0.1,
            "cumulative_steps": rnd + 1,
            "cumulative_seconds": 0.1 * (rnd + 1),
            "stop_reason": "target",
            "grad_norm_ratio": ratio,
        }

    records = [
        rec(0, 0, None),
        rec(1, 0, None),
        rec(0, 1, 2.0),
        rec(1, 1, 4.0),
        rec(0, 2, 3.0),
        rec(1, 2, None),
    ]
    per_round = summarize(records, ["warm"])[0]["per_round"]
    assert [p["grad_norm_ratio"] for p in per_round] == [None, 3.0, 3.0]
    assert "init_distance" not in per_round[0]  # only the fields the records hold
