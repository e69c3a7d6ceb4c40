"""What a member counts while the benchmark runs, and the result file it writes at the end.

Kept apart from the member processes so that the groupcomm member and the raw pyzmq baseline
count in exactly the same way, and so that the counting can be unit-tested without processes.
``Recorder.deliver`` is on the receive hot path: one header unpack, two comparisons and an
``array`` append per message; everything else (loss, gaps, order) is computed afterwards by the
orchestrator from the recorded ``(sender << 32 | seq)`` delivery sequence.
"""

from __future__ import annotations

import json
import os
from array import array
from dataclasses import dataclass, field
from typing import Any

from groupcomm.benchmark.workload import END_SEQ, HEADER

_unpack = HEADER.unpack_from


class Recorder:
    """Receiver-side accounting. ``w0 <= now < w1`` is the measurement window (monotonic ns);
    latency samples are taken for messages *sent* inside the window, every ``stride``-th
    sequence number of each sender (1 = every message)."""

    __slots__ = ("ends", "in_window", "keys", "lat", "lat_src", "received", "stride", "w0", "w1")

    def __init__(self, w0: int, w1: int, stride: int = 1) -> None:
        self.w0 = w0
        self.w1 = w1
        self.stride = stride
        self.keys = array("Q")  # delivery order: sender << 32 | seq
        self.lat = array("q")  # deliver time - send time, ns
        self.lat_src = array("q")  # the sender of each latency sample (latency by path)
        self.received = 0  # data messages delivered (end markers excluded)
        self.in_window = 0  # ... of which delivered inside the window
        self.ends: dict[int, int] = {}  # sender -> number of data messages it sent

    def deliver(self, payload: bytes, now: int) -> int:
        """Account one delivered message at time ``now``; returns its key (-1 for an end
        marker)."""
        sender, seq, sent = _unpack(payload)
        if seq == END_SEQ:
            self.ends[sender] = sent
            return -1
        self.received += 1
        if self.w0 <= now < self.w1:
            self.in_window += 1
        key: int = sender << 32 | seq
        self.keys.append(key)
        if self.w0 <= sent < self.w1 and seq % self.stride == 0:
            self.lat.append(now - sent)
            self.lat_src.append(sender)
        return key

    def complete(self, senders: int) -> bool:
        """Every sender's end marker arrived and as many data messages as they announced."""
        return len(self.ends) >= senders and self.received >= sum(self.ends.values())


@dataclass
class SendCounter:
    """Sender-side counts: data messages sent in total and with a send time in the window."""

    sent: int = 0
    in_window: int = 0


@dataclass
class MemberReport:
    """A member's result file (JSON), read by ``groupcomm.benchmark.analysis``."""

    id: int
    system: str
    send: bool
    recv: bool
    sender: SendCounter = field(default_factory=SendCounter)
    recorder: Recorder | None = None
    views_during_run: int = 0  # membership changes seen after the start (should be 0)
    ready_s: float = 0.0  # from process start to ready (connected, joined, full view)
    err: str | None = None

    def write(self, path: str) -> None:
        """Write ``path`` (atomically) and the delivery order to ``path + '.keys'``."""
        rec = self.recorder
        doc: dict[str, Any] = {
            "id": self.id,
            "system": self.system,
            "send": self.send,
            "recv": self.recv,
            "sent": self.sender.sent,
            "sent_win": self.sender.in_window,
            "received": rec.received if rec else 0,
            "received_win": rec.in_window if rec else 0,
            "ends": {str(k): v for k, v in rec.ends.items()} if rec else {},
            "lat_ns": rec.lat.tolist() if rec else [],
            "lat_src": rec.lat_src.tolist() if rec else [],
            "keys_file": path + ".keys" if rec else None,
            "views_during_run": self.views_during_run,
            "ready_s": self.ready_s,
            "err": self.err,
        }
        if rec is not None:
            with open(path + ".keys", "wb") as f:
                rec.keys.tofile(f)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)


def read_keys(path: str) -> array[int]:
    """The delivery order a member recorded (``MemberReport.write``)."""
    keys = array("Q")
    with open(path, "rb") as f:
        keys.frombytes(f.read())
    return keys
