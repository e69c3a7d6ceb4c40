"""Wire bytes per message per daemon host, from two counter samples (no LAN needed)."""

from __future__ import annotations

from groupcomm.benchmark.wirecost import (
    HostBytes,
    WireSample,
    no_wire_cost,
    originated_by_host,
    wire_cost,
)


def sample(t: float, *hosts: tuple[int, int, int, int]) -> WireSample:
    """hosts: (link tx, mcast, tcp, udp) bytes so far."""
    return WireSample(
        t, tuple(HostBytes(link, {"mcast": m, "tcp": tcp, "udp": u}) for link, m, tcp, u in hosts)
    )


def test_all_mode_divides_by_what_each_host_originated() -> None:
    first = sample(10.0, (0, 0, 0, 0), (0, 0, 0, 0))
    # the window is 2 s and so is the span: no scaling
    last = sample(12.0, (26_000, 12_000, 12_000, 1_000), (10_000, 0, 9_000, 0))
    r = wire_cost(first, last, ("d1", "d2"), [100, 50], delivered=150, window_s=2.0)
    d1, d2 = r["wire_per_daemon"]["d1"], r["wire_per_daemon"]["d2"]
    assert d1["per"] == "sent" and d1["bytes_per_sent_msg"] == 250.0
    assert (d1["mcast"], d1["tcp"], d1["udp"], d1["other"]) == (120.0, 120.0, 10.0, 0.0)
    assert d2["bytes_per_sent_msg"] == 180.0 and d2["tcp"] == 180.0
    assert r["wire_out_bytes_per_msg"] == [250.0, 180.0]
    assert r["wire_total_bytes_per_delivered_msg"] == round(34_000 / 150, 1)
    assert r["wire_bytes_per_msg"] == round(36_000 / 150, 1)  # link layer, per message offered
    assert r["wire_span_s"] == 2.0


def test_hosts_that_originate_nothing_are_per_delivered_message() -> None:
    first = sample(0.0, (0, 0, 0, 0), (0, 0, 0, 0))
    last = sample(1.0, (0, 1_000, 100, 0), (0, 0, 50, 0))
    r = wire_cost(first, last, ("d1", "d2"), [10, 0], delivered=10, window_s=1.0)
    d2 = r["wire_per_daemon"]["d2"]
    assert d2["per"] == "delivered"
    assert d2["bytes_per_sent_msg"] is None and d2["bytes_per_delivered_msg"] == 5.0
    assert d2["tcp"] == 5.0 and d2["originated"] == 0
    assert r["wire_out_bytes_per_msg"] == [110.0, 5.0]


def test_counts_are_scaled_from_the_sampling_span_to_the_window() -> None:
    first = sample(0.0, (0, 0, 0, 0))
    last = sample(2.5, (0, 0, 2_500, 0))  # read 0.5 s late: 2.5 s of traffic for a 2 s window
    r = wire_cost(first, last, ("d1",), [10], delivered=10, window_s=2.0)
    assert r["wire_per_daemon"]["d1"]["bytes_per_sent_msg"] == 200.0


def test_nothing_delivered_gives_none_not_a_division_error() -> None:
    s = sample(0.0, (0, 0, 0, 0))
    r = wire_cost(s, s, ("d1",), [0], delivered=0, window_s=1.0)
    assert r["wire_out_bytes_per_msg"] == [None]
    assert r["wire_total_bytes_per_delivered_msg"] is None
    assert set(no_wire_cost()) == set(r)


def test_originated_by_host_sums_the_members_of_each_node() -> None:
    assert originated_by_host({0: 0, 1: 0, 2: 2}, {0: 5, 1: 7, 2: 1}, 3) == [12, 0, 1]
