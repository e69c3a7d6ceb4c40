"""Star views through real ``Node``s (protocol/membership.md section 2): who heartbeats whom,
how a star view notices a crashed coordinator, a crashed member, a partition and a member whose
data stops arriving, each in one round."""

from __future__ import annotations

from groupcomm.core.commands import Command, SendFrame
from groupcomm.core.events import MulticastRequested, SessionOpened
from groupcomm.core.frames import Data, Status, origin
from groupcomm.core.ids import make_token
from groupcomm.core.service import Service
from tests.core.test_membership_rounds import LATENCY_MS, SUSPECT_MS, Net, _cluster

NAMES = [f"d{i}" for i in range(1, 6)]
EVERYONE = sorted(make_token(n, 0) for n in NAMES)


def _star(star_members: int = 3) -> Net:
    net = _cluster(NAMES, {"star_members": star_members})
    net.run_until(1000)
    assert all(node.members == tuple(EVERYONE) for node in net.nodes.values())
    assert all(node.epoch.star == (len(EVERYONE) >= star_members) for node in net.nodes.values())
    return net


def _status_targets(net: Net, sender: str, since: int) -> set[str]:
    return {t for at, s, t, f in net.sent if s == sender and at > since and isinstance(f, Status)}


def test_members_of_a_star_view_heartbeat_their_coordinator_only() -> None:
    net = _star()
    coord = net.nodes["d1"].view.coord
    assert coord == "d1:0"
    net.run_until(2000)
    for name in NAMES[1:]:
        assert _status_targets(net, name, 1000) == {"d1"}, name
    assert _status_targets(net, "d1", 1000) == set(NAMES[1:])


def test_below_star_members_everybody_heartbeats_everybody() -> None:
    net = _star(star_members=6)
    net.run_until(2000)
    for name in NAMES:
        assert _status_targets(net, name, 1000) == set(NAMES) - {name}, name


def test_a_crashed_coordinator_is_replaced_in_one_round() -> None:
    net = _star()
    net.crash("d1")
    net.run_until(2000)
    rest = EVERYONE[1:]
    assert net.proposals(1000) == [rest]
    for token in rest:
        assert net.regular_installs(token, 1000) == [rest], token
    install = max(t for t, n in net.notes if n.event == "install" and t > 1000)
    # suspicion, the members' collection (2 heartbeats), then one round
    assert install - 1000 <= SUSPECT_MS + 2 * 40 + 2 * 10 + 40, install


def test_a_crashed_member_is_removed_by_the_coordinator() -> None:
    net = _star()
    net.crash("d4")
    net.run_until(2000)
    rest = [t for t in EVERYONE if t != "d4:0"]
    assert net.proposals(1000) == [rest]
    assert all(net.regular_installs(t, 1000) == [rest] for t in rest)


def test_each_side_of_a_partition_forms_its_view_in_one_round() -> None:
    net = _star()
    side = {"d1", "d2", "d3"}
    net.drop = lambda target, cmd: (target in side) != (_sender(cmd) in side)
    net.run_until(2500)
    left = ["d1:0", "d2:0", "d3:0"]
    right = ["d4:0", "d5:0"]
    assert sorted(map(sorted, net.proposals(1000))) == [left, right]
    for token in EVERYONE:
        assert net.regular_installs(token, 1000) == [left if token in left else right], token


def _sender(cmd: Command) -> str:
    assert isinstance(cmd, SendFrame)
    return origin(cmd.frame)


def test_a_member_whose_data_stops_reaching_another_is_suspected() -> None:
    # d3's Data no longer reaches d2 (one way, data only: its Status frames still arrive, and
    # the coordinator orders d3's messages). d2 asks d3 in vain. After a suspect timeout without
    # progress it suspects d3 instead of stalling for good, and the view change's cleanup
    # brings it d3's messages (from d3's own Flush). Non-transitive: it happens again in every
    # view while the fault lasts (membership.md section 11).
    net = _star()
    d3 = net.nodes["d3"]
    net.feed(d3, SessionOpened(conn="#c#d3"))

    def data_from_d3_to_d2(target: str, cmd: Command) -> bool:
        assert isinstance(cmd, SendFrame)
        return target == "d2" and isinstance(cmd.frame, Data) and cmd.frame.sender == "d3:0"

    net.drop = data_from_d3_to_d2
    multicast = MulticastRequested("#c#d3", ("g",), int(Service.AGREED), 0, b"x")
    for i in range(20):  # one message every 20 ms
        net.at(1000 + 20 * i, lambda: net.feed(d3, multicast))
    net.run_until(3000)
    suspects = [(t, n.fields["reason"]) for t, n in net.notes if n.event == "suspect" and t > 1000]
    assert suspects and suspects[0][1] == "suspect d3:0", suspects
    assert suspects[0][0] >= 1000 + SUSPECT_MS + LATENCY_MS
    assert net.nodes["d2"].counters["delivered"] == 20
