"""Where the daemons and members of a run live: all on loopback (default), or one host per
daemon on a network-namespace LAN (``--netns``, ``groupcomm.netlan.NetLan``), members next to
their daemon, as the peer kit places corosync and Spread nodes.

The runner asks a placement for the cluster, for the command prefix of a member on node ``i``
and for that node's address (the zmq baseline binds there), and, on a LAN, for the bytes the
hosts put on the wire, so a report can carry wire bytes per message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from groupcomm.localcluster import LocalCluster


class Loopback:
    name = "loopback"

    def cluster(
        self, workdir: Path, names: Sequence[str], protocol: Mapping[str, int]
    ) -> LocalCluster:
        return LocalCluster(workdir, tuple(names), protocol=dict(protocol), trace=False)

    def prefix(self, node: int) -> list[str]:
        return []

    def ip(self, node: int) -> str:
        return "127.0.0.1"

    def wire_bytes(self) -> int | None:
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

    def cluster(
        self, workdir: Path, names: Sequence[str], protocol: Mapping[str, int]
    ) -> LocalCluster:
        hosts = {n: self.lan.hosts[i] for i, n in enumerate(names)}
        return LocalCluster.on_hosts(workdir, hosts, protocol=protocol, trace=False)

    def prefix(self, node: int) -> list[str]:
        return list(self.lan.hosts[node].exec_prefix)

    def ip(self, node: int) -> str:
        return self.lan.hosts[node].ip

    def wire_bytes(self) -> int | None:
        """Link-layer bytes sent by all hosts so far."""
        return sum(self.lan.tx_bytes(h.index) for h in self.lan.hosts)

    def close(self) -> None:
        self.lan.close()


Placement = Loopback | Namespaces


def make_placement(netns: bool, hosts: int) -> Placement:
    return Namespaces(hosts) if netns else Loopback()
