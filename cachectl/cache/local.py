"""In-process stores: a size-bounded LRU whose entries expire (the L1, and the fallback store).

Thread-safe. Expiry times come from the injected monotonic clock (seconds).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

MISSING: Any = object()


class LocalStore:
    """An LRU of at most ``max_items`` entries, each with its own expiry."""

    def __init__(self, max_items: int, clock: Callable[[], float]) -> None:
        self.max_items = max_items
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, Any, str]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Any:
        """The value, or ``MISSING`` (absent or expired)."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return MISSING
            if entry[0] <= self._clock():
                del self._data[key]
                return MISSING
            self._data.move_to_end(key)
            return entry[1]

    def put(self, key: str, value: Any, ttl_ms: float, namespace: str = "") -> None:
        if self.max_items <= 0 or ttl_ms <= 0:
            return
        expires = self._clock() + ttl_ms / 1000.0
        with self._lock:
            self._data[key] = (expires, value, namespace)
            self._data.move_to_end(key)
            while len(self._data) > self.max_items:
                self._data.popitem(last=False)

    def discard(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._data.pop(key, None)

    def discard_namespaces(self, names: Iterable[str]) -> None:
        wanted = set(names)
        with self._lock:
            for key in [k for k, e in self._data.items() if e[2] in wanted]:
                del self._data[key]

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
