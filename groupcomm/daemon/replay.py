"""Replay cursors: one session's way through a retained group's log (protocol/retention.md
section 3, RET-SEAM; gaps section 4, RET-GAP).

A cursor is made when the session's join view is delivered, so the log then holds exactly what
this daemon delivered to the group before the join: the cursor stops there (``end``), and the
live stream follows it. ``step`` yields one notice at a time (a message or a gap), so the
session layer paces a replay by what its client consumed.
"""

from __future__ import annotations

from dataclasses import dataclass

from groupcomm.core.commands import DeliverMessage
from groupcomm.daemon.retention import RESTART, GroupLog


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages the client does not get here (protocol/retention.md section 4). ``after`` and
    ``before`` are the positions around the gap (exclusive, "" when unknown), ``first`` and
    ``last`` the first and last missing ones (inclusive, "" when unknown), ``count`` how many
    (-1 when unknown)."""

    conn: str
    groups: tuple[str, ...]
    reason: str
    after: str = ""
    before: str = ""
    first: str = ""
    last: str = ""
    count: int = -1


class ReplayCursor:
    """Entries ``start .. end - 1`` of ``log`` for connection ``conn``, then done."""

    def __init__(
        self,
        conn: str,
        log: GroupLog,
        start: int,
        gap: str,
        since: str,
        *,
        count: int = -1,
        from_position: bool = True,
    ) -> None:
        self.conn = conn
        self.log = log
        self.next = start
        self.end = log.next_index  # the join: everything delivered before it is below this
        self._gap = gap
        self._gap_count = count
        self._after = since if from_position else ""
        # A restart mark on the very first entry of an "earliest" or time replay is no gap:
        # nothing before it was asked for.
        self._first = from_position
        self._marked = 0
        self.sent = 0

    @property
    def done(self) -> bool:
        return self._gap == "" and self.next >= self.end

    def step(self) -> DeliverMessage | Gap | None:
        """The next notice of the replay, or None when it is over."""
        log = self.log
        if self.next < log.first_index and self.next < self.end:
            # Evicted under the cursor (a replay slower than the group's retention): say so.
            missing = min(log.first_index, self.end) - self.next
            self.next = min(log.first_index, self.end)
            return self._gap_notice("not retained", missing)
        if self._gap:
            reason, count = self._gap, self._gap_count
            self._gap = ""
            return self._gap_notice(reason, count)
        if self.next >= self.end:
            return None
        entry = log.get(self.next)
        assert entry is not None  # first_index <= next < end <= next_index
        if entry.mark == RESTART and entry.at != self._marked and (self._first or self.sent):
            self._marked = entry.at  # said once; the next step sends the entry itself
            return self._gap_notice(RESTART, -1)
        self._first = False
        self.next += 1
        self.sent += 1
        self._after = entry.position()
        return DeliverMessage(
            self.conn, entry.sender, entry.groups, entry.service, entry.msg_type, entry.payload,
            entry.mid, entry.conf, entry.n,
        )  # fmt: skip

    def _gap_notice(self, reason: str, count: int) -> Gap:
        following = self.log.get(self.next) if self.next < self.end else None
        return Gap(
            self.conn,
            (self.log.group,),
            reason,
            after=self._after,
            before=following.position() if following is not None else "",
            count=count,
        )
