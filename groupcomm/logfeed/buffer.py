"""``RecordBuffer``: the bounded hand-over between threads that log and the thread that sends.

It owns the queued payloads, the bound (records and bytes) and the drop count; it does not
send. ``put`` never waits: when the buffer is full the payload is dropped and counted, because
a logging call must not stall the application for the sake of a log feed. The sending side
``take`` s batches and, before waiting, ``arm`` s a wake-up that the next ``put`` calls once
(so a busy feed costs no cross-thread wake-up per record).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

DEFAULT_QUEUE_RECORDS = 10_000
DEFAULT_QUEUE_BYTES = 8 * 1024 * 1024


class RecordBuffer:
    """At most ``max_records`` payloads and ``max_bytes`` bytes, first in first out."""

    def __init__(
        self, max_records: int = DEFAULT_QUEUE_RECORDS, max_bytes: int = DEFAULT_QUEUE_BYTES
    ) -> None:
        if max_records < 1 or max_bytes < 1:
            raise ValueError("max_records and max_bytes must be >= 1")
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.dropped = 0  # payloads refused because the buffer was full
        self._lock = threading.Lock()
        self._items: deque[bytes] = deque()
        self._bytes = 0
        self._wake: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, payload: bytes) -> bool:
        """Queue ``payload``, or drop and count it when it does not fit; never waits."""
        with self._lock:
            if len(self._items) >= self.max_records or self._bytes + len(payload) > self.max_bytes:
                self.dropped += 1
                return False
            self._items.append(payload)
            self._bytes += len(payload)
            wake, self._wake = self._wake, None
        if wake is not None:
            wake()  # outside the lock: it may take a while (a write to the loop's self-pipe)
        return True

    def take(self, max_bytes: int) -> list[bytes]:
        """The oldest payloads, up to ``max_bytes`` (at least one if any is queued)."""
        out: list[bytes] = []
        size = 0
        with self._lock:
            items = self._items
            while items and (not out or size + len(items[0]) <= max_bytes):
                payload = items.popleft()
                out.append(payload)
                size += len(payload)
            self._bytes -= size
        return out

    def arm(self, wake: Callable[[], None]) -> bool:
        """Have the next ``put`` call ``wake``; ``False`` (and nothing armed) when something
        is queued already: take it instead of waiting."""
        with self._lock:
            if self._items:
                return False
            self._wake = wake
            return True
