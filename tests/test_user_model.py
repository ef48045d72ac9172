"""The bench on a user's own model factory and training function (``--model pkg.mod:fn``,
``--train-fn pkg.mod:fn``, or the callables themselves from Python): seeded draws, records, workers,
resume, the CLI, and the one-line errors before any data loads."""

from __future__ import annotations

import json
import os
import textwrap
import uuid

import pytest
import torch
from torch import nn

from activews.cli.main import main
from activews.engine import bench as bench_module
from activews.engine.bench import load_results, run_bench
from activews.engine.config import BenchConfig
from activews.errors import ActivewsError
from activews.models import build_model

from .run_helpers import comparable

TINY = dict(n_examples=600, rounds=2, initial=100, query_size=100, seeds=2)
TINY_FLAGS = [part for key, value in TINY.items() for part in (f"--{key.replace('_', '-')}", str(value))]
TIMING = {"seconds", "init_seconds", "select_seconds", "cumulative_seconds"}


def untimed(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def make_mlp(input_shape, num_classes, hidden=8):
    """A tiny MLP factory: factory(input_shape, num_classes, **model_params) -> nn.Module."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(input_shape[-1], hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
    )


def registered_mlp(input_shape, num_classes, **params):
    """The registered ``mlp``, drawn from torch's global RNG as a user's factory draws."""
    return build_model("mlp", input_shape, num_classes, params)


def sgd_epochs(model, x, y, hooks):
    """A plain minibatch loop: the strategy's loss term and after-step hook, the run's generator."""
    steps, epochs = 0, hooks.epochs if hooks.epochs is not None else 2
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=hooks.generator)
        for i in range(0, len(y), 50):
            idx = order[i : i + 50]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx]) + hooks.loss_term(model)
            hooks.optimizer.zero_grad()
            loss.backward()
            hooks.optimizer.step()
            hooks.after_step(model, hooks.optimizer, x=x[idx], y=y[idx], epoch=epoch)
            steps += 1
    return {"steps": steps, "epochs": epochs}


USER_MODULE = """
import torch
from torch import nn


def make_mlp(input_shape, num_classes, hidden=8):
    return nn.Sequential(
        nn.Flatten(), nn.Linear(input_shape[-1], hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
    )


def make_wider(input_shape, num_classes, hidden=8):
    return make_mlp(input_shape, num_classes, hidden=2 * hidden)


def fit(model, x, y, hooks):
    steps = 0
    for epoch in range(2):
        order = torch.randperm(len(y), generator=hooks.generator)
        for i in range(0, len(y), 50):
            idx = order[i : i + 50]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx]) + hooks.loss_term(model)
            hooks.optimizer.zero_grad()
            loss.backward()
            hooks.optimizer.step()
            hooks.after_step(model, hooks.optimizer, x=x[idx], y=y[idx], epoch=epoch)
            steps += 1
    return {"steps": steps, "epochs": 2}


NOT_CALLABLE = 3
"""


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    """An importable module of the user's (written once; its folder goes on sys.path per test)."""
    folder = tmp_path_factory.mktemp("usercode")
    name = f"usernets_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    return folder, name


@pytest.fixture
def user(user_module, monkeypatch):
    folder, name = user_module
    monkeypatch.syspath_prepend(str(folder))
    return name


@pytest.fixture
def no_data_loads(monkeypatch):
    """Fail the test if the bench gets as far as loading its dataset."""

    def refuse(config):
        raise AssertionError("the dataset was loaded before the error")

    monkeypatch.setattr(bench_module, "load_bench_dataset", refuse)


