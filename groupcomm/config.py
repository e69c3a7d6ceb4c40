"""Daemon configuration: one TOML file (``cluster.toml``), frozen dataclasses, strict validation.

No file means the zero-config default: a single daemon ``d1`` on 127.0.0.1. Every error names
the file and the offending key (``cluster.toml: [protocol] heartbeat_ms must be a positive
integer, got -3``); unknown keys are rejected by name. The ``[protocol]`` table must be identical
on every daemon of a cluster: the transport refuses peers whose settings differ
(``ProtocolConfig.fingerprint``). ``docs/operations.md`` is the reference of every key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import stat
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from groupcomm.accessconfig import (
    ACCESS_DAEMON_KEYS,
    AccessConfig,
    AccessConfigError,
    parse_access,
)
from groupcomm.core.config import MAX_MESSAGE_BYTES_LIMIT, CoreConfig
from groupcomm.core.ids import MAX_NAME_LEN
from groupcomm.retainconfig import RetainConfigError, RetentionConfig, parse_retention
from groupcomm.spreadconfig import SpreadConfig, SpreadConfigError, parse_spread
from groupcomm.wire.stream import parse_endpoint

DEFAULT_NAME = "d1"
# 4804, not 4803: Spread applications expect their daemon at 4803 ([spread], spreadconfig.py).
DEFAULT_CLIENT_ENDPOINTS = ("ipc:///tmp/groupcomm-4804.sock", "tcp://127.0.0.1:4804")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_PORT = 4810
DEFAULT_CONTROL_PORT = 4811
DEFAULT_SLOW_CONSUMER_BYTES = 8 << 20
DEFAULT_SESSION_SEND_WINDOW = 1 << 20
DEFAULT_SESSION_IDLE_MS = 60_000
DEFAULT_SLOW_CONSUMER_MS = 250  # a lagging session that consumes nothing this long is closed
# ... or longer with large messages: max_message_bytes / this many bytes per ms (2 s at 64 MiB).
SLOW_CONSUMER_BYTES_PER_MS = 32 << 10
TRANSPORTS = ("tcp", "zmq", "epgm")
DEFAULT_EPGM_GROUP = "239.192.74.1"
DEFAULT_EPGM_PORT = 7400
# libzmq's defaults (ZMQ_RATE 100 kbit/s, ZMQ_RECOVERY_IVL 10 s) would cap the whole cluster at
# ~12 KB/s of data while keeping 10 s of it for retransmission. 1 Gbit/s never limits a daemon
# here (the CPU does first); 1 s of PGM recovery covers ordinary loss, and what falls outside it
# is repaired over TCP by the protocol's NAKs anyway (docs/operations.md, "epgm").
DEFAULT_EPGM_RATE_KBPS = 1_000_000
DEFAULT_EPGM_RECOVERY_MS = 1_000

PROTOCOL_KEYS = (
    "heartbeat_ms",
    "suspect_timeout_ms",
    "flush_timeout_ms",
    "install_timeout_ms",
    "gather_timeout_ms",
    "tick_ms",
    "window_msgs",
    "window_bytes",
    "max_message_bytes",
    "star_members",
)
_CORE_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(CoreConfig) if f.name in PROTOCOL_KEYS
}


class ConfigError(ValueError):
    """An invalid configuration; the message names the file and the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerConfig:
    name: str
    host: str = DEFAULT_HOST
    data_port: int = DEFAULT_DATA_PORT
    control_port: int = DEFAULT_CONTROL_PORT
    cert: str = ""  # its certificate (public key), PEM; required with [security] key

    @property
    def data_endpoint(self) -> str:
        return f"tcp://{_tcp_host(self.host)}:{self.data_port}"

    @property
    def control_endpoint(self) -> str:
        return f"tcp://{_tcp_host(self.host)}:{self.control_port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EpgmConfig:
    """The ``[epgm]`` table: where and how fast data frames are multicast when
    ``[daemon] transport = "epgm"``. ``group``, ``port`` and ``rate_kbps`` must be the same on every
    daemon (they are part of the handshake); ``interface`` is this host's own."""

    interface: str = ""  # an interface name (eth0) or this host's IPv4 address on it
    group: str = DEFAULT_EPGM_GROUP
    port: int = DEFAULT_EPGM_PORT
    rate_kbps: int = DEFAULT_EPGM_RATE_KBPS
    recovery_ms: int = DEFAULT_EPGM_RECOVERY_MS

    @property
    def endpoint(self) -> str:
        return f"epgm://{self.interface};{self.group}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolConfig:
    """The ``[protocol]`` table: settings every daemon of the cluster must share."""

    heartbeat_ms: int = _CORE_DEFAULTS["heartbeat_ms"]
    suspect_timeout_ms: int = _CORE_DEFAULTS["suspect_timeout_ms"]
    flush_timeout_ms: int = _CORE_DEFAULTS["flush_timeout_ms"]
    install_timeout_ms: int = _CORE_DEFAULTS["install_timeout_ms"]
    gather_timeout_ms: int = _CORE_DEFAULTS["gather_timeout_ms"]
    tick_ms: int = _CORE_DEFAULTS["tick_ms"]
    window_msgs: int = _CORE_DEFAULTS["window_msgs"]
    window_bytes: int = _CORE_DEFAULTS["window_bytes"]
    # The largest multicast payload; longer than 256 KiB travels in fragments, every daemon
    # reassembles under this bound (protocol/services.md section 7).
    max_message_bytes: int = _CORE_DEFAULTS["max_message_bytes"]
    # Views of at least this many daemons use star acknowledgements (protocol/membership.md
    # section 2): every daemon of the cluster must agree, so it is in the fingerprint.
    star_members: int = _CORE_DEFAULTS["star_members"]

    def fingerprint(self) -> tuple[tuple[str, int], ...]:
        """The sorted settings, exchanged in the transport handshake."""
        return tuple(sorted((k, int(getattr(self, k))) for k in PROTOCOL_KEYS))


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityConfig:
    """The ``[security]`` table: this daemon's private key. With it, every link between daemons
    is TLS 1.3, both ends authenticated by the certificates listed in ``[[peers]] cert``
    (``protocol/frames.md`` "Links"); without it the cluster is open."""

    key: str = ""  # path of this daemon's private key (PEM, from `groupcomm keygen`)

    @property
    def enabled(self) -> bool:
        return bool(self.key)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    name: str = DEFAULT_NAME
    client_endpoints: tuple[str, ...] = DEFAULT_CLIENT_ENDPOINTS
    log_json: bool = False
    log_level: str = "info"
    trace: str = ""  # JSON Lines trace file; "" = off
    slow_consumer_bytes: int = DEFAULT_SLOW_CONSUMER_BYTES
    session_send_window: int = DEFAULT_SESSION_SEND_WINDOW
    session_idle_ms: int = DEFAULT_SESSION_IDLE_MS
    slow_consumer_ms: int = DEFAULT_SLOW_CONSUMER_MS
    transport: str = "tcp"  # the data plane: "tcp" (plain TCP links), "zmq" or "epgm"
    epgm: EpgmConfig = field(default_factory=EpgmConfig)
    peers: tuple[PeerConfig, ...] = (PeerConfig(name=DEFAULT_NAME),)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    access: AccessConfig = field(default_factory=AccessConfig)  # clients, [[acl]], limits
    spread: SpreadConfig = field(default_factory=SpreadConfig)  # the Spread front-end
    retention: RetentionConfig = field(default_factory=RetentionConfig)  # [[retain]]
    source: str = "<defaults>"  # the file it was loaded from

    @property
    def me(self) -> PeerConfig:
        return self.peer(self.name)

    def peer(self, name: str) -> PeerConfig:
        for p in self.peers:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def peer_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.peers)


