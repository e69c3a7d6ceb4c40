"""The asyncio client: one ``Connection`` = one session with the local daemon.

    async with groupcomm.client.connect(name="alice") as conn:
        await conn.join("chat")
        await conn.multicast("chat", b"hello")
        async for event in conn:
            ...

Flow control is automatic: ``multicast`` waits while the daemon's send window is full, and the
connection reports delivered payload bytes as ``consumed`` only as the application takes events
(``receive`` / ``async for``), so an application that stops reading is eventually closed by the
daemon as a slow consumer instead of growing either side's memory without bound.

Access control: when the daemon has ``[[acl]]`` rules (it says so in ``welcome``), ``join`` and
the multicasts first ask it, once per group and operation for the connection's life, whether
they are allowed (an ``access`` request: one round trip), and raise ``AccessDenied`` naming the
rule instead of sending a request the daemon would refuse. The daemon's rules do not change
while it runs, so the answers are cached; the daemon still checks every request itself.

Liveness: a connection that hears nothing from its daemon for a third of ``daemon_timeout``
sends a ``ping`` (the daemon answers at once); when the daemon stays silent for
``daemon_timeout`` with a ping unanswered for half of it, the connection ends with
``DaemonLost``, so a daemon that is stopped, hung or cut off (no FIN ever arrives) is noticed
within about ``1.2 * daemon_timeout``. A daemon still taking the bytes of our own large
request off the socket (the ping waits behind them) is not silent. A connection is one stream
to one daemon process and is never re-opened by the library: a restarted daemon is a new
session, opened by the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import itertools
import operator
import os
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType

import msgpack

from groupcomm.client.events import (
    Event,
    Gap,
    Message,
    RegularView,
    Rejected,
    SelfLeave,
    TransitionalView,
)
from groupcomm.client.link import MAX_REPLY, Link, open_link
from groupcomm.client.tls import ClientTls
from groupcomm.core.service import SELF_DISCARD, Service
from groupcomm.wire.client import (
    POLICIES,
    VIEWSET,
    AccessReply,
    AccessReq,
    AdminReply,
    AdminReq,
    Bye,
    ClientWireError,
    Closed,
    Consumed,
    CreditGrant,
    DeliveredEntry,
    ErrorMsg,
    FormatsReq,
    GapMsg,
    Hello,
    JoinReq,
    LeaveReq,
    McastBatchReq,
    McastReq,
    Msgs,
    Ping,
    Pong,
    RejectMsg,
    Reply,
    Request,
    StatusReply,
    StatusReq,
    ViewMsg,
    Views,
    ViewSet,
    Welcome,
    decode_reply,
    encode,
)

# A delivered ``msgs`` entry as a Message (same fields, same order), built in C: no Python call
# per message as with Message._make, a classmethod written in Python.
_as_message: Callable[[DeliveredEntry], Message] = functools.partial(tuple.__new__, Message)
_payload: Callable[[Event], bytes] = operator.attrgetter("payload")


def _payload_bytes(messages: list[Event]) -> int:
    """Payload bytes of a list of ``Message`` s, summed without a Python loop per message."""
    return sum(map(len, map(_payload, messages)))


DEFAULT_IPC_ENDPOINT = "ipc:///tmp/groupcomm-4804.sock"
DEFAULT_TCP_ENDPOINT = "tcp://127.0.0.1:4804"
# ``consumed`` reports: at most CONSUMED_BATCH bytes, and at most an eighth of the daemon's
# slow-consumer limit (told in ``welcome``; the daemon holds a session back at half of it), go
# unreported; before waiting, whatever is unreported goes out once CONSUMED_INTERVAL_S passed.
# Every report wakes the daemon: at 5 ms they were about a sixth of its turns at 1,000 msg/s.
CONSUMED_BATCH = 16 * 1024
CONSUMED_INTERVAL_S = 0.05
BATCH_MAX_MESSAGES = 1024  # payloads per ``mcastb`` request sent by ``multicast_many``
VERDICTS_MAX = 4096  # cached access answers per connection (then forgotten and asked again)
# What a daemon older than the ``formats`` request answers it (protocol/client.md).
_OLD_DAEMON_FORMATS = "unknown op 'formats'"


class GroupcommError(Exception):
    """Base class of the client's errors."""


class DaemonUnavailable(GroupcommError):
    """The daemon did not answer in time (not running, wrong endpoint)."""


