"""The sweep's grid, its run order and its time estimate (nothing runs)."""

from __future__ import annotations

import pytest

from groupcomm.benchmark.sweepgrid import (
    NETNS_SETUP_S,
    SETUP_S,
    TPUT_DRAIN_S,
    WORST_EXTRA_S,
    Grid,
    describe,
    estimate_s,
)
from groupcomm.benchmark.workload import SERVICES


def test_default_grid_is_sizes_by_services_by_daemons_plus_a_baseline_per_size() -> None:
    grid = Grid()
    tput = grid.cells("tput")
    assert len(tput) == 4 * 2 * (len(SERVICES) + 1)
    zmq = [c for c in tput if c.system == "zmq"]
    assert {(c.work.size, c.nodes) for c in zmq} == {
        (s, n) for s in (100, 1000, 10_000, 100_000) for n in (3, 5)
    }
    assert all(c.work.mode == "all" and c.work.kind == "tput" for c in tput)
    flood = grid.cells("flood")
    assert [(c.work.size, c.nodes) for c in flood] == [
        (100, 3),
        (100, 5),
        (100_000, 3),
        (100_000, 5),
    ]
    assert all(c.work.mode == "one" and c.work.service == "agreed" for c in flood)
    assert grid.cells("lat") == []  # no --lat-sweep


def test_latency_sweep_is_ascending_with_the_baseline_next_to_each_rate() -> None:
    grid = Grid(lat_rates=(5000.0, 1000.0), parts=("lat",), runs=2)
    cells = grid.cells("lat")
    assert [(c.system, c.work.lat_rate) for c in cells] == [
        ("groupcomm", 1000.0),
        ("zmq", 1000.0),
        ("groupcomm", 5000.0),
        ("zmq", 5000.0),
    ]
    assert all(c.work.kind == "lat" and c.work.service == "agreed" for c in cells)
    order = grid.runs_in_order()
    assert [r for r, _ in order] == [0, 0, 0, 0, 1, 1, 1, 1]  # run 1 of every cell first


def test_restricting_the_grid() -> None:
    grid = Grid(sizes=(1000,), services=("safe",), daemons=(3,), baseline=False, parts=("tput",))
    cells = grid.cells("tput")
    assert [(c.system, c.work.size, c.work.service, c.nodes) for c in cells] == [
        ("groupcomm", 1000, "safe", 3)
    ]
    assert cells[0].work.batch == 100


def test_bad_parts_and_workloads_are_value_errors() -> None:
    with pytest.raises(ValueError):
        Grid().cells("nope")
    with pytest.raises(ValueError):
        Grid(sizes=(8,)).cells("tput")


def test_estimate_counts_duration_setup_and_drain() -> None:
    grid = Grid(
        sizes=(100,),
        services=("agreed",),
        daemons=(3,),
        runs=2,
        dur=7.0,
        drain=5.0,
        parts=("tput",),
    )
    order = grid.runs_in_order()
    assert len(order) == 4  # (baseline + AGREED) x 2 runs
    typical, worst = estimate_s(order, netns=False)
    assert typical == 4 * (7.0 + SETUP_S + TPUT_DRAIN_S)
    assert worst == 4 * (7.0 + SETUP_S + 5.0 + WORST_EXTRA_S)
    assert estimate_s(order, netns=True)[0] == typical + 4 * NETNS_SETUP_S
    assert "4 runs" in describe(order, netns=False).splitlines()[0]
