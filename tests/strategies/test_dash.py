"""``dash``: direction-aware shrinking, its gradient EMA over arrival groups, state and resume."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from activews import BenchConfig
from activews.engine.arm import run_arm
from activews.engine.setup import load_bench_dataset
from activews.errors import ActivewsError
from activews.strategies import InitContext, get_strategy, make_strategy
from activews.strategies.dash import Dash, direction_aware_shrink, shrinkable_layers
from tests.helpers import INPUT_SHAPE, NUM_CLASSES, assert_one_line, assert_same_state, changed_keys, snapshot
from tests.run_helpers import TINY, interrupt_and_resume, record_keys


def labeled(n: int = 96, n_new: int = 32, seed: int = 11) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *INPUT_SHAPE, generator=gen) + 0.5
    y = torch.randint(0, NUM_CLASSES, (n,), generator=gen)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[n - n_new :] = True
    return x, y, mask


def data_ctx(trained, seed: int = 3, round_index: int = 1, **data) -> InitContext:
    x, y, mask = labeled(**data)
    return trained.ctx(seed).replace(round_index=round_index, x_labeled=x, y_labeled=y, new_mask=mask)


def mean_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The mean cross-entropy gradient of every Linear/Conv weight and bias, in eval mode (reference)."""
    model = copy.deepcopy(model).eval()
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return {
        f"{name}.{kind}": getattr(m, kind).grad.clone()
        for name, m in shrinkable_layers(model)
        for kind in ("weight", "bias")
        if getattr(m, kind) is not None
    }


# ------------------------------------------------------------------------------------ the contract with data


def test_contract_with_labeled_data(trained):
    """The contract test's checks, with the labeled data DASH needs (the shared context has none)."""
    strategy = get_strategy("dash")()
    source = trained.copy()
    before = snapshot(source)
    gen_state = trained.ctx(7).generator.get_state()
    ctx = data_ctx(trained, seed=7)
    out = strategy.init_round(trained.copy(), ctx)
    assert isinstance(out, nn.Module)
    assert_same_state(snapshot(source), before)  # works on its own copy only
    ref = dict(trained.model.named_parameters())
    for name, p in out.named_parameters():
        assert (p.shape, p.dtype, p.device) == (ref[name].shape, ref[name].dtype, ref[name].device)
        assert p.grad is None, f"{name}: DASH must not leave gradients behind"
    assert all(torch.isfinite(t).all() for t in out.state_dict().values() if t.is_floating_point())
    assert torch.equal(ctx.generator.get_state(), gen_state)  # uses no randomness
    again = get_strategy("dash")().init_round(trained.copy(), data_ctx(trained, seed=7))
    assert_same_state(snapshot(out), snapshot(again))
    assert out.training  # the mode is restored


def test_each_modules_mode_is_restored(trained_cnn):
    model = trained_cnn.copy()
    model[2].eval()  # e.g. a BatchNorm the user froze
    Dash().init_round(model, data_ctx(trained_cnn))
    assert [m.training for m in model.modules()] == [name != "2" for name, _ in model.named_modules()]


def test_batchnorm_and_other_layers_are_left_alone(trained):
    out = snapshot(make_strategy("dash").init_round(trained.copy(), data_ctx(trained)))
    shrunk = {f"{name}.{kind}" for name, m in shrinkable_layers(trained.model) for kind in ("weight", "bias")}
    changed = changed_keys(out, snapshot(trained.model))
    assert changed and changed <= shrunk  # BatchNorm weights, biases and running statistics unchanged
    for key in changed:
        ratio = out[key].abs().sum() / snapshot(trained.model)[key].abs().sum()
        assert 0.3 - 1e-6 <= ratio <= 1.0 + 1e-6  # shrinks, never grows, never below lam


# ------------------------------------------------------------------------------------------ the shrink rule


def test_aligned_direction_keeps_weights_and_opposite_shrinks_to_the_floor(trained):
    model = trained.copy()
    weights = snapshot(model)
    params = dict(model.named_parameters())
    direction = {name: params[name].detach().clone() for name, _ in _shrunk_params(model)}
    scales = direction_aware_shrink(model, direction, lam=0.3)
    assert all(torch.allclose(s, torch.ones_like(s)) for s in scales.values())
    for name, _ in _shrunk_params(model):
        torch.testing.assert_close(params[name].detach(), weights[name])

    model = trained.copy()
    params = dict(model.named_parameters())
    direction = {name: -p.detach().clone() for name, p in _shrunk_params(model)}
    direction_aware_shrink(model, direction, lam=0.3)
    for name, _ in _shrunk_params(model):
        torch.testing.assert_close(params[name].detach(), 0.3 * weights[name])


