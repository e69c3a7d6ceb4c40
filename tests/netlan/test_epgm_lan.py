"""libzmq's epgm between hosts of a namespace LAN, with no daemon involved: the installed pyzmq
has PGM, multicast crosses the bridge, and PGM repairs the loss the harness injects (the lossy
host sends NAKs and still gets every message in order). If this fails, the epgm data plane
cannot work here, whatever its code does."""

from __future__ import annotations

import sys

from groupcomm import netlan
from tests.netlan_support import finish, require_netns, require_pgm, start_on

SUB = """
import sys, zmq
ep, n = sys.argv[1], int(sys.argv[2])
s = zmq.Context().socket(zmq.SUB)
s.setsockopt(zmq.SUBSCRIBE, b"")
s.setsockopt(zmq.RATE, 10_000)
s.setsockopt(zmq.RCVTIMEO, 5_000)
s.connect(ep)
print("ready", flush=True)
got = []
try:
    while len(got) < n:
        got.append(int(s.recv()))
except zmq.Again:
    pass
print(" ".join(map(str, got)))
"""

PUB = """
import sys, time, zmq
ep, n = sys.argv[1], int(sys.argv[2])
s = zmq.Context().socket(zmq.PUB)
s.setsockopt(zmq.RATE, 10_000)
s.setsockopt(zmq.RECOVERY_IVL, 5_000)
s.connect(ep)
time.sleep(0.2)
for i in range(n):
    s.send(str(i).encode().ljust(1000))  # about one packet each, so loss hits messages
sys.stdin.read()  # stay up to answer NAKs until the test is done
"""

N = 300
GROUP = "239.192.77.2:5556"


def test_epgm_multicasts_and_repairs_loss() -> None:
    require_netns()
    require_pgm()
    with netlan.NetLan(3) as lan:
        lan.set_loss(2, 5)
        subs = [
            start_on(
                lan, i, [sys.executable, "-c", SUB, f"epgm://{lan.hosts[i].ip};{GROUP}", str(N)]
            )
            for i in (1, 2)
        ]
        for s in subs:
            assert s.stdout is not None and s.stdout.readline().strip() == "ready"
        pub = start_on(
            lan,
            0,
            [sys.executable, "-c", PUB, f"epgm://{lan.hosts[0].ip};{GROUP}", str(N)],
            stdin=True,
        )
        try:
            got = [[int(x) for x in finish(s, 30).split()] for s in subs]
        finally:
            finish(pub)  # closes its stdin: it exits
        assert got == [list(range(N)), list(range(N))]
        sent, lossy = lan.traffic(0), lan.traffic(2)
        assert sent["out.mcast"].bytes >= N * 1000
        assert lossy["drop.loss"].packets > 0  # messages were lost on the way in...
        assert lossy["out.udp"].packets > 0  # ...so it sent NAKs (unicast) and got repairs