def test_factory_and_train_fn_end_to_end():
    config = BenchConfig.build(**TINY, model=make_mlp, model_params={"hidden": 6}, train_fn=sgd_epochs)
    # Module-level callables are recorded by reference: the run folder stays JSON.
    assert config.model == f"{__name__}:make_mlp" and config.train_fn == f"{__name__}:sgd_epochs"
    assert config.model_factory is make_mlp and config.train_function is sgd_epochs
    result = run_bench(config)
    assert result.config.model_dump(mode="json")["model"] == f"{__name__}:make_mlp"
    assert result.config.model_factory is make_mlp
    assert len(result.records) == 3 * 2 * 2
    for r in result.records:
        # 100 and 200 examples in batches of 50, two epochs: 4 and 8 steps
        assert r["steps"] == (4, 8)[r["round"]] and r["epochs"] == 2
        assert r["stop_reason"] == "train_fn" and 0.0 <= r["test_accuracy"] <= 1.0
    # the same config again gives the same numbers: every draw comes from the run's seeds
    again = run_bench(
        BenchConfig.build(**TINY, model=make_mlp, model_params={"hidden": 6}, train_fn=sgd_epochs)
    )
    assert untimed(again.records) == untimed(result.records)
    # and the factory's hidden size reached it: other parameters, other numbers
    other = run_bench(config.replace(model_params={"hidden": 5}))
    assert untimed(other.records) != untimed(result.records)


def test_the_protocol_line_names_the_training_function():
    from activews.report.tables import protocol_title

    own = protocol_title(BenchConfig.build(**TINY, model=make_mlp, train_fn=sgd_epochs))
    assert f"trained by {__name__}:sgd_epochs" in own and "train to" not in own
    assert "adam lr 0.001 · train to 99%" in protocol_title(BenchConfig.build(**TINY))


def test_a_factory_draws_exactly_as_the_registered_model():
    """A factory is seeded as a registered model is: wrapping the registered mlp changes no number."""
    values = TINY | {"seeds": 1, "model_params": {"hidden": [16]}, "max_epochs": 30}
    registered = run_bench(BenchConfig.build(**values))
    factory = run_bench(BenchConfig.build(**(values | {"model": registered_mlp})))
    assert untimed(factory.records) == untimed(registered.records)


def test_run_bench_train_fn_sets_the_config_field():
    config = BenchConfig.build(**(TINY | {"seeds": 1}), model=make_mlp)
    result = run_bench(config, train_fn=sgd_epochs)
    assert result.config.train_fn == f"{__name__}:sgd_epochs"
    assert {r["stop_reason"] for r in result.records} == {"train_fn"}
    with pytest.raises(ActivewsError, match="give it in one place"):
        run_bench(config.replace(train_fn=sgd_epochs), train_fn=make_mlp)


def test_workers_run_a_factory_from_an_importable_module(user, tmp_path):
    config = BenchConfig.build(**TINY, model=f"{user}:make_mlp", train_fn=f"{user}:fit")
    serial = run_bench(config)
    parallel = run_bench(config, workers=2, output=tmp_path / "run")
    assert untimed(parallel.records) == untimed(serial.records)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["model"] == f"{user}:make_mlp" and stored["train_fn"] == f"{user}:fit"


def test_ray_tasks_need_the_module_importable_and_take_a_lambda(user, user_module, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    import importlib

    module = importlib.import_module(user)
    # Ray pickles with cloudpickle: a lambda travels by value (the module it calls, by name)
    values = TINY | {
        "seeds": 1,
        "model": f"{user}:make_mlp",
        "train_fn": lambda m, x, y, h: module.fit(m, x, y, h),
    }
    serial = run_bench(BenchConfig.build(**values))
    folder = tmp_path / "run"
    # Ray's workers do not see this process's sys.path, only its environment
    with pytest.raises(
        ActivewsError, match=rf"a worker process cannot load --model '{user}:make_mlp' .*PYTHONPATH"
    ):
        run_bench(BenchConfig.build(**values), executor="ray", workers=2, output=folder)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(user_module[0]), os.environ.get("PYTHONPATH")]))
    )
    result = run_bench(BenchConfig.build(**values), executor="ray", workers=2, output=folder)
    assert untimed(result.records) == untimed(serial.records)


