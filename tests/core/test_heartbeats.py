"""Heartbeats and reports (protocol/ordering.md section 4, membership.md section 2): every
configured peer hears from a daemon at least every ``heartbeat_ms``; the members get no
heartbeat when a ``Status`` went to them within the period, and a heartbeat to the daemons
outside the view only does not count as a report to the members."""

from __future__ import annotations

from functools import partial
from itertools import pairwise

from groupcomm.core.commands import Command, SendFrame
from groupcomm.core.events import MulticastRequested, SessionOpened
from groupcomm.core.frames import Status
from groupcomm.core.ids import make_token
from groupcomm.core.node import Node
from groupcomm.core.service import Service
from tests.core.test_membership_rounds import Net

HEARTBEAT_MS = 40
TICK_MS = 10


def _watched(net: Net, name: str) -> list[tuple[int, tuple[str, ...]]]:
    """(time, targets) of every Status ``name`` sends from now on."""
    sent: list[tuple[int, tuple[str, ...]]] = []
    execute = net.execute

    def spy(node: Node, commands: list[Command]) -> None:
        if node.name == name:
            for cmd in commands:
                if isinstance(cmd, SendFrame) and isinstance(cmd.frame, Status):
                    sent.append((net.now, cmd.targets))
        execute(node, commands)

    net.execute = spy  # type: ignore[method-assign]
    return sent


def _gaps(sent: list[tuple[int, tuple[str, ...]]], target: str) -> list[int]:
    times = [t for t, targets in sent if target in targets]
    return [b - a for a, b in pairwise(times)]


def _settled_with_an_absent_peer() -> Net:
    # d4 is configured but never starts: the daemons outside the view.
    net = Net(["d1", "d2", "d3", "d4"])
    for i, name in enumerate(["d1", "d2", "d3"]):
        net.at(7 * i, partial(net.start, name, 0))
    net.run_until(1500)
    members = tuple(sorted(make_token(n, 0) for n in ("d1", "d2", "d3")))
    assert all(node.members == members for node in net.nodes.values())
    return net


def test_a_quiet_view_heartbeats_once_per_period_to_members_and_outsiders() -> None:
    net = _settled_with_an_absent_peer()
    sent = _watched(net, "d2")
    net.run_until(3500)
    for target in ("d1", "d3", "d4"):
        gaps = _gaps(sent, target)
        assert gaps and all(HEARTBEAT_MS <= g <= HEARTBEAT_MS + TICK_MS for g in gaps), target
    assert len(sent) <= 2000 // HEARTBEAT_MS + 1  # one frame per beat, to all three


def test_reports_to_the_members_replace_their_heartbeat_but_not_the_outsiders() -> None:
    net = _settled_with_an_absent_peer()
    sender = net.nodes["d2"]
    net.feed(sender, SessionOpened(conn="#c#d2"))
    sent = _watched(net, "d2")
    start = net.now
    for i in range(60):  # a message every 7 ms: d2's ordering acks are urgent reports
        net.at(
            start + 7 * i,
            partial(
                net.feed,
                sender,
                MulticastRequested("#c#d2", ("g",), int(Service.AGREED), 0, b"x"),
            ),
        )
    net.run_until(start + 420)
    to_members = [t for t, targets in sent if "d1" in targets]
    to_outsider = [t for t, targets in sent if "d4" in targets]
    assert len(to_members) >= 40  # the urgent reports
    # The outsider keeps its beat while the members' beats are replaced by reports.
    assert 420 // HEARTBEAT_MS - 1 <= len(to_outsider) <= 420 // HEARTBEAT_MS + 1
    assert all(g <= HEARTBEAT_MS + TICK_MS for g in _gaps(sent, "d4"))
    # No heartbeat doubled a report: between two Status frames to the members within one
    # period, none went to the outsider as well unless its own beat was due.
    both = [t for t, targets in sent if "d1" in targets and "d4" in targets]
    assert len(both) <= len(to_outsider)


def test_a_heartbeat_to_outsiders_only_is_not_a_report() -> None:
    net = _settled_with_an_absent_peer()
    node = net.nodes["d2"]
    epoch = node.epoch
    epoch.status_dirty = epoch.status_urgent = True
    before = node.last_member_status
    frame = node.status(to_members=False)
    assert isinstance(frame, Status)
    assert epoch.status_dirty and epoch.status_urgent and node.last_member_status == before
    node.status()
    assert not epoch.status_dirty and not epoch.status_urgent
    assert node.last_member_status == node.now
