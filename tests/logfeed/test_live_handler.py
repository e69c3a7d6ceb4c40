"""``GroupcommHandler`` and ``StructlogFeed`` against a real daemon: records from several
threads arrive complete and in each thread's order; a full buffer drops and counts (and the
group is told, and stderr); a missing daemon never blocks the logging call."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest
import structlog

from groupcomm.logfeed import GroupcommHandler, StructlogFeed
from tests.logfeed.livedaemon import Consumer, Daemon


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"test.logfeed.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger


async def test_handler_drops_when_full_reports_it_then_delivers_from_threads(
    ready: Daemon, tmp_path: Path
) -> None:
    consumer = await Consumer.join(ready.endpoint, "logs.app")
    # The handler's endpoint is a symlink to the daemon's socket, made only after the buffer
    # overflowed: until then the handler cannot connect, whatever the timing.
    link = tmp_path / "later.sock"
    handler = GroupcommHandler(
        "logs.app", endpoint=f"ipc://{link}", json_lines=True, queue_records=3, retry_s=0.05
    )
    logger = _logger("threads", handler)
    try:
        for i in range(10):
            logger.info("early %d", i, extra={"seq": i})
        stats = handler.stats()
        assert (stats.queued, stats.dropped, stats.sent, stats.connected) == (3, 7, 0, False)

        os.symlink(ready.socket_path, link)
        await consumer.wait_for(lambda c: len(c.payloads) == 4, "the queued records")
        notice, *early = (json.loads(p) for p in consumer.payloads)
        assert notice["dropped"] == 7 and notice["level"] == "warning"
        assert [(r["message"], r["seq"], r["level"]) for r in early] == [
            (f"early {i}", i, "info")
            for i in range(3)  # the first 3: the rest did not fit
        ]

        # Several threads at once; the buffer (3 records) may overflow again: whatever is
        # dropped is counted, and what arrives is in each thread's order, once.
        def work(t: int) -> None:
            for i in range(300):
                logger.warning("t%d", t, extra={"thread_no": t, "i": i})

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join)
        await asyncio.to_thread(handler.close)  # sends the rest, waits for the daemon
        stats = handler.stats()
        assert (stats.queued, stats.lost, stats.connects) == (0, 0, 1)
        assert stats.sent + stats.dropped == 10 + 4 * 300
        await consumer.wait_for(
            lambda c: sum(b"thread_no" in p for p in c.payloads) >= stats.sent - 3,
            "every record handed over",
        )
        records = [json.loads(p) for p in consumer.payloads[4:]]
        got = [r for r in records if "thread_no" in r]
        notices = [r for r in records if "dropped" in r]
        assert len(got) == stats.sent - 3
        assert sum(n["dropped"] for n in notices) == stats.dropped - 7
        for t in range(4):
            seq = [r["i"] for r in got if r["thread_no"] == t]
            assert seq == sorted(set(seq))  # in order, no duplicate
        assert logger.handlers == [handler]
    finally:
        logger.removeHandler(handler)
        await asyncio.to_thread(handler.close)
        await consumer.close()


async def test_handler_never_blocks_without_a_daemon(tmp_path: Path) -> None:
    handler = GroupcommHandler(
        "logs.app", endpoint=f"ipc://{tmp_path}/nobody.sock", queue_records=100, close_timeout=1
    )
    logger = _logger("nodaemon", handler)
    try:
        for i in range(20_000):  # would hang here if a call waited for the daemon
            logger.error("record %d", i)
        stats = handler.stats()
        assert (stats.queued, stats.dropped, stats.sent) == (100, 19_900, 0)
    finally:
        logger.removeHandler(handler)
        await asyncio.to_thread(handler.close)
    stats = handler.stats()
    assert (stats.queued, stats.lost) == (0, 100)
    assert not handler.submit(b"after close")


async def test_drops_are_reported_on_stderr_while_running_and_at_close(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No daemon, so the group can never be told: stderr is where the drops are seen, from
    the logging handler and from the structlog processor alike."""
    handler = GroupcommHandler(
        "logs.app",
        endpoint=f"ipc://{tmp_path}/nobody.sock",
        queue_records=3,
        retry_s=0.02,
        close_timeout=0.5,
        report_interval=0.05,
    )
    logger = _logger("reports", handler)
    feed = StructlogFeed(handler)
    try:
        for i in range(10):
            logger.error("record %d", i)
        event = {"event": "dropped too"}
        assert feed(None, "info", event) is event  # passed on, whether sent or dropped
        # The feed thread reports while retrying the connection (not a timing verdict: the
        # wait ends as soon as the report is there).
        err = ""
        deadline = time.monotonic() + 10
        while "8 record(s) dropped" not in err:
            assert time.monotonic() < deadline, f"no report on stderr: {err!r}"
            await asyncio.sleep(0.02)
            err += capsys.readouterr().err
        assert "GroupcommHandler for 'logs.app'" in err
        assert "(8 and 0 in all)" in err
        for i in range(5):
            logger.error("more %d", i)
    finally:
        logger.removeHandler(handler)
        await asyncio.to_thread(handler.close)
    err = capsys.readouterr().err  # close() reports what the thread had not
    assert "5 record(s) dropped (buffer full) and 3 lost since the last report" in err
    assert "(13 and 3 in all); not connected: no daemon at ipc://" in err
    stats = handler.stats()
    assert (stats.dropped, stats.lost, stats.sent) == (13, 3, 0)
    handler.close()  # closing again reports nothing new
    assert capsys.readouterr().err == ""


async def test_structlog_processor_and_text_records(ready: Daemon) -> None:
    consumer = await Consumer.join(ready.endpoint, "logs.struct")
    handler = GroupcommHandler("logs.struct", endpoint=ready.endpoint)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    try:
        log = structlog.wrap_logger(
            structlog.PrintLogger(io.StringIO()),
            processors=[
                structlog.processors.add_log_level,
                StructlogFeed(handler),
                structlog.processors.JSONRenderer(),
            ],
        )
        log.info("user logged in", user="alice", attempt=2)
        _logger("text", handler).warning("disk %d%% full", 93)
        await consumer.wait_for(lambda c: len(c.payloads) == 2, "both records")
        assert json.loads(consumer.payloads[0]) == {
            "event": "user logged in",
            "user": "alice",
            "attempt": 2,
            "level": "info",
        }
        assert consumer.payloads[1] == b"WARNING test.logfeed.text: disk 93% full"
    finally:
        await asyncio.to_thread(handler.close)
        await consumer.close()