class SessionRefused(GroupcommError):
    """The daemon refused the session (bad or duplicate name, a session limit)."""


class AuthenticationFailed(SessionRefused):
    """The daemon refused the session for its credentials: a wrong token, or none where the
    daemon requires one."""


class DaemonNotTrusted(GroupcommError):
    """A ``tls://`` daemon did not prove it holds the pinned certificate (``daemon_cert``): the
    wrong file, another daemon at that address, or someone in the middle. Nothing was sent to
    it, not even the token."""


class AccessDenied(GroupcommError):
    """The daemon's ``[[acl]]`` rules do not allow this join or multicast; ``reason`` names
    the rule (``denied by [[acl]] #2 (group 'logs.*'): alice may not send 'logs.app'``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionClosed(GroupcommError):
    """The session is closed: by ``close()``, or by the daemon (``reason``, e.g. ``slow
    consumer``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DaemonLost(ConnectionClosed):
    """The daemon went away without closing the session: its stream ended (killed, restarted,
    reset; ``reason`` starts with ``daemon connection lost``) or it stayed silent for
    ``daemon_timeout`` (stopped, hung, host or network gone)."""


DEFAULT_DAEMON_TIMEOUT_S = 3.0


def default_endpoint() -> str:
    """The local daemon's ipc endpoint if its socket file exists, else its TCP endpoint."""
    path = DEFAULT_IPC_ENDPOINT[len("ipc://") :]
    return DEFAULT_IPC_ENDPOINT if os.path.exists(path) else DEFAULT_TCP_ENDPOINT


class Connection:
    """A session with a daemon. Create with ``connect()``; use as ``async with``."""

    def __init__(
        self,
        endpoint: str | None = None,
        name: str = "",
        membership: bool = True,
        *,
        timeout: float = 5.0,
        keepalive: float = 5.0,
        token: str = "",
        daemon_timeout: float | None = DEFAULT_DAEMON_TIMEOUT_S,
        daemon_cert: str = "",
        cert: str = "",
        key: str = "",
        slow_consumer: str = "block",
    ) -> None:
        if daemon_timeout is not None and not daemon_timeout > 0:
            raise ValueError("daemon_timeout must be > 0 seconds (or None: no liveness watch)")
        if slow_consumer not in POLICIES:
            raise ValueError(
                f"slow_consumer must be one of {', '.join(POLICIES)}, got {slow_consumer!r}"
            )
        self.slow_consumer = slow_consumer
        self.endpoint = endpoint or default_endpoint()
        self._tls = tls_settings(self.endpoint, daemon_cert, cert, key)
        self._token = token  # not kept in any repr or error text
        self.name = name
        self.membership = membership
        self.timeout = timeout
        self.keepalive = keepalive
        self.daemon_timeout = daemon_timeout
        self.errors: list[str] = []  # ``error`` replies from the daemon ("code: text")
        self._private_name = ""
        self._daemon = ""
        self._identity = ""
        self._acl = False  # the daemon has [[acl]] rules: ask before join/multicast
        self._verdicts: dict[tuple[str, str], str] = {}  # (op, group) -> denial or ""
        self._send_window = 0
        # The daemon's limit when ``welcome`` tells it (a raised [protocol] max_message_bytes);
        # else 0, and the daemon refuses an oversized message with a ``Rejected``.
        self._max_message_bytes = 0
        self._in_flight = 0
        self._unreported = 0
        self._report_bytes = CONSUMED_BATCH  # until ``welcome`` tells the daemon's limit
        self._reported_at = 0.0
        self._reqs = itertools.count(1)
        self._link: Link | None = None
        # Delivered events in order, as the batches they arrived in, each with its payload
        # bytes: a ``msgs`` reply of hundreds of messages is one list, built in C, and
        # ``receive_many`` usually hands out whole lists, so no Python code runs per message
        # (per-event queue bookkeeping was a large share of the client's CPU). ``_offset``: the
        # events of the first batch already handed out. The session has ended when ``_closed``
        # is set and every batch was taken.
        self._batches: deque[tuple[list[Event], int]] = deque()
        self._offset = 0
        self._arrived = asyncio.Event()
        self._window_moved = asyncio.Event()  # in-flight bytes fell or the session ended
        self._opening: asyncio.Future[Reply] | None = None  # the answer to ``hello``
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed: ConnectionClosed | None = None
        self._local_close = False

    # ------------------------------------------------------------- lifecycle
    @property
    def private_name(self) -> str:
        """This session's private name ``#<name>#<daemon>`` (a group name reaching only it)."""
        return self._private_name

    @property
    def daemon(self) -> str:
        return self._daemon

    @property
    def identity(self) -> str:
        """Who the daemon took this client for: ``uid:N`` (Unix socket), a ``[clients]`` name
        (token) or ``anonymous``; ``""`` before ``open()``."""
        return self._identity

    @property
    def send_window(self) -> int:
        return self._send_window

    @property
    def in_flight(self) -> int:
        """Payload bytes multicast on this connection that the daemon has not credited yet.
        The daemon credits a message's bytes once its core stamped it (gave it its place in
        the total order), or at once when it refused it; a connection's messages are stamped
        in the order sent. A message of zero bytes is never credited on its own."""
        return self._in_flight

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def open(self) -> Connection:
        """Say hello and wait for ``welcome``. Raises ``DaemonUnavailable`` or
        ``SessionRefused``."""
        loop = asyncio.get_running_loop()
        self._opening = loop.create_future()
        try:
            self._link = await asyncio.wait_for(
                open_link(self.endpoint, self._on_record, self._on_lost, self._tls), self.timeout
            )
        except (OSError, TimeoutError) as exc:
            self._closed = ConnectionClosed("not open")
            raise _open_error(self.endpoint, self._tls, exc) from None
        try:
            try:
                # A link already closing (a TLS refusal's alert came first) ends ``_opening``
                # with its reason once asyncio reports the loss: wait for that, not this error.
                with contextlib.suppress(ConnectionClosed):
                    self._send(
                        Hello(
                            self.name,
                            self.membership,
                            self._token,
                            "" if self.slow_consumer == "block" else self.slow_consumer,
                        )
                    )
                reply = await asyncio.wait_for(asyncio.shield(self._opening), self.timeout)
            except TimeoutError:
                raise DaemonUnavailable(f"no answer from {self.endpoint}") from None
            except ConnectionClosed as exc:
                lost = self._link.lost_error
                if self._tls is not None and isinstance(lost, ssl.SSLError):
                    # TLS 1.3: the daemon checks the client's certificate after the client
                    # finished its handshake, so a refusal arrives as an alert on first read.
                    raise AuthenticationFailed(
                        f"{self.endpoint}: the daemon refused this client's TLS session "
                        f"({lost.reason or lost}): "
                        + (
                            f"is {self._tls.cert!r} listed as a [clients.NAME] cert there?"
                            if self._tls.cert
                            else "it asks for a client certificate (cert=..., key=...)"
                        )
                    ) from None
                raise DaemonUnavailable(f"{self.endpoint}: {exc.reason}") from None
            match reply:
                case Welcome(
                    private_name=pn,
                    daemon=daemon,
                    send_window=window,
                    slow_consumer_bytes=slow,
                    identity=identity,
                    acl=acl,
                    max_message_bytes=max_msg,
                ):
                    self._max_message_bytes = max_msg  # 0: not told (the 1 MiB default)
                    self._private_name, self._daemon = pn, daemon
                    self._identity, self._acl = identity, acl
                    self._send_window = window
                    self._report_bytes = max(1, min(CONSUMED_BATCH, slow // 8))
                    # Before any join: every view of this session may come as a ``viewset``.
                    self._send(FormatsReq((VIEWSET,)))
                case RejectMsg(reason=reason, code="auth"):
                    raise AuthenticationFailed(reason)
                case RejectMsg(reason=reason):
                    raise SessionRefused(reason)
                case ErrorMsg(code=code, text=text):
                    raise SessionRefused(f"{code}: {text}")
        except BaseException:
            self._link.abort()
            self._link = None
            self._closed = ConnectionClosed("not open")
            raise
        finally:
            self._opening = None
        self._tasks = [asyncio.create_task(self._watch())]
        return self

    async def close(self) -> None:
        """Say ``bye`` (the groups see a DISCONNECT view) and release the socket."""
        if self._link is None:
            return
        if self._closed is None:
            self._local_close = True
            with contextlib.suppress(ConnectionError):
                self._send(Bye())
            self._end(ConnectionClosed("closed by the application"))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._link.close()
        self._link = None

    async def __aenter__(self) -> Connection:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --------------------------------------------------------------- requests
    async def join(
        self, group: str, *, since: str | float | datetime.datetime | None = None
    ) -> int:
        """Ask to join ``group``; returns the request id. The join takes effect with the first
        ``RegularView`` that lists this connection (cause JOIN, or NETWORK when the join falls
        into a view change); a refusal arrives as ``Rejected``. Joining a group this connection
        is already in (or joining) changes nothing. Raises ``AccessDenied`` if the daemon's
        rules do not let this client join ``group``.

        ``since`` replays what the daemon retains of the group first (its ``[[retain]]`` rules,
        protocol/retention.md): after a ``Message.position``, from a time (a timezone-aware
        ``datetime`` or seconds since 1970) or from ``"earliest"``. The replayed messages come
        before the join's ``RegularView``, the live stream after it, with nothing lost or
        repeated at the seam; what the daemon no longer has arrives as a ``Gap``. Refused
        (``Rejected``) when the daemon does not retain the group or this connection is
        already in it."""
        if isinstance(since, datetime.datetime):
            if since.tzinfo is None:
                raise ValueError("since: a datetime needs a timezone (e.g. datetime.UTC)")
            since = since.timestamp()
        elif isinstance(since, int | float) and not isinstance(since, bool):
            since = float(since)
        elif since is not None and (not isinstance(since, str) or not since):
            raise ValueError(
                "since must be a Message.position, 'earliest', seconds since 1970 or a datetime"
            )
        if self._acl:
            await self._permit("join", (group,))
        req = next(self._reqs)
        self._send(JoinReq(req, group, since))
        return req

    async def leave(self, group: str) -> int:
        """Ask to leave ``group``; a ``SelfLeave`` event confirms it."""
        req = next(self._reqs)
        self._send(LeaveReq(req, group))
        return req

    async def multicast(
        self,
        groups: str | Sequence[str],
        payload: bytes,
        service: Service = Service.AGREED,
        msg_type: int = 0,
        self_discard: bool = False,
    ) -> int:
        """Multicast ``payload`` to one group, several groups (delivered once to a member of
        several) or a private name. Waits while the send window is full; returns the request
        id (a refusal arrives as ``Rejected`` with this id). Raises ``AccessDenied`` if the
        daemon's rules do not let this client send to one of ``groups``."""
        targets = (groups,) if isinstance(groups, str) else tuple(groups)
        if self._acl:
            await self._permit("send", targets)
        payload = bytes(payload)
        if self._max_message_bytes and len(payload) > self._max_message_bytes:
            raise ValueError(
                f"message of {len(payload)} bytes exceeds the daemon's limit of "
                f"{self._max_message_bytes} ([protocol] max_message_bytes)"
            )
        await self._reserve(len(payload))
        svc = int(service) | (SELF_DISCARD if self_discard else 0)
        req = next(self._reqs)
        self._send(McastReq(req, targets, svc, msg_type, payload))
        return req

    async def multicast_obj(
        self,
        groups: str | Sequence[str],
        obj: object,
        service: Service = Service.AGREED,
        msg_type: int = 0,
        self_discard: bool = False,
    ) -> int:
        """``multicast`` of ``msgpack.packb(obj)``; receivers use ``Message.unpack()``."""
        payload: bytes = msgpack.packb(obj, use_bin_type=True)
        return await self.multicast(groups, payload, service, msg_type, self_discard)

    async def multicast_many(
        self,
        groups: str | Sequence[str],
        payloads: Sequence[bytes],
        service: Service = Service.AGREED,
        msg_type: int = 0,
        self_discard: bool = False,
    ) -> list[int]:
        """``multicast`` of every payload, in order, in as few requests as the send window
        allows (one ``mcastb`` per up to ``BATCH_MAX_MESSAGES`` payloads). The same guarantees
        and flow control as one ``multicast`` per payload, at a fraction of the CPU per message;
        returns the request ids, one per payload. Raises ``AccessDenied`` (before sending any)
        if the daemon's rules do not let this client send to one of ``groups``."""
        targets = (groups,) if isinstance(groups, str) else tuple(groups)
        if self._acl and payloads:
            await self._permit("send", targets)
        svc = int(service) | (SELF_DISCARD if self_discard else 0)
        reqs: list[int] = []
        start = 0
        while start < len(payloads):
            # The largest prefix within the window (at least one payload: an oversized one is
            # sent alone once nothing is in flight, like ``multicast``, and refused by name).
            chunk: list[bytes] = []
            size = 0
            for payload in itertools.islice(payloads, start, start + BATCH_MAX_MESSAGES):
                if chunk and size + len(payload) > self._send_window:
                    break
                chunk.append(bytes(payload))
                size += len(payload)
            await self._reserve(size)
            first = next(self._reqs)
            for _ in range(len(chunk) - 1):
                next(self._reqs)
            self._send(McastBatchReq(first, targets, svc, msg_type, tuple(chunk)))
            reqs.extend(range(first, first + len(chunk)))
            start += len(chunk)
        return reqs

    async def drain(self, timeout: float | None = None) -> None:
        """Wait until the daemon accepted every multicast sent so far (nothing in flight)."""

        async def settled() -> None:
            while self._in_flight != 0 and self._closed is None:
                self._window_moved.clear()
                await self._window_moved.wait()

        await asyncio.wait_for(settled(), timeout)

    async def status(self) -> dict[str, object]:
        """The daemon's status (view, members, groups, sessions, counters)."""
        reply = await self._call(StatusReq(next(self._reqs)))
        assert isinstance(reply, StatusReply)
        return dict(reply.info)

    async def admin(self, command: str, *args: str) -> tuple[bool, str]:
        """An administration command (``partition``/``heal``); returns ``(ok, text)``."""
        reply = await self._call(AdminReq(next(self._reqs), command, args))
        assert isinstance(reply, AdminReply)
        return reply.ok, reply.text

    # ---------------------------------------------------------------- events
    async def receive(self, timeout: float | None = None) -> Event:
        """The next event. Raises ``ConnectionClosed`` once the session is over (and every
        event before that was taken), ``TimeoutError`` after ``timeout`` seconds."""
        return (await self.receive_many(1, timeout))[0]

    async def receive_many(self, limit: int = 4096, timeout: float | None = None) -> list[Event]:
        """Every event that has arrived, up to ``limit`` (at least one: waits for it), in
        order. The same stream as ``receive``, with one wake-up per batch instead of one per
        event. Raises like ``receive`` once the session is over and nothing is left."""
        batches = self._batches
        if not batches:
            if self._closed is None:
                # About to wait: tell the daemon what we consumed, but at most every
                # CONSUMED_INTERVAL_S unless much is unreported (at low rates a report per
                # message was most of the client's CPU, and each wakes the daemon).
                if (
                    self._unreported >= self._report_bytes
                    or time.monotonic() - self._reported_at >= CONSUMED_INTERVAL_S
                ):
                    await self._report_consumed()
                if timeout is None:
                    await self._wait_for_events()
                else:
                    async with asyncio.timeout(timeout):
                        await self._wait_for_events()
            if not batches:
                assert self._closed is not None
                raise self._closed
        out, consumed = self._take(max(1, limit))
        if consumed:
            self._unreported += consumed
            if self._unreported >= self._report_bytes:
                await self._report_consumed()
        return out

    async def _wait_for_events(self) -> None:
        while not self._batches and self._closed is None:
            self._arrived.clear()
            await self._arrived.wait()

    def _take(self, limit: int) -> tuple[list[Event], int]:
        """Up to ``limit`` events from the batches and their payload bytes."""
        batches = self._batches
        out: list[Event] = []
        consumed = 0
        while batches and len(out) < limit:
            batch, nbytes = batches[0]
            room = limit - len(out)
            offset = self._offset
            if offset == 0 and len(batch) <= room:  # the usual case: the whole batch
                batches.popleft()
                consumed += nbytes
                if out:
                    out.extend(batch)
                else:
                    out = batch  # taken off the queue: ours to hand out
                continue
            part = batch[offset : offset + room]
            if nbytes:
                consumed += _payload_bytes(part)
            offset += len(part)
            if offset >= len(batch):
                batches.popleft()
                offset = 0
            self._offset = offset
            out.extend(part)
        return out, consumed

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> Event:
        """Ends after ``close()``; raises ``ConnectionClosed`` if the daemon closed us."""
        try:
            return await self.receive()
        except ConnectionClosed:
            if self._local_close:
                raise StopAsyncIteration from None
            raise

    # -------------------------------------------------------------- internals
    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed
        if self._link is None:
            raise ConnectionClosed("not open")

    async def _reserve(self, size: int) -> None:
        """Wait until ``size`` more payload bytes fit the send window (or nothing is in
        flight: an oversized message goes alone and the daemon refuses it by name)."""
        while not (
            self._closed is not None
            or self._in_flight == 0
            or self._in_flight + size <= self._send_window
        ):
            self._window_moved.clear()
            await self._window_moved.wait()
        self._check_open()
        self._in_flight += size

    def _send(self, request: Request) -> None:
        if self._closed is not None and not isinstance(request, Bye):
            raise self._closed
        if self._link is None:
            raise ConnectionClosed("not open")
        try:
            self._link.send(encode(request))
        except ConnectionError as exc:
            raise DaemonLost(f"daemon connection lost: {exc}") from None

    async def _permit(self, op: str, groups: tuple[str, ...]) -> None:
        """Raise ``AccessDenied`` unless the daemon lets this client ``op`` every group (asked
        once per group: the daemon's rules are fixed while it runs)."""
        verdicts = self._verdicts
        unknown = tuple(dict.fromkeys(g for g in groups if (op, g) not in verdicts))
        if unknown:
            reply = await self._call(AccessReq(next(self._reqs), op, unknown))
            assert isinstance(reply, AccessReply)
            if len(reply.denials) != len(unknown):
                raise ConnectionClosed(f"daemon answered access for {len(reply.denials)} groups")
            if len(verdicts) + len(unknown) > VERDICTS_MAX:
                verdicts.clear()
            verdicts.update(((op, g), why) for g, why in zip(unknown, reply.denials, strict=True))
        for group in groups:
            why = verdicts.get((op, group), "")
            if why:
                raise AccessDenied(why)

    async def _call(self, request: StatusReq | AdminReq | AccessReq) -> Reply:
        self._check_open()
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[request.req] = future
        try:
            self._send(request)
            return await asyncio.wait_for(future, self.timeout)
        finally:
            self._pending.pop(request.req, None)

    async def _report_consumed(self) -> None:
        if self._unreported and self._closed is None and self._link is not None:
            n, self._unreported = self._unreported, 0
            self._reported_at = time.monotonic()
            self._send(Consumed(n))

    async def _watch(self) -> None:
        """Keepalive (the daemon closes sessions it has not heard from for a while) and the
        daemon's liveness (module docstring). A verdict needs a ping unanswered for half of
        ``daemon_timeout``: after this loop was blocked (a busy application), old silence alone
        proves nothing, the data may be waiting in the socket."""
        timeout = self.daemon_timeout
        step = self.keepalive if timeout is None else min(self.keepalive, timeout / 6)
        next_keepalive = time.monotonic() + self.keepalive
        ping_at: float | None = None  # when the unanswered ping went out
        # Our own bytes the daemon has yet to take, and when it last took some: a large request
        # (a 64 MiB multicast) is read over many daemon turns, and a ping queued behind it
        # cannot be answered before; a daemon taking our bytes is not silent.
        unsent_seen, taken_at = 0, 0.0
        while True:
            await asyncio.sleep(step)
            link = self._link
            if self._closed is not None or link is None:
                return
            now = time.monotonic()
            try:
                if timeout is not None:
                    unsent = link.unsent()
                    if unsent < unsent_seen:
                        taken_at = now
                    unsent_seen = unsent
                    heard = max(link.heard_at, taken_at)
                    if ping_at is not None and heard >= ping_at:
                        ping_at = None  # anything heard since the ping answers it
                    silent = now - heard
                    if ping_at is not None and silent >= timeout and now - ping_at >= timeout / 2:
                        self._end(DaemonLost(f"daemon silent for {silent:.1f} s"))
                        link.abort()  # a late answer must not revive it; frees the socket
                        return
                    if ping_at is None and silent >= timeout / 3:
                        self._send(Ping())
                        ping_at = now
                if now >= next_keepalive:
                    next_keepalive = now + self.keepalive
                    n, self._unreported = self._unreported, 0
                    self._send(Consumed(n))
            except ConnectionClosed:  # the link is going down; the reader ends the session
                return

    def _on_record(self, data: bytes) -> None:
        """One record from the daemon (called from asyncio's read callback)."""
        try:
            reply = decode_reply(data, max_size=MAX_REPLY, max_payload=MAX_REPLY)
        except ClientWireError as e:
            self.errors.append(f"undecodable reply: {e}")
            return
        opening = self._opening
        if opening is not None and not opening.done():
            if isinstance(reply, Welcome | RejectMsg | ErrorMsg):
                opening.set_result(reply)
            return  # nothing else is meaningful before the session is open
        self._on_reply(reply)

    def _on_lost(self, reason: str) -> None:
        """The stream ended: the daemon closed it or is gone (``kill -9`` included)."""
        opening = self._opening
        if opening is not None and not opening.done():
            opening.set_exception(ConnectionClosed(reason))
        if not self._local_close:
            self._end(DaemonLost(reason))

    def _on_reply(self, reply: Reply) -> None:
        match reply:
            case Msgs(msgs=msgs) if msgs:  # an empty batch would hand out no event at all
                batch: list[Event] = list(map(_as_message, msgs))  # one copy per message, in C
                self._batches.append((batch, _payload_bytes(batch)))
                self._arrived.set()
            case ViewMsg() as v:
                self._batches.append(([self._view_event(v)], 0))
                self._arrived.set()
            case GapMsg(groups, reason, after, before, first, last, count):
                self._push(Gap(groups, reason, after, before, first, last, count))
            case Views(views=views):
                self._batches.append(([self._view_event(v) for v in views], 0))
                self._arrived.set()
            case ViewSet():
                self._batches.append((self._view_set_events(reply), 0))
                self._arrived.set()
            case CreditGrant(nbytes=n):
                self._in_flight = max(0, self._in_flight - n)
                self._window_moved.set()
            case RejectMsg(req=req, op=op, group=group, reason=reason, code=code):
                if code == "denied" and group is not None:  # asked before: not again
                    self._verdicts[("send" if op == "mcast" else op, group)] = reason
                self._push(Rejected(req, op, group, reason, code))
            case StatusReply(req=req) | AdminReply(req=req) | AccessReply(req=req):
                future = self._pending.get(req)
                if future is not None and not future.done():
                    future.set_result(reply)
            case ErrorMsg(code="malformed", text=text) if text == _OLD_DAEMON_FORMATS:
                pass  # a daemon older than ``formats``: it sends ``views``, which we read too
            case ErrorMsg(code=code, text=text):
                self.errors.append(f"{code}: {text}")
                if code == "fatal":
                    self._end(ConnectionClosed(f"fatal: {text}"))
            case Closed(reason=reason):
                self._end(ConnectionClosed(reason))
            case Welcome() | Pong():
                pass  # a Pong's work is done: it arrived (``Link.heard_at``)

    def _view_event(self, v: ViewMsg) -> Event:
        if v.kind == "regular":
            me = self._private_name
            index = v.members.index(me) if me in v.members else -1
            return RegularView(v.group, v.gid, v.members, v.cause, v.vs_sets, v.changed, index)
        if v.kind == "transitional":
            return TransitionalView(v.group, v.gid, v.members)
        return SelfLeave(v.group)

    def _view_set_events(self, vs: ViewSet) -> list[Event]:
        """The events of a ``viewset``: one per group, exactly as its ``view`` messages."""
        if vs.kind == "regular":
            me = self._private_name
            index = vs.members.index(me) if me in vs.members else -1
            fields = (vs.members, vs.cause, vs.vs_sets, vs.changed, index)
            return [RegularView(g, gid, *fields) for g, gid in zip(vs.groups, vs.gids, strict=True)]
        if vs.kind == "transitional":
            return [
                TransitionalView(g, gid, vs.members)
                for g, gid in zip(vs.groups, vs.gids, strict=True)
            ]
        return [SelfLeave(g) for g in vs.groups]

    def _push(self, event: Event) -> None:
        """One event that is not a message: a batch of its own, with no payload bytes."""
        self._batches.append(([event], 0))
        self._arrived.set()

    def _end(self, closed: ConnectionClosed) -> None:
        if self._closed is not None:
            return
        self._closed = closed  # after the batches still queued (see receive_many)
        self._arrived.set()
        self._window_moved.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(closed)


def connect(
    endpoint: str | None = None,
    name: str = "",
    membership: bool = True,
    *,
    timeout: float = 5.0,
    keepalive: float = 5.0,
    token: str = "",
    daemon_timeout: float | None = DEFAULT_DAEMON_TIMEOUT_S,
    daemon_cert: str = "",
    cert: str = "",
    key: str = "",
    slow_consumer: str = "block",
) -> Connection:
    """A ``Connection`` to the daemon at ``endpoint`` (default: ``default_endpoint()``), opened
    by ``async with`` (or ``await conn.open()``). ``name`` ("" = invented by the daemon) makes
    the private name ``#name#daemon``; ``membership=False`` suppresses view events; ``token``
    authenticates as a ``[clients]`` identity of the daemon (needed over TCP and TLS when the
    daemon has ``[clients]`` configured, unless ``cert`` proves one); ``daemon_timeout``
    (seconds, ``None``: off) bounds how long a silent daemon goes unnoticed (``DaemonLost``).

    A ``tls://HOST:PORT`` endpoint needs ``daemon_cert``, the daemon's certificate file (its
    ``NAME.crt`` from ``groupcomm keygen``), which is pinned: any other certificate ends the
    connection attempt with ``DaemonNotTrusted``. ``cert`` and ``key`` (default: ``cert`` with
    the suffix ``.key``) are this client's own pair, for a daemon that lists ``cert`` as a
    ``[clients.NAME] cert``; one it does not list fails with ``AuthenticationFailed``. Files
    that cannot be used raise ``TlsFilesError`` (a ``ValueError``) here, naming the file.

    ``slow_consumer`` is what the daemon does when this client reads slower than its groups
    send (protocol/retention.md section 5): ``block`` (default: the senders wait, within the
    bounds of docs/client.md), ``drop`` (the oldest waiting messages are dropped and a ``Gap``
    says which) or ``disconnect`` (the session ends)."""
    return Connection(
        endpoint,
        name,
        membership,
        timeout=timeout,
        keepalive=keepalive,
        token=token,
        daemon_timeout=daemon_timeout,
        daemon_cert=daemon_cert,
        cert=cert,
        key=key,
        slow_consumer=slow_consumer,
    )


def tls_settings(endpoint: str, daemon_cert: str, cert: str, key: str) -> ClientTls | None:
    """The TLS settings of a connection to ``endpoint``; ``None`` for ``ipc://``/``tcp://``.
    ``ValueError`` when they do not fit the endpoint: a ``tls://`` one without the daemon's
    certificate would not know whom it talks to, and certificates given for a clear-text
    endpoint would suggest a security that is not there."""
    if endpoint.startswith("tls://"):
        if not daemon_cert:
            raise ValueError(
                f"{endpoint}: a tls:// endpoint needs daemon_cert, the daemon's certificate "
                "(its NAME.crt from `groupcomm keygen`)"
            )
        return ClientTls(daemon_cert, cert, key)
    if daemon_cert or cert or key:
        raise ValueError(
            f"{endpoint}: daemon_cert, cert and key are for tls:// endpoints only "
            "(this one is not encrypted)"
        )
    return None


def _open_error(endpoint: str, tls: ClientTls | None, exc: BaseException) -> GroupcommError:
    """What a failed connection attempt means to the application."""
    if isinstance(exc, ssl.SSLCertVerificationError) and tls is not None:
        why = exc.verify_message or str(exc)
        return DaemonNotTrusted(
            f"{endpoint}: the daemon did not present the pinned certificate "
            f"{tls.daemon_cert!r} ({why}); nothing was sent"
        )
    if isinstance(exc, ssl.SSLError):
        return DaemonUnavailable(f"TLS handshake with {endpoint} failed: {exc.reason or exc}")
    return DaemonUnavailable(f"no daemon at {endpoint}: {exc}")


async def query_status(
    endpoint: str | None = None,
    timeout: float = 2.0,
    *,
    daemon_cert: str = "",
    cert: str = "",
    key: str = "",
) -> dict[str, object]:
    """Ask a daemon for its status without opening a session (``daemon_cert``, ``cert``,
    ``key``: as for ``connect``, for a ``tls://`` endpoint)."""
    endpoint = endpoint or default_endpoint()
    tls = tls_settings(endpoint, daemon_cert, cert, key)
    answer: asyncio.Future[dict[str, object]] = asyncio.get_running_loop().create_future()

    def on_record(data: bytes) -> None:
        with contextlib.suppress(ClientWireError):
            reply = decode_reply(data, max_size=MAX_REPLY, max_payload=MAX_REPLY)
            if isinstance(reply, StatusReply) and not answer.done():
                answer.set_result(dict(reply.info))

    def on_lost(reason: str) -> None:
        if not answer.done():
            answer.set_exception(DaemonUnavailable(f"{endpoint}: {reason}"))

    try:
        link = await asyncio.wait_for(open_link(endpoint, on_record, on_lost, tls), timeout)
    except (OSError, TimeoutError) as exc:
        raise _open_error(endpoint, tls, exc) from None
    try:
        link.send(encode(StatusReq(1)))
        try:
            return await asyncio.wait_for(asyncio.shield(answer), timeout)
        except TimeoutError:
            raise DaemonUnavailable(f"no answer from {endpoint}") from None
    finally:
        link.abort()
