"""A bounded least-recently-used mapping, for what is built once and asked for again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """A bounded mapping that forgets the least recently used entry first."""

    def __init__(self, maxsize: int, forget: Callable[[K, V], None] | None = None) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[K, V] = OrderedDict()
        self._forget = forget  # called with each entry the bound pushes out

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> V:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.maxsize:
            old_key, old_value = self._items.popitem(last=False)
            if self._forget is not None:
                self._forget(old_key, old_value)
        return value

    def __len__(self) -> int:
        return len(self._items)
