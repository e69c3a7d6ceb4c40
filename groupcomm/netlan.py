"""A LAN made of Linux network namespaces, for tests and benchmarks that need real IP multicast.

Why: the epgm data plane multicasts PGM over UDP, which loopback cannot show honestly (one host
hears its own packets, nothing is lost, nothing is partitioned). Here every host is a network
namespace with one veth ``eth0`` whose other end is a port of a bridge that lives in a namespace
of its own, so the root namespace and the machine's real network are never touched and two LANs
(two test runs) cannot see each other. Faults are applied where a network applies them: loss is
an iptables ``statistic`` DROP on the host's ``eth0``, a partition is either the bridge port
going down (``link_down``) or drops by source address (``partition``). Traffic is counted by
iptables accounting rules (IPv4 bytes by protocol) and by the interface statistics (bytes on
the wire), so a benchmark can report bytes sent per delivered message.

Needs root, ``ip`` (iproute2) and ``iptables``; ``available()`` says why not. Standard library
only; every command runs with a timeout. Namespace names carry the creating process id
(``gcn-<pid>-<k>-h1``), so ``cleanup_stale()`` (also run by every new ``NetLan``) removes what a
killed run left behind without touching a live run's namespaces.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

TAG = "gcn"
DEV = "eth0"
TIMEOUT = 10.0  # seconds, bound of every command
SUBNETS = 256  # 10.77.<k>.0/24, k in range(SUBNETS)
BUFFER_MAX = 8 << 20  # what PGM's socket buffers may use, where the kernel lets a netns set it
MULTICAST = "224.0.0.0/4"
_NAME = re.compile(rf"^{TAG}-(?P<pid>\d+)-(?P<k>\d+)-(?P<role>br|h\d+)$")
_KEY = re.compile(r'--comment "?gc:(?P<key>[a-z_.]+)"?')
_COUNTS = re.compile(r"-c (?P<pkts>\d+) (?P<bytes>\d+)")
_lock = threading.Lock()  # two LANs of one process must not pick the same subnet


class NetLanError(RuntimeError):
    """A command failed; the message has the command and its error output."""


def run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = TIMEOUT) -> str:
    """Run one command, bounded by ``timeout``; its standard output, or ``NetLanError``."""
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetLanError(f"{' '.join(argv)}: {e}") from e
    if done.returncode != 0:
        raise NetLanError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True, slots=True)
class LanHost:
    """One host: namespace ``ns`` with interface ``dev`` at ``ip``; ``port`` is its bridge port."""

    index: int
    ns: str
    ip: str
    port: str
    dev: str = DEV

    @property
    def exec_prefix(self) -> list[str]:
        """Prepend to a command to run it on this host."""
        return ["ip", "netns", "exec", self.ns]


@dataclass(frozen=True, slots=True)
class Flow:
    packets: int = 0
    bytes: int = 0

    def __add__(self, other: Flow) -> Flow:
        return Flow(self.packets + other.packets, self.bytes + other.bytes)

    def __sub__(self, other: Flow) -> Flow:
        return Flow(self.packets - other.packets, self.bytes - other.bytes)


PROTOCOLS = ("tcp", "mcast", "udp", "other")
FLOW_KEYS = (
    *(f"{d}.{p}" for d in ("out", "in") for p in PROTOCOLS),
    "drop.loss",
    "drop.partition",
)


@dataclass(frozen=True, slots=True)
class Traffic:
    """IPv4 packets and bytes (IP headers included) through a host's ``eth0`` since the LAN was
    made, from iptables counters. ``out.*``/``in.*`` by protocol: ``tcp``, ``mcast`` (UDP to
    224.0.0.0/4: epgm data), ``udp`` (other UDP), ``other`` (IGMP, ICMP). They count before the
    fault rules: ``out`` is what the host sent, ``in`` what reached its interface; ``drop.loss``
    and ``drop.partition`` count what the fault rules then dropped (both directions)."""

    flows: Mapping[str, Flow]

    def __getitem__(self, key: str) -> Flow:
        return self.flows.get(key, Flow())

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic({k: self[k] - other[k] for k in FLOW_KEYS})

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic({k: self[k] + other[k] for k in FLOW_KEYS})

    def total(self, direction: str) -> Flow:
        """Every protocol of ``direction`` (``"out"`` or ``"in"``)."""
        total = Flow()
        for k in FLOW_KEYS:
            if k.startswith(direction + "."):
                total += self[k]
        return total


@dataclass(frozen=True, slots=True)
class LinkStats:
    """The interface counters of a host's ``eth0``: link-layer bytes, ARP and IPv6 included."""

    tx_bytes: int
    tx_packets: int
    rx_bytes: int
    rx_packets: int


