"""``SpreadFrontEnd``: the Spread 4.x/5.0 client protocol (``protocol/spread.md``) as a
``frontends.ProtocolPart`` beside the native one, on the same ``SessionLayer``: Spread and
native sessions are in the same groups, in one total order, with the same views.

It owns the Spread links (``StreamLinks`` with ``wire.spread.SpreadReader``): the connect
handshake (reject codes as the real daemon sends them, NULL authentication), then JOIN, LEAVE,
KILL and multicasts, and the encoding of deliveries and views (``spreadmap``). It does not own
the session rules (the layer's, shared) nor the meaning of views (the core's).

What the real daemon does, and this one too: a malformed message kills that session (the link
is closed); a refused connect gets its reject byte, then the link is closed; neither disturbs
any other session. Where the native protocol has requests the Spread one lacks:

- send window: a Spread client does not wait for credit, so a multicast that does not fit the
  session's window is held, and the link is not read until credit returns (TCP then slows the
  client, as a busy Spread daemon does);
- consumed reports: a delivery counts as consumed once its bytes are written to the client's
  socket; a client that stops reading is then closed by the layer's slow-consumer rules;
- keepalives: a Spread session lives as long as its connection; the front-end keeps it fresh
  for the layer's idle timeout.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from groupcomm.accessconfig import AccessConfig
from groupcomm.core.commands import DeliverMembership, DeliverMessage
from groupcomm.daemon.access import Access, AuthError, Identity
from groupcomm.daemon.clientlinks import StreamLinks
from groupcomm.daemon.fdlimit import reserve_for
from groupcomm.daemon.ratelimit import Warnings
from groupcomm.daemon.readiness import Readiness
from groupcomm.daemon.sessions import (
    LIMIT,
    Ended,
    Granted,
    Log,
    Notice,
    OpenRefused,
    Refused,
    SessionLayer,
)
from groupcomm.daemon.spreadmap import data_message, from_field, membership_message, spread_name
from groupcomm.wire import spread as sp

TOUCH_EVERY_MS = 1000
ALIASES_MAX = 65536  # long names remembered so a Spread client can address them (bounded)
_OPERATIONS = sp.JOIN_MESS | sp.LEAVE_MESS | sp.KILL_MESS  # not multicasts: no window


@dataclass
class _Peer:
    """One Spread connection: handshake state, then its session."""

    link: int
    request: sp.ConnectRequest | None = None
    who: Identity | None = None
    conn: str = ""  # the session's private name, once accepted
    alias: str = ""  # ... as the client knows it (at most 32 bytes)
    held: deque[sp.ClientMessage] = field(default_factory=deque)  # waiting for send window
    delivered: int = 0  # payload bytes of deliveries being encoded this turn
    owed: int = 0  # payload bytes queued for the client, not yet reported consumed
    counted: int = 0  # bytes written to its socket when ``owed`` was last reduced
    sent: dict[int, sp.ClientMessage] = field(default_factory=dict)  # this turn, by request
    hung_up: bool = False  # its connection closed while multicasts were held (``_gone``)


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class SpreadFrontEnd:
    """See the module docstring; implements ``frontends.ProtocolPart``."""

    def __init__(
        self,
        endpoints: list[str],
        layer: SessionLayer,
        log: Log,
        *,
        access: Access | None = None,
        max_message_bytes: int = sp.MAX_MESSAGE_BODY_LEN,
        fd_reserve: int = reserve_for(1),
        clock: Callable[[], int] = _monotonic_ms,
    ) -> None:
        self.layer = layer
        self.log = log
        self.access = access if access is not None else Access(AccessConfig())
        self.max_message_bytes = max_message_bytes
        self.counters: dict[str, int] = {
            "spread_rejected": 0,
            "spread_killed": 0,
            "held": 0,
        }
        self.warnings = Warnings(log, time.monotonic)
        self._clock = clock
        self._peers: dict[int, _Peer] = {}
        self._by_conn: dict[str, _Peer] = {}
        self._resume: set[int] = set()  # links whose held multicasts may go on
        self._draining: set[int] = set()  # links with deliveries not yet reported consumed
        self._turn_sent: set[int] = set()
        self._dead: set[int] = set()  # links closed during this read
        self._aliases: dict[str, str] = {}
        self._next_req = 1
        self._last_touch = clock()
        self.links: StreamLinks[sp.SpreadItem] = StreamLinks(
            endpoints,
            reader=lambda: sp.SpreadReader(max_message_bytes),
            framed=False,
            out_limit=2 * layer.slow_consumer_bytes + (4 << 20),
            fd_reserve=fd_reserve,
            refusal=sp.encode_reject(sp.REJECT_QUOTA),
            logger="groupcomm.spread",
            # As Spread's daemon (session.c): any local user may connect; the [[acl]] rules
            # and [clients] identities still apply, by the connecting process's uid.
            unix_mode=0o666,
        )

    # ----------------------------------------------------------------- ProtocolPart
    def attach(self, readiness: Readiness) -> None:
        self.links.attach(readiness)

    def expire_links(self) -> None:
        self.links.expire(self._has_session)  # a connect not completed: closed (HELLO_WAIT_S)

    def _has_session(self, link_id: int) -> bool:
        peer = self._peers.get(link_id)
        return peer is not None and bool(peer.conn)

    def wants_turn(self) -> bool:
        # Deliveries written out are reported consumed in ``read``: without a turn for that a
        # session far behind would stay "behind" and hold every sender (ordering.md 7).
        return bool(self._resume) or any(self._progress(p) for p in self._draining)

    def _progress(self, link_id: int) -> bool:
        peer = self._peers.get(link_id)
        return peer is None or self.links.written(link_id)[0] > peer.counted

    def owns(self, conn: str) -> bool:
        return conn in self._by_conn

    def admin_requests(self) -> list[tuple[str, list[str]]]:
        return []

    def status_provider(self, provider: object) -> None:
        return None

    def close(self) -> None:
        self.links.close()

    def read(self, now_ms: int, limit: int) -> None:
        self._dead.clear()
        for link_id, item in self.links.receive(limit):
            if link_id in self._dead:
                continue  # the rest of a read after a kill or a reject
            peer = self._peers.setdefault(link_id, _Peer(link_id))
            self._on_item(peer, item, now_ms)
        for link_id in self.links.take_closed():
            self._gone(link_id, "disconnected")
        for link_id in sorted(self._resume):
            held = self._peers.get(link_id)
            self._resume.discard(link_id)
            if held is not None and held.conn:
                self._release(held, now_ms)
        for link_id in list(self._draining):  # written to the socket: the client has them
            reader = self._peers.get(link_id)
            if reader is None or not reader.conn:
                self._draining.discard(link_id)
                continue
            # Every byte written counts, headers too (a little early, never more than was
            # delivered): a large turn's batch is reported as it drains, not once at its end,
            # so a reader that keeps reading never looks stalled (slow_consumer_ms).
            written = self.links.written(link_id)[0]
            consumed = min(reader.owed, written - reader.counted)
            reader.counted = written
            if consumed > 0:
                reader.owed -= consumed
                self.layer.consumed(reader.conn, consumed, now_ms)
            if not reader.owed:
                self._draining.discard(link_id)
        if now_ms - self._last_touch >= TOUCH_EVERY_MS:
            self._last_touch = now_ms  # a Spread session lives as long as its connection
            for conn in self._by_conn:
                self.layer.touch(conn, now_ms)

    def deliver(self, conn: str, notices: list[Notice]) -> None:
        peer = self._by_conn.get(conn)
        if peer is None:
            return
        if peer.hung_up:
            self._deliver_nowhere(peer, notices)
            return
        out: list[bytes] = []
        for i, n in enumerate(notices):
            if type(n) is DeliverMessage:
                out.append(data_message(n))
                self._remember(n.sender, *n.groups)
                peer.delivered += len(n.payload)
                continue
            match n:
                case DeliverMembership():
                    self._remember(n.group, *n.members)
                    after = notices[i + 1] if i + 1 < len(notices) else None
                    message = membership_message(
                        n, after if isinstance(after, DeliverMembership) else None
                    )
                    if message is not None:
                        out.append(message)
                case Granted():
                    if peer.held:
                        self._resume.add(peer.link)
                case Refused():
                    out.extend(self._refused(peer, n))
                case Ended(reason=reason):
                    self._send(peer, out)
                    self.log.info("spread_session_ended", conn=conn, reason=reason)
                    self.links.finish(peer.link)
                    self._forget(peer)
                    return
        self._send(peer, out)

    def _deliver_nowhere(self, peer: _Peer, notices: list[Notice]) -> None:
        """A hung-up session's notices while its held multicasts drain: its credit releases
        them; its deliveries are dropped and reported consumed, so it holds no sender back."""
        dropped = 0
        for n in notices:
            if type(n) is DeliverMessage:
                dropped += len(n.payload)
            elif isinstance(n, Granted):
                self._resume.add(peer.link)
            elif isinstance(n, Ended):
                self._forget(peer)
                return
        if dropped:
            self.layer.consumed(peer.conn, dropped, self._clock())

    def flush_output(self) -> None:
        for link_id in self._turn_sent:
            peer = self._peers.get(link_id)
            if peer is not None:
                peer.sent.clear()
        self._turn_sent.clear()
        self.links.flush()

    # ------------------------------------------------------------------- handshake
    def _on_item(self, peer: _Peer, item: sp.SpreadItem, now: int) -> None:
        match item:
            case sp.ConnectRejected(code=code, reason=reason):
                self._reject(peer, code, reason)
            case sp.ConnectRequest():
                self._connect(peer, item, now)
            case sp.AuthChoice(methods=methods):
                if peer.request is None or peer.conn:
                    self._kill(peer, "authentication out of turn")
                elif "NULL" not in methods:
                    self._reject(peer, sp.REJECT_AUTH, f"auth methods {list(methods)}")
                else:
                    self._accept(peer, peer.request, now)
            case sp.ClientMessage():
                if not peer.conn:
                    self._kill(peer, "message before the session was accepted")
                else:
                    self._on_message(peer, item, now)

    def _connect(self, peer: _Peer, request: sp.ConnectRequest, now: int) -> None:
        if sp.connect_name_problem(request.name):
            self._reject(peer, sp.REJECT_ILLEGAL_NAME, f"name {request.name!r}")
            return
        try:
            peer.who = self.access.identify(self.links.credentials(peer.link), "")
        except AuthError as e:
            self._reject(peer, sp.REJECT_AUTH, str(e))
            return
        name = request.name.decode("ascii")
        if name and self.layer.private_name(name) in self.layer.sessions:
            self._reject(peer, sp.REJECT_NOT_UNIQUE, f"name {name!r} is in use")
            return
        peer.request = request
        if request.version >= sp.AUTH_FROM:
            self.links.send(peer.link, sp.encode_auth_list("NULL "))
        else:
            self._accept(peer, request, now)

    def _accept(self, peer: _Peer, request: sp.ConnectRequest, now: int) -> None:
        assert peer.who is not None
        name = request.name.decode("ascii")
        try:
            session = self.layer.open(
                name, request.want_membership, now, peer.who, name_checked=True
            )
        except OpenRefused as e:
            code = sp.REJECT_QUOTA if e.code == LIMIT else sp.REJECT_NOT_UNIQUE
            self._reject(peer, code, str(e))
            return
        peer.conn = session.conn
        peer.alias = spread_name(session.conn)
        self._remember(session.conn)
        self._by_conn[session.conn] = peer
        self.links.send(peer.link, sp.encode_accept(request, peer.alias))
        self.log.info(
            "spread_session_opened",
            conn=session.conn,
            library=f"{request.major}.{request.minor}.{request.patch}",
            identity=peer.who.name,
            via=self.links.address(peer.link),
        )

    def _reject(self, peer: _Peer, code: int, reason: str) -> None:
        self.counters["spread_rejected"] += 1
        self.warnings.warning("reject", "spread_session_refused", code=code, reason=reason[:200])
        self.links.send(peer.link, sp.encode_reject(code))
        self.links.finish(peer.link)
        self._peers.pop(peer.link, None)
        self._dead.add(peer.link)

    # ---------------------------------------------------------------------- requests
    def _on_message(self, peer: _Peer, msg: sp.ClientMessage, now: int) -> None:
        why = sp.message_problem(msg, peer.alias, self.max_message_bytes)
        if why:
            self._kill(peer, why)
            return
        # A session's messages, joins, leaves and its disconnect take effect in the order sent
        # (Spread's Sess_read queues them so): behind held multicasts, they wait too.
        if peer.held or (not msg.type & _OPERATIONS and not self._fits(peer, len(msg.body))):
            self._hold(peer, msg)
        else:
            self._apply(peer, msg, now)

    def _apply(self, peer: _Peer, msg: sp.ClientMessage, now: int) -> None:
        kind = msg.type & ~sp.SELF_DISCARD
        if kind & sp.KILL_MESS:
            self.layer.close(peer.conn, "disconnected", notify=False)
            self._forget(peer)
            self.links.drop(peer.link)
            self._dead.add(peer.link)  # what follows in the same read is not a new client
        elif kind & (sp.JOIN_MESS | sp.LEAVE_MESS):
            req = self._request(peer, msg)
            group = self._resolve(msg.groups[0])
            if kind & sp.JOIN_MESS:
                self.layer.join(peer.conn, req, group, now)
            else:
                self.layer.leave(peer.conn, req, group, now)
        else:
            self._multicast(peer, msg, now)

    def _fits(self, peer: _Peer, size: int) -> bool:
        session = self.layer.sessions.get(peer.conn)
        if session is None:
            return True
        held = session.in_flight + session.parked_bytes
        return not held or held + size <= self.layer.send_window

    def _hold(self, peer: _Peer, msg: sp.ClientMessage) -> None:
        peer.held.append(msg)
        self.counters["held"] += 1
        self.links.pause(peer.link, True)  # the rest waits in the socket: TCP slows the client

    def _release(self, peer: _Peer, now: int) -> None:
        while peer.held and (
            peer.held[0].type & _OPERATIONS or self._fits(peer, len(peer.held[0].body))
        ):
            self._apply(peer, peer.held.popleft(), now)
            if peer.link not in self._peers:
                return  # its disconnect was next: the link is gone
        if not peer.held:
            self.links.pause(peer.link, False)

    def _multicast(self, peer: _Peer, msg: sp.ClientMessage, now: int) -> None:
        # As Spread's G_analize_groups: each destination once, empty names skipped; a message
        # to no group reaches nobody.
        groups = tuple(dict.fromkeys(self._resolve(g) for g in msg.groups if g))
        if not groups:
            return
        service = msg.type & (sp.SERVICE_BITS | sp.SELF_DISCARD)
        req = self._request(peer, msg)
        self.layer.multicast(peer.conn, req, groups, service, msg.mess_type, msg.body, now)

    def _request(self, peer: _Peer, msg: sp.ClientMessage) -> int:
        """A request id, remembered for this turn so a refusal can echo the message back."""
        req = self._next_req
        self._next_req += 1
        peer.sent[req] = msg
        self._turn_sent.add(peer.link)
        return req

    def _refused(self, peer: _Peer, n: Refused) -> list[bytes]:
        """A refused request comes back to its sender as Spread's REJECT_MESS: the original
        message with ``old_type`` (the real daemon does this for what its access control
        refuses; groupcomm also for what its checks refuse, e.g. an invalid group name)."""
        msg = peer.sent.pop(n.req, None)
        self.warnings.warning(
            peer.link, "spread_request_refused", conn=peer.conn, op=n.op, reason=n.reason[:200]
        )
        if msg is None or msg.type & sp.SELF_DISCARD:
            return []  # Spread's reject goes to the sender only, whom SELF_DISCARD excludes
        # As Spread 5.0.1 (daemon/message.c Message_add_oldtype_to_reject): the sender's own
        # private group is added to the groups, in place of the last one if there are 100; a
        # refused join reports CAUSED_BY_JOIN, not JOIN_MESS (session.c).
        groups = (*msg.groups[: sp.MAX_GROUPS_PER_MESSAGE - 1], peer.alias)
        old_type = msg.type
        if old_type & sp.JOIN_MESS:
            old_type = (old_type & ~sp.JOIN_MESS) | sp.CAUSED_BY_JOIN
        return [
            sp.encode_message(
                sp.REJECT_MESS,
                peer.alias,
                groups,
                msg.body,
                hint=sp.hint_for(msg.mess_type),
                old_type=old_type,
            )
        ]

    # ---------------------------------------------------------------------- helpers
    def _kill(self, peer: _Peer, why: str) -> None:
        """What the real daemon does to a session that breaks the protocol: it is closed."""
        self.counters["spread_killed"] += 1
        self.warnings.warning(
            peer.link, "spread_session_killed", conn=peer.conn or None, reason=why[:200]
        )
        if peer.conn:
            self.layer.close(peer.conn, "protocol error", notify=False)
        self._forget(peer)
        self.links.drop(peer.link)
        self._dead.add(peer.link)

    def _gone(self, link_id: int, reason: str) -> None:
        self.warnings.forget(link_id)
        peer = self._peers.get(link_id)
        if peer is None:
            return
        if peer.held and peer.conn in self.layer.sessions:
            # What it sent before the connection closed still goes, in order, and then the
            # session ends (Spread delivers everything sent before a disconnect); its own
            # deliveries meanwhile have nowhere to go and count as consumed.
            peer.hung_up = True
            self._draining.discard(link_id)
            if not peer.held[-1].type & sp.KILL_MESS:
                peer.held.append(sp.ClientMessage(sp.KILL_MESS, peer.alias, (), 0, b"", b"", True))
            return
        if peer.conn and peer.conn in self.layer.sessions:
            self.layer.close(peer.conn, reason, notify=False)
        self._forget(peer)

    def _forget(self, peer: _Peer) -> None:
        self._peers.pop(peer.link, None)
        self._resume.discard(peer.link)
        self._draining.discard(peer.link)
        if peer.conn:
            self._by_conn.pop(peer.conn, None)

    def _send(self, peer: _Peer, out: list[bytes]) -> None:
        if not out:
            return
        if not self.links.send(peer.link, b"".join(out)):
            if peer.conn in self.layer.sessions:
                self.layer.close(peer.conn, "client unreachable", notify=False)
            self._forget(peer)
            return
        if peer.delivered:
            if not peer.owed:  # what was written before this batch is not its consumption
                peer.counted = self.links.written(peer.link)[0]
            peer.owed += peer.delivered
            peer.delivered = 0
            self._draining.add(peer.link)

    def _remember(self, *names: str) -> None:
        """Remember the full name behind an alias a Spread client may see (and address)."""
        for name in names:
            if len(name) > sp.MAX_NAME_LEN or not name.isascii():  # as ``spread_name``
                alias = spread_name(name)
                if alias != name:
                    if len(self._aliases) >= ALIASES_MAX:
                        self._aliases.clear()
                    self._aliases[alias] = name

    def _resolve(self, name: str) -> str:
        return self._aliases.get(name) or from_field(name)
