"""What ``Connection`` yields: delivered messages and membership notices, as typed dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from groupcomm.core.ids import position_text
from groupcomm.core.service import SELF_DISCARD, SERVICE_MASK, Service


class Message(NamedTuple):
    """A delivered multicast. ``sender`` is the sending connection's private name, ``groups``
    the destination groups as sent, ``mid`` a cluster-unique message id, ``conf`` and ``n`` the
    configuration it was delivered in and its ordinal there (0 for a message delivered early,
    which has none): with ``mid`` its ``position`` (protocol/retention.md section 1), which
    ``Connection.join(group, since=...)`` takes back.

    Immutable like the other events; a NamedTuple rather than a frozen dataclass because one is
    built per delivered message and that is about 2.5x cheaper."""

    sender: str
    groups: tuple[str, ...]
    service: int
    msg_type: int
    payload: bytes
    mid: str
    conf: str = ""  # "" from a daemon older than positions
    n: int = 0

    @property
    def position(self) -> str:
        """Where this message is in its groups' streams: an opaque string to store and give
        back as ``join(group, since=position)`` (a replay continues after it)."""
        return position_text(self.conf, self.n, self.mid)

    @property
    def service_level(self) -> Service:
        """The service level, without the SELF_DISCARD flag."""
        return Service(self.service & SERVICE_MASK)

    @property
    def self_discard(self) -> bool:
        return bool(self.service & SELF_DISCARD)

    def unpack(self) -> Any:
        """Decode a payload sent with ``Connection.multicast_obj``."""
        return msgpack.unpackb(self.payload, raw=False)


@dataclass(frozen=True, slots=True)
class RegularView:
    """A regular membership view of ``group``. ``cause`` is JOIN, LEAVE, DISCONNECT or NETWORK;
    ``changed`` lists who joined/left; ``vs_sets`` groups the members by the view they come
    from (virtual synchrony sets); ``index`` is this connection's position in ``members`` (-1 if
    absent)."""

    group: str
    gid: str
    members: tuple[str, ...]
    cause: str
    vs_sets: tuple[tuple[str, ...], ...]
    changed: tuple[str, ...]
    index: int


@dataclass(frozen=True, slots=True)
class TransitionalView:
    """Members may have been lost: messages up to the next ``RegularView`` are delivered in a
    smaller configuration (Extended Virtual Synchrony). ``gid`` names the regular views it
    links (``"<previous gid> > <next gid>"``); ``members`` are the members that move with this
    connection from the previous regular view into the next one, itself included."""

    group: str
    gid: str
    members: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SelfLeave:
    """This connection left ``group``; nothing more comes for it."""

    group: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The daemon refused request ``req`` (as returned by ``join``/``leave``/``multicast``);
    nothing changed. ``op`` is ``join``, ``leave`` or ``mcast``; ``code`` is ``denied`` for a
    refusal by the daemon's ``[[acl]]`` rules (``group`` is then the group that denied it),
    else ``""``."""

    req: int
    op: str
    group: str | None
    reason: str
    code: str = ""


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages of ``groups`` this connection does not get, in the stream where they would
    have been (protocol/retention.md section 4). ``reason``: ``not retained`` (older than what
    the daemon keeps, or evicted during the replay), ``restart`` (the daemon was down
    meanwhile), ``unknown position`` (not in this daemon's history: another partition's), or
    ``dropped`` (this connection's ``slow_consumer="drop"`` policy). ``after``/``before``: the
    positions around the gap, ``first``/``last``: the first and last missing ones ("" where
    unknown); ``count``: how many (-1 when unknown)."""

    groups: tuple[str, ...]
    reason: str
    after: str = ""
    before: str = ""
    first: str = ""
    last: str = ""
    count: int = -1


Event = Message | RegularView | TransitionalView | SelfLeave | Rejected | Gap
