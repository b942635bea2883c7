"""A read-only, hashable mapping (for ``ModelSpec.categories``)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["FrozenMap"]


class FrozenMap(Mapping):
    """An immutable mapping that keeps insertion order and can be hashed.

    Equal to any mapping with the same items (``FrozenMap({"a": (1,)}) == {"a": (1,)}``).
    """

    __slots__ = ("_items", "_dict")

    def __init__(self, items=()):
        data = dict(items)
        object.__setattr__(self, "_dict", data)
        object.__setattr__(self, "_items", tuple(data.items()))

    def __getitem__(self, key):
        return self._dict[key]

    def __iter__(self):
        return iter(self._dict)

    def __len__(self):
        return len(self._dict)

    def __hash__(self):
        return hash(self._items)

    def __setattr__(self, name, value):
        raise AttributeError("FrozenMap is read-only")

    def __reduce__(self):
        return (FrozenMap, (self._items,))

    def __repr__(self):
        return f"FrozenMap({self._dict!r})"
