"""Member results -> the run record: the slowest receiver, loss after the drain, order where
the service promises it, client CPU per message."""

from __future__ import annotations

from array import array
from typing import Any

from groupcomm.benchmark.analysis import RunInputs, summarize
from groupcomm.benchmark.wirecost import HostBytes, WireSample
from groupcomm.benchmark.workload import Workload


def key(sender: int, seq: int) -> int:
    return sender << 32 | seq


def result(mid: int, send: bool, recv: bool, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": mid,
        "send": send,
        "recv": recv,
        "sent": 0,
        "sent_win": 0,
        "received": 0,
        "received_win": 0,
        "lat_ns": [],
        "views_during_run": 0,
        "ready_s": 0.1,
        "err": None,
    }
    base.update(kw)
    return base


def one_mode(service: str, orders: list[list[int]], sent: int = 4) -> RunInputs:
    work = Workload(mode="one", daemons=3, service=service, dur=3.0, warm=1.0)
    results = {0: result(0, True, False, sent=sent, sent_win=2)}
    for i, order in enumerate(orders, start=1):
        results[i] = result(i, False, True, received=len(order), received_win=10 * i)
        results[i]["lat_ns"] = [1000 * i]
    return RunInputs(
        system="groupcomm",
        work=work,
        run=0,
        results=results,
        keys={i: array("Q", order) for i, order in enumerate(orders, start=1)},
        exit_codes=dict.fromkeys(results, 0),
        member_cpu_pct={0: 10.0, 1: 5.0, 2: 5.0, 3: 5.0},
        daemon_cpu_pct=[50.0, 20.0, None],
        daemon_rss_mb=[60.0, 50.5, 51.0],
        member_rss_mb={3: 33.0, 0: 40.0},
    )


FULL = [key(0, s) for s in range(4)]


def test_clean_run() -> None:
    r = summarize(one_mode("agreed", [FULL, FULL, FULL]))
    assert r["ok"] and r["problems"] == []
    assert r["deliver_rate_min"] == 5.0  # 10 messages in the 2 s window, the slowest receiver
    assert r["deliver_rates"] == [5.0, 10.0, 15.0]
    assert r["mbytes_per_s"] == round(5.0 * 100 / 1e6, 3)  # per receiver: the slowest
    assert r["mbytes_per_s_sum"] == round(30.0 * 100 / 1e6, 3)  # summed over the receivers
    assert r["send_rate"] == 1.0
    assert r["loss"] == 0.0 and r["order_same"] is True
    assert r["p50_us"] == 2.0 and r["lat_n"] == 3
    assert r["daemon_cpu_pct"] == [50.0, 20.0, None]
    assert r["daemon_rss_mb"] == [60.0, 50.5, 51.0]
    assert r["member_rss_mb"] == {"0": 40.0, "3": 33.0}
    # sender: 10 % of 2 s over 2 messages; receiver 1: 5 % of 2 s over 10 messages
    assert r["client_us_per_sent"] == 100_000.0
    assert r["run_cpu_pct"] == 95.0


def test_loss_is_a_problem_except_for_unreliable() -> None:
    short = FULL[:3]
    r = summarize(one_mode("agreed", [FULL, short, FULL]))
    assert r["loss"] == 0.25 and not r["ok"]
    assert summarize(one_mode("unreliable", [FULL, short, FULL]))["ok"]


def test_order_must_agree_for_agreed_and_safe_only() -> None:
    swapped = [FULL[1], FULL[0], *FULL[2:]]
    for service, ok in (("agreed", False), ("safe", False), ("fifo", True)):
        r = summarize(one_mode(service, [FULL, swapped, FULL]))
        assert r["order_same"] is False
        assert r["ok"] is ok, service


def test_missing_member_result_fails_the_run() -> None:
    inp = one_mode("agreed", [FULL, FULL, FULL])
    del inp.results[2], inp.keys[2]
    inp.exit_codes[2] = None
    r = summarize(inp)
    assert not r["ok"]
    assert any("member 2" in p for p in r["problems"])
    assert r["deliver_rate_min"] == 0.0


def test_zmq_baseline_has_no_order_claim() -> None:
    inp = one_mode("agreed", [FULL, FULL, FULL])
    inp.system = "zmq"
    r = summarize(inp)
    assert r["order_same"] is None and r["service"] == "none" and r["ok"]


def test_record_says_transport_and_batch_and_has_no_wire_figures_on_loopback() -> None:
    r = summarize(one_mode("agreed", [FULL, FULL, FULL]))
    assert (r["transport"], r["batch"]) == ("tcp", 100)
    assert r["wire_per_daemon"] is None and r["wire_out_bytes_per_msg"] is None


def test_wire_figures_per_daemon_in_mode_one() -> None:
    inp = one_mode("agreed", [FULL, FULL, FULL])  # the sender sent 2 in the window
    inp.hosts = ("d1", "d2", "d3")
    zero = HostBytes(0, {})
    inp.wire = (
        WireSample(0.0, (zero, zero, zero)),
        WireSample(2.0, (HostBytes(300, {"mcast": 260}), HostBytes(0, {"tcp": 40}), zero)),
    )
    r = summarize(inp)
    per = r["wire_per_daemon"]
    assert per["d1"]["per"] == "sent" and per["d1"]["bytes_per_sent_msg"] == 130.0
    # receivers delivered 10, 20, 30 in the window: 20 messages delivered on average
    assert per["d2"]["per"] == "delivered" and per["d2"]["tcp"] == 2.0
    assert r["wire_out_bytes_per_msg"] == [130.0, 2.0, 0.0]
    assert r["wire_total_bytes_per_delivered_msg"] == 15.0


def test_latency_by_path_groups_samples_by_the_daemons_of_sender_and_receiver() -> None:
    inp = one_mode("agreed", [FULL, FULL, FULL])
    # mode "one": member 0 sends next to d1; members 1, 2, 3 receive next to d1, d2, d3
    inp.results[1].update(lat_ns=[100_000, 300_000, 200_000], lat_src=[0, 0, 0])
    inp.results[2].update(lat_ns=[500_000, 700_000], lat_src=[0, 0])
    inp.results[3].update(lat_ns=[900_000], lat_src=[7])  # an unknown sender: not a path
    inp.sequencer = "d2"
    r = summarize(inp)
    assert r["p50_us_by_path"] == {"d1>d1": 200.0, "d1>d2": 600.0}
    assert r["sequencer"] == "d2"


def test_coordinator_name_from_a_status_view() -> None:
    from groupcomm.benchmark.runner import coordinator_name

    assert coordinator_name("3.d3:1795454919910") == "d3"
    assert coordinator_name("") is None and coordinator_name("garbage") is None
