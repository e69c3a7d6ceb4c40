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

import fnmatch
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from groupcomm.core.commands import DeliverMessage
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
        return f"{self.conf}#{self.n}#{self.mid}"


class Position(NamedTuple):
    conf: str
    n: int
    mid: str


def parse_position(text: str) -> Position:
    """``"<conf>#<n>#<mid>"`` (``Message.position``); ValueError naming what is wrong."""
    parts = text.split("#")
    if len(parts) != 3 or not parts[0] or not parts[2] or not parts[1].isdigit():
        raise ValueError(f"not a position (expected '<conf>#<n>#<mid>'): {text[:200]!r}")
    return Position(parts[0], int(parts[1]), parts[2])


def conf_epoch(conf: str) -> int:
    """The epoch of the view a configuration's messages were ordered in: ``R<e>.<coord>`` is
    ``e``; ``T<new><<old>`` delivers the old view's messages, so it is the old view's epoch."""
    view = conf.rpartition("<")[2] if conf.startswith("T") else conf[1:]
    text = view.lstrip("TR").partition(".")[0]
    return int(text) if text.isdigit() else -1


class Located(NamedTuple):
    """Where a replay starts: the first entry index to send, and the gap before it (a
    ``reason`` of protocol/retention.md section 4, or "")."""

    start: int
    gap: str
    missing: int = -1  # messages missing before ``start`` when known


class Store(Protocol):
    """Where a group log's entries also go (``store = "disk"``); memory needs none."""

    def append(self, group: str, entry: Entry) -> None: ...

    def evict(self, group: str, first_index: int) -> None: ...

    def flush(self) -> None: ...


