"""``--trace FILE``: the daemon's observable history in the simulator's JSON Lines trace format.

The format is ``docs/simulation.md`` section "Trace format"; the mapping from core commands to
events is shared with the simulator (``groupcomm.core.tracing``); session open/close are
``open``/``close``. ``t`` is
wall-clock milliseconds (never decreasing within one file), so the traces of several daemons
merge by time: ``python -m sim.check_trace d1.jsonl d2.jsonl d3.jsonl``.

Lines are buffered during a driver turn and written with one ``write`` + ``flush`` per turn, so
a daemon killed with SIGKILL leaves a file that ends on a complete line (almost always).
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from groupcomm.core.commands import Command
from groupcomm.core.tracing import trace_event


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class TraceWriter:
    def __init__(self, path: str, token: str) -> None:
        self.path = path
        self.token = token
        self._file: TextIO | None = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._lines: list[str] = []
        self._last_t = 0

    def record(self, ev: str, **fields: Any) -> None:
        t = max(wall_ms(), self._last_t)
        self._last_t = t
        fields["t"] = t
        fields["ev"] = ev
        self._lines.append(json.dumps(fields, separators=(",", ":"), sort_keys=True))

    def opened(self, conn: str) -> None:
        self.record("open", p=conn, d=self.token)

    def closed(self, conn: str) -> None:
        self.record("close", p=conn, d=self.token)

    def command(self, cmd: Command) -> None:
        """Record ``cmd`` if it is observable (others are ignored)."""
        event = trace_event(self.token, cmd)
        if event is not None:
            ev = str(event.pop("ev"))
            self.record(ev, **event)

    def flush(self) -> None:
        if self._lines and self._file is not None:
            self._file.write("\n".join(self._lines) + "\n")
            self._file.flush()
            self._lines.clear()

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
