"""``--trace FILE``: the daemon's observable history in the simulator's JSON Lines trace format.

The format is ``docs/simulation.md`` section "Trace format"; the mapping from core commands to
events is shared with the simulator (``groupcomm.core.tracing``); session open/close are
``open``/``close``. ``t`` is
wall-clock milliseconds (never decreasing within one file), so the traces of several daemons
merge by time: ``python -m sim.check_trace d1.jsonl d2.jsonl d3.jsonl``.

Lines are buffered during a driver turn and written with one ``write`` + ``flush`` per turn, so
a daemon killed with SIGKILL leaves a file that ends on a complete line (almost always; a torn
last line is repaired by the next writer, see ``prepare``).

Crashes are seen at the restart. A daemon appends to its file across restarts; a clean shutdown
(the core's ``shutdown`` note, after SIGTERM/SIGINT) ends its incarnation with the informational
``{"ev": "fault", "what": "shutdown", "d": token}``. A new incarnation first reads the end of the
file: if the latest incarnation of the same daemon name recorded there has neither such a record
nor a ``crash``, it was killed, and the writer records ``{"ev": "crash", "d": old token}`` before
its own first event. ``record_crash`` does the same for a harness that killed a daemon it will
not restart, and ``append_event`` writes the harness's ``stable``/``end`` markers on this clock.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from groupcomm.core.commands import Command, Note
from groupcomm.core.ids import token_name
from groupcomm.core.tracing import trace_event

SHUTDOWN = "shutdown"  # ``what`` of the fault record of a clean shutdown
_CHUNK = 1 << 16


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class Tail:
    """What a new writer needs from the end of an existing trace file: ``last_t``, the ``t`` of
    its last event (0: none), and ``unfinished``, the token of the daemon's latest incarnation
    in it if that incarnation neither crashed nor shut down cleanly (else None)."""

    last_t: int = 0
    unfinished: str | None = None


def prepare(path: str, name: str | None = None) -> Tail:
    """Get trace file ``path`` ready for appending and read its tail.

    A last line without its newline (a daemon killed in the middle of a write) gets the newline
    if it is a complete JSON object and is cut off otherwise. ``name``: the daemon whose latest
    incarnation to look for (``Tail.unfinished``). A missing file is an empty one."""
    try:
        f = open(path, "r+b")  # noqa: SIM115
    except FileNotFoundError:
        return Tail()
    with f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return Tail()  # a pipe or terminal: nothing to read back
        end = _repair(f)
        return _scan(f, end, name)


def _repair(f: BinaryIO) -> int:
    """Make the file end on a newline (or be empty); return its size."""
    size = f.seek(0, os.SEEK_END)
    if size == 0:
        return 0
    f.seek(size - 1)
    if f.read(1) == b"\n":
        return size
    cut = 0
    pos = size
    while pos > 0:  # the start of the torn line
        start = max(0, pos - _CHUNK)
        f.seek(start)
        block = f.read(pos - start)
        nl = block.rfind(b"\n")
        if nl >= 0:
            cut = start + nl + 1
            break
        pos = start
    f.seek(cut)
    if isinstance(_decode(f.read(size - cut)), dict):
        f.seek(size)
        f.write(b"\n")
        return size + 1
    f.truncate(cut)
    return cut


def _decode(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _lines_backwards(f: BinaryIO, end: int) -> Iterator[bytes]:
    """The non-blank lines of ``f[:end]`` (which ends on a newline), last first."""
    pos = end
    carry = b""
    while pos > 0:
        start = max(0, pos - _CHUNK)
        f.seek(start)
        parts = (f.read(pos - start) + carry).split(b"\n")
        pos = start
        carry = parts.pop(0) if start > 0 else b""
        for line in reversed(parts):
            if line.strip():
                yield line


def _scan(f: BinaryIO, end: int, name: str | None) -> Tail:
    last_t: int | None = None
    needle = json.dumps(name)[1:-1].encode() if name is not None else None
    for raw in _lines_backwards(f, end):
        if last_t is not None:
            if needle is None:
                break  # only the last t was wanted
            if needle not in raw:
                continue  # cheap: another daemon's line
        obj = _decode(raw)
        if not isinstance(obj, dict):
            continue  # not ours to judge: the checker's loader will say so
        t = obj.get("t")
        if last_t is None and t.__class__ is int:
            last_t = t
        d = obj.get("d")
        if name is None or d.__class__ is not str or token_name(d) != name:
            continue
        ev = obj.get("ev")
        finished = ev == "crash" or (ev == "fault" and obj.get("what") == SHUTDOWN)
        return Tail(last_t or 0, None if finished else d)
    return Tail(last_t or 0, None)


def _line(t: int, ev: str, fields: dict[str, Any]) -> str:
    fields["t"] = t
    fields["ev"] = ev
    return json.dumps(fields, separators=(",", ":"), sort_keys=True)


def append_event(path: str, ev: str, **fields: Any) -> int:
    """Append one event to ``path`` at the current wall-clock ms (never before the file's last
    event): the harness's ``stable`` and ``end`` markers. Returns its ``t``."""
    t = max(wall_ms(), prepare(path).last_t)
    with open(path, "a", encoding="utf-8") as f:
        f.write(_line(t, ev, fields) + "\n")
    return t


def record_crash(path: str, name: str) -> str | None:
    """Record the crash of daemon ``name``'s latest incarnation in its trace file ``path``,
    unless it already crashed or shut down cleanly there; only for a daemon that is not running
    (e.g. killed and not restarted). Returns the crashed token, if any."""
    tail = prepare(path, name)
    if tail.unfinished is None:
        return None
    with open(path, "a", encoding="utf-8") as f:
        f.write(_line(max(wall_ms(), tail.last_t), "crash", {"d": tail.unfinished}) + "\n")
    return tail.unfinished


class TraceWriter:
    def __init__(self, path: str, token: str) -> None:
        self.path = path
        self.token = token
        tail = prepare(path, token_name(token))
        self._file: TextIO | None = open(path, "a", encoding="utf-8")  # noqa: SIM115
        self._lines: list[str] = []
        self._last_t = tail.last_t
        self._shutting_down = False
        self.crashed = tail.unfinished if tail.unfinished != token else None
        if self.crashed is not None:  # the previous incarnation was killed: seen at its restart
            self.record("crash", d=self.crashed)
            self.flush()

    def record(self, ev: str, **fields: Any) -> None:
        t = max(wall_ms(), self._last_t)
        self._last_t = t
        self._lines.append(_line(t, ev, fields))

    def opened(self, conn: str) -> None:
        self.record("open", p=conn, d=self.token)

    def closed(self, conn: str) -> None:
        self.record("close", p=conn, d=self.token)

    def command(self, cmd: Command) -> None:
        """Record ``cmd`` if it is observable (others are ignored)."""
        if isinstance(cmd, Note) and cmd.event == SHUTDOWN:
            self._shutting_down = True  # recorded last, by close()
            return
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
        if self._file is None:
            return
        if self._shutting_down:  # a clean shutdown is no crash: the next incarnation knows
            self.record("fault", what=SHUTDOWN, d=self.token)
        self.flush()
        self._file.close()
        self._file = None
