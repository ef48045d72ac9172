"""``redo``: dormant units are recycled on schedule, exactly, deterministically, and resumably."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from activews import BenchConfig
from activews.engine.arm import run_arm
from activews.engine.setup import load_bench_dataset
from activews.errors import ActivewsError
from activews.models import build_model
from activews.strategies import InitContext, make_strategy
from activews.strategies import redo as redo_module
from activews.training import Step
from activews.units import dormant_scores, hidden_units, unit_activity
from tests.helpers import (
    INPUT_SHAPE,
    NUM_CLASSES,
    assert_one_line,
    first_fresh_draw,
    make_ctx,
    record_returns,
    snapshot,
)
from tests.run_helpers import TINY, interrupt_and_resume, record_keys


def _batch(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *INPUT_SHAPE, generator=gen), torch.randint(0, NUM_CLASSES, (n,), generator=gen)


def _trained_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Step:
    """One Adam step on ``(x, y)``, so the optimizer has state for every parameter."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    return Step(1, 0, x, y, opt)


def _kill(model: nn.Module, group_index: int, units: list[int]) -> None:
    """Make ``units`` exactly dead: zero incoming weights and bias (and, behind BatchNorm, a negative shift)."""
    group = hidden_units(model)[group_index]
    with torch.no_grad():
        group.incoming.weight[units] = 0.0
        if group.incoming.bias is not None:
            group.incoming.bias[units] = 0.0
        if group.norm is not None:
            group.norm.weight[units] = 0.0
            group.norm.bias[units] = -1.0


def _dormant(model: nn.Module, x: torch.Tensor, tau: float) -> dict[str, list[int]]:
    groups = hidden_units(model)
    activity = unit_activity(model, groups, x)
    return {g.name: (dormant_scores(activity[g.name]) <= tau).nonzero().flatten().tolist() for g in groups}


MODELS = {
    "mlp": ("mlp", {}),
    "cnn_bn": ("cnn", {"batchnorm": True, "channels": [4, 8]}),
    "resnet18": ("resnet18", {"width": 4}),
}


@pytest.mark.parametrize("key", list(MODELS))
def test_after_step_recycles_exactly_the_dormant_units(key):
    name, params = MODELS[key]
    model = build_model(name, INPUT_SHAPE, NUM_CLASSES, params, seed=0)
    x, y = _batch()
    step = _trained_step(model, x, y)
    _kill(model, 1, [1, 3])
    tau = 0.0  # only exactly dead units: the two killed ones, and any the data leaves dead
    expected = _dormant(model, x, tau)
    assert {1, 3} <= set(expected[hidden_units(model)[1].name])
    before = snapshot(model)
    state_before = {p: {k: v.clone() for k, v in st.items()} for p, st in step.optimizer.state.items()}
    assert len(state_before) == len(list(model.parameters()))
    ctx = make_ctx(key, seed=4, initial_state={})
    fresh = first_fresh_draw(key, 4)  # what the strategy's one ctx.fresh_model() call returns
    strategy = make_strategy("redo", {"tau": tau, "every": 1})
    strategy.after_step(model, step, ctx)

    # The expected state: every recycled unit's incoming rows from the fresh draw, bias 0, BatchNorm
    # entries as drawn (1, 0, 0, 1); then every recycled unit's outgoing columns 0; nothing else moves.
    expected_state = {k: v.clone() for k, v in before.items()}
    modules = {m: n for n, m in model.named_modules()}
    groups = [(g, torch.tensor(expected[g.name], dtype=torch.long)) for g in hidden_units(model)]
    for group, idx in groups:
        inc = modules[group.incoming]
        expected_state[f"{inc}.weight"][idx] = fresh[f"{inc}.weight"][idx]
        if group.incoming.bias is not None:
            expected_state[f"{inc}.bias"][idx] = 0.0
        if group.norm is not None:
            for k, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
                expected_state[f"{modules[group.norm]}.{k}"][idx] = value
    zero_entries: dict[torch.Tensor, list[tuple[int, torch.Tensor]]] = {}
    for group, idx in groups:
        for consumer in group.outgoing:
            expected_state[f"{modules[consumer.layer]}.weight"][:, consumer.columns(idx)] = 0.0
        for param, dim, index in group.entries(idx):
            zero_entries.setdefault(param, []).append((dim, index))
    after = snapshot(model)
    for k, value in expected_state.items():
        assert torch.equal(after[k], value), k

    # Adam's moments: zero at exactly the recycled entries; the step counts are kept
    names = {p: n for n, p in model.named_parameters()}
    for param, state in step.optimizer.state.items():
        for key, old in state_before[param].items():
            want = old.clone()
            if key != "step":
                for dim, index in zero_entries.get(param, []):
                    want.index_fill_(dim, index, 0.0)
            assert torch.equal(state[key], want), (names[param], key)
    assert strategy.recycled == sum(len(v) for v in expected.values())
    assert strategy.state_dict() == {"steps": 1, "recycled": strategy.recycled}


def test_recycling_dead_units_keeps_the_function_of_a_model_without_batchnorm():
    model = build_model("mlp", INPUT_SHAPE, NUM_CLASSES, {}, seed=0)
    x, y = _batch()
    step = _trained_step(model, x, y)
    _kill(model, 0, [0, 10, 100])
    _kill(model, 1, [7])
    model.eval()
    with torch.no_grad():
        out_before = model(x)
    strategy = make_strategy("redo", {"tau": 0.0, "every": 1})
    strategy.after_step(model, step, make_ctx("mlp", seed=1, initial_state={}))
    assert strategy.recycled >= 4
    with torch.no_grad():
        torch.testing.assert_close(model(x), out_before)


