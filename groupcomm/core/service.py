"""Service levels and message kinds (bit values follow the Spread toolkit's sp.h)."""

from __future__ import annotations

from enum import IntEnum


class Service(IntEnum):
    UNRELIABLE = 0x01
    RELIABLE = 0x02
    FIFO = 0x04
    CAUSAL = 0x08
    AGREED = 0x10
    SAFE = 0x20


SELF_DISCARD = 0x40
SERVICE_MASK = 0x3F
MAX_GROUPS_PER_MESSAGE = 100
MAX_GROUP_NAME_BYTES = 128


class Kind(IntEnum):
    """What an ordered stream entry is. Group operations travel in the AGREED stream so every
    daemon derives identical group views without extra rounds (SP-VIEW-ORDER)."""

    DATA = 0
    JOIN = 1
    LEAVE = 2
    DISCONNECT = 3
    # One piece of a data message longer than ``CoreConfig.fragment_bytes``: a header
    # (``fragments.HEADER``) and a chunk; reassembled before delivery (protocol/services.md s.7).
    FRAGMENT = 4


_DATA = int(Kind.DATA)  # plain ints: comparing an int with an IntEnum member costs more
_FRAGMENT = int(Kind.FRAGMENT)
_FIFO = int(Service.FIFO)


def is_group_op(kind: int) -> bool:
    """A join, leave or disconnect: an entry of the ordered stream that changes the groups."""
    return kind != _DATA and kind != _FRAGMENT


def may_be_early(kind: int, service: int) -> bool:
    """Whether a message may be delivered on receipt, before its place in the total order: data
    of the levels below CAUSAL (protocol/ordering.md section 8.1). The sender marks only these
    (``Epoch.stamp``) and the codec refuses a mark on anything else (``wire.peer``)."""
    return kind == _DATA and service & SERVICE_MASK <= _FIFO


class Cause(IntEnum):
    JOIN = 0x100
    LEAVE = 0x200
    DISCONNECT = 0x400
    NETWORK = 0x800


def validate_group_name(name: str) -> str | None:
    """Return an error text, or None when ``name`` is a valid public group name."""
    if not name:
        return "group name is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_GROUP_NAME_BYTES:
        return f"group name longer than {MAX_GROUP_NAME_BYTES} bytes"
    if any(ord(c) < 0x21 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        return "group name contains whitespace, control or surrogate characters"
    return None


def is_private_name(name: str) -> bool:
    """Private names are ``#conn#daemon``: the address of one connection (SP-PRIV)."""
    return name.startswith("#")
