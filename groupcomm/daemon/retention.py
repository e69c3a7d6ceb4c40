"""What a daemon keeps of its retained groups' messages (protocol/retention.md section 2).

``Retention`` holds one ``GroupLog`` per retained group that has had a message: the messages in
this daemon's delivery order, each with its position (``conf``, ``n``, ``mid``, RET-POS) and the
wall-clock time it was delivered here. Which groups are retained, and for how long, is the
``[[retain]]`` rules' business (``RetainRule``; first matching pattern wins). The session layer
feeds it the core's own record of each delivered message (``DeliverMessage`` with ``conn``
``RECORD``) and replays from it (``groupcomm.daemon.replay``).

Entries have absolute indexes (1, 2, ... per group log, never reused), so a replay cursor can
tell when the entries it was about to send were evicted under it.
"""

from __future__ import annotations

import bisect
import fnmatch
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from groupcomm.core.commands import RECORD, DeliverMessage
from groupcomm.core.ids import Position, decimal, parse_position, position_text
from groupcomm.retainconfig import RetainRule

RESTART = "restart"  # an Entry's mark: this daemon was down before this entry (section 2)
EARLIEST = "earliest"
MATCH_CACHE_MAX = 4096  # remembered rule matches by group name (bounded against many names)


class Entry(NamedTuple):
    at: int  # absolute index, per group log, from 1
    ts_ms: int  # wall-clock time of delivery here (ms since 1970)
    conf: str
    n: int
    mid: str
    epoch: int  # the epoch of the view the message was ordered in (RET-GAP "unknown position")
    sender: str
    groups: tuple[str, ...]
    service: int
    msg_type: int
    payload: bytes
    mark: str = ""  # RESTART: messages delivered elsewhere before this one are not here

    def position(self) -> str:
        return position_text(self.conf, self.n, self.mid)


def conf_epoch(conf: str) -> int:
    """The epoch of the view a configuration's messages were ordered in: ``R<e>.<coord>`` is
    ``e``; ``T<new><<old>`` delivers the old view's messages, so it is the old view's epoch."""
    view = conf.rpartition("<")[2] if conf.startswith("T") else conf[1:]
    text = view.lstrip("TR").partition(".")[0]
    return int(text) if decimal(text) else -1


class Located(NamedTuple):
    """Where a replay starts: the first entry index to send, and the gap before it (a
    ``reason`` of protocol/retention.md section 4, or "")."""

    start: int
    gap: str
    missing: int = -1  # messages missing before ``start`` when known


class Store(Protocol):
    """Where a group log's entries also go (``store = "disk"``); memory needs none."""

    def append(
        self, group: str, index: int, ts_ms: int, message: DeliverMessage, mark: str
    ) -> None: ...

    def evict(self, group: str, first_index: int) -> None: ...

    def flush(self) -> None: ...


