"""The fan-out job: its parameters (``FanoutConfig``), where each publisher and consumer runs,
and the command line of one publisher or consumer process (``RolePlan``).

One definition for the orchestrator and for every member process (groupcomm's and Redis's), so
all systems run exactly the same job. Publisher ``k`` runs next to daemon ``k mod daemons``,
consumer ``j`` next to daemon ``j mod daemons`` (10 per daemon by default). Standard library
only (the Redis members import it under the peer kit's interpreter).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from groupcomm.benchmark.fanout.loglines import DEFAULT_POOL

SYSTEMS = ("groupcomm", "redis-pubsub", "redis-streams")
SERVICES = ("agreed", "fifo", "reliable", "safe", "causal")  # groupcomm services that fit a feed
TOPIC = "logs.web"  # the group, the Redis channel and the Redis stream key
ROLES = ("pub", "sub")
CONSUMER_ID_BASE = 1000  # member ids: publisher k is k, consumer j is 1000 + j


@dataclass(frozen=True, slots=True)
class FanoutConfig:
    rate: float = 10_000.0  # lines/s offered by all publishers together; 0 = flood
    publishers: int = 3
    consumers: int = 30
    daemons: int = 3  # namespace hosts (groupcomm daemons; Redis runs on host 1)
    dur: float = 15.0  # publishers send for dur s
    warm: float = 2.0  # the window is [start + warm, start + dur)
    drain: float = 5.0  # consumers wait at most this long after dur for lines in flight
    seed: int = 1
    pool: int = DEFAULT_POOL  # distinct lines per publisher, replayed in a cycle
    batch: int = 100  # most lines per send call (flood: every call)
    stream_maxlen: int = 2_000_000  # Redis Streams: XADD MAXLEN ~ (the retention)

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError("rate must be >= 0 (0 = flood)")
        if self.publishers < 1 or self.consumers < 1 or self.daemons < 1:
            raise ValueError("need at least 1 publisher, 1 consumer and 1 daemon")
        if not 0 <= self.warm < self.dur or self.drain < 0:
            raise ValueError("need 0 <= warm < dur and drain >= 0")
        if self.pool < 1 or self.batch < 1 or self.stream_maxlen < 1:
            raise ValueError("pool, batch and stream_maxlen must be positive")

    @property
    def flood(self) -> bool:
        return self.rate == 0

    @property
    def window_s(self) -> float:
        return self.dur - self.warm

    def publisher_rate(self) -> float:
        return self.rate / self.publishers

    def publisher_node(self, k: int) -> int:
        return k % self.daemons

    def consumer_node(self, j: int) -> int:
        return j % self.daemons


@dataclass(frozen=True, slots=True)
class RolePlan:
    """Everything one publisher or consumer process needs (its command line)."""

    role: str  # "pub" or "sub"
    id: int  # publisher index (the header's publisher field), or consumer index
    node: int
    publishers: int  # how many end markers a consumer waits for
    consumers: int  # the group size a groupcomm consumer waits for before it is ready
    rate: float  # this publisher's lines/s; 0 = flood
    batch: int
    seed: int
    pool: int
    dur: float
    warm: float
    drain: float
    out: str
    service: str = "agreed"  # groupcomm only
    away_at: float = 0.0  # consumer: leave this long after the start (0: stay)
    away_for: float = 0.0  # ... and resume from its stored position this much later
    caught_up_ms: float = 1000.0  # ... and is caught up once a line arrives this fresh

    def to_argv(self) -> list[str]:
        argv: list[str] = []
        for f in dataclasses.fields(self):
            argv += [f"--{f.name.replace('_', '-')}", str(getattr(self, f.name))]
        return argv

    @property
    def member_id(self) -> int:
        return self.id if self.role == "pub" else CONSUMER_ID_BASE + self.id

    def window_ns(self, start_ns: int) -> tuple[int, int]:
        return start_ns + int(self.warm * 1e9), start_ns + int(self.dur * 1e9)

    def deadline_ns(self, start_ns: int) -> int:
        return start_ns + int((self.dur + self.drain) * 1e9)


def role_plans(
    cfg: FanoutConfig,
    workdir: str,
    service: str = "agreed",
    away: tuple[float, float] = (0, 0),
    caught_up_ms: float = 1000.0,
) -> list[RolePlan]:
    """Every process of the job: the publishers, then the consumers. ``away = (at, for)`` sends
    the last consumer away (the catch-up measurement); ``(0, 0)``: nobody leaves."""

    def plan(role: str, i: int, node: int, rate: float, away: tuple[float, float]) -> RolePlan:
        return RolePlan(
            role=role,
            id=i,
            node=node,
            publishers=cfg.publishers,
            consumers=cfg.consumers,
            rate=rate,
            batch=cfg.batch,
            seed=cfg.seed,
            pool=cfg.pool,
            dur=cfg.dur,
            warm=cfg.warm,
            drain=cfg.drain,
            out=f"{workdir}/{role}{i}.json",
            service=service,
            away_at=away[0],
            away_for=away[1],
            caught_up_ms=caught_up_ms,
        )

    last = cfg.consumers - 1
    pubs = [
        plan("pub", k, cfg.publisher_node(k), cfg.publisher_rate(), (0, 0))
        for k in range(cfg.publishers)
    ]
    subs = [
        plan("sub", j, cfg.consumer_node(j), 0.0, away if j == last else (0, 0))
        for j in range(cfg.consumers)
    ]
    return pubs + subs


def add_role_arguments(parser: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(RolePlan):
        name = "--" + f.name.replace("_", "-")
        kind = {"int": int, "float": float}.get(str(f.type), str)
        if f.default is dataclasses.MISSING:
            parser.add_argument(name, type=kind, required=True)
        else:
            parser.add_argument(name, type=kind, default=f.default)


def plan_from_args(ns: argparse.Namespace) -> RolePlan:
    plan = RolePlan(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(RolePlan)})
    if plan.role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return plan