def core_config(
    config: DaemonConfig, *, incarnation: int | None = None, trace_messages: bool = False
) -> CoreConfig:
    """The core's settings. The incarnation defaults to wall-clock milliseconds, so a restarted
    daemon is a new incarnation (a new process in the EVS sense)."""
    inc = time.time_ns() // 1_000_000 if incarnation is None else incarnation
    p = config.protocol
    return CoreConfig(
        name=config.name,
        incarnation=inc,
        peers=config.peer_names,
        tick_ms=p.tick_ms,
        heartbeat_ms=p.heartbeat_ms,
        suspect_timeout_ms=p.suspect_timeout_ms,
        flush_timeout_ms=p.flush_timeout_ms,
        install_timeout_ms=p.install_timeout_ms,
        gather_timeout_ms=p.gather_timeout_ms,
        window_msgs=p.window_msgs,
        window_bytes=p.window_bytes,
        max_message_bytes=p.max_message_bytes,
        star_members=p.star_members,
        trace_messages=trace_messages,
        record=config.retention.enabled,  # the daemon's own record feeds its group logs
    )


# ------------------------------------------------------------------------------------ loading


def load_config(
    path: Path | None = None,
    *,
    name: str | None = None,
    log_json: bool | None = None,
    log_level: str | None = None,
    trace: str | None = None,
) -> DaemonConfig:
    """Read and validate ``path`` (``None``: the zero-config default), then apply overrides
    (command-line options win over the file)."""
    source = str(path) if path is not None else "<defaults>"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    return parse_config(raw, source, name=name, log_json=log_json, log_level=log_level, trace=trace)


