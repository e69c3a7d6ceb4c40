"""What a fan-out consumer counts, and the result files consumers and publishers write.

``ConsumerTally.deliver`` is on every consumer's hot path, the same code for every system: one
header unpack, a window check, a per-publisher sequence check and an ``array`` append of the
latency per line (the histogram is built after the run: adding to it per line was a third of a
consumer's CPU, py-spy, 2026-12-05).
The sequence check finds loss without keeping the lines: every system here delivers a
publisher's lines in the order it sent them (groupcomm's services from FIFO up, a Redis
channel, a Redis stream), so a sequence number above the expected one is a gap (lines never
delivered) and one below it a duplicate (a replay that overlapped what was already read).

Standard library only: the Redis members import this under the peer kit's interpreter.
"""

from __future__ import annotations

import json
import os
from array import array
from dataclasses import dataclass, field
from typing import Any

from groupcomm.benchmark.fanout.histogram import LatencyHistogram
from groupcomm.benchmark.workload import END_SEQ, HEADER

_unpack = HEADER.unpack_from


class ConsumerTally:
    """Counts of one consumer. ``[w0, w1)`` is the measurement window (monotonic ns): lines
    delivered in it make the rate, lines *sent* in it make the latency histogram (a duplicate
    counts for neither: its first delivery did)."""

    __slots__ = (
        "duplicates",
        "ends",
        "gaps",
        "in_window",
        "lat",
        "next_seq",
        "received",
        "w0",
        "w1",
    )

    def __init__(self, w0: int, w1: int) -> None:
        self.w0 = w0
        self.w1 = w1
        self.received = 0  # data lines delivered (end markers excluded), duplicates included
        self.in_window = 0
        self.duplicates = 0
        self.gaps = 0  # lines skipped within a publisher's stream
        self.next_seq: dict[int, int] = {}  # publisher -> the seq expected next
        self.ends: dict[int, int] = {}  # publisher -> lines it announced in its end marker
        self.lat = array("q")  # ns, lines sent in the window, in delivery order

    def histogram(self) -> LatencyHistogram:
        return LatencyHistogram.from_sorted(sorted(self.lat))

    def deliver(self, frame: bytes, now: int) -> int:
        """Account one delivered frame at ``now``; returns its send time (-1: an end marker)."""
        sent: int
        pub, seq, sent = _unpack(frame)
        if seq == END_SEQ:
            self.ends[pub] = sent
            return -1
        self.received += 1
        expected = self.next_seq.get(pub, 0)
        if seq == expected:
            self.next_seq[pub] = seq + 1
        elif seq > expected:
            self.gaps += seq - expected
            self.next_seq[pub] = seq + 1
        else:
            self.duplicates += 1
            return sent  # its first delivery was counted
        if self.w0 <= now < self.w1:
            self.in_window += 1
        if self.w0 <= sent < self.w1:
            self.lat.append(now - sent)
        return sent

    @property
    def unique(self) -> int:
        return self.received - self.duplicates

    def complete(self, publishers: int) -> bool:
        """Every publisher's end marker arrived, and every line it announced."""
        return len(self.ends) >= publishers and all(
            self.next_seq.get(pub, 0) >= n for pub, n in self.ends.items()
        )


@dataclass
class Catchup:
    """A consumer that went away and resumed from its stored position (``--catchup``). It is
    caught up at the first line it delivers no more than ``lag_ns`` after it was sent: the
    backlog of the absence is read, and so are the lines sent while it was being read."""

    lag_ns: int = 1_000_000_000
    left_ns: int = 0  # when it stopped reading (and closed its connection)
    resumed_ns: int = 0  # when it asked to resume from its position
    caught_up_ns: int = 0  # when it was caught up (0: never)
    received_at_resume: int = 0
    backlog: int = 0  # lines delivered from the resume until it was caught up
    position: str = ""  # the stored position, as text (a stream id; groupcomm's position)

    def observe(self, sent: int, now: int, received: int) -> None:
        """Call per delivered line after the resume, until ``caught_up_ns`` is set."""
        if now - sent <= self.lag_ns and not self.caught_up_ns:
            self.caught_up_ns = now
            self.backlog = received - self.received_at_resume - 1


@dataclass
class ConsumerResult:
    id: int
    system: str
    node: int
    tally: ConsumerTally | None = None
    ready_s: float = 0.0
    views_during_run: int = 0  # groupcomm: NETWORK views after the start (should be 0)
    catchup: Catchup | None = None
    err: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        t = self.tally
        return {
            "role": "consumer",
            "id": self.id,
            "system": self.system,
            "node": self.node,
            "received": t.received if t else 0,
            "in_window": t.in_window if t else 0,
            "duplicates": t.duplicates if t else 0,
            "gaps": t.gaps if t else 0,
            "unique": t.unique if t else 0,
            "next_seq": {str(k): v for k, v in t.next_seq.items()} if t else {},
            "ends": {str(k): v for k, v in t.ends.items()} if t else {},
            "hist": t.histogram().to_json() if t else None,
            "ready_s": self.ready_s,
            "views_during_run": self.views_during_run,
            "catchup": vars(self.catchup) if self.catchup else None,
            "err": self.err,
            **self.extra,
        }


@dataclass
class PublisherResult:
    id: int
    system: str
    node: int
    offered: float  # lines/s asked of this publisher (0: flood)
    sent: int = 0
    in_window: int = 0  # lines with a send time in the window
    ready_s: float = 0.0
    err: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"role": "publisher", **vars(self)}


def write_json(path: str, doc: dict[str, Any]) -> None:
    """Write ``path`` atomically (the orchestrator may read it as soon as the process ends)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f)
    os.replace(tmp, path)
