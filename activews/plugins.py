"""Plugins: user modules (``--plugin``) and installed packages (entry points).

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
import sys
from pathlib import Path

from activews.errors import ActivewsError

__all__ = ["load_plugin", "loaded_plugins"]

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
