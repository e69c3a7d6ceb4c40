"""The client-protocol golden vectors (protocol/vectors/client/): each file's fields encode to
exactly its bytes, and its bytes decode back to the same fields, so a second implementation of
protocol/client.md (positions, replays, gaps, policies) can be checked against them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from groupcomm.wire.client import (
    FormatsReq,
    GapMsg,
    Hello,
    JoinReq,
    Msgs,
    Reply,
    Request,
    ViewSet,
    decode_reply,
    decode_request,
    encode,
)

VECTORS = sorted((Path(__file__).resolve().parents[2] / "protocol/vectors/client").glob("*.json"))


def build(kind: str, f: dict[str, Any]) -> Request | Reply:
    match kind:
        case "hello":
            return Hello(f["name"], f["want_membership"], f["token"], f["policy"])
        case "join":
            return JoinReq(f["req"], f["group"], f["since"])
        case "msgs":
            return Msgs(
                tuple(
                    (m[0], tuple(m[1]), m[2], m[3], bytes.fromhex(m[4]), m[5], m[6], m[7])
                    for m in f["msgs"]
                )
            )
        case "gap":
            return GapMsg(
                tuple(f["groups"]), f["reason"], f["after"], f["before"], f["first"], f["last"],
                f["count"],
            )  # fmt: skip
        case "formats":
            return FormatsReq(tuple(f["names"]))
        case "viewset":
            return ViewSet(
                f["kind"], tuple(f["members"]), f["cause"], tuple(map(tuple, f["vs_sets"])),
                tuple(f["changed"]), tuple(f["groups"]), tuple(f["gids"]),
            )  # fmt: skip
    raise AssertionError(f"unknown vector kind {kind}")


REQUEST_KINDS = ("hello", "join", "formats")


def test_there_are_vectors() -> None:
    assert len(VECTORS) >= 5


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_encodes_and_decodes_exactly(path: Path) -> None:
    vector = json.loads(path.read_text())
    message = build(vector["kind"], vector["fields"])
    data = bytes.fromhex(vector["hex"])
    assert encode(message) == data
    decoded = decode_request(data) if vector["kind"] in REQUEST_KINDS else decode_reply(data)
    assert decoded == message
