"""The session layer: client sessions between a front-end and the core, independent of any
client wire format.

A front-end decodes its clients' bytes and calls ``open``/``join``/``leave``/``multicast``/
``consumed``/``touch``/``close``; the layer validates, does the per-session flow control and
queues core events (``take_events``). The driver hands the core's session commands to ``apply``;
the layer turns them into ``Notice`` s for the front-end to encode (``take_notices``).

Rules kept here, once for every front-end:

- names: a session is ``#<name>#<daemon>``; ``name`` is 1..20 characters ``[A-Za-z0-9_-]``, or
  empty, in which case the layer invents ``r<counter>``; a name in use is refused.
- send-side flow control: bytes in flight per session = accepted multicast payload bytes minus
  what the core ``Credit`` ed. A multicast that would exceed ``send_window`` (unless nothing is
  in flight, so one message larger than the window can pass) is refused ("send window
  exceeded"). A refused multicast returns its bytes at once with a ``Granted`` notice, so a
  client that counts every send it made stays in step.
- receive-side accounting: delivered payload bytes minus ``consumed``; above
  ``slow_consumer_bytes`` the session is closed (``SessionClosed`` is fed to the core, so the
  groups see a DISCONNECT view) and the client is told ``Ended("slow consumer")``.
- lagging sessions (more than half of ``slow_consumer_bytes`` behind) hold back every sender
  (``lagging``) while they make progress: local multicasts are parked, and a join or leave
  sent after parked multicasts waits behind them (a client's requests keep their order).
  ``check_lagging(now_ms)`` (every turn while one lags) stops counting one that has consumed
  nothing for ``slow_consumer_ms`` (it may be a session that never reads: holding the cluster
  for it would stall every sender until it is closed; deliveries go on and the byte limit
  closes it, or a ``consumed`` report makes it count again), and closes one behind for
  ``lagging_ms`` in all. So a session that never reads stalls the cluster for
  ``slow_consumer_ms`` at most. A front-end that sees the client move bytes on its socket
  meanwhile says so (``reading``): a client reading a large message reports it consumed only
  once it is whole, one sending a large request reports behind it, and neither is one that
  never reads.
- vanished clients: ``expire(now_ms)`` closes sessions silent for ``idle_timeout_ms``.
- access (``groupcomm.daemon.access``): each session has the ``Identity`` its front-end
  established; ``open`` refuses a session past ``max_sessions`` or
  ``max_sessions_per_identity``, ``join`` and ``multicast`` refuse what the ``[[acl]]`` rules
  deny, with the code ``denied`` and a reason that names the rule. A denied multicast returns
  its window like any refused one.

The layer never reads a clock: times are arguments.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from groupcomm.accessconfig import AccessConfig
from groupcomm.core.commands import (
    RECORD,
    CloseSession,
    Credit,
    DeliverMembership,
    DeliverMessage,
    RejectRequest,
)
from groupcomm.core.events import (
    Event,
    JoinRequested,
    LeaveRequested,
    MulticastRequested,
    SessionClosed,
    SessionOpened,
)
from groupcomm.core.ids import parse_position, position_text
from groupcomm.core.requests import group_op_problem, multicast_problem
from groupcomm.daemon.access import ANONYMOUS_IDENTITY, Access, Identity
from groupcomm.daemon.replay import Gap, ReplayCursor
from groupcomm.daemon.retention import EARLIEST, Retention

# A MulticastRequested from its fields in order, built in C (one per accepted multicast).
_new_request: Callable[[tuple[str, tuple[str, ...], int, int, bytes]], MulticastRequested] = (
    functools.partial(tuple.__new__, MulticastRequested)
)

NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,20}")
SLOW_CONSUMER = "slow consumer"
IDLE = "client vanished (idle timeout)"
WINDOW_EXCEEDED = "send window exceeded"
DENIED = "denied"  # the code of a refusal by the access rules
LIMIT = "limit"  # the code of a session refused by a session limit
AUTH = "auth"  # the code of a session refused for its credentials (front-ends use it)
VERDICTS_MAX = 1024  # cached access verdicts per session (bounded against hostile names)

# Core op names -> the request names the notices use (the native protocol's ops).
_CORE_OPS = {"multicast": "mcast", "session": "hello", "join": "join", "leave": "leave"}


class Log(Protocol):
    def info(self, event: str, **kw: object) -> object: ...

    def warning(self, event: str, **kw: object) -> object: ...


LAGGING_MS = 5_000  # a consumer more than half the slow-consumer limit behind for this long
# is closed as a slow consumer (it holds back the local senders meanwhile)
# ... and one that consumes nothing at all for this long while behind (a session that never
# reads): with one opened every 3 s a 5 s hold cut cluster throughput to a third (issue 13).
SLOW_CONSUMER_MS = 250
# The service of a parked entry that is a join or a leave (``Session.parked``).
PARKED_JOIN = -1
PARKED_LEAVE = -2


class NullLog:
    def info(self, event: str, **kw: object) -> object:
        return None

    def warning(self, event: str, **kw: object) -> object:
        return None


# ------------------------------------------------------------------------------- notices


@dataclass(slots=True, init=False, unsafe_hash=True)
class Granted:
    """Send window returned: the client may have ``nbytes`` more in flight."""

    # A written __init__ and Final fields instead of frozen=True: compiled natively
    # (groupcomm/core/frames.py's docstring says why).

    conn: Final[str]
    nbytes: Final[int]

    def __init__(self, conn: str, nbytes: int) -> None:
        self.conn = conn
        self.nbytes = nbytes


@dataclass(frozen=True, slots=True)
class Refused:
    """A request was refused; nothing changed. ``req`` is 0 when unknown."""

    conn: str
    req: int
    op: str  # "join" | "leave" | "mcast" | "hello"
    group: str | None
    reason: str
    code: str = ""  # "" or DENIED: the client library raises on the latter


@dataclass(frozen=True, slots=True)
class Ended:
    """The daemon closed the session; nothing more follows."""

    conn: str
    reason: str


Notice = Granted | Refused | Ended | DeliverMessage | DeliverMembership | Gap

# Slow-consumer policies (protocol/retention.md section 5, RET-DROP), chosen at hello.
BLOCK = "block"
DROP = "drop"
DISCONNECT = "disconnect"
POLICIES = (BLOCK, DROP, DISCONNECT)
Since = str | float  # a position, a wall-clock time in seconds, or "earliest"


class OpenRefused(Exception):
    """``SessionLayer.open`` refused the session (bad or duplicate name, or a session limit:
    ``code`` is then ``LIMIT``)."""

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(reason)
        self.code = code


# ------------------------------------------------------------------------------ sessions


@dataclass
class Session:
    conn: str
    want_membership: bool
    last_seen_ms: int
    in_flight: int = 0  # send side: accepted payload bytes not yet credited by the core
    unconsumed: int = 0  # receive side: delivered payload bytes not yet consumed
    progress_ms: int = 0  # when a ``consumed`` report last took bytes off ``unconsumed``
    # Requests handed to the core since the last take_notices, to name core rejections.
    turn: deque[tuple[str, str | None, int, int]] = field(default_factory=deque)
    # Multicasts held back while a local consumer lags (req, groups, service, msg_type,
    # payload), in order; their bytes count against the send window like accepted ones.
    # A join or leave behind them waits too, in its place: (req, (group,), PARKED_JOIN or
    # PARKED_LEAVE, 0, b"").
    parked: deque[tuple[int, tuple[str, ...], int, int, bytes]] = field(default_factory=deque)
    parked_bytes: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    identity: Identity = ANONYMOUS_IDENTITY
    # Access verdicts by destination list: (why denied or "", the group denied). A sender
    # sends many messages to the same few destinations; the rules are fnmatch patterns.
    send_verdicts: dict[tuple[str, ...], tuple[str, str]] = field(default_factory=dict)
    policy: str = BLOCK
    joined: set[str] = field(default_factory=set)  # groups whose regular view lists it
    since: dict[str, Since] = field(default_factory=dict)  # joins asking for a replay
    # Deliveries waiting in the daemon (a replay before them, or a drop/disconnect session
    # behind): replays first, then ``front`` (what a drop kept: views, gaps), then ``waiting``.
    replays: deque[ReplayCursor] = field(default_factory=deque)
    front: deque[Notice] = field(default_factory=deque)
    waiting: deque[Notice] = field(default_factory=deque)
    waiting_bytes: int = 0  # what ``waiting`` holds in memory of its own (``_cost``)
    queued: bool = False  # any of the three is not empty: new deliveries queue behind them


class SessionLayer:
    def __init__(
        self,
        daemon_name: str,
        *,
        send_window: int,
        slow_consumer_bytes: int,
        idle_timeout_ms: int = 60_000,
        lagging_ms: int = LAGGING_MS,
        slow_consumer_ms: int = SLOW_CONSUMER_MS,
        max_message_bytes: int = 1 << 20,
        log: Log | None = None,
        access: Access | None = None,
        retention: Retention | None = None,
    ) -> None:
        if min(send_window, slow_consumer_bytes, idle_timeout_ms, slow_consumer_ms) <= 0:
            raise ValueError(
                "send_window, slow_consumer_bytes, idle_timeout_ms and slow_consumer_ms must be > 0"
            )
        self.daemon_name = daemon_name
        self.send_window = send_window
        self.slow_consumer_bytes = slow_consumer_bytes
        self.idle_timeout_ms = idle_timeout_ms
        self.max_message_bytes = max_message_bytes
        self.log: Log = log or NullLog()
        self.access = access if access is not None else Access(AccessConfig())
        self.retention = retention
        self.sessions: dict[str, Session] = {}
        self._queued: set[str] = set()  # sessions with deliveries waiting in the daemon
        self.per_identity: dict[str, int] = {}  # open sessions by identity name
        self.counters: dict[str, int] = {
            "opened": 0,
            "closed": 0,
            "refused": 0,
            "slow_consumers": 0,
            "idle_closed": 0,
            "parked": 0,  # multicasts held back while a local consumer lagged
            "denied": 0,  # requests refused by the [[acl]] rules
            "limited": 0,  # sessions refused by a session limit
            "stalled": 0,  # lagging sessions that stopped holding (nothing consumed for a while)
            "replays": 0,  # joins with a replay started
            "replayed": 0,  # messages sent from a retained log
            "dropped": 0,  # messages dropped for sessions with the drop policy
            "gaps": 0,  # gap events sent
        }
        # Sessions more than half of slow_consumer_bytes behind: while there is one, local
        # multicasts wait (parked) instead of reaching the core, so a flood slows to what the
        # local consumers take before any of them reaches the slow-consumer limit.
        self._behind: dict[str, int | None] = {}  # conn -> when first seen behind (a turn late)
        self._stalled: set[str] = set()  # behind, no progress for slow_consumer_ms: not holding
        self._lag_limit = max(1, slow_consumer_bytes // 2)
        self.lagging_ms = lagging_ms
        self.slow_consumer_ms = slow_consumer_ms
        self._invented = 0
        self._events: list[Event] = []
        self._notices: list[Notice] = []
        # Per turn, only the sessions that did something are visited, not every session: with
        # hundreds of consumers on a daemon (a log feed), two loops over all of them were a
        # fixed cost of every turn (docs/performance.md, Results, "2026-12-05 (night)").
        self._turned: list[Session] = []  # sessions with requests of this turn (``turn``)
        self._parked: set[str] = set()  # sessions with parked multicasts

    # ------------------------------------------------------------------ queues
    def take_events(self) -> list[Event]:
        """Core events produced since the last call, in order."""
        out, self._events = self._events, []
        return out

    def take_notices(self) -> list[Notice]:
        """Client notices produced since the last call, in order. Ends the driver turn."""
        out, self._notices = self._notices, []
        for s in self._turned:
            s.turn.clear()
        self._turned = []
        return out

    def has_events(self) -> bool:
        return bool(self._events)

    def event_count(self) -> int:
        """Core events waiting to be taken (a batched request adds many at once)."""
        return len(self._events)

    # ---------------------------------------------------------------- requests
    def private_name(self, name: str) -> str:
        return f"#{name}#{self.daemon_name}"

    def open(
        self,
        name: str,
        want_membership: bool,
        now_ms: int,
        identity: Identity = ANONYMOUS_IDENTITY,
        *,
        name_checked: bool = False,
        policy: str = BLOCK,
    ) -> Session:
        """Open a session for ``identity``; raise ``OpenRefused`` with the reason for a bad or
        duplicate name or a session limit (checked first: nothing is created). With
        ``name_checked`` the front-end has applied its own protocol's name rules (Spread's
        allow more characters, and no ``#``)."""
        limit = self.access.check_open(
            identity, len(self.sessions), self.per_identity.get(identity.name, 0)
        )
        if limit:
            self.counters["refused"] += 1
            self.counters["limited"] += 1
            raise OpenRefused(limit, LIMIT)
        if name == "":
            while True:
                self._invented += 1
                name = f"r{self._invented}"
                if self.private_name(name) not in self.sessions:
                    break
        elif policy not in POLICIES:
            self.counters["refused"] += 1
            raise OpenRefused(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        elif not name_checked and not NAME_RE.fullmatch(name):
            self.counters["refused"] += 1
            raise OpenRefused("name must be 1..20 characters of [A-Za-z0-9_-]")
        conn = self.private_name(name)
        if conn in self.sessions:
            self.counters["refused"] += 1
            raise OpenRefused(f"name {name!r} is in use")
        session = Session(
            conn=conn,
            want_membership=want_membership,
            last_seen_ms=now_ms,
            identity=identity,
            policy=POLICIES[POLICIES.index(policy)],  # the constant itself: compared with ``is``
        )
        self.sessions[conn] = session
        self.per_identity[identity.name] = self.per_identity.get(identity.name, 0) + 1
        self.counters["opened"] += 1
        self._events.append(SessionOpened(conn=conn))
        return session

    def touch(self, conn: str, now_ms: int) -> None:
        session = self.sessions.get(conn)
        if session is not None:
            session.last_seen_ms = max(session.last_seen_ms, now_ms)

    def join(
        self, conn: str, req: int, group: str, now_ms: int, since: Since | None = None
    ) -> None:
        """Join ``group``; with ``since``, replay what the group's log holds from there first
        (protocol/retention.md section 3)."""
        session = self.sessions.get(conn)
        if since is not None and session is not None:
            why = self._replay_problem(session, group, since)
            if why:
                self._refuse(conn, req, "join", group, why)
                return
        if self._group_op(conn, req, "join", group, now_ms) and since is not None:
            assert session is not None
            session.since[group] = since

    def _replay_problem(self, session: Session, group: str, since: Since) -> str:
        if self.retention is None or self.retention.rule_for(group) is None:
            return (
                f"group {group!r} is not retained at daemon {self.daemon_name} "
                "(no [[retain]] rule names it)"
            )
        if group in session.joined or group in session.since:
            return f"already a member of {group!r}, or joining it (leave first to replay it)"
        if isinstance(since, str) and since != EARLIEST:
            try:
                parse_position(since)
            except ValueError as e:
                return str(e)
        elif isinstance(since, float | int) and not 0 <= since < 1e11:
            return f"since must be a time in seconds since 1970, got {since!r}"
        return ""

    def leave(self, conn: str, req: int, group: str, now_ms: int) -> None:
        self._group_op(conn, req, "leave", group, now_ms)

    def _group_op(self, conn: str, req: int, op: str, group: str, now_ms: int) -> bool:
        """Check a join or leave and hand it to the core; False when refused here."""
        session = self._live(conn, now_ms)
        if session is None:
            return False
        why = group_op_problem(group)
        if why:
            self._refuse(conn, req, op, group, why)
            return False
        if op == "join" and self.access.acl_active:
            why = self.access.check(session.identity, "join", group)
            if why:
                self.counters["denied"] += 1
                self._refuse(conn, req, op, group, why, DENIED)
                return False
        if session.parked:
            # Behind its parked multicasts (a client's requests take effect in the order sent:
            # a leave must not overtake the messages before it).
            marker = PARKED_JOIN if op == "join" else PARKED_LEAVE
            session.parked.append((req, (group,), marker, 0, b""))
            return True
        self._hand_op(session, op, group, req)
        return True

    def _hand_op(self, session: Session, op: str, group: str, req: int) -> None:
        self._turn_of(session).append((op, group, req, 0))
        event = JoinRequested if op == "join" else LeaveRequested
        self._events.append(event(conn=session.conn, group=group))

    def multicast(
        self,
        conn: str,
        req: int,
        groups: tuple[str, ...],
        service: int,
        msg_type: int,
        payload: bytes,
        now_ms: int,
    ) -> None:
        session = self._live(conn, now_ms)
        if session is None:
            return
        if self.access.acl_active:
            why, group = self.send_denied(session, groups)
            if why:
                self.counters["denied"] += 1
                self._refuse(conn, req, "mcast", group, why, DENIED)
                if payload:
                    self._notices.append(Granted(conn, len(payload)))
                return
        if self.lagging() or session.parked:
            size = len(payload)
            held = session.in_flight + session.parked_bytes
            if held and held + size > self.send_window:
                self._refuse(conn, req, "mcast", None, WINDOW_EXCEEDED)
                if size:
                    self._notices.append(Granted(conn, size))
                return
            session.parked.append((req, groups, service, msg_type, payload))
            self._parked.add(conn)
            session.parked_bytes += size
            self.counters["parked"] += 1
            return
        self._accept_multicast(session, req, groups, service, msg_type, payload)

    def multicast_batch(
        self,
        conn: str,
        first_req: int,
        groups: tuple[str, ...],
        service: int,
        msg_type: int,
        payloads: tuple[bytes, ...],
        now_ms: int,
    ) -> None:
        """An ``mcastb`` request: exactly as ``multicast`` once per payload (request ids
        ``first_req``, ``first_req + 1``, ...), checked once when every payload would pass."""
        session = self._live(conn, now_ms)
        if session is None:
            return
        sizes = [len(p) for p in payloads]
        total = sum(sizes)
        if (
            not payloads
            or (self.access.acl_active and self.send_denied(session, groups)[0])
            or self.lagging()
            or session.parked
            or session.in_flight + total > self.send_window
            or multicast_problem(groups, service, msg_type, max(sizes), self.max_message_bytes)
        ):
            for i, payload in enumerate(payloads):
                self.multicast(conn, first_req + i, groups, service, msg_type, payload, now_ms)
            return
        # Every payload fits the window and passes the checks: accept them all at once.
        session.in_flight += total
        turn = self._turn_of(session)
        events = self._events
        for i, payload in enumerate(payloads):
            turn.append(("mcast", None, first_req + i, sizes[i]))
            events.append(_new_request((conn, groups, service, msg_type, payload)))

    def send_denied(self, session: Session, groups: tuple[str, ...]) -> tuple[str, str]:
        """``(why, group)`` when a destination in ``groups`` denies ``session`` to send (the
        first such), else ``("", "")``."""
        verdicts = session.send_verdicts
        verdict = verdicts.get(groups)
        if verdict is None:
            verdict = ("", "")
            for group in groups:
                why = self.access.check(session.identity, "send", group)
                if why:
                    verdict = (why, group)
                    break
            if len(verdicts) >= VERDICTS_MAX:
                verdicts.clear()
            verdicts[groups] = verdict
        return verdict

    def release_parked(self) -> None:
        """Hand parked multicasts to the core once no local consumer lags (in order)."""
        if not self._parked or self.lagging():
            return
        for session in self.sessions.values():  # in the sessions' order, as they opened
            parked = session.parked
            while parked and not self.lagging():
                req, groups, service, msg_type, payload = parked.popleft()
                if service < 0:  # a join or leave parked in its place
                    op = "join" if service == PARKED_JOIN else "leave"
                    self._hand_op(session, op, groups[0], req)
                    continue
                session.parked_bytes -= len(payload)
                self._accept_multicast(session, req, groups, service, msg_type, payload)
        sessions = self.sessions
        self._parked = {c for c in self._parked if c in sessions and sessions[c].parked}

    def _turn_of(self, session: Session) -> deque[tuple[str, str | None, int, int]]:
        """``session.turn``, noted for clearing at the end of the turn."""
        turn = session.turn
        if not turn:
            self._turned.append(session)
        return turn

    def _accept_multicast(
        self,
        session: Session,
        req: int,
        groups: tuple[str, ...],
        service: int,
        msg_type: int,
        payload: bytes,
    ) -> None:
        conn = session.conn
        size = len(payload)
        why = multicast_problem(groups, service, msg_type, size, self.max_message_bytes)
        if not why and session.in_flight and session.in_flight + size > self.send_window:
            why = WINDOW_EXCEEDED
        if why:
            self._refuse(conn, req, "mcast", None, why)
            if size:
                self._notices.append(Granted(conn, size))  # the client counted these bytes
            return
        session.in_flight += size
        self._turn_of(session).append(("mcast", None, req, size))
        self._events.append(_new_request((conn, groups, service, msg_type, payload)))

    def consumed(self, conn: str, nbytes: int, now_ms: int) -> None:
        session = self._live(conn, now_ms)
        if session is not None:
            session.unconsumed = max(0, session.unconsumed - nbytes)
            if nbytes:
                session.progress_ms = now_ms
                self._stalled.discard(conn)  # progress: it holds the senders again
            if session.unconsumed <= self._lag_limit:
                self._behind.pop(conn, None)
                self._stalled.discard(conn)

    def reading(self, conn: str, now_ms: int) -> None:
        """``conn`` is behind and its client moved bytes on its socket since the last look,
        though it reported nothing consumed: it reads a large delivery (a ``consumed`` report
        follows a whole message) or sends a large request (its reports wait behind it).
        Progress for ``slow_consumer_ms`` (the session holds the senders again, as after a
        report), not consumption: ``unconsumed`` is unchanged."""
        session = self.sessions.get(conn)
        if session is not None and conn in self._behind:
            session.progress_ms = now_ms
            self._stalled.discard(conn)

    def behind_sessions(self) -> list[str]:
        """The sessions more than half their slow-consumer limit behind (holding or not)."""
        return list(self._behind)

    def close(self, conn: str, reason: str, *, notify: bool = True) -> bool:
        """Close a session (client said bye, vanished, or a policy applies). Feeds
        ``SessionClosed`` to the core; with ``notify`` the client gets ``Ended(reason)``."""
        session = self.sessions.pop(conn, None)
        if session is None:
            return False
        self.counters["closed"] += 1
        name = session.identity.name
        left = self.per_identity.get(name, 0) - 1
        if left > 0:
            self.per_identity[name] = left
        else:
            self.per_identity.pop(name, None)
        self._behind.pop(conn, None)  # its parked multicasts go with it
        self._stalled.discard(conn)
        self._queued.discard(conn)  # its waiting deliveries and replays go with it
        self._events.append(SessionClosed(conn=conn))
        # Anything still queued for this session is moot: "nothing more follows".
        self._notices = [n for n in self._notices if n.conn != conn]
        if notify:
            self._notices.append(Ended(conn, reason))
        self.log.info("session_closed", conn=conn, reason=reason, identity=name)
        return True

    def expire(self, now_ms: int) -> list[str]:
        """Close sessions not heard from for ``idle_timeout_ms``; return their names."""
        if self.retention is not None:
            self.retention.expire()
        limit = now_ms - self.idle_timeout_ms
        gone = [c for c, s in self.sessions.items() if s.last_seen_ms < limit]
        for conn in gone:
            self.counters["idle_closed"] += 1
            self.close(conn, IDLE)
        return gone + self.check_lagging(now_ms)

    def check_lagging(self, now_ms: int) -> list[str]:
        """Apply the time bounds to the lagging sessions (module docstring); returns those
        closed. Call it every turn while one lags: the hold stops every sender in the cluster,
        so its bound is only as good as this call is frequent."""
        closed: list[str] = []
        for conn, since in list(self._behind.items()):
            session = self.sessions.get(conn)
            if session is None:
                continue
            if since is None:  # first seen behind this turn (``apply`` has no clock)
                self._behind[conn] = since = now_ms
            if now_ms - since >= self.lagging_ms:
                self._slow_consumer(session, behind_ms=now_ms - since)
                closed.append(conn)
            elif (
                conn not in self._stalled
                and now_ms - max(since, session.progress_ms) >= self.slow_consumer_ms
            ):
                self._stalled.add(conn)
                self.counters["stalled"] += 1
        return closed

    def behind(self) -> bool:
        """A session is more than half its slow-consumer limit behind (holding or not)."""
        return bool(self._behind)

    def lagging(self) -> bool:
        """A session more than half its slow-consumer limit behind holds the senders (it has
        not gone ``slow_consumer_ms`` without consuming)."""
        return len(self._behind) > len(self._stalled)

    def _live(self, conn: str, now_ms: int) -> Session | None:
        session = self.sessions.get(conn)
        if session is not None:
            session.last_seen_ms = max(session.last_seen_ms, now_ms)
        return session

    def _refuse(
        self, conn: str, req: int, op: str, group: str | None, reason: str, code: str = ""
    ) -> None:
        self.counters["refused"] += 1
        self._notices.append(Refused(conn, req, op, group, reason, code))

    # ---------------------------------------------------------------- commands
    def apply(
        self, command: DeliverMessage | DeliverMembership | RejectRequest | CloseSession | Credit
    ) -> None:
        """Turn one core session command into notices (and policy decisions)."""
        if command.conn == RECORD:  # the core's own record of a delivered message
            if self.retention is not None and type(command) is DeliverMessage:
                self.retention.record(command)
            return
        session = self.sessions.get(command.conn)
        if session is None:
            return  # closed meanwhile: the core may still credit or deliver in this turn
        if type(command) is DeliverMessage:  # the hot path, one per delivered message
            if session.queued or session.policy is not BLOCK:
                self._deliver_unheld(session, command)
                return
            self._notices.append(command)
            session.unconsumed += len(command.payload)
            if session.unconsumed > self._lag_limit:
                self._behind.setdefault(session.conn, None)
                if session.unconsumed > self.slow_consumer_bytes:
                    self._slow_consumer(session)
            return
        match command:
            case DeliverMembership():
                self._track_membership(session, command)
                if session.want_membership:
                    if session.queued:
                        self._wait(session, command)
                    else:
                        self._notices.append(command)
            case Credit(payload_bytes=n):
                n = min(n, session.in_flight)
                session.in_flight -= n
                if n:
                    self._notices.append(Granted(session.conn, n))
            case RejectRequest(op=op, group=group, reason=reason):
                if op == "join" and group is not None:
                    session.since.pop(group, None)
                self._core_reject(session, _CORE_OPS.get(op, op), group, reason)
            case CloseSession(reason=reason):
                self.close(session.conn, reason)

    # ------------------------------------------------ replays and policies (RET-SEAM, RET-DROP)
    def _track_membership(self, session: Session, view: DeliverMembership) -> None:
        """Keep ``joined``; at the join view of a join with ``since``, start its replay, so the
        replayed messages come before the view (RET-SEAM)."""
        group = view.group
        if view.kind == "regular" and session.conn in view.members:
            if group in session.joined:
                return
            session.joined.add(group)
            since = session.since.pop(group, None)
            log = self.retention.log_for(group) if self.retention is not None else None
            if since is None or log is None:
                return
            located = log.locate(since)
            is_position = isinstance(since, str) and since != EARLIEST
            cursor = ReplayCursor(
                session.conn,
                log,
                located.start,
                located.gap,
                since if isinstance(since, str) and is_position else "",
                count=located.missing,
                from_position=is_position,
            )
            session.replays.append(cursor)
            self._mark_queued(session)
            self.counters["replays"] += 1
        elif view.kind == "self_leave":
            session.joined.discard(group)
            session.since.pop(group, None)

    def _deliver_unheld(self, session: Session, message: DeliverMessage) -> None:
        """A delivery for a session that queues (a replay runs, or it is behind) or whose policy
        never holds the senders (``drop``, ``disconnect``)."""
        if session.queued:
            self._wait(session, message)
            return
        size = len(message.payload)
        if session.policy is DROP and session.unconsumed > self._lag_limit:
            self._wait(session, message)
            return
        self._notices.append(message)
        session.unconsumed += size
        if session.unconsumed > self.slow_consumer_bytes:
            self._slow_consumer(session)  # DISCONNECT (a DROP session never gets this far)

    def _mark_queued(self, session: Session) -> None:
        session.queued = True
        self._queued.add(session.conn)

    def _cost(self, message: DeliverMessage) -> int:
        """What a waiting message holds in memory of its own: its payload, unless every
        destination is retained here (the log holds the same bytes object)."""
        retention = self.retention
        if retention is not None and all(retention.rule_for(g) for g in message.groups):
            return 128
        return len(message.payload) + 128

    def _wait(self, session: Session, notice: Notice) -> None:
        session.waiting.append(notice)
        self._mark_queued(session)
        if type(notice) is not DeliverMessage:
            return
        session.waiting_bytes += self._cost(notice)
        if session.waiting_bytes <= self._lag_limit:
            return
        if session.policy is DROP:
            self._drop_oldest(session)
        elif session.waiting_bytes > self.slow_consumer_bytes:
            self._slow_consumer(session)

    def _drop_oldest(self, session: Session) -> None:
        """``drop``: the oldest waiting messages go; a gap takes each run's place (views are
        kept, in order), so the client learns exactly what it missed (RET-DROP)."""
        waiting, front = session.waiting, session.front
        while session.waiting_bytes > self._lag_limit and waiting:
            item = waiting.popleft()
            if type(item) is not DeliverMessage:
                front.append(item)
                continue
            session.waiting_bytes -= self._cost(item)
            self.counters["dropped"] += 1
            pos = position_text(item.conf, item.n, item.mid)
            last = front[-1] if front else None
            if type(last) is Gap and last.reason == "dropped" and last.groups == item.groups:
                front[-1] = Gap(
                    session.conn, item.groups, "dropped", first=last.first, last=pos,
                    count=last.count + 1,
                )  # fmt: skip
            else:
                front.append(
                    Gap(session.conn, item.groups, "dropped", first=pos, last=pos, count=1)
                )

    def pump(self) -> None:
        """Move queued deliveries (replays first) to the sessions' notices while their clients
        keep up: at most half of ``slow_consumer_bytes`` given and unconsumed. Every turn."""
        for conn in list(self._queued):
            session = self.sessions.get(conn)
            if session is None:
                self._queued.discard(conn)
                continue
            while session.unconsumed <= self._lag_limit:
                notice = self._take_queued(session)
                if notice is None:
                    session.queued = False
                    self._queued.discard(conn)
                    break
                self._notices.append(notice)
                if type(notice) is DeliverMessage:
                    session.unconsumed += len(notice.payload)
                elif type(notice) is Gap:
                    self.counters["gaps"] += 1
        if self.retention is not None:
            self.retention.flush()

    def _take_queued(self, session: Session) -> Notice | None:
        while session.replays:
            step = session.replays[0].step()
            if step is not None:
                if type(step) is DeliverMessage:
                    self.counters["replayed"] += 1
                return step
            session.replays.popleft()
        if session.front:
            return session.front.popleft()
        if session.waiting:
            notice = session.waiting.popleft()
            if type(notice) is DeliverMessage:
                session.waiting_bytes -= self._cost(notice)
            return notice
        return None

    def _slow_consumer(self, session: Session, **why: int) -> None:
        self.counters["slow_consumers"] += 1
        self.log.warning(
            "slow_consumer",
            conn=session.conn,
            unconsumed=session.unconsumed,
            limit=self.slow_consumer_bytes,
            **why,
        )
        self.close(session.conn, SLOW_CONSUMER)

    def _core_reject(self, session: Session, op: str, group: str | None, reason: str) -> None:
        """The core refused a request we forwarded this turn (our own checks should have caught
        it). Name the first matching request of the turn and return a multicast's window."""
        req, size = 0, 0
        for i, (t_op, t_group, t_req, t_size) in enumerate(session.turn):
            if t_op == op and (op == "mcast" or t_group == group):
                req, size = t_req, t_size
                del session.turn[i]
                break
        self._refuse(session.conn, req, op, group, reason)
        if size:
            size = min(size, session.in_flight)
            session.in_flight -= size
            self._notices.append(Granted(session.conn, size))
        if op == "hello":
            self.close(session.conn, reason)