def parse_config(
    raw: Mapping[str, Any],
    source: str = "<config>",
    *,
    name: str | None = None,
    log_json: bool | None = None,
    log_level: str | None = None,
    trace: str | None = None,
) -> DaemonConfig:
    v = _Validator(source)
    v.unknown(
        raw,
        (
            "daemon",
            "peers",
            "protocol",
            "epgm",
            "security",
            "clients",
            "acl",
            "spread",
            "retain",
            "retention",
        ),
        "",
    )
    daemon = v.table(raw, "daemon", "")
    v.unknown(
        daemon,
        (
            "name",
            "client_endpoints",
            "log_json",
            "log_level",
            "trace",
            "slow_consumer_bytes",
            "session_send_window",
            "session_idle_ms",
            "slow_consumer_ms",
            "transport",
            "allow_admin",  # refused by name with what to write instead (accessconfig)
            *ACCESS_DAEMON_KEYS,
        ),
        "[daemon] ",
    )
    me = name if name is not None else v.string(daemon, "name", "[daemon] ", DEFAULT_NAME)
    v.daemon_name(me, "[daemon] name" if name is None else "--name")
    endpoints = v.endpoints(daemon)
    json_logs = v.boolean(daemon, "log_json", False) if log_json is None else log_json
    level = v.log_level(daemon) if log_level is None else log_level.lower()
    trace_file = v.string(daemon, "trace", "[daemon] ", "") if trace is None else trace
    peers = v.peers(raw, me)
    if me not in {p.name for p in peers}:
        listed = ", ".join(p.name for p in peers)
        raise ConfigError(f"{source}: this daemon {me!r} is not among [[peers]] ({listed})")
    try:
        base = Path(source).parent if not source.startswith("<") else Path.cwd()
        access = parse_access(raw, daemon, base)
    except AccessConfigError as exc:
        raise v.fail(str(exc)) from None
    try:
        spread = parse_spread(raw)
    except SpreadConfigError as exc:
        raise v.fail(str(exc)) from None
    try:
        retention = parse_retention(raw, base)
    except RetainConfigError as exc:
        raise v.fail(str(exc)) from None
    protocol = v.protocol(raw)
    # A session must be able to hold one whole message unconsumed without being held back
    # (half the limit) or closed: the default grows with max_message_bytes.
    need = 2 * protocol.max_message_bytes
    slow = v.positive(
        daemon, "slow_consumer_bytes", "[daemon] ", max(DEFAULT_SLOW_CONSUMER_BYTES, need)
    )
    # Checked once large messages are enabled (an older file may keep a smaller limit with the
    # 1 MiB default, where a session more than half behind is only held back for a moment).
    if slow < need and protocol.max_message_bytes > _CORE_DEFAULTS["max_message_bytes"]:
        raise v.fail(
            f"[daemon] slow_consumer_bytes must be at least twice [protocol] max_message_bytes "
            f"({need}), got {slow}"
        )
    window = v.positive(daemon, "session_send_window", "[daemon] ", DEFAULT_SESSION_SEND_WINDOW)
    idle = v.positive(daemon, "session_idle_ms", "[daemon] ", DEFAULT_SESSION_IDLE_MS)
    # ... and so does the time a session behind may go without progress: a client reports a
    # message consumed once it has taken it whole, and handling 64 MiB (reading, decoding, the
    # application's turn) can pause a busy client longer than 250 ms.
    stalled = v.positive(
        daemon,
        "slow_consumer_ms",
        "[daemon] ",
        max(DEFAULT_SLOW_CONSUMER_MS, protocol.max_message_bytes // SLOW_CONSUMER_BYTES_PER_MS),
    )
    transport = v.string(daemon, "transport", "[daemon] ", "tcp")
    if transport not in TRANSPORTS:
        raise v.fail(
            f"[daemon] transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}"
        )
    epgm = v.epgm(raw, required=transport == "epgm")
    security = v.security(raw, peers, transport)
    v.client_tls(endpoints, security, access)
    return DaemonConfig(
        name=me,
        client_endpoints=endpoints,
        log_json=json_logs,
        log_level=level,
        trace=trace_file,
        slow_consumer_bytes=slow,
        session_send_window=window,
        session_idle_ms=idle,
        slow_consumer_ms=stalled,
        transport=transport,
        epgm=epgm,
        peers=peers,
        protocol=protocol,
        security=security,
        access=access,
        spread=spread,
        retention=retention,
        source=source,
    )


def _tcp_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Validator:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, what: str) -> ConfigError:
        return ConfigError(f"{self.source}: {what}")

    def unknown(self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"{where}unknown key {key!r} (allowed: {', '.join(allowed)})")

    def table(self, raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(f"{where}{key} must be a table, got {value!r}")
        return value

    def string(self, t: Mapping[str, Any], key: str, where: str, default: str) -> str:
        value = t.get(key, default)
        if not isinstance(value, str):
            raise self.fail(f"{where}{key} must be a string, got {value!r}")
        return value

    def boolean(self, t: Mapping[str, Any], key: str, default: bool) -> bool:
        value = t.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"[daemon] {key} must be true or false, got {value!r}")
        return value

    def positive(self, t: Mapping[str, Any], key: str, where: str, default: int) -> int:
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(f"{where}{key} must be a positive integer, got {value!r}")
        return value

    def port(self, t: Mapping[str, Any], key: str, where: str, default: int) -> int:
        value = t.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise self.fail(f"{where}{key} must be a port number 1..65535, got {value!r}")
        return value

    def daemon_name(self, value: str, what: str) -> None:
        if not value or len(value) > MAX_NAME_LEN or ":" in value or "#" in value:
            raise self.fail(
                f"{what} must be 1..{MAX_NAME_LEN} characters without ':' or '#', got {value!r}"
            )
        if not value.isprintable() or any(c.isspace() for c in value):
            raise self.fail(f"{what} must not contain spaces or control characters: {value!r}")

    def log_level(self, t: Mapping[str, Any]) -> str:
        value = self.string(t, "log_level", "[daemon] ", "info").lower()
        if value not in ("debug", "info", "warning", "error"):
            raise self.fail(
                f"[daemon] log_level must be one of debug, info, warning, error, got {value!r}"
            )
        return value

    def endpoints(self, t: Mapping[str, Any]) -> tuple[str, ...]:
        value = t.get("client_endpoints", list(DEFAULT_CLIENT_ENDPOINTS))
        if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
            raise self.fail(f"[daemon] client_endpoints must be a list of strings, got {value!r}")
        for e in value:
            try:
                parse_endpoint(e)
            except ValueError as exc:
                raise self.fail(f"[daemon] client_endpoints: {exc}") from None
        return tuple(value)

    def peers(self, raw: Mapping[str, Any], me: str) -> tuple[PeerConfig, ...]:
        if "peers" not in raw:
            return (PeerConfig(name=me),)
        value = raw["peers"]
        if not isinstance(value, list) or not value or not all(isinstance(p, dict) for p in value):
            raise self.fail("peers must be a non-empty array of tables ([[peers]])")
        out: list[PeerConfig] = []
        seen_names: set[str] = set()
        seen_ports: dict[tuple[str, int], str] = {}
        for i, p in enumerate(value):
            where = f"[[peers]] #{i + 1} "
            self.unknown(p, ("name", "host", "data_port", "control_port", "cert"), where)
            if "name" not in p:
                raise self.fail(f"{where}name is required")
            pname = self.string(p, "name", where, "")
            self.daemon_name(pname, f"{where}name")
            where = f"[[peers]] {pname}: "
            if pname in seen_names:
                raise self.fail(f"{where}name is listed twice")
            seen_names.add(pname)
            host = self.string(p, "host", where, DEFAULT_HOST)
            if not host:
                raise self.fail(f"{where}host must not be empty")
            data_port = self.port(p, "data_port", where, DEFAULT_DATA_PORT)
            control_port = self.port(p, "control_port", where, DEFAULT_CONTROL_PORT)
            for key, port in (("data_port", data_port), ("control_port", control_port)):
                other = seen_ports.get((host, port))
                if other is not None:
                    raise self.fail(f"{where}{key} {port} on {host} is already used by {other}")
                seen_ports[(host, port)] = f"{pname} ({key})"
            cert = self.string(p, "cert", where, "")
            out.append(
                PeerConfig(
                    name=pname,
                    host=host,
                    data_port=data_port,
                    control_port=control_port,
                    cert=self.path(cert, f"{where}cert") if cert else "",
                )
            )
        return tuple(out)

    def epgm(self, raw: Mapping[str, Any], *, required: bool) -> EpgmConfig:
        t = self.table(raw, "epgm", "")
        keys = ("interface", "group", "port", "rate_kbps", "recovery_ms")
        self.unknown(t, keys, "[epgm] ")
        interface = self.string(t, "interface", "[epgm] ", "")
        if required and not interface:
            raise self.fail(
                '[epgm] interface is required with transport = "epgm" '
                "(this host's interface name, e.g. eth0, or its IPv4 address on that interface)"
            )
        if any(c in interface for c in ";:/ ") or not interface.isprintable():
            raise self.fail(
                f"[epgm] interface must be an interface name or IPv4 address: {interface!r}"
            )
        group = self.string(t, "group", "[epgm] ", DEFAULT_EPGM_GROUP)
        try:
            addr = ipaddress.IPv4Address(group)
        except ValueError:
            addr = None
        if addr is None or not addr.is_multicast:
            raise self.fail(
                f"[epgm] group must be an IPv4 multicast address (224.0.0.0/4), got {group!r}"
            )
        return EpgmConfig(
            interface=interface,
            group=group,
            port=self.port(t, "port", "[epgm] ", DEFAULT_EPGM_PORT),
            rate_kbps=self.positive(t, "rate_kbps", "[epgm] ", DEFAULT_EPGM_RATE_KBPS),
            recovery_ms=self.positive(t, "recovery_ms", "[epgm] ", DEFAULT_EPGM_RECOVERY_MS),
        )

    def path(self, value: str, what: str) -> str:
        """A file named in the config: relative to the config file's directory, and readable."""
        path = Path(value).expanduser()
        if not path.is_absolute() and self.source not in ("<defaults>", "<config>"):
            path = Path(self.source).parent / path
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            raise self.fail(f"{what}: cannot read {str(path)!r}: {exc.strerror or exc}") from None
        return str(path)

    def security(
        self, raw: Mapping[str, Any], peers: tuple[PeerConfig, ...], transport: str
    ) -> SecurityConfig:
        t = self.table(raw, "security", "")
        self.unknown(t, ("key",), "[security] ")
        key = self.string(t, "key", "[security] ", "")
        with_cert = [p.name for p in peers if p.cert]
        if not key:
            if with_cert:
                raise self.fail(
                    f"[[peers]] {with_cert[0]}: cert is set but [security] key is not "
                    "(give this daemon's key to secure the cluster, or drop the certs)"
                )
            return SecurityConfig()
        missing = [p.name for p in peers if not p.cert]
        if missing:
            raise self.fail(
                f"[security] key is set, so every peer needs its certificate: "
                f"[[peers]] {', '.join(missing)} has no cert"
            )
        if transport != "tcp":
            raise self.fail(
                f'[security] key secures transport = "tcp" only; the {transport!r} data plane '
                "is not encrypted (use the default tcp transport with keys)"
            )
        path = self.path(key, "[security] key")
        mode = Path(path).stat().st_mode
        # As ssh does with private keys (and [clients] token_file): others must not read it.
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise self.fail(
                f"[security] key {path!r} is accessible by other users "
                f"(mode {stat.S_IMODE(mode):o}): chmod 600 it"
            )
        return SecurityConfig(key=path)

    def client_tls(
        self, endpoints: tuple[str, ...], security: SecurityConfig, access: AccessConfig
    ) -> None:
        """``tls://`` client endpoints serve the daemon's own key and certificate, so they need
        ``[security] key``; a ``[clients.NAME] cert`` can only be proven on one of them."""
        tls = [e for e in endpoints if e.startswith("tls://")]
        if tls and not security.enabled:
            raise self.fail(
                f"[daemon] client_endpoints {tls[0]!r} needs [security] key: a TLS client "
                "endpoint presents this daemon's key and certificate ([[peers]] cert), so set "
                "both (groupcomm keygen), or use tcp://"
            )
        with_cert = access.cert_clients
        if with_cert and not tls:
            raise self.fail(
                f"[clients.{with_cert[0].name}] cert identifies a client only on a tls:// client "
                "endpoint, and [daemon] client_endpoints has none"
            )

    def protocol(self, raw: Mapping[str, Any]) -> ProtocolConfig:
        t = self.table(raw, "protocol", "")
        self.unknown(t, PROTOCOL_KEYS, "[protocol] ")
        values = {k: self.positive(t, k, "[protocol] ", _CORE_DEFAULTS[k]) for k in PROTOCOL_KEYS}
        if values["suspect_timeout_ms"] <= values["heartbeat_ms"]:
            raise self.fail(
                f"[protocol] suspect_timeout_ms must exceed heartbeat_ms, got "
                f"{values['suspect_timeout_ms']} <= {values['heartbeat_ms']}"
            )
        if values["star_members"] < 2:
            raise self.fail(
                f"[protocol] star_members must be at least 2, got {values['star_members']}"
            )
        if values["max_message_bytes"] > MAX_MESSAGE_BYTES_LIMIT:
            raise self.fail(
                f"[protocol] max_message_bytes must be at most {MAX_MESSAGE_BYTES_LIMIT}, got "
                f"{values['max_message_bytes']}"
            )
        return ProtocolConfig(**values)
