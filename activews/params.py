"""Validated parameters: the one base behind strategies, acquisitions and models.

- :class:`FrozenParams`: the pydantic base of every parameter model (a :class:`~activews.validation.Settings`,
  so numbers refuse booleans; frozen, unknown keys rejected, no inf/nan).
- :func:`validate_params`: fill a ``FrozenParams`` class from a mapping, or raise a one-line
  :class:`~activews.errors.ActivewsError` that starts with who was given the values
  (``"strategy 'shrink_perturb': shrink: ..."``).
- :class:`Configurable`: the base of the named, parameterized components that a registry holds by class
  (:class:`~activews.strategies.InitStrategy`, :class:`~activews.streams.BatchSelector`): a nested
  ``Params``, ``label()``, ``parse_params()``, ``describe()``, and the class checks that registering one
  (by decorator or by entry point) runs.
- :class:`Tune`: a parameter's search space (range and scale, or choices), declared in its ``Params``
  field's metadata; :func:`search_space` reads a ``Params`` class's, :func:`check_search_space` checks
  that every declared value is a valid parameter (run when a class registers). ``activews advise``
  searches these spaces.

This is a foundation module: it imports only :mod:`activews.errors`, :mod:`activews.validation` and
third-party libraries.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from activews.errors import ActivewsError, format_validation_error
from activews.validation import Settings

__all__ = [
    "FrozenParams",
    "Configurable",
    "Tune",
    "check_search_space",
    "search_space",
    "validate_params",
    "what_is",
]

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R")
C = TypeVar("C", bound="Configurable")


class FrozenParams(Settings):
    """Parameters of a component: validated, frozen, unknown keys rejected, no inf or nan."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def validate_params(params_class: type[P], values: Mapping[str, Any], label: str) -> P:
    """``params_class(**values)``, or a one-line :class:`ActivewsError` ``"<label>: <what is wrong>"``.

    An unknown key is reported with the known ones (``unknown parameter 'x' (known: a, b)``).
    """
    try:
        return params_class(**dict(values))
    except ValidationError as exc:
        raise ActivewsError(f"{label}: {format_validation_error(exc, params_class.model_fields)}") from None


