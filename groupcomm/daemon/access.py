"""Who a client is and what it may do: identities, token authentication, the ``[[acl]]`` rules,
admin rights.

A client on a Unix socket is identified by the kernel (``SO_PEERCRED``: the uid, gid and pid of
the process that connected); it is ``uid:N`` and matches the principals ``uid:N`` and ``gid:G``.
A TLS client whose handshake proved a ``[clients.NAME] cert`` is ``NAME`` (``clienttls``; a
token it also sends must be NAME's). A client that presents a token in ``hello`` (on any
transport) is the ``[clients.NAME]`` identity the token belongs to, or is refused. A TCP or TLS
client with neither is ``anonymous``, or refused when ``[clients]`` are configured. Tokens are
compared with ``hmac.compare_digest``.

ACL semantics (``docs/operations.md``, "Access control"): no ``[[acl]]`` rule at all means
every client may join and send to every group. Once there is one, the *first* rule (in file
order) with a pattern (``fnmatch``, case-sensitive) matching the group decides; a group no rule
matches is closed (default deny). ``join`` lists who may join (and so read) the group, ``send``
who may multicast to it; leaving is always allowed. Every destination of a multicast, private
names included, must allow the send.

This module holds no sockets and reads no clock: the front-end hands it what the link knows.
"""

from __future__ import annotations

import fnmatch
import hmac
import socket
import struct
from dataclasses import dataclass

from groupcomm.accessconfig import ANONYMOUS, ANYONE, AccessConfig, AclRule

_UCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid (Linux)


@dataclass(frozen=True, slots=True)
class Identity:
    """``name`` is what logs and ``status`` show; ``principals`` what rules match."""

    name: str
    principals: frozenset[str]
    pid: int = 0  # the connecting process, for a local client (0: unknown)
    how: str = "anonymous"  # "peercred" | "token" | "cert" | "anonymous"


ANONYMOUS_IDENTITY = Identity(ANONYMOUS, frozenset({ANONYMOUS}))


def peer_credentials(sock: socket.socket) -> tuple[int, int, int] | None:
    """``(pid, uid, gid)`` of the process at the other end of a Unix socket, or ``None`` where
    the platform cannot tell (the client is then treated like a TCP one)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or sock.family != socket.AF_UNIX:
        return None
    try:
        pid, uid, gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, option, _UCRED.size))
    except (OSError, struct.error):
        return None
    return pid, uid, gid


def local_identity(pid: int, uid: int, gid: int) -> Identity:
    return Identity(f"uid:{uid}", frozenset({f"uid:{uid}", f"gid:{gid}"}), pid, "peercred")


class AuthError(Exception):
    """The client cannot be admitted: the text says why (sent back to it)."""


class Access:
    """The access policy of one daemon, built from ``AccessConfig`` (see the module
    docstring)."""

    def __init__(self, config: AccessConfig) -> None:
        self.config = config
        self.rules: tuple[AclRule, ...] = config.acl
        self._tokens = tuple((c.token.encode(), c.name) for c in config.clients if c.token)

    @property
    def acl_active(self) -> bool:
        return bool(self.rules)

    def identify(
        self, credentials: tuple[int, int, int] | None, token: str, cert_name: str = ""
    ) -> Identity:
        """The identity of a client whose link has ``credentials`` (Unix socket) or proved the
        ``[clients]`` certificate of ``cert_name`` (TLS), and who sent ``token`` (``""``:
        none); ``AuthError`` if it is refused."""
        if cert_name:
            if token and self.authenticate(token).name != cert_name:
                raise AuthError(
                    f"authentication failed: the token is not {cert_name}'s, whose certificate "
                    "this client presented"
                )
            return Identity(cert_name, frozenset({cert_name}), 0, "cert")
        if token:
            return self.authenticate(token)
        if credentials is not None:
            return local_identity(*credentials)
        if self.config.tokens_required:
            raise AuthError(
                "authentication required: this daemon accepts remote clients only with a "
                "token or a listed TLS client certificate ([clients] in its configuration); "
                "connect with token=... (or cert=... on a tls:// endpoint), or over its Unix "
                "socket"
            )
        return ANONYMOUS_IDENTITY

    def authenticate(self, token: str) -> Identity:
        presented = token.encode()
        found = ""
        # Every configured token is compared, in constant time each, so the time taken says
        # nothing about which one (or how much of one) matched.
        for secret, name in self._tokens:
            if hmac.compare_digest(presented, secret):
                found = name
        if not found:
            raise AuthError("authentication failed: unknown token")
        return Identity(found, frozenset({found}), 0, "token")

    def check(self, identity: Identity, op: str, group: str) -> str:
        """Why ``identity`` may not ``op`` (``"join"`` or ``"send"``) ``group``, or ``""``."""
        if not self.rules:
            return ""
        for rule in self.rules:
            pattern = _first_match(rule.groups, group)
            if pattern is None:
                continue
            allowed = rule.join if op == "join" else rule.send
            if ANYONE in allowed or not allowed.isdisjoint(identity.principals):
                return ""
            return (
                f"denied by [[acl]] #{rule.number} (group {pattern!r}): "
                f"{identity.name} may not {op} {group!r}"
            )
        return (
            f"denied: no [[acl]] rule matches group {group!r} (default deny): "
            f"{identity.name} may not {op} {group!r}"
        )

    def check_admin(self, identity: Identity) -> str:
        """Why ``identity`` may not send admin requests, or ``""``."""
        admin = self.config.admin
        if ANYONE in admin or not admin.isdisjoint(identity.principals):
            return ""
        if not admin:
            return "admin is off: no identity is listed in [daemon] admin"
        return f"admin denied: {identity.name} is not listed in [daemon] admin"

    def check_open(self, identity: Identity, total: int, of_identity: int) -> str:
        """Why one more session (``total`` open, ``of_identity`` of them this identity's) is
        refused, or ``""``."""
        cfg = self.config
        if total >= cfg.max_sessions:
            return f"session limit: this daemon has {total} sessions ([daemon] max_sessions)"
        if of_identity >= cfg.max_sessions_per_identity:
            return (
                f"session limit: {identity.name} has {of_identity} sessions on this daemon "
                "([daemon] max_sessions_per_identity)"
            )
        return ""


def _first_match(patterns: tuple[str, ...], group: str) -> str | None:
    for pattern in patterns:
        if fnmatch.fnmatchcase(group, pattern):
            return pattern
    return None


class Throttle:
    """At most one log line per key and ``interval`` seconds, with the count of what was left
    out: a client that repeats a refused request cannot flood the log. Times are arguments."""

    MAX_KEYS = 4096  # bounded against a client that varies the key

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last: dict[str, tuple[float, int]] = {}

    def admit(self, key: str, now: float) -> int | None:
        """``None``: stay quiet; else log now, with this many lines left out since the last."""
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return None
        if len(self._last) >= self.MAX_KEYS:
            self._last.clear()
        self._last[key] = (now, 0)
        return 0 if last is None else last[1]
