"""The fan-out benchmark's pure parts: the log lines, pacing, what a consumer counts, the
histogram, the aggregation into a record, the plan of runs and the report. No processes, no
servers, no timing assertions."""

from __future__ import annotations

import argparse
import re
from typing import Any

import pytest

from groupcomm.benchmark.fanout import command
from groupcomm.benchmark.fanout.aggregate import RunData, summarize
from groupcomm.benchmark.fanout.histogram import (
    LatencyHistogram,
    bucket_bounds,
    bucket_of,
)
from groupcomm.benchmark.fanout.loglines import (
    AccessLogGenerator,
    FrameMaker,
    mean_frame_bytes,
    publisher_lines,
)
from groupcomm.benchmark.fanout.pacing import Pacer
from groupcomm.benchmark.fanout.plan import (
    FanoutConfig,
    add_role_arguments,
    plan_from_args,
    role_plans,
)
from groupcomm.benchmark.fanout.report import table
from groupcomm.benchmark.fanout.resp import encode
from groupcomm.benchmark.fanout.runner import FanoutRun
from groupcomm.benchmark.fanout.tally import Catchup, ConsumerResult, ConsumerTally
from groupcomm.benchmark.workload import END_SEQ, HEADER

COMBINED = re.compile(
    r'^\S+ - - \[\d\d/Dec/2026:\d\d:\d\d:\d\d \+0000\] "(GET|POST|HEAD|PUT|DELETE) /\S* HTTP/1\.1"'
    r' \d{3} \d+ "[^"]*" "[^"]+" \d+\.\d{3}$'
)

# ----------------------------------------------------------------------------------- lines


def test_lines_are_deterministic_from_the_seed_and_differ_per_publisher() -> None:
    assert publisher_lines(7, 0, 200) == publisher_lines(7, 0, 200)
    assert publisher_lines(7, 0, 200) != publisher_lines(7, 1, 200)
    assert publisher_lines(7, 0, 200) != publisher_lines(8, 0, 200)
    assert AccessLogGenerator("x").lines(5) == AccessLogGenerator("x").lines(5)


def test_lines_look_like_combined_access_logs_of_about_250_bytes_per_frame() -> None:
    pool = publisher_lines(1, 0, 2000)
    for line in pool:
        text = line.decode("ascii")
        assert "\n" not in text
        assert COMBINED.match(text), text
    assert 235 <= mean_frame_bytes(pool) <= 270
    assert len(set(pool)) > 1900  # a pool of distinct lines, not one line repeated


def test_frames_carry_publisher_seq_and_send_time_and_cycle_the_pool() -> None:
    pool = [b"a", b"bb", b"ccc"]
    maker = FrameMaker(4, pool)
    frames = maker.frames(2, 3, 999)
    assert [HEADER.unpack_from(f) for f in frames] == [(4, 2, 999), (4, 3, 999), (4, 4, 999)]
    assert [f[HEADER.size :] for f in frames] == [b"ccc", b"a", b"bb"]
    assert HEADER.unpack_from(maker.end_marker(17)) == (4, END_SEQ, 17)
    with pytest.raises(ValueError):
        FrameMaker(0, [])


# ---------------------------------------------------------------------------------- pacing


def test_pacer_sends_what_is_due_up_to_a_batch() -> None:
    p = Pacer(start_ns=1_000_000_000, rate=1000.0, batch=10)  # a line per ms
    assert p.due(0, 999_999_999) == 0
    assert p.due(0, 1_000_000_000) == 1  # line 0 is due at the start
    assert p.due(1, 1_000_500_000) == 0
    assert p.wait_s(1, 1_000_500_000) == pytest.approx(0.0005)
    assert p.due(1, 1_003_000_000) == 3  # lines 1..3
    assert p.due(0, 2_000_000_000) == 10  # far behind: a batch at a time
    flood = Pacer(0, 0.0, 25)
    assert flood.due(10**9, 5) == 25
    assert flood.wait_s(10**9, 5) == 0.0


# ------------------------------------------------------------------------------- histogram


def test_buckets_cover_each_value_exactly_below_64_and_within_3_percent_above() -> None:
    for us in [*range(200), 1000, 4095, 4096, 123_456, 10**9]:
        low, high = bucket_bounds(bucket_of(us))
        assert low <= us < high
        if us >= 64:
            assert (high - low) / low <= 1 / 32
    assert [bucket_of(v) for v in (63, 64, 127, 128)] == [63, 64, 95, 96]


