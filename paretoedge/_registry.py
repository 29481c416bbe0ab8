"""A small name → object registry used for every plug-in point.

Transforms, objectives, devices' runtimes and search backends register themselves under
a name; lookups of an unknown name raise :class:`~paretoedge.errors.UnknownNameError`
listing what is known, so a typo in a YAML file becomes a clear message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from paretoedge.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to plug-ins of one kind.

    Args:
        kind: What is registered (used in error messages, e.g. ``"objective"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a second registration is a bug."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
