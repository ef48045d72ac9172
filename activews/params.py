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

This is a foundation module: it imports only :mod:`activews.errors`, :mod:`activews.validation` and
third-party libraries.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from activews.errors import ActivewsError, format_validation_error
from activews.validation import Settings

__all__ = ["FrozenParams", "Configurable", "validate_params", "what_is"]

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
        return member

    @classmethod
    def check_implements(cls, member: type[Configurable], method: str) -> None:
        """Raise unless ``member`` overrides ``cls``'s ``method`` (call on the class that declares it)."""
        if getattr(member, method) is getattr(cls, method):
            raise ActivewsError(f"class {member.__qualname__} does not implement {method}")
