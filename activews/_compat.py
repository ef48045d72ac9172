"""Import paths of activews before its engine/, report/, reproduce/ and cli/ packages, kept working with a
``DeprecationWarning`` that names the new path.

``import activews.bench`` (or ``from activews.bench import run_experiments``) gives a module whose names
resolve in the new modules listed for it, in order: one table, no shim files. The warning is raised once
per old module, when it is first imported.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

__all__ = ["MOVED", "install"]

MOVED: dict[str, tuple[str, ...]] = {
    "activews.bench": (
        "activews.engine.bench",
        "activews.engine.summary",
        "activews.engine.setup",
        "activews.engine.arm",
    ),
    "activews.arm": ("activews.engine.arm", "activews.engine.setup"),
    "activews.config": ("activews.engine.config",),
    "activews.executors": ("activews.engine.executors",),
    "activews.store": ("activews.engine.store",),
    "activews.checkpoint": ("activews.engine.checkpoint",),
    "activews.runlock": ("activews.engine.runlock",),
    "activews.resources": ("activews.engine.resources",),
    "activews.workers": ("activews.engine.workers",),
    "activews.sweep": ("activews.engine.sweep",),
    "activews.results": ("activews.files", "activews.report.folder"),
    "activews.protocols": ("activews.reproduce", "activews.reproduce.base", "activews.reproduce.presets"),
}
"""Old module -> the modules its names now live in (searched in order)."""


class _MovedModule(types.ModuleType):
    """An old import path: attribute access resolves in the new modules."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Deprecated alias of {', '.join(targets)}.")
        self._targets = targets

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(
            f"module {self.__name__!r} has no attribute {attr!r} (moved to {self._targets[0]})"
        )

    def __dir__(self) -> list[str]:
        names: set[str] = set()
        for target in self._targets:
            names.update(getattr(importlib.import_module(target), "__all__", ()))
        return sorted(names)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        targets = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {targets[0]}; import from there (the old path will be removed)",
            DeprecationWarning,
            stacklevel=2,  # warnings skips importlib's frames: this is the import statement
        )
        return _MovedModule(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
