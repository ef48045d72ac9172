"""One generic name registry, shared by strategies, models, datasets and acquisition functions.

A registry maps a name (the same token on the CLI, in configs and in Python) to an object. Third-party
packages add entries through an entry-point group; those are loaded lazily, on the first lookup of a
name that is not registered in-process, so a broken plugin only fails when it is asked for.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from activews.errors import ActivewsError, UnknownNameError

T = TypeVar("T")
log = logging.getLogger(__name__)


class Registry(Generic[T]):
    """A name -> object mapping with close-match errors and lazy entry-point plugins.

    Args:
        kind: what the entries are, used in messages ("strategy", "model", ...).
        entry_point_group: the ``importlib.metadata`` group third-party packages register under.
        dashed: names may contain dashes (``two-phase``), for CLI-only names such as protocols.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None, *, dashed: bool = False) -> None:
        self.kind = kind
        self.dashed = dashed
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._plugins: dict[str, metadata.EntryPoint] | None = None

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

    def _plugin_entry_points(self) -> dict[str, metadata.EntryPoint]:
        if self._plugins is None:
            self._plugins = {}
            if self.entry_point_group:
                for ep in metadata.entry_points(group=self.entry_point_group):
                    self._plugins.setdefault(ep.name, ep)
        return self._plugins

    def _load_plugin(self, name: str) -> T | None:
        ep = self._plugin_entry_points().get(name)
        if ep is None:
            return None
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must name itself, not crash the caller obscurely
            raise ActivewsError(
                f"{self.kind} plugin {name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}; "
                f"fix or uninstall the package that provides it"
            ) from exc
        if name not in self._entries:
            self._entries[name] = obj
        return self._entries[name]

    def get(self, name: str) -> T:
        """Return the entry for ``name``, or raise :class:`UnknownNameError` suggesting close matches."""
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
        return isinstance(name, str) and (name in self._entries or name in self._plugin_entry_points())

    def names(self) -> list[str]:
        """All registered names (in-process and plugins), sorted."""
        return sorted(set(self._entries) | set(self._plugin_entry_points()))

    def items(self) -> Iterator[tuple[str, T]]:
        """Iterate over ``(name, entry)``, loading plugins as needed."""
        for name in self.names():
            yield name, self.get(name)
