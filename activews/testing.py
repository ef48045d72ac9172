"""Contract checks for strategies and acquisition functions, shipped for plugin authors.

The idea is scikit-learn's ``check_estimator``: one call runs every rule the built-in strategies (or
acquisitions) keep on your class, and the first broken rule raises :class:`ContractError` (an
``AssertionError``) with one line that names the check and the fix::

    from activews.testing import check_strategy, check_acquisition

    check_strategy(MyStrategy)                  # or a registered name: check_strategy("my_strategy")
    check_strategy(MyStrategy, {"alpha": 0.2})  # behaviour checks with these parameters
    check_acquisition(my_score)                 # a row-wise function, a BatchSelector subclass or a name

In a pytest suite, :func:`strategy_checks` and :func:`acquisition_checks` give one ``pytest.param`` per
check, so that each check passes or fails as its own test::

    import pytest
    from activews.testing import strategy_checks

    @pytest.mark.parametrize("check", strategy_checks(MyStrategy))
    def test_contract(check):
        check()

Every check is also a public function (``check_deterministic(MyStrategy)``); :data:`STRATEGY_CHECKS`
and :data:`ACQUISITION_CHECKS` list them in the order they run. The checks run on the CPU, on tiny
models (an MLP and a small CNN with BatchNorm) and a few short rounds: seconds for a whole class.
The module imports only the domain layer (strategies, streams, models, training), and pytest only
inside the two pytest helpers.
"""

from __future__ import annotations

import copy
import functools
import inspect
import io
import random as _pyrandom
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel
from torch import nn

from activews.errors import ActivewsError
from activews.models import build_model
from activews.params import Tune, check_search_space, search_space
from activews.strategies import NEEDS, InitContext, InitStrategy, get_strategy, training_hooks
from activews.streams import BatchSelector, ModelView, ScoringSelector, get_acquisition
from activews.streams.acquisition import RowWise
from activews.training import TrainConfig, train_to_criterion

__all__ = [
    "ContractError",
    "Check",
    "check_strategy",
    "check_acquisition",
    "strategy_checks",
    "acquisition_checks",
    "STRATEGY_CHECKS",
    "ACQUISITION_CHECKS",
    "TEST_MODELS",
    "DEFAULT_MODELS",
    # the strategy checks, in the order check_strategy runs them
    "check_strategy_class",
    "check_docstring",
    "check_reference",
    "check_default_params",
    "check_params_frozen",
    "check_unknown_params_rejected",
    "check_invalid_params_rejected",
    "check_params_object_or_keywords",
    "check_describe",
    "check_returns_module",
    "check_keeps_architecture",
    "check_finite",
    "check_batchnorm",
    "check_training_hooks",
    "check_deterministic",
    "check_randomness_from_ctx",
    "check_initial_state_untouched",
    "check_needs_declared",
    "check_search_space_valid",
    "check_state_dict_round_trip",
    # the acquisition checks, likewise
    "check_acquisition_kind",
    "check_acquisition_docstring",
    "check_acquisition_params",
    "check_scores",
    "check_acquisition_deterministic",
    "check_acquisition_randomness_from_generator",
    "check_row_wise",
    "check_selection",
    "check_needs",
    "check_too_many_requested",
]

INPUT_SHAPE = (32,)
NUM_CLASSES = 4

TEST_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "mlp": ("mlp", {"hidden": [16, 16]}),
    "cnn_bn": ("cnn", {"batchnorm": True, "channels": [4, 8]}),
    "resnet18": ("resnet18", {"width": 4}),
}
"""The models strategies are checked on: ``(registered model, its parameters)`` by key. The tiny MLP
has two hidden layers (units to recycle), the CNN has BatchNorm; the narrow ResNet-18 (nested blocks,
projection shortcuts, 20 BatchNorm layers) is there for a deeper check (``models=...``)."""

DEFAULT_MODELS = ("mlp", "cnn_bn")
"""The keys of :data:`TEST_MODELS` the strategy checks use unless told otherwise."""

ROUND_SIZES = (32, 48, 64)
"""Labeled examples in each round of the short runs (the last 16 are new in rounds 1 and 2)."""

_STATE_TYPES = "return only tensors, numbers, strings, lists and dicts of those from state_dict()"
_TRAIN = TrainConfig(batch_size=16, lr=1e-2)
_EPOCHS = 1  # per round: 2, 3 and 4 optimizer steps, enough for hooks that act every few steps


