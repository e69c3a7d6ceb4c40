"""One raw pyzmq baseline member: ``python -m groupcomm.benchmark.zmq_member ...``.

The physical limit of the same run: the same workload, the same header and the same counting
(``Recorder``), but no daemons, no ordering and no membership: every sender binds a PUB socket,
every receiver connects one SUB to all of them (its own included, in the all-to-all mode), one
message per zmq frame. Like the peer kit it is lossless by receiver-driven flow control: every
receiver PUSHes its progress to each sender every ``--ack-every`` messages, and a sender stays
at most ``--window`` messages ahead of its slowest receiver (``window`` < the HWM, so PUB never
drops).

PUB/SUB has no notion of "connected", so the start handshake is explicit: before it reports
ready, a sender publishes short probes until every receiver has acknowledged one, and a
receiver waits until it has seen a probe of every sender. Probes are shorter than the header,
which is how a receiver tells a late probe from data.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any

import zmq

from groupcomm.benchmark.recorder import MemberReport, Recorder
from groupcomm.benchmark.startsync import announce_ready, read_start, sleep_until
from groupcomm.benchmark.workload import (
    END_SEQ,
    HEADER,
    WINDOW_END_SLACK_S,
    MemberPlan,
    add_member_arguments,
    paced_schedule,
    padding,
    plan_from_args,
)
from groupcomm.gctune import tune_gc

ACK = struct.Struct("<II")  # receiver id, next seq it expects from the sender (progress)
PROBE = struct.Struct("<I")  # sender id; 4 bytes < HEADER.size
PROBE_EVERY_S = 0.02
READY_TIMEOUT_S = 30.0
START_TIMEOUT_S = 120.0
BURST = 32  # messages sent per turn of the loop before looking at the SUB socket
RECV_BATCH = 256  # messages taken per turn


class ZmqMember:
    """Sockets and state of one member; ``run`` does the timed part."""

    def __init__(self, plan: MemberPlan, ns: argparse.Namespace) -> None:
        self.plan = plan
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.window: int = ns.window
        self.ack_every: int = ns.ack_every
        self.pad = padding(plan.size)
        self.pub: zmq.Socket[Any] | None = None
        self.pull: zmq.Socket[Any] | None = None
        self.sub: zmq.Socket[Any] | None = None
        self.push: dict[int, zmq.Socket[Any]] = {}
        if plan.send:
            self.pub = self.ctx.socket(zmq.PUB)
            self.pub.setsockopt(zmq.SNDHWM, ns.hwm)
            self.pub.setsockopt(zmq.LINGER, 10_000)  # flush the tail and the end marker
            self.pub.bind(ns.bind)
            self.pull = self.ctx.socket(zmq.PULL)
            self.pull.setsockopt(zmq.LINGER, 0)
            self.pull.bind(ns.ack_bind)
        if plan.recv:
            self.sub = self.ctx.socket(zmq.SUB)
            self.sub.setsockopt(zmq.RCVHWM, ns.hwm)
            self.sub.setsockopt(zmq.LINGER, 0)
            self.sub.setsockopt(zmq.SUBSCRIBE, b"")
            for endpoint in ns.connect.split(","):
                self.sub.connect(endpoint)
            for item in ns.ack_connect.split(","):
                sid, endpoint = item.split("=", 1)
                push = self.ctx.socket(zmq.PUSH)
                push.setsockopt(zmq.LINGER, 0)
                push.connect(endpoint)
                self.push[int(sid)] = push
        self.acks: dict[int, int] = {}  # sender side: receiver -> next seq it expects
        self.acked: dict[int, int] = {}  # receiver side: sender -> progress last reported
        self.poller = zmq.Poller()
        for sock in (self.sub, self.pull):
            if sock is not None:
                self.poller.register(sock, zmq.POLLIN)

    # -------------------------------------------------------------------- handshake
    def handshake(self) -> None:
        """Until every receiver acknowledged our probe and we saw a probe of every sender."""
        plan = self.plan
        probes_seen: set[int] = set()
        deadline = time.monotonic() + READY_TIMEOUT_S
        next_probe = 0.0
        while (plan.send and len(self.acks) < plan.receivers) or (
            plan.recv and len(probes_seen) < plan.senders
        ):
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError("zmq members did not see each other")
            if self.pub is not None and now >= next_probe:
                self.pub.send(PROBE.pack(plan.id))
                next_probe = now + PROBE_EVERY_S
            for sock, _ in self.poller.poll(int(PROBE_EVERY_S * 1000)):
                data = sock.recv()
                if sock is self.pull:
                    rid, nxt = ACK.unpack(data)
                    self.acks[rid] = max(nxt, self.acks.get(rid, 0))
                elif len(data) == PROBE.size:
                    (sid,) = PROBE.unpack(data)
                    probes_seen.add(sid)
                    self.push[sid].send(ACK.pack(plan.id, 0))

    # ------------------------------------------------------------------ timed part
    def _send_limit(self) -> int:
        """Take the receivers' progress acks; the highest seq (exclusive) we may send now:
        ``window`` beyond the slowest receiver. (Paced senders drain the acks too: an unread
        ack would keep the poller awake.)"""
        pull = self.pull
        assert pull is not None
        acks = self.acks
        while True:
            try:
                rid, nxt = ACK.unpack(pull.recv(zmq.NOBLOCK))
            except zmq.Again:
                break
            if nxt > acks.get(rid, 0):
                acks[rid] = nxt
        low: int = min(acks.values())
        return low + self.window

    def _report_progress(self, progress: dict[int, int]) -> None:
        for sid, key in progress.items():
            nxt = (key & 0xFFFFFFFF) + 1
            if nxt - self.acked.get(sid, 0) >= self.ack_every:
                self.acked[sid] = nxt
                self.push[sid].send(ACK.pack(self.plan.id, nxt), zmq.NOBLOCK)

    def run(self, start_ns: int, report: MemberReport) -> None:
        plan = self.plan
        w0, w1 = start_ns + int(plan.warm * 1e9), start_ns + int(plan.dur * 1e9)
        deadline = w1 + int(plan.drain * 1e9)
        rec = report.recorder = Recorder(w0, w1, plan.lat_stride) if plan.recv else None
        sending = plan.send
        # message 0 is due at due0 (shifted when staggered); interval 0: flood
        due0, interval = paced_schedule(plan, start_ns) if plan.rate > 0 else (start_ns, 0.0)
        seq = in_window = 0
        progress: dict[int, int] = {}
        sleep_until(start_ns)
        while True:
            now = time.monotonic_ns()
            idle = True
            if sending:
                if now >= w1:
                    assert self.pub is not None
                    self.pub.send(HEADER.pack(plan.id, END_SEQ, seq) + self.pad)
                    sending = False
                else:
                    before = seq
                    seq = self.send_turn(seq, due0, interval)
                    if seq != before:
                        idle = False
                        if w0 <= now < w1:
                            in_window += seq - before
            if rec is not None:
                if self.receive_turn(rec, progress):
                    idle = False
                    if self.push:
                        self._report_progress(progress)
                if not sending and rec.complete(plan.senders):
                    break
            elif not sending:
                break
            if now > deadline:
                report.err = "drain deadline passed"
                break
            if idle:
                self.poller.poll(self._poll_ms(seq, due0, interval, sending))
        report.sender.sent, report.sender.in_window = seq, in_window
        sleep_until(w1 + int(WINDOW_END_SLACK_S * 1e9))  # the harness samples us at w1

    def _poll_ms(self, seq: int, start_ns: int, interval: float, sending: bool) -> int:
        if not sending or interval == 0.0:
            return 10
        due = start_ns + int(seq * interval)
        return max(0, min(10, math.ceil((due - time.monotonic_ns()) / 1e6)))

    def send_turn(self, seq: int, start_ns: int, interval: float) -> int:
        """Send what flow control (flood) or the schedule (paced) allows now; returns the next
        seq. The send loop of this member."""
        pub = self.pub
        assert pub is not None
        pack = HEADER.pack
        pad = self.pad
        me = self.plan.id
        mono = time.monotonic_ns
        limit = self._send_limit()
        if interval:
            if start_ns + int(seq * interval) > mono():
                return seq
            pub.send(pack(me, seq, mono()) + pad)
            return seq + 1
        for _ in range(min(BURST, limit - seq)):
            pub.send(pack(me, seq, mono()) + pad)
            seq += 1
        return seq

    def receive_turn(self, rec: Recorder, progress: dict[int, int]) -> bool:
        """Deliver what the SUB socket holds (at most ``RECV_BATCH``). The receive loop."""
        sub = self.sub
        assert sub is not None
        recv = sub.recv
        deliver = rec.deliver
        mono = time.monotonic_ns
        header = HEADER.size
        n = 0
        while n < RECV_BATCH:
            try:
                data = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            n += 1
            if len(data) < header:
                continue  # a start probe that was still queued
            key = deliver(data, mono())
            if key >= 0:
                progress[key >> 32] = key
        return n > 0

    def close(self) -> None:
        for sock in (self.sub, self.pull, *self.push.values()):
            if sock is not None:
                sock.close(0)
        if self.pub is not None:
            self.pub.close()  # LINGER: let libzmq hand the tail to the receivers
        self.ctx.term()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m groupcomm.benchmark.zmq_member", description=__doc__
    )
    add_member_arguments(parser)
    parser.add_argument("--bind", default="", help="sender: PUB endpoint")
    parser.add_argument("--ack-bind", default="", help="sender: PULL endpoint for progress acks")
    parser.add_argument("--connect", default="", help="receiver: PUB endpoints of all senders")
    parser.add_argument("--ack-connect", default="", help="receiver: sid=endpoint,... of the PULLs")
    parser.add_argument("--window", type=int, default=20_000)
    parser.add_argument("--ack-every", type=int, default=256)
    parser.add_argument("--hwm", type=int, default=100_000)
    ns = parser.parse_args(argv)
    plan = plan_from_args(ns)
    if plan.gc == "tuned":
        tune_gc()  # as docs/client.md recommends above tens of thousands of msg/s
    report = MemberReport(plan.id, "zmq", plan.send, plan.recv)
    t0 = time.monotonic()
    member = ZmqMember(plan, ns)
    try:
        member.handshake()
        report.ready_s = time.monotonic() - t0
        announce_ready()
        member.run(read_start(START_TIMEOUT_S), report)
    except (TimeoutError, EOFError, ValueError, zmq.ZMQError) as e:
        report.err = f"{type(e).__name__}: {e}"
        print(f"zmq member {plan.id}: {report.err}", file=sys.stderr)
    report.write(plan.out)
    member.close()
    return 0 if report.err is None else 1


if __name__ == "__main__":
    sys.exit(main())
