"""Plugins: user modules (``--plugin``), installed packages (entry points), and references to a user's
own objects (``package.module:function``, as ``--model`` and ``--train-fn`` take them).

Modules loaded with :func:`load_plugin` are remembered so that worker processes (``--workers``, Ray)
can import them too before running a cell. Installed packages need nothing of the kind: their entry
points (groups ``activews.strategies``, ``activews.acquisitions``, ``activews.models``,
``activews.datasets``) are found by every process that looks a name up (see :mod:`activews.registry`);
each registry checks what an entry point loads (for strategies and acquisitions, the checks of
``register_strategy`` and ``register_acquisition``).

A foundation module: it imports nothing from the domain packages (strategies, streams, models, data).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from activews.errors import ActivewsError

__all__ = ["import_reference", "is_reference", "load_plugin", "loaded_plugins", "reference_of"]

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


_NAME = r"[A-Za-z_]\w*"
_REFERENCE = re.compile(rf"{_NAME}(?:\.{_NAME})*:{_NAME}(?:\.{_NAME})*")


def is_reference(text: str) -> bool:
    """Whether ``text`` is meant as a ``package.module:attribute`` reference (it holds a colon)."""
    return ":" in text


def reference_of(obj: Any) -> str:
    """``"package.module:qualname"`` of a function or class (``"mod:outer.<locals>.f"`` for a closure,
    ``"__main__:<lambda>"`` for a lambda); ``"module:Type(...)"`` for an object without a qualified name
    (a ``functools.partial``, a callable instance), which no import resolves."""
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}:{qualname}"
    kind = type(obj)
    return f"{kind.__module__}:{kind.__qualname__}(...)"


def import_reference(text: str, flag: str, example: str = "mypkg.nets:make_net") -> Any:
    """The callable that ``"package.module:attribute"`` names, imported.

    Raises:
        ActivewsError: one line naming the fix (``flag`` is how the user gave it, e.g. ``--model``) when
            the text is not such a reference, the module is not found or fails to import, the attribute is
            missing, or it is not callable.
    """
    if not _REFERENCE.fullmatch(text):
        raise ActivewsError(
            f"{flag} {text!r} is not a reference of the form package.module:function; write it like "
            f"{example} (a module-level function or class of an importable module)"
        )
    module_name, _, attr = text.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ActivewsError(
                f"{flag} {text!r}: no module named {exc.name!r}; install it or put its folder on "
                "PYTHONPATH (e.g. PYTHONPATH=. activews bench ...)"
            ) from None
        raise ActivewsError(
            f"{flag} {text!r}: module {module_name!r} failed to import: {_one_line(exc)}; fix that import"
        ) from None
    except Exception as exc:  # the user's module raised while importing
        raise ActivewsError(
            f"{flag} {text!r}: module {module_name!r} failed to import: {_one_line(exc)}; fix the module"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ActivewsError(
                f"{flag} {text!r}: module {module_name!r} has no attribute {attr!r}; check the name, or "
                "define it at module level there"
            ) from None
    if not callable(obj):
        raise ActivewsError(
            f"{flag} {text!r} is a {type(obj).__name__}, not a callable; point it at a function or class"
        )
    return obj


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
