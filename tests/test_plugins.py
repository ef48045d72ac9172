"""Plugins from installed packages: entry points, loaded lazily, checked, broken ones failing only when used.

The unit tests build fake distributions on disk in the real installed format (a folder on ``sys.path``
holding ``<name>-<version>.dist-info/METADATA`` and ``entry_points.txt``, and the modules), so
``importlib.metadata`` finds them exactly as it finds an installed package. The end-to-end test
installs ``examples/activews-plugin-example`` with pip into a folder and runs the CLI on it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from activews.cli import main
from activews.engine.config import BenchConfig
from activews.errors import ActivewsError
from activews.models import MODELS, build_model
from activews.models.base import ModelSpec
from activews.strategies import STRATEGIES, get_strategy, list_strategies, make_strategy
from activews.strategies.warm import Warm
from activews.streams import ACQUISITIONS, make_acquisition
from tests.helpers import assert_one_line

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "activews-plugin-example"
S, A = "activews.strategies", "activews.acquisitions"

STRATEGY_SOURCE = '''
from pydantic import Field

from activews.strategies import InitStrategy


class Scale(InitStrategy):
    """Scale every weight by ``factor`` (a plugin from an installed package)."""

    class Params(InitStrategy.Params):
        factor: float = Field(0.5, gt=0, le=1)

    reference = "none (a test plugin)"

    def init_round(self, model, ctx):
        for p in model.parameters():
            p.data.mul_(self.params.factor)
        return model


def not_a_class(model, ctx):
    return model


class NotAStrategy:
    pass


class NoInitRound(InitStrategy):
    pass
'''

ACQUISITION_SOURCE = '''
import torch
from pydantic import Field

from activews.streams.acquisition import ScoringSelector


def top_class(probs, *, generator=None):
    """Probability of class 0 (a row-wise test plugin)."""
    return probs[:, 0]


def wrong_signature(probs, temperature):
    return probs[:, 0]


class Noisy(ScoringSelector):
    """Uniform noise scores (a selector test plugin)."""

    class Params(ScoringSelector.Params):
        scale: float = Field(1.0, gt=0)

    def score(self, view, idx, generator):
        return torch.rand(len(view(idx)), generator=generator) * self.params.scale


CONSTANT = 3
'''


def broken_source(marker: Path) -> str:
    """A module that records each import in ``marker``, then fails."""
    return f"from pathlib import Path\nPath({str(marker)!r}).open('a').write('imported\\n')\nraise RuntimeError('boom at import')\n"


@dataclass
class FakeSite:
    """A folder on ``sys.path`` in which :meth:`dist` writes installed distributions."""

    path: Path
    modules: list[str] = field(default_factory=list)

    def dist(
        self, name: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str] | None = None
    ) -> None:
        info = self.path / f"{name.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        lines = []
        for group, eps in entry_points.items():
            lines += [f"[{group}]", *(f"{k} = {v}" for k, v in eps.items()), ""]
        (info / "entry_points.txt").write_text("\n".join(lines))
        for module, source in (modules or {}).items():
            (self.path / f"{module}.py").write_text(textwrap.dedent(source))
            self.modules.append(module)


def refresh() -> None:
    STRATEGIES.refresh_plugins()
    ACQUISITIONS.refresh_plugins()


@pytest.fixture
def site(tmp_path, monkeypatch):
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    fake = FakeSite(folder)
    refresh()
    try:
        yield fake
    finally:
        refresh()
        for module in fake.modules:
            sys.modules.pop(module, None)


# ------------------------------------------------------------------------------------------ strategies


def test_entry_point_strategy_is_loaded_lazily_and_checked(site):
    site.dist(
        "awtest-good", {S: {"awtest_scale": "awtest_good_mod:Scale"}}, {"awtest_good_mod": STRATEGY_SOURCE}
    )
    assert "awtest_scale" in STRATEGIES and "awtest_scale" in list_strategies()
    assert "awtest_good_mod" not in sys.modules  # listed and found without importing it
    assert STRATEGIES.plugin_source("awtest_scale") == "awtest-good 1.0"
    cls = get_strategy("awtest_scale")
    assert "awtest_good_mod" in sys.modules
    assert cls.__name__ == "Scale" and cls.name == "awtest_scale"  # the entry point's name
    assert make_strategy("awtest_scale", {"factor": 0.25}).describe() == "awtest_scale(factor=0.25)"
    assert get_strategy("awtest_scale") is cls
    config = BenchConfig.build(strategies=["awtest_scale"], params={"awtest_scale": {"factor": 0.5}})
    assert "awtest_scale" in config.strategy_names
    with pytest.raises(ActivewsError, match="factor: Input should be greater than 0"):
        BenchConfig.build(strategies=["awtest_scale"], params={"awtest_scale": {"factor": 0}})
    assert STRATEGIES.plugin_source("warm") is None


def test_refresh_forgets_loaded_plugins(site):
    site.dist(
        "awtest-good", {S: {"awtest_scale": "awtest_good_mod:Scale"}}, {"awtest_good_mod": STRATEGY_SOURCE}
    )
    get_strategy("awtest_scale")
    STRATEGIES.refresh_plugins()
    assert "awtest_scale" not in STRATEGIES._entries
    assert get_strategy("awtest_scale").name == "awtest_scale"  # scanned and loaded again


def test_builtin_lookups_import_no_plugin(site, tmp_path):
    marker = tmp_path / "imported.txt"
    site.dist(
        "awtest-broken",
        {S: {"awtest_broken": "awtest_broken_mod:S"}},
        {"awtest_broken_mod": broken_source(marker)},
    )
    site.dist("awtest-broken-acq", {A: {"awtest_broken_acq": "awtest_broken_mod:f"}})
    get_strategy("warm")
    make_acquisition("margin")
    BenchConfig.build(strategies=["shrink_perturb"], stream="active", acquisition="entropy")
    assert "awtest_broken" in list_strategies()  # listing names imports nothing either
    assert not marker.exists()


def test_importing_activews_imports_no_plugin(site, tmp_path):
    """In a fresh process: importing activews and using built-in names never imports a plugin module."""
    marker = tmp_path / "imported.txt"
    site.dist(
        "awtest-broken",
        {S: {"awtest_broken": "awtest_broken_mod:S"}, A: {"awtest_broken": "awtest_broken_mod:f"}},
        {"awtest_broken_mod": broken_source(marker)},
    )
    code = (
        "import activews\n"
        "from activews.streams import make_acquisition\n"
        "activews.get_strategy('warm'); make_acquisition('margin')\n"
        "activews.BenchConfig.build(strategies=['shrink_perturb'], stream='active', acquisition='entropy')\n"
        "assert 'awtest_broken' in activews.list_strategies()\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site.path), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_broken_strategy_plugin_fails_only_when_used(site, tmp_path):
    marker = tmp_path / "imported.txt"
    site.dist(
        "awtest-broken",
        {S: {"awtest_broken": "awtest_broken_mod:S"}},
        {"awtest_broken_mod": broken_source(marker)},
    )
    with pytest.raises(ActivewsError) as exc:
        get_strategy("awtest_broken")
    message = str(exc.value)
    assert_one_line(message)
    assert message == (
        "strategy plugin 'awtest_broken' (awtest_broken_mod:S, from package awtest-broken 1.0) failed to load: "
        "RuntimeError: boom at import; fix or uninstall the package that provides it (pip uninstall awtest-broken)"
    )
    with pytest.raises(ActivewsError) as again:  # the same error, without importing the module again
        BenchConfig.build(strategies=["awtest_broken"])
    assert str(again.value) == message
    assert marker.read_text() == "imported\n"
    assert "awtest_broken" not in STRATEGIES._entries
    BenchConfig.build(strategies=["shrink_perturb"])  # runs that do not use it are unaffected


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("not_a_class", "it is function not_a_class, not an InitStrategy subclass"),
        ("NotAStrategy", "it is class NotAStrategy, not an InitStrategy subclass"),
        ("NoInitRound", "class NoInitRound does not implement init_round"),
        ("Field", "it is function Field, not an InitStrategy subclass"),
    ],
)
def test_entry_point_that_is_not_a_strategy_fails_when_used(site, target, reason):
    site.dist(
        "awtest-bad", {S: {"awtest_bad": f"awtest_bad_mod:{target}"}}, {"awtest_bad_mod": STRATEGY_SOURCE}
    )
    with pytest.raises(ActivewsError) as exc:
        get_strategy("awtest_bad")
    assert_one_line(str(exc.value))
    assert str(exc.value) == (
        f"strategy plugin 'awtest_bad' (awtest_bad_mod:{target}, from package awtest-bad 1.0) is not a valid "
        f"strategy: {reason}; fix the entry point in the package's pyproject.toml or uninstall it "
        f"(pip uninstall awtest-bad)"
    )


def test_decorated_plugin_must_use_the_entry_point_name(site):
    decorated = (
        "from activews.strategies import InitStrategy, register_strategy\n\n"
        "@register_strategy({name!r})\n"
        "class Keep(InitStrategy):\n"
        "    def init_round(self, model, ctx):\n"
        "        return model\n"
    )
    site.dist(
        "awtest-deco",
        {S: {"awtest_same": "awtest_same_mod:Keep", "awtest_other": "awtest_other_mod:Keep"}},
        {
            "awtest_same_mod": decorated.format(name="awtest_same"),
            "awtest_other_mod": decorated.format(name="awtest_elsewhere"),
        },
    )
    try:
        assert get_strategy("awtest_same").name == "awtest_same"  # decorator and entry point agree
        with pytest.raises(
            ActivewsError, match="class Keep is registered as 'awtest_elsewhere'; name the entry"
        ):
            get_strategy("awtest_other")
    finally:
        STRATEGIES.unregister("awtest_elsewhere")


def test_builtin_names_win_over_plugins(site, caplog):
    site.dist(
        "awtest-shadow", {S: {"warm": "awtest_shadow_mod:Scale"}}, {"awtest_shadow_mod": STRATEGY_SOURCE}
    )
    assert get_strategy("warm") is Warm  # no scan at all for a built-in name
    with caplog.at_level(logging.WARNING, logger="activews.registry"):
        assert list_strategies().count("warm") == 1
    assert get_strategy("warm") is Warm and "awtest_shadow_mod" not in sys.modules
    assert STRATEGIES.plugin_source("warm") is None
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning == (
        "ignoring strategy plugin 'warm' (awtest_shadow_mod:Scale, from package awtest-shadow 1.0): 'warm' is "
        "already registered (built in, or loaded in this process), which takes precedence; rename the entry point"
    )


def test_two_packages_declaring_one_name_is_an_error_when_used(site):
    site.dist("awtest-one", {S: {"awtest_dup": "awtest_one_mod:Scale"}}, {"awtest_one_mod": STRATEGY_SOURCE})
    site.dist("awtest-two", {S: {"awtest_dup": "awtest_two_mod:Scale"}}, {"awtest_two_mod": STRATEGY_SOURCE})
    site.dist("awtest-three", {S: {"awtest_same": "awtest_one_mod:Scale"}})
    site.dist("awtest-four", {S: {"awtest_same": "awtest_one_mod:Scale"}})  # same target: no conflict
    assert list_strategies().count("awtest_dup") == 1
    with pytest.raises(ActivewsError) as exc:
        get_strategy("awtest_dup")
    assert_one_line(str(exc.value))
    assert str(exc.value).startswith(
        "strategy plugin 'awtest_dup' is declared by several installed packages: "
    )
    assert "awtest-one 1.0 (awtest_one_mod:Scale)" in str(exc.value)
    assert "awtest-two 1.0 (awtest_two_mod:Scale)" in str(exc.value)
    assert str(exc.value).endswith("; uninstall all but one of them")
    assert "awtest_one_mod" not in sys.modules and "awtest_two_mod" not in sys.modules
    assert get_strategy("awtest_same").__name__ == "Scale"


# ---------------------------------------------------------------------------------------- acquisitions


def test_entry_point_acquisitions_function_and_selector(site):
    site.dist(
        "awtest-acq",
        {A: {"awtest_top": "awtest_acq_mod:top_class", "awtest_noisy": "awtest_acq_mod:Noisy"}},
        {"awtest_acq_mod": ACQUISITION_SOURCE},
    )
    assert {"awtest_top", "awtest_noisy"} <= set(ACQUISITIONS.names())
    assert "awtest_acq_mod" not in sys.modules
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    top = make_acquisition("awtest_top")
    assert top.describe() == "awtest_top"
    chosen = top.select(
        lambda idx: probs[idx], torch.arange(3), torch.empty(0, dtype=torch.long), 2, torch.Generator()
    )
    assert chosen.tolist() == [0, 2]
    noisy = make_acquisition("awtest_noisy", {"scale": 2.0})
    assert type(noisy).name == "awtest_noisy" and noisy.describe() == "awtest_noisy(scale=2.0)"
    with pytest.raises(
        ActivewsError, match="acquisition 'awtest_noisy': scale: Input should be greater than 0"
    ):
        make_acquisition("awtest_noisy", {"scale": -1})
    config = BenchConfig.build(stream="active", acquisition="awtest_noisy", acquisition_params={"scale": 3})
    assert config.acquisition == "awtest_noisy"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (
            "wrong_signature",
            "function wrong_signature(probs, temperature) cannot be called as f(probs, *, generator=None)",
        ),
        ("CONSTANT", "it is an object of type int, not a function f(probs, *, generator) or a BatchSelector"),
        ("torch", "it is module torch, not a function f(probs, *, generator) or a BatchSelector"),
    ],
)
def test_entry_point_that_is_not_an_acquisition_fails_when_used(site, target, reason):
    site.dist(
        "awtest-badacq",
        {A: {"awtest_badacq": f"awtest_badacq_mod:{target}"}},
        {"awtest_badacq_mod": ACQUISITION_SOURCE},
    )
    with pytest.raises(ActivewsError) as exc:
        BenchConfig.build(stream="active", acquisition="awtest_badacq")
    assert_one_line(str(exc.value))
    assert str(exc.value) == (
        f"acquisition plugin 'awtest_badacq' (awtest_badacq_mod:{target}, from package awtest-badacq 1.0) is not "
        f"a valid acquisition: {reason}; fix the entry point in the package's pyproject.toml or uninstall it "
        f"(pip uninstall awtest-badacq)"
    )


def test_batch_selector_base_classes_are_rejected(site):
    site.dist(
        "awtest-base",
        {
            A: {
                "awtest_base": "activews.streams.acquisition:BatchSelector",
                "awtest_rowwise": "activews.streams.acquisition:RowWise",
            }
        },
    )
    with pytest.raises(
        ActivewsError, match="is not a valid acquisition: class BatchSelector does not implement select"
    ):
        ACQUISITIONS.get("awtest_base")
    with pytest.raises(ActivewsError, match="it is class RowWise, not a BatchSelector subclass"):
        ACQUISITIONS.get("awtest_rowwise")


# ------------------------------------------------------------------------------------ models, datasets


def test_model_plugin_keeps_what_its_decorator_registered(site):
    source = (
        "from torch import nn\n"
        "from activews import register_model\n\n"
        "@register_model('awtest_linear')\n"
        "def linear(input_shape, num_classes, params):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes))\n"
    )
    site.dist(
        "awtest-model",
        {"activews.models": {"awtest_linear": "awtest_model_mod:linear"}},
        {"awtest_model_mod": source},
    )
    MODELS.refresh_plugins()
    try:
        assert isinstance(MODELS.get("awtest_linear"), ModelSpec)  # not the bare builder function
        assert build_model("awtest_linear", (4,), 3, {}, seed=0)(torch.zeros(2, 4)).shape == (2, 3)
    finally:
        MODELS.unregister("awtest_linear")
        MODELS.refresh_plugins()


# ------------------------------------------------------------------------------------------------- CLI


def test_listings_show_broken_plugins_instead_of_crashing(site, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # table cells on one line each
    marker = tmp_path / "imported.txt"
    site.dist(
        "awtest-mixed",
        {
            S: {"awtest_scale": "awtest_good_mod:Scale", "awtest_broken": "awtest_broken_mod:S"},
            A: {"awtest_top": "awtest_acq_mod:top_class", "awtest_broken_acq": "awtest_broken_mod:f"},
        },
        {
            "awtest_good_mod": STRATEGY_SOURCE,
            "awtest_acq_mod": ACQUISITION_SOURCE,
            "awtest_broken_mod": broken_source(marker),
        },
    )
    assert main(["strategies", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["awtest_scale"]["plugin"] == "awtest-mixed 1.0" and "error" not in rows["awtest_scale"]
    assert rows["awtest_scale"]["parameters"]["factor"]["constraints"] == ["> 0", "<= 1"]
    assert rows["warm"]["plugin"] is None
    broken = rows["awtest_broken"]
    assert broken["error"].startswith("strategy plugin 'awtest_broken' (awtest_broken_mod:S, from package")
    assert broken["summary"] == f"failed to load: {broken['error']}"

    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "awtest_scale" in out and "failed to load" in out and "from plugin package awtest-mixed 1.0" in out

    assert main(["acquisitions", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["awtest_top"] | {"summary": ""} == {
        "name": "awtest_top",
        "kind": "function",
        "parameters": {},
        "summary": "",
        "reference": "",
        "plugin": "awtest-mixed 1.0",
    }
    assert rows["awtest_broken_acq"]["summary"].startswith(
        "failed to load: acquisition plugin 'awtest_broken_acq'"
    )
    assert rows["margin"]["kind"] == "function" and "Scheffer" in rows["margin"]["reference"]
    assert rows["bald"]["kind"] == "selector" and rows["bald"]["parameters"]["samples"]["default"] == 20
    assert main(["acquisitions"]) == 0
    assert "failed to load" in capsys.readouterr().out


def test_cli_error_for_a_broken_plugin_is_one_line(site, tmp_path, capsys):
    site.dist(
        "awtest-broken",
        {S: {"awtest_broken": "awtest_broken_mod:S"}},
        {"awtest_broken_mod": broken_source(tmp_path / "m")},
    )
    assert main(["bench", "--strategy", "awtest_broken", "--quiet", "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [err.strip()]
    assert err.startswith(
        "activews: error: strategy plugin 'awtest_broken' (awtest_broken_mod:S, from package "
    )
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------- installed example


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Path:
    """``examples/activews-plugin-example`` installed by pip into a folder (offline: no index, no deps, the
    environment's setuptools as build backend); put the folder on ``PYTHONPATH`` to use it."""
    work = tmp_path_factory.mktemp("plugin-example")
    source = work / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = work / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["--no-cache-dir", "--disable-pip-version-check", "--quiet", "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "activews_plugin_example" / "strategy.py").is_file()
    return target


def run_cli(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "activews", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_installed_plugin_package_is_usable_by_name_on_the_cli(installed_example, tmp_path):
    listed = run_cli(installed_example, "strategies", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = {r["name"]: r for r in json.loads(listed.stdout)}["norm_to_init"]
    assert row["plugin"] == "activews-plugin-example 0.1.0"
    assert row["parameters"]["mix"]["constraints"] == [">= 0.0", "<= 1.0"] and "Lyle" in row["reference"]
    listed = run_cli(installed_example, "acquisitions", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    row = {r["name"]: r for r in json.loads(listed.stdout)}["stochastic_power"]
    assert row["kind"] == "selector" and row["plugin"] == "activews-plugin-example 0.1.0"

    out = tmp_path / "run"
    done = run_cli(
        installed_example,
        *("bench", "--strategy", "norm_to_init", "--param", "norm_to_init.mix=0.5"),
        *("--stream", "active", "--acquisition", "stochastic_power", "--acquisition-param", "beta=2"),
        *("--n-examples", "1000", "--rounds", "2", "--initial", "100", "--query-size", "100", "--seeds", "1"),
        *("--model-param", "hidden=[32]", "--max-epochs", "5", "--quiet", "--no-plot", "--output", str(out)),
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert [a["strategy"] for a in summary["arms"]] == ["random", "warm", "norm_to_init"]
    assert 0.0 < summary["arms"][2]["final_accuracy"] <= 1.0
    config = json.dumps(summary)
    assert '"stochastic_power"' in config and '"beta": 2' in config

    bad = run_cli(
        installed_example,
        "bench",
        "--acquisition",
        "stochastic_power",
        "--acquisition-param",
        "beta=0",
        cwd=tmp_path,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "activews: error: acquisition 'stochastic_power': beta: Input should be greater than 0 (got 0)"
    )