def _shrunk_params(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [
        (f"{name}.{kind}", getattr(m, kind))
        for name, m in shrinkable_layers(model)
        for kind in ("weight", "bias")
        if getattr(m, kind) is not None
    ]


def test_linear_rows_conv_kernel_slices_and_one_bias_scale():
    lin = nn.Linear(2, 3)
    conv = nn.Conv1d(2, 1, kernel_size=2)
    model = nn.Sequential(lin, conv)  # only the module list matters here
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]]))
        lin.bias.copy_(torch.tensor([1.0, 1.0, 0.0]))
        conv.weight.copy_(torch.tensor([[[1.0, 0.0], [0.0, 2.0]]]))
        conv.bias.fill_(2.0)
    direction = {
        "0.weight": torch.tensor([[1.0, 1.0], [0.0, -1.0], [3.0, 4.0]]),  # cos 0.707, -1, 1
        "0.bias": torch.tensor([1.0, 0.0, 0.0]),  # cos 0.707 for the whole vector
        "1.weight": torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]),  # per (out, in) slice: cos 0, 1
        # no "1.bias": left as it is
    }
    scales = direction_aware_shrink(model, direction, lam=0.5)
    c = 2**-0.5
    torch.testing.assert_close(scales["0.weight"], torch.tensor([c, 0.5, 1.0]))
    torch.testing.assert_close(lin.weight.detach(), torch.tensor([[c, 0.0], [0.0, 0.5], [3.0, 4.0]]))
    torch.testing.assert_close(lin.bias.detach(), torch.tensor([c, c, 0.0]))
    torch.testing.assert_close(scales["1.weight"], torch.tensor([[0.5, 1.0]]))
    torch.testing.assert_close(conv.weight.detach(), torch.tensor([[[0.5, 0.0], [0.0, 2.0]]]))
    assert torch.equal(conv.bias.detach(), torch.tensor([2.0]))
    assert "1.bias" not in scales


def test_with_real_gradients_aligned_weights_stay_and_opposite_ones_shrink():
    # A linear classifier with tiny weights: its softmax is nearly uniform, so the gradient hardly
    # depends on the weights and we can point them along (or against) the negative gradient.
    x, y, mask = labeled()
    model = nn.Sequential(nn.Linear(INPUT_SHAPE[0], NUM_CLASSES))
    nn.init.zeros_(model[0].weight), nn.init.zeros_(model[0].bias)
    ctx = InitContext(1, lambda: None, {}, torch.Generator(), x_labeled=x, y_labeled=y, new_mask=mask)
    neg = Dash(alpha=1.0).negative_gradient_ema(model, ctx)  # alpha=1: the newest group only
    for sign, expected in ((1.0, 1.0), (-1.0, 0.3)):
        with torch.no_grad():
            model[0].weight.copy_(sign * 1e-4 * neg["0.weight"] / neg["0.weight"].norm())
            model[0].bias.copy_(sign * 1e-4 * neg["0.bias"] / neg["0.bias"].norm())
        before = snapshot(model)
        Dash(alpha=1.0).init_round(model, ctx.replace())
        for key in ("0.weight", "0.bias"):
            ratio = model.state_dict()[key] / before[key]
            torch.testing.assert_close(ratio, torch.full_like(ratio, expected), atol=2e-3, rtol=0)


# ---------------------------------------------------------------------------------- the gradient EMA


def test_gradient_is_an_ema_over_arrival_groups_oldest_first(trained_cnn):
    x, y, mask = labeled(n=96, n_new=32)
    strategy = Dash(alpha=0.3)
    strategy.groups = [40]  # round 1 added 24 to a round-0 set of 40, remembered from earlier rounds
    ctx = data_ctx(trained_cnn).replace(round_index=2, x_labeled=x, y_labeled=y, new_mask=mask)
    got = strategy.negative_gradient_ema(trained_cnn.copy(), ctx)
    assert strategy.groups == [40, 24, 32]
    g = [mean_gradient(trained_cnn.model, x[a:b], y[a:b]) for a, b in ((0, 40), (40, 64), (64, 96))]
    for key, value in got.items():
        expected = torch.zeros_like(value)
        for grads in g:
            expected = 0.7 * expected - 0.3 * grads[key]
        torch.testing.assert_close(value, expected, atol=1e-6, rtol=1e-4)


