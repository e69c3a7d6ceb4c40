"""Client access settings of the daemon configuration: who a client is, what it may do.

Owns the validation of the ``[clients.NAME]`` tables (the identities of remote clients: a token,
a pinned TLS client certificate, or both), the
``[[acl]]`` rules (group patterns and the identities that may join or send), and the
``[daemon]`` keys ``admin``, ``max_sessions`` and ``max_sessions_per_identity``. It does not
identify connections or evaluate rules: ``groupcomm.daemon.access`` does, from these values.

Errors are ``AccessConfigError`` with a message that names the key but not the file;
``groupcomm.config`` prefixes the file. User and group names (``user:alice``, ``group:ops``) are
resolved to ``uid:N``/``gid:N`` here, once at load time: a lookup can block on a network
directory (LDAP), and the daemon's event loop must never wait on one per connection.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import ssl
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

DEFAULT_MAX_SESSIONS = 1000
ANYONE = "*"
ANONYMOUS = "anonymous"
MIN_TOKEN_CHARS = 16  # shorter tokens are guessable by a patient client
MAX_PATTERN_CHARS = 256
CLIENT_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NUMERIC_RE = re.compile(r"(uid|gid):(\d{1,10})")


class AccessConfigError(ValueError):
    """An invalid access setting; the message names the key (``groupcomm.config`` adds the
    file)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientToken:
    """A ``[clients.NAME]`` table: a remote client presenting ``token``, or a TLS client
    presenting the certificate ``cert`` (whose DER form is ``cert_der``), is ``name``. At least
    one of the two is set."""

    name: str
    token: str = field(default="", repr=False)  # never in a log line or a repr
    cert: str = ""  # the certificate file (PEM, from `groupcomm keygen`), as resolved
    cert_der: bytes = field(default=b"", repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class AclRule:
    """One ``[[acl]]`` table. ``number`` is its position in the file (1-based), as refusals name
    it; ``join``/``send`` hold principals (``uid:N``, ``gid:N``, a client name, ``anonymous``)
    or ``*`` (anyone)."""

    number: int
    groups: tuple[str, ...]
    join: frozenset[str] = frozenset()
    send: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessConfig:
    clients: tuple[ClientToken, ...] = ()
    acl: tuple[AclRule, ...] = ()
    admin: frozenset[str] = frozenset()  # principals allowed to send admin requests
    max_sessions: int = DEFAULT_MAX_SESSIONS
    max_sessions_per_identity: int = DEFAULT_MAX_SESSIONS // 2

    @property
    def tokens_required(self) -> bool:
        """Remote (TCP, TLS) clients must prove a ``[clients]`` identity (a token, or over TLS a
        listed certificate): some are configured."""
        return bool(self.clients)

    @property
    def cert_clients(self) -> tuple[ClientToken, ...]:
        """The identities a TLS client certificate can prove."""
        return tuple(c for c in self.clients if c.cert)


ACCESS_DAEMON_KEYS = ("admin", "max_sessions", "max_sessions_per_identity")


def parse_access(raw: Mapping[str, Any], daemon: Mapping[str, Any], base: Path) -> AccessConfig:
    """The access settings from the whole file (``raw``) and its ``[daemon]`` table. ``base``
    is the directory relative ``token_file`` paths start from (the config file's)."""
    if "allow_admin" in daemon:
        raise AccessConfigError(
            "[daemon] allow_admin is replaced by [daemon] admin, the identities that may send "
            f'admin requests: write admin = ["uid:{os.getuid()}"] for this user, or '
            'admin = ["*"] for anyone who can reach a client endpoint (the old allow_admin = true)'
        )
    clients = _clients(raw.get("clients", {}), base)
    known = frozenset(c.name for c in clients)
    max_sessions = _positive(daemon, "max_sessions", DEFAULT_MAX_SESSIONS)
    per_identity = _positive(daemon, "max_sessions_per_identity", max(1, max_sessions // 2))
    if per_identity > max_sessions:
        raise AccessConfigError(
            f"[daemon] max_sessions_per_identity ({per_identity}) must not exceed "
            f"max_sessions ({max_sessions})"
        )
    return AccessConfig(
        clients=clients,
        acl=_rules(raw.get("acl", []), known),
        admin=_principals(daemon.get("admin", []), "[daemon] admin", known),
        max_sessions=max_sessions,
        max_sessions_per_identity=per_identity,
    )


def _positive(t: Mapping[str, Any], key: str, default: int) -> int:
    value = t.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AccessConfigError(f"[daemon] {key} must be a positive integer, got {value!r}")
    return value


def _clients(value: object, base: Path) -> tuple[ClientToken, ...]:
    if not isinstance(value, dict):
        raise AccessConfigError(
            f"clients must be a table of tables ([clients.NAME] token = ...), got {value!r}"
        )
    out: list[ClientToken] = []
    seen: dict[str, str] = {}
    seen_certs: dict[bytes, str] = {}
    for name, table in value.items():
        where = f"[clients.{name}]"
        if not CLIENT_NAME_RE.fullmatch(name) or name == ANONYMOUS:
            raise AccessConfigError(
                f"{where}: a client name is 1..64 characters of [A-Za-z0-9_.-] and not "
                f"{ANONYMOUS!r} (uid:/gid: identities are for local clients), got {name!r}"
            )
        if not isinstance(table, dict):
            raise AccessConfigError(f"{where} must be a table with token, token_file or cert")
        for key in table:
            if key not in ("token", "token_file", "cert"):
                raise AccessConfigError(
                    f"{where} unknown key {key!r} (allowed: token, token_file, cert)"
                )
        if "token" in table and "token_file" in table:
            raise AccessConfigError(f"{where} needs at most one of token, token_file")
        if not table.keys() & {"token", "token_file", "cert"}:
            raise AccessConfigError(f"{where} needs a token, a token_file or a cert")
        token = ""
        if table.keys() & {"token", "token_file"}:
            token = _token(table, where, base)
            other = seen.get(token)
            if other is not None:
                raise AccessConfigError(f"{where} has the same token as [clients.{other}]")
            seen[token] = name
        cert, der = _cert(table, where, base) if "cert" in table else ("", b"")
        if der:
            other = seen_certs.get(der)
            if other is not None:
                raise AccessConfigError(f"{where} has the same cert as [clients.{other}]")
            seen_certs[der] = name
        out.append(ClientToken(name=name, token=token, cert=cert, cert_der=der))
    return tuple(out)


def _token(table: Mapping[str, Any], where: str, base: Path) -> str:
    token = _inline_token(table, where) if "token" in table else _file_token(table, where, base)
    if len(token) < MIN_TOKEN_CHARS or not token.isprintable() or " " in token:
        raise AccessConfigError(
            f"{where} token must be at least {MIN_TOKEN_CHARS} printable characters without "
            "spaces (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


def _cert(table: Mapping[str, Any], where: str, base: Path) -> tuple[str, bytes]:
    """The resolved path and the DER form of a client's certificate. Read here, at load time:
    a file that cannot identify anyone must stop the daemon from starting, naming the key."""
    value = table["cert"]
    if not isinstance(value, str) or not value:
        raise AccessConfigError(f"{where} cert must be a path, got {value!r}")
    path = base / Path(value).expanduser()
    try:
        der = ssl.PEM_cert_to_DER_cert(path.read_text(encoding="ascii"))
        x509.load_der_x509_certificate(der)
    except OSError as exc:
        raise AccessConfigError(
            f"{where} cert {str(path)!r}: cannot read: {exc.strerror or exc}"
        ) from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise AccessConfigError(
            f"{where} cert {str(path)!r}: not a PEM certificate "
            f"(the NAME.crt `groupcomm keygen NAME` writes): {exc}"
        ) from None
    return str(path), der


def _inline_token(table: Mapping[str, Any], where: str) -> str:
    token = table["token"]
    if not isinstance(token, str):
        raise AccessConfigError(f"{where} token must be a string")
    return token


def _file_token(table: Mapping[str, Any], where: str, base: Path) -> str:
    value = table["token_file"]
    if not isinstance(value, str) or not value:
        raise AccessConfigError(f"{where} token_file must be a path, got {value!r}")
    path = base / value
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessConfigError(f"{where} token_file {str(path)!r}: cannot read: {exc}") from None
    # As ssh does with private keys: a secret others can read is no longer a secret.
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AccessConfigError(
            f"{where} token_file {str(path)!r} is accessible by other users "
            f"(mode {stat.S_IMODE(mode):o}): chmod 600 it"
        )
    return text.strip()


def _rules(value: object, known: frozenset[str]) -> tuple[AclRule, ...]:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise AccessConfigError("acl must be an array of tables ([[acl]])")
    out: list[AclRule] = []
    for i, rule in enumerate(value):
        where = f"[[acl]] #{i + 1}"
        for key in rule:
            if key not in ("groups", "join", "send"):
                raise AccessConfigError(
                    f"{where}: unknown key {key!r} (allowed: groups, join, send)"
                )
        groups = rule.get("groups")
        if (
            not isinstance(groups, list)
            or not groups
            or not all(isinstance(g, str) and 0 < len(g) <= MAX_PATTERN_CHARS for g in groups)
        ):
            raise AccessConfigError(
                f"{where}: groups must be a non-empty list of group-name patterns "
                f'(fnmatch: "logs.*", "chat", "*"), got {groups!r}'
            )
        out.append(
            AclRule(
                number=i + 1,
                groups=tuple(groups),
                join=_principals(rule.get("join", []), f"{where} join", known),
                send=_principals(rule.get("send", []), f"{where} send", known),
            )
        )
    return tuple(out)


def _principals(value: object, where: str, known: frozenset[str]) -> frozenset[str]:
    """Identity entries as principals: ``user:``/``group:`` names resolved to ``uid:``/``gid:``;
    a bare name must be a ``[clients]`` identity (a typo must not silently match nobody)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AccessConfigError(f"{where} must be a list of identities, got {value!r}")
    out: set[str] = set()
    for entry in value:
        out.add(_principal(entry, where, known))
    return frozenset(out)


def _principal(entry: str, where: str, known: frozenset[str]) -> str:
    if entry in (ANYONE, ANONYMOUS) or entry in known:
        return entry
    numeric = _NUMERIC_RE.fullmatch(entry)
    if numeric:
        return f"{numeric.group(1)}:{int(numeric.group(2))}"
    kind, _, name = entry.partition(":")
    if kind == "user" and name:
        try:
            return f"uid:{pwd.getpwnam(name).pw_uid}"
        except KeyError:
            raise AccessConfigError(f"{where}: {entry!r}: no such user on this host") from None
    if kind == "group" and name:
        try:
            return f"gid:{grp.getgrnam(name).gr_gid}"
        except KeyError:
            raise AccessConfigError(f"{where}: {entry!r}: no such group on this host") from None
    raise AccessConfigError(
        f"{where}: {entry!r} is not an identity: use uid:N, gid:N, user:NAME, group:NAME, "
        f'"{ANONYMOUS}", "{ANYONE}" or a name from [clients.NAME]'
        + (f" (known: {', '.join(sorted(known))})" if known else " (no [clients] are configured)")
    )