class GroupLog:
    """One retained group's messages at this daemon, oldest first.

    Kept as the core's own ``DeliverMessage`` records (which carry the payload and the position)
    and a parallel deque of delivery times: recording a message is two appends, no object of
    its own and no index entry (it is on the delivery path of every retained message). Lookups
    happen once per replay: a position by ``(conf, n)`` is a bisection inside its configuration's
    run (a configuration's messages are consecutive here, their ``n`` increasing except for
    messages delivered early, whose ``n`` is 0: the bisection runs on ``ordinals``, each entry's
    ``n`` or the one before it), by ``mid`` a scan of the runs of the configurations its view's
    epoch names."""

    def __init__(self, group: str, rule: RetainRule) -> None:
        self.group = group
        self.rule = rule
        self.msgs: deque[DeliverMessage] = deque()
        self.times: deque[int] = deque()  # wall-clock ms of delivery, parallel to ``msgs``
        # ``n``, or for an early message (n = 0, protocol/ordering.md section 8.1) the ordinal
        # of the entry before it in its configuration: non-decreasing within a configuration
        self.ordinals: deque[int] = deque()
        self.marks: dict[int, str] = {}  # index -> RESTART (rare)
        self.first_index = 1  # index of msgs[0] (or of the next entry when empty)
        self.bytes = 0
        self.confs: dict[str, int] = {}  # conf -> index of its first entry still here
        self.evicted = 0
        self.restarted = False  # read back from disk: the next entry gets the RESTART mark
        self._max_bytes = rule.max_bytes if rule.max_bytes is not None else 1 << 62
        self._max_age_ms = int(rule.max_age_s * 1000) if rule.max_age_s is not None else 0

    def __len__(self) -> int:
        return len(self.msgs)

    @property
    def next_index(self) -> int:
        return self.first_index + len(self.msgs)

    def get(self, index: int) -> Entry | None:
        i = index - self.first_index
        if not 0 <= i < len(self.msgs):
            return None
        d = self.msgs[i]
        return Entry(
            index, self.times[i], d.conf, d.n, d.mid, conf_epoch(d.conf), d.sender, d.groups,
            d.service, d.msg_type, d.payload, self.marks.get(index, ""),
        )  # fmt: skip

    @property
    def entries(self) -> list[Entry]:
        """Every entry, oldest first (built on demand: for tests and start-up logs)."""
        return [e for i in range(self.first_index, self.next_index) if (e := self.get(i))]

    def append(self, ts_ms: int, message: DeliverMessage, mark: str = "") -> int:
        """Keep one message; returns its index."""
        index = self.first_index + len(self.msgs)
        ordinal = message.n
        if not ordinal and self.msgs and self.msgs[-1].conf == message.conf:
            ordinal = self.ordinals[-1]
        self.msgs.append(message)
        self.times.append(ts_ms)
        self.ordinals.append(ordinal)
        self.bytes += len(message.payload)
        if message.conf not in self.confs:
            self.confs[message.conf] = index
        if mark:
            self.marks[index] = mark
        return index

    def over(self, now_ms: int) -> bool:
        """Past the rule's bounds (the cheap check before ``evict``, once per message)."""
        if self.bytes > self._max_bytes and len(self.msgs) > 1:
            return True
        return self._max_age_ms > 0 and self.times[0] < now_ms - self._max_age_ms

    def evict(self, now_ms: int) -> int:
        """Drop the oldest entries past the rule's bounds; return how many."""
        rule = self.rule
        max_bytes = rule.max_bytes
        oldest_ms = now_ms - int(rule.max_age_s * 1000) if rule.max_age_s is not None else None
        msgs, times = self.msgs, self.times
        dropped = 0
        # The newest entry stays even when it alone exceeds max_bytes: a replay can still start
        # after it (its position is known here), and it goes with the next message.
        while len(msgs) > 1 and (
            (max_bytes is not None and self.bytes > max_bytes)
            or (oldest_ms is not None and times[0] < oldest_ms)
        ):
            self._pop_oldest()
            dropped += 1
        if oldest_ms is not None and len(msgs) == 1 and times[0] < oldest_ms:
            self._pop_oldest()
            dropped += 1
        self.evicted += dropped
        return dropped

    def _pop_oldest(self) -> None:
        index = self.first_index
        d = self.msgs.popleft()
        self.times.popleft()
        self.ordinals.popleft()
        self.bytes -= len(d.payload)
        self.first_index += 1
        self.marks.pop(index, None)
        if self.confs.get(d.conf) == index:
            following = self.msgs[0] if self.msgs else None
            if following is not None and following.conf == d.conf:
                self.confs[d.conf] = index + 1
            else:
                del self.confs[d.conf]

    # ------------------------------------------------------------------ replay start
    def locate(self, since: str | float) -> Located:
        """Where a replay ``since`` a position, a wall-clock time (seconds) or ``EARLIEST``
        starts (protocol/retention.md sections 3-4)."""
        if since == EARLIEST:
            return Located(self.first_index, "")
        if isinstance(since, float | int):
            # Times are this daemon's clock at delivery, non-decreasing unless the clock was
            # set back: then the bisection lands near the jump.
            i = bisect.bisect_left(self.times, int(since * 1000))
            return Located(self.first_index + i, "")
        return self._locate_position(parse_position(since))

    def _run(self, conf: str) -> tuple[int, int]:
        """Indexes ``[first, end)`` of a configuration's consecutive entries here."""
        first = self.confs[conf]
        end = min((i for i in self.confs.values() if i > first), default=self.next_index)
        return first, end

    def _locate_position(self, pos: Position) -> Located:
        if pos.conf in self.confs and pos.n:
            first, end = self._run(pos.conf)
            base = self.first_index
            i = bisect.bisect_left(self.ordinals, pos.n, first - base, end - base)
            found = i < end - base and self.msgs[i].n == pos.n
            index = base + i + 1 if found else base + i
            if not found:
                # Not that message here: a message this daemon got in the transitional
                # configuration instead (EVS-1.4): found by its mid below.
                by_mid = self._find_mid(pos.mid)
                if by_mid is not None:
                    return Located(by_mid + 1, "")
                if index == self.first_index and self.evicted:
                    return Located(index, "not retained")  # what came between may be evicted
            return Located(index, "")
        by_mid = self._find_mid(pos.mid)
        if by_mid is not None:
            return Located(by_mid + 1, "")
        epoch = conf_epoch(pos.conf)
        if not self.msgs:
            return Located(self.next_index, "")
        if epoch <= conf_epoch(self.msgs[0].conf) and self.evicted:
            # Older than what is left, or in the oldest configuration here: the message was
            # evicted with what came before the oldest retained (an early message, n = 0, has
            # no ordinal to place it by; its configuration's rest is still here).
            return Located(self.first_index, "not retained")
        for conf, first in sorted(self.confs.items(), key=lambda c: c[1]):
            if conf_epoch(conf) > epoch:
                return Located(first, "unknown position")
        return Located(self.next_index, "unknown position")

    def _find_mid(self, mid: str) -> int | None:
        """The index of message ``mid`` if it is here: it was delivered in its view's regular
        configuration or in a transitional one from it, so only their runs are read."""
        view = mid.split("|")[1] if mid.count("|") == 2 else ""
        epoch_text = view.partition(".")[0]
        epoch = int(epoch_text) if decimal(epoch_text) else -1
        base = self.first_index
        for conf in list(self.confs):
            if conf_epoch(conf) != epoch:
                continue
            first, end = self._run(conf)
            for i in range(first - base, end - base):
                if self.msgs[i].mid == mid:
                    return base + i
        return None


