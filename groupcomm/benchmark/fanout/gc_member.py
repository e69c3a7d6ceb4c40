"""One groupcomm publisher or consumer of the fan-out benchmark:
``python -m groupcomm.benchmark.fanout.gc_member --role pub|sub ... --endpoint E``.

A publisher connects without membership (groups are open) and multicasts the lines due
(``pacing.Pacer``) with ``Connection.multicast_many``, as ``groupcomm send --follow`` does with
the lines it read, then an end marker, and waits until the daemon has accepted everything. A
consumer joins the group, waits for a view holding every consumer, and delivers with
``Connection.receive_many`` into a ``ConsumerTally``. The start handshake is the one of
``groupcomm bench`` (``startsync``). A consumer with ``--away-at`` leaves at that time and
resumes from its position ``--away-for`` seconds later (``replay``); the orchestrator only asks
for that when the client library has replay.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence

from groupcomm.benchmark.fanout.loglines import FrameMaker, publisher_lines
from groupcomm.benchmark.fanout.pacing import Pacer
from groupcomm.benchmark.fanout.plan import (
    TOPIC,
    RolePlan,
    add_role_arguments,
    plan_from_args,
)
from groupcomm.benchmark.fanout.tally import (
    Catchup,
    ConsumerResult,
    ConsumerTally,
    PublisherResult,
    write_json,
)
from groupcomm.benchmark.member import join_and_wait, open_connection
from groupcomm.benchmark.startsync import announce_ready, read_start
from groupcomm.client import tune_gc
from groupcomm.client.connection import Connection, ConnectionClosed, GroupcommError
from groupcomm.client.events import Message, RegularView
from groupcomm.core.service import Service

SYSTEM = "groupcomm"
VIEW_TIMEOUT_S = 60.0  # 30 consumers joining one after the other
START_TIMEOUT_S = 180.0


# ------------------------------------------------------------------------------ the hot loops


async def publish_loop(
    conn: Connection,
    service: Service,
    maker: FrameMaker,
    pacer: Pacer,
    window: tuple[int, int],
    end_ns: int,
    result: PublisherResult,
) -> None:
    """Send the lines due, each stamped when handed to the library, until ``end_ns``."""
    mono = time.monotonic_ns
    w0, w1 = window
    seq = in_window = 0
    while (now := mono()) < end_ns:
        n = pacer.due(seq, now)
        if n == 0:
            await asyncio.sleep(pacer.wait_s(seq, now))
            continue
        frames = maker.frames(seq, n, now)
        if n == 1:
            await conn.multicast(TOPIC, frames[0], service)
        else:
            await conn.multicast_many(TOPIC, frames, service)
        seq += n
        if w0 <= now < w1:
            in_window += n
    result.sent, result.in_window = seq, in_window


async def consume_loop(
    conn: Connection, tally: ConsumerTally, until_ns: int, publishers: int, result: ConsumerResult
) -> Message | None:
    """Deliver until every publisher's lines arrived, or until ``until_ns``; the last line."""
    mono = time.monotonic_ns
    receive_many = conn.receive_many
    deliver = tally.deliver
    last: Message | None = None
    now = mono()
    while now < until_ns and not tally.complete(publishers):
        try:
            events = await receive_many(4096, max(0.0, until_ns - now) / 1e9)
        except TimeoutError:
            break
        now = mono()  # one clock read per batch: every line of it had arrived by now
        for event in events:
            if type(event) is Message:
                deliver(event.payload, now)
                last = event
            elif type(event) is RegularView and event.cause == "NETWORK":
                result.views_during_run += 1
    return last


async def catchup_loop(
    conn: Connection, tally: ConsumerTally, until_ns: int, publishers: int, catchup: Catchup
) -> None:
    """``consume_loop`` after a resume, noting when the consumer reached the live lines."""
    mono = time.monotonic_ns
    deliver = tally.deliver
    now = mono()
    while not catchup.caught_up_ns and now < until_ns and not tally.complete(publishers):
        try:
            events = await conn.receive_many(4096, max(0.0, until_ns - now) / 1e9)
        except TimeoutError:
            break
        now = mono()
        for event in events:
            if type(event) is Message:
                sent = deliver(event.payload, now)
                if sent >= 0 and not catchup.caught_up_ns:
                    catchup.observe(sent, now, tally.received)


# ------------------------------------------------------------------------------- the roles


