"""Group logs, replay cursors and the disk store (protocol/retention.md; RET-POS, RET-SEAM,
RET-GAP), without a daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from groupcomm.core.commands import RECORD, DeliverMessage
from groupcomm.core.ids import parse_position
from groupcomm.daemon.replay import Gap, ReplayCursor
from groupcomm.daemon.retention import RESTART, Retention, conf_epoch
from groupcomm.daemon.segments import SegmentStore, group_dir_name
from groupcomm.retainconfig import RetainConfigError, RetainRule, parse_retention
from tests.client.harness import ListLog


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def record(
    conf: str, n: int, payload: bytes = b"x" * 10, groups: tuple[str, ...] = ("logs",)
) -> DeliverMessage:
    return DeliverMessage(
        RECORD, "#p#d1", groups, 0x10, 0, payload, f"d1:1|{conf[1:]}|{n}", conf, n
    )


def retention(*rules: RetainRule, store: SegmentStore | None = None) -> Retention:
    return Retention(rules or (RetainRule("logs*", max_bytes=1000),), Clock(), store)


def replay_all(cursor: ReplayCursor) -> list[DeliverMessage | Gap]:
    out: list[DeliverMessage | Gap] = []
    while (step := cursor.step()) is not None:
        out.append(step)
    return out


def test_positions_parse_and_name_the_ordering_epoch() -> None:
    assert parse_position("R5.d1:3#12#d1:3|5.d1:3|7") == ("R5.d1:3", 12, "d1:3|5.d1:3|7")
    for bad in ("", "R5#x#m", "R5#1", "a#1#b#c", "#1#m"):
        with pytest.raises(ValueError, match="not a position"):
            parse_position(bad)
    assert conf_epoch("R5.d1:3") == 5
    assert conf_epoch("T6.d2:1<5.d1:3") == 5  # a transitional one delivers the old view's


def test_record_keeps_only_retained_groups_once_each() -> None:
    r = retention()
    r.record(record("R1.d1", 1, groups=("logs", "other", "logs2")))
    r.record(record("R1.d1", 2, groups=("other",)))
    assert sorted(r.logs) == ["logs", "logs2"]
    assert [e.n for e in r.logs["logs"].entries] == [1]


def test_eviction_by_bytes_and_age_keeps_indexes() -> None:
    clock = Clock()
    r = Retention((RetainRule("logs", max_bytes=35, max_age_s=10),), clock)
    for n in range(1, 6):
        r.record(record("R1.d1", n))
    log = r.logs["logs"]
    assert [e.at for e in log.entries] == [3, 4, 5] and log.first_index == 3
    clock.ms += 11_000
    r.record(record("R1.d1", 6))
    assert [e.at for e in log.entries] == [6]
    clock.ms += 11_000
    r.expire()
    assert not log.entries and log.next_index == 7


def test_replay_after_a_position_is_exact_and_stops_at_the_join() -> None:
    r = retention()
    for n in range(1, 8):
        r.record(record("R1.d1", n))
    log = r.logs["logs"]
    third = log.get(3)
    assert third is not None
    start = log.locate(third.position())
    cursor = ReplayCursor("#c#d1", log, start.start, start.gap, third.position())
    r.record(record("R1.d1", 8))  # after the join: the live stream's, not the replay's
    got = replay_all(cursor)
    assert [m.n for m in got if isinstance(m, DeliverMessage)] == [4, 5, 6, 7]
    assert all(isinstance(m, DeliverMessage) and m.conn == "#c#d1" for m in got)


def test_positions_among_early_messages() -> None:
    """Messages delivered early (n = 0, protocol/ordering.md section 8.1) sit between ordered
    ones: a position resumes right after the message it names, either kind, and none of the
    early ones after it is skipped (the bisection is on ordinals, not on n). Fails with a
    bisection on n: the run's ns are not sorted."""
    r = retention(RetainRule("logs*", max_bytes=10_000))
    early: list[DeliverMessage] = []
    for n in range(1, 7):
        r.record(record("R1.d1", n))
        m = DeliverMessage(RECORD, "#p#d2", ("logs",), 0x04, 0, b"e", f"d2:1|1.d1|{n}", "R1.d1", 0)
        early.append(m)
        r.record(m)
    log = r.logs["logs"]
    for index in range(1, 13):
        entry = log.get(index)
        assert entry is not None
        start = log.locate(entry.position())
        assert (start.start, start.gap) == (index + 1, ""), (index, entry.position(), start)
    gone = "R1.d1#0#d2:1|1.d1|99"  # an early message not here: reported, never guessed
    assert log.locate(gone).gap == "unknown position"


