"""One Redis publisher or consumer of the fan-out benchmark, pub/sub or Streams:
``python -m groupcomm.benchmark.fanout.redis_member --kind pubsub|streams --host H --port P ...``.

- **pubsub**: a publisher sends the lines due as pipelined ``PUBLISH logs.web <frame>``; a
  consumer ``SUBSCRIBE``s and reads the pushed messages.
- **streams**: a publisher pipelines ``XADD logs.web MAXLEN ~ N * l <frame>``; a consumer loops
  ``XREAD COUNT 1000 BLOCK 100 STREAMS logs.web <last id>`` from ``0-0``, keeping the last id it
  read (its position). With ``--away-at`` it closes its connection at that time, and
  ``--away-for`` seconds later reconnects and reads on from the stored id: the catch-up.

Same job, pacing, frames, start handshake and ``ConsumerTally`` as the groupcomm members. It needs
``hiredis`` (``resp``) and the standard library only, so it runs under whichever interpreter has
hiredis (the peer kit's ``/tmp/pbvenv``; the orchestrator picks it).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from groupcomm.benchmark.fanout.loglines import FrameMaker, publisher_lines
from groupcomm.benchmark.fanout.pacing import Pacer
from groupcomm.benchmark.fanout.plan import TOPIC, RolePlan, add_role_arguments, plan_from_args
from groupcomm.benchmark.fanout.resp import Arg, RedisError, RespClient
from groupcomm.benchmark.fanout.tally import (
    Catchup,
    ConsumerResult,
    ConsumerTally,
    PublisherResult,
    write_json,
)
from groupcomm.benchmark.startsync import announce_ready, read_start, sleep_until
from groupcomm.gctune import tune_gc

KINDS = ("pubsub", "streams")
START_TIMEOUT_S = 180.0
XREAD_COUNT = 1000
XREAD_BLOCK_MS = 100
POLL_S = 0.1  # the longest a consumer waits in one read before it looks at the clock


def system_name(kind: str) -> str:
    return f"redis-{kind}"


class Publisher:
    def __init__(self, client: RespClient, kind: str, maxlen: int) -> None:
        self.client = client
        self.kind = kind
        self.maxlen = maxlen

    def command(self, frame: bytes) -> tuple[Arg, ...]:
        if self.kind == "pubsub":
            return (b"PUBLISH", TOPIC, frame)
        return (b"XADD", TOPIC, b"MAXLEN", b"~", self.maxlen, b"*", b"l", frame)

    def send(self, frames: Sequence[bytes]) -> None:
        self.client.pipeline([self.command(f) for f in frames])


def publish_loop(
    pub: Publisher,
    maker: FrameMaker,
    pacer: Pacer,
    window: tuple[int, int],
    end_ns: int,
    result: PublisherResult,
) -> None:
    mono = time.monotonic_ns
    w0, w1 = window
    seq = in_window = 0
    while (now := mono()) < end_ns:
        n = pacer.due(seq, now)
        if n == 0:
            time.sleep(pacer.wait_s(seq, now))
            continue
        pub.send(maker.frames(seq, n, now))
        seq += n
        if w0 <= now < w1:
            in_window += n
    result.sent, result.in_window = seq, in_window


def run_publisher(plan: RolePlan, host: str, port: int, kind: str, maxlen: int) -> PublisherResult:
    t0 = time.monotonic()
    result = PublisherResult(plan.id, system_name(kind), plan.node, plan.rate)
    maker = FrameMaker(plan.id, publisher_lines(plan.seed, plan.id, plan.pool))
    client = RespClient(host, port)
    try:
        pub = Publisher(client, kind, maxlen)
        result.ready_s = time.monotonic() - t0
        announce_ready()
        start_ns = read_start(START_TIMEOUT_S)
        window = plan.window_ns(start_ns)
        sleep_until(start_ns)
        publish_loop(pub, maker, Pacer(start_ns, plan.rate, plan.batch), window, window[1], result)
        pub.send([maker.end_marker(result.sent)])
    finally:
        client.close()
    return result


# ---------------------------------------------------------------------------------- consumers


def pubsub_loop(client: RespClient, tally: ConsumerTally, until_ns: int, publishers: int) -> None:
    mono = time.monotonic_ns
    deliver = tally.deliver
    read = client.read_available
    now = mono()
    while now < until_ns and not tally.complete(publishers):
        replies = read(min(POLL_S, max(0.0, until_ns - now) / 1e9))
        now = mono()  # one clock read per recv: every message of it had arrived by now
        for r in replies:
            if r[0] == b"message":
                deliver(r[2], now)


class StreamReader:
    """``XREAD`` from the last id read; ``position`` is that id."""

    def __init__(self, client: RespClient, position: bytes = b"0-0") -> None:
        self.client = client
        self.position = position

    def read(self) -> list[Any]:
        """The next entries (``[id, [field, value]]``), ``[]`` after ``XREAD_BLOCK_MS``."""
        cmd: tuple[Arg, ...] = (b"XREAD", b"COUNT", XREAD_COUNT, b"BLOCK", XREAD_BLOCK_MS)
        reply = self.client.call(*cmd, b"STREAMS", TOPIC, self.position, timeout=10.0)
        if not reply:
            return []
        entries: list[Any] = reply[0][1]
        if entries:
            self.position = entries[-1][0]
        return entries


def streams_loop(
    reader: StreamReader,
    tally: ConsumerTally,
    until_ns: int,
    publishers: int,
    catchup: Catchup | None = None,
) -> None:
    """Read until ``until_ns`` (or every line arrived); with ``catchup``, only until the
    consumer reached the lines sent after its resume."""
    mono = time.monotonic_ns
    deliver = tally.deliver
    now = mono()
    while now < until_ns and not tally.complete(publishers):
        entries = reader.read()
        now = mono()
        for _id, fields in entries:
            sent = deliver(fields[1], now)
            if catchup is not None and sent >= 0 and not catchup.caught_up_ns:
                catchup.observe(sent, now, tally.received)
        if catchup is not None and catchup.caught_up_ns:
            return


def run_consumer(plan: RolePlan, host: str, port: int, kind: str) -> ConsumerResult:
    t0 = time.monotonic()
    result = ConsumerResult(plan.id, system_name(kind), plan.node)
    client = RespClient(host, port)
    try:
        if kind == "pubsub" and client.call(b"SUBSCRIBE", TOPIC)[0] != b"subscribe":
            raise RedisError("no subscribe confirmation")
        result.ready_s = time.monotonic() - t0
        announce_ready()
        start_ns = read_start(START_TIMEOUT_S)
        tally = result.tally = ConsumerTally(*plan.window_ns(start_ns))
        deadline = plan.deadline_ns(start_ns)
        if kind == "pubsub":
            pubsub_loop(client, tally, deadline, plan.publishers)
            return result
        reader = StreamReader(client)
        if plan.away_at <= 0:
            streams_loop(reader, tally, deadline, plan.publishers)
            return result
        streams_loop(reader, tally, start_ns + int(plan.away_at * 1e9), plan.publishers)
        catchup = result.catchup = Catchup(
            position=reader.position.decode(), lag_ns=int(plan.caught_up_ms * 1e6)
        )
        catchup.left_ns = time.monotonic_ns()
        client.close()
        time.sleep(plan.away_for)
        client = RespClient(host, port)
        catchup.resumed_ns = time.monotonic_ns()
        catchup.received_at_resume = tally.received
        reader = StreamReader(client, reader.position)
        streams_loop(reader, tally, deadline, plan.publishers, catchup)
        streams_loop(reader, tally, deadline, plan.publishers)
    except (RedisError, OSError) as e:
        result.err = f"{type(e).__name__}: {e}"
    finally:
        client.close()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m groupcomm.benchmark.fanout.redis_member", description=__doc__
    )
    add_role_arguments(parser)
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maxlen", type=int, default=2_000_000, help="XADD MAXLEN ~")
    ns = parser.parse_args(argv)
    plan = plan_from_args(ns)
    tune_gc()  # as the groupcomm members do
    result: PublisherResult | ConsumerResult
    try:
        if plan.role == "pub":
            result = run_publisher(plan, ns.host, ns.port, ns.kind, ns.maxlen)
        else:
            result = run_consumer(plan, ns.host, ns.port, ns.kind)
    except (RedisError, OSError, TimeoutError, EOFError, ValueError) as e:
        result = (
            PublisherResult(plan.id, system_name(ns.kind), plan.node, plan.rate)
            if plan.role == "pub"
            else ConsumerResult(plan.id, system_name(ns.kind), plan.node)
        )
        result.err = f"{type(e).__name__}: {e}"
        print(f"{plan.role} {plan.id}: {result.err}", file=sys.stderr)
    write_json(plan.out, result.to_json())
    return 0 if result.err is None else 1


if __name__ == "__main__":
    sys.exit(main())
