"""The sweep's markdown tables, latency knee and memory bound, from synthetic records."""

from __future__ import annotations

from groupcomm.benchmark.sweepreport import (
    MIB,
    LatPoint,
    flood_table,
    knee,
    lat_points,
    lat_table,
    memory_bound_bytes,
    normalize,
    problems,
    render,
    sessions_per_daemon,
    spread,
    tput_tables,
    wire_table,
)
from groupcomm.benchmark.workload import Workload
from tests.benchmark.support_sweep import lat_records, rec


def test_spread_is_median_and_range_of_numbers_only() -> None:
    s = spread([3, 1, 2, None, "x", True])
    assert s is not None and (s.median, s.low, s.high, s.n) == (2, 1, 3, 3)
    assert str(s) == "2 (1-3)"
    assert str(spread([18_158.4, 12_858, 22_508])) == "18,158 (12,858-22,508)"
    assert str(spread([5.0])) == "5"
    assert spread([None]) is None


def test_throughput_tables_put_the_baseline_first_and_mark_failed_runs() -> None:
    records = [
        rec("tput", "zmq", deliver_rate_min=400_000, mbytes_per_s=40.0),
        rec("tput", "groupcomm", deliver_rate_min=20_000, mbytes_per_s=2.0),
        rec("tput", "groupcomm", deliver_rate_min=10_000, mbytes_per_s=1.0, run=1, ok=False),
        rec("tput", "groupcomm", service="safe", deliver_rate_min=8_000, nodes=5),
    ]
    text = tput_tables(records)
    lines = text.splitlines()
    assert "| size (B) | service | 3 daemons | 5 daemons |" in lines
    rows = [line for line in lines if line.startswith("| 100 |")]
    assert rows[0].startswith("| 100 | zmq baseline | 400,000 |")
    assert "| 100 | AGREED | 15,000 (10,000-20,000) [1/2 ok] |" in rows[1]
    assert "| 100 | SAFE |  | 8,000 |" in rows[2]
    assert "| 100 | AGREED | 1.5 (3.8 %) |" in text  # 15,000 / 400,000 of the baseline
    assert tput_tables([rec("lat", "zmq")]) == ""


def test_latency_knee_is_the_first_failing_rate() -> None:
    points = lat_points(lat_records())
    assert [p.rate for p in points["groupcomm"]] == [1000.0, 5000.0, 10_000.0]
    assert [p.failing for p in points["groupcomm"]] == [False, False, True]
    assert knee(points["groupcomm"]) == 10_000.0
    assert knee(points["zmq"]) is None
    slow = LatPoint(2000.0, 1.0, 2.0, delivered=1800.0, ok=1, runs=1)  # below 95 % of the offer
    assert slow.failing
    text = lat_table(points)
    assert "groupcomm at 10,000 msg/s" in text and "zmq none in range" in text
    assert "| 10,000 | 900,000 | 1,000 | 7,000 [0/1 ok] | 150 |" in text


def test_memory_bound_per_daemon() -> None:
    assert sessions_per_daemon(Workload(mode="one", daemons=3)) == [2, 1, 1]
    assert sessions_per_daemon(Workload(mode="all", daemons=3)) == [1, 1, 1]
    # 3 daemons x 1 MiB + 2 sessions x (1 MiB + 8 MiB)
    assert memory_bound_bytes(3, 2, MIB, MIB, 8 * MIB) == 21 * MIB
    text = flood_table(
        [rec("flood", "groupcomm", send_rate=50_000, deliver_rate_min=49_000)], MIB, MIB, 8 * MIB
    )
    assert "| 3 | 100 | 50,000 | 49,000 | 0.98 | 60 / 41 | 21 / 12 | 1/1 |" in text


def test_render_has_every_part_and_lists_problems() -> None:
    records = [
        rec("tput", "groupcomm"),
        *lat_records(),
        rec("flood", "groupcomm"),
        rec("tput", "groupcomm", run=1, ok=False, problems=["loss 0.1"]),
    ]
    text = render(records, ["### Sweep"], MIB, MIB, 8 * MIB)
    assert text.startswith("### Sweep")
    for needle in ("Throughput, all-to-all", "Latency vs offered load", "Overload", "loss 0.1"):
        assert needle in text, needle
    assert "- tput groupcomm 100 B AGREED, 3 daemons, run 2: loss 0.1" in problems(records)


def test_plain_bench_records_get_a_part_and_nodes() -> None:
    bench = {"kind": "tput", "mode": "one", "system": "zmq", "daemons": 0, "members": 4}
    assert (normalize(bench)["part"], normalize(bench)["nodes"]) == ("flood", 3)
    lat = {"kind": "lat", "mode": "all", "system": "groupcomm", "daemons": 5, "members": 5}
    assert (normalize(lat)["part"], normalize(lat)["nodes"]) == ("lat", 5)
    assert normalize({"part": "tput", "nodes": 3, "kind": "lat"})["part"] == "tput"


def test_two_data_planes_get_rows_of_their_own() -> None:
    records = [
        rec("tput", "groupcomm", transport="tcp", deliver_rate_min=50_000),
        rec("tput", "groupcomm", transport="epgm", deliver_rate_min=70_000),
        rec("flood", "groupcomm", transport="epgm"),
        rec("flood", "groupcomm", transport="tcp"),
    ]
    text = tput_tables(records)
    assert "| 100 | AGREED (epgm) | 70,000 |" in text and "| 100 | AGREED (tcp) | 50,000 |" in text
    flood = flood_table(records, MIB, MIB, 8 * MIB)
    assert "| 3 (epgm) | 100 |" in flood and "| 3 (tcp) | 100 |" in flood
    assert "(tcp)" not in tput_tables(records[:1])  # one data plane: no label


def test_wire_table_only_with_lan_runs() -> None:
    lan = rec(
        "tput",
        "groupcomm",
        wire_out_bytes_per_msg=[240.0, 230.0, None],
        wire_total_bytes_per_delivered_msg=236.0,
    )
    assert "| 100 | AGREED | 235 / 236 |" in wire_table([lan])
    assert wire_table([rec("tput", "groupcomm", wire_out_bytes_per_msg=None)]) == ""


def test_render_takes_more_latency_curves_with_their_note() -> None:
    cpg = [LatPoint(1000.0, 290.0, 3600.0, delivered=1000.0, ok=3, runs=3)]
    text = render([rec("tput", "groupcomm")], ["### Sweep"], MIB, MIB, 8 * MIB, {"cpg": cpg}, "N")
    assert "| offered msg/s | cpg p50 µs | cpg p99 µs | cpg delivered/s |" in text
    assert "| 1,000 | 290 | 3,600 | 1,000 |" in text and "cpg none in range" in text
    assert text.endswith("| 1,000 | 290 | 3,600 | 1,000 |\n\nN\n")  # the note after the table
    assert "\n\nN" not in render([rec("tput", "groupcomm")], ["h"], MIB, MIB, 8 * MIB, None, "N")