_CHOICE_TYPES = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Tune:
    """The search space of one parameter, declared in its ``Params`` field's metadata.

    ```python
    class Params(InitStrategy.Params):
        shrink: Annotated[float, Tune(0.0, 1.0)] = Field(0.4, ge=0.0, le=1.0, description=...)
        lam: Annotated[float, Tune(1e-5, 1e-1, log=True)] = Field(1e-2, gt=0.0, description=...)
        every: Annotated[int, Tune(100, 10_000, log=True)] = Field(1000, ge=1, description=...)
        noise: Annotated[Literal["a", "b"], Tune(choices=("a", "b"))] = Field("a", description=...)
    ```

    A numeric space is ``[low, high]``, searched uniformly or, with ``log=True``, uniformly in the
    logarithm (for rates and strengths that matter by order of magnitude); an ``int`` field is searched
    over integers. ``choices`` lists the values of a categorical parameter (strings, numbers, booleans
    or None). Fields without a ``Tune`` are held at their value. Subclasses inherit their parents'
    declarations; a subclass redeclares a field to change or drop (``Tune(off=True)``) its space.

    Raises:
        ActivewsError: an empty or reversed range, a log range that includes 0, or choices that are
            empty or not plain values (when the class body runs).
    """

    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None
    off: bool = False
    integer: bool = False
    """Set by :func:`search_space` from the field's type (``int`` fields are searched over integers)."""

    def __post_init__(self) -> None:
        if self.off:
            return
        if self.choices is not None:
            if self.low is not None or self.high is not None or self.log:
                raise ActivewsError("Tune: give either choices= or a low/high range, not both")
            if not isinstance(self.choices, tuple) or not self.choices:
                raise ActivewsError("Tune(choices=...) needs a non-empty tuple of values, e.g. ('a', 'b')")
            bad = [c for c in self.choices if not isinstance(c, _CHOICE_TYPES)]
            if bad:
                raise ActivewsError(
                    f"Tune(choices=...) holds {bad[0]!r}; choices are strings, numbers, booleans or None"
                )
            return
        for which, value in (("low", self.low), ("high", self.high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ActivewsError(
                    f"Tune: {which} must be a finite number, got {value!r}; e.g. Tune(0.0, 1.0)"
                )
        if self.low >= self.high:  # type: ignore[operator]  (both checked to be numbers above)
            raise ActivewsError(f"Tune: low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ActivewsError(f"Tune(log=True) needs low > 0, got {self.low}; use a small positive low")

    def describe(self) -> str:
        """``"uniform [0, 1]"``, ``"log-uniform [1e-05, 0.1]"``, ``"int [1, 3]"``, ``"log-int [100,
        10000]"``, ``"one of a, b"``."""
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        kind = ("log-" if self.log else "") + ("int" if self.integer else "uniform")
        return f"{kind} [{self.low:g}, {self.high:g}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"low", "high", "log", "integer"}`` or ``{"choices"}``."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, "log": self.log, "integer": self.integer}


def search_space(params_class: type[BaseModel]) -> dict[str, Tune]:
    """The declared search space of a ``Params`` class: field name -> :class:`Tune`, in field order.

    ``integer`` is set for fields whose type is ``int`` (or ``int | None``). Empty when nothing is
    declared.
    """
    space: dict[str, Tune] = {}
    for name, info in params_class.model_fields.items():
        tunes = [m for m in info.metadata if isinstance(m, Tune)]
        if not tunes or tunes[-1].off:
            continue
        tune = tunes[-1]
        kinds = [a for a in (typing.get_args(info.annotation) or (info.annotation,)) if a is not type(None)]
        if tune.choices is None and kinds and all(k is int for k in kinds):
            tune = dataclasses.replace(tune, integer=True)
        space[name] = tune
    return space


def check_search_space(params_class: type[BaseModel], label: str) -> None:
    """Raise a one-line :class:`ActivewsError` unless every declared space holds only valid parameters.

    Each end of a range (and each choice) is validated as that parameter, with the other parameters at
    their defaults, so a range outside the field's bounds (``Tune(0, 2)`` on a field with ``le=1``) or an
    integer space with fractional ends is refused when the class registers.
    """
    for name, tune in search_space(params_class).items():
        if tune.choices is not None:
            values = list(tune.choices)
        elif tune.integer:
            if tune.low != int(tune.low) or tune.high != int(tune.high):  # type: ignore[arg-type]
                raise ActivewsError(
                    f"{label}: the search space of {name!r} ({tune.describe()}) must have whole-number ends "
                    f"(the field is an int)"
                )
            values = [int(tune.low), int(tune.high)]  # type: ignore[arg-type]
        else:
            values = [tune.low, tune.high]
        for value in values:
            try:
                params_class(**{name: value})
            except ValidationError as exc:
                why = format_validation_error(exc, params_class.model_fields)
                raise ActivewsError(
                    f"{label}: the search space of {name!r} ({tune.describe()}) holds {value!r}, which is not "
                    f"a valid value ({why}); make the space lie within the field's bounds"
                ) from None


def what_is(obj: Any) -> str:
    """What ``obj`` is, for an error about an object of the wrong kind: ``"class Foo"``, ``"module m"``,
    ``"function f"``, ``"an object of type int"``."""
    if inspect.ismodule(obj):
        return f"module {obj.__name__}"
    if inspect.isclass(obj):
        return f"class {obj.__qualname__}"
    if inspect.isroutine(obj):
        return f"function {getattr(obj, '__qualname__', obj)}"
    return f"an object of type {type(obj).__name__}"


class _ClassOrInstanceMethod(Generic[R]):
    """A method bound to the instance when called on one, else to the class (like a classmethod).

    ``label()`` and ``parse_params()`` work on a class (``get_strategy(name).parse_params(values)``) and on
    an instance whose ``name`` is its own (a row-wise acquisition wrapped under its registered name).
    """

    def __init__(self, func: Callable[..., R]) -> None:
        self.__func__ = func
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def __get__(self, obj: object, owner: type | None = None) -> Callable[..., R]:
        return types.MethodType(self.__func__, owner if obj is None else obj)


class Configurable:
    """Base of a component with validated parameters and a registry name.

    A family (strategies, batch selectors) derives its root class from this, sets ``kind`` (the word
    that starts its messages) and derives the root's nested ``Params`` from ``Configurable.Params``;
    each member sets its own ``Params`` derived from the root's.

    Class attributes:
        kind: what the family is called in messages (``"strategy"``, ``"acquisition"``).
        name: the registry name (set when the class is registered; "" before).
    """

    class Params(FrozenParams):
        """Parameters of the component; validated, frozen, unknown keys rejected."""

    kind: ClassVar[str] = "component"
    name: str = ""
    params: Any

    @_ClassOrInstanceMethod
    def label(self_or_cls: Any) -> str:
        """How messages name this component: ``"strategy 'warm'"``, or the class name before registration."""
        cls = self_or_cls if isinstance(self_or_cls, type) else type(self_or_cls)
        name = self_or_cls.name
        return f"{cls.kind} {name!r}" if name else f"{cls.kind} {cls.__name__}"

    @_ClassOrInstanceMethod
    def parse_params(self_or_cls: Any, values: Mapping[str, Any]) -> Any:
        """Validate ``values`` against ``Params``; raise a one-line :class:`ActivewsError` if invalid."""
        return validate_params(self_or_cls.Params, values, self_or_cls.label())

    @_ClassOrInstanceMethod
    def coerce_params(self_or_cls: Any, params: BaseModel | Mapping[str, Any] | None) -> Any:
        """``params`` if it is a ``Params`` object of this class, else ``parse_params(params or {})``.

        Raises:
            ActivewsError: ``params`` is a pydantic model of another class, or invalid values.
        """
        cls = self_or_cls if isinstance(self_or_cls, type) else type(self_or_cls)
        if isinstance(params, BaseModel):
            if not isinstance(params, cls.Params):
                raise ActivewsError(
                    f"{self_or_cls.label()}: expected {cls.__name__}.Params, got {type(params).__name__}"
                )
            return params
        return self_or_cls.parse_params(params or {})

    def describe(self) -> str:
        """One line: name and parameter values."""
        values = ", ".join(f"{k}={v}" for k, v in self.params.model_dump().items())
        return f"{self.name}({values})"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    # ------------------------------------------------------------------ checks run when registering a class

    @classmethod
    def admit(cls, member: type[C], name: str, *, claim: bool = False) -> type[C]:
        """Check ``member`` for registration under ``name`` in ``cls``'s family and name it; returns it.

        Call on the family's root (``InitStrategy.admit(cls, name)``), from its ``register_*`` decorator
        and its registry's entry-point check, after checking that ``member`` is a subclass.

        Args:
            member: the class being registered.
            name: the registry name.
            claim: an entry point's name: refused if ``member`` declares, or was registered under, another
                name (an inherited name is replaced). Otherwise (a decorator) ``name`` replaces any.

        Raises:
            ActivewsError: ``member.Params`` does not derive from ``cls.Params``, or (``claim``) the class
                carries another name.
        """
        if not (inspect.isclass(member.Params) and issubclass(member.Params, cls.Params)):
            raise ActivewsError(f"{member.__qualname__}.Params must derive from {cls.__name__}.Params")
        own = member.__dict__.get("name", "")
        if claim and own and own != name:
            raise ActivewsError(
                f"class {member.__qualname__} is registered as {own!r}; name the entry point {own!r} or "
                f"register the class as {name!r}"
            )
        member.name = name
        check_search_space(member.Params, member.label())
        return member

    @classmethod
    def check_implements(cls, member: type[Configurable], method: str) -> None:
        """Raise unless ``member`` overrides ``cls``'s ``method`` (call on the class that declares it)."""
        if getattr(member, method) is getattr(cls, method):
            raise ActivewsError(f"class {member.__qualname__} does not implement {method}")
