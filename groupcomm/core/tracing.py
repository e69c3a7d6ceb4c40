"""The observable trace: which commands are observable and how each becomes a trace event.

One mapping, shared by the simulator and the daemon's ``--trace`` so both write the same format
(``docs/simulation.md``, "Trace format"); the writer adds ``t``. Connection ``open``/``close``
come from session events and are written by the drivers themselves.
"""

from __future__ import annotations

from groupcomm.core.commands import (
    RECORD,
    CloseSession,
    Command,
    DeliverMembership,
    DeliverMessage,
    Note,
    RejectRequest,
)
from groupcomm.core.service import SERVICE_MASK, Service

TRACED_NOTES = frozenset(("install", "send", "deliver"))
SERVICE_NAMES = {int(s): s.name for s in Service}


def trace_event(token: str, cmd: Command) -> dict[str, object] | None:
    """The event for ``cmd`` executed by daemon ``token``, or None if it is not observable."""
    if isinstance(cmd, DeliverMessage):
        if cmd.conn == RECORD:
            return None  # the daemon's own record (retention), no connection's delivery
        return {
            "ev": "cdeliver",
            "p": cmd.conn,
            "d": token,
            "mid": cmd.mid,
            "svc": SERVICE_NAMES[cmd.service & SERVICE_MASK],
            "groups": list(cmd.groups),
            "sender": cmd.sender,
        }
    if isinstance(cmd, DeliverMembership):
        return _view_event(token, cmd)
    if isinstance(cmd, Note):
        return {"ev": cmd.event, **cmd.fields} if cmd.event in TRACED_NOTES else None
    if isinstance(cmd, RejectRequest):
        return {
            "ev": "reject",
            "p": cmd.conn,
            "d": token,
            "op": cmd.op,
            "group": cmd.group,
            "reason": cmd.reason,
        }
    if isinstance(cmd, CloseSession):
        return {"ev": "close", "p": cmd.conn, "d": token}
    return None


def _view_event(token: str, cmd: DeliverMembership) -> dict[str, object]:
    event: dict[str, object] = {
        "ev": "gview",
        "p": cmd.conn,
        "d": token,
        "group": cmd.group,
        "kind": cmd.kind,
        "gid": cmd.gid,
    }
    if cmd.kind != "self_leave":
        event["members"] = list(cmd.members)  # transitional: the members moving together
    if cmd.kind == "regular":
        event["vs_sets"] = [list(s) for s in cmd.vs_sets]
    if cmd.kind != "transitional":
        event["cause"] = cmd.cause
    if cmd.changed:
        event["changed"] = list(cmd.changed)
    return event
