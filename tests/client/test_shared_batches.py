"""One turn's ``msgs`` batch is encoded once for every session that gets the same messages
(the sessions of one group), and never shared where the messages differ or across turns."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

import groupcomm.daemon.frontend as frontend_module
from groupcomm.core.commands import DeliverMessage
from groupcomm.daemon.frontend import NativeFrontEnd
from groupcomm.daemon.sessions import Notice
from groupcomm.wire.client import Msgs, decode_reply, encode_msgs
from tests.client.harness import ListLog


def message(conn: str, n: int, group: str = "g") -> DeliverMessage:
    return DeliverMessage(
        conn, "#p#d2", (group,), 0x10, 0, b"line %d" % n, f"d2:1|4.d1:1|{n}", "R4.d1:1", n
    )


def test_a_batch_is_encoded_once_per_turn_for_sessions_with_the_same_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encodes: list[int] = []
    real = encode_msgs

    def counting(entries: list[object]) -> bytes:
        encodes.append(len(entries))
        return real(entries)  # type: ignore[arg-type]

    monkeypatch.setattr(frontend_module, "encode_msgs", counting)
    with tempfile.TemporaryDirectory() as tmp:
        fe = NativeFrontEnd([f"ipc://{Path(tmp)}/d.sock"], "d1", 4096, 1 << 20, ListLog())
        sent: dict[int, list[bytes]] = {}

        def capture(link: int, data: bytes) -> bool:
            sent.setdefault(link, []).append(data)
            return True

        monkeypatch.setattr(fe, "_send", capture)

        def turn(per_session: dict[str, list[int]], extra: dict[str, list[int]]) -> None:
            for link, (conn, ns) in enumerate(per_session.items(), 1):
                notices: list[Notice] = [message(conn, n) for n in ns]
                notices += [message(conn, n, "h") for n in extra.get(conn, [])]
                fe._send_notices(conn, link, notices)
            fe.flush_output()

        turn({"#a#d1": [1, 2, 3], "#b#d1": [1, 2, 3], "#c#d1": [1, 2, 3]}, {"#c#d1": [4]})
        assert encodes == [3, 4]  # a and b share one encoding; c's batch differs (it has 4)
        assert sent[1] == sent[2] and sent[1] != sent[3]
        for link, last in ((1, 3), (3, 4)):
            reply = decode_reply(sent[link][0])
            assert isinstance(reply, Msgs) and reply.msgs[-1][7] == last
        encodes.clear()
        turn({"#a#d1": [5], "#b#d1": [5]}, {})
        assert encodes == [1]  # a new turn encodes again (nothing kept across turns)
        fe.close()