def _rules(dev: str) -> str:
    """The iptables-restore input of a host: accounting first, then partition, then loss."""
    lines = ["*filter"]
    for chain in ("GC_ACCT_IN", "GC_ACCT_OUT", "GC_PART_IN", "GC_PART_OUT"):
        lines.append(f":{chain} - [0:0]")
    lines += [":GC_LOSS_IN - [0:0]", ":GC_LOSS_OUT - [0:0]"]
    for hook, io, d in (("INPUT", "-i", "IN"), ("OUTPUT", "-o", "OUT")):
        for chain in ("ACCT", "PART", "LOSS"):
            lines.append(f"-A {hook} {io} {dev} -j GC_{chain}_{d}")
    for d in ("in", "out"):
        chain = f"GC_ACCT_{d.upper()}"
        lines += [
            f'-A {chain} -p tcp -m comment --comment "gc:{d}.tcp" -j RETURN',
            f'-A {chain} -p udp -d {MULTICAST} -m comment --comment "gc:{d}.mcast" -j RETURN',
            f'-A {chain} -p udp -m comment --comment "gc:{d}.udp" -j RETURN',
            f'-A {chain} -m comment --comment "gc:{d}.other" -j RETURN',
        ]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _host_script(ip: str, dev: str) -> str:
    """Run inside a host namespace once: no IPv6 (its chatter would blur the byte counts),
    larger socket buffers where this kernel makes them per namespace, address, multicast
    route, loopback, firewall rules (on stdin). Prints the effective ``rmem_max``."""
    return (
        "set -e\n"
        "for c in all default; do (echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6) "
        "2>/dev/null || true; done\n"
        f"for f in rmem_max wmem_max; do (echo {BUFFER_MAX} > /proc/sys/net/core/$f) "
        "2>/dev/null || true; done\n"
        "ip link set lo up\n"
        f"ip addr add {ip}/24 dev {dev}\n"
        f"ip link set {dev} up\n"
        f"ip route add {MULTICAST} dev {dev}\n"
        "iptables-restore --noflush\n"
        "cat /proc/sys/net/core/rmem_max\n"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def list_namespaces() -> list[str]:
    """Every named network namespace (``ip netns list``)."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line.strip()]


def _ours() -> list[tuple[str, int, int]]:
    """(name, creator pid, subnet k) of every namespace with our naming."""
    out = []
    for name in list_namespaces():
        m = _NAME.match(name)
        if m:
            out.append((name, int(m["pid"]), int(m["k"])))
    return out


def _delete(names: Iterable[str]) -> None:
    """Kill whatever still runs in the namespaces (processes started inside them by the LAN's
    user; they would keep an unnamed namespace alive), then delete them."""
    names = list(names)
    for ns in names:
        with contextlib.suppress(NetLanError):
            for pid in run(["ip", "netns", "pids", ns]).split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), signal.SIGKILL)
    if names:
        with contextlib.suppress(NetLanError):
            run(["ip", "-force", "-batch", "-"], stdin="".join(f"netns del {n}\n" for n in names))


def cleanup_stale() -> list[str]:
    """Delete the namespaces of earlier LANs whose creating process is dead; their names."""
    stale = [name for name, pid, _ in _ours() if not _alive(pid)]
    _delete(stale)
    return stale


class NetLan:
    """``hosts`` hosts on one bridged /24, ``10.77.<k>.0/24`` with ``k`` unused by the live LANs.

    Host ``i`` (0-based) is namespace ``<prefix>-h<i+1>`` at address ``10.77.<k>.<i+1>``. Use as a
    context manager, or call ``close()``; an ``atexit`` hook closes it too. ``prefix`` defaults
    to ``gcn-<pid>-<k>``, the form ``cleanup_stale()`` recognizes.
    """

    def __init__(self, hosts: int, *, prefix: str | None = None) -> None:
        if not 1 <= hosts <= 250:
            raise ValueError(f"hosts must be 1..250, got {hosts}")
        self.hosts: list[LanHost] = []
        self._created: list[str] = []
        self._closed = False
        self.rmem_max = 0  # the socket buffer limit in the hosts (bytes)
        cleanup_stale()
        with _lock:
            used = {k for _, _, k in _ours()}
            free = [k for k in range(SUBNETS) if k not in used]
            if not free:
                raise NetLanError(f"all {SUBNETS} subnets 10.77.*.0/24 are in use")
            self.subnet = free[0]
            self.prefix = prefix or f"{TAG}-{os.getpid()}-{self.subnet}"
            self.bridge_ns = f"{self.prefix}-br"
            self.hosts = [
                LanHost(i, f"{self.prefix}-h{i + 1}", f"10.77.{self.subnet}.{i + 1}", f"p{i + 1}")
                for i in range(hosts)
            ]
            atexit.register(self.close)
            try:
                self._create_namespaces()
            except BaseException:
                self.close()
                raise
        try:
            self._wire()
        except BaseException:
            self.close()
            raise

    def _create_namespaces(self) -> None:
        names = [self.bridge_ns, *(h.ns for h in self.hosts)]
        taken = set(names) & set(list_namespaces())
        if taken:  # only with a custom prefix; close() must never delete someone else's
            raise NetLanError(f"namespaces already exist: {', '.join(sorted(taken))}")
        try:
            run(["ip", "-batch", "-"], stdin="".join(f"netns add {n}\n" for n in names))
        finally:
            existing = set(list_namespaces())
            self._created = [n for n in names if n in existing]

    def _wire(self) -> None:
        # Created from inside the bridge namespace with explicit targets: nothing ever
        # appears in the root namespace, even for a moment.
        # No IPv6 addresses on the bridge side either: its router solicitations and MLD
        # reports would show up in the hosts' byte counts.
        batch = [
            "link add br0 type bridge mcast_snooping 0",
            "link set br0 addrgenmode none",  # before "up", or the address is already made
            "link set br0 up",
        ]
        for h in self.hosts:
            batch += [
                f"link add {h.dev} netns {h.ns} type veth"
                f" peer name {h.port} netns {self.bridge_ns}",
                f"link set {h.port} addrgenmode none master br0 up",
            ]
        run(["ip", "-n", self.bridge_ns, "-batch", "-"], stdin="\n".join(batch) + "\n")
        rules = _rules(DEV)
        procs = [
            subprocess.Popen(
                [*h.exec_prefix, "sh", "-c", _host_script(h.ip, h.dev)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for h in self.hosts
        ]
        errors = []
        for h, proc in zip(self.hosts, procs, strict=True):
            try:
                out, err = proc.communicate(rules, timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                err = f"timed out after {TIMEOUT} s {err}"
            if proc.returncode != 0:
                errors.append(f"{h.ns}: {err.strip()}")
            else:
                self.rmem_max = int(out.split()[-1])
        if errors:
            raise NetLanError("setting up hosts failed: " + "; ".join(errors))

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> NetLan:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill what runs in the LAN's namespaces and delete them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        _delete(self._created)

    @property
    def namespaces(self) -> list[str]:
        """The bridge namespace and every host namespace."""
        return [self.bridge_ns, *(h.ns for h in self.hosts)]

    def exec_prefix(self, i: int) -> list[str]:
        return self.hosts[i].exec_prefix

    # ------------------------------------------------------------------ faults
    def _iptables(self, i: int, lines: Iterable[str]) -> None:
        text = "*filter\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"
        run([*self.exec_prefix(i), "iptables-restore", "--noflush"], stdin=text)

    def set_loss(self, i: int, percent: float, *, direction: str = "in") -> None:
        """Drop ``percent`` % of host ``i``'s IPv4 packets at random: arriving (``"in"``),
        leaving (``"out"``) or both ways (``"both"``); replaces earlier loss of host ``i``."""
        if direction not in ("in", "out", "both"):
            raise ValueError(f"direction must be in, out or both, got {direction!r}")
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be 0..100, got {percent}")
        lines = ["-F GC_LOSS_IN", "-F GC_LOSS_OUT"]
        for d in ("in", "out"):
            if percent > 0 and direction in (d, "both"):
                lines.append(
                    f"-A GC_LOSS_{d.upper()} -m statistic --mode random --probability "
                    f'{percent / 100:.6f} -m comment --comment "gc:drop.loss" -j DROP'
                )
        self._iptables(i, lines)

    def clear_loss(self, i: int) -> None:
        self.set_loss(i, 0)

    def link_down(self, i: int) -> None:
        """Unplug host ``i``: its bridge port goes down (its ``eth0`` loses carrier)."""
        run(["ip", "-n", self.bridge_ns, "link", "set", self.hosts[i].port, "down"])

    def link_up(self, i: int) -> None:
        run(["ip", "-n", self.bridge_ns, "link", "set", self.hosts[i].port, "up"])

    def partition(self, *sides: Sequence[int]) -> None:
        """Split the LAN: each host hears only the hosts of its own side (by source address, so
        multicast too). Every host must be in exactly one side; ``heal()`` undoes it."""
        placed = sorted(i for side in sides for i in side)
        if placed != list(range(len(self.hosts))):
            raise ValueError(f"every host 0..{len(self.hosts) - 1} must be in exactly one side")
        for side in sides:
            others = [h.ip for h in self.hosts if h.index not in side]
            for i in side:
                lines = ["-F GC_PART_IN", "-F GC_PART_OUT"]
                for ip in others:
                    lines += [
                        f'-A GC_PART_IN -s {ip} -m comment --comment "gc:drop.partition" -j DROP',
                        f'-A GC_PART_OUT -d {ip} -m comment --comment "gc:drop.partition" -j DROP',
                    ]
                self._iptables(i, lines)

    def heal(self) -> None:
        """Undo ``partition()`` and ``link_down()`` (loss stays)."""
        for h in self.hosts:
            self._iptables(h.index, ["-F GC_PART_IN", "-F GC_PART_OUT"])
            self.link_up(h.index)

    # ------------------------------------------------------------------ counters
    def traffic(self, i: int) -> Traffic:
        """Host ``i``'s iptables counters (see ``Traffic``)."""
        out = run([*self.exec_prefix(i), "iptables", "-w", "5", "-v", "-S"])
        flows: dict[str, Flow] = {}
        for line in out.splitlines():  # "-A GC_ACCT_IN -p tcp ... "gc:in.tcp" -c 12 3456 ..."
            key, counts = _KEY.search(line), _COUNTS.search(line)
            if key and counts:
                flow = Flow(int(counts["pkts"]), int(counts["bytes"]))
                flows[key["key"]] = flows.get(key["key"], Flow()) + flow
        return Traffic(flows)

    def total_traffic(self) -> Traffic:
        """The sum of every host's counters."""
        total = Traffic({})
        for h in self.hosts:
            total += self.traffic(h.index)
        return total

    def link_stats(self, i: int) -> LinkStats:
        h = self.hosts[i]
        info = json.loads(run(["ip", "-n", h.ns, "-j", "-s", "link", "show", h.dev]))
        stats = info[0]["stats64"]
        return LinkStats(
            int(stats["tx"]["bytes"]),
            int(stats["tx"]["packets"]),
            int(stats["rx"]["bytes"]),
            int(stats["rx"]["packets"]),
        )

    def tx_bytes(self, i: int) -> int:
        return self.link_stats(i).tx_bytes

    def rx_bytes(self, i: int) -> int:
        return self.link_stats(i).rx_bytes


@functools.cache
def available() -> str | None:
    """``None`` if a ``NetLan`` can be made here, else why not (one line). Cached: it builds and
    removes a one-host LAN once per process."""
    if os.geteuid() != 0:
        return f"network namespaces need root (running as uid {os.geteuid()})"
    for tool, package in (("ip", "iproute2"), ("iptables", "iptables")):
        if shutil.which(tool) is None:
            return f"no {tool} command (apt-get install {package})"
    try:
        NetLan(1).close()
    except (NetLanError, OSError, ValueError) as e:
        return f"cannot build a namespace LAN: {e}"
    return None
