"""``GroupcommHandler``: a ``logging.Handler`` that multicasts formatted records to a group.

It owns a background thread running an asyncio loop with one client ``Connection`` and the
send loop; ``RecordBuffer`` owns the hand-over, ``records`` the JSON shape. The application's
threads only format the record and put it into the bounded buffer: ``emit`` never waits for the
daemon, the network or the group's flow control. When the buffer is full (the daemon is down,
slow, or the application logs faster than the group takes), records are dropped and counted,
and the next batch sent starts with a notice naming how many were lost.

The connection is opened in the background and opened again (every ``retry_s``, up to 10 s
apart) whenever it fails or ends; records logged meanwhile wait in the buffer. A record that
was being sent when a connection ended may or may not have been delivered: it is counted in
``lost``. ``close()`` sends what is queued and waits until the daemon took it, for at most
``close_timeout`` seconds; what is still queued then is counted in ``lost``. ``flush()`` does
not wait (records are sent as they come).

Drops and losses are reported twice: to the group (the notice that starts the next batch,
for the feed's readers) and on stderr (for whoever runs the application, who may never see the
group, and who would otherwise not learn of records lost while no daemon could be reached): by
the feed thread, at most every ``report_interval`` seconds while the counts grow, and by
``close()`` for what was not reported yet.

Records logged by the handler's own thread (asyncio's or the client's own warnings) are not
sent: a failing feed must not feed itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from dataclasses import dataclass

from groupcomm.client.connection import (
    Connection,
    GroupcommError,
    connect,
    default_endpoint,
    tls_settings,
)
from groupcomm.core.service import Service
from groupcomm.logfeed.buffer import DEFAULT_QUEUE_BYTES, DEFAULT_QUEUE_RECORDS, RecordBuffer
from groupcomm.logfeed.records import JsonLinesFormatter, json_line

BATCH_BYTES = 256 * 1024  # per ``multicast_many``: a few per send window
RETRY_MAX_S = 10.0


@dataclass(frozen=True, slots=True)
class HandlerStats:
    """``sent``: records handed to the daemon; ``dropped``: refused because the buffer was
    full; ``lost``: in flight when a connection ended, or still queued when ``close()`` gave
    up; ``queued``: waiting now; ``connects``: sessions opened; ``last_error``: why the last
    connection attempt or session failed ("" if none did)."""

    sent: int
    dropped: int
    lost: int
    queued: int
    connects: int
    connected: bool
    last_error: str


class GroupcommHandler(logging.Handler):
    """Multicast each record, formatted by the handler's formatter (``json_lines=True``: a
    ``JsonLinesFormatter``), as one message to ``group``. ``endpoint``, ``name``, ``token``,
    ``daemon_cert``, ``cert``, ``key`` are ``connect()``'s; the buffer holds at most
    ``queue_records`` records and ``queue_bytes`` bytes. Drops and losses are written to
    stderr at most every ``report_interval`` seconds, and at ``close()`` (``None``: never;
    ``stats()`` and the group's notices still tell)."""

    def __init__(
        self,
        group: str,
        *,
        endpoint: str | None = None,
        service: Service = Service.AGREED,
        json_lines: bool = False,
        level: int = logging.NOTSET,
        name: str = "",
        token: str = "",
        daemon_cert: str = "",
        cert: str = "",
        key: str = "",
        queue_records: int = DEFAULT_QUEUE_RECORDS,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        close_timeout: float = 5.0,
        retry_s: float = 1.0,
        report_interval: float | None = 60.0,
    ) -> None:
        super().__init__(level)
        self.group = group
        self.service = service
        self.endpoint = endpoint or default_endpoint()
        tls_settings(self.endpoint, daemon_cert, cert, key)  # bad arguments fail here, not later
        self.close_timeout = close_timeout
        self.retry_s = retry_s
        self.report_interval = report_interval
        if json_lines:
            self.setFormatter(JsonLinesFormatter())
        self._session = (name, token, daemon_cert, cert, key)
        self._buffer = RecordBuffer(queue_records, queue_bytes)
        self._json = json_lines
        self._sent = 0
        self._lost = 0
        self._reported_drops = 0
        self._connects = 0
        self._connected = False
        self._last_error = ""
        self._closing = False
        self._reported = (0, 0)  # (dropped, lost) as last written to stderr
        self._reported_at = -float("inf")
        self._report_lock = threading.Lock()  # the feed thread and close() both report
        self._loop = asyncio.new_event_loop()
        self._wakeup = asyncio.Event()  # set on the loop only (``_wake``)
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._main, name="groupcomm-logfeed", daemon=True)
        self._thread.start()

    # ------------------------------------------------------ application threads
    def emit(self, record: logging.LogRecord) -> None:
        if threading.get_ident() == self._thread.ident:
            return  # module docstring: the feed's own records
        try:
            payload = self.format(record).encode("utf-8", "backslashreplace")
        except Exception:
            self.handleError(record)
            return
        self.submit(payload)

    def submit(self, payload: bytes) -> bool:
        """Queue one ready payload (the structlog processor's way in); ``False`` if it was
        dropped (buffer full, or the handler is closed). Never waits."""
        if self._closing:
            return False
        return self._buffer.put(payload)

    def stats(self) -> HandlerStats:
        return HandlerStats(
            sent=self._sent,
            dropped=self._buffer.dropped,
            lost=self._lost,
            queued=len(self._buffer),
            connects=self._connects,
            connected=self._connected,
            last_error=self._last_error,
        )

    def flush(self) -> None:
        """Nothing to do: records are sent as they come (``close()`` waits for the rest)."""

    def close(self) -> None:
        """Send what is queued, wait until the daemon took it (at most ``close_timeout``
        seconds), end the session and the thread. Called by ``logging.shutdown()`` at exit."""
        if not self._closing:
            self._closing = True
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._begin_close)
            self._thread.join(self.close_timeout + 1.0)
            self._report(final=True)
        super().close()

    def _report(self, final: bool = False) -> None:
        """Write the drops and losses not reported yet to stderr (module docstring): when
        ``report_interval`` passed since the last report, or ``final``."""
        if self.report_interval is None:
            return
        with self._report_lock:
            counts = (self._buffer.dropped, self._lost)
            now = time.monotonic()
            if counts == self._reported or (
                not final and now - self._reported_at < self.report_interval
            ):
                return
            dropped, lost = (c - r for c, r in zip(counts, self._reported, strict=True))
            self._reported, self._reported_at = counts, now
        text = (
            f"groupcomm.logfeed: GroupcommHandler for {self.group!r}: {dropped} record(s) "
            f"dropped (buffer full) and {lost} lost since the last report "
            f"({counts[0]} and {counts[1]} in all)"
        )
        if not self._connected and self._last_error:
            text += f"; not connected: {self._last_error}"
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass  # no stderr (a daemonized process), or closed: stats() still tells

    # ------------------------------------------------------------ the feed thread
    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._task = self._loop.create_task(self._serve())
            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(self._task)
        finally:
            self._loop.close()

    def _begin_close(self) -> None:
        self._wakeup.set()
        # ``close()`` promised to return by then, whatever the daemon does.
        if self._task is not None:
            self._loop.call_later(self.close_timeout, self._task.cancel)

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # closed loop: the handler is gone
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def _serve(self) -> None:
        conn: Connection | None = None
        delay = self.retry_s
        try:
            while not (self._closing and not len(self._buffer)):
                self._report()
                if conn is None or conn.closed:
                    conn = await self._open()
                    if conn is None:
                        if self._closing:
                            break  # no daemon to give the rest to
                        await self._sleep(delay)
                        delay = min(delay * 2, RETRY_MAX_S)
                        continue
                    delay = self.retry_s
                batch = self._buffer.take(BATCH_BYTES)
                if not batch:
                    if self._buffer.arm(self._wake):
                        await self._sleep(None)
                    continue
                if not await self._send(conn, batch):
                    with contextlib.suppress(GroupcommError, OSError):
                        await conn.close()
                    conn = None
            if conn is not None and not conn.closed:
                with contextlib.suppress(GroupcommError, TimeoutError):
                    await conn.drain()  # bounded by _begin_close's cancellation
        finally:
            self._lost += len(self._buffer.take(self._buffer.max_bytes))
            self._connected = False
            if conn is not None:
                with contextlib.suppress(GroupcommError, OSError):
                    await conn.close()

    async def _open(self) -> Connection | None:
        name, token, daemon_cert, cert, key = self._session
        conn = connect(
            self.endpoint,
            name,
            membership=False,
            token=token,
            daemon_cert=daemon_cert,
            cert=cert,
            key=key,
        )
        try:
            await conn.open()
        except GroupcommError as exc:
            self._last_error = str(exc)
            return None
        self._connects += 1
        self._connected = True
        return conn

    async def _send(self, conn: Connection, batch: list[bytes]) -> bool:
        """Multicast ``batch`` (after a notice of the drops not yet reported); ``False`` when
        the session ended meanwhile."""
        dropped = self._buffer.dropped
        notice = dropped - self._reported_drops
        if notice:
            batch.insert(0, self._drop_notice(notice, dropped))
        try:
            await conn.multicast_many(self.group, batch, self.service)
        except GroupcommError as exc:
            self._lost += len(batch) - (1 if notice else 0)
            self._last_error = str(exc)
            self._connected = False
            return False
        self._reported_drops = dropped
        self._sent += len(batch) - (1 if notice else 0)
        return True

    def _drop_notice(self, new: int, total: int) -> bytes:
        text = f"groupcomm.logfeed: {new} record(s) dropped (buffer full), {total} in all"
        if self._json:
            fields: dict[str, object] = {
                "level": "warning",
                "logger": "groupcomm.logfeed",
                "message": text,
                "dropped": new,
                "dropped_total": total,
            }
            return json_line(fields).encode()
        return text.encode()

    async def _sleep(self, seconds: float | None) -> None:
        """Until ``_wake`` or ``close()`` (or ``seconds``)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        if not self._closing:
            self._wakeup.clear()