def test_histogram_quantiles_merge_and_json_round_trip() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    for us in range(1, 501):
        a.add(us * 1000)
    for us in range(501, 1001):
        b.add(us * 1000 + 999)
    a.merge(b)
    assert a.n == 1000
    for q, exact in ((0.5, 500), (0.9, 900), (0.99, 990)):
        got = a.quantile_us(q)
        assert got is not None and abs(got - exact) / exact < 0.035
    assert a.quantile_us(1.0) == pytest.approx(1000.999)
    samples = sorted(
        [us * 1000 for us in range(1, 501)] + [us * 1000 + 999 for us in range(501, 1001)]
    )
    fast = LatencyHistogram.from_sorted(samples)
    assert (fast.counts, fast.n, fast.sum_ns, fast.max_ns) == (a.counts, a.n, a.sum_ns, a.max_ns)
    assert LatencyHistogram.from_sorted([-5, 0, 999]).counts == {0: 3}
    back = LatencyHistogram.from_json(a.to_json())
    assert (back.n, back.max_ns, back.counts) == (a.n, a.max_ns, a.counts)
    assert LatencyHistogram().quantile_us(0.5) is None


# ----------------------------------------------------------------------------------- tally


def frame(pub: int, seq: int, sent: int) -> bytes:
    return HEADER.pack(pub, seq, sent) + b"line"


def test_tally_counts_window_gaps_duplicates_and_ends() -> None:
    t = ConsumerTally(w0=1000, w1=2000)
    t.deliver(frame(0, 0, 900), 1000)  # in the window, sent before it: no latency sample
    t.deliver(frame(0, 1, 1500), 1600)  # 100 ns
    t.deliver(frame(0, 3, 1600), 2100)  # seq 2 skipped; delivered after the window
    t.deliver(frame(0, 1, 1500), 2200)  # a duplicate
    t.deliver(frame(1, 0, 1100), 1200)
    assert t.deliver(frame(0, END_SEQ, 4), 2300) == -1
    assert (t.received, t.in_window, t.gaps, t.duplicates, t.unique) == (5, 3, 1, 1, 4)
    # in the window: seq 0 at 1000, seq 1 at 1600, publisher 1 at 1200 (not the duplicate)
    assert sorted(t.lat) == [100, 100, 500]  # sent at 1500, 1100, 1600 (not the duplicate)
    assert t.histogram().n == 3
    assert not t.complete(2)  # publisher 1 has not ended
    t.deliver(frame(1, END_SEQ, 1), 2400)
    assert t.complete(2)
    t.ends[1] = 2
    assert not t.complete(2)  # its second line is missing


def test_catchup_ends_at_the_first_line_delivered_within_the_lag() -> None:
    c = Catchup(lag_ns=500, resumed_ns=5000, received_at_resume=10)
    c.observe(4000, 6000, 11)  # backlog: 2000 ns late
    c.observe(5400, 6100, 12)  # sent after the resume, still 700 ns late
    c.observe(5800, 6200, 13)  # 400 ns: caught up
    c.observe(6299, 6300, 14)
    assert (c.caught_up_ns, c.backlog) == (6200, 2)


# ------------------------------------------------------------------------------- aggregate


def consumer_doc(
    cid: int, node: int, in_window: int, unique: int, lat_us: list[int]
) -> dict[str, Any]:
    t = ConsumerTally(0, 1)
    t.lat.extend(us * 1000 for us in lat_us)
    doc = ConsumerResult(cid, "x", node, t).to_json()
    doc.update(in_window=in_window, unique=unique, received=unique)
    return doc


def test_summarize_takes_the_slowest_consumer_pooled_latency_and_worst_loss() -> None:
    cfg = FanoutConfig(rate=3000, publishers=2, consumers=3, dur=12, warm=2)
    pubs = [
        {"role": "publisher", "id": k, "sent": 50, "in_window": 40, "err": None} for k in (0, 1)
    ]
    subs = [
        consumer_doc(0, 0, 1000, 100, [10] * 98 + [1000, 2000]),
        consumer_doc(1, 1, 900, 99, [20] * 100),
        consumer_doc(2, 2, 950, 100, [30] * 100),
    ]
    cpu = {"c0": 10.0, "d1": 5.0}
    r = summarize(
        RunData("groupcomm", "agreed", cfg, pubs, subs, cpu_pct=cpu, server_labels=["d1"])
    )
    assert r["deliver_rate_min"] == 90  # 900 lines in a 10 s window
    assert r["slowest_consumer"] == {"id": 1, "node": 1}
    assert r["deliver_rate_mean"] == 95
    assert r["send_rate"] == 8
    assert r["sent_total"] == 100
    assert r["loss"] == pytest.approx(0.01)
    assert r["lat_n"] == 300
    assert r["p50_ms"] == pytest.approx(0.0205, abs=0.001)  # the middle of the 20 µs bucket
    assert r["max_ms"] == pytest.approx(2.0)
    assert set(r["p99_ms_by_node"]) == {"h1", "h2", "h3"}
    # 5 % of a CPU for 10 s, per line fanned out (2,850 / 3 consumers): 526 µs
    assert r["server_us_per_line"] == pytest.approx(526.3)
    assert r["job_cpu_pct"] == 15.0  # what is known: d1 and c0

    assert r["part"] == "fanout" and r["mode"] == "paced" and r["offered_rate"] == 3000
    assert not r["ok"] and any("loss" in p for p in r["problems"])


