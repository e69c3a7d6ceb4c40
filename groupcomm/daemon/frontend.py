"""``NativeFrontEnd``: the groupcomm native client protocol (``protocol/client.md``) over plain
stream sockets (``clientlinks.ClientLinks``: a Unix socket, TCP and TLS), on top of the
format-independent ``SessionLayer``.

It maps links to sessions, decodes requests with ``groupcomm.wire.client`` (a malformed message
gets an ``error`` reply and is counted; it never stops the daemon), batches each client's
consecutive deliveries of one driver turn into one ``msgs`` message, forwards ``admin`` requests
to the driver and answers ``status`` from the provider (the driver). A link that ends closes
its session at once (the groups see a DISCONNECT view).

Who a client is (``groupcomm.daemon.access``) is settled at ``hello`` (its link's peer
credentials or TLS client certificate, or the token it presents) and kept with its session;
``admin`` requests need an identity listed in ``[daemon] admin``; ``access`` requests answer
what the ``[[acl]]`` rules would say, without changing anything. Refused sessions and admin
requests are logged at most once per identity (or address) and reason every
``REFUSAL_LOG_INTERVAL_S``, with a count.

It runs alone (a ``frontend_api.FrontEnd``) or as one ``frontends.ProtocolPart`` beside the
Spread front-end, sharing its session layer.

``pending()`` tells the driver that the session layer has core events to hand in outside a
request (a slow consumer or an idle session closed while executing or flushing), so they reach
the core on the next turn even when no client socket is readable.
"""

from __future__ import annotations

import operator
import os
import time
from collections.abc import Callable

from groupcomm.accessconfig import AccessConfig
from groupcomm.core.commands import DeliverMembership, DeliverMessage
from groupcomm.core.events import Event
from groupcomm.daemon import frontends
from groupcomm.daemon.access import Access, AuthError, Identity, Throttle
from groupcomm.daemon.clientlinks import ClientLinks
from groupcomm.daemon.clienttls import ClientTls
from groupcomm.daemon.fdlimit import reserve_for
from groupcomm.daemon.frontend_api import SessionCommand
from groupcomm.daemon.ratelimit import Warnings
from groupcomm.daemon.readiness import Readiness
from groupcomm.daemon.replay import Gap
from groupcomm.daemon.retention import Retention
from groupcomm.daemon.sessions import (
    AUTH,
    BLOCK,
    LAGGING_MS,
    SLOW_CONSUMER_MS,
    Ended,
    Granted,
    Log,
    Notice,
    OpenRefused,
    Refused,
    SessionLayer,
)
from groupcomm.wire.client import (
    DEFAULT_MAX_PAYLOAD,
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
    ErrorMsg,
    FormatsReq,
    GapMsg,
    Hello,
    JoinReq,
    LeaveReq,
    McastBatchReq,
    McastReq,
    Ping,
    Pong,
    RejectMsg,
    Reply,
    StatusReply,
    StatusReq,
    ViewMsg,
    Views,
    ViewSet,
    Welcome,
    encode,
    encode_msgs,
)
from groupcomm.wire.client import (
    decode_request as _decode_request,
)

ADMIN_COMMANDS = frozenset({"partition", "heal"})
REFUSAL_LOG_INTERVAL_S = 10.0


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


def _plain(value: object, depth: int = 0) -> object:
    """Make a status value msgpack-safe (tuples/sets -> lists, unknown objects -> str)."""
    if depth > 6:
        return str(value)
    if value is None or isinstance(value, bool | int | float | str | bytes):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_plain(v, depth + 1) for v in value), key=str)
    return str(value)


_mid_of: Callable[[DeliverMessage], str] = operator.attrgetter("mid")
REQUEST_MARGIN = 64 * 1024  # framing of a request around its payloads (1,024 per batch)
# ``status`` and ``access`` requests answered per turn, per link and in all: each builds a reply
# from daemon state (a status lists every session), and one 256 KiB read holds 18,000 of them,
# answered before hello: without a bound, one stranger's write held the daemon for seconds,
# long enough for its peers to suspect it. The rest of a turn's are dropped (counted).
QUERIES_PER_LINK_TURN = 8
QUERIES_PER_TURN = 64