def test_an_evicted_early_position_replays_the_rest_of_its_configuration() -> None:
    """RET-GAP: an early message (n = 0) evicted from the log is found neither by mid nor by
    ordinal; its configuration's retained rest is replayed after a "not retained" gap, not
    skipped as an unknown position (the configuration is in this daemon's history)."""
    r = Retention((RetainRule("logs", max_bytes=30),), Clock())
    early = "d2:1|5.d1|1"
    r.record(DeliverMessage(RECORD, "#p#d2", ("logs",), 0x04, 0, b"e" * 10, early, "R5.d1", 0))
    for conf, n in (("R5.d1", 7), ("R5.d1", 8), ("R6.d1", 2)):
        r.record(record(conf, n))
    log = r.logs["logs"]
    assert [e.n for e in log.entries] == [7, 8, 2]  # the early message was evicted
    start = log.locate(f"R5.d1#0#{early}")
    assert (start.start, start.gap) == (log.first_index, "not retained")
    got = replay_all(ReplayCursor("#c#d1", log, start.start, start.gap, f"R5.d1#0#{early}"))
    assert isinstance(got[0], Gap) and got[0].reason == "not retained"
    assert [(m.conf, m.n) for m in got[1:] if isinstance(m, DeliverMessage)] == [
        ("R5.d1", 7),
        ("R5.d1", 8),
        ("R6.d1", 2),
    ]


def test_positions_with_other_unicode_digits_are_refused_or_unknown() -> None:
    """``"²".isdigit()`` is True and ``int("²")`` raises: a join's ``since`` made of such
    characters once raised ValueError out of the session layer at the join view, stopping the
    daemon. Now parse_position refuses it, or locate finds nothing (an unknown position)."""
    with pytest.raises(ValueError):
        parse_position("R1.d1#\u00b2#d1:1|1.d1|2")
    r = retention()
    for n in (1, 2):
        r.record(record("R1.d1", n))
    log = r.logs["logs"]
    for since in ("R\u00b2#1#x", "R1.a#5#a|\u00b2|1", "T\u00b2.d1<\u00b2.d1#1#a|\u00b2.d1|1"):
        assert log.locate(since).gap == "unknown position", since
    assert conf_epoch("R\u00b2.d1") == -1


def test_replay_by_mid_when_the_configuration_differs() -> None:
    """EVS-1.4: another daemon delivered it in the transitional configuration; the mid finds
    it anyway."""
    r = retention()
    r.record(record("R1.d1", 1))
    mid = "d1:1|1.d1|2"
    r.record(DeliverMessage(RECORD, "#p#d1", ("logs",), 0x10, 0, b"m", mid, "T2.d1<1.d1", 1))
    r.record(record("R2.d1", 1))
    log = r.logs["logs"]
    start = log.locate(f"R1.d1#2#{mid}")
    assert start.gap == "" and start.start == 3


def test_too_old_a_position_is_a_gap_naming_the_range() -> None:
    r = Retention((RetainRule("logs", max_bytes=20),), Clock())
    for n in range(1, 6):
        r.record(record("R3.d1", n))
    log = r.logs["logs"]
    old = "R2.d1#9#d1:1|2.d1|9"
    start = log.locate(old)
    assert start.gap == "not retained"
    cursor = ReplayCursor("#c#d1", log, start.start, start.gap, old)
    got = replay_all(cursor)
    gap = got[0]
    assert isinstance(gap, Gap) and gap.reason == "not retained"
    assert gap.after == old and gap.before == log.entries[0].position()
    assert [m.n for m in got[1:] if isinstance(m, DeliverMessage)] == [4, 5]


