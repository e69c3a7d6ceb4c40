"""What a receiver counts (``Recorder``) and the result file a member writes."""

from __future__ import annotations

import json
from pathlib import Path

from groupcomm.benchmark.recorder import MemberReport, Recorder, read_keys
from groupcomm.benchmark.workload import END_SEQ, HEADER, padding


def msg(sender: int, seq: int, sent: int, size: int = 100) -> bytes:
    return HEADER.pack(sender, seq, sent) + padding(size)


def test_window_counting_and_latency_of_messages_sent_in_the_window() -> None:
    rec = Recorder(w0=1000, w1=2000)
    assert rec.deliver(msg(1, 0, 900), 1000) == 1 << 32  # delivered in, sent before: no sample
    rec.deliver(msg(1, 1, 1500), 1600)  # in, sent in: 100 ns
    rec.deliver(msg(2, 0, 1990), 2000)  # delivered at w1 (excluded), sent in: 10 ns
    rec.deliver(msg(2, 1, 100), 999)  # delivered before the window
    assert rec.received == 4
    assert rec.in_window == 2
    assert list(rec.lat) == [100, 10]
    assert list(rec.keys) == [1 << 32, 1 << 32 | 1, 2 << 32, 2 << 32 | 1]


def test_latency_stride_samples_every_nth_sequence_number() -> None:
    rec = Recorder(w0=0, w1=10**9, stride=4)
    for seq in range(10):
        rec.deliver(msg(0, seq, 100), 150)
    assert len(rec.lat) == 3  # seq 0, 4, 8


def test_end_markers_complete_the_stream() -> None:
    rec = Recorder(w0=0, w1=100)
    rec.deliver(msg(1, 0, 10), 20)
    assert rec.deliver(msg(1, END_SEQ, 2), 30) == -1  # sender 1 sent 2 data messages
    assert not rec.complete(senders=1)  # one still missing
    rec.deliver(msg(1, 1, 10), 40)
    assert rec.complete(senders=1)
    assert not rec.complete(senders=2)
    assert rec.received == 2  # the marker is not data


def test_report_round_trip(tmp_path: Path) -> None:
    report = MemberReport(3, "groupcomm", send=True, recv=True)
    report.recorder = Recorder(0, 100)
    report.recorder.deliver(msg(3, 0, 10), 20)
    report.recorder.deliver(msg(3, END_SEQ, 1), 30)
    report.sender.sent, report.sender.in_window = 1, 1
    out = tmp_path / "m3.json"
    report.write(str(out))
    doc = json.loads(out.read_text())
    assert doc["received"] == 1 and doc["received_win"] == 1
    assert doc["sent"] == 1 and doc["ends"] == {"3": 1}
    assert doc["lat_ns"] == [10]
    assert list(read_keys(doc["keys_file"])) == [3 << 32]
