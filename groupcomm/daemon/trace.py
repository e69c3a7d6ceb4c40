"""``--trace FILE``: the daemon's observable history in the simulator's JSON Lines trace format.

The format is ``docs/simulation.md`` section "Trace format"; the mapping from core commands to
events is the simulator's (``sim/runner.py``): the ``install``, ``send`` and ``deliver`` notes
become events with their fields, ``DeliverMessage`` is ``cdeliver``, ``DeliverMembership`` is
``gview``, ``RejectRequest`` is ``reject``, session open/close are ``open``/``close``. ``t`` is
wall-clock milliseconds (never decreasing within one file), so the traces of several daemons
merge by time: ``python -m sim.check_trace d1.jsonl d2.jsonl d3.jsonl``.

Lines are buffered during a driver turn and written with one ``write`` + ``flush`` per turn, so
a daemon killed with SIGKILL leaves a file that ends on a complete line (almost always).
"""

from __future__ import annotations

import json
import time
from typing import Any, TextIO

from groupcomm.core.commands import (
    CloseSession,
    Command,
    DeliverMembership,
    DeliverMessage,
    Note,
    RejectRequest,
)
from groupcomm.core.node import SERVICE_NAMES

TRACED_NOTES = frozenset(("install", "send", "deliver"))


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
        if isinstance(cmd, Note):
            if cmd.event in TRACED_NOTES:
                self.record(cmd.event, **cmd.fields)
        elif isinstance(cmd, DeliverMessage):
            self.record(
                "cdeliver",
                p=cmd.conn,
                d=self.token,
                mid=cmd.mid,
                svc=SERVICE_NAMES[cmd.service & 0x3F],
                groups=list(cmd.groups),
                sender=cmd.sender,
            )
        elif isinstance(cmd, DeliverMembership):
            fields: dict[str, Any] = {
                "p": cmd.conn,
                "d": self.token,
                "group": cmd.group,
                "kind": cmd.kind,
                "gid": cmd.gid,
            }
            if cmd.kind == "regular":
                fields["members"] = list(cmd.members)
                fields["vs_sets"] = [list(s) for s in cmd.vs_sets]
            if cmd.kind != "transitional":
                fields["cause"] = cmd.cause
            if cmd.changed:
                fields["changed"] = list(cmd.changed)
            self.record("gview", **fields)
        elif isinstance(cmd, RejectRequest):
            self.record(
                "reject", p=cmd.conn, d=self.token, op=cmd.op, group=cmd.group, reason=cmd.reason
            )
        elif isinstance(cmd, CloseSession):
            self.closed(cmd.conn)

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