def test_recycling_follows_the_schedule_across_rounds(monkeypatch):
    calls: list[int] = []
    real = redo_module.recycle_units

    def spy(groups, selection, *args, **kwargs):
        calls.append(strategy.steps)
        return real(groups, selection, *args, **kwargs)

    monkeypatch.setattr(redo_module, "recycle_units", spy)
    model = build_model("mlp", INPUT_SHAPE, NUM_CLASSES, {}, seed=0)
    x, y = _batch()
    step = _trained_step(model, x, y)
    strategy = make_strategy("redo", {"every": 3})
    for round_index, n_steps in ((0, 4), (1, 4)):
        ctx = make_ctx("mlp", seed=round_index, initial_state={}, round_index=round_index)
        for _ in range(n_steps):
            strategy.after_step(model, step, ctx)
    assert calls == [3, 6], "every 3 steps, counted over both rounds"

    # the count survives a checkpoint: a strategy restored after step 8 recycles next at step 9
    buffer = io.BytesIO()
    torch.save(strategy.state_dict(), buffer)
    buffer.seek(0)
    restored = make_strategy("redo", {"every": 3})
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.state_dict() == strategy.state_dict() == {"steps": 8, "recycled": strategy.recycled}
    strategy = restored
    for _ in range(2):
        strategy.after_step(model, step, make_ctx("mlp", seed=2, initial_state={}))
    assert calls == [3, 6, 9]


def test_recycling_is_deterministic_given_the_context_seed():
    x, y = _batch()
    outs = []
    for _ in range(2):
        model = build_model("cnn", INPUT_SHAPE, NUM_CLASSES, {"batchnorm": True, "channels": [4, 8]}, seed=0)
        step = _trained_step(model, x, y)
        _kill(model, 0, [1])
        make_strategy("redo", {"every": 1}).after_step(model, step, make_ctx("cnn_bn", 6, {}))
        outs.append(snapshot(model))
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_at_round_start_recycles_units_dormant_on_the_labeled_data():
    model = build_model("mlp", INPUT_SHAPE, NUM_CLASSES, {}, seed=0)
    _kill(model, 0, [3])
    x, y = _batch(300)
    base = make_ctx("mlp", seed=2, initial_state={})
    ctx = InitContext(1, base.fresh_model, {}, base.generator, x_labeled=x, y_labeled=y)
    before = snapshot(model)

    warm = make_strategy("redo")
    assert warm.init_round(model, ctx) is model  # default: a warm start
    assert all(torch.equal(v, before[k]) for k, v in snapshot(model).items())

    strategy = make_strategy("redo", {"at_round_start": True})
    assert strategy.init_round(model, ctx) is model
    assert strategy.recycled >= 1 and strategy.steps == 0
    assert model[1].weight[3].ne(0).any() and model[3].weight[:, 3].eq(0).all()

    with pytest.raises(ActivewsError, match="at_round_start=True needs the round's labeled data") as exc:
        strategy.init_round(model, InitContext(1, base.fresh_model, {}, base.generator))
    assert_one_line(str(exc.value))


class _Opaque(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(40, 8), nn.Linear(8, 10)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (lambda: build_model("logreg", INPUT_SHAPE, NUM_CLASSES, {}), "has no hidden units to recycle"),
        (_Opaque, "define hidden_units"),
    ],
)
def test_check_model_rejects_models_without_recyclable_units(model, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        make_strategy("redo").check_model(model())
    message = str(exc.value)
    assert_one_line(message)
    assert message.startswith("strategy 'redo'")


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("mlp", {}),
        ("paper_mlp", {}),
        ("cnn", {}),
        ("cnn", {"batchnorm": True, "dropout": 0.2}),
        ("resnet18", {"width": 4}),
    ],
)
def test_check_model_accepts_the_built_in_models(name, params):
    make_strategy("redo").check_model(build_model(name, INPUT_SHAPE, NUM_CLASSES, params))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"tau": -0.1}, "tau"),
        ({"tau": 1.5}, "tau"),
        ({"every": 0}, "every"),
        ({"at_round_start": "sometimes"}, "at_round_start"),
    ],
)
def test_invalid_params_raise_one_line_errors(params, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        make_strategy("redo", params)
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith("strategy 'redo':")


def test_load_state_dict_rejects_foreign_state():
    with pytest.raises(ActivewsError, match="expected") as exc:
        make_strategy("redo").load_state_dict({"steps": 3})
    assert_one_line(str(exc.value))


def test_run_arm_recycles_and_resumes_exactly(tmp_path, monkeypatch):
    recycled = record_returns(monkeypatch, redo_module, "recycle_units")
    params = {"tau": 0.1, "every": 10, "at_round_start": True}
    config = BenchConfig.build(**(TINY | {"seeds": 1, "strategies": ["redo"], "params": {"redo": params}}))
    data = load_bench_dataset(config)
    reference = run_arm(config, data, "redo", 0)
    assert sum(recycled) > 0, "the run should recycle some units"
    assert [r["round"] for r in reference] == [0, 1, 2]

    saved, resumed, _ = interrupt_and_resume(config, data, "redo", tmp_path / "arm.pt", stop_after=0)
    assert saved["strategy"]["steps"] == reference[0]["steps"]
    assert record_keys(resumed) == record_keys(reference)


def test_the_model_is_not_shared_between_strategy_instances():
    model = build_model("mlp", INPUT_SHAPE, NUM_CLASSES, {}, seed=0)
    other = copy.deepcopy(model)
    x, y = _batch()
    strategy = make_strategy("redo", {"every": 1})
    strategy.after_step(model, _trained_step(model, x, y), make_ctx("mlp", 0, {}))
    step = _trained_step(other, x, y)
    strategy.after_step(other, step, make_ctx("mlp", 0, {}))  # a new model object: its own units are used
    assert strategy.steps == 2