def test_an_unknown_position_resumes_after_its_epoch() -> None:
    r = retention()
    for conf, n in (("R3.d1", 1), ("R3.d1", 2), ("R7.d1", 1), ("R7.d1", 2)):
        r.record(record(conf, n))
    log = r.logs["logs"]
    start = log.locate("R5.d9#4#d9:1|5.d9|4")  # the other side of a partition, epoch 5
    assert start.gap == "unknown position" and log.get(start.start) == log.entries[2]


def test_eviction_under_a_running_replay_is_a_counted_gap() -> None:
    r = Retention((RetainRule("logs", max_bytes=30),), Clock())
    for n in range(1, 4):
        r.record(record("R1.d1", n))
    log = r.logs["logs"]
    cursor = ReplayCursor("#c#d1", log, log.first_index, "", "", from_position=False)
    first = cursor.step()
    assert isinstance(first, DeliverMessage) and first.n == 1
    for n in range(4, 7):
        r.record(record("R1.d1", n))  # evicts 2..3 before the cursor reads them
    gap = cursor.step()
    assert isinstance(gap, Gap) and gap.reason == "not retained" and gap.count == 2
    assert cursor.step() is None  # 4.. came after the join: the live stream's


def test_segments_survive_a_restart_and_mark_it(tmp_path: Path) -> None:
    rule = RetainRule("logs", max_bytes=10_000, store="disk")
    log_lines = ListLog()
    store = SegmentStore(str(tmp_path), "turn", log_lines)
    r = Retention((rule,), Clock(), store)
    for n in range(1, 4):
        r.record(record("R1.d1", n, payload=b"line %d" % n))
    r.flush()
    assert store.counters["fsyncs"] == 1
    # A record cut short by a crash while writing: dropped and the segment truncated.
    seg = next((tmp_path / group_dir_name("logs")).glob("*.seg"))
    with open(seg, "ab") as f:
        f.write(b"\x00\x00\x01\x00partial")
    store2 = SegmentStore(str(tmp_path), "never", log_lines)
    r2 = Retention((rule,), Clock(), store2)
    store2.load_into(r2)
    log = r2.logs["logs"]
    assert [e.payload for e in log.entries] == [b"line 1", b"line 2", b"line 3"]
    assert any(e == "retention_segment_truncated" for _, e, _ in log_lines.records)
    assert any(e == "retention_loaded" for _, e, _ in log_lines.records)
    r2.record(record("R9.d1", 1, payload=b"after"))
    assert log.entries[-1].mark == RESTART and log.entries[-1].at == 4
    # A replay from before the restart reports it before the first message after it.
    second = log.get(2)
    assert second is not None
    cursor = ReplayCursor("#c#d1", log, 3, "", second.position())
    got = replay_all(cursor)
    assert [type(x).__name__ for x in got] == ["DeliverMessage", "Gap", "DeliverMessage"]
    gap = got[1]
    assert isinstance(gap, Gap) and gap.reason == RESTART


def test_retain_rules_are_validated(tmp_path: Path) -> None:
    ok = parse_retention(
        {"retain": [{"groups": "logs.*", "max_bytes": 100, "store": "disk"}],
         "retention": {"dir": "spool"}},
        tmp_path,
    )  # fmt: skip
    assert ok.enabled and ok.dir == str(tmp_path / "spool")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"retain": {"groups": "x"}}, "array of tables"),
        ({"retain": [{"groups": "x"}]}, "max_bytes and/or max_age_s"),
        ({"retain": [{"groups": "x", "max_bytes": -1}]}, "max_bytes must be"),
        ({"retain": [{"groups": "x", "max_age_s": True}]}, "max_age_s must be"),
        ({"retain": [{"groups": "x", "max_bytes": 1, "store": "tape"}]}, "store must be"),
        ({"retain": [{"groups": "x", "max_bytes": 1, "size": 1}]}, "unknown key 'size'"),
        ({"retain": [{"groups": "x", "max_bytes": 1, "store": "disk"}]}, "dir is required"),
        ({"retention": {"fsync": "always"}}, "fsync must be"),
    ]
    for raw, message in bad:
        with pytest.raises(RetainConfigError, match=message):
            parse_retention(raw, tmp_path)
