"""Where the daemons and members of a run live: all on loopback (default), or one host per
daemon on a network-namespace LAN (``--netns``, ``groupcomm.netlan.NetLan``), members next to
their daemon, as the peer kit places corosync and Spread nodes.

The runner asks a placement for the cluster (on TCP links, on the ZeroMQ mesh, or, on a LAN,
on the epgm multicast data plane), for the command prefix of a member on node ``i`` and for that
node's address (the zmq baseline binds there), and, on a LAN, for every host's traffic counters,
so a report can carry bytes on the wire per message and per daemon (``wirecost``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from groupcomm.benchmark.wirecost import PROTOCOLS, HostBytes, WireSample
from groupcomm.localcluster import LocalCluster

TRANSPORTS = ("tcp", "zmq", "epgm")
EPGM_PORT_BASE = 7480


def epgm_group(subnet: int) -> tuple[str, int]:
    """The multicast group and UDP port of the LAN ``10.77.<subnet>.0/24``. Every LAN is a
    bridge of its own, so two runs could not hear each other anyway; deriving both from the
    subnet (unique among live LANs) keeps them apart even if two segments were ever joined,
    and away from the tests' groups (``239.192.78.*``) and the daemon's default
    (``239.192.74.1:7400``)."""
    if not 0 <= subnet <= 255:
        raise ValueError(f"subnet must be 0..255, got {subnet}")
    return f"239.192.79.{subnet}", EPGM_PORT_BASE + subnet


def epgm_toml(interface: str, group: str, port: int) -> str:
    """A daemon's ``[epgm]`` table (docs/operations.md, "[epgm]")."""
    return f'[epgm]\ninterface = "{interface}"\ngroup = "{group}"\nport = {port}\n'


def transport_problem(transport: str, netns: bool) -> str | None:
    """``None`` if the daemons can run on ``transport`` here, else why not (one line)."""
    if transport not in TRANSPORTS:
        return f"unknown transport {transport!r} (one of {', '.join(TRANSPORTS)})"
    if transport in ("tcp", "zmq"):
        return None
    if not netns:
        return (
            "--transport epgm needs --netns: PGM multicast needs a LAN "
            "(loopback cannot carry it honestly)"
        )
    import zmq

    if not zmq.has("pgm"):
        return (
            f"--transport epgm: libzmq {zmq.zmq_version()} (pyzmq {zmq.__version__}) has no PGM;"
            " run scripts/setup.sh as root to build pyzmq against the system libzmq"
        )
    return None


class Loopback:
    name = "loopback"

    def cluster(
        self,
        workdir: Path,
        names: Sequence[str],
        protocol: Mapping[str, int],
        transport: str = "tcp",
    ) -> LocalCluster:
        if transport == "epgm":
            raise RuntimeError(f"transport {transport} needs a namespace LAN (--netns)")
        return LocalCluster(
            workdir,
            tuple(names),
            protocol=dict(protocol),
            daemon={"transport": transport},
            trace=False,
        )

    def prefix(self, node: int) -> list[str]:
        return []

    def ip(self, node: int) -> str:
        return "127.0.0.1"

    def wire_sample(self) -> WireSample | None:
        return None

    def close(self) -> None:
        pass


class Namespaces:
    """A fresh ``NetLan`` of ``hosts`` hosts (removed again by ``close``)."""

    name = "netns"

    def __init__(self, hosts: int) -> None:
        from groupcomm.netlan import NetLan, available

        problem = available()
        if problem is not None:
            raise RuntimeError(f"--netns: {problem}")
        self.lan = NetLan(hosts)
        self._pool = ThreadPoolExecutor(max_workers=hosts, thread_name_prefix="wire")

    def cluster(
        self,
        workdir: Path,
        names: Sequence[str],
        protocol: Mapping[str, int],
        transport: str = "tcp",
    ) -> LocalCluster:
        hosts = {n: self.lan.hosts[i] for i, n in enumerate(names)}
        if transport != "epgm":
            return LocalCluster.on_hosts(
                workdir, hosts, protocol=protocol, daemon={"transport": transport}, trace=False
            )
        group, port = epgm_group(self.lan.subnet)
        return LocalCluster.on_hosts(
            workdir,
            hosts,
            protocol=protocol,
            daemon={"transport": transport},
            extra_toml={n: epgm_toml(h.ip, group, port) for n, h in hosts.items()},
            trace=False,
        )

    def prefix(self, node: int) -> list[str]:
        return list(self.lan.hosts[node].exec_prefix)

    def ip(self, node: int) -> str:
        return self.lan.hosts[node].ip

    def _host_bytes(self, i: int) -> HostBytes:
        traffic = self.lan.traffic(i)
        out = {p: traffic[f"out.{p}"].bytes for p in PROTOCOLS}
        return HostBytes(self.lan.tx_bytes(i), out)

    def wire_sample(self) -> WireSample:
        """Every host's counters, read in parallel (one ``iptables`` and one ``ip`` command per
        host), stamped with the middle of the reading."""
        t0 = time.monotonic()
        hosts = tuple(self._pool.map(self._host_bytes, range(len(self.lan.hosts))))
        return WireSample((t0 + time.monotonic()) / 2, hosts)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.lan.close()


Placement = Loopback | Namespaces


def make_placement(netns: bool, hosts: int) -> Placement:
    return Namespaces(hosts) if netns else Loopback()
