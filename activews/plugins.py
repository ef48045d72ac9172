"""Plugins: user modules (``--plugin``) and installed packages (entry points).

Modules loaded with :func:`load_plugin` are remembered so that worker processes (``--workers``, Ray)
can import them too before running a cell. Installed packages need nothing of the kind: their entry
points (groups ``activews.strategies``, ``activews.acquisitions``, ``activews.models``,
``activews.datasets``) are found by every process that looks a name up (see :mod:`activews.registry`).
:func:`check_strategy_plugin` and :func:`check_acquisition_plugin` check what an entry point loads.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from activews.errors import ActivewsError

__all__ = ["load_plugin", "loaded_plugins", "check_strategy_plugin", "check_acquisition_plugin"]

_LOADED: list[str] = []


def loaded_plugins() -> list[str]:
    """The plugin specs loaded in this process, in order (absolute paths for files)."""
    return list(_LOADED)


def load_plugin(spec: str) -> None:
    """Import a module by name, or a ``.py`` file by path, so that its registrations take effect."""
    if spec.endswith(".py"):
        path = Path(spec).resolve()
        if not path.is_file():
            raise ActivewsError(f"--plugin {spec!r}: no such file")
        key = str(path)
        if key in _LOADED:
            return
        name = f"activews_plugin_{path.stem}"
        try:
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            sys.modules[name] = module
            module_spec.loader.exec_module(module)  # type: ignore[union-attr]
        except ActivewsError:
            raise
        except Exception as exc:
            sys.modules.pop(name, None)
            raise ActivewsError(f"--plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from None
    else:
        key = spec
        if key in _LOADED:
            return
        try:
            importlib.import_module(spec)
        except ModuleNotFoundError as exc:
            raise ActivewsError(
                f"--plugin {spec!r}: module not found ({exc.name}); install it or pass a .py path"
            ) from None
        except ActivewsError:
            raise
        except Exception as exc:
            raise ActivewsError(f"--plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from None
    _LOADED.append(key)


# ------------------------------------------------------------------------------ entry-point checks


def _what(obj: Any) -> str:
    if inspect.ismodule(obj):
        return f"module {obj.__name__}"
    if inspect.isclass(obj):
        return f"class {obj.__qualname__}"
    if inspect.isroutine(obj):
        return f"function {getattr(obj, '__qualname__', obj)}"
    return f"an object of type {type(obj).__name__}"


def _claim_name(cls: Any, name: str) -> None:
    """Give ``cls`` the entry point's name, unless it declares (or was registered under) another one."""
    own = cls.__dict__.get("name", "")
    if own and own != name:
        raise ActivewsError(
            f"class {cls.__qualname__} is registered as {own!r}; name the entry point {own!r} or register "
            f"the class as {name!r}"
        )
    cls.name = name  # an inherited name (a subclass of a built-in) is replaced by the entry point's


def check_strategy_plugin(name: str, obj: Any) -> Any:
    """What an ``activews.strategies`` entry point may load: an :class:`InitStrategy` subclass that
    implements ``init_round`` and whose ``Params`` derive from ``InitStrategy.Params``. Its ``name``
    becomes the entry point's name. Raises :class:`ActivewsError` saying what is wrong otherwise.
    """
    from activews.strategies.base import InitStrategy

    if not (inspect.isclass(obj) and issubclass(obj, InitStrategy)):
        raise ActivewsError(f"it is {_what(obj)}, not an InitStrategy subclass")
    if obj.init_round is InitStrategy.init_round:
        raise ActivewsError(f"class {obj.__qualname__} does not implement init_round")
    if not (inspect.isclass(obj.Params) and issubclass(obj.Params, InitStrategy.Params)):
        raise ActivewsError(f"{obj.__qualname__}.Params must derive from InitStrategy.Params")
    _claim_name(obj, name)
    return obj


def check_acquisition_plugin(name: str, obj: Any) -> Any:
    """What an ``activews.acquisitions`` entry point may load, as for ``@register_acquisition``: a
    row-wise function ``f(probs, *, generator=None)``, or a :class:`BatchSelector` subclass that
    implements ``select`` (``score`` for a ``ScoringSelector``) and whose ``Params`` derive from
    ``BatchSelector.Params``; a class's ``name`` becomes the entry point's name. Raises
    :class:`ActivewsError` saying what is wrong otherwise.
    """
    from activews.streams.acquisition import BatchSelector, RowWise, ScoringSelector

    if inspect.isclass(obj):
        if not issubclass(obj, BatchSelector) or issubclass(obj, RowWise):
            raise ActivewsError(
                f"it is {_what(obj)}, not a BatchSelector subclass or a function f(probs, *, generator)"
            )
        if (
            issubclass(obj, ScoringSelector)
            and obj.select is ScoringSelector.select
            and obj.score is ScoringSelector.score
        ):
            raise ActivewsError(f"class {obj.__qualname__} does not implement score")
        if obj.select is BatchSelector.select:
            raise ActivewsError(f"class {obj.__qualname__} does not implement select")
        if not (inspect.isclass(obj.Params) and issubclass(obj.Params, BatchSelector.Params)):
            raise ActivewsError(f"{obj.__qualname__}.Params must derive from BatchSelector.Params")
        _claim_name(obj, name)
        return obj
    if not callable(obj) or inspect.ismodule(obj):
        raise ActivewsError(f"it is {_what(obj)}, not a function f(probs, *, generator) or a BatchSelector")
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):  # some builtins have none: accept, as @register_acquisition does
        return obj
    try:
        signature.bind(None, generator=None)
    except TypeError:
        raise ActivewsError(
            f"{_what(obj)}{signature} cannot be called as f(probs, *, generator=None)"
        ) from None
    return obj
