"""The daemon-membership round driven through real ``Node``s (protocol/membership.md, section 4).

A tiny deterministic network: every frame takes ``LATENCY_MS``, nothing is lost, and the
daemons start at staggered times so that their heartbeats are spread over the heartbeat period
(as in any real cluster) and a newcomer hears the others one tick after another."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from groupcomm.core.commands import Command, Note, SendFrame, SetTimer
from groupcomm.core.config import CoreConfig
from groupcomm.core.events import Event, FrameReceived, ShutdownRequested, Started, TimerFired
from groupcomm.core.frames import Install, Propose
from groupcomm.core.ids import make_token
from groupcomm.core.node import Node
from sim.options import random_options
from sim.run import run

LATENCY_MS = 1
SUSPECT_MS = 250  # the simulator's failure detector (sim.runner.SIM_SUSPECT_TIMEOUT_MS)


class Net:
    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.now = 0
        self.queue: list[tuple[int, int, Callable[[], None]]] = []
        self.counter = 0
        self.nodes: dict[str, Node] = {}
        self.notes: list[tuple[int, Note]] = []
        self.drop: Callable[[str, Command], bool] = lambda target, cmd: False
        self.settings: dict[str, Any] = {}  # CoreConfig settings of every daemon started
        self.sent: list[tuple[int, str, str, object]] = []  # (t, sender, target, frame)

    def at(self, t_ms: int, action: Callable[[], None]) -> None:
        self.counter += 1
        heapq.heappush(self.queue, (t_ms, self.counter, action))

    def run_until(self, t_ms: int) -> None:
        while self.queue and self.queue[0][0] <= t_ms:
            self.now, _, action = heapq.heappop(self.queue)
            action()
        self.now = t_ms

    def start(self, name: str, incarnation: int) -> None:
        cfg = CoreConfig(
            name=name,
            incarnation=incarnation,
            peers=tuple(self.names),
            suspect_timeout_ms=SUSPECT_MS,
            **self.settings,
        )
        node = Node(cfg)
        self.nodes[name] = node
        self.feed(node, Started())

    def crash(self, name: str) -> None:
        del self.nodes[name]

    def feed(self, node: Node, event: Event) -> None:
        if self.nodes.get(node.name) is not node:
            return  # crashed (or replaced by a new incarnation)
        self.execute(node, node.handle(self.now, event))

    def execute(self, node: Node, commands: list[Command]) -> None:
        for cmd in commands:
            if isinstance(cmd, SendFrame):
                for target in cmd.targets:
                    self.sent.append((self.now, node.name, target, cmd.frame))
                    if self.drop(target, cmd):
                        continue
                    self.at(
                        self.now + LATENCY_MS, self._arrival(target, FrameReceived(frame=cmd.frame))
                    )
            elif isinstance(cmd, SetTimer):
                self.at(cmd.at_ms, partial(self.feed, node, TimerFired(name=cmd.name)))
            elif isinstance(cmd, Note):
                self.notes.append((self.now, cmd))

    def _arrival(self, target: str, event: Event) -> Callable[[], None]:
        def arrive() -> None:
            node = self.nodes.get(target)
            if node is not None:
                self.feed(node, event)

        return arrive

    def regular_installs(self, token: str, after_ms: int) -> list[list[str]]:
        return [
            list(n.fields["members"])  # type: ignore[call-overload]
            for t, n in self.notes
            if n.event == "install"
            and n.fields["d"] == token
            and n.fields["kind"] == "regular"
            and t > after_ms
        ]

    def proposals(self, after_ms: int) -> list[list[str]]:
        return [
            list(n.fields["members"])  # type: ignore[call-overload]
            for t, n in self.notes
            if n.event == "propose" and t > after_ms
        ]


def _cluster(names: list[str], settings: dict[str, Any] | None = None) -> Net:
    net = Net(names)
    net.settings = settings or {}
    for i, name in enumerate(names):  # heartbeat phases 7 ms apart
        net.at(7 * i, partial(net.start, name, 0))
    return net


def test_a_restarted_daemon_merges_everything_reachable_in_one_round() -> None:
    # Seed 7310294 (L3): the restarted d1 (token d1:1, the smallest candidate) proposed on its
    # first tick to the two daemons it had heard so far, then merged each further daemon in a
    # round of its own as its heartbeat arrived: five regular installs where one suffices.
    names = [f"d{i}" for i in range(1, 7)]
    net = _cluster(names)
    net.run_until(1000)
    everyone = sorted(make_token(n, 0) for n in names)
    assert all(node.members == tuple(everyone) for node in net.nodes.values())

    net.crash("d1")
    net.run_until(2000)
    rest = tuple(everyone[1:])
    assert all(node.members == rest for node in net.nodes.values())

    restart = 2003  # mid heartbeat period: the others' Status frames arrive one by one
    net.at(restart, lambda: net.start("d1", 1))
    net.run_until(3500)
    final = sorted([make_token("d1", 1), *rest])
    assert net.proposals(restart) == [final]
    assert net.regular_installs("d1:1", restart) == [final]
    for token in rest:
        assert net.regular_installs(token, restart) == [final], token


def test_a_merge_does_not_wait_once_every_peer_is_heard() -> None:
    # The wait for a merge to settle ends as soon as every configured peer is a candidate.
    names = ["d1", "d2", "d3"]
    net = _cluster(names)
    net.run_until(1000)
    net.crash("d1")
    net.run_until(2000)
    restart = 2003
    net.at(restart, lambda: net.start("d1", 1))
    net.run_until(3000)
    gathers = [(t, n.fields["reason"]) for t, n in net.notes if n.event == "gather" and t > restart]
    first = next(t for t, n in net.notes if n.event == "propose" and t > restart)
    # Every daemon sends a Status at least every heartbeat_ms (40): all are heard well before
    # the longest wait (2 x heartbeat_ms), and the proposal goes out on the next tick.
    assert first - restart <= 40 + 10 + LATENCY_MS, gathers
    assert net.regular_installs("d1:1", restart) == [["d1:1", "d2:0", "d3:0"]]


def test_a_proposal_takes_a_restarted_members_new_incarnation_at_once() -> None:
    # d1 proposes to d3:0, which has just crashed (not suspected yet), and d3 restarts as d3:1
    # while d1 collects reports. d1 re-proposes with d3:1 in d3:0's place instead of dropping d3
    # at the flush timeout and merging d3:1 in a second round.
    names = ["d1", "d2", "d3", "d4"]
    net = _cluster(names)
    net.run_until(1000)
    net.crash("d3")
    net.run_until(1050)
    net.feed(net.nodes["d4"], ShutdownRequested())  # a clean leave: d1 proposes at once
    net.crash("d4")
    net.run_until(1060)
    assert net.proposals(1050) == [["d1:0", "d2:0", "d3:0"]]
    net.at(1070, lambda: net.start("d3", 1))
    net.run_until(2500)
    final = ["d1:0", "d2:0", "d3:1"]
    assert net.proposals(1060) == [final]
    for token in ("d1:0", "d2:0"):
        assert net.regular_installs(token, 1050) == [final], token
    assert net.regular_installs("d3:1", 1070) == [final]


def test_a_lost_propose_is_resent_within_the_round() -> None:
    # protocol/membership.md section 7: the proposer resends its Propose every heartbeat_ms to
    # the members whose Flush has not come. Without it, the lost Propose cost the whole flush
    # timeout, a view without d3, and a second round to merge d3 back (swarm seed 115).
    names = ["d1", "d2", "d3"]
    net = _cluster(names)
    net.run_until(1000)
    lost: list[int] = []

    def drop_first_propose(target: str, cmd: Command) -> bool:
        if target == "d3" and isinstance(cmd, SendFrame) and isinstance(cmd.frame, Propose):
            lost.append(net.now)
            return len(lost) == 1
        return False

    net.drop = drop_first_propose
    net.feed(net.nodes["d2"], ShutdownRequested())  # a clean leave: d1 proposes at once
    net.crash("d2")
    net.run_until(2000)
    assert len(lost) == 2 and lost[1] - lost[0] >= 40  # the resend, a heartbeat later
    final = ["d1:0", "d3:0"]
    assert net.proposals(1000) == [final]
    assert net.regular_installs("d1:0", 1000) == [final]
    assert net.regular_installs("d3:0", 1000) == [final]


def test_seed_7310294_keeps_the_l3_bound() -> None:
    # The simulated run that found it (protocol/membership.md, section 10, finding 5).
    result = run(random_options(7310294))
    assert [v for v in result.violations if v.startswith("L")] == []


def test_an_install_naming_a_daemon_outside_its_cleanups_is_refused_whole() -> None:
    """A faulty coordinator's Install whose group table names a daemon of no cleanup: applying
    it raised KeyError in the group table after the view had switched (a half-installed view,
    the round never finished). Now it is refused before anything changes."""
    names = ["d1", "d2"]
    net = _cluster(names)
    net.run_until(1000)
    before = net.nodes["d2"].view

    def corrupt(target: str, cmd: Command) -> bool:
        frame = cmd.frame if isinstance(cmd, SendFrame) else None
        if target == "d2" and isinstance(frame, Install):
            bad = replace(frame, groups=(*frame.groups, ("dx:0", "#c#dx", ("g",))))
            net.at(net.now + LATENCY_MS, net._arrival(target, FrameReceived(frame=bad)))
            return True
        return False

    net.drop = corrupt
    net.crash("d1")
    net.at(1003, lambda: net.start("d1", 1))
    net.run_until(2000)
    notes = [n for _, n in net.notes if n.fields.get("d") == "d2:0"]
    assert any(n.event == "install_rejected" for n in notes)
    assert not any(n.event == "frame_error" for n in notes)  # it failed halfway before
    assert net.nodes["d2"].view != before  # d2 went on to a view of its own, whole
