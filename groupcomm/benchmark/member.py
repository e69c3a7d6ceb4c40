"""One groupcomm benchmark member: ``python -m groupcomm.benchmark.member --endpoint E ...``.

A separate process per sender/receiver, as in the peer kit, so that members run in parallel
with the daemons and each other, and their CPU can be read per process. It uses the public
client library only (``Connection.multicast``/``multicast_many``, ``Connection.receive_many``):
the figures are what an application gets. A flooding sender never sleeps; the library's send
window (credit from the daemon) is the only flow control. It sends ``--batch`` messages per
``multicast_many`` call, or with ``--batch 1`` one ``multicast`` per message (the one-message
API, for comparison with systems that send one message per call).

The hot loops are the four small functions ``flood_loop``, ``flood_loop_single``,
``paced_loop`` and ``receive_loop``. Everything
else (connect, join, the start handshake, the end marker, the result file) happens outside the
measurement window.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence

from groupcomm.benchmark.recorder import MemberReport, Recorder, SendCounter
from groupcomm.benchmark.startsync import announce_ready, read_start
from groupcomm.benchmark.workload import (
    END_SEQ,
    GROUP,
    HEADER,
    WINDOW_END_SLACK_S,
    MemberPlan,
    add_member_arguments,
    paced_schedule,
    padding,
    plan_from_args,
)
from groupcomm.benchmark.workload import FLOOD_BATCH as FLOOD_BATCH  # the default of --batch
from groupcomm.client import tune_gc
from groupcomm.client.connection import Connection, ConnectionClosed, GroupcommError, connect
from groupcomm.client.events import Message, RegularView
from groupcomm.core.service import Service

CONNECT_TIMEOUT_S = 15.0  # the daemons may still be forming their view
VIEW_TIMEOUT_S = 30.0  # until a receiver sees every receiver in the group
START_TIMEOUT_S = 120.0  # until the orchestrator hands out the start time


async def flood_loop(
    conn: Connection,
    service: Service,
    me: int,
    pad: bytes,
    window: tuple[int, int],
    end_ns: int,
    counter: SendCounter,
    size: int = FLOOD_BATCH,
) -> None:
    """Multicast as fast as the send window allows until ``end_ns``, ``size`` messages per
    ``multicast_many`` call."""
    mono = time.monotonic_ns
    pack = HEADER.pack
    mcast_many = conn.multicast_many
    w0, w1 = window
    seq = in_window = 0
    # ``size`` messages per call, each stamped when built: the batch is one request to the
    # daemon (``mcastb``), as a feed that has many messages at hand would send them.
    while (now := mono()) < end_ns:
        batch = [pack(me, seq + i, now) + pad for i in range(size)]
        await mcast_many(GROUP, batch, service)
        seq += size
        if w0 <= now < w1:
            in_window += size
    counter.sent, counter.in_window = seq, in_window


async def flood_loop_single(
    conn: Connection,
    service: Service,
    me: int,
    pad: bytes,
    window: tuple[int, int],
    end_ns: int,
    counter: SendCounter,
) -> None:
    """``flood_loop`` with one ``Connection.multicast`` per message (``--batch 1``)."""
    mono = time.monotonic_ns
    pack = HEADER.pack
    mcast = conn.multicast
    w0, w1 = window
    seq = in_window = 0
    while (now := mono()) < end_ns:
        await mcast(GROUP, pack(me, seq, now) + pad, service)
        seq += 1
        if w0 <= now < w1:
            in_window += 1
    counter.sent, counter.in_window = seq, in_window


async def paced_loop(
    conn: Connection,
    service: Service,
    me: int,
    pad: bytes,
    window: tuple[int, int],
    schedule: tuple[int, float, int],
    counter: SendCounter,
) -> None:
    """Multicast at a fixed rate: message ``i`` is due at ``start + i * interval`` (absolute
    times, so a late message does not slow the ones after it), until ``end``."""
    start_ns, interval_ns, end_ns = schedule
    mono = time.monotonic_ns
    pack = HEADER.pack
    w0, w1 = window
    seq = in_window = 0
    while (due := start_ns + int(seq * interval_ns)) < end_ns:
        if (wait := due - mono()) > 0:
            await asyncio.sleep(wait / 1e9)
        now = mono()
        await conn.multicast(GROUP, pack(me, seq, now) + pad, service)
        seq += 1
        if w0 <= now < w1:
            in_window += 1
    counter.sent, counter.in_window = seq, in_window


async def receive_loop(
    conn: Connection, rec: Recorder, senders: int, deadline_ns: int, report: MemberReport
) -> None:
    """Deliver until every sender's end marker and data arrived, or until ``deadline_ns``."""
    mono = time.monotonic_ns
    receive_many = conn.receive_many
    deliver = rec.deliver
    now = mono()
    while now < deadline_ns and not rec.complete(senders):
        try:
            # the timeout only matters when nothing is queued: the last message's time will do
            events = await receive_many(4096, max(0.0, deadline_ns - now) / 1e9)
        except TimeoutError:
            return
        now = mono()  # one clock read per batch: every message of it arrived by now
        for event in events:
            if type(event) is Message:
                deliver(event.payload, now)
            elif type(event) is RegularView and event.cause == "NETWORK":
                # Daemon membership changed (a suspicion, a partition). Members that finish
                # and disconnect earlier cause (transitional +) DISCONNECT views: not counted.
                report.views_during_run += 1