class Retention:
    """Every retained group's log at this daemon (module docstring)."""

    def __init__(
        self,
        rules: tuple[RetainRule, ...],
        wall_ms: Callable[[], int],
        store: Store | None = None,
    ) -> None:
        self.rules = rules
        self._wall_ms = wall_ms
        self.store = store
        self.logs: dict[str, GroupLog] = {}
        self._rule_of: dict[str, RetainRule | None] = {}
        self.retained = 0  # messages kept, summed over groups (a counter of status)
        self.evicted = 0

    def rule_for(self, group: str) -> RetainRule | None:
        rule = self._rule_of.get(group, self)  # ``self``: not looked up yet
        if rule is self:
            rule = next((r for r in self.rules if fnmatch.fnmatchcase(group, r.groups)), None)
            if len(self._rule_of) >= MATCH_CACHE_MAX:
                self._rule_of.clear()
            self._rule_of[group] = rule
        assert rule is None or isinstance(rule, RetainRule)
        return rule

    def log_for(self, group: str) -> GroupLog | None:
        """The group's log, created empty when a rule names the group; None when none does."""
        log = self.logs.get(group)
        if log is None:
            rule = self.rule_for(group)
            if rule is None:
                return None
            log = self.logs[group] = GroupLog(group, rule)
        return log

    def record(self, d: DeliverMessage) -> None:
        """Keep one delivered message (the core's record) in each retained destination."""
        now = self._wall_ms()
        for group in d.groups:
            log = self.logs.get(group)
            if log is None:
                log = self.log_for(group)
                if log is None:
                    continue
            mark = ""
            if log.restarted:
                log.restarted, mark = False, RESTART
            index = log.append(now, d, mark)
            if self.store is not None and log.rule.store == "disk":
                self.store.append(group, index, now, d, mark)
            self.retained += 1
            if log.over(now):
                self._evict(log, now)

    def restore(self, group: str, entries: list[Entry]) -> GroupLog:
        """Install entries read back from disk (consecutive indexes: a run broken by a missing
        segment keeps its newest part), then the rule's bounds; the next entry is marked."""
        log = self.logs[group] = GroupLog(group, self.rule_for(group) or RetainRule(group, 1))
        tail: list[Entry] = []
        for entry in entries:
            if tail and entry.at != tail[-1].at + 1:
                tail = []
            tail.append(entry)
        if tail:
            log.first_index = tail[0].at
            for e in tail:
                message = DeliverMessage(
                    RECORD, e.sender, e.groups, e.service, e.msg_type, e.payload, e.mid, e.conf,
                    e.n,
                )  # fmt: skip
                log.append(e.ts_ms, message, e.mark)
        log.restarted = True
        log.evict(self._wall_ms())
        return log

    def expire(self) -> None:
        """Apply the age bounds (called about once a second)."""
        now = self._wall_ms()
        for log in self.logs.values():
            self._evict(log, now)

    def _evict(self, log: GroupLog, now: int) -> None:
        dropped = log.evict(now)
        if dropped:
            self.evicted += dropped
            if self.store is not None and log.rule.store == "disk":
                self.store.evict(log.group, log.first_index)

    def flush(self) -> None:
        """End of a daemon turn: the disk store applies its fsync policy."""
        if self.store is not None:
            self.store.flush()

    def status(self) -> dict[str, object]:
        store = getattr(self.store, "counters", None)
        return {
            "retained": self.retained,
            "evicted": self.evicted,
            **(store if isinstance(store, dict) else {}),
            "groups": {
                g: {"messages": len(log), "bytes": log.bytes, "first": log.first_index}
                for g, log in sorted(self.logs.items())[:100]
            },
        }

    def __iter__(self) -> Iterator[GroupLog]:
        return iter(self.logs.values())
