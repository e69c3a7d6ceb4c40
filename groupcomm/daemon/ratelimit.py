"""``Warnings``: warning lines about input from the network, rate-limited so that a broken or
hostile peer or client cannot flood the log.

At most one line per key (a peer and a kind of fault, a client link) per ``interval_s``; the
next line that goes out says how many were suppressed for that key since the last one
(``suppressed``). Keys are cheap to create (a client may connect, send garbage and disconnect
in a loop), so two more bounds hold: at most ``burst`` lines per event name per interval over
all keys (the excess is counted in ``suppressed_all`` of the event's next line), and at most
``max_keys`` keys remembered (the oldest are forgotten first). Owns no logger configuration
and no clock: both are handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

INTERVAL_S = 60.0
BURST = 10
MAX_KEYS = 4096


class Warnings:
    def __init__(
        self,
        log: Any,
        clock: Callable[[], float],
        *,
        interval_s: float = INTERVAL_S,
        burst: int = BURST,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.log = log
        self.clock = clock
        self.interval_s = interval_s
        self.burst = burst
        self.max_keys = max_keys
        self._keys: dict[Hashable, list[float | int]] = {}  # key -> [last line at, suppressed]
        self._events: dict[str, list[float | int]] = {}  # event -> [window start, lines, over]

    def warning(self, key: Hashable, event: str, /, **fields: Any) -> bool:
        """Log ``event`` with ``fields`` unless ``key`` was logged within the interval (or the
        event's burst is spent); True when a line went out."""
        now = self.clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] < self.interval_s:
            entry[1] += 1
            return False
        window = self._events.get(event)
        if window is None or now - window[0] >= self.interval_s:
            window = self._events[event] = [now, 0, window[2] if window else 0]
        if window[1] >= self.burst:
            window[2] += 1
            if entry is not None:
                entry[1] += 1  # still owed to this key's next line
            return False
        window[1] += 1
        suppressed = int(entry[1]) if entry is not None else 0
        over, window[2] = int(window[2]), 0
        self._keys.pop(key, None)  # re-inserted last: the dict stays oldest first
        self._keys[key] = [now, 0]
        if len(self._keys) > self.max_keys:
            del self._keys[next(iter(self._keys))]
        extra: dict[str, int] = {"suppressed": suppressed}
        if over:
            extra["suppressed_all"] = over
        self.log.warning(event, **fields, **extra)
        return True

    def forget(self, key: Hashable) -> None:
        """The key's source is gone (a closed link): its suppressed count goes with it."""
        self._keys.pop(key, None)
