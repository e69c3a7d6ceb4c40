"""Running one daemon: ``run_daemon(config)`` and the ``python -m groupcomm.daemon`` command line.

``run_daemon`` configures logging, opens the peer transport, the client front-end (the native
one from ``groupcomm.daemon.frontend`` unless told otherwise, and the Spread one beside it when
``[spread]`` is enabled; none when ``client_endpoints`` is empty and Spread is off) and the
trace, then runs the ``Driver`` until SIGTERM/SIGINT. Exit status: 0 after a clean shutdown,
1 when the daemon cannot start (port in use, unreadable trace file...), 2 for a bad
configuration or command line.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
import zmq

from groupcomm.config import ConfigError, DaemonConfig, load_config
from groupcomm.core.ids import make_token
from groupcomm.daemon.access import Access
from groupcomm.daemon.clienttls import ClientTls
from groupcomm.daemon.dataplanes import make_transport
from groupcomm.daemon.driver import Driver
from groupcomm.daemon.fanout import TransportUnavailable
from groupcomm.daemon.fdlimit import raise_limit, reserve_for
from groupcomm.daemon.frontend_api import FrontEnd
from groupcomm.daemon.retention import Retention
from groupcomm.daemon.tlschannel import TlsError
from groupcomm.daemon.trace import TraceWriter
from groupcomm.daemon.transport import DataPlane
from groupcomm.gctune import tune_gc
from groupcomm.logconfig import configure_logging

# frontend_factory(config) -> FrontEnd
FrontEndFactory = Callable[..., FrontEnd]


def native_frontend(config: DaemonConfig) -> FrontEnd:
    """The native client front-end (``groupcomm.daemon.frontend.NativeFrontEnd``)."""
    module: Any = importlib.import_module("groupcomm.daemon.frontend")
    log = structlog.get_logger("groupcomm.frontend").bind(d=config.name)
    access = config.access
    log.info(
        "client_access",
        acl_rules=len(access.acl),
        acl="off: every client may join and send to every group" if not access.acl else "on",
        token_clients=sorted(c.name for c in access.clients if c.token),
        cert_clients=sorted(c.name for c in access.cert_clients),
        remote="token or cert required" if access.tokens_required else "anonymous allowed",
        admin=sorted(access.admin) or "off",
        max_sessions=access.max_sessions,
        max_sessions_per_identity=access.max_sessions_per_identity,
    )
    frontend: FrontEnd = module.NativeFrontEnd(
        list(config.client_endpoints),
        config.name,
        config.session_send_window,
        config.slow_consumer_bytes,
        log,
        idle_timeout_ms=config.session_idle_ms,
        access=Access(access),
        tls=client_tls(config),
        slow_consumer_ms=config.slow_consumer_ms,
        fd_reserve=reserve_for(len(config.peers)),
        max_message_bytes=config.protocol.max_message_bytes,
        retention=retention_of(config),
    )
    if config.spread.enabled:
        frontend = with_spread(config, frontend)
    return frontend


def retention_of(config: DaemonConfig) -> Retention | None:
    """The daemon's group logs (``[[retain]]``), with their disk store when a rule asks for
    it; ``None`` without rules."""
    settings = config.retention
    if not settings.enabled:
        return None
    log = structlog.get_logger("groupcomm.retention").bind(d=config.name)
    store = None
    if any(rule.store == "disk" for rule in settings.rules):
        from groupcomm.daemon.segments import SegmentStore

        store = SegmentStore(settings.dir, settings.fsync, log)
    retention = Retention(settings.rules, lambda: time.time_ns() // 1_000_000, store)
    if store is not None:
        store.load_into(retention)
    log.info(
        "retention",
        rules=[(r.groups, r.max_bytes, r.max_age_s, r.store) for r in settings.rules],
        dir=settings.dir or None,
        fsync=settings.fsync if store is not None else None,
    )
    return retention


def with_spread(config: DaemonConfig, native: Any) -> FrontEnd:
    """The native front-end and the Spread one (``[spread]``) on one session layer."""
    from groupcomm.daemon.frontends import FrontEnds
    from groupcomm.daemon.spreadfrontend import SpreadFrontEnd

    log = structlog.get_logger("groupcomm.spread").bind(d=config.name)
    try:
        spread = SpreadFrontEnd(
            list(config.spread.endpoints),
            native.layer,
            log,
            access=native.access,
            max_message_bytes=config.spread.max_message_bytes,
            fd_reserve=reserve_for(len(config.peers)),
        )
    except Exception:
        native.close()
        raise
    log.info("spread_listening", endpoints=list(config.spread.endpoints))
    return FrontEnds(native.layer, [native, spread])


def client_tls(config: DaemonConfig) -> ClientTls | None:
    """The TLS context of the ``tls://`` client endpoints (``TlsError`` if the key is
    unusable); ``None`` when there are none."""
    if not any(e.startswith("tls://") for e in config.client_endpoints):
        return None
    return ClientTls(config)


def default_frontend_factory() -> FrontEndFactory | None:
    """The native front-end if its module is importable, else ``None`` (no clients)."""
    try:
        module: Any = importlib.import_module("groupcomm.daemon.frontend")
    except ImportError:
        return None
    return native_frontend if hasattr(module, "NativeFrontEnd") else None


def announce_security(config: DaemonConfig, log: Any) -> None:
    """Say at start-up whether the links between daemons are secured; an open cluster is said
    loudly: anyone who reaches a data port can read every message and speak as a daemon."""
    if config.security.enabled:
        log.info("cluster_secured", links="TLS 1.3, peers pinned by certificate")
        clear = [e for e in config.client_endpoints if e.startswith("tcp://")]
        if clear:
            log.warning(
                "client_endpoints_clear",
                endpoints=clear,
                msg="these client endpoints carry messages and tokens in clear text: anyone on "
                "the path can read and forge a remote client's traffic; use tls:// for clients "
                "on other hosts (docs/operations.md 'Securing a cluster')",
            )
    elif len(config.peers) > 1:
        log.warning(
            "cluster_open",
            msg="NO KEYS: links between daemons are neither encrypted nor authenticated; anyone "
            "who reaches a data port can read every message and speak as a daemon "
            "(docs/operations.md 'Securing a cluster')",
        )


def run_daemon(
    config: DaemonConfig,
    frontend_factory: FrontEndFactory | None = None,
    *,
    configure_logs: bool = True,
) -> int:
    """Run one daemon until SIGTERM/SIGINT; return the process exit status.

    ``frontend_factory(config)`` builds the client front-end; ``None`` means the native
    one when available (with the Spread one beside it when ``[spread]`` is enabled). No
    front-end is built when ``config.client_endpoints`` is empty and Spread is off."""
    if configure_logs:
        configure_logging(config.log_json, config.log_level)
    log = structlog.get_logger("groupcomm.daemon").bind(d=config.name)
    before, after = raise_limit()  # before any socket: every client link is a descriptor
    log.info("nofile_limit", before=before, soft=after, reserve=reserve_for(len(config.peers)))
    factory = frontend_factory if frontend_factory is not None else default_frontend_factory()
    announce_security(config, log)
    ctx: zmq.Context[Any] | None = None if config.transport == "tcp" else zmq.Context()
    transport: DataPlane | None = None
    frontend: FrontEnd | None = None
    try:
        try:
            transport = make_transport(config, ctx)
        except TransportUnavailable as exc:
            log.error("transport_unavailable", transport=config.transport, msg=str(exc))
            print(f"groupcomm daemon: {exc}", file=sys.stderr)
            return 1
        except TlsError as exc:
            log.error("keys_unusable", msg=str(exc))
            print(f"groupcomm daemon: {config.source}: {exc}", file=sys.stderr)
            return 2
        except (zmq.ZMQError, OSError) as exc:
            data = config.epgm.endpoint if config.transport == "epgm" else config.me.data_endpoint
            log.error(
                "transport_failed",
                error=str(exc),
                transport=config.transport,
                data=data,
                control=config.me.control_endpoint,
            )
            return 1
        if (config.client_endpoints or config.spread.enabled) and factory is not None:
            try:
                frontend = factory(config)
            except TlsError as exc:
                log.error("keys_unusable", msg=str(exc))
                print(f"groupcomm daemon: {config.source}: {exc}", file=sys.stderr)
                return 2
            except (zmq.ZMQError, OSError, RuntimeError) as exc:
                log.error(
                    "frontend_failed",
                    error=str(exc),
                    endpoints=list(config.client_endpoints),
                    spread=list(config.spread.endpoints) if config.spread.enabled else None,
                )
                return 1
        elif config.client_endpoints:
            log.warning("no_frontend", reason="groupcomm.daemon.frontend is not available")
        incarnation = time.time_ns() // 1_000_000  # a restart is a new incarnation
        trace: TraceWriter | None = None
        if config.trace:
            try:
                trace = TraceWriter(config.trace, make_token(config.name, incarnation))
            except OSError as exc:
                log.error("trace_failed", error=str(exc), trace=config.trace)
                return 1
            if trace.crashed is not None:
                log.warning("trace_crash_recorded", crashed=trace.crashed, trace=config.trace)
        driver = Driver(
            config, transport=transport, frontend=frontend, trace=trace, incarnation=incarnation
        )
        transport = None  # the driver owns and closes it now
        frontend = None
        tune_gc()
        return driver.run_blocking()
    finally:
        if transport is not None:
            transport.close()
        if frontend is not None:
            frontend.close()
        if ctx is not None:
            ctx.destroy(linger=0)


def build_parser(prog: str = "python -m groupcomm.daemon") -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog,
        description="Run one groupcomm daemon (see docs/operations.md).",
    )
    ap.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML configuration (default: a single daemon on 127.0.0.1)",
    )
    ap.add_argument("--name", metavar="N", help="this daemon's name (overrides [daemon] name)")
    ap.add_argument(
        "--log-json",
        action="store_true",
        default=None,
        help="log JSON Lines instead of the console format",
    )
    ap.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None)
    ap.add_argument(
        "--trace", metavar="FILE", help="append the JSON Lines trace (docs/simulation.md) to FILE"
    )
    return ap


def config_from_args(args: argparse.Namespace) -> DaemonConfig:
    return load_config(
        args.config,
        name=args.name,
        log_json=args.log_json,
        log_level=args.log_level,
        trace=args.trace,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"groupcomm daemon: {exc}", file=sys.stderr)
        return 2
    return run_daemon(config)
