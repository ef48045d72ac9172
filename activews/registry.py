"""One generic name registry, shared by strategies, models, datasets and acquisition functions.

A registry maps a name (the same token on the CLI, in configs and in Python) to an object. Third-party
packages add entries through an entry-point group (``activews.strategies``, ``activews.acquisitions``,
...). Entry points are plugins that are loaded lazily:

- importing activews, or looking up a name registered in-process (every built-in), imports no plugin;
  the installed packages' metadata is read once, on the first lookup of a name that is not registered
  in-process (or when all names are listed), and a plugin's module is imported on the first lookup of
  *its* name;
- a broken plugin (its import fails, or its object is not what the registry holds) fails only when its
  name is used, with a one-line :class:`ActivewsError` naming the plugin, the entry point and the
  package that provides it; the error is remembered, so asking again gives the same message;
- names registered in-process (the built-ins, ``--plugin`` modules, ``register_*`` calls) win over
  entry points of the same name, which are ignored with a logged warning;
- two installed packages that declare the same name with different targets make that name ambiguous:
  using it is an error naming both packages (a package found twice on ``sys.path`` counts once: the
  first copy wins, as for imports).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

from activews.errors import ActivewsError, UnknownNameError

T = TypeVar("T")
log = logging.getLogger(__name__)

__all__ = ["Registry", "entry_point_package"]


def entry_point_package(ep: metadata.EntryPoint) -> str | None:
    """``"name version"`` of the distribution that declares ``ep``, or None if unknown."""
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None
    try:
        name, version = dist.name, dist.version
    except Exception:  # unreadable METADATA: still name the entry point itself
        return None
    return f"{name} {version}" if name else None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Registry(Generic[T]):
    """A name -> object mapping with close-match errors and lazy entry-point plugins.

    Args:
        kind: what the entries are, used in messages ("strategy", "model", ...).
        entry_point_group: the ``importlib.metadata`` group third-party packages register under.
        dashed: names may contain dashes (``two-phase``), for CLI-only names such as protocols.
        check: called as ``check(name, obj)`` on every object loaded from an entry point, before it is
            registered; returns the object to register (it may set the object's ``name``) or raises
            :class:`ActivewsError` saying what is wrong with it (the registry adds which plugin it was).
    """

    def __init__(
        self,
        kind: str,
        entry_point_group: str | None = None,
        *,
        dashed: bool = False,
        check: Callable[[str, Any], T] | None = None,
    ) -> None:
        self.kind = kind
        self.dashed = dashed
        self.entry_point_group = entry_point_group
        self.check = check
        self._entries: dict[str, T] = {}
        self._plugins: dict[str, metadata.EntryPoint] | None = None
        self._conflicts: dict[str, list[metadata.EntryPoint]] = {}  # name -> every differing entry point
        self._failed: dict[str, ActivewsError] = {}  # name -> the error its plugin raised
        self._from_plugins: dict[str, T] = {}  # names loaded from entry points, and what they loaded

    def register(self, name: str, obj: T | None = None, *, overwrite: bool = False) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``."""
        if not isinstance(name, str) or not (name.replace("-", "_") if self.dashed else name).isidentifier():
            raise ActivewsError(
                f"invalid {self.kind} name {name!r}: use a Python identifier such as 'my_{self.kind}'"
            )

        def add(target: T) -> T:
            if name in self._entries and self._entries[name] is not target and not overwrite:
                raise ActivewsError(
                    f"{self.kind} {name!r} is already registered; pick another name or pass overwrite=True"
                )
            self._entries[name] = target
            return target

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (mainly for tests and interactive sessions)."""
        self._entries.pop(name, None)
        self._from_plugins.pop(name, None)

    # -------------------------------------------------------------------------------- entry points

    def refresh_plugins(self) -> None:
        """Forget the entry-point scan, and the entries and errors of plugins loaded from it.

        The next lookup of a name that is not registered in-process reads the installed packages again:
        call this after installing or removing a plugin package in a running session (and in tests).
        """
        for name, obj in self._from_plugins.items():
            if self._entries.get(name) is obj:
                del self._entries[name]
        self._from_plugins.clear()
        self._failed.clear()
        self._conflicts.clear()
        self._plugins = None

    def _plugin_entry_points(self) -> dict[str, metadata.EntryPoint]:
        if self._plugins is None:
            self._plugins = {}
            self._conflicts = {}
            if self.entry_point_group:
                try:
                    found = list(metadata.entry_points(group=self.entry_point_group))
                except Exception as exc:  # a package with unreadable metadata must not break activews
                    log.warning(
                        "could not read the %r entry points of the installed packages (%s); "
                        "%s plugins from installed packages are unavailable",
                        self.entry_point_group,
                        _one_line(exc),
                        self.kind,
                    )
                    found = []
                for ep in found:
                    first = self._plugins.setdefault(ep.name, ep)
                    if first is not ep and first.value != ep.value:
                        self._conflicts.setdefault(ep.name, [first]).append(ep)
                for name, ep in list(self._plugins.items()):
                    if name in self._entries and name not in self._from_plugins:
                        del self._plugins[name]
                        self._conflicts.pop(name, None)
                        log.warning(
                            "ignoring %s plugin %s: %r is already registered (built in, or loaded in this "
                            "process), which takes precedence; rename the entry point",
                            self.kind,
                            self._describe(ep),
                            name,
                        )
        return self._plugins

    def _describe(self, ep: metadata.EntryPoint) -> str:
        package = entry_point_package(ep)
        return f"{ep.name!r} ({ep.value}" + (f", from package {package})" if package else ")")

    def plugin_source(self, name: str) -> str | None:
        """Where a plugin name comes from (``"package version"`` or the entry point's value), or None
        if ``name`` is registered in-process (built in, ``--plugin``) or unknown."""
        if name in self._entries and name not in self._from_plugins:
            return None
        ep = self._plugin_entry_points().get(name)
        return None if ep is None else (entry_point_package(ep) or ep.value)

    def _load_plugin(self, name: str) -> T | None:
        ep = self._plugin_entry_points().get(name)
        if ep is None:
            return None
        if name in self._failed:
            raise self._failed[name]
        package = entry_point_package(ep)
        fix = f"pip uninstall {package.split()[0]}" if package else "the package that provides it"
        where = f"{self.kind} plugin {self._describe(ep)}"
        if name in self._conflicts:
            providers = " and ".join(
                f"{entry_point_package(e) or 'an unnamed package'} ({e.value})" for e in self._conflicts[name]
            )
            error = ActivewsError(
                f"{self.kind} plugin {name!r} is declared by several installed packages: {providers}; "
                f"uninstall all but one of them"
            )
        else:
            error = None
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must name itself, not crash the caller obscurely
                error = ActivewsError(
                    f"{where} failed to load: {_one_line(exc)}; fix or uninstall the package that provides "
                    f"it" + (f" ({fix})" if package else "")
                )
            else:
                registered = self._entries.get(name)  # registered by the import (a register_* decorator)
                try:
                    if self.check is None:  # models, datasets: the decorator registered what they hold
                        obj = obj if registered is None else registered
                    else:
                        obj = self.check(name, obj)
                    if registered is not None and registered is not obj:
                        raise ActivewsError(
                            f"importing it registered another object under {name!r} "
                            f"({getattr(registered, '__qualname__', type(registered).__name__)})"
                        )
                except ActivewsError as exc:
                    error = ActivewsError(
                        f"{where} is not a valid {self.kind}: {exc}; fix the entry point in the package's "
                        f"pyproject.toml or uninstall it" + (f" ({fix})" if package else "")
                    )
        if error is not None:
            self._entries.pop(name, None)  # get() only loads names not registered before: undo the import's
            self._failed[name] = error
            raise error.with_traceback(None) from None
        self._entries[name] = obj
        self._from_plugins[name] = obj
        return obj

    # ------------------------------------------------------------------------------------- lookups

    def get(self, name: str) -> T:
        """Return the entry for ``name``, or raise :class:`UnknownNameError` suggesting close matches.

        A name that only an entry point provides is loaded now; if that fails, :class:`ActivewsError`.
        """
        if name in self._entries:
            return self._entries[name]
        loaded = self._load_plugin(name)
        if loaded is not None:
            return loaded
        raise UnknownNameError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        hint = (
            f"did you mean {' or '.join(repr(c) for c in close)}?"
            if close
            else f"choose one of: {', '.join(names)}"
        )
        return f"unknown {self.kind} {name!r}; {hint}"

    def __contains__(self, name: object) -> bool:
        """True for registered names and for plugin names, loaded or not (broken ones included)."""
        return isinstance(name, str) and (name in self._entries or name in self._plugin_entry_points())

    def names(self) -> list[str]:
        """All registered names (in-process and plugins), sorted; imports no plugin."""
        return sorted(set(self._entries) | set(self._plugin_entry_points()))

    def items(self) -> Iterator[tuple[str, T]]:
        """Iterate over ``(name, entry)``, loading plugins as needed; a broken plugin raises when reached
        (use :meth:`entries` to list around it)."""
        for name in self.names():
            yield name, self.get(name)

    def entries(self) -> Iterator[tuple[str, T | None, ActivewsError | None]]:
        """Iterate over ``(name, entry, None)``, or ``(name, None, error)`` for a plugin that fails to load.

        For listings: every name appears, and a broken plugin is reported instead of stopping the listing.
        """
        for name in self.names():
            try:
                yield name, self.get(name), None
            except ActivewsError as exc:
                yield name, None, exc
