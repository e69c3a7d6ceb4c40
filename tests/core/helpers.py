"""Small builders for core tests."""

from __future__ import annotations

from groupcomm.core.frames import Flush, Msg
from groupcomm.core.ids import ViewId
from groupcomm.core.service import Kind, Service

OLD = ViewId(3, "a:0")
NEW = ViewId(4, "a:0")


def msg(text: str, service: Service = Service.AGREED, conn: str = "#c#a") -> Msg:
    return Msg(
        kind=Kind.DATA,
        conn=conn,
        service=int(service),
        groups=("g",),
        msg_type=0,
        payload=text.encode(),
    )


def flush(
    sender: str,
    delivered: int,
    order: tuple[tuple[int, str, int, int], ...],
    msgs: dict[tuple[str, int], Msg],
    acks: dict[str, int],
    old: ViewId = OLD,
    members: tuple[str, ...] = ("a:0", "b:0", "c:0"),
) -> Flush:
    return Flush(
        proposal=NEW,
        sender=sender,
        old_view=old,
        old_members=members,
        delivered_upto=delivered,
        order=order,
        msgs=tuple((s, q, m) for (s, q), m in sorted(msgs.items())),
        acks=tuple(sorted(acks.items())),
        local_groups=(),
    )
