"""``Warnings``: one line per key per interval with the count suppressed meanwhile; a burst
limit per event over all keys; a bounded number of keys."""

from __future__ import annotations

from groupcomm.daemon.ratelimit import Warnings
from tests.client.harness import ListLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(log: ListLog, event: str) -> list[dict[str, object]]:
    return [kw for level, ev, kw in log.records if ev == event and level == "warning"]


def test_one_line_per_key_per_interval_with_a_count() -> None:
    log, clock = ListLog(), Clock()
    w = Warnings(log, clock, interval_s=10.0)
    for _ in range(50):
        w.warning(1, "client_malformed", link=1)
    w.warning(2, "client_malformed", link=2)
    assert lines(log, "client_malformed") == [
        {"link": 1, "suppressed": 0},
        {"link": 2, "suppressed": 0},
    ]
    clock.now = 10.0
    assert w.warning(1, "client_malformed", link=1)
    assert lines(log, "client_malformed")[-1] == {"link": 1, "suppressed": 49}
    w.forget(2)
    assert w.warning(2, "client_malformed", link=2)  # a new link with a recycled id


def test_many_keys_share_a_burst_per_event() -> None:
    log, clock = ListLog(), Clock()
    w = Warnings(log, clock, interval_s=10.0, burst=3)
    for link in range(100):  # connect, send garbage, disconnect, again
        w.warning(link, "client_bad_stream", link=link)
        w.forget(link)
    assert len(lines(log, "client_bad_stream")) == 3
    w.warning("other", "client_not_reading")  # another event has its own burst
    assert len(lines(log, "client_not_reading")) == 1
    clock.now = 10.0
    w.warning(1000, "client_bad_stream", link=1000)
    assert lines(log, "client_bad_stream")[-1] == {
        "link": 1000,
        "suppressed": 0,
        "suppressed_all": 97,
    }


def test_keys_are_bounded() -> None:
    w = Warnings(ListLog(), Clock(), burst=10**9, max_keys=100)
    for key in range(1000):
        w.warning(key, "e")
    assert len(w._keys) == 100
