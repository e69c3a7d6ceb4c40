"""The random faults of a seed: the plain seeds' faults and holds, and the fault schedules of the
opt-in modes ``--nemesis`` and ``--core``.

Owns the draws that turn a seed (or a seed's random stream) into a tuple of ``FaultPlan``:
``random_faults`` (from the stream it is given: ``options-<seed>``, shared with the seed's
other plain options, or ``faults-<seed>`` when they are drawn again), ``with_holds``
(``holds-<seed>``), ``nemesis_faults`` (``nemesis-<seed>``) and ``core_faults``
(``core-faults-<seed>``), and how schedules are merged (``merged_faults``). Every existing seed
must keep its draws: anything new that is random gets a stream of its own (``sim.options``,
module docstring). It does not own the fault kinds (``sim.faultplan``) or how a seed's options
are put together from these draws (``random_options`` in ``sim.options``).
"""

from __future__ import annotations

import random

from sim.faultplan import CUT_LINKS, CUT_SHAPES, FaultPlan, Link, daemon_names, link


def merged_faults(*lists: tuple[FaultPlan, ...]) -> tuple[FaultPlan, ...]:
    """The plans of several schedules as one, by time and then kind."""
    return tuple(sorted((p for plans in lists for p in plans), key=lambda p: (p.at_ms, p.what)))


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


# ------------------------------------------------------------------- opt-in random modes


def nemesis_faults(seed: int, daemons: int, safety_ms: int) -> tuple[FaultPlan, ...]:
    """``--nemesis``: one to four faults of the kinds the plain seeds never draw (partition
    shapes, link cuts, flaps, per-link latency and loss, swizzles, clock jumps and drift), some
    followed by a heal, from the stream ``nemesis-<seed>``."""
    rng = random.Random(f"nemesis-{seed}")
    names = daemon_names(daemons)
    if daemons < 2 or safety_ms < 150:
        return ()
    kinds = ["isolate", "cut", "flap", "flaplink", "slow", "lossy", "swizzle", "clock"]
    if daemons >= 3:
        kinds += ["majority", "bridge", "bridge"]
    if daemons >= 4:
        kinds += ["ring", "ring"]
    plans: list[FaultPlan] = []
    for _ in range(rng.randint(1, 4)):
        at = rng.randint(100, safety_ms - 50)
        kind = rng.choice(kinds)
        a, b = rng.sample(names, 2)
        args: tuple[str | int | float, ...]
        if kind in ("isolate", "bridge"):
            args = (rng.choice(names),)
        elif kind == "majority":
            chosen = rng.sample(names, daemons // 2 + 1)
            args = tuple(n for n in names if n in chosen)
        elif kind == "ring":
            args = tuple(rng.sample(names, daemons))
        elif kind == "cut":
            pairs: set[Link] = set()
            for _ in range(rng.randint(1, 3)):
                x, y = rng.sample(names, 2)
                pairs.add(link(x, y, names))
            args = tuple(d for pair in sorted(pairs) for d in pair)
        elif kind == "flap":
            args = (rng.choice(names), rng.randint(100, 800), rng.randint(300, 2500))
        elif kind == "flaplink":
            args = (a, b, rng.randint(100, 800), rng.randint(300, 2500))
        elif kind == "slow":
            args = (a, b, rng.choice((20, 60, 150, 400)), rng.randint(200, 2000))
        elif kind == "lossy":
            args = (a, b, rng.choice((0.2, 0.5, 0.9, 1.0)), rng.randint(200, 2000))
        elif kind == "swizzle":
            order = rng.sample(names, rng.randint(1, daemons - 1))
            args = (rng.randint(50, 400), *order)
        else:  # clock: mostly a drift the timers absorb, sometimes one they cannot
            rate = rng.choice((0.5, 0.8, 1.0, 1.25, 2.0, 0.2, 5.0))
            args = (rng.choice(names), rng.choice((0, 0, 50, 5000)), rate)
        plans.append(FaultPlan(at_ms=at, what=kind, args=args))
        if kind in CUT_SHAPES | CUT_LINKS and rng.random() < 0.5:
            heal_at = at + rng.randint(200, 1500)
            if heal_at < safety_ms:
                plans.append(FaultPlan(at_ms=heal_at, what="heal"))
    return merged_faults(tuple(plans))


def core_faults(seed: int, daemons: int, safety_ms: int) -> tuple[FaultPlan, ...]:
    """``--core``: a continuing-fault liveness run (TigerBeetle's VOPR liveness mode). A random
    majority of the daemons is the core: it stays connected from a start in [300, 800] ms to the
    end of the safety phase (a ``core`` fault, checked by L4), while the daemons outside it
    flap, crash, leave, pause, are isolated, swizzled or partitioned among themselves (every cut
    keeps the core on one side, so every cut is transitive). Stream ``core-faults-<seed>``."""
    rng = random.Random(f"core-faults-{seed}")
    names = daemon_names(daemons)
    core = sorted(rng.sample(names, daemons // 2 + 1), key=names.index)
    outside = [n for n in names if n not in core]
    start = min(rng.randint(300, 800), safety_ms // 2)
    plans = [FaultPlan(at_ms=start, what="core", args=(safety_ms - start, *core))]
    kinds = ("flap", "flap", "crash", "leave", "pause", "partition", "heal", "isolate", "swizzle")
    for _ in range(rng.randint(2, 6)):
        at = rng.randint(start, max(start, safety_ms - 100))
        kind = rng.choice(kinds)
        victim = rng.choice(outside)
        args: tuple[str | int | float, ...] = ()
        if kind == "flap":
            args = (victim, rng.randint(150, 1000), rng.randint(300, 2500))
        elif kind in ("crash", "leave"):
            args = (victim, rng.randint(100, 1200))
        elif kind == "pause":
            args = (victim, rng.randint(100, 600))
        elif kind == "partition":
            args = tuple(0 if n in core else rng.randrange(3) for n in names)
        elif kind == "isolate":
            args = (victim,)
        elif kind == "swizzle":
            order = rng.sample(outside, rng.randint(1, len(outside)))
            args = (rng.randint(50, 300), *order)
        plans.append(FaultPlan(at_ms=at, what=kind, args=args))
    return merged_faults(tuple(plans))