class ContractError(AssertionError):
    """A broken contract rule: ``"<what> fails <check>: <problem>; <fix>"`` on one line.

    Attributes:
        check: the name of the failed check (a function of this module).
        target: what was checked (``"strategy 'name'"``, ``"acquisition MyClass"``).
    """

    def __init__(self, message: str, *, check: str = "", target: str = "") -> None:
        super().__init__(message)
        self.check, self.target = check, target


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _is_one_line(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message


# ------------------------------------------------------------------------------------------ the machinery


@dataclass(frozen=True)
class Check:
    """One contract check bound to its target; calling it runs the check (what a pytest param holds)."""

    name: str
    target: str
    run: Callable[[], None]

    def __call__(self) -> None:
        self.run()

    def __repr__(self) -> str:
        return f"<Check {self.name} of {self.target}>"


class _Failure(Exception):
    """Raised inside a check; turned into a :class:`ContractError` naming the check."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem, self.fix = problem, fix


def _require(condition: object, problem: str, fix: str) -> None:
    if not condition:
        raise _Failure(problem, fix)


def _run_check(fn: Callable[..., None], target: str, *args: Any) -> None:
    """Run one check; any failure (or unexpected exception) becomes a one-line :class:`ContractError`."""
    try:
        fn(*args)
    except _Failure as failure:
        # The failure's own cause (an exception the strategy raised) stays chained for the traceback.
        raise _contract_error(target, fn.__name__, failure.problem, failure.fix) from failure.__cause__
    except ContractError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise _contract_error(
            target,
            fn.__name__,
            f"raised {type(exc).__name__}: {first}",
            "see the chained traceback; the check drives the class as a bench does",
        ) from exc


def _contract_error(target: str, check: str, problem: str, fix: str) -> ContractError:
    return ContractError(_one_line(f"{target} fails {check}: {problem}; {fix}"), check=check, target=target)


def _param_id(params: Mapping[str, Any] | BaseModel | None) -> str:
    if not params:
        return ""
    values = params.model_dump() if isinstance(params, BaseModel) else dict(params)
    return "[" + ",".join(f"{k}={v}".replace(" ", "").replace("'", "") for k, v in values.items()) + "]"


@contextmanager
def _global_seed(seed: int) -> Iterator[None]:
    """Seed torch's and Python's global generators for the block, restoring them afterwards."""
    py_state = _pyrandom.getstate()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _pyrandom.seed(seed)
        try:
            yield
        finally:
            _pyrandom.setstate(py_state)


def _same(a: Any, b: Any) -> bool:
    """Exact equality of nested dicts/lists/tuples of tensors and plain values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _differing(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> list[str]:
    return sorted(k for k in a if k not in b or not _same(a[k], b[k]))


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _names(keys: list[str], most: int = 4) -> str:
    shown = ", ".join(keys[:most])
    return shown + (f" and {len(keys) - most} more" if len(keys) > most else "")


# ------------------------------------------------------------------------------------ data and models


@functools.cache
def _data() -> tuple[torch.Tensor, torch.Tensor]:
    """64 examples of 32 features, 4 classes; shifted, so BatchNorm running means move away from 0."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(ROUND_SIZES[-1], *INPUT_SHAPE, generator=gen) + 0.5
    y = torch.randint(0, NUM_CLASSES, (ROUND_SIZES[-1],), generator=gen)
    return x, y


def _build(key: str, seed: int) -> nn.Module:
    name, params = TEST_MODELS[key]
    return build_model(name, INPUT_SHAPE, NUM_CLASSES, params, seed=seed)


def _fresh_factory(key: str, generator: torch.Generator) -> Callable[[], nn.Module]:
    """``ctx.fresh_model`` as a bench builds it: each call draws its seed from ``generator``."""

    def fresh_model() -> nn.Module:
        return _build(key, int(torch.randint(0, 2**62, (1,), generator=generator)))

    return fresh_model


@functools.cache
def _trained(key: str) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """A model after a short plain training (weights and BatchNorm statistics moved), and its init."""
    model = _build(key, 0)
    initial = _snapshot(model)
    x, y = _data()
    with _global_seed(0):
        train_to_criterion(model, x[:32], y[:32], _TRAIN, torch.Generator().manual_seed(1), epochs=2)
    return model, initial


def _round_one_ctx(key: str, seed: int, initial_state: Mapping[str, torch.Tensor]) -> InitContext:
    """The context of round 1: a generator seeded ``seed``, 48 labeled examples of which 16 are new."""
    # Copies of the cached data and initial state: a strategy must not change them, and if it does,
    # the other checks must not see it.
    x, y = (t.clone() for t in _data())
    n, new = ROUND_SIZES[1], ROUND_SIZES[1] - ROUND_SIZES[0]
    gen = torch.Generator().manual_seed(seed)
    return InitContext(
        1,
        _fresh_factory(key, gen),
        {k: v.clone() for k, v in initial_state.items()},
        gen,
        torch.device("cpu"),
        x[:n],
        y[:n],
        torch.arange(n) >= n - new,
    )


# --------------------------------------------------------------------------------------- strategies


def _strategy_class(strategy: type[InitStrategy] | str) -> type[InitStrategy]:
    if isinstance(strategy, str):
        return get_strategy(strategy)
    if isinstance(strategy, InitStrategy):
        raise TypeError(f"pass the class, not an instance: check_strategy({type(strategy).__name__}, params)")
    return strategy


def _own_name(cls: Any) -> str:
    """The name ``cls`` was registered under (not one inherited from a registered parent), or ""."""
    name = getattr(cls, "__dict__", {}).get("name", "")
    return name if isinstance(name, str) else ""


def _label(cls: Any) -> str:
    name = _own_name(cls)
    return f"strategy {name!r}" if name else f"strategy {getattr(cls, '__name__', cls)}"


def _make(cls: type[InitStrategy], params: Mapping[str, Any] | BaseModel | None) -> InitStrategy:
    return cls(params) if params is not None else cls()


def _usable_models(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> list[str]:
    """The test models the strategy accepts (its ``check_model`` may refuse some, not all)."""
    usable, refusals = [], []
    for key in models:
        try:
            _make(cls, params).check_model(_build(key, 0))
        except ActivewsError as exc:
            refusals.append(f"{key}: {exc}")
        else:
            usable.append(key)
    _require(
        usable,
        f"check_model refuses every test model ({'; '.join(refusals)})",
        "make the strategy work on a plain MLP or CNN, or check it with models=... it accepts",
    )
    return usable


def _init_once(cls: type[InitStrategy], params: Any, key: str, seed: int = 7, global_seed: int = 0) -> Any:
    """``init_round`` of round 1 on a copy of the trained ``key`` model, in a fresh strategy instance."""
    model, initial = _trained(key)
    ctx = _round_one_ctx(key, seed, initial)
    with _global_seed(global_seed):
        return _make(cls, params).init_round(copy.deepcopy(model), ctx)


def _require_module(out: Any) -> nn.Module:
    _require(
        isinstance(out, nn.Module),
        f"init_round returned {type(out).__name__}, not an nn.Module",
        "return the model to train: the input model changed in place, or another module of the same "
        "architecture (e.g. ctx.fresh_model())",
    )
    return out


@dataclass
class _Run:
    """What a short run left: the final model, the strategy, and a checkpoint after ``save_after``."""

    model: dict[str, torch.Tensor]
    strategy: InitStrategy
    initial_state: dict[str, torch.Tensor]
    initial_copy: dict[str, torch.Tensor]
    checkpoint: dict[str, Any] | None


def _run(
    cls: type[InitStrategy],
    params: Any,
    key: str,
    *,
    global_seed: int = 0,
    save_after: int | None = None,
    resume: dict[str, Any] | None = None,
    on_hooks: Callable[[InitStrategy, InitContext, nn.Module], None] | None = None,
    only_needs: bool = False,
) -> _Run:
    """Run the strategy through ``len(ROUND_SIZES)`` rounds as a bench's arm does.

    Round 0 trains the initial draw; each later round calls ``init_round`` and trains; the training
    hooks run in every round. ``save_after=r`` keeps a checkpoint after round ``r`` (model,
    generators, the strategy's state written with ``torch.save`` as bytes); ``resume`` continues from
    such a checkpoint with a fresh strategy instance that loads the state with ``weights_only=True``.
    ``only_needs``: each round's context holds only what ``strategy.needs()`` declares.
    """
    x, y = (t.clone() for t in _data())
    strategy = _make(cls, params)
    model = _build(key, 0)
    initial_state = _snapshot(model)
    initial_copy = _snapshot(model)
    init_gen, train_gen = torch.Generator().manual_seed(11), torch.Generator().manual_seed(12)
    fresh_model = _fresh_factory(key, init_gen)
    start, checkpoint = 0, None
    if resume is not None:
        model.load_state_dict(resume["model"])
        init_gen.set_state(resume["init_gen"])
        train_gen.set_state(resume["train_gen"])
        strategy.load_state_dict(torch.load(io.BytesIO(resume["strategy"]), weights_only=True))
        start = resume["round"] + 1
    with _global_seed(global_seed):
        for r in range(start, len(ROUND_SIZES)):
            n = ROUND_SIZES[r]
            new = n - ROUND_SIZES[r - 1] if r else n
            ctx = InitContext(
                r,
                fresh_model,
                initial_state,
                init_gen,
                torch.device("cpu"),
                x[:n],
                y[:n],
                torch.arange(n) >= n - new,
            )
            if only_needs:
                needs = strategy.needs()
                ctx = ctx.replace(
                    fresh_model=fresh_model if "fresh_model" in needs else None,
                    initial_state=initial_state if "initial_state" in needs else None,
                    generator=init_gen if "generator" in needs else None,
                    **({} if "data" in needs else {"x_labeled": None, "y_labeled": None, "new_mask": None}),
                )
            if r > 0:
                model = _require_module(strategy.init_round(model, ctx))
            if on_hooks is not None:
                on_hooks(strategy, ctx, model)
            train_to_criterion(
                model, x[:n], y[:n], _TRAIN, train_gen, epochs=_EPOCHS, **training_hooks(strategy, ctx)
            )
            if r == save_after:
                buffer = io.BytesIO()
                try:
                    torch.save(strategy.state_dict(), buffer)
                except Exception as exc:
                    raise _Failure(
                        f"on {key}: torch.save(state_dict()) failed ({type(exc).__name__}: {_one_line(exc)[:160]})",
                        _STATE_TYPES,
                    ) from None
                checkpoint = {
                    "round": r,
                    "model": _snapshot(model),
                    "init_gen": init_gen.get_state(),
                    "train_gen": train_gen.get_state(),
                    "strategy": buffer.getvalue(),
                }
    return _Run(_snapshot(model), strategy, initial_state, initial_copy, checkpoint)


def _strategy_check(fn: Callable[[type[InitStrategy], Any, tuple[str, ...]], None]) -> Callable[..., None]:
    """Make ``fn(cls, params, models)`` a public check: ``check(strategy, params=None, *, models=...)``."""

    @functools.wraps(fn)
    def check(
        strategy: type[InitStrategy] | str,
        params: Mapping[str, Any] | BaseModel | None = None,
        *,
        models: tuple[str, ...] = DEFAULT_MODELS,
    ) -> None:
        cls = _strategy_class(strategy)
        _run_check(fn, _label(cls), cls, params, tuple(models))

    check.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("strategy", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
            inspect.Parameter("models", inspect.Parameter.KEYWORD_ONLY, default=DEFAULT_MODELS),
        ]
    )
    return check


@_strategy_check
def check_strategy_class(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """An :class:`InitStrategy` subclass that implements ``init_round``, with ``Params`` derived from
    ``InitStrategy.Params`` (what an entry point and ``@register_strategy`` accept)."""
    _require(
        inspect.isclass(cls) and issubclass(cls, InitStrategy),
        f"{getattr(cls, '__qualname__', cls)} is not an InitStrategy subclass",
        "subclass activews.InitStrategy",
    )
    _require(
        cls.init_round is not InitStrategy.init_round,
        "init_round is not implemented",
        "define init_round(self, model, ctx) returning the model to train",
    )
    _require(
        inspect.isclass(cls.Params) and issubclass(cls.Params, InitStrategy.Params),
        "Params does not derive from InitStrategy.Params",
        "declare class Params(InitStrategy.Params)",
    )


@_strategy_check
def check_docstring(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """A class docstring whose first line is the one-line summary ``activews strategies`` shows."""
    doc = inspect.getdoc(cls) if cls.__doc__ else ""
    _require(
        doc and doc.splitlines()[0].strip(),
        "the class has no docstring",
        "write a docstring: a one-line summary, then what it does to the weights, BatchNorm and optimizer",
    )


@_strategy_check
def check_reference(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """The ``reference`` attribute cites the method's paper and the docstring has a ``References:`` section.

    A method of your own says so: ``reference = "none (original method)"`` needs no ``References:``.
    """
    reference = getattr(cls, "reference", "")
    _require(
        isinstance(reference, str) and reference.strip() and _is_one_line(reference),
        "the class attribute reference is empty",
        'set reference = "Authors, Venue Year, arXiv:XXXX.XXXXX" (or "none (original method)")',
    )
    if not reference.strip().lower().startswith("none"):
        _require(
            "References:" in (cls.__doc__ or ""),
            "the docstring has no References: section",
            "add a Google-style 'References:' section with the full citation to the class docstring",
        )


@_strategy_check
def check_default_params(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """The strategy constructs with no arguments: every parameter has a default."""
    try:
        strategy = cls()
    except ActivewsError as exc:
        raise _Failure(
            f"cls() failed: {exc}", "give every Params field a default, so the strategy runs without --param"
        ) from None
    _require(
        isinstance(strategy.params, cls.Params),
        f"cls().params is {type(strategy.params).__name__}, not {cls.__name__}.Params",
        "let InitStrategy.__init__ set self.params (call super().__init__(params, **kwargs))",
    )
    _require(
        cls.Params() == strategy.params,
        "cls().params differs from cls.Params()",
        "take the defaults from Params; do not change them in __init__",
    )


@_strategy_check
def check_params_frozen(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """Parameter objects are frozen (a strategy's parameters never change behind a run's back)."""
    values = _make(cls, params).params
    field = next(iter(type(values).model_fields), "no_such_key")
    try:
        setattr(values, field, getattr(values, field, 1))
    except Exception:  # pydantic's "Instance is frozen"
        return
    raise _Failure(
        "a Params attribute could be assigned", "keep InitStrategy.Params' model_config (frozen=True)"
    )


@_strategy_check
def check_unknown_params_rejected(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """An unknown parameter is a one-line ``ActivewsError`` naming it (a typo never runs silently)."""
    label = _label(cls)
    for how, build in (
        ("parse_params({'no_such_key': 1})", lambda: cls.parse_params({"no_such_key": 1})),
        ("cls(no_such_key=1)", lambda: cls(no_such_key=1)),
    ):
        try:
            build()
        except ActivewsError as exc:
            message = str(exc)
            _require(
                _is_one_line(message) and "no_such_key" in message and message.startswith(label),
                f"{how} raised {message!r}, not one line starting with {label!r} and naming the key",
                "validate through InitStrategy.parse_params (keep Params' extra='forbid')",
            )
        else:
            raise _Failure(f"{how} was accepted", "keep InitStrategy.Params' model_config (extra='forbid')")


def _annotation_types(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return [t for a in typing.get_args(annotation) for t in _annotation_types(a)]
    return [annotation]


def _bad_values(field: Any) -> list[Any]:
    """Values a field's declaration rules out: outside its bounds, not among its options, NaN, a boolean."""
    bad: list[Any] = []
    for meta in field.metadata:
        for attr, step in (("ge", -1), ("gt", 0), ("le", 1), ("lt", 0)):
            bound = getattr(meta, attr, None)
            if isinstance(bound, (int, float)) and not isinstance(bound, bool):
                bad.append(bound + step)
    kinds = _annotation_types(field.annotation)
    if any(typing.get_origin(t) is typing.Literal for t in kinds):
        bad.append("__no_such_option__")
    if float in kinds:
        bad.append(float("nan"))
    if (int in kinds or float in kinds) and bool not in kinds:
        bad.append(True)
    return bad


@_strategy_check
def check_invalid_params_rejected(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """Values the ``Params`` declaration rules out are one-line ``ActivewsError``s naming the field.

    For every field: a value past each bound (``ge``/``gt``/``le``/``lt``), an unknown option of a
    ``Literal``, NaN for a float, ``True`` for a number.
    """
    label = _label(cls)
    for name, field in cls.Params.model_fields.items():
        for value in _bad_values(field):
            try:
                cls.parse_params({name: value})
            except ActivewsError as exc:
                message = str(exc)
                _require(
                    _is_one_line(message) and message.startswith(label) and name in message,
                    f"{name}={value!r} raised {message!r}, not one line starting with {label!r} and naming {name!r}",
                    "validate through InitStrategy.parse_params (do not override it)",
                )
            else:
                raise _Failure(
                    f"{name}={value!r} was accepted although the field's declaration rules it out",
                    "derive Params from InitStrategy.Params and keep its model_config",
                )


@_strategy_check
def check_params_object_or_keywords(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """``cls(Params(...))``, ``cls({...})`` and ``cls(**kw)`` agree; both at once, or another class's
    ``Params``, are one-line errors."""
    values = _make(cls, params).params
    fix = "let InitStrategy.__init__(params, **kwargs) handle the arguments (call super().__init__ first)"
    _require(cls(values).params is values, "cls(params_object).params is not that object", fix)
    _require(
        cls(values.model_dump()).params == values, "cls(dict) gave other parameters than cls(Params)", fix
    )
    _require(
        cls(**values.model_dump()).params == values,
        "cls(**kwargs) gave other parameters than cls(Params)",
        fix,
    )

    class OtherParams(InitStrategy.Params):
        pass

    cases = [("cls(Params(), key=value)", lambda: cls(values, no_such_key=1))]
    if not isinstance(OtherParams(), cls.Params):  # a class without parameters takes the base Params
        cases.append(("cls(another class's Params)", lambda: cls(OtherParams())))
    for how, build in cases:
        try:
            build()
        except ActivewsError as exc:
            _require(_is_one_line(str(exc)), f"{how} raised a multi-line error", fix)
        else:
            raise _Failure(f"{how} was accepted", fix)


@_strategy_check
def check_describe(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """``describe()`` is one line (it labels the arm in logs and tables)."""
    text = _make(cls, params).describe()
    _require(
        isinstance(text, str) and _is_one_line(text),
        f"describe() returned {text!r}",
        "return one line (the default 'name(key=value, ...)' needs nothing)",
    )


@_strategy_check
def check_returns_module(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """``init_round`` returns an ``nn.Module``."""
    for key in _usable_models(cls, params, models):
        _require_module(_init_once(cls, params, key))


@_strategy_check
def check_keeps_architecture(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """The returned model has the input's parameters and buffers: names, shapes, dtypes, devices."""
    fix = "change weights in place, or return a module of the same architecture on the same device"
    for key in _usable_models(cls, params, models):
        out = _require_module(_init_once(cls, params, key))
        ref, _ = _trained(key)
        for kind, ref_items, out_items in (
            ("parameters", dict(ref.named_parameters()), dict(out.named_parameters())),
            ("buffers", dict(ref.named_buffers()), dict(out.named_buffers())),
        ):
            _require(
                list(out_items) == list(ref_items),
                f"on {key}: {kind} {_names(sorted(set(out_items) ^ set(ref_items)))} differ from the input's",
                fix,
            )
            what = "" if kind == "parameters" else "buffer "
            for name, t in ref_items.items():
                got = out_items[name]
                _require(
                    (got.shape, got.dtype, got.device) == (t.shape, t.dtype, t.device),
                    f"on {key}: {what}{name} is {tuple(got.shape)} {got.dtype} on {got.device}, "
                    f"expected {tuple(t.shape)} {t.dtype} on {t.device}",
                    fix,
                )


@_strategy_check
def check_finite(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """No NaN or infinity in the returned model's parameters and buffers."""
    for key in _usable_models(cls, params, models):
        out = _require_module(_init_once(cls, params, key))
        bad = [
            n for n, t in out.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()
        ]
        _require(
            not bad,
            f"on {key}: non-finite values in {_names(bad)}",
            "guard divisions and logarithms (e.g. a zero norm) in init_round",
        )


@_strategy_check
def check_batchnorm(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """The class states what it does to BatchNorm statistics and optimizer state, and on a model with
    BatchNorm the running statistics it returns are valid (finite means, non-negative variances)."""
    for attr, what in (("batchnorm", "BatchNorm running statistics"), ("optimizer", "optimizer state")):
        value = getattr(cls, attr, "")
        _require(
            isinstance(value, str) and value.strip() and _is_one_line(value),
            f"the class attribute {attr} is empty",
            f'set {attr} = "..." to one line saying what happens to the {what} (kept, reset, fresh, ...)',
        )
    for key in _usable_models(cls, params, models):
        out = _require_module(_init_once(cls, params, key))
        for name, module in out.named_modules():
            if not isinstance(module, nn.modules.batchnorm._BatchNorm) or module.running_var is None:
                continue
            _require(
                bool((module.running_var >= 0).all()) and bool(torch.isfinite(module.running_mean).all()),
                f"on {key}: {name}'s running statistics are invalid (negative variance or non-finite mean)",
                "copy BatchNorm buffers from ctx.fresh_model() or ctx.initial_state, or leave them alone",
            )


@_strategy_check
def check_deterministic(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """Same seeds, same numbers: two ``init_round`` calls with generators seeded alike (on copies of the
    same model) return identical weights, and two short runs (hooks included) end identical."""
    fix = "draw all randomness from ctx.generator or ctx.fresh_model(), and nothing from the clock or os"
    for key in _usable_models(cls, params, models):
        a = _snapshot(_require_module(_init_once(cls, params, key)))
        b = _snapshot(_require_module(_init_once(cls, params, key)))
        diff = _differing(a, b)
        _require(not diff, f"on {key}: two init_round calls with the same seed differ in {_names(diff)}", fix)
        diff = _differing(_run(cls, params, key).model, _run(cls, params, key).model)
        _require(not diff, f"on {key}: two runs with the same seeds end with different {_names(diff)}", fix)


@_strategy_check
def check_randomness_from_ctx(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """The only randomness is the context's: reseeding torch's (and Python's) global generator changes
    neither ``init_round``'s result nor a short run's."""
    fix = (
        "draw noise from ctx.generator (torch.randn(shape, generator=ctx.generator)) or ctx.fresh_model(), "
        "never from torch's global generator"
    )
    for key in _usable_models(cls, params, models):
        a = _snapshot(_require_module(_init_once(cls, params, key, global_seed=1)))
        b = _snapshot(_require_module(_init_once(cls, params, key, global_seed=2)))
        diff = _differing(a, b)
        _require(not diff, f"on {key}: init_round depends on the global seed ({_names(diff)} differ)", fix)
        diff = _differing(
            _run(cls, params, key, global_seed=1).model, _run(cls, params, key, global_seed=2).model
        )
        _require(not diff, f"on {key}: a run depends on the global seed ({_names(diff)} differ)", fix)


@_strategy_check
def check_initial_state_untouched(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """``ctx.initial_state`` (shared by every round of an arm) is never modified, also not through a
    model that shares its tensors and is then trained."""
    for key in _usable_models(cls, params, models):
        run = _run(cls, params, key)
        diff = _differing(run.initial_state, run.initial_copy)
        _require(
            not diff,
            f"on {key}: ctx.initial_state changed during a run ({_names(diff)})",
            "copy from ctx.initial_state (param.copy_(...), load_state_dict) instead of sharing its tensors",
        )


@_strategy_check
def check_training_hooks(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """``hooks()`` is two booleans matching what the hooks do; ``loss_term`` returns ``None`` or a finite
    scalar tensor; a short run with the hooks (round 0 included) keeps the weights finite."""
    fix_loss = "return None or a scalar tensor (e.g. lam * sum(((p - p0) ** 2).sum() ...))"

    def inspect_hooks(strategy: InitStrategy, ctx: InitContext, model: nn.Module) -> None:
        flags = strategy.hooks()
        _require(
            isinstance(flags, tuple) and len(flags) == 2 and all(isinstance(f, bool) for f in flags),
            f"hooks() returned {flags!r}, not two booleans",
            "return (uses loss_term, uses after_step), or leave hooks() to the base class",
        )
        term = strategy.loss_term(model, ctx)
        if term is None:
            return
        _require(
            flags[0],
            f"loss_term returned a tensor in round {ctx.round_index} but hooks() says it is unused",
            "make hooks() report (True, ...) when loss_term adds a term, or return None",
        )
        _require(
            isinstance(term, torch.Tensor) and term.dim() == 0 and term.is_floating_point(),
            f"loss_term returned {type(term).__name__} {tuple(getattr(term, 'shape', ()))}, not a scalar tensor",
            fix_loss,
        )
        if not bool(torch.isfinite(term)):
            raise _Failure(f"loss_term returned {term.item()} in round {ctx.round_index}", fix_loss)

    for key in _usable_models(cls, params, models):
        run = _run(cls, params, key, on_hooks=inspect_hooks)
        bad = [n for n, t in run.model.items() if t.is_floating_point() and not torch.isfinite(t).all()]
        _require(
            not bad,
            f"on {key}: non-finite weights after a run with the hooks ({_names(bad)})",
            "keep loss_term small and after_step's changes finite",
        )


@_strategy_check
def check_needs_declared(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """``needs()`` is a subset of :data:`activews.strategies.NEEDS`, and a short run whose contexts hold
    only what it declares works: callers may leave out the rest (``warm`` needs no initial state)."""
    needs = _make(cls, params).needs()
    _require(
        isinstance(needs, frozenset) and needs <= set(NEEDS),
        f"needs() returned {needs!r}, not a frozenset of {', '.join(NEEDS)}",
        "return e.g. frozenset({'fresh_model'}) naming what init_round and the hooks read from ctx",
    )
    for key in _usable_models(cls, params, models):
        try:
            _run(cls, params, key, only_needs=True)
        except ActivewsError as exc:
            text = _one_line(exc)
            missing = next(
                (n for n in NEEDS if f"no {n}," in text), "data" if "labeled data" in text else None
            )
            if missing is None:
                raise
            raise _Failure(
                f"on {key}: with a context holding only what needs() declares ({', '.join(sorted(needs)) or 'nothing'}), "
                f"it failed: {text[:160]}",
                f"add {missing!r} to needs()",
            ) from None


def _space_values(tune: Tune) -> list[tuple[str, Any]]:
    """The values of a search space the checks try: each end of a range, or each choice."""
    if tune.choices is not None:
        return [("a choice", c) for c in tune.choices]
    ends = (tune.low, tune.high)
    if tune.integer:
        ends = tuple(int(v) for v in ends)  # type: ignore[arg-type]
    return [("the low end", ends[0]), ("the high end", ends[1])]


def _non_finite(state: Mapping[str, torch.Tensor]) -> list[str]:
    return [n for n, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]


@_strategy_check
def check_search_space_valid(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """The search space declared with :class:`~activews.params.Tune` (what ``activews advise`` searches)
    holds only values the strategy works with.

    The space passes :func:`~activews.params.check_search_space` (every value within its field's bounds),
    and with each end of each range (each choice), the other parameters as given to the check: the
    parameters validate, some test model is accepted, ``init_round`` returns a finite model and a short
    run with the training hooks ends finite. A strategy that declares no space passes.
    """
    fix = (
        "narrow the Tune(...) range of that parameter to values the strategy works with, "
        "or make the strategy work at that value"
    )
    try:
        space = search_space(cls.Params)
        check_search_space(cls.Params, _label(cls))
    except ActivewsError as exc:
        # check_search_space says "<label>: <problem>; <fix>" (the fix, where it gives one, last).
        message = _one_line(exc).removeprefix(f"{_label(cls)}: ")
        problem, _, given_fix = message.rpartition("; ") if "; " in message else (message, "", "")
        raise _Failure(problem, given_fix or "declare Tune(...) values the field accepts") from None
    base = params.model_dump() if isinstance(params, BaseModel) else dict(params or {})
    for name, tune in space.items():
        for where, value in _space_values(tune):
            what = f"{name}={value!r} ({where} of its search space, {tune.describe()})"
            try:
                values = cls.parse_params(base | {name: value})
            except ActivewsError as exc:
                raise _Failure(
                    f"{what} is refused with the other parameters given: {_one_line(exc)}", fix
                ) from None
            try:
                keys = _usable_models(cls, values, models)
            except _Failure as failure:
                raise _Failure(f"with {what}, {failure.problem}", fix) from None
            for key in keys:
                step = "init_round"
                try:
                    out = _require_module(_init_once(cls, values, key))
                    bad = _non_finite(out.state_dict())
                    _require(not bad, f"on {key}, with {what}: init_round left non-finite {_names(bad)}", fix)
                    step = "a short run with the training hooks"
                    bad = _non_finite(_run(cls, values, key).model)
                    _require(not bad, f"on {key}, with {what}: {step} left non-finite {_names(bad)}", fix)
                except _Failure:
                    raise
                except Exception as exc:
                    first = (str(exc).strip().splitlines() or [""])[0]
                    raise _Failure(
                        f"on {key}, with {what}: {step} raised {type(exc).__name__}: {first}", fix
                    ) from exc


@_strategy_check
def check_state_dict_round_trip(cls: type[InitStrategy], params: Any, models: tuple[str, ...]) -> None:
    """Resume gives the same numbers: the state after round 1, saved with ``torch.save`` and read back with
    ``torch.load(weights_only=True)`` into a fresh instance, continues exactly as the uninterrupted run."""
    for key in _usable_models(cls, params, models):
        full = _run(cls, params, key, save_after=1)
        if full.checkpoint is None:  # _run saves after round 1 when asked; this would be a bug here
            raise RuntimeError("activews.testing: the round-1 checkpoint was not taken")
        try:
            torch.load(io.BytesIO(full.checkpoint["strategy"]), weights_only=True)
        except Exception as exc:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
            what = f"it holds a {found.group(1)}" if found else type(exc).__name__
            raise _Failure(
                f"on {key}: torch.load(weights_only=True) cannot read state_dict() ({what})", _STATE_TYPES
            ) from None
        try:
            resumed = _run(cls, params, key, resume=full.checkpoint)
        except ActivewsError as exc:
            raise _Failure(
                f"on {key}: a fresh instance's load_state_dict refused its own state_dict() ({exc})",
                "make load_state_dict accept exactly what state_dict returns (override both or neither)",
            ) from None
        fix = "return everything the strategy carries across rounds from state_dict() and restore it in load_state_dict()"
        diff = _differing(full.model, resumed.model)
        _require(not diff, f"on {key}: the resumed run's weights differ ({_names(diff)})", fix)
        _require(
            _same(full.strategy.state_dict(), resumed.strategy.state_dict()),
            f"on {key}: the resumed run's state_dict() differs from the uninterrupted run's",
            fix,
        )


STRATEGY_CHECKS: tuple[Callable[..., None], ...] = (
    check_strategy_class,
    check_docstring,
    check_reference,
    check_default_params,
    check_params_frozen,
    check_unknown_params_rejected,
    check_invalid_params_rejected,
    check_params_object_or_keywords,
    check_describe,
    check_returns_module,
    check_keeps_architecture,
    check_finite,
    check_batchnorm,
    check_training_hooks,
    check_deterministic,
    check_randomness_from_ctx,
    check_initial_state_untouched,
    check_needs_declared,
    check_search_space_valid,
    check_state_dict_round_trip,
)
"""Every strategy check, in the order :func:`check_strategy` runs them."""


def check_strategy(
    strategy: type[InitStrategy] | str,
    params: Mapping[str, Any] | BaseModel | None = None,
    *,
    models: tuple[str, ...] = DEFAULT_MODELS,
) -> None:
    """Run every strategy check (:data:`STRATEGY_CHECKS`) on ``strategy``; raise at the first failure.

    Args:
        strategy: an :class:`InitStrategy` subclass, or the name it is registered under.
        params: parameters for the behaviour checks (a mapping or a ``Params`` object); the defaults
            if ``None``. The parameter checks always use the defaults and the declared constraints.
        models: keys of :data:`TEST_MODELS` to run the behaviour checks on (models the strategy's
            ``check_model`` refuses are skipped, but not all of them).

    Raises:
        ContractError: one line naming the failed check, what went wrong and the fix.
    """
    for check in STRATEGY_CHECKS:
        check(strategy, params, models=models)


def strategy_checks(
    strategy: type[InitStrategy] | str,
    params: Mapping[str, Any] | BaseModel | None = None,
    *,
    models: tuple[str, ...] = DEFAULT_MODELS,
) -> list[Any]:
    """One ``pytest.param`` per strategy check, for ``@pytest.mark.parametrize("check", ...)``.

    Each value is a :class:`Check` (call it to run the check); its id is ``<name>-<check>``, with the
    parameters in brackets when given (``redo[every=2]-check_state_dict_round_trip``).

    Example:
        >>> @pytest.mark.parametrize("check", strategy_checks(MyStrategy))  # doctest: +SKIP
        ... def test_contract(check):
        ...     check()
    """
    import pytest

    cls = _strategy_class(strategy)
    ident = (_own_name(cls) or getattr(cls, "__name__", "strategy")) + _param_id(params)
    return [
        pytest.param(
            Check(fn.__name__, _label(cls), functools.partial(fn, cls, params, models=tuple(models))),
            id=f"{ident}-{fn.__name__}",
        )
        for fn in STRATEGY_CHECKS
    ]


# -------------------------------------------------------------------------------------- acquisitions

_VIEWS = {"proba": (), "embed": ("embed", "embed_proba"), "mc_proba": ("mc_proba",)}
_POOL = 96
_LABELED = 24


@dataclass(frozen=True)
class _Acquisition:
    """What an acquisition check looks at: the registered entry (function or selector class) and its name."""

    entry: Any
    name: str

    @property
    def is_class(self) -> bool:
        return inspect.isclass(self.entry)

    @property
    def scoring(self) -> bool:
        return not self.is_class or issubclass(self.entry, ScoringSelector)

    @property
    def label(self) -> str:
        return (
            f"acquisition {self.name!r}"
            if self.name
            else f"acquisition {getattr(self.entry, '__name__', self.entry)}"
        )

    def make(self, params: Any = None, *, score_batch: int = 8192) -> BatchSelector:
        if self.is_class:
            return self.entry(params, score_batch=score_batch)
        return RowWise(self.entry, self.name, params, score_batch=score_batch)


def _acquisition(acquisition: Any) -> _Acquisition:
    if isinstance(acquisition, str):
        return _Acquisition(get_acquisition(acquisition), acquisition)
    if inspect.isclass(acquisition):
        return _Acquisition(acquisition, _own_name(acquisition))
    return _Acquisition(acquisition, getattr(acquisition, "__name__", ""))


@functools.cache
def _acquisition_setup() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small MLP with dropout and a linear head, trained briefly; its pool; the labeled and the
    unlabeled (candidate) pool indices."""
    gen = torch.Generator().manual_seed(3)
    centers = torch.randn(NUM_CLASSES, *INPUT_SHAPE, generator=gen) * 2
    y = torch.randint(0, NUM_CLASSES, (_POOL,), generator=gen)
    x = centers[y] + torch.randn(_POOL, *INPUT_SHAPE, generator=gen) * 1.5
    model = build_model("mlp", INPUT_SHAPE, NUM_CLASSES, {"hidden": [16], "dropout": 0.2}, seed=0)
    order = torch.randperm(_POOL, generator=gen)
    labeled, unlabeled = order[:_LABELED], order[_LABELED:].sort().values
    with _global_seed(0):
        train_to_criterion(model, x[labeled], y[labeled], _TRAIN, torch.Generator().manual_seed(1), epochs=5)
    return model, x, labeled, unlabeled  # in train mode, as a bench hands it over after training


def _prob_tables() -> list[torch.Tensor]:
    """Class probabilities to score: random rows, exact one-hot rows (zeros), uniform rows; 2, 4 and 10 classes."""
    gen = torch.Generator().manual_seed(5)
    tables = []
    for classes in (2, NUM_CLASSES, 10):
        soft = torch.softmax(torch.randn(40, classes, generator=gen) * 3, dim=1)
        onehot = torch.eye(classes)[torch.arange(6) % classes]
        uniform = torch.full((4, classes), 1.0 / classes)
        tables.append(torch.cat([soft, onehot, uniform]))
    return tables


class _RestrictedView:
    """A model view offering only what ``needs`` declares (as a plain probability function would)."""

    def __init__(self, view: ModelView, needs: frozenset[str]) -> None:
        self._view = view
        for need in needs:
            for attr in _VIEWS.get(need, ()):
                setattr(self, attr, getattr(view, attr))

    def __call__(self, idx: torch.Tensor | slice) -> torch.Tensor:
        return self._view(idx)


def _selector(acq: _Acquisition, params: Any, score_batch: int) -> BatchSelector:
    """The selector, once its ``check`` has accepted the test model (a plain MLP with dropout and a head)."""
    selector = acq.make(params, score_batch=score_batch)
    try:
        selector.check(copy.deepcopy(_acquisition_setup()[0]))
    except ActivewsError as exc:
        raise _Failure(
            f"check() refuses an MLP with dropout and a linear head ({exc})",
            "accept the common models, and refuse only those the method cannot use",
        ) from None
    return selector


def _select(
    acq: _Acquisition,
    params: Any,
    candidates: torch.Tensor,
    k: int,
    *,
    seed: int = 0,
    global_seed: int = 0,
    restrict: bool = False,
) -> tuple[torch.Tensor, nn.Module]:
    """``select`` on the test model (a copy, returned for inspection) with a generator seeded ``seed``."""
    model, x, labeled, _ = _acquisition_setup()
    model = copy.deepcopy(model)
    selector = _selector(acq, params, 16)
    view: Any = ModelView(model, x, batch_size=32)
    if restrict:
        view = _RestrictedView(view, selector.needs)
    with _global_seed(global_seed):
        chosen = selector.select(view, candidates, labeled, k, torch.Generator().manual_seed(seed))
    return torch.as_tensor(chosen), model


def _scores(
    acq: _Acquisition,
    params: Any,
    *,
    seed: int = 0,
    global_seed: int = 0,
    x: torch.Tensor | None = None,
    score_batch: int = 16,
    table: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scores of the candidates (a scoring selector, on the pool ``x``) or of ``table`` (a function)."""
    gen = torch.Generator().manual_seed(seed)
    with _global_seed(global_seed):
        if table is not None:
            return acq.entry(table, generator=gen)
        model, pool, _, candidates = _acquisition_setup()
        selector = _selector(acq, params, score_batch)
        if not isinstance(selector, ScoringSelector):  # callers pass scoring acquisitions only
            raise TypeError(f"activews.testing: {type(selector).__name__} does not score examples one by one")
        view = ModelView(copy.deepcopy(model), pool if x is None else x, batch_size=32)
        return selector.scores(view, candidates, gen)


def _acquisition_check(
    applies: Callable[[_Acquisition], bool] = lambda acq: True,
) -> Callable[[Callable[[_Acquisition, Any], None]], Callable[..., None]]:
    """Make ``fn(acq, params)`` a public check ``check(acquisition, params=None)``; ``applies`` says for
    which kinds (functions, selector classes, scoring selectors) it is part of the contract."""

    def decorate(fn: Callable[[_Acquisition, Any], None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def check(acquisition: Any, params: Mapping[str, Any] | BaseModel | None = None) -> None:
            acq = _acquisition(acquisition)
            _run_check(fn, acq.label, acq, params)

        check.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("acquisition", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
            ]
        )
        check.applies = applies  # type: ignore[attr-defined]
        return check

    return decorate


def _is_class(acq: _Acquisition) -> bool:
    return acq.is_class


def _is_function(acq: _Acquisition) -> bool:
    return not acq.is_class


def _is_scoring(acq: _Acquisition) -> bool:
    return acq.scoring


@_acquisition_check()
def check_acquisition_kind(acq: _Acquisition, params: Any) -> None:
    """A function ``f(probs, *, generator=None)``, or a :class:`BatchSelector` subclass that implements
    ``select`` (``score`` for a :class:`ScoringSelector`), with ``Params`` derived from
    ``BatchSelector.Params`` and ``needs`` drawn from ``proba``, ``embed``, ``mc_proba``."""
    entry = acq.entry
    if not acq.is_class:
        _require(
            callable(entry),
            f"it is {type(entry).__name__}, not a function or a BatchSelector subclass",
            "register a function f(probs, *, generator=None) or a BatchSelector subclass",
        )
        _require(
            params is None,
            "a function takes no parameters",
            "check it without params, or write a BatchSelector",
        )
        try:
            inspect.signature(entry).bind(None, generator=None)
        except TypeError:
            raise _Failure(
                f"it cannot be called as f(probs, *, generator=None) (signature {inspect.signature(entry)})",
                "accept a keyword argument generator=None",
            ) from None
        except ValueError:  # no signature (some builtins): accepted, as the registry does
            pass
        return
    _require(
        issubclass(entry, BatchSelector) and not issubclass(entry, RowWise),
        f"class {entry.__name__} is not a BatchSelector subclass",
        "derive from activews.streams.BatchSelector (or ScoringSelector)",
    )
    if issubclass(entry, ScoringSelector):
        _require(
            entry.score is not ScoringSelector.score or entry.select is not ScoringSelector.select,
            "score is not implemented",
            "define score(self, view, idx, generator) returning one score per example",
        )
    _require(
        entry.select is not BatchSelector.select,
        "select is not implemented",
        "define select(self, view, candidates, labeled, k, generator), or derive from ScoringSelector",
    )
    _require(
        inspect.isclass(entry.Params) and issubclass(entry.Params, BatchSelector.Params),
        "Params does not derive from BatchSelector.Params",
        "declare class Params(BatchSelector.Params)",
    )
    unknown = set(entry.needs) - set(_VIEWS)
    _require(
        not unknown,
        f"needs holds {sorted(unknown)}",
        f"declare needs from {sorted(_VIEWS)}",
    )


@_acquisition_check()
def check_acquisition_docstring(acq: _Acquisition, params: Any) -> None:
    """A docstring whose first line is the summary ``activews acquisitions`` shows; a selector class also
    sets ``reference`` (the paper, or ``"none (original method)"``)."""
    doc = inspect.getdoc(acq.entry) or ""
    _require(
        doc.strip() and doc.splitlines()[0].strip(),
        "it has no docstring",
        "write a docstring: a one-line summary of what scores high (and a References: section for a paper)",
    )
    if acq.is_class:
        reference = getattr(acq.entry, "reference", "")
        _require(
            isinstance(reference, str) and reference.strip() and _is_one_line(reference),
            "the class attribute reference is empty",
            'set reference = "Authors, Venue Year, arXiv:XXXX.XXXXX" (or "none (original method)")',
        )


@_acquisition_check(_is_class)
def check_acquisition_params(acq: _Acquisition, params: Any) -> None:
    """Parameters: the defaults construct, are frozen, an unknown key and every value the declaration
    rules out (bounds, ``Literal`` options, NaN, a boolean for a number) are one-line ``ActivewsError``s
    naming the key; a ``Params`` object, a dict and another class's ``Params`` are told apart."""
    cls, label = acq.entry, acq.label
    fix = "derive Params from BatchSelector.Params, keep its model_config and let BatchSelector.__init__ validate"
    try:
        default = cls()
    except ActivewsError as exc:
        raise _Failure(f"cls() failed: {exc}", "give every Params field a default") from None
    _require(
        isinstance(default.params, cls.Params) and default.params == cls.Params(),
        "cls().params is not cls.Params()",
        "let BatchSelector.__init__ set self.params (call super().__init__(params, score_batch=...))",
    )
    values = acq.make(params).params
    field = next(iter(type(values).model_fields), "no_such_key")
    try:
        setattr(values, field, getattr(values, field, 1))
    except Exception:
        pass
    else:
        raise _Failure("a Params attribute could be assigned", fix)
    _require(cls(values).params is values, "cls(params_object).params is not that object", fix)
    _require(
        cls(values.model_dump()).params == values, "cls(dict) gave other parameters than cls(Params)", fix
    )

    class OtherParams(BatchSelector.Params):
        pass

    cases = [("no_such_key", 1, "no_such_key")] + [
        (name, value, name) for name, f in cls.Params.model_fields.items() for value in _bad_values(f)
    ]
    for key, value, named in cases:
        try:
            cls({key: value})
        except ActivewsError as exc:
            message = str(exc)
            _require(
                _is_one_line(message) and message.startswith(label) and named in message,
                f"{key}={value!r} raised {message!r}, not one line starting with {label!r} and naming {named!r}",
                fix,
            )
        else:
            raise _Failure(f"{key}={value!r} was accepted", fix)
    if not isinstance(OtherParams(), cls.Params):  # a class without parameters takes the base Params
        try:
            cls(OtherParams())
        except ActivewsError:
            pass
        else:
            raise _Failure("another class's Params object was accepted", fix)


@_acquisition_check(_is_scoring)
def check_scores(acq: _Acquisition, params: Any) -> None:
    """Scores are one finite floating-point number per example: a function on probability tables with
    exact zeros (one-hot rows), uniform rows, 1 to 50 rows, 2 to 10 classes; a scoring selector on a
    window given as an index tensor and as a slice."""
    fix = (
        "return a 1-D float tensor with one finite score per row (0 * log 0 counts as 0: torch.special.xlogy)"
    )
    if not acq.is_class:
        for table in _prob_tables():
            for rows in (table, table[:1]):
                s = _scores(acq, params, table=rows)
                _require(
                    isinstance(s, torch.Tensor) and s.shape == (len(rows),),
                    f"{len(rows)} rows of {rows.shape[1]} classes gave "
                    f"{type(s).__name__} {tuple(getattr(s, 'shape', ()))}, expected ({len(rows)},)",
                    fix,
                )
                _require(s.is_floating_point(), f"scores have dtype {s.dtype}", fix)
                bad = (~torch.isfinite(s)).nonzero().flatten().tolist()
                _require(
                    not bad,
                    f"non-finite scores for rows {bad[:5]} of {rows.tolist()[bad[0]] if bad else ''}",
                    fix,
                )
        return
    model, x, _, candidates = _acquisition_setup()
    selector = _selector(acq, params, 8192)
    for idx in (candidates[:10], slice(int(candidates[0]), int(candidates[0]) + 10)):
        s = selector.score(ModelView(copy.deepcopy(model), x), idx, torch.Generator().manual_seed(0))
        _require(
            isinstance(s, torch.Tensor) and s.shape == (10,),
            f"score() of 10 examples ({type(idx).__name__}) gave {type(s).__name__} {tuple(getattr(s, 'shape', ()))}",
            fix,
        )
        _require(s.is_floating_point() and bool(torch.isfinite(s).all()), f"score() gave {s.tolist()}", fix)


@_acquisition_check(_is_scoring)
def check_row_wise(acq: _Acquisition, params: Any) -> None:
    """A score depends only on its own example: changing the other examples (same count, same generator
    seed) leaves it unchanged, and a deterministic acquisition scores alike in windows of any size."""
    fix = "compute each score from its own row only (no batch max, mean or normalization): the pool is scored in windows"
    if not acq.is_class:
        for table in _prob_tables():
            other = table.clone()
            other[1::2] = table.flip(0)[1::2]
            a, b = _scores(acq, params, table=table), _scores(acq, params, table=other)
            _require(
                torch.allclose(a[0::2], b[0::2], rtol=1e-5, atol=1e-7, equal_nan=True),
                "changing the odd rows changed the even rows' scores",
                fix,
            )
            if torch.equal(a, _scores(acq, params, table=table, seed=1, global_seed=1)):  # no randomness
                windows = torch.cat(
                    [_scores(acq, params, table=table[i : i + 7]) for i in range(0, len(table), 7)]
                )
                _require(
                    torch.allclose(windows, a, rtol=1e-5, atol=1e-7),
                    "scores in windows of 7 differ from the whole",
                    fix,
                )
        return
    _, x, _, candidates = _acquisition_setup()
    changed = x.clone()
    odd = candidates[1::2]
    changed[odd] = -x[odd] + 0.3
    a, b = _scores(acq, params), _scores(acq, params, x=changed)
    _require(
        torch.allclose(a[0::2], b[0::2], rtol=1e-5, atol=1e-6),
        "changing some candidates' inputs changed the other candidates' scores",
        fix,
    )
    if torch.equal(a, _scores(acq, params, seed=1, global_seed=1)):  # no randomness
        _require(
            torch.allclose(a, _scores(acq, params, score_batch=4096), rtol=1e-5, atol=1e-6),
            "scores depend on score_batch (windows of 16 and of 4096 differ)",
            fix,
        )


@_acquisition_check()
def check_selection(acq: _Acquisition, params: Any) -> None:
    """``select`` returns ``k`` distinct pool indices from the candidates (all of them, or a scattered
    subset; ``k`` from 1 to every candidate), leaves the model's weights and mode alone, and the
    selector's ``check`` accepts a plain MLP with dropout and a linear head."""
    model, _, _, unlabeled = _acquisition_setup()
    _selector(acq, params, 16)
    before = _snapshot(model)
    fix = "return k distinct indices taken from candidates (e.g. candidates[order[:k]])"
    for candidates in (unlabeled, unlabeled[::3]):
        for k in (1, 7, len(candidates)):
            chosen, used = _select(acq, params, candidates, k)
            _require(
                chosen.dim() == 1 and len(chosen) == k and not chosen.is_floating_point(),
                f"asked for {k} of {len(candidates)} candidates, it returned {chosen.dtype} {tuple(chosen.shape)}",
                fix,
            )
            _require(len(chosen.unique()) == k, f"asked for {k}, it returned duplicates", fix)
            _require(
                bool(torch.isin(chosen, candidates).all()),
                f"asked for {k}, it returned indices that are not candidates "
                f"({sorted(set(chosen.tolist()) - set(candidates.tolist()))[:5]})",
                fix,
            )
            diff = _differing(before, _snapshot(used))
            _require(
                not diff, f"select changed the model ({_names(diff)})", "only read the model through the view"
            )
            _require(
                used.training == model.training,
                "select left the model in another train/eval mode",
                "use the view (it restores the mode) or restore model.training yourself",
            )


@_acquisition_check(_is_class)
def check_needs(acq: _Acquisition, params: Any) -> None:
    """``select`` uses only the views ``needs`` declares (a stream given a plain probability function
    checks ``needs`` before selecting)."""
    _, _, _, unlabeled = _acquisition_setup()
    try:
        _select(acq, params, unlabeled, 7, restrict=True)
    except AttributeError as exc:
        raise _Failure(
            f"select used a view it does not declare ({exc})",
            f"add what it calls to needs (embed: view.embed/embed_proba, mc_proba: view.mc_proba); "
            f"it declares {sorted(acq.make(params).needs)}",
        ) from None


@_acquisition_check(_is_class)
def check_too_many_requested(acq: _Acquisition, params: Any) -> None:
    """Asking for more examples than there are candidates is a one-line ``ActivewsError``."""
    _, _, _, unlabeled = _acquisition_setup()
    candidates = unlabeled[:10]
    try:
        _select(acq, params, candidates, 11)
    except ActivewsError as exc:
        _require(
            _is_one_line(str(exc)), "the error spans several lines", "call self.check_batch(k, candidates)"
        )
    else:
        raise _Failure(
            "select(k=11) of 10 candidates raised no ActivewsError",
            "call self.check_batch(k, candidates) first",
        )


@_acquisition_check()
def check_acquisition_deterministic(acq: _Acquisition, params: Any) -> None:
    """Same generator seed, same scores and same selection."""
    fix = "draw all randomness from the generator argument, nothing from the clock, os or Python's random"
    _, _, _, unlabeled = _acquisition_setup()
    if acq.scoring:
        for a, b in _score_pairs(acq, params, global_seeds=(0, 0)):
            _require(torch.equal(a, b), "two scorings with the same seed differ", fix)
    a, b = _select(acq, params, unlabeled, 7)[0], _select(acq, params, unlabeled, 7)[0]
    _require(
        torch.equal(a, b), f"two selections with the same seed differ ({a.tolist()} and {b.tolist()})", fix
    )


@_acquisition_check()
def check_acquisition_randomness_from_generator(acq: _Acquisition, params: Any) -> None:
    """The only randomness is the ``generator`` argument's: reseeding torch's (and Python's) global
    generator changes neither scores nor selection."""
    fix = "draw noise from the generator argument (torch.rand(n, generator=generator)), never from torch's global generator"
    _, _, _, unlabeled = _acquisition_setup()
    if acq.scoring:
        for a, b in _score_pairs(acq, params, global_seeds=(1, 2)):
            _require(torch.equal(a, b), "scores depend on the global seed", fix)
    a = _select(acq, params, unlabeled, 7, global_seed=1)[0]
    b = _select(acq, params, unlabeled, 7, global_seed=2)[0]
    _require(torch.equal(a, b), "the selection depends on the global seed", fix)


def _score_pairs(
    acq: _Acquisition, params: Any, global_seeds: tuple[int, int]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g1, g2 = global_seeds
    if acq.is_class:
        return [(_scores(acq, params, global_seed=g1), _scores(acq, params, global_seed=g2))]
    return [
        (_scores(acq, params, table=t, global_seed=g1), _scores(acq, params, table=t, global_seed=g2))
        for t in _prob_tables()
    ]


ACQUISITION_CHECKS: tuple[Callable[..., None], ...] = (
    check_acquisition_kind,
    check_acquisition_docstring,
    check_acquisition_params,
    check_scores,
    check_acquisition_deterministic,
    check_acquisition_randomness_from_generator,
    check_row_wise,
    check_selection,
    check_needs,
    check_too_many_requested,
)
"""Every acquisition check, in the order :func:`check_acquisition` runs them (each applies to
functions, selector classes or scoring selectors: see :func:`acquisition_checks`)."""


def _applicable(acq: _Acquisition) -> list[Callable[..., None]]:
    entry = acq.entry
    if acq.is_class and not (issubclass(entry, BatchSelector) and not issubclass(entry, RowWise)):
        return [check_acquisition_kind]  # not a selector: only the kind check has something to say
    if not acq.is_class and not callable(entry):
        return [check_acquisition_kind]
    return [c for c in ACQUISITION_CHECKS if c.applies(acq)]  # type: ignore[attr-defined]


def check_acquisition(acquisition: Any, params: Mapping[str, Any] | BaseModel | None = None) -> None:
    """Run every acquisition check that applies to ``acquisition``; raise at the first failure.

    Args:
        acquisition: a row-wise function ``f(probs, *, generator=None)``, a :class:`BatchSelector`
            subclass, or the name either is registered under.
        params: the selector's parameters for the behaviour checks (``None``: the defaults; a function
            takes none).

    Raises:
        ContractError: one line naming the failed check, what went wrong and the fix.
    """
    acq = _acquisition(acquisition)
    for check in _applicable(acq):
        check(acquisition, params)


def acquisition_checks(acquisition: Any, params: Mapping[str, Any] | BaseModel | None = None) -> list[Any]:
    """One ``pytest.param`` per acquisition check that applies (see :func:`strategy_checks`)."""
    import pytest

    acq = _acquisition(acquisition)
    ident = (acq.name or getattr(acq.entry, "__name__", "acquisition")) + _param_id(params)
    return [
        pytest.param(
            Check(fn.__name__, acq.label, functools.partial(fn, acquisition, params)),
            id=f"{ident}-{fn.__name__}",
        )
        for fn in _applicable(acq)
    ]