def test_summarize_leaves_the_away_consumer_out_and_reports_its_catchup() -> None:
    cfg = FanoutConfig(rate=0, publishers=1, consumers=2, dur=11, warm=1)
    pubs = [{"role": "publisher", "id": 0, "sent": 100, "in_window": 100, "err": None}]
    live = consumer_doc(0, 0, 500, 100, [5] * 10)
    away = consumer_doc(1, 1, 10, 100, [99_000] * 10)
    away["catchup"] = {
        "left_ns": 1_000_000_000,
        "resumed_ns": 61_000_000_000,
        "caught_up_ns": 63_500_000_000,
        "backlog": 50_000,
        "received_at_resume": 10,
        "position": "1-0",
    }
    r = summarize(RunData("redis-streams", "", cfg, pubs, [live, away]))
    assert r["part"] == "catchup" and r["mode"] == "flood" and r["offered_rate"] is None
    assert r["deliver_rate_min"] == 50 and r["lat_n"] == 10
    c = r["catchup"]
    assert (c["away_s"], c["catchup_s"], c["backlog_lines"]) == (60.0, 2.5, 50_000)
    assert c["catchup_lines_per_s"] == 20_000 and c["caught_up"] and c["loss"] == 0
    assert r["ok"], r["problems"]


def test_summarize_reports_member_errors_and_missing_results() -> None:
    cfg = FanoutConfig(publishers=1, consumers=2)
    pubs = [{"role": "publisher", "id": 0, "sent": 0, "in_window": 0, "err": "boom"}]
    r = summarize(RunData("redis-pubsub", "", cfg, pubs, []))
    assert r["deliver_rate_min"] is None and r["p50_ms"] is None
    assert r["problems"][:2] == ["publisher 0: boom", "2 consumer(s) wrote no result"]


# ------------------------------------------------------------------------------------ plan


def test_role_plans_spread_consumers_and_send_only_the_last_one_away() -> None:
    cfg = FanoutConfig(consumers=30, publishers=3, daemons=3)
    plans = role_plans(cfg, "/w", "fifo", away=(5.0, 60.0))
    pubs = [p for p in plans if p.role == "pub"]
    subs = [p for p in plans if p.role == "sub"]
    assert [p.node for p in pubs] == [0, 1, 2]
    assert all(p.rate == pytest.approx(10_000 / 3) for p in pubs)
    assert [sum(1 for s in subs if s.node == n) for n in range(3)] == [10, 10, 10]
    assert [(s.id, s.away_for) for s in subs if s.away_at] == [(29, 60.0)]
    assert {p.member_id for p in plans} == {0, 1, 2, *range(1000, 1030)}
    parser = argparse.ArgumentParser()
    add_role_arguments(parser)
    assert plan_from_args(parser.parse_args(subs[-1].to_argv())) == subs[-1]


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        FanoutConfig(rate=-1)
    with pytest.raises(ValueError):
        FanoutConfig(warm=20, dur=10)
    assert FanoutConfig(rate=0).flood


def test_catchup_part_skips_pubsub_only() -> None:
    args = command.parser().parse_args(["--catchup", "--away", "30"])
    cfg = command.config_of(args)
    runs = command.plan_runs(args, cfg)
    fanout = [r for r in runs if isinstance(r, FanoutRun) and not r.away[1]]
    assert [r.system for r in fanout] == ["groupcomm", "redis-pubsub", "redis-streams"]
    skips = {r["system"]: r["skipped"] for r in runs if isinstance(r, dict)}
    assert list(skips) == ["redis-pubsub"] and "pub/sub" in skips["redis-pubsub"]
    catchups = [r for r in runs if isinstance(r, FanoutRun) and r.away[1]]
    assert [r.system for r in catchups] == ["groupcomm", "redis-streams"]
    assert all(r.away == (5.0, 30.0) for r in catchups)
    assert catchups[1].cfg.dur == 5 + 30 + 20 and catchups[1].cfg.drain == 20


# ---------------------------------------------------------------------------- report, resp


def test_table_shows_both_parts_and_what_was_skipped() -> None:
    cfg = FanoutConfig(publishers=1, consumers=1)
    pubs = [{"role": "publisher", "id": 0, "sent": 10, "in_window": 10, "err": None}]
    rec = summarize(RunData("redis-pubsub", "", cfg, pubs, [consumer_doc(0, 0, 10, 10, [3])]))
    text = table([rec, {"part": "catchup", "system": "groupcomm", "skipped": "no replay"}])
    assert "redis-pubsub" in text and "slowest/s" in text
    assert "groupcomm catchup: skipped: no replay" in text


def test_resp_encoding() -> None:
    assert encode((b"PUBLISH", "ch", 12)) == b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\n12\r\n"
