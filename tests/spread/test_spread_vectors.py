"""Golden vectors of the Spread client protocol (``protocol/vectors/spread/*.json``), executed
both ways: each vector's ``fields`` are encoded with ``groupcomm.wire.spread`` and compared byte
for byte with ``hex``, and ``hex`` is parsed back (``SpreadReader`` for what clients send, the
decoders and the independent test client ``spclient`` for what the daemon sends) to the same
fields. The bytes follow the design notes' observed wire values (a join view is type
``0x80001180``, AGREED data ``0x80000090``, SAFE|SELF_DISCARD ``0x800000e0``)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from groupcomm.wire import spread as sp
from tests.spread.spclient import SpClient, connect_bytes

VECTORS = sorted((Path(__file__).resolve().parents[2] / "protocol/vectors/spread").glob("*.json"))


def encode(kind: str, f: dict[str, Any]) -> bytes:
    if kind == "connect":
        major, minor, patch = f["version"]
        name = f["name"].encode()
        return sp.encode_connect(major, minor, patch, f["flags"], name, auth=tuple(f["auth"]))
    if kind == "client_message":
        hint = sp.hint_for(f["mess_type"], f["little_endian"])
        return sp.encode_message(
            f["type"], f["sender"], tuple(f["groups"]), bytes.fromhex(f["body"]),
            hint=hint, little_endian=f["little_endian"],
        )  # fmt: skip
    if kind == "accept":
        major, minor, patch = f["library"]
        request = sp.ConnectRequest(major, minor, patch, 0, b"")
        return sp.encode_accept(request, f["private_name"])
    if kind == "auth_list":
        return sp.encode_auth_list(f["methods"])
    if kind == "reject":
        return sp.encode_reject(f["code"])
    if kind == "data":
        return sp.encode_message(
            f["type"], f["sender"], tuple(f["groups"]), bytes.fromhex(f["body"]),
            hint=sp.hint_for(f["mess_type"]),
            old_type=f.get("old_type"),
        )  # fmt: skip
    if kind == "membership":
        gid = (f["gid"][0], f["gid"][1], f["gid"][2])
        if f["type"] == sp.TRANSITION_MESS:
            body = sp.group_id_bytes(gid)
        elif f["type"] == sp.CAUSED_BY_LEAVE:
            body = b""
        else:
            sets = tuple(tuple(s) for s in f["vs_sets"])
            body = sp.membership_body(gid, sets, f["local"])
        return sp.encode_message(f["type"], f["group"], tuple(f["members"]), body)
    raise AssertionError(kind)


def parse_client(kind: str, data: bytes, f: dict[str, Any]) -> None:
    """What clients send: the daemon's reader gives back the fields, however the bytes are
    cut into reads."""
    reader = sp.SpreadReader()
    if kind == "client_message":  # after a connect of a 3.14 library: no auth step
        reader.feed(connect_bytes("x", (3, 14, 0), True))
    items: list[sp.SpreadItem] = []
    for i in range(len(data)):
        items += reader.feed(data[i : i + 1])
    if kind == "connect":
        request, *rest = items
        assert isinstance(request, sp.ConnectRequest)
        assert (request.major, request.minor, request.patch) == tuple(f["version"])
        assert (request.flags, request.name) == (f["flags"], f["name"].encode())
        assert [r.methods for r in rest if isinstance(r, sp.AuthChoice)] == (
            [tuple(f["auth"])] if f["auth"] else []
        )
        return
    (msg,) = items
    assert isinstance(msg, sp.ClientMessage)
    assert msg.type == f["type"] and msg.sender == f["sender"]
    assert list(msg.groups) == f["groups"] and msg.body.hex() == f["body"]
    assert msg.little_endian == f["little_endian"]
    assert msg.mess_type == f["mess_type"] & 0xFFFF
    assert sp.message_problem(msg, f["sender"], sp.MAX_MESSAGE_BODY_LEN) == ""


def parse_daemon(kind: str, data: bytes, f: dict[str, Any]) -> None:
    """What the daemon sends, read by the independent test client."""
    if kind not in ("data", "membership"):
        return
    a, b = socket.socketpair()
    with a, b:
        b.sendall(data)
        client = SpClient.__new__(SpClient)
        client.sock, client._buf, client.little = a, b"", True
        got = client.receive()
    assert got.type == f["type"]
    if kind == "data":
        assert (got.sender, got.groups, got.body.hex()) == (f["sender"], f["groups"], f["body"])
        assert got.mess_type == f["mess_type"] and got.old_type == f.get("old_type", 0)
        return
    assert (got.sender, got.groups) == (f["group"], f["members"])
    if got.type & sp.REG_MEMB_MESS:
        gid, sets, mine = got.membership()
        assert (list(gid), sets, mine) == (f["gid"], f["vs_sets"], f["local"])
        body = sp.decode_membership_body(got.body)
        assert body.vs_sets == tuple(tuple(s) for s in f["vs_sets"])


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path: Path) -> None:
    vector = json.loads(path.read_text())
    kind, fields, data = vector["kind"], vector["fields"], bytes.fromhex(vector["hex"])
    assert encode(kind, fields).hex() == vector["hex"]
    if vector["direction"] == "client":
        parse_client(kind, data, fields)
    else:
        parse_daemon(kind, data, fields)


def test_there_is_a_vector_for_every_kind() -> None:
    kinds = {json.loads(p.read_text())["kind"] for p in VECTORS}
    assert kinds == {
        "connect", "client_message", "accept", "auth_list", "reject", "data", "membership",
    }  # fmt: skip
