"""The failure modes of early delivery (protocol/ordering.md section 8.1), each caught by a
checker when the rule that prevents it is taken out. Seeds 1 and 2 of the swarm (``--buggify``)
deliver UNRELIABLE, RELIABLE and FIFO messages early in views that also see joins and leaves,
and hold with every rule in place:

- without the hold of group operations, a member delivers an early message on the other side
  of a group view than the others do (``GV-VS``);
- with the survivors' early messages at the end of the cleanup's regular part instead of right
  after their anchors, a daemon that had not delivered one gets it after a group view the
  others got it before (``GV-VS``), or after its sender's later messages (``SVC-FIFO``);
- without ``Flush.delivered_seqs`` the cleanup places an early message at its gseq again, and
  the daemon that delivered it early delivers it twice (``EVS-1.2``);
- with every message marked early, also after its sender's messages that wait for the total
  order, a sender's messages arrive out of order (``SVC-FIFO``) or across a view (``GV-VS``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from groupcomm.core import viewchange
from groupcomm.core.epoch import Epoch
from groupcomm.core.frames import Msg
from sim.options import Draws, SimOptions, random_options
from sim.run import RunResult, run

SEEDS = (1, 2)


def options(seed: int) -> SimOptions:
    return random_options(seed, Draws(buggify=True))


def props(result: RunResult) -> set[str]:
    return {v.split()[0] for v in result.violations}


@pytest.mark.parametrize("seed", SEEDS)
def test_the_seeds_deliver_early_and_hold(seed: int) -> None:
    result = run(options(seed))
    assert result.ok, result.violations[:5]
    delivers = [json.loads(line) for line in result.trace_lines if '"deliver"' in line]
    early = [e for e in delivers if e.get("ev") == "deliver" and e.get("n") == 0]
    assert early and all(e["svc"] in ("UNRELIABLE", "RELIABLE", "FIFO") for e in early)


def _no_hold(self: Epoch, j: int) -> bool:
    return False


_regular = viewchange._regular


def _early_at_the_end(
    order: dict[int, tuple[str, int]],
    msgs: dict[tuple[str, int], Msg],
    early: set[tuple[str, int]],
    low: int,
    high: int,
) -> list[tuple[int, str, int, Msg]]:
    out = [e for e in _regular(order, msgs, set(), low, high) if (e[1], e[2]) not in early]
    out.extend((0, sender, seq, msgs[(sender, seq)]) for sender, seq in sorted(early))
    return out


def _no_report(self: Epoch) -> tuple[tuple[str, int], ...]:
    return ()


_stamp = Epoch.stamp


def _all_early(self: Epoch, msgs: list[Msg]) -> object:
    self.own_known_seq = self.next_seq + len(msgs)  # as if every earlier one were ordered
    return _stamp(self, msgs)


MUTANTS: list[tuple[str, object, str, Callable[..., object], set[str]]] = [
    ("no-hold", Epoch, "_op_held", _no_hold, {"GV-VS"}),
    ("early-at-the-end", viewchange, "_regular", _early_at_the_end, {"GV-VS", "SVC-FIFO"}),
    ("no-delivered-seqs", Epoch, "delivered_report", _no_report, {"EVS-1.2"}),
    ("all-early", Epoch, "stamp", _all_early, {"GV-VS", "SVC-FIFO"}),
]


@pytest.mark.parametrize(
    ("target", "name", "mutant", "caught_by"),
    [pytest.param(t, n, m, c, id=i) for i, t, n, m, c in MUTANTS],
)
def test_each_rule_is_needed(
    monkeypatch: pytest.MonkeyPatch,
    target: object,
    name: str,
    mutant: Callable[..., object],
    caught_by: set[str],
) -> None:
    monkeypatch.setattr(target, name, mutant)
    found: set[str] = set()
    for seed in SEEDS:
        found |= props(run(options(seed)))
    assert found & caught_by, sorted(found)
