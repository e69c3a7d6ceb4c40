"""Large messages in the simulator (SVC-FRAG, protocol/services.md section 7): with fragments
of a few bytes and small windows, the workload's messages are cut by partitions and view
changes; every checker still holds, and a sender that does not restart a cut message is caught.
"""

from __future__ import annotations

import dataclasses

import pytest

from groupcomm.core import fragments, node
from sim.options import SimOptions, random_options
from sim.run import run


def _options(seed: int) -> SimOptions:
    # 24-byte payloads in up to 6 fragments; a window of 16 messages or 256 bytes splits them
    # across Data frames, so view changes fall between a message's fragments. The longer quiet
    # phase lets the (six times longer) backlog drain before "end" (liveness, not safety).
    return dataclasses.replace(
        random_options(seed),
        fragment_bytes=4,
        window_bytes=256,
        window_msgs=16,
        settle_ms=9000,
        quiet_ms=7500,
    )


def _count_cuts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    cuts = [0]
    real = fragments.Reassembly.discard_all

    def counting(self: fragments.Reassembly) -> int:
        n = real(self)
        cuts[0] += n
        return n

    monkeypatch.setattr(fragments.Reassembly, "discard_all", counting)
    return cuts


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_cut_large_messages_keep_every_property(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    cuts = _count_cuts(monkeypatch)
    result = run(_options(seed))
    assert result.ok, "\n".join(map(str, result.violations[:10]))
    assert cuts[0] > 0  # view changes did cut messages in half


def test_a_sender_that_does_not_restart_a_cut_message_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mutation: the fragments of the new view continue the old count, so receivers never see
    the start; the message is sent (its last fragment) but nobody delivers it."""
    monkeypatch.setattr(node.Node, "_restart_fragmented", lambda self: None)
    result = run(_options(2))
    assert not result.ok