async def run_publisher(plan: RolePlan, endpoint: str) -> PublisherResult:
    t0 = time.monotonic()
    result = PublisherResult(plan.id, SYSTEM, plan.node, plan.rate)
    maker = FrameMaker(plan.id, publisher_lines(plan.seed, plan.id, plan.pool))
    service = Service[plan.service.upper()]
    conn = await open_connection(endpoint, f"p{plan.id}", membership=False)
    try:
        result.ready_s = time.monotonic() - t0
        announce_ready()
        start_ns = await asyncio.to_thread(read_start, START_TIMEOUT_S)
        window = plan.window_ns(start_ns)
        pacer = Pacer(start_ns, plan.rate, plan.batch)
        await asyncio.sleep(max(0, start_ns - time.monotonic_ns()) / 1e9)
        try:
            await publish_loop(conn, service, maker, pacer, window, window[1], result)
            await conn.multicast(TOPIC, maker.end_marker(result.sent), service)
            await conn.drain(
                timeout=max(1.0, (plan.deadline_ns(start_ns) - time.monotonic_ns()) / 1e9)
            )
        except (ConnectionClosed, TimeoutError) as e:
            result.err = f"{type(e).__name__}: {e}"
    finally:
        with contextlib.suppress(GroupcommError, OSError, TimeoutError):
            await asyncio.wait_for(conn.close(), 5.0)
    return result


async def run_consumer(plan: RolePlan, endpoint: str) -> ConsumerResult:
    t0 = time.monotonic()
    result = ConsumerResult(plan.id, SYSTEM, plan.node)
    name = f"c{plan.id}"
    conn = await open_connection(endpoint, name, membership=True)
    try:
        await join_and_wait(conn, plan.consumers, TOPIC, VIEW_TIMEOUT_S)
        result.ready_s = time.monotonic() - t0
        announce_ready()
        start_ns = await asyncio.to_thread(read_start, START_TIMEOUT_S)
        tally = result.tally = ConsumerTally(*plan.window_ns(start_ns))
        deadline = plan.deadline_ns(start_ns)
        try:
            if plan.away_at <= 0:
                await consume_loop(conn, tally, deadline, plan.publishers, result)
                return result
            leave_ns = start_ns + int(plan.away_at * 1e9)
            last = await consume_loop(conn, tally, leave_ns, plan.publishers, result)
            conn = await away_and_resume(conn, plan, endpoint, name, last, result)
            assert result.catchup is not None
            await catchup_loop(conn, tally, deadline, plan.publishers, result.catchup)
            await consume_loop(conn, tally, deadline, plan.publishers, result)
        except (ConnectionClosed, TimeoutError) as e:
            result.err = f"{type(e).__name__}: {e}"
    finally:
        with contextlib.suppress(GroupcommError, OSError, TimeoutError):
            await asyncio.wait_for(conn.close(), 5.0)
    return result


async def away_and_resume(
    conn: Connection,
    plan: RolePlan,
    endpoint: str,
    name: str,
    last: Message | None,
    result: ConsumerResult,
) -> Connection:
    """Keep the last line's position, go away (close the session), come back and rejoin from
    the position; the new connection."""
    if last is None:
        raise TimeoutError("nothing delivered before going away: no position to resume from")
    position = last.position
    assert result.tally is not None
    catchup = result.catchup = Catchup(position=str(position), lag_ns=int(plan.caught_up_ms * 1e6))
    catchup.left_ns = time.monotonic_ns()
    await conn.close()
    await asyncio.sleep(plan.away_for)
    conn = await open_connection(endpoint, name, membership=True)
    catchup.resumed_ns = time.monotonic_ns()
    catchup.received_at_resume = result.tally.received
    await conn.join(TOPIC, since=position)  # a replay resumes after the position
    return conn


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m groupcomm.benchmark.fanout.gc_member", description=__doc__
    )
    add_role_arguments(parser)
    parser.add_argument("--endpoint", required=True, help="the local daemon's client endpoint")
    ns = parser.parse_args(argv)
    plan = plan_from_args(ns)
    tune_gc()  # every member of every system does (docs/client.md, fast receivers)
    result: PublisherResult | ConsumerResult
    try:
        if plan.role == "pub":
            result = asyncio.run(run_publisher(plan, ns.endpoint))
        else:
            result = asyncio.run(run_consumer(plan, ns.endpoint))
    except (GroupcommError, TimeoutError, EOFError, ValueError) as e:
        result = (
            PublisherResult(plan.id, SYSTEM, plan.node, plan.rate)
            if plan.role == "pub"
            else ConsumerResult(plan.id, SYSTEM, plan.node)
        )
        result.err = f"{type(e).__name__}: {e}"
        print(f"{plan.role} {plan.id}: {result.err}", file=sys.stderr)
    write_json(plan.out, result.to_json())
    return 0 if result.err is None else 1


if __name__ == "__main__":
    sys.exit(main())
