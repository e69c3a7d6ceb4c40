"""When a publisher sends: line ``i`` of a publisher offering ``rate`` lines/s is due at
``start + i / rate`` (absolute times, so a late send does not push the later lines back), and it
sends every line due, up to ``batch`` per call; in flood mode (``rate == 0``) always ``batch``.

Shared by the groupcomm publisher (asyncio) and the Redis publishers (blocking), so both offer
the same load the same way. Pure arithmetic: the callers read the clock and sleep.
"""

from __future__ import annotations


class Pacer:
    __slots__ = ("batch", "interval_ns", "start_ns")

    def __init__(self, start_ns: int, rate: float, batch: int) -> None:
        if rate < 0 or batch < 1:
            raise ValueError("need rate >= 0 and batch >= 1")
        self.start_ns = start_ns
        self.interval_ns = 1e9 / rate if rate > 0 else 0.0
        self.batch = batch

    def due(self, sent: int, now_ns: int) -> int:
        """How many lines to send now, after ``sent`` were sent (0 .. batch)."""
        if self.interval_ns == 0.0:
            return self.batch
        if now_ns < self.start_ns:
            return 0
        owed = int((now_ns - self.start_ns) / self.interval_ns) + 1 - sent
        return max(0, min(self.batch, owed))

    def wait_s(self, sent: int, now_ns: int) -> float:
        """Seconds until line ``sent`` is due (0 when it already is, and in flood mode)."""
        due_at = self.start_ns + sent * self.interval_ns
        return max(0.0, (due_at - now_ns) / 1e9)