class GroupLog:
    """One retained group's messages at this daemon, oldest first."""

    def __init__(self, group: str, rule: RetainRule) -> None:
        self.group = group
        self.rule = rule
        self.entries: deque[Entry] = deque()
        self.first_index = 1  # index of entries[0] (or of the next entry when empty)
        self.bytes = 0
        self.by_mid: dict[str, int] = {}
        self.by_pos: dict[tuple[str, int], int] = {}
        self.confs: dict[str, int] = {}  # conf -> index of its first entry still here
        self.evicted = 0
        self.restarted = False  # read back from disk: the next entry gets the RESTART mark

    @property
    def next_index(self) -> int:
        return self.first_index + len(self.entries)

    def get(self, index: int) -> Entry | None:
        i = index - self.first_index
        return self.entries[i] if 0 <= i < len(self.entries) else None

    def append(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.bytes += len(entry.payload)
        self.by_mid[entry.mid] = entry.at
        self.by_pos[(entry.conf, entry.n)] = entry.at
        self.confs.setdefault(entry.conf, entry.at)

    def evict(self, now_ms: int) -> int:
        """Drop the oldest entries past the rule's bounds; return how many."""
        rule = self.rule
        max_bytes = rule.max_bytes
        oldest_ms = now_ms - int(rule.max_age_s * 1000) if rule.max_age_s is not None else None
        entries = self.entries
        dropped = 0
        # The newest entry stays even when it alone exceeds max_bytes: a replay can still start
        # after it (its position is known here), and it goes with the next message.
        while len(entries) > 1 and (
            (max_bytes is not None and self.bytes > max_bytes)
            or (oldest_ms is not None and entries[0].ts_ms < oldest_ms)
        ):
            self._pop_oldest()
            dropped += 1
        if oldest_ms is not None and len(entries) == 1 and entries[0].ts_ms < oldest_ms:
            self._pop_oldest()
            dropped += 1
        self.evicted += dropped
        return dropped

    def _pop_oldest(self) -> None:
        entry = self.entries.popleft()
        self.bytes -= len(entry.payload)
        self.first_index += 1
        self.by_mid.pop(entry.mid, None)
        self.by_pos.pop((entry.conf, entry.n), None)
        if self.confs.get(entry.conf) == entry.at:
            following = self.entries[0] if self.entries else None
            if following is not None and following.conf == entry.conf:
                self.confs[entry.conf] = following.at
            else:
                del self.confs[entry.conf]

    # ------------------------------------------------------------------ replay start
    def locate(self, since: str | float) -> Located:
        """Where a replay ``since`` a position, a wall-clock time (seconds) or ``EARLIEST``
        starts (protocol/retention.md sections 3-4)."""
        if since == EARLIEST:
            return Located(self.first_index, "")
        if isinstance(since, float | int):
            return self._locate_time(int(since * 1000))
        return self._locate_position(parse_position(since))

    def _locate_time(self, at_ms: int) -> Located:
        for entry in self.entries:  # entries are in delivery order, so in time order here
            if entry.ts_ms >= at_ms:
                return Located(entry.at, "")
        return Located(self.next_index, "")

    def _locate_position(self, pos: Position) -> Located:
        index = self.by_mid.get(pos.mid)
        if index is None:
            index = self.by_pos.get((pos.conf, pos.n))
        if index is not None:
            return Located(index + 1, "")
        first = self.confs.get(pos.conf)
        if first is not None:
            # The configuration is here but not that message: it was evicted (older than the
            # oldest kept), or this daemon delivered that configuration without it. Resume after
            # every entry of the configuration with a lower ordinal.
            index = first
            while (entry := self.get(index)) is not None and entry.conf == pos.conf:
                if entry.n > pos.n:
                    break
                index += 1
            if index == self.first_index and self.evicted:
                return Located(index, "not retained")  # what came between may be evicted
            return Located(index, "")
        epoch = conf_epoch(pos.conf)
        oldest = self.entries[0] if self.entries else None
        if oldest is None:
            return Located(self.next_index, "")
        if epoch < oldest.epoch and self.evicted:
            return Located(self.first_index, "not retained")
        for entry in self.entries:
            if entry.epoch > epoch:
                return Located(entry.at, "unknown position")
        return Located(self.next_index, "unknown position")


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
        self._epochs: dict[str, int] = {}
        self.counters = {"retained": 0, "evicted": 0}

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
        epoch = self._epochs.get(d.conf)
        if epoch is None:
            if len(self._epochs) > 64:
                self._epochs.clear()
            epoch = self._epochs[d.conf] = conf_epoch(d.conf)
        for group in d.groups:
            log = self.log_for(group)
            if log is None:
                continue
            mark = ""
            if log.restarted:
                log.restarted, mark = False, RESTART
            entry = Entry(
                log.next_index, now, d.conf, d.n, d.mid, epoch, d.sender, d.groups, d.service,
                d.msg_type, d.payload, mark,
            )  # fmt: skip
            log.append(entry)
            if self.store is not None and log.rule.store == "disk":
                self.store.append(group, entry)
            self.counters["retained"] += 1
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
            for entry in tail:
                log.append(entry)
        log.restarted = True
        log.evict(self._wall_ms())
        return log

    def expire(self) -> None:
        """Apply the age bounds (called about once a second)."""
        now = self._wall_ms()
        for log in self.logs.values():
            self._evict(log, now)
        if self.store is not None:
            self.store.flush()

    def _evict(self, log: GroupLog, now: int) -> None:
        dropped = log.evict(now)
        if dropped:
            self.counters["evicted"] += dropped
            if self.store is not None and log.rule.store == "disk":
                self.store.evict(log.group, log.first_index)

    def flush(self) -> None:
        """End of a daemon turn: the disk store applies its fsync policy."""
        if self.store is not None:
            self.store.flush()

    def status(self) -> dict[str, object]:
        store = getattr(self.store, "counters", None)
        return {
            **self.counters,
            **(store if isinstance(store, dict) else {}),
            "groups": {
                g: {"messages": len(log.entries), "bytes": log.bytes, "first": log.first_index}
                for g, log in sorted(self.logs.items())[:100]
            },
        }

    def __iter__(self) -> Iterator[GroupLog]:
        return iter(self.logs.values())