@pytest.mark.parametrize("field", ["model", "train_fn"])
def test_a_lambda_with_workers_is_refused_before_data_loads(field, tmp_path, no_data_loads):
    values = {"model": lambda shape, classes: make_mlp(shape, classes)} if field == "model" else {}
    if field == "train_fn":
        values["train_fn"] = lambda model, x, y, hooks: {"steps": 0}
    config = BenchConfig.build(**TINY, **values)
    with pytest.raises(ActivewsError) as info:
        run_bench(config, workers=2, output=tmp_path / "run")
    message = str(info.value)
    assert "\n" not in message and "cannot be sent to worker processes (--workers 2)" in message
    assert "at module level in an importable module, not as a lambda or inside a function" in message
    assert not (tmp_path / "run").exists()


def test_a_lambda_runs_in_process_and_its_run_loads_without_it(tmp_path):
    config = BenchConfig.build(
        **(TINY | {"seeds": 1}), model=lambda s, c: make_mlp(s, c), train_fn=sgd_epochs
    )
    assert (
        config.model
        == f"{__name__}:test_a_lambda_runs_in_process_and_its_run_loads_without_it.<locals>.<lambda>"
    )
    result = run_bench(config, output=tmp_path / "run")
    assert result.config.model_factory is config.model_factory
    (loaded,) = load_results(tmp_path / "run")  # the store names the lambda; loading needs no import
    assert untimed(loaded.records) == untimed(result.records)
    with pytest.raises(ActivewsError, match="is recorded by name only .*pass the object itself again"):
        loaded.config.model_factory  # noqa: B018


class Interrupt(Exception):
    pass


def _interrupt_after(n):
    calls = {"n": 0}

    def progress(event):
        if event.kind == "round_end":
            calls["n"] += 1
            if calls["n"] == n:
                raise Interrupt

    return progress


def test_an_interrupted_run_resumes_and_equals_an_uninterrupted_one(user, tmp_path):
    values = TINY | {"model": f"{user}:make_mlp", "train_fn": f"{user}:fit"}
    reference = run_bench(BenchConfig.build(**values))
    folder = tmp_path / "run"
    with pytest.raises(Interrupt):
        run_bench(BenchConfig.build(**values), output=folder, progress=_interrupt_after(5))
    events = []
    resumed = run_bench(BenchConfig.build(**values), output=folder, progress=events.append)
    assert events[0].round == 5 and sum(e.kind == "round_end" for e in events) == 12 - 5
    assert untimed(resumed.records) == untimed(reference.records)
    assert comparable(resumed.summary) == comparable(reference.summary)
    # another factory is another config
    with pytest.raises(
        ActivewsError, match=rf"different config \(model: '{user}:make_mlp' -> '{user}:make_wider'\)"
    ):
        run_bench(BenchConfig.build(**(values | {"model": f"{user}:make_wider"})), output=folder)
    # the CLI resumes it from its recorded references (here: nothing left to run)
    assert main(["bench", "--resume", str(folder), "--workers", "1", "--quiet", "--no-plot"]) == 0


