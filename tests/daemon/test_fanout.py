"""The fan-out choice (``groupcomm.daemon.fanout``): framing of single-part epgm messages, the
clear error when PGM is missing, and which frames may use a fan-out that does not carry control
frames. Real multicast between daemons is tested in ``tests/netlan``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from groupcomm.config import parse_config
from groupcomm.core.frames import Data, Msg
from groupcomm.core.ids import ViewId
from groupcomm.daemon.fanout import EpgmFanout, TransportUnavailable, split_single_part
from groupcomm.daemon.main import run_daemon
from groupcomm.daemon.transport import ZmqTransport
from tests.daemon.test_transport import configs, status


@pytest.fixture
def ctx() -> Iterator[zmq.Context[Any]]:
    c: zmq.Context[Any] = zmq.Context()
    yield c
    c.destroy(linger=0)


class RecordingFanout:
    """Stands in for an epgm fan-out: records what the transport hands it."""

    description = "epgm 239.1.1.1:1 rate_kbps=1"
    carries_control = False

    def __init__(self, socket: zmq.Socket[bytes]) -> None:
        self.socket = socket
        self.sent: list[list[bytes]] = []

    def send(self, parts: list[bytes]) -> int:
        self.sent.append(parts)
        return sum(len(p) for p in parts)

    def recv(self) -> list[bytes]:
        raise zmq.Again()

    def close(self, linger_ms: int) -> None:
        self.socket.close(linger=linger_ms)


def test_single_part_framing_round_trips() -> None:
    parts = [b"F", "dé1".encode(), b"12345678", b"\x93frame"]
    kind, sender, fp, data = parts
    blob = b"".join((kind, len(sender).to_bytes(2, "big"), sender, fp, data))
    assert split_single_part(blob) == parts
    # Too short for the header it announces: one part back, which the transport counts as bad.
    for torn in (b"", b"F", b"F\x00", b"F\x00\x05abc", b"F\x00\x02d1" + b"1234567"):
        assert len(split_single_part(torn)) == 1


def test_missing_pgm_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zmq, "has", lambda capability: False)
    cfg = parse_config({"daemon": {"transport": "epgm"}, "epgm": {"interface": "eth0"}})
    with pytest.raises(TransportUnavailable, match="libzmq3-dev") as info:
        EpgmFanout(cfg.epgm, zmq.Context.instance())
    assert "zmq.has('pgm') is False" in str(info.value)


def test_daemon_refuses_to_start_without_pgm(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(zmq, "has", lambda capability: False)
    cfg = parse_config(
        {"daemon": {"transport": "epgm", "client_endpoints": []}, "epgm": {"interface": "eth0"}}
    )
    assert run_daemon(cfg, configure_logs=False) == 1
    err = capsys.readouterr().err
    assert 'transport = "epgm" needs pyzmq built against a libzmq with OpenPGM' in err
    assert "scripts/setup.sh" in err


def test_only_data_and_ordering_use_a_data_only_fanout(ctx: zmq.Context[Any]) -> None:
    c1, _, _ = configs(["d1", "d2", "d3"])
    t = ZmqTransport(c1, context=ctx)
    assert t.settings["data_plane"] == "tcp"
    t.fanout.close(0)
    fake = RecordingFanout(ctx.socket(zmq.SUB))
    t.fanout = fake
    t._fanout_all = fake.carries_control
    everyone = ("d2", "d3")
    msg = Msg(kind=0, conn="#c#d1", service=4, groups=("g",), msg_type=0, payload=b"x")
    t.send(everyone, Data(view=ViewId(1, "d1:1"), sender="d1:1", first_seq=1, msgs=(msg,)))
    assert len(fake.sent) == 1
    t.send(everyone, status())  # a heartbeat: over the TCP mesh, never behind PGM repairs
    t.send(("d2",), Data(view=ViewId(1, "d1:1"), sender="d1:1", first_seq=1, msgs=(msg,)))
    assert len(fake.sent) == 1
    # Per peer: the fanned-out frame plus what went to the mesh (sent, or dropped while the
    # peer is not connected): d2 got all three, d3 the first two.
    per_peer = {n: t.peer[n].frames_out + t.peer[n].dropped_out for n in everyone}
    assert per_peer == {"d2": 3, "d3": 2}
    assert t.stats()["bytes_fanout"] == sum(len(p) for p in fake.sent[0])
    t.close()
