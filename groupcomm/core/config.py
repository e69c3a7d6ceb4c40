"""Protocol settings of one daemon (the daemon's ``[protocol]`` table, which every daemon of a
cluster must share: ``groupcomm.config.ProtocolConfig.fingerprint``, checked by the transport)."""

from __future__ import annotations

from dataclasses import dataclass, fields

MAX_MESSAGE_BYTES_LIMIT = 1 << 30  # the largest max_message_bytes a daemon accepts
# A fragment and its header must fit one Msg payload of the peer codec (1 MiB, groupcomm.wire).
MAX_FRAGMENT_BYTES = (1 << 20) - 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreConfig:
    name: str  # this daemon's name (stable across restarts)
    incarnation: int  # differs after every restart: a new process in the EVS sense
    peers: tuple[str, ...]  # names of every daemon that may belong to the cluster (self included)
    tick_ms: int = 10  # the periodic timer: heartbeats, repair, deadlines
    heartbeat_ms: int = 40
    # Silence after which a member is suspected. 1 s, not less: on a loaded machine a daemon
    # starved of CPU for a few hundred ms (a busy 2-core host, a GC pause) is not a crash, and a
    # false suspicion costs a view change (L2). corosync's default token timeout is 3 s.
    suspect_timeout_ms: int = 1000
    flush_timeout_ms: int = 200  # proposer waits this long for Flush reports
    install_timeout_ms: int = 400  # a member waits this long for Install after flushing
    gather_timeout_ms: int = 150  # wait for someone else's proposal before proposing ourselves
    # Views of at least this many members use star acknowledgements (membership.md section 2,
    # ordering.md section 4): members send their Status to the coordinator only, which relays
    # what they need. All-to-all Status costs N^2 frames per heartbeat and per SAFE message,
    # the star 2N; below this size all-to-all is kept for its shorter SAFE path.
    star_members: int = 8
    window_msgs: int = 4096  # own unstable messages in flight (flow control)
    # Own unstable payload bytes in flight. Also bounds a Flush report (members x window), which
    # must fit one peer frame (16 MiB by default in groupcomm.wire): keep members x window below.
    window_bytes: int = 1 << 20
    batch_bytes: int = 60_000  # Data frames are cut at this size
    # The largest multicast payload (the [protocol] table: every daemon reassembles under the
    # same bound, protocol/services.md section 7). Longer than fragment_bytes: sent in fragments.
    max_message_bytes: int = 1 << 20
    fragment_bytes: int = 256 << 10
    trace_messages: bool = False  # emit per-message Notes (simulator, --trace); off on the hot path
    # Emit the daemon's own record of every delivered data message (a DeliverMessage with
    # conn "", protocol/retention.md section 2): set when the daemon retains groups.
    record: bool = False

    def __post_init__(self) -> None:
        if self.name not in self.peers:
            raise ValueError(f"peers must include this daemon's own name {self.name!r}")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_ms", "_msgs", "_bytes")) and (
                not isinstance(value, int) or value <= 0
            ):
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")
        if self.max_message_bytes > MAX_MESSAGE_BYTES_LIMIT:
            raise ValueError(f"max_message_bytes must be at most {MAX_MESSAGE_BYTES_LIMIT}")
        if self.fragment_bytes > MAX_FRAGMENT_BYTES:
            raise ValueError(f"fragment_bytes must be at most {MAX_FRAGMENT_BYTES}")
        if not isinstance(self.star_members, int) or self.star_members < 2:
            raise ValueError(f"star_members must be an integer >= 2, got {self.star_members!r}")
        if self.suspect_timeout_ms <= self.heartbeat_ms:
            raise ValueError("suspect_timeout_ms must exceed heartbeat_ms")
