"""Registering user strategies, close-match errors, and the generic Registry (plugins included)."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest

import activews
from activews.cli import main
from activews.engine.bench import run_bench
from activews.engine.config import BenchConfig
from activews.errors import ActivewsError, UnknownNameError
from activews.registry import Registry
from activews.strategies import STRATEGIES, InitStrategy, get_strategy, list_strategies, register_strategy
from tests.helpers import USER_STRATEGY, assert_one_line

BUILTINS = {
    "partial_reset", "random", "reset_to_init", "shrink_perturb", "warm", "head_reset", "later_reset",
    "dash", "l2_init", "redo", "continual_backprop", "scheduled",
    "soft_shrink_perturb", "weight_clipping", "hare_tortoise", "l2",
}  # fmt: skip

# Passive, one seed, a narrow MLP: the smallest bench that still runs every arm through two rounds.
TINY = dict(
    dataset="mnist1d",
    n_examples=1000,
    rounds=2,
    initial=100,
    query_size=100,
    seeds=1,
    stream="passive",
    model_params={"hidden": [32]},
)
TINY_FLAGS = (
    "--stream passive --n-examples 1000 --rounds 2 --initial 100 --query-size 100 --seeds 1 "
    "--model-param hidden=[32] --quiet"
).split()


def test_builtins_are_registered():
    assert BUILTINS <= set(list_strategies())
    assert list_strategies() == sorted(list_strategies())
    for name in BUILTINS:
        assert get_strategy(name).name == name


def test_user_strategy_is_listed_and_found(user_strategy):
    assert USER_STRATEGY in list_strategies()
    assert get_strategy(USER_STRATEGY) is user_strategy
    assert user_strategy.name == USER_STRATEGY
    assert (
        activews.make_strategy(USER_STRATEGY, {"factor": 0.25}).describe() == f"{USER_STRATEGY}(factor=0.25)"
    )


def test_user_strategy_runs_in_bench_next_to_the_references(user_strategy):
    config = BenchConfig.build(**TINY, strategies=[USER_STRATEGY], params={USER_STRATEGY: {"factor": 0.9}})
    result = run_bench(config)
    assert [arm["strategy"] for arm in result.summary] == ["random", "warm", USER_STRATEGY]
    assert user_strategy.calls == [1]  # called once, for round 1 (round 0 is the initial draw)
    assert {r["strategy"] for r in result.records} == {"random", "warm", USER_STRATEGY}
    assert 0.0 < result.arm(USER_STRATEGY)["final_accuracy"] <= 1.0


def test_user_strategy_from_a_plugin_file_runs_on_the_cli(plugin_file, tmp_path, capsys):
    path, name = plugin_file
    out = tmp_path / "run"
    rc = main(["--plugin", path, "bench", "--strategy", name, *TINY_FLAGS, "--no-plot", "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    arms = json.loads((out / "summary.json").read_text())["arms"]
    assert [a["strategy"] for a in arms] == ["random", "warm", name]
    assert name in captured.out


def test_unknown_strategy_suggests_close_matches():
    with pytest.raises(UnknownNameError) as exc:
        get_strategy("shrink_perturbb")
    assert str(exc.value) == (
        "unknown strategy 'shrink_perturbb'; did you mean 'shrink_perturb' or 'soft_shrink_perturb'?"
    )
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, ActivewsError)


def test_unknown_strategy_without_close_match_lists_the_choices():
    with pytest.raises(UnknownNameError, match="choose one of: ") as exc:
        get_strategy("zzz")
    listed = str(exc.value).split("choose one of: ", 1)[1].split(", ")
    assert listed == sorted(list_strategies()) and {"warm", "random", "shrink_perturb"} <= set(listed)


def test_register_strategy_rejects_duplicates_and_non_strategies(user_strategy):
    class Other(InitStrategy):
        def init_round(self, model, ctx):
            return model

    with pytest.raises(ActivewsError, match="already registered; pick another name or pass overwrite=True"):
        register_strategy(USER_STRATEGY)(Other)
    assert get_strategy(USER_STRATEGY) is user_strategy
    assert register_strategy(USER_STRATEGY)(user_strategy) is user_strategy  # re-registering the same class
    register_strategy(USER_STRATEGY, overwrite=True)(Other)
    assert get_strategy(USER_STRATEGY) is Other
    with pytest.raises(ActivewsError, match="must decorate an InitStrategy subclass"):
        register_strategy("not_a_strategy")(object)
    assert "not_a_strategy" not in STRATEGIES


def test_unregister_cleans_up(user_strategy):
    STRATEGIES.unregister(USER_STRATEGY)
    assert USER_STRATEGY not in list_strategies()
    with pytest.raises(UnknownNameError):
        get_strategy(USER_STRATEGY)


# ------------------------------------------------------------------------------------- Registry itself


@pytest.fixture
def registry() -> Registry:
    reg: Registry[object] = Registry("widget", entry_point_group="activews.test_widgets")
    reg.register("alpha", 1)
    reg.register("beta")(2)
    return reg


def with_plugins(monkeypatch, reg: Registry, **values: str) -> None:
    """Make ``reg`` see entry points ``name=module:attr`` without installing anything."""
    eps = {
        name: EntryPoint(name=name, value=value, group=reg.entry_point_group)
        for name, value in values.items()
    }
    monkeypatch.setattr(reg, "_plugin_entry_points", lambda: eps)


def test_registry_register_get_names(registry):
    assert registry.get("alpha") == 1 and registry.get("beta") == 2
    assert registry.names() == ["alpha", "beta"]
    assert dict(registry.items()) == {"alpha": 1, "beta": 2}
    assert "alpha" in registry and "gamma" not in registry and 3 not in registry


@pytest.mark.parametrize("bad", ["has space", "1starts_with_digit", "", "dotted.name"])
def test_registry_rejects_invalid_names(registry, bad):
    with pytest.raises(ActivewsError, match="use a Python identifier"):
        registry.register(bad, 3)


def test_registry_duplicates_and_overwrite(registry):
    registry.register("alpha", 1)  # same object: no error
    with pytest.raises(ActivewsError, match="widget 'alpha' is already registered"):
        registry.register("alpha", 10)
    registry.register("alpha", 10, overwrite=True)
    assert registry.get("alpha") == 10
    registry.unregister("alpha")
    registry.unregister("never_there")  # no error
    assert registry.names() == ["beta"]


def test_registry_unknown_name_messages(registry):
    with pytest.raises(UnknownNameError) as exc:
        registry.get("alpa")
    assert str(exc.value) == "unknown widget 'alpa'; did you mean 'alpha'?"
    assert registry.unknown_message("zzz") == "unknown widget 'zzz'; choose one of: alpha, beta"


def test_registry_loads_working_plugins_lazily(registry, monkeypatch):
    with_plugins(monkeypatch, registry, dumps="json:dumps")
    assert registry.names() == ["alpha", "beta", "dumps"]
    assert "dumps" in registry
    assert registry.get("dumps") is json.dumps
    assert registry.get("dumps") is json.dumps  # cached after the first load


def test_registry_broken_plugin_fails_only_when_used(registry, monkeypatch):
    with_plugins(monkeypatch, registry, broken="nonexistent_mod_for_activews_tests:thing")
    assert "broken" in registry
    assert registry.names() == ["alpha", "beta", "broken"]
    assert registry.get("alpha") == 1  # other entries are unaffected
    with pytest.raises(ActivewsError) as exc:
        registry.get("broken")
    message = str(exc.value)
    assert_one_line(message)
    assert "widget plugin 'broken' (nonexistent_mod_for_activews_tests:thing) failed to load" in message
    assert "ModuleNotFoundError" in message and "fix or uninstall" in message


def test_registry_real_entry_point_scan_is_cached(monkeypatch):
    calls = []

    def fake_entry_points(group):
        calls.append(group)
        return [EntryPoint(name="dumps", value="json:dumps", group=group)]

    monkeypatch.setattr("activews.registry.metadata.entry_points", fake_entry_points)
    reg: Registry[object] = Registry("widget", entry_point_group="activews.test_widgets")
    assert reg.names() == ["dumps"] and "dumps" in reg
    assert calls == ["activews.test_widgets"]
    assert Registry("widget").names() == []  # no group: no scan


def test_broken_strategy_plugin_does_not_break_other_runs(monkeypatch):
    eps = {
        "broken_plugin": EntryPoint(
            name="broken_plugin", value="nonexistent_mod_for_activews_tests:S", group="activews.strategies"
        )
    }
    monkeypatch.setattr(STRATEGIES, "_plugins", eps)
    assert "broken_plugin" in list_strategies()
    BenchConfig.build(strategies=["shrink_perturb"])  # a run that does not use it is fine
    with pytest.raises(ActivewsError, match="strategy plugin 'broken_plugin' .* failed to load") as exc:
        BenchConfig.build(strategies=["broken_plugin"])
    assert_one_line(str(exc.value))
