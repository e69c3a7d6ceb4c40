"""Run options, all derived from one seed so a seed alone reproduces a run."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """One scheduled fault: at ``at_ms`` do ``what`` with ``args`` (see faults.py)."""

    at_ms: int
    what: str
    args: tuple[str | int | float, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class SimOptions:
    seed: int
    daemons: int = 3
    clients_per_daemon: int = 2
    groups: int = 3
    latency_min_ms: int = 1
    latency_max_ms: int = 4
    latency_tail: float = 0.02  # chance of a slow frame (x5 latency): reordering
    loss: float = 0.0
    duplication: float = 0.0
    safety_ms: int = 3000  # faults happen in [0, safety_ms)
    settle_ms: int = 3000  # after healing: workload for a while, then quiet
    rate_per_client: float = 20.0  # operations per second per connection
    faults: tuple[FaultPlan, ...] = field(default=())
    churn: bool = True  # connections open/close, groups joined/left
    codec: bool = True  # every frame goes through the real msgpack codec

    def describe(self) -> str:
        kinds = sorted({f.what for f in self.faults})
        return (
            f"seed={self.seed} daemons={self.daemons} loss={self.loss:.2f} "
            f"dup={self.duplication:.2f} latency={self.latency_min_ms}-{self.latency_max_ms}ms "
            f"faults={len(self.faults)}({','.join(kinds)})"
        )


def random_options(seed: int) -> SimOptions:
    """A random configuration for swarm testing: 3 to 7 daemons, random faults and workload."""
    rng = random.Random(f"options-{seed}")
    daemons = rng.randint(3, 7)
    safety_ms = rng.choice((1500, 2500, 3500))
    return SimOptions(
        seed=seed,
        daemons=daemons,
        clients_per_daemon=rng.randint(1, 3),
        groups=rng.randint(1, 4),
        latency_min_ms=rng.randint(0, 2),
        latency_max_ms=rng.randint(3, 12),
        latency_tail=rng.choice((0.0, 0.02, 0.1)),
        loss=rng.choice((0.0, 0.0, 0.01, 0.05, 0.15)),
        duplication=rng.choice((0.0, 0.0, 0.02, 0.1)),
        safety_ms=safety_ms,
        rate_per_client=rng.choice((5.0, 20.0, 60.0)),
        faults=with_holds(seed, random_faults(rng, daemons, safety_ms), daemons, safety_ms),
        churn=rng.random() < 0.8,
    )


def with_holds(
    seed: int, faults: tuple[FaultPlan, ...], daemons: int, safety_ms: int
) -> tuple[FaultPlan, ...]:
    """``faults`` plus, in half the seeds, one to three "hold" faults: a daemon's local client
    lags for a while (``BacklogChanged``), so the daemon holds deliveries and receipt acks
    (protocol/ordering.md section 7) while everything else goes on. Drawn from their own random
    stream, so every other option of a seed stays what it was."""
    rng = random.Random(f"holds-{seed}")
    if rng.random() < 0.5:
        return faults
    holds = [
        FaultPlan(
            at_ms=rng.randint(100, safety_ms - 50),
            what="hold",
            args=(f"d{rng.randint(1, daemons)}", rng.randint(50, 1500)),
        )
        for _ in range(rng.randint(1, 3))
    ]
    return tuple(sorted((*faults, *holds), key=lambda p: (p.at_ms, p.what)))


def random_faults(rng: random.Random, daemons: int, safety_ms: int) -> tuple[FaultPlan, ...]:
    names = [f"d{i + 1}" for i in range(daemons)]
    plans: list[FaultPlan] = []
    for _ in range(rng.randint(0, 6)):
        at = rng.randint(100, safety_ms - 50)
        kind = rng.choice(
            ("partition", "partition", "asymmetric", "heal", "crash", "pause", "loss", "leave")
        )
        if kind == "partition":
            parts = rng.randint(2, min(3, daemons))
            labels = [rng.randrange(parts) for _ in names]
            plans.append(FaultPlan(at_ms=at, what="partition", args=tuple(labels)))
        elif kind == "asymmetric":
            src, dst = rng.sample(names, 2)
            plans.append(FaultPlan(at_ms=at, what="asymmetric", args=(src, dst)))
        elif kind == "heal":
            plans.append(FaultPlan(at_ms=at, what="heal"))
        elif kind in ("crash", "leave"):
            victim = rng.choice(names)
            down_ms = rng.randint(100, 1200)
            plans.append(FaultPlan(at_ms=at, what=kind, args=(victim, down_ms)))
        elif kind == "pause":
            plans.append(
                FaultPlan(at_ms=at, what="pause", args=(rng.choice(names), rng.randint(100, 600)))
            )
        else:
            plans.append(
                FaultPlan(
                    at_ms=at,
                    what="loss",
                    args=(rng.choice((0.05, 0.2, 0.4)), rng.randint(100, 800)),
                )
            )
    return tuple(sorted(plans, key=lambda p: (p.at_ms, p.what)))