class NativeFrontEnd:
    """The native front-end. See the module docstring; implements ``frontend_api.FrontEnd``."""

    def __init__(
        self,
        endpoints: list[str],
        daemon_name: str,
        send_window: int,
        slow_consumer_bytes: int,
        log: Log,
        *,
        idle_timeout_ms: int = 60_000,
        lagging_ms: int = LAGGING_MS,
        slow_consumer_ms: int = SLOW_CONSUMER_MS,
        max_message_bytes: int = 1 << 20,
        access: Access | None = None,
        tls: ClientTls | None = None,
        fd_reserve: int = reserve_for(1),
        clock: Callable[[], int] = _monotonic_ms,
        layer: SessionLayer | None = None,
        retention: Retention | None = None,
    ) -> None:
        self.daemon_name = daemon_name
        self.log = log
        # Default: no rules, no tokens, no admin (admin must be granted by name).
        self.access = access if access is not None else Access(AccessConfig())
        self.max_message_bytes = max_message_bytes
        # The largest record a client may send: one message, or one ``mcastb`` batch (the client
        # cuts batches at its send window), plus framing. Beyond it the link is closed at the
        # record's header, so no client makes the daemon buffer more than this (issue 13);
        # between the message limit and this, a multicast gets a named refusal.
        self.max_request = max(max_message_bytes, send_window) + REQUEST_MARGIN
        # ``layer``: shared with other protocols' front-ends (``frontends.FrontEnds``).
        self.layer = layer or SessionLayer(
            daemon_name,
            send_window=send_window,
            slow_consumer_bytes=slow_consumer_bytes,
            idle_timeout_ms=idle_timeout_ms,
            lagging_ms=lagging_ms,
            slow_consumer_ms=slow_consumer_ms,
            max_message_bytes=max_message_bytes,
            log=log,
            access=self.access,
            retention=retention,
        )
        self.counters: dict[str, int] = {
            "requests": 0,
            "malformed": 0,
            "send_failed": 0,
            "queries_dropped": 0,  # status/access requests beyond the per-turn bounds
        }
        self._clock = clock
        # A client may send nothing but garbage: one line per link per minute, with a count.
        self.warnings = Warnings(log, time.monotonic)
        self._by_link: dict[int, str] = {}
        self._viewset: set[int] = set()  # links whose client decodes ``viewset`` (``formats``)
        self._by_conn: dict[str, int] = {}
        self._admin: list[tuple[str, list[str]]] = []
        self._direct: list[tuple[int, Reply]] = []  # replies to links without a session
        self._queries: dict[int, int] = {}  # status/access requests answered this turn by link
        self._encoded: dict[tuple[str, ...], bytes] = {}  # this turn's msgs batches by mids
        self._moved: dict[int, int] = {}  # link -> bytes moved, for the sessions behind
        self._provider: object = None
        self._last_expire = clock()
        self._refusals = Throttle(REFUSAL_LOG_INTERVAL_S)
        self.endpoints = list(endpoints)
        # A client that stops reading is closed by the session layer long before its link
        # holds this much; the margin covers replies and one turn's deliveries.
        self.links = ClientLinks(
            endpoints,
            max_record=self.max_request,
            out_limit=2 * slow_consumer_bytes + (4 << 20),
            fd_reserve=fd_reserve,
            refusal=encode(ErrorMsg("fatal", "the daemon is at its connection limit")),
            oversized=encode(
                ErrorMsg(
                    "fatal",
                    f"a request larger than {self.max_request} bytes (messages are limited to "
                    f"{max_message_bytes} bytes): the connection is closed",
                )
            ),
            tls=tls,
        )

    # --------------------------------------------------------------- FrontEnd
    def attach(self, readiness: Readiness) -> None:
        self.links.attach(readiness)

    def pending(self) -> bool:
        return self.layer.has_events()

    def take_events(self, now_ms: int, limit: int) -> list[Event]:
        return frontends.take_events(self.layer, (self,), self._clock(), limit)

    def execute(self, command: SessionCommand) -> None:
        self.layer.apply(command)

    def flush(self) -> None:
        self._last_expire = frontends.flush(self.layer, (self,), self._clock(), self._last_expire)

    # ----------------------------------------------------------- ProtocolPart
    def read(self, now_ms: int, limit: int) -> None:
        # ``limit`` bounds the records read per turn; one ``mcastb`` holds up to thousands of
        # multicasts, and the session layer hands the core what the records make.
        self._queries.clear()
        for link_id, data in self.links.receive(limit):
            self._on_message(link_id, data, now_ms)
        for link_id in self.links.take_closed():
            self.warnings.forget(link_id)
            self._viewset.discard(link_id)
            conn = self._by_link.pop(link_id, None)
            if conn is not None:
                self._by_conn.pop(conn, None)
                if conn in self.layer.sessions:
                    self.layer.close(conn, "disconnected", notify=False)
        self._send_direct()
        if self.layer.behind():
            self._note_reading(now_ms)
        elif self._moved:
            self._moved = {}

    def _note_reading(self, now_ms: int) -> None:
        """A session behind whose link moved bytes since the last look is busy, not one that
        never reads (``SessionLayer.reading``): its client takes a large delivery off the
        socket (its ``consumed`` report comes once the whole message is taken), or sends us a
        large request (its reports wait behind it in the stream)."""
        seen: dict[int, int] = {}
        for conn in self.layer.behind_sessions():
            link_id = self._by_conn.get(conn)
            if link_id is None:
                continue
            moved = self.links.moved(link_id)
            if moved > self._moved.get(link_id, moved):
                self.layer.reading(conn, now_ms)
            seen[link_id] = moved
        self._moved = seen

    def wants_turn(self) -> bool:
        return False

    def expire_links(self) -> None:
        self.links.expire(self._by_link.__contains__)

    def owns(self, conn: str) -> bool:
        return conn in self._by_conn

    def deliver(self, conn: str, notices: list[Notice]) -> None:
        link_id = self._by_conn.get(conn)
        if link_id is not None:
            self._send_notices(conn, link_id, notices)

    def flush_output(self) -> None:
        self._encoded.clear()  # the turn's batches are written: none is shared with the next
        self._send_direct()
        self.links.flush()

    def lagging(self) -> bool:
        return self.layer.lagging()

    def admin_requests(self) -> list[tuple[str, list[str]]]:
        out, self._admin = self._admin, []
        return out

    def status_provider(self, provider: object) -> None:
        self._provider = provider

    def close(self) -> None:
        self.links.close()

    # ------------------------------------------------------------------ input
    def _on_message(self, identity: int, data: bytes, now: int) -> None:
        self.counters["requests"] += 1
        try:
            # Decode up to the request limit, not the message limit: an oversized multicast must
            # reach the session layer, which refuses it by name and gives its window back.
            request = _decode_request(data, max_size=self.max_request, max_payload=self.max_request)
        except ClientWireError as e:
            self._malformed(identity, str(e))
            return
        conn = self._by_link.get(identity)
        layer = self.layer
        match request:
            case Hello():
                if conn is not None:
                    self._reply(identity, ErrorMsg("protocol", "session already open"))
                    return
                self._hello(identity, request, now)
            case FormatsReq(names=names):
                # Optional reply formats this client decodes; names we do not know are
                # ignored (a newer client), so this never fails.
                if VIEWSET in names:
                    self._viewset.add(identity)
            case Ping():
                # Client liveness (protocol/client.md "Liveness"): answered in the same turn,
                # so a client hears back within one turn of a daemon that is alive.
                if conn is not None:
                    layer.touch(conn, now)
                self._reply(identity, Pong())
            case StatusReq(req=req):
                if conn is not None:
                    layer.touch(conn, now)
                if self._query_allowed(identity):
                    self._reply(identity, StatusReply(req, self._status(identity)))
            case AdminReq(req=req, command=command, args=args):
                if conn is not None:
                    layer.touch(conn, now)
                self._admin_request(identity, req, command, args, now)
            case AccessReq(req=req, op=op, groups=groups):
                if conn is not None:
                    layer.touch(conn, now)
                if not self._query_allowed(identity):
                    return
                who = self._identity(identity)
                if who is None:
                    denials = tuple(self._anonymous_refused() for _ in groups)
                else:
                    denials = tuple(self.access.check(who, op, g) for g in groups)
                self._reply(identity, AccessReply(req, denials))
            case _ if conn is None:
                if not isinstance(request, Bye | Consumed):
                    self._reply(identity, ErrorMsg("no_session", "send hello first"))
            case JoinReq(req=req, group=group, since=since):
                layer.join(conn, req, group, now, since)
            case LeaveReq(req=req, group=group):
                layer.leave(conn, req, group, now)
            case McastReq(req=req, groups=groups, service=svc, msg_type=mt, payload=payload):
                layer.multicast(conn, req, groups, svc, mt, payload, now)
            case McastBatchReq(first_req=req, groups=groups, service=svc, msg_type=mt):
                # Exactly as that many ``mcast`` requests: each is checked, refused or accepted
                # on its own and keeps its own request id.
                layer.multicast_batch(conn, req, groups, svc, mt, request.payloads, now)
            case Consumed(nbytes=n):
                layer.consumed(conn, n, now)
            case Bye():
                layer.close(conn, "bye", notify=False)
                self._forget(conn)

    def _hello(self, link_id: int, hello: Hello, now: int) -> None:
        """Identify the client, then open its session (or refuse it, by name)."""
        layer = self.layer
        try:
            who = self.access.identify(
                self.links.credentials(link_id), hello.token, self.links.cert_identity(link_id)
            )
        except AuthError as e:
            self._refused(link_id, self.links.address(link_id), str(e), now)
            self._reply(link_id, RejectMsg(0, "hello", None, str(e), AUTH))
            return
        try:
            session = layer.open(
                hello.name, hello.want_membership, now, who, policy=hello.policy or BLOCK
            )
        except OpenRefused as e:
            if e.code:
                self._refused(link_id, who.name, str(e), now)
            self._reply(link_id, RejectMsg(0, "hello", None, str(e), e.code))
            return
        self._by_link[link_id] = session.conn
        self._by_conn[session.conn] = link_id
        welcome = Welcome(
            session.conn,
            self.daemon_name,
            layer.send_window,
            layer.slow_consumer_bytes,
            who.name,
            self.access.acl_active,
            0 if layer.max_message_bytes == DEFAULT_MAX_PAYLOAD else layer.max_message_bytes,
        )
        self._reply(link_id, welcome)
        self.log.info(
            "session_opened",
            conn=session.conn,
            identity=who.name,
            pid=who.pid,
            via=self.links.address(link_id),
        )

    def _may_see_all_sessions(self, link_id: int) -> bool:
        """Admins, and local processes of the daemon's own user (who could read its memory
        and config anyway); everyone on a daemon without access control."""
        config = self.access.config
        if not (config.clients or config.acl or config.admin):
            return True
        who = self._identity(link_id)
        if who is None:
            return False
        own_user = who.how == "peercred" and f"uid:{os.getuid()}" in who.principals
        return own_user or not self.access.check_admin(who)

    def _identity(self, link_id: int) -> Identity | None:
        """Who is at ``link_id``: its session's identity, else what its link alone says
        (peer credentials, or anonymous TCP); ``None`` when that is not enough (tokens are
        required and it has not authenticated in a ``hello``)."""
        conn = self._by_link.get(link_id)
        session = self.layer.sessions.get(conn) if conn is not None else None
        if session is not None:
            return session.identity
        try:
            return self.access.identify(
                self.links.credentials(link_id), "", self.links.cert_identity(link_id)
            )
        except AuthError:
            return None

    def _anonymous_refused(self) -> str:
        return "authentication required: send hello with a token first"

    def _admin_request(
        self, link_id: int, req: int, command: str, args: tuple[str, ...], now: int
    ) -> None:
        who = self._identity(link_id)
        why = self._anonymous_refused() if who is None else self.access.check_admin(who)
        name = who.name if who is not None else self.links.address(link_id)
        if why:
            self._refused(link_id, name, why, now, event="admin_refused")
            self._reply(link_id, AdminReply(req, False, why))
        elif command not in ADMIN_COMMANDS:
            self._reply(link_id, AdminReply(req, False, f"unknown command {command!r}"))
        else:
            self.log.warning("admin_request", command=command, args=list(args), identity=name)
            self._admin.append((command, list(args)))
            self._reply(link_id, AdminReply(req, True, "queued"))

    def _query_allowed(self, link_id: int) -> bool:
        """Whether a status or access request may be answered this turn (``QUERIES_PER_*``)."""
        queries = self._queries
        done = queries.get(link_id, 0)
        if done >= QUERIES_PER_LINK_TURN or sum(queries.values()) >= QUERIES_PER_TURN:
            self.counters["queries_dropped"] += 1
            self.warnings.warning((link_id, "query"), "client_query_flood", link=link_id)
            return False
        queries[link_id] = done + 1
        return True

    def _refused(
        self, link_id: int, who: str, why: str, now: int, event: str = "session_refused"
    ) -> None:
        """Log a refusal, at most once per client and reason per interval (with a count):
        a client retrying in a loop must not flood the log."""
        left_out = self._refusals.admit(f"{event} {who} {why}", now / 1000)
        if left_out is not None:
            self.log.warning(
                event, identity=who, reason=why, via=self.links.address(link_id), repeats=left_out
            )

    def _malformed(self, identity: int, text: str) -> None:
        self.counters["malformed"] += 1
        self.warnings.warning(identity, "client_malformed", link=identity, error=text[:200])
        self._reply(identity, ErrorMsg("malformed", text[:500]))

    def _status(self, link_id: int) -> dict[str, object]:
        info: dict[str, object] = {}
        status = getattr(self._provider, "status", None)
        if callable(status):
            try:
                got = status()
            except Exception as e:  # a status bug must not take the daemon down
                got = {"status_error": repr(e)}
            if isinstance(got, dict):
                info.update(got)
        info.setdefault("daemon", self.daemon_name)
        sessions = dict(self.layer.sessions)
        if not self._may_see_all_sessions(link_id):
            # Who else is connected (names, uids, pids, addresses) is for admins only once the
            # daemon controls access; a client still sees its own session.
            own = self._by_link.get(link_id)
            sessions = {c: s for c, s in sessions.items() if c == own}
        info["sessions"] = sorted(sessions)
        info["clients"] = {
            conn: {
                "identity": s.identity.name,
                "pid": s.identity.pid,
                "via": self.links.address(self._by_conn.get(conn, 0)),
            }
            for conn, s in sorted(sessions.items())
        }
        info["frontend"] = {**self.counters, **self.layer.counters, **self.links.counters}
        if self.layer.retention is not None:
            info["retention"] = self.layer.retention.status()
        plain = _plain(info)
        assert isinstance(plain, dict)
        return plain

    # ----------------------------------------------------------------- output
    def _reply(self, identity: int, reply: Reply) -> None:
        self._direct.append((identity, reply))

    def _send_direct(self) -> None:
        direct, self._direct = self._direct, []
        for identity, reply in direct:
            self._send(identity, encode(reply))

    def _send_notices(self, conn: str, identity: int, notices: list[Notice]) -> None:
        batch: list[DeliverMessage] = []
        views: list[DeliverMembership] = []
        viewset = identity in self._viewset
        credit = 0
        out: list[Reply | bytes] = []  # bytes: an encoded ``msgs`` batch
        encoded = self._encoded

        def cut() -> None:
            if batch:
                # The sessions of one group get the same messages in a turn: a run of them is
                # encoded once (its entries are a function of the mids, RET-POS included).
                key = tuple(map(_mid_of, batch))
                data = encoded.get(key)
                if data is None:
                    data = encoded[key] = encode_msgs([m[1:] for m in batch])
                out.append(data)
                batch.clear()
            if views:
                out.extend(_view_sets(views) if viewset else _view_records(views))
                views.clear()

        for n in notices:
            if type(n) is DeliverMessage:  # the hot path: one per delivered message
                # DeliverMessage is (conn, *the msgs entry): the entry is a slice.
                if views:
                    cut()
                batch.append(n)
                continue
            match n:
                case Granted(nbytes=nbytes):
                    credit += nbytes
                case DeliverMembership():
                    if batch:
                        cut()
                    views.append(n)
                case Refused(req=req, op=op, group=group, reason=reason, code=code):
                    cut()
                    out.append(RejectMsg(req, op, group, reason, code))
                case Ended(reason=reason):
                    cut()
                    out.append(Closed(reason))
                case Gap():
                    cut()
                    out.append(
                        GapMsg(n.groups, n.reason, n.after, n.before, n.first, n.last, n.count)
                    )
        cut()
        if credit:
            out.insert(0, CreditGrant(credit))
        for reply in out:
            data = reply if isinstance(reply, bytes) else encode(reply)
            if not self._send(identity, data):
                if conn in self.layer.sessions:
                    self.layer.close(conn, "client unreachable", notify=False)
                self._forget(conn)
                return
            if isinstance(reply, Closed):
                self._forget(conn)
                return

    def _send(self, identity: int, data: bytes) -> bool:
        if self.links.send(identity, data):
            return True
        self.counters["send_failed"] += 1
        return False

    def _forget(self, conn: str) -> None:
        link_id = self._by_conn.pop(conn, None)
        if link_id is not None:
            self._by_link.pop(link_id, None)