async def open_connection(endpoint: str, name: str, membership: bool) -> Connection:
    """A connection to ``endpoint``, retried until CONNECT_TIMEOUT_S (the daemons may still be
    forming their view)."""
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            return await connect(endpoint, name, membership, timeout=1.0).open()
        except GroupcommError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def join_and_wait(
    conn: Connection, receivers: int, group: str = GROUP, timeout_s: float = VIEW_TIMEOUT_S
) -> None:
    """Join ``group`` and wait for a view holding ``receivers`` members."""
    await conn.join(group)
    deadline = time.monotonic() + timeout_s
    while True:
        event = await conn.receive(max(0.01, deadline - time.monotonic()))
        match event:
            case RegularView(group=seen, members=members) if (
                seen == group and len(members) >= receivers
            ):
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the group never reached {receivers} members")


async def _send_phase(conn: Connection, plan: MemberPlan, start_ns: int, c: SendCounter) -> None:
    service = Service[plan.service.upper()]
    pad = padding(plan.size)
    window = (start_ns + int(plan.warm * 1e9), start_ns + int(plan.dur * 1e9))
    end_ns = window[1]
    if plan.rate > 0:
        first, interval = paced_schedule(plan, start_ns)  # shifted when staggered
        await paced_loop(conn, service, plan.id, pad, window, (first, interval, end_ns), c)
    elif plan.batch == 1:
        await flood_loop_single(conn, service, plan.id, pad, window, end_ns, c)
    else:
        await flood_loop(conn, service, plan.id, pad, window, end_ns, c, plan.batch)
    # the end marker travels behind the data (one total order); never unreliable
    marker = Service.RELIABLE if service == Service.UNRELIABLE else service
    await conn.multicast(GROUP, HEADER.pack(plan.id, END_SEQ, c.sent) + pad, marker)


async def run_member(plan: MemberPlan, endpoint: str) -> MemberReport:
    t0 = time.monotonic()
    report = MemberReport(plan.id, "groupcomm", plan.send, plan.recv)
    conn = await open_connection(endpoint, f"m{plan.id}", membership=plan.recv)
    try:
        if plan.recv:
            await join_and_wait(conn, plan.receivers)
        report.ready_s = time.monotonic() - t0
        announce_ready()
        start_ns = await asyncio.to_thread(read_start, START_TIMEOUT_S)
        w0, w1 = start_ns + int(plan.warm * 1e9), start_ns + int(plan.dur * 1e9)
        deadline_ns = w1 + int(plan.drain * 1e9)
        await asyncio.sleep(max(0, start_ns - time.monotonic_ns()) / 1e9)
        jobs = []
        if plan.send:
            jobs.append(_send_phase(conn, plan, start_ns, report.sender))
        if plan.recv:
            report.recorder = Recorder(w0, w1, plan.lat_stride)
            jobs.append(receive_loop(conn, report.recorder, plan.senders, deadline_ns, report))
        try:
            await asyncio.gather(*jobs)
            if plan.send and not plan.recv:
                await conn.drain(timeout=max(1.0, (deadline_ns - time.monotonic_ns()) / 1e9))
        except (ConnectionClosed, TimeoutError) as e:
            report.err = f"{type(e).__name__}: {e}"
        linger_ns = w1 + int(WINDOW_END_SLACK_S * 1e9) - time.monotonic_ns()
        await asyncio.sleep(max(0, linger_ns) / 1e9)  # the harness samples us at w1
    finally:
        with contextlib.suppress(GroupcommError, OSError, TimeoutError):
            await asyncio.wait_for(conn.close(), 5.0)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m groupcomm.benchmark.member", description=__doc__
    )
    add_member_arguments(parser)
    parser.add_argument("--endpoint", required=True, help="the local daemon's client endpoint")
    ns = parser.parse_args(argv)
    plan = plan_from_args(ns)
    if plan.gc == "tuned":
        tune_gc()  # as docs/client.md recommends above tens of thousands of msg/s
    try:
        report = asyncio.run(run_member(plan, ns.endpoint))
    except (GroupcommError, TimeoutError, EOFError, ValueError) as e:
        report = MemberReport(plan.id, "groupcomm", plan.send, plan.recv)
        report.err = f"{type(e).__name__}: {e}"
        print(f"member {plan.id}: {report.err}", file=sys.stderr)
    report.write(plan.out)
    return 0 if report.err is None else 1


if __name__ == "__main__":
    sys.exit(main())
