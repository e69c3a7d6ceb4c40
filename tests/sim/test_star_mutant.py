"""The failure mode star views brought, caught by a checker: a member that learns stability from
the coordinator must report the ordering acks it implies in its Flush (``Epoch.ack_report``).
Without that (a mutant reporting the bare ``ack_ord``), swarm seed 119 in ``--star`` mode fails
EVS-7.1: a SAFE message the coordinator delivered in its regular view is never delivered by a
member cut off with it (protocol/membership.md section 9, F2' and F3')."""

from __future__ import annotations

import pytest

from groupcomm.core.epoch import Epoch
from sim.options import Draws, random_options
from sim.run import run

SEED_119 = random_options(119, Draws(buggify=True, star=True))


def test_seed_119_in_star_mode_holds() -> None:
    assert SEED_119.star_members == 2
    result = run(SEED_119)
    assert result.ok, result.violations[:5]


def test_without_the_implied_acks_evs_7_1_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def bare(self: Epoch) -> tuple[tuple[str, int], ...]:
        return tuple(sorted(self.ack_ord.items()))

    monkeypatch.setattr(Epoch, "ack_report", bare)
    result = run(SEED_119)
    assert not result.ok
    assert any(v.startswith("EVS-7.1") for v in result.violations), result.violations[:5]