def _view_records(views: list[DeliverMembership]) -> list[Reply]:
    """A run of membership messages for a client without ``viewset``: one ``view``, or one
    ``views`` for two or more."""
    msgs = [ViewMsg(*v[1:]) for v in views]  # DeliverMembership is (conn, *the view fields)
    return [msgs[0] if len(msgs) == 1 else Views(tuple(msgs))]


def _view_sets(views: list[DeliverMembership]) -> list[Reply]:
    """A run of membership messages as ``viewset`` records, one per stretch of two or more
    consecutive messages that differ only in group and gid (a view change over many groups with
    the same members is one record); the messages between such stretches (a DISCONNECT's
    transitional and regular view of each group alternate) as ``view``/``views`` records."""
    out: list[Reply] = []
    singles: list[DeliverMembership] = []
    start = 0
    while start < len(views):
        first = views[start]
        kind, members, cause, vs_sets, changed = (
            first.kind,
            first.members,
            first.cause,
            first.vs_sets,
            first.changed,
        )
        end = start + 1
        while end < len(views):
            v = views[end]
            # The core hands out the same tuples for every group of one shape, so these
            # comparisons are mostly identity checks.
            if not (
                v.members == members
                and v.kind == kind
                and v.cause == cause
                and v.vs_sets == vs_sets
                and v.changed == changed
            ):
                break
            end += 1
        if end - start == 1:
            singles.append(first)
        else:
            if singles:
                out.extend(_view_records(singles))
                singles = []
            run = views[start:end]
            groups = tuple(v.group for v in run)
            gids = tuple(v.gid for v in run)
            out.append(ViewSet(kind, members, cause, vs_sets, changed, groups, gids))
        start = end
    if singles:
        out.extend(_view_records(singles))
    return out