def test_new_examples_are_grouped_by_the_mask_wherever_they_are(trained_mlp):
    x, y, mask = labeled(n=60, n_new=20)
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    shuffled = data_ctx(trained_mlp).replace(x_labeled=x[perm], y_labeled=y[perm], new_mask=mask[perm])
    ordered = data_ctx(trained_mlp).replace(x_labeled=x, y_labeled=y, new_mask=mask)
    a = Dash(alpha=1.0).negative_gradient_ema(trained_mlp.copy(), shuffled)
    b = Dash(alpha=1.0).negative_gradient_ema(trained_mlp.copy(), ordered)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize(
    ("remembered", "n", "n_new", "expected"),
    [
        ([], 100, 30, [70, 30]),  # round 1: the round-0 set, then the new examples
        ([70, 30], 120, 20, [70, 30, 20]),  # every round seen
        ([70], 150, 30, [70, 50, 30]),  # a round not seen (e.g. a scheduled reset): one group
        ([70, 30], 50, 10, [40, 10]),  # the labeled set shrank: remembered sizes that do not fit go
        ([70], 90, 0, [70, 20]),  # no new examples
    ],
)
def test_arrival_groups(remembered, n, n_new, expected):
    strategy = Dash()
    strategy.groups = list(remembered)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[n - n_new :] = True
    assert strategy.arrival_groups(n, mask) == expected
    assert strategy.groups == expected


def test_a_new_run_forgets_remembered_groups(trained_mlp):
    strategy = Dash()
    strategy.groups = [5, 5]
    strategy.init_round(trained_mlp.copy(), data_ctx(trained_mlp, round_index=1, n=96, n_new=32))
    assert strategy.groups == [64, 32]


def test_result_does_not_depend_on_batch_size(trained):
    small = snapshot(Dash(batch_size=7).init_round(trained.copy(), data_ctx(trained)))
    large = snapshot(Dash().init_round(trained.copy(), data_ctx(trained)))
    for key in small:
        torch.testing.assert_close(small[key], large[key], atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------------- state and errors


def test_state_round_trips_through_a_weights_only_checkpoint(tmp_path, trained_mlp):
    strategy = Dash()
    strategy.init_round(trained_mlp.copy(), data_ctx(trained_mlp, n=80, n_new=30))
    state = strategy.state_dict()
    assert state == {"groups": [50, 30]}
    torch.save(state, tmp_path / "s.pt")
    restored = Dash()
    restored.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert restored.groups == [50, 30]
    with pytest.raises(ActivewsError, match="unexpected checkpoint state") as exc:
        restored.load_state_dict({"ema": torch.zeros(1)})
    assert_one_line(str(exc.value))


def test_without_labeled_data_it_says_what_to_pass(trained_mlp):
    with pytest.raises(ActivewsError, match="needs the round's labeled data") as exc:
        no_data = trained_mlp.ctx(0).replace(x_labeled=None, y_labeled=None, new_mask=None)
        Dash().init_round(trained_mlp.copy(), no_data)
    assert_one_line(str(exc.value))
    bad_mask = data_ctx(trained_mlp).replace(new_mask=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ActivewsError, match="new_mask has 3 entries for 96") as exc:
        Dash().init_round(trained_mlp.copy(), bad_mask)
    assert_one_line(str(exc.value))


def test_check_model_needs_a_linear_or_conv_layer():
    with pytest.raises(ActivewsError, match="has none; use shrink_perturb") as exc:
        Dash().check_model(nn.Sequential(nn.LayerNorm(4)))
    assert_one_line(str(exc.value))
    Dash().check_model(nn.Sequential(nn.Linear(4, 2)))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"lam": 1.5}, "lam"),
        ({"lam": -0.1}, "lam"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.1}, "alpha"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_invalid_params(params, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        make_strategy("dash", params)
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith("strategy 'dash':")


def test_defaults_are_the_papers():
    p = Dash().params
    assert (p.lam, p.alpha) == (0.3, 0.3)
    assert Dash.reference and Dash.batchnorm and "References:" in (Dash.__doc__ or "")


# ------------------------------------------------------------------------------------------ in a run


def test_run_arm_shrinks_and_resumes_exactly(tmp_path):
    config = BenchConfig.build(**(TINY | {"rounds": 4, "strategies": ["dash"]}))
    data = load_bench_dataset(config)
    reference = run_arm(config, data, "dash", 0)
    warm = run_arm(config, data, "warm", 0)
    assert record_keys(reference)[0][3:] == record_keys(warm)[0][3:]  # round 0: no init_round
    assert [r["test_accuracy"] for r in reference[1:]] != [r["test_accuracy"] for r in warm[1:]]

    saved, resumed, computed = interrupt_and_resume(config, data, "dash", tmp_path / "arm.pt", stop_after=2)
    assert saved["strategy"] == {"groups": [100, 100, 100]}
    assert [r["round"] for r in computed] == [3]
    assert record_keys(resumed) == record_keys(reference)
