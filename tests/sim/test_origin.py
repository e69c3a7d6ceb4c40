"""AUTH-1 in the simulator (``protocol/frames.md`` "Origin"): a daemon that sends a frame of
another origin fails the run, so the protocol's own traffic is proven never to need relaying
(which the TCP links would refuse). Shown here to reject a mutated daemon that forges."""

from __future__ import annotations

from dataclasses import replace

import pytest

from groupcomm.core.frames import Frame, Status
from sim.options import SimOptions
from sim.run import run
from sim.runner import Simulation


def test_the_protocol_sends_only_frames_of_its_own_origin() -> None:
    result = run(SimOptions(seed=11, daemons=3, loss=0.1, safety_ms=1500, settle_ms=2500))
    assert not [v for v in result.violations if "AUTH-1" in v]


def test_a_daemon_that_forges_another_origin_fails_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    send = Simulation.send

    def forging(self: Simulation, src: str, targets: tuple[str, ...], frame: Frame) -> None:
        if src == "d1" and isinstance(frame, Status):  # d1 speaks as d2
            frame = replace(frame, sender="d2:" + frame.sender.rpartition(":")[2])
        send(self, src, targets, frame)

    monkeypatch.setattr(Simulation, "send", forging)
    result = run(SimOptions(seed=11, daemons=3, safety_ms=1500, settle_ms=2500))
    assert any("AUTH-1" in v and "d1 sends a Status of d2" in v for v in result.violations)