def test_a_lambda_run_resumes_in_process_and_another_architecture_is_refused(tmp_path):
    def values(hidden):
        return TINY | {"seeds": 1, "model": lambda s, c: make_mlp(s, c, hidden), "train_fn": sgd_epochs}

    reference = run_bench(BenchConfig.build(**values(6)))
    folder = tmp_path / "run"
    with pytest.raises(Interrupt):
        run_bench(BenchConfig.build(**values(6)), output=folder, progress=_interrupt_after(1))
    # the same qualified name but another architecture: the checkpoint does not fit it
    with pytest.raises(
        ActivewsError, match="holds another architecture than --model .*choose another --output"
    ):
        run_bench(BenchConfig.build(**values(7)), output=folder)
    resumed = run_bench(BenchConfig.build(**values(6)), output=folder)
    assert untimed(resumed.records) == untimed(reference.records)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        (
            "model",
            "no_such_module_xyz:make",
            r"--model 'no_such_module_xyz:make': no module named .*PYTHONPATH",
        ),
        ("model", "{user}:nope", r"has no attribute 'nope'; check the name"),
        ("model", "{user}:NOT_CALLABLE", r"is a int, not a callable"),
        ("model", "{user}:make mlp", r"not a reference of the form package.module:function"),
        ("model", "mpl", r"unknown model 'mpl'.*package.module:function"),
        ("train_fn", "{user}:nope", r"--train-fn '.*:nope': module .* has no attribute 'nope'"),
        ("train_fn", "fit", r"--train-fn 'fit' is not a reference .* write it like mypkg.train:fit"),
    ],
)
def test_bad_references_are_one_line_errors(user, field, value, match):
    with pytest.raises(ActivewsError, match=match) as info:
        BenchConfig.build(**{field: value.format(user=user)})
    assert "\n" not in str(info.value)


def test_a_factory_with_the_wrong_outputs_is_refused_before_training(no_data_loads):
    config = BenchConfig.build(**TINY, model=make_mlp, model_params={"hidden": 4, "extra": 1})
    with pytest.raises(
        ActivewsError, match=r"failed when called as factory\(\(40,\), 10, hidden=4, extra=1\)"
    ):
        run_bench(config, dataset=_dataset())
    config = BenchConfig.build(**TINY, model=lambda shape, classes: make_mlp(shape, 3))
    with pytest.raises(ActivewsError, match=r"output for one example is \(1, 3\); .* \(1, 10\)"):
        run_bench(config, dataset=_dataset())
    config = BenchConfig.build(**TINY, model=lambda shape, classes: "not a module")
    with pytest.raises(
        ActivewsError, match=r"returned str; it must return a torch.nn.Module \(a new one each call\)"
    ):
        run_bench(config, dataset=_dataset())


def _dataset():
    from activews.engine.setup import load_bench_dataset

    return load_bench_dataset(BenchConfig.build(**TINY))


def test_train_fn_and_counterfactual_or_grad_norms_are_refused():
    with pytest.raises(
        ActivewsError, match="--counterfactual trains its fresh models with activews' own loop"
    ):
        BenchConfig.build(train_fn=sgd_epochs, counterfactual=True)
    with pytest.raises(ActivewsError, match="grad_norms .* activews' own training"):
        BenchConfig.build(train_fn=sgd_epochs, diagnostics=["grad_norms"])


def test_cli_runs_a_factory_from_an_importable_module(user, tmp_path):
    folder = tmp_path / "run"
    argv = ["bench", *TINY_FLAGS, "--model", f"{user}:make_mlp", "--model-param", "hidden=5"]
    argv += ["--train-fn", f"{user}:fit", "--output", str(folder), "--workers", "1", "--quiet", "--no-plot"]
    assert main(argv) == 0
    stored = json.loads((folder / "config.json").read_text())
    assert (stored["model"], stored["model_params"], stored["train_fn"]) == (
        f"{user}:make_mlp",
        {"hidden": 5},
        f"{user}:fit",
    )
    records = json.loads((folder / "records.json").read_text())
    assert {r["stop_reason"] for r in records} == {"train_fn"} and len(records) == 12


@pytest.mark.parametrize(
    "argv",
    [
        ["--model", "no_such_module_xyz:make_cnn"],
        ["--model", "{user}:missing"],
        ["--train-fn", "{user}:NOT_CALLABLE"],
    ],
)
def test_cli_bad_references_exit_2(user, argv, tmp_path, capsys, no_data_loads):
    argv = [a.format(user=user) for a in argv]
    assert main(["bench", *TINY_FLAGS, *argv, "--output", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("activews: error: ") and "\n" not in err
    assert not (tmp_path / "run").exists()
