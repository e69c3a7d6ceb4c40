"""CI's swarm: 200 random configurations (3-7 daemons, random faults and workloads) all pass.

1,000 seeds are run by hand: ``python -m sim swarm --seeds 0-999``."""

from __future__ import annotations

import io

from sim.swarm import default_jobs, parse_seeds, swarm


def test_parse_seeds() -> None:
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]


def test_two_hundred_seeds_pass() -> None:
    report = io.StringIO()
    code = swarm(parse_seeds("0-199"), default_jobs(), out=report)
    assert code == 0, report.getvalue()
    assert "200 seeds, 0 failed" in report.getvalue()
