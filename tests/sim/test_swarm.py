"""CI's swarm: 200 random configurations (3-7 daemons, random faults and workloads) all pass,
and 60 more with BUGGIFY's randomised settings in half of them (the swarm's default).

1,000 seeds are run by hand: ``python -m sim swarm --seeds 0-999`` (BUGGIFY in half the seeds;
``--no-buggify`` for plain seeds only)."""

from __future__ import annotations

import io

from sim.options import Draws
from sim.swarm import default_jobs, parse_seeds, swarm


def test_parse_seeds() -> None:
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]


def test_two_hundred_seeds_pass() -> None:
    report = io.StringIO()
    code = swarm(parse_seeds("0-199"), default_jobs(), out=report)
    assert code == 0, report.getvalue()
    assert "200 seeds, 0 failed" in report.getvalue()


def test_sixty_seeds_with_buggify_pass() -> None:
    """The swarm's default mode: BUGGIFY's settings in half the seeds (1,000 by hand:
    ``python -m sim swarm --seeds 0-999``, clean on 2026-12-05)."""
    report = io.StringIO()
    code = swarm(parse_seeds("0-59"), default_jobs(), out=report, draws=Draws(buggify=True))
    assert code == 0, report.getvalue()
    assert "60 seeds (--buggify), 0 failed" in report.getvalue()
