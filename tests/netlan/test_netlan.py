"""The namespace LAN harness itself (``groupcomm.netlan``): hosts reach each other over UDP,
TCP and multicast through the bridge, the fault rules drop what they should and count it, an
unplugged or partitioned host hears nothing, and nothing of ours survives ``close()`` or a
dead run. Real sockets in real namespaces: small Python programs run on the hosts."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from groupcomm import netlan
from tests.netlan_support import finish, require_netns, run_on, start_on

RECEIVE = """
import socket, sys, time
ip, port, group, quiet = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((group or ip, port))
if group:
    mreq = socket.inet_aton(group) + socket.inet_aton(ip)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
s.settimeout(quiet)
print("ready", flush=True)
n, deadline = 0, time.monotonic() + 10
try:
    while time.monotonic() < deadline:
        s.recv(2048)
        n += 1
except TimeoutError:
    pass
print(n)
"""

SEND = """
import socket, sys, time
src, dst, port, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(src))
s.bind((src, 0))
for i in range(count):
    try:
        s.sendto(b"x" * 100, (dst, port))
    except OSError:
        pass
    time.sleep(0.1 if i == 0 else 0.001)  # the first one resolves the neighbour (ARP)
"""

ECHO_SERVER = """
import socket, sys
s = socket.create_server((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print("ready", flush=True)
c, _ = s.accept()
c.sendall(c.recv(100).upper())
"""

ECHO_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
c.sendall(b"over the bridge")
print(c.recv(100).decode())
"""

PORT = 4999
GROUP = "239.192.77.1"


@pytest.fixture(scope="module")
def lan() -> Iterator[netlan.NetLan]:
    require_netns()
    with netlan.NetLan(3) as lan:
        yield lan


def receive(
    lan: netlan.NetLan, i: int, *, group: str = "", quiet: float = 0.5
) -> subprocess.Popen[str]:
    """Start a UDP receiver on host ``i`` and wait until it is bound."""
    proc = start_on(
        lan, i, [sys.executable, "-c", RECEIVE, lan.hosts[i].ip, str(PORT), group, str(quiet)]
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def send(lan: netlan.NetLan, i: int, dst: str, count: int) -> None:
    done = run_on(lan, i, [sys.executable, "-c", SEND, lan.hosts[i].ip, dst, str(PORT), str(count)])
    assert done.returncode == 0, done.stderr


def received(proc: subprocess.Popen[str]) -> int:
    return int(finish(proc).split()[-1])


def test_hosts_exist_with_their_addresses(lan: netlan.NetLan) -> None:
    assert netlan.available() is None
    names = set(netlan.list_namespaces())
    assert set(lan.namespaces) <= names
    assert len({h.ip for h in lan.hosts}) == 3
    for h in lan.hosts:
        addrs = run_on(lan, h.index, ["ip", "-4", "-o", "addr", "show", "dev", h.dev]).stdout
        assert f"inet {h.ip}/24" in addrs
        assert h.exec_prefix == ["ip", "netns", "exec", h.ns]
    # the root namespace has no interface of ours
    root = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10).stdout
    assert "br0" not in root.split() and lan.prefix not in root


def test_udp_and_tcp_cross_the_bridge_and_are_counted(lan: netlan.NetLan) -> None:
    before = [lan.traffic(i) for i in range(3)]
    link_before = lan.link_stats(0)
    proc = receive(lan, 1)
    send(lan, 0, lan.hosts[1].ip, 20)
    assert received(proc) == 20

    server = start_on(lan, 2, [sys.executable, "-c", ECHO_SERVER, lan.hosts[2].ip, str(PORT)])
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    reply = run_on(lan, 0, [sys.executable, "-c", ECHO_CLIENT, lan.hosts[2].ip, str(PORT)])
    assert reply.stdout.strip() == "OVER THE BRIDGE", reply.stderr
    finish(server)

    sent, got_udp, got_tcp = (lan.traffic(i) - before[i] for i in (0, 1, 2))
    assert sent["out.udp"].packets == 20
    assert sent["out.udp"].bytes == 20 * (20 + 8 + 100)  # IP + UDP headers + payload
    assert got_udp["in.udp"].packets == 20
    assert sent["out.tcp"].packets >= 3 and got_tcp["in.tcp"].packets >= 3
    assert sent["out.mcast"].packets == 0 and got_udp["drop.loss"].packets == 0
    assert lan.link_stats(0).tx_bytes - link_before.tx_bytes >= 20 * (14 + 128)


def test_multicast_reaches_every_other_host(lan: netlan.NetLan) -> None:
    before = lan.total_traffic()
    procs = [receive(lan, i, group=GROUP) for i in (1, 2)]
    send(lan, 0, GROUP, 10)
    assert [received(p) for p in procs] == [10, 10]
    delta = lan.total_traffic() - before
    assert delta["out.mcast"].packets == 10 and delta["in.mcast"].packets == 20
    assert delta.total("out").packets >= 10 and delta["out.tcp"].packets == 0


def test_a_custom_prefix_never_takes_over_an_existing_namespace(lan: netlan.NetLan) -> None:
    with pytest.raises(netlan.NetLanError, match="already exist"):
        netlan.NetLan(1, prefix=lan.prefix)
    assert set(lan.namespaces) <= set(netlan.list_namespaces())


def test_loss_rule_drops_about_that_share_and_counts_it(lan: netlan.NetLan) -> None:
    lan.set_loss(1, 50)
    try:
        before = lan.traffic(1)
        proc = receive(lan, 1)
        send(lan, 0, lan.hosts[1].ip, 200)
        got = received(proc)
        delta = lan.traffic(1) - before
    finally:
        lan.clear_loss(1)
    arrived, dropped = delta["in.udp"].packets, delta["drop.loss"].packets
    assert arrived == 200
    assert dropped + got == arrived  # every packet that reached eth0 was dropped or delivered
    assert 40 <= dropped <= 160, dropped  # 50 % of 200: more than 8 sigma of margin

    proc = receive(lan, 1)  # cleared: nothing lost any more
    send(lan, 0, lan.hosts[1].ip, 50)
    assert received(proc) == 50


def test_outgoing_loss(lan: netlan.NetLan) -> None:
    lan.set_loss(0, 100, direction="out")
    try:
        proc = receive(lan, 1)
        send(lan, 0, lan.hosts[1].ip, 10)
        assert received(proc) == 0
    finally:
        lan.clear_loss(0)


def test_link_down_isolates_a_host_until_link_up(lan: netlan.NetLan) -> None:
    lan.link_down(1)
    try:
        procs = [receive(lan, i, group=GROUP) for i in (1, 2)]
        send(lan, 0, GROUP, 10)
        assert [received(p) for p in procs] == [0, 10]
    finally:
        lan.link_up(1)
    proc = receive(lan, 1, group=GROUP)
    send(lan, 0, GROUP, 10)
    assert received(proc) == 10


def test_partition_by_address_and_heal(lan: netlan.NetLan) -> None:
    with pytest.raises(ValueError):
        lan.partition([0, 1])  # host 2 in no side
    lan.partition([0, 1], [2])
    try:
        before = lan.traffic(2)
        procs = [receive(lan, i, group=GROUP) for i in (1, 2)]
        send(lan, 0, GROUP, 10)
        assert [received(p) for p in procs] == [10, 0]
        assert (lan.traffic(2) - before)["drop.partition"].packets == 10
    finally:
        lan.heal()
    procs = [receive(lan, i, group=GROUP) for i in (1, 2)]
    send(lan, 0, GROUP, 10)
    assert [received(p) for p in procs] == [10, 10]


def test_close_kills_what_runs_inside_and_leaves_nothing() -> None:
    require_netns()
    lan = netlan.NetLan(2)
    names = lan.namespaces
    assert set(names) <= set(netlan.list_namespaces())
    sleeper = start_on(lan, 0, ["sleep", "30"])
    lan.close()
    lan.close()  # idempotent
    assert sleeper.wait(timeout=5) != 0
    assert not set(names) & set(netlan.list_namespaces())


def test_cleanup_stale_removes_dead_runs_only() -> None:
    require_netns()
    dead = subprocess.Popen(["true"])
    dead.wait(timeout=5)
    stale = f"{netlan.TAG}-{dead.pid}-255-h1"
    netlan.run(["ip", "netns", "add", stale])
    try:
        with netlan.NetLan(1) as live:  # a new LAN cleans up first
            names = set(netlan.list_namespaces())
            assert stale not in names
            assert set(live.namespaces) <= names
            assert netlan.cleanup_stale() == []  # ours is alive: untouched
            assert set(live.namespaces) <= set(netlan.list_namespaces())
    finally:
        if stale in netlan.list_namespaces():
            netlan.run(["ip", "netns", "del", stale])


def test_setup_and_teardown_are_fast() -> None:
    require_netns()
    started = time.monotonic()
    lan = netlan.NetLan(5)
    made = time.monotonic() - started
    lan.close()
    total = time.monotonic() - started
    assert made < 5 and total < 6, (made, total)
