"""The ``groupcomm`` command: ``daemon``, ``send``, ``publish``, ``tail``, ``status`` (and
``demo``, ``keygen``, ``bench``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import BinaryIO, TypedDict

from groupcomm.client.connection import (
    Connection,
    ConnectionClosed,
    DaemonLost,
    DaemonUnavailable,
    GroupcommError,
    connect,
    query_status,
)
from groupcomm.client.events import (
    Event,
    Gap,
    Message,
    RegularView,
    Rejected,
    SelfLeave,
    TransitionalView,
)
from groupcomm.client.tls import TlsFilesError
from groupcomm.core.service import Service
from groupcomm.logfeed.follow import FileFollower, FollowError
from groupcomm.logfeed.lines import DEFAULT_MAX_LINE_BYTES
from groupcomm.logfeed.publish import (
    DEFAULT_STATE_INTERVAL_S,
    FollowSource,
    StateKeeper,
    StdinSource,
    publish,
    stop_on_signals,
    watching_session,
)
from groupcomm.logfeed.resume import (
    ResumeError,
    TailState,
    parse_since,
    rewind_output,
    save_state,
)
from groupcomm.logfeed.resume import load_state as load_tail_state
from groupcomm.logfeed.state import StateError, load_state

SERVICES = {s.name.lower(): s for s in Service}
TOKEN_ENV = "GROUPCOMM_TOKEN"
DRAIN_TIMEOUT_S = 10.0  # how long ``send`` waits, at the end, for the daemon to take the rest
# For tls:// endpoints: (option, connect() parameter, environment variable)
TLS_OPTIONS = (
    ("--daemon-cert", "daemon_cert", "GROUPCOMM_DAEMON_CERT"),
    ("--cert", "cert", "GROUPCOMM_CERT"),
    ("--key", "key", "GROUPCOMM_KEY"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="groupcomm", description="Spread-style group communication: daemon and tools."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("daemon", help="run a daemon", description="Run a groupcomm daemon.")
    p.add_argument("--config", metavar="FILE", help="configuration file")
    p.add_argument("--log-json", action="store_true", help="log JSON lines")
    p.add_argument("--trace", metavar="FILE", help="append a JSON Lines trace to FILE")
    p.add_argument("--name", metavar="N", help="this daemon's name (overrides the config)")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    p = sub.add_parser(
        "send",
        help="multicast a message (or, like publish without --state, stdin's or a file's lines)",
        description="Multicast TEXT to GROUP; without TEXT, every line of stdin (until end of "
        "input) or, with --follow, every line appended to FILE (like tail -F: across rotation "
        "and truncation, until SIGINT/SIGTERM), as 'groupcomm publish' does without --state. "
        "One message per line, without its newline, sent in batches; when the group is slower "
        "than the input, reading waits (memory stays bounded). On SIGINT/SIGTERM the lines "
        "read so far are sent, then it exits 0. For a log feed that resumes after a restart, "
        "use 'groupcomm publish GROUP --follow FILE --state STATE'.",
    )
    p.add_argument("group", metavar="GROUP", help="destination group or private name")
    p.add_argument("text", metavar="TEXT", nargs="?", help="message text (default: stdin lines)")
    _feed_arguments(p)

    p = sub.add_parser(
        "publish",
        help="multicast stdin's lines or a followed log file's lines (resumable with --state)",
        description="Multicast every line of stdin to GROUP (until end of input) or, with "
        "--follow, every line appended to FILE, like tail -F: across rotation and truncation, "
        "until SIGINT/SIGTERM. One message per line, without its newline, sent in batches; "
        "when the group is slower than the input, reading waits (memory stays bounded). On "
        "SIGINT/SIGTERM the lines read so far are sent, then it exits 0. With --state, where "
        "it stopped is kept in STATE (the file, by device and inode, and the offset of the "
        "first line the daemon has not yet acknowledged, i.e. stamped into the group's order) "
        "and the next run starts there: after a crash or kill -9 no line is lost, and only "
        "lines after the recorded offset are sent again. Rotated while stopped: the rest of "
        "the old file (found in FILE's directory by its inode, or after a copytruncate by its "
        "bytes) is sent first, then FILE from its start; not found, or FILE truncated: FILE "
        "is read from its start. Either way with a warning on stderr.",
    )
    p.add_argument("group", metavar="GROUP", help="destination group or private name")
    _feed_arguments(p)
    p.add_argument(
        "--state",
        metavar="STATE",
        help="with --follow: resume from, and keep, the acknowledged position in STATE "
        "(written atomically; while STATE does not exist, the start is as --from-start says)",
    )
    p.add_argument(
        "--state-interval",
        type=_positive_float,
        default=DEFAULT_STATE_INTERVAL_S,
        metavar="SECONDS",
        help="write STATE at most this often while lines are acknowledged, and at exit "
        f"(default: {DEFAULT_STATE_INTERVAL_S:g})",
    )

    p = sub.add_parser(
        "tail",
        help="print a group's messages and views",
        description="Join GROUP and print messages and membership views as they arrive.",
    )
    p.add_argument("group", metavar="GROUP")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--raw",
        action="store_true",
        help="print only each message's payload, as sent (a log feed's lines); no views",
    )
    p.add_argument("--count", type=_positive_int, metavar="N", help="exit after N messages")
    p.add_argument(
        "--output", metavar="FILE", help="append to FILE instead of printing (created if absent)"
    )
    p.add_argument(
        "--since",
        metavar="WHEN",
        help="first replay what the daemon retains of GROUP ([[retain]]) from WHEN: "
        "'earliest', a message position (tail --json prints them), seconds since 1970, an ISO "
        "8601 time with a timezone, or -90s/-5m/-2h/-1d; a gap is reported on stderr",
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        help="resume where the last run stopped: FILE keeps the position of the last message "
        "written (and the --output size); when it exists it replaces --since. With --output "
        "each message is written exactly once across restarts, to stdout at least once",
    )
    p.add_argument(
        "--failover",
        metavar="E",
        action="append",
        default=[],
        help="when the daemon is lost, resume at this endpoint from the last position "
        "(repeatable: tried in turn, then --endpoint again; needs GROUP retained there)",
    )
    p.add_argument("--endpoint", metavar="E", help="daemon endpoint (default: local daemon)")
    _token_argument(p)
    _tls_arguments(p)

    p = sub.add_parser("status", help="show daemon status", description="Show daemon status.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--endpoint", metavar="E", help="daemon endpoint (default: local daemon)")
    _tls_arguments(p)

    p = sub.add_parser(
        "demo",
        help="live 3-daemon cluster: agreed order, partition, merge",
        description="Start 3 daemons on loopback, show agreed order, a partition and a merge.",
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, traces)")
    p.add_argument(
        "--keys", action="store_true", help="secure the daemons' links (keys made for the run)"
    )

    p = sub.add_parser(
        "keygen",
        help="make key pairs for a secured cluster (daemons, TLS clients)",
        description="Write NAME.key (the private key, mode 0600: [security] key of a daemon, "
        "or a TLS client's --key) and NAME.crt (the certificate: [[peers]] cert of every "
        "daemon, or [clients.NAME] cert) into DIR (docs/operations.md 'Securing a cluster').",
    )
    p.add_argument(
        "names", metavar="NAME", nargs="+", help="daemon names as in [[peers]], or client names"
    )
    p.add_argument("--dir", metavar="DIR", default=".", help="where to write (default: .)")
    p.add_argument("--force", action="store_true", help="replace existing files")

    p = sub.add_parser(
        "bench",
        help="benchmark a local cluster (throughput, latency, order, CPU)",
        description="Start daemons and member processes, run the peer kit's workload and "
        "report delivered msg/s, latency, loss, order and CPU (docs/performance.md).",
    )
    from groupcomm.benchmark.command import add_arguments as add_bench_arguments

    add_bench_arguments(p)
    return parser


def _feed_arguments(p: argparse.ArgumentParser) -> None:
    """What ``send`` and ``publish`` share: the line feed's options and the session's."""
    p.add_argument("--service", choices=sorted(SERVICES), default="agreed")
    p.add_argument(
        "--follow",
        metavar="FILE",
        help="send the lines appended to FILE, following it across rotation and truncation",
    )
    p.add_argument(
        "--from-start",
        action="store_true",
        help="with --follow: send FILE's existing lines first (default: only new ones)",
    )
    p.add_argument(
        "--max-line-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_LINE_BYTES,
        metavar="N",
        help=f"cut longer lines to N bytes (default: {DEFAULT_MAX_LINE_BYTES})",
    )
    p.add_argument("--endpoint", metavar="E", help="daemon endpoint (default: local daemon)")
    _token_argument(p)
    _tls_arguments(p)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0: {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _token_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"authenticate with the token in FILE (default: ${TOKEN_ENV}, else none)",
    )


def _tls_arguments(p: argparse.ArgumentParser) -> None:
    helps = {
        "daemon_cert": "the daemon's certificate, pinned (needed with --endpoint tls://...)",
        "cert": "this client's certificate, for a daemon listing it in [clients.NAME] cert",
        "key": "this client's private key (default: the --cert file with the suffix .key)",
    }
    for option, dest, env in TLS_OPTIONS:
        p.add_argument(option, dest=dest, metavar="FILE", help=f"{helps[dest]}; default: ${env}")


class _TlsFiles(TypedDict):
    daemon_cert: str
    cert: str
    key: str


def _tls(args: argparse.Namespace) -> _TlsFiles:
    """``daemon_cert``, ``cert``, ``key`` for ``connect``: the options, else the environment.
    The environment applies to ``tls://`` endpoints only, so a ``GROUPCOMM_DAEMON_CERT`` set
    for one daemon does not break a command aimed at a local one."""
    tls = (args.endpoint or "").startswith("tls://")
    got = {
        dest: getattr(args, dest) or (os.environ.get(env, "") if tls else "")
        for _, dest, env in TLS_OPTIONS
    }
    return _TlsFiles(daemon_cert=got["daemon_cert"], cert=got["cert"], key=got["key"])


def _token(args: argparse.Namespace) -> str:
    """The client token: from ``--token-file``, else ``$GROUPCOMM_TOKEN`` (never a command-line
    argument: other users can read a process's arguments)."""
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                return f.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise GroupcommError(f"cannot read token file {args.token_file}: {exc}") from None
    return os.environ.get(TOKEN_ENV, "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "send" and args.follow is not None and args.text is not None:
        parser.error("send: give TEXT or --follow FILE, not both")
    if args.command in ("send", "publish") and args.from_start and args.follow is None:
        parser.error(f"{args.command}: --from-start needs --follow FILE")
    if args.command == "publish" and args.state is not None and args.follow is None:
        parser.error("publish: --state needs --follow FILE (stdin has no position to keep)")
    if args.command == "tail" and args.raw and args.json:
        parser.error("tail: --raw or --json, not both")
    try:
        match args.command:
            case "daemon":
                return _daemon(args)
            case "send" if args.text is not None:
                return asyncio.run(_send(args))
            case "send" | "publish":
                return asyncio.run(_publish(args))
            case "tail":
                return asyncio.run(_tail(args))
            case "status":
                return asyncio.run(_status(args))
            case "demo":
                from groupcomm.demo import main as demo_main

                return demo_main(
                    (["--keep"] if args.keep else []) + (["--keys"] if args.keys else [])
                )
            case "keygen":
                return _keygen(args)
            case "bench":
                from groupcomm.benchmark.command import main as bench_main

                return bench_main(args)
            case _:
                return 2
    except (GroupcommError, TlsFilesError, FollowError, StateError) as e:
        print(f"groupcomm {args.command}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _keygen(args: argparse.Namespace) -> int:
    from groupcomm.config import ConfigError, parse_config
    from groupcomm.keygen import KeygenError, make_keypair

    for name in args.names:
        try:  # the names a config accepts, and none that would write outside DIR
            parse_config({"daemon": {"name": name}}, "NAME")
            if "/" in name or name.startswith("."):
                raise ConfigError(f"NAME must not contain '/' or start with '.': {name!r}")
        except ConfigError as exc:
            print(f"groupcomm keygen: {exc}", file=sys.stderr)
            return 2
    try:
        for name in args.names:
            key, cert = make_keypair(name, Path(args.dir), force=args.force)
            print(f"{name}: private key {key} (keep it on {name} only), certificate {cert}")
    except KeygenError as exc:
        print(f"groupcomm keygen: {exc}", file=sys.stderr)
        return 1
    return 0


def _daemon(args: argparse.Namespace) -> int:
    """Hand over to ``groupcomm.daemon.main.main`` (imported lazily: the tools need no daemon)."""
    try:
        module = importlib.import_module("groupcomm.daemon.main")
        daemon_main = module.main
    except (ImportError, AttributeError) as e:
        print(f"groupcomm daemon: the daemon is not available ({e})", file=sys.stderr)
        return 1
    argv: list[str] = []
    for flag, value in (
        ("--config", args.config),
        ("--trace", args.trace),
        ("--name", args.name),
        ("--log-level", args.log_level),
    ):
        if value is not None:
            argv += [flag, value]
    if args.log_json:
        argv.append("--log-json")
    result = daemon_main(argv)
    return result if isinstance(result, int) else 0


async def _send(args: argparse.Namespace) -> int:
    """One TEXT (the lines of stdin or of a followed file: ``_publish``)."""
    async with connect(args.endpoint, membership=False, token=_token(args), **_tls(args)) as conn:
        await conn.multicast(args.group, args.text.encode(), SERVICES[args.service])
        await _drain(conn)
    return 0


async def _drain(conn: Connection) -> None:
    try:  # every message accepted into the ordered stream
        await conn.drain(timeout=DRAIN_TIMEOUT_S)
    except TimeoutError:
        raise GroupcommError(
            f"the daemon did not accept every message within {DRAIN_TIMEOUT_S} s"
        ) from None
    if conn.closed and conn.in_flight:
        raise GroupcommError(
            f"the session ended before the daemon accepted the last {conn.in_flight} bytes"
        )


async def _publish(args: argparse.Namespace) -> int:
    """stdin's lines or a followed file's lines (``groupcomm.logfeed.publish``), for
    ``publish`` and for ``send`` without TEXT; with ``--state``, kept and resumed."""
    command = f"groupcomm {args.command}"
    service = SERVICES[args.service]

    def warn(message: str) -> None:
        print(f"{command}: warning: {message}", file=sys.stderr, flush=True)

    refused: dict[str, int] = {}

    def report(event: Rejected) -> None:
        if event.reason not in refused:  # each reason once; the count at exit
            print(f"{command}: the daemon refused a line: {event.reason}", file=sys.stderr)
        refused[event.reason] = refused.get(event.reason, 0) + 1

    follower: FileFollower | None = None
    stdin: StdinSource | None = None
    keeper: StateKeeper | None = None
    state_path: str | None = getattr(args, "state", None)
    if args.follow is not None:
        follower = FileFollower(
            args.follow, from_start=args.from_start, max_line_bytes=args.max_line_bytes, warn=warn
        )
        # A missing or unreadable file or state fails before the daemon is asked.
        state = load_state(state_path, args.follow) if state_path else None
        if state is not None:
            follower.resume(state)
        else:
            follower.open()
    try:
        if follower is not None and state_path:
            keeper = StateKeeper(state_path, follower, args.state_interval, warn)
            try:
                keeper.start()
            except OSError as exc:
                raise StateError(
                    f"cannot write state file {state_path}: {exc.strerror or exc}"
                ) from None
        async with connect(
            args.endpoint, membership=False, token=_token(args), **_tls(args)
        ) as conn:
            source: FollowSource | StdinSource
            if follower is not None:
                source = FollowSource(follower)
            else:
                source = stdin = StdinSource(sys.stdin.fileno(), args.max_line_bytes)
            stop = asyncio.Event()
            async with contextlib.AsyncExitStack() as stack:
                stack.enter_context(stop_on_signals(stop))
                watch = await stack.enter_async_context(watching_session(conn, report, stop))
                if keeper is not None:  # records once more on the way out, after the drain
                    await stack.enter_async_context(keeper.running(conn))
                checkpoints = keeper.checkpoints if keeper is not None else None
                await publish(conn, args.group, source, stop, service, checkpoints=checkpoints)
                if watch.ended is not None:
                    raise watch.ended  # the daemon went away or closed the session
                await _drain(conn)
    finally:
        if follower is not None:
            follower.close()
    cut = follower.truncated_lines if follower is not None else 0
    cut += stdin.splitter.truncated if stdin is not None else 0
    if cut:
        print(
            f"{command}: {cut} line(s) longer than {args.max_line_bytes} bytes were cut",
            file=sys.stderr,
        )
    if refused:
        print(f"{command}: {sum(refused.values())} line(s) refused by the daemon", file=sys.stderr)
    return 0


def event_record(event: Event) -> dict[str, object]:
    """A JSON-friendly description of an event (``tail --json``)."""
    match event:
        case Message():
            try:
                text: dict[str, object] = {"text": event.payload.decode()}
            except UnicodeDecodeError:
                text = {"hex": event.payload.hex()}
            return {
                "type": "message",
                "sender": event.sender,
                "groups": list(event.groups),
                "service": event.service_level.name.lower(),
                "msg_type": event.msg_type,
                "mid": event.mid,
                "position": event.position,
                **text,
            }
        case RegularView():
            return {
                "type": "view",
                "group": event.group,
                "gid": event.gid,
                "cause": event.cause,
                "members": list(event.members),
                "changed": list(event.changed),
                "vs_sets": [list(s) for s in event.vs_sets],
            }
        case TransitionalView():
            return {
                "type": "transitional",
                "group": event.group,
                "gid": event.gid,
                "members": list(event.members),
            }
        case SelfLeave():
            return {"type": "self_leave", "group": event.group}
        case Rejected():
            return {
                "type": "rejected",
                "op": event.op,
                "group": event.group,
                "reason": event.reason,
            }
        case Gap():
            return {
                "type": "gap",
                "groups": list(event.groups),
                "reason": event.reason,
                "after": event.after,
                "before": event.before,
                "first": event.first,
                "last": event.last,
                "count": event.count,
            }


def event_line(event: Event) -> str:
    match event:
        case Message():
            return f"{event.sender}: {event.payload.decode(errors='replace')}"
        case RegularView():
            changed = ",".join(event.changed)
            return f"-- view {event.group} {event.cause} {changed}: {' '.join(event.members)}"
        case TransitionalView():
            return f"-- transitional {event.group}: {' '.join(event.members)}"
        case SelfLeave():
            return f"-- left {event.group}"
        case Rejected():
            return f"-- rejected {event.op} {event.group or ''}: {event.reason}"
        case Gap():
            count = "an unknown number of" if event.count < 0 else str(event.count)
            return f"-- gap {','.join(event.groups)}: {count} message(s) missing ({event.reason})"


async def _tail(args: argparse.Namespace) -> int:
    """Print (or append to ``--output``) what GROUP delivers, one line per event, written and
    flushed once per delivered batch (a log feed delivers thousands of lines a second)."""
    try:
        since = parse_since(args.since) if args.since else None
        state = load_tail_state(args.state) if args.state else None
    except ResumeError as exc:
        raise GroupcommError(str(exc)) from None
    try:
        out: BinaryIO = open(args.output, "ab") if args.output else sys.stdout.buffer  # noqa: SIM115
    except OSError as exc:
        raise GroupcommError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    try:
        if args.output:
            cut = rewind_output(out, state)
            if cut:
                print(
                    f"groupcomm tail: cut {cut} bytes written after the saved position "
                    f"from {args.output} (they are replayed)",
                    file=sys.stderr,
                )
        sys.stdout.flush()  # anything printed through the text layer goes first
        await _TailRun(args, out, since, state).run()
    finally:
        if args.output:
            out.close()
    return 0


class _TailRun:
    """``tail``'s loop: join (replaying ``since`` or the saved position), write each batch,
    save the state, and on a lost daemon resume at the next endpoint."""

    RETRY_FOR_S = 30.0  # with no endpoint answering for this long, give up

    def __init__(
        self,
        args: argparse.Namespace,
        out: BinaryIO,
        since: str | float | None,
        state: TailState | None,
    ) -> None:
        self.args = args
        self.out = out
        self.position = state.position if state is not None else ""
        self.since = self.position or since
        self.endpoints = [args.endpoint, *args.failover]
        self.resumable = bool(args.state or args.failover)
        self.left: int | None = args.count
        self.joined = False  # the current session got as far as its join
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def run(self) -> None:
        turn, lost_at = 0, 0.0
        while True:
            endpoint = self.endpoints[turn % len(self.endpoints)]
            try:
                await self._session(endpoint)
                return
            except (DaemonLost, DaemonUnavailable, ConnectionClosed) as exc:
                if not self.resumable or isinstance(exc, _Refused):
                    raise
                now = self.clock()
                if self.joined:  # a session that worked: the 30 s start again from here
                    lost_at, self.joined = now, False
                lost_at = lost_at or now
                if now - lost_at > self.RETRY_FOR_S:
                    raise GroupcommError(
                        f"no daemon answered for {self.RETRY_FOR_S:.0f} s: {exc}"
                    ) from None
                turn += 1
                following = self.endpoints[turn % len(self.endpoints)] or "the local daemon"
                print(
                    f"groupcomm tail: {exc}; resuming at {following} after "
                    f"{self.position or self.since or 'the live stream'}",
                    file=sys.stderr,
                )
                await self.sleep(0.2 if turn % len(self.endpoints) else 1.0)
                if self.position:
                    self.since = self.position

    async def _session(self, endpoint: str | None) -> None:
        args = self.args
        membership = not args.raw  # a raw feed is the lines alone: no views to skip
        async with connect(
            endpoint, membership=membership, token=_token(args), **_tls(args)
        ) as conn:
            req = await conn.join(args.group, since=self.since)
            self.joined = True
            while self.left is None or self.left > 0:
                events = await conn.receive_many()  # ConnectionClosed: the daemon ended it
                self._write(events, req)

    def _write(self, events: list[Event], join_req: int) -> None:
        args = self.args
        lines: list[bytes] = []
        for event in events:
            if isinstance(event, Rejected) and event.req == join_req and event.op == "join":
                raise _Refused(f"join {args.group}: {event.reason}")
            if args.raw:
                if isinstance(event, Rejected | Gap):
                    print(event_line(event), file=sys.stderr)
                elif isinstance(event, Message):
                    lines.append(event.payload)
            else:
                text = json.dumps(event_record(event)) if args.json else event_line(event)
                lines.append(text.encode())
            if isinstance(event, Message):
                self.position = event.position
                if self.left is not None:
                    self.left -= 1
                    if self.left == 0:
                        break
        if lines:
            self.out.write(b"\n".join(lines) + b"\n")
            self.out.flush()
        if self.args.state and self.position:
            size = self.out.tell() if self.args.output else -1
            save_state(self.args.state, TailState(self.position, size))


class _Refused(ConnectionClosed):
    """The daemon refused the join: no endpoint change helps."""


async def _status(args: argparse.Namespace) -> int:
    info = await query_status(args.endpoint, **_tls(args))
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True, default=str))
    else:
        for key in sorted(info):
            print(f"{key}: {info[key]}")
    return 0
