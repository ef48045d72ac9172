"""Search spaces (``activews.params.Tune``): what a declaration may hold, how ``search_space`` reads it,
the check when a strategy registers, what ``activews strategies`` shows, and the built-ins' spaces
against the table in docs/strategies.md."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Annotated, Literal, Optional

import pytest
from pydantic import Field
from torch import nn

from activews.cli.main import main
from activews.errors import ActivewsError
from activews.params import FrozenParams, Tune, check_search_space, search_space
from activews.strategies import STRATEGIES, InitContext, InitStrategy, get_strategy, register_strategy
from tests.helpers import assert_one_line

DOC = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"


def builtin_strategies() -> list[str]:
    """The strategies activews itself registers (not plugins or strategies a test left behind)."""
    return sorted(n for n, cls in STRATEGIES.items() if cls.__module__.startswith("activews.strategies."))


# ------------------------------------------------------------------------------------------------ Tune


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Tune(1.0, 0.0), "low 1.0 must be below high 0.0"),
        (lambda: Tune(0.5, 0.5), "low 0.5 must be below high 0.5"),
        (lambda: Tune(0.0, 1.0, log=True), r"Tune\(log=True\) needs low > 0, got 0.0"),
        (lambda: Tune(-1e-3, 1.0, log=True), r"needs low > 0, got -0.001"),
        (lambda: Tune(choices=()), "needs a non-empty tuple"),
        (lambda: Tune(choices=["a", "b"]), "needs a non-empty tuple"),  # a list, not a tuple
        (lambda: Tune(choices=(object(),)), "choices are strings, numbers, booleans or None"),
        (lambda: Tune(0.0, 1.0, choices=("a",)), "either choices= or a low/high range, not both"),
        (lambda: Tune(log=True, choices=("a",)), "not both"),
        (lambda: Tune(0.0, math.inf), "high must be a finite number, got inf"),
        (lambda: Tune(math.nan, 1.0), "low must be a finite number, got nan"),
        (lambda: Tune(0.0), "high must be a finite number, got None"),
        (lambda: Tune(False, 1.0), "low must be a finite number, got False"),
        (lambda: Tune("0", "1"), "low must be a finite number"),
    ],
)
def test_a_bad_tune_is_a_one_line_error(build, match):
    with pytest.raises(ActivewsError, match=match) as exc:
        build()
    assert_one_line(str(exc.value))


def test_good_tunes_and_how_they_read():
    assert Tune(0.0, 1.0).describe() == "uniform [0, 1]"
    assert Tune(1e-5, 1e-1, log=True).describe() == "log-uniform [1e-05, 0.1]"
    assert Tune(choices=("a", None, 3)).describe() == "one of a, None, 3"
    assert Tune(1e-5, 1e-1, log=True).to_dict() == {"low": 1e-5, "high": 1e-1, "log": True, "integer": False}
    assert Tune(choices=("a", "b")).to_dict() == {"choices": ["a", "b"]}
    assert Tune(off=True).off  # nothing else needed to switch a space off


# ------------------------------------------------------------------------------------------ search_space


class Spaces(FrozenParams):
    count: Annotated[int, Tune(1, 10)] = Field(2, ge=1)
    period: Annotated[int | None, Tune(10, 1000, log=True)] = Field(100, ge=1)
    legacy: Annotated[Optional[int], Tune(1, 3)] = 2  # noqa: UP045 (Optional, as older code writes it)
    rate: Annotated[float, Tune(1.0, 10.0)] = 2.0
    either: Annotated[int | float, Tune(1, 10)] = 2
    mode: Annotated[Literal["a", "b"], Tune(choices=("a", "b"))] = "a"
    held: int = 3


def test_search_space_reads_declarations_in_field_order_and_detects_ints():
    space = search_space(Spaces)
    assert list(space) == ["count", "period", "legacy", "rate", "either", "mode"]  # held has no Tune
    assert {k: t.integer for k, t in space.items()} == {
        "count": True,
        "period": True,  # int | None
        "legacy": True,  # Optional[int]
        "rate": False,
        "either": False,  # int | float holds fractions
        "mode": False,  # choices are taken as they are
    }
    assert space["count"].describe() == "int [1, 10]"
    assert space["period"].describe() == "log-int [10, 1000]"
    assert space["period"].to_dict() == {"low": 10, "high": 1000, "log": True, "integer": True}
    assert search_space(FrozenParams) == {}


def test_subclasses_inherit_change_and_switch_off_spaces():
    class Changed(Spaces):
        rate: Annotated[float, Tune(2.0, 4.0, log=True)] = 2.0
        count: Annotated[int, Tune(off=True)] = Field(2, ge=1)
        extra: Annotated[float, Tune(0.0, 1.0)] = 0.5

    class Redeclared(Spaces):
        period: int | None = Field(100, ge=1)  # a new declaration without Tune replaces the whole field

    space = search_space(Changed)
    assert "count" not in space
    assert space["rate"] == Tune(2.0, 4.0, log=True)
    assert set(space) == {"period", "legacy", "rate", "either", "mode", "extra"}  # the rest inherited
    assert "period" not in search_space(Redeclared) and "count" in search_space(Redeclared)


def test_a_builtin_subclass_can_switch_a_space_off():
    parent = get_strategy("shrink_perturb")

    class ShrinkOnly(parent):  # not registered: only its Params are read
        class Params(parent.Params):
            perturb: Annotated[float, Tune(off=True)] = Field(0.0, ge=0.0)

    assert list(search_space(ShrinkOnly.Params)) == ["shrink"]
    assert list(search_space(parent.Params)) == ["shrink", "perturb"]  # the parent is left alone


def test_check_search_space_refuses_fractional_ends_of_an_int_field():
    class Fractional(FrozenParams):
        count: Annotated[int, Tune(1.5, 4)] = 2

    with pytest.raises(
        ActivewsError, match=r"'count' \(int \[1\.5, 4\]\) must have whole-number ends"
    ) as exc:
        check_search_space(Fractional, "strategy 'probe'")
    assert_one_line(str(exc.value))


# ------------------------------------------------------------------------------------------ registration


def _strategy(params: type[InitStrategy.Params]) -> type[InitStrategy]:
    class Probe(InitStrategy):
        """Keep the weights (a throwaway test strategy)."""

        Params = params
        reference = "none (a test strategy)"
        batchnorm = "kept"

        def init_round(self, model: nn.Module, ctx: InitContext) -> nn.Module:
            return model

    return Probe


@pytest.fixture
def registered() -> list[str]:
    """Names a test registers; unregistered after it, whether or not the registration went through."""
    names: list[str] = []
    yield names
    for name in names:
        if name in STRATEGIES:
            STRATEGIES.unregister(name)


@pytest.mark.parametrize(
    ("field", "declaration", "match"),
    [
        ("factor", (Annotated[float, Tune(0.0, 2.0)], Field(0.5, ge=0.0, le=1.0)), r"holds 2\.0"),
        ("lam", (Annotated[float, Tune(0.0, 1.0)], Field(0.5, gt=0.0)), r"holds 0\.0"),
        ("every", (Annotated[int, Tune(0, 10)], Field(5, ge=1)), r"holds 0,"),
        ("mode", (Annotated[Literal["a", "b"], Tune(choices=("a", "c"))], "a"), r"holds 'c'"),
    ],
)
def test_registering_a_space_outside_its_field_is_a_one_line_error(registered, field, declaration, match):
    annotation, default = declaration
    params = type("Params", (InitStrategy.Params,), {"__annotations__": {field: annotation}, field: default})
    registered.append("search_space_probe")
    with pytest.raises(ActivewsError) as exc:
        register_strategy("search_space_probe")(_strategy(params))
    message = str(exc.value)
    assert_one_line(message)
    assert message.startswith(f"strategy 'search_space_probe': the search space of {field!r}"), message
    assert re.search(match, message), message
    assert "search_space_probe" not in STRATEGIES


def test_registering_a_space_within_its_field_works_and_is_listed(registered, capsys):
    class Params(InitStrategy.Params):
        factor: Annotated[float, Tune(0.1, 1.0, log=True)] = Field(0.5, gt=0.0, le=1.0)
        steps: Annotated[int, Tune(1, 8)] = Field(2, ge=1)

    registered.append("search_space_probe")
    register_strategy("search_space_probe")(_strategy(Params))
    assert main(["strategies", "--json"]) == 0
    row = {r["name"]: r for r in json.loads(capsys.readouterr().out)}["search_space_probe"]
    assert row["search_space"] == {
        "factor": {"low": 0.1, "high": 1.0, "log": True, "integer": False},
        "steps": {"low": 1, "high": 8, "log": False, "integer": True},
    }


# ------------------------------------------------------------------------------------------- the listing


def test_strategies_json_gives_each_search_space(capsys):
    assert main(["strategies", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["shrink_perturb"]["search_space"] == {
        "shrink": {"low": 0.0, "high": 1.0, "log": False, "integer": False},
        "perturb": {"low": 0.001, "high": 1.0, "log": True, "integer": False},
    }
    assert rows["partial_reset"]["search_space"] == {
        "last": {"low": 1, "high": 2, "log": False, "integer": True}
    }
    assert rows["hare_tortoise"]["search_space"]["reset_every"] == {"choices": [0, 100, 300, 1000]}
    assert rows["warm"]["search_space"] == {}
    for name in builtin_strategies():
        expected = {k: t.to_dict() for k, t in search_space(get_strategy(name).Params).items()}
        assert rows[name]["search_space"] == expected, name
        assert "space" not in rows[name] and "params" not in rows[name]  # the table's text stays out


def test_strategies_table_shows_each_search_space(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # wide enough that no cell wraps
    assert main(["strategies"]) == 0
    out = capsys.readouterr().out
    assert "search space" in out.splitlines()[2]  # the header row
    lines = {
        name: next(line for line in out.splitlines() if line.startswith(f"│ {name} "))
        for name in builtin_strategies()
    }
    assert "shrink: uniform [0, 1]" in lines["shrink_perturb"]
    assert "perturb: log-uniform [0.001, 1]" in out
    assert "every: int [2, 8]" in lines["scheduled"]
    for name in ("warm", "random", "reset_to_init", "head_reset"):
        cells = [c.strip() for c in lines[name].split("│")]
        assert cells[2:4] == ["-", "-"], cells  # no parameters, no search space


# ----------------------------------------------------------------------------- the built-ins and the docs


def documented_spaces() -> dict[str, dict[str, str]]:
    """The "Search spaces" table of docs/strategies.md: strategy -> parameter -> the space as shown."""
    section = DOC.read_text().split("## Search spaces", 1)[1].split("\n## ", 1)[0]
    table: dict[str, dict[str, str]] = {}
    for name, field, space in re.findall(r"^\| `(\w+)` \| `(\w+)` \| ([^|]+?) \|", section, flags=re.M):
        table.setdefault(name, {})[field] = space
    return table


def test_the_docs_table_lists_exactly_the_declared_spaces():
    documented = documented_spaces()
    assert documented, "docs/strategies.md has no 'Search spaces' table"
    declared = {
        name: {k: t.describe() for k, t in search_space(get_strategy(name).Params).items()}
        for name in builtin_strategies()
    }
    assert documented == {name: space for name, space in declared.items() if space}


@pytest.mark.parametrize("name", sorted(documented_spaces()))
def test_every_strategy_the_docs_call_tunable_declares_a_space(name):
    assert name in builtin_strategies()
    assert search_space(get_strategy(name).Params), name


def test_only_the_parameterless_builtins_declare_nothing():
    untuned = {name for name in builtin_strategies() if not search_space(get_strategy(name).Params)}
    assert untuned == {"warm", "random", "reset_to_init", "head_reset"}
