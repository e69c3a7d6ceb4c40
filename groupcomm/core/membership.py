"""Daemon membership: failure detection, the view-change round, and installing a view.

Round (protocol/membership.md): a change is triggered by a suspected member (silence beyond
``suspect_timeout_ms``), a member that left, or a live daemon outside the view (merge). The
smallest live daemon proposes a view with a fresh epoch (for a merge, once it has listened a
heartbeat period for every daemon that became reachable); members accept the highest proposal,
freeze (no sends, no deliveries) and report their old-view state in a Flush; the proposer decides
the cleanup of every old view (``viewchange``) and sends Install; each member delivers its old
view's cleanup (regular part, transitional configuration, transitional part) and installs the
new regular view. A proposer missing reports re-proposes without the silent ones; a member
missing the Install restarts the round. Each side of a partition does this on its own.

Functions over the ``Node``'s membership fields; no message state (``Epoch`` owns that).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from groupcomm.core.commands import Command, Note, SendFrame
from groupcomm.core.epoch import Epoch
from groupcomm.core.frames import Cleanup, Flush, Install, Leave, Msg, Propose, Status
from groupcomm.core.groups import GroupOp, joined_by
from groupcomm.core.ids import (
    ViewId,
    regular_conf_id,
    token_incarnation,
    token_name,
    transitional_conf_id,
)
from groupcomm.core.service import Kind
from groupcomm.core.viewchange import decide_install

if TYPE_CHECKING:
    from groupcomm.core.node import Node

OPERATIONAL = "operational"
GATHER = "gather"
MAX_REPORTED = 1 << 22  # bound on ordering entries a Flush may describe (hostile-input guard)


def _plausible(frame: Flush) -> bool:
    """Cheap sanity bounds so a garbage Flush cannot make the proposer loop for ages."""
    if frame.sender not in frame.old_members:
        return False
    total = sum(count for _, _, _, count in frame.order)
    top = max((g + c - 1 for g, _, _, c in frame.order), default=0)
    return total <= MAX_REPORTED and frame.delivered_upto <= max(top, 0) + MAX_REPORTED


@dataclass(slots=True)
class Heard:
    at_ms: int
    token: str
    view: ViewId
    proposal: ViewId | None


def accepted_view(node: Node) -> ViewId | None:
    return node.accepted.view if node.accepted is not None else None


# -------------------------------------------------------- failure detector
def on_status(node: Node, frame: Status, out: list[Command]) -> None:
    sender = frame.sender
    name = token_name(sender)
    if name == node.name or name not in node.cfg.peers:
        return
    known = node.heard.get(name)
    if known is not None and token_incarnation(known.token) > token_incarnation(sender):
        return  # a delayed frame from an older incarnation
    node.heard[name] = Heard(node.now, sender, frame.view, frame.proposal)
    node.max_epoch = max(node.max_epoch, frame.max_epoch, frame.view.epoch)
    if node.proposing is not None:
        _replace_restarted(node, node.proposing, sender, out)
    if frame.view == node.view:
        if node.phase == OPERATIONAL:
            # Frozen while gathering: the stability we advertise must be backed by the acks
            # in our Flush report (EVS-7.1 relies on it, see protocol/membership.md).
            node.epoch.on_status(frame)
    elif node.last_install is not None and frame.proposal == node.view:
        _resend_install(node, sender, out)


def _replace_restarted(node: Node, proposal: Propose, sender: str, out: list[Command]) -> None:
    """A proposed member restarted (``sender`` is its new incarnation): its old token will
    never report, so propose again at once with the new token in its place, instead of
    dropping it at the flush timeout and merging the new incarnation in a round of its own."""
    name = token_name(sender)
    stale = [
        m
        for m in proposal.members
        if token_name(m) == name and token_incarnation(m) < token_incarnation(sender)
    ]
    if not stale:
        return
    members = tuple(sorted({*(m for m in proposal.members if m not in stale), sender}))
    out.append(_gather_note(node, "gather", f"restarted {stale[0]}", list(members)))
    propose(node, out, members)


def _resend_install(node: Node, sender: str, out: list[Command]) -> None:
    # The member flushed to our view but missed the Install: send it again (rate-limited).
    assert node.last_install is not None
    if sender not in node.last_install.members:
        return
    if node.now - node.install_resent.get(sender, -(10**9)) < node.cfg.heartbeat_ms:
        return
    node.install_resent[sender] = node.now
    out.append(SendFrame(targets=(token_name(sender),), frame=node.last_install))


def on_leave(node: Node, frame: Leave, out: list[Command]) -> None:
    if frame.sender in node.members or token_name(frame.sender) in node.heard:
        node.left.add(frame.sender)
        node.heard.pop(token_name(frame.sender), None)
        if node.phase == OPERATIONAL:
            start_change(node, out, "leave")


def _alive(node: Node) -> dict[str, str]:
    """Live peers: name -> token (heard recently, not left)."""
    horizon = node.now - node.cfg.suspect_timeout_ms
    return {
        name: h.token
        for name, h in node.heard.items()
        if h.at_ms >= horizon and h.token not in node.left
    }


def check_membership(node: Node, out: list[Command]) -> None:
    if node.phase == OPERATIONAL:
        reason = _change_reason(node)
        if reason:
            start_change(node, out, reason)
        return
    if node.now < node.deadline:
        if node.proposing is not None:
            _resend_proposal(node, node.proposing, out)
        elif node.accepted is None and _settled(node):
            # Waiting for a merge to settle (start_change) and every configured peer is heard:
            # nobody is left to wait for.
            _propose_to_candidates(node, out, "all heard")
        return
    if node.proposing is not None:
        responders = tuple(sorted(node.reports))
        out.append(Note(event="flush_timeout", fields={"d": node.me, "got": list(responders)}))
        propose(node, out, responders)
    elif node.accepted is not None:
        out.append(Note(event="install_timeout", fields={"d": node.me}))
        start_change(node, out, "install timeout")
    else:
        # Nobody proposed to us (the smallest candidate may not see a reason to change, or
        # may not hear us): propose ourselves, to everyone. A candidate that really cannot
        # hear us is dropped by the flush timeout, not here.
        _propose_to_candidates(node, out, "no proposal")


def _propose_to_candidates(node: Node, out: list[Command], reason: str) -> None:
    candidates = _candidates(node)
    out.append(_gather_note(node, "gather", reason, candidates))
    propose(node, out, tuple(candidates))


def _gather_note(node: Node, event: str, reason: str, candidates: list[str]) -> Note:
    """The note of a daemon starting (or restarting) a view change: why, and with whom."""
    fields: dict[str, object] = {
        "d": node.me,
        "reason": reason,
        "view": str(node.view),
        "candidates": candidates,
    }
    return Note(event=event, fields=fields)


def _change_reason(node: Node) -> str:
    alive = _alive(node)
    for member in node.members:
        if member != node.me and alive.get(token_name(member)) != member:
            return f"suspect {member}"
    for name, token in sorted(alive.items()):
        heard = node.heard[name]
        if token not in node.members:
            return f"merge {token}"
        if heard.view != node.view and heard.proposal != node.view:
            since = node.mismatch_since.setdefault(name, node.now)
            if node.now - since >= node.cfg.gather_timeout_ms:
                return f"view mismatch {token}"
        else:
            node.mismatch_since.pop(name, None)
    return ""


# ------------------------------------------------------------------ round
def _candidates(node: Node) -> list[str]:
    alive = _alive(node)
    return sorted({node.me, *alive.values()})


def _resend_proposal(node: Node, proposal: Propose, out: list[Command]) -> None:
    """Every ``heartbeat_ms`` while collecting, the Propose again to the members whose Flush
    has not come: a lost Propose (or one sent into a link that was still down) would otherwise
    cost the whole flush timeout and another round (protocol/membership.md section 7)."""
    if node.now - node.proposal_resent < node.cfg.heartbeat_ms:
        return
    node.proposal_resent = node.now
    missing = tuple(token_name(m) for m in proposal.members if m not in node.reports)
    if missing:
        out.append(SendFrame(targets=missing, frame=proposal))


def _merge_settle_ms(node: Node) -> int:
    """How long the smallest candidate listens before proposing a merge: every reachable peer
    sends a Status at least every ``heartbeat_ms``, so two of them cover the heartbeat period,
    tick resolution and link latency. Below ``gather_timeout_ms``, so it still goes first."""
    return min(2 * node.cfg.heartbeat_ms, node.cfg.gather_timeout_ms)


def _settled(node: Node) -> bool:
    """Every configured peer is a candidate and we are the smallest: nothing left to hear."""
    candidates = _candidates(node)
    return candidates[0] == node.me and len(candidates) == len(set(node.cfg.peers))


def start_change(node: Node, out: list[Command], reason: str) -> None:
    node.phase = GATHER
    node.accepted = None
    node.proposing = None
    node.deadline = node.now + node.cfg.gather_timeout_ms
    candidates = _candidates(node)
    event = "suspect" if reason.startswith("suspect") else "gather"
    out.append(_gather_note(node, event, reason, candidates))
    if candidates[0] == node.me:
        if any(c not in node.members for c in candidates) and not _settled(node):
            # A merge: daemons that just became reachable (a heal, or our own restart) are
            # heard one heartbeat at a time. Proposing to the first ones heard would merge the
            # rest one round each (L3, seed 7310294): listen for a heartbeat period first.
            node.deadline = node.now + _merge_settle_ms(node)
        else:
            propose(node, out, tuple(candidates))
    else:
        # Stagger by rank so that, if the smallest stays silent, the next one goes first
        # instead of all of them proposing at the same instant.
        rank = candidates.index(node.me)
        node.deadline = node.now + node.cfg.gather_timeout_ms * rank


def propose(node: Node, out: list[Command], members: tuple[str, ...]) -> None:
    if node.me not in members:
        members = tuple(sorted({*members, node.me}))
    node.max_epoch = max(node.max_epoch, node.view.epoch) + 1
    proposal = Propose(view=ViewId(node.max_epoch, node.me), members=members)
    node.proposing = proposal
    node.accepted = proposal
    node.proposal_resent = node.now
    node.reports = {node.me: _flush(node, proposal)}
    node.deadline = node.now + node.cfg.flush_timeout_ms
    out.append(
        Note(
            event="propose",
            fields={"d": node.me, "view": str(proposal.view), "members": list(members)},
        )
    )
    targets = tuple(token_name(m) for m in members if m != node.me)
    if targets:
        out.append(SendFrame(targets=targets, frame=proposal))
    _maybe_finish(node, out)


def on_propose(node: Node, frame: Propose, out: list[Command]) -> None:
    view = frame.view
    node.max_epoch = max(node.max_epoch, view.epoch)
    if node.me not in frame.members or view.epoch <= node.view.epoch:
        return
    if node.accepted is not None:
        if view < node.accepted.view:
            return
        if view == node.accepted.view:
            if node.proposing is None:  # a repeated proposal: our Flush may be lost
                out.append(SendFrame(targets=(token_name(view.coord),), frame=_flush(node, frame)))
            return
    node.phase = GATHER
    node.proposing = None
    node.accepted = frame
    node.deadline = node.now + node.cfg.install_timeout_ms
    out.append(Note(event="flush", fields={"d": node.me, "view": str(view)}))
    out.append(SendFrame(targets=(token_name(view.coord),), frame=_flush(node, frame)))


def _flush(node: Node, proposal: Propose) -> Flush:
    epoch = node.epoch
    return Flush(
        proposal=proposal.view,
        sender=node.me,
        old_view=node.view,
        old_members=node.members,
        delivered_upto=epoch.delivered,
        order=epoch.order_report(),
        msgs=epoch.retained(),
        acks=tuple(sorted(epoch.ack_ord.items())),
        local_groups=node.final_local_groups(),
    )


def on_flush(node: Node, frame: Flush, out: list[Command]) -> None:
    proposal = node.proposing
    if proposal is None or frame.proposal != proposal.view:
        return
    if frame.sender not in proposal.members or not _plausible(frame):
        return
    node.reports[frame.sender] = frame
    _maybe_finish(node, out)


def _maybe_finish(node: Node, out: list[Command]) -> None:
    proposal = node.proposing
    if proposal is None or len(node.reports) < len(proposal.members):
        return
    install = decide_install(proposal.view, node.reports)
    targets = tuple(token_name(m) for m in install.members if m != node.me)
    if targets:
        out.append(SendFrame(targets=targets, frame=install))
    apply_install(node, install, out)
    node.last_install = install
    node.install_resent = {}


def on_install(node: Node, frame: Install, out: list[Command]) -> None:
    node.max_epoch = max(node.max_epoch, frame.view.epoch)
    if node.accepted is None or frame.view != node.accepted.view or node.proposing:
        return
    if node.me not in frame.members:
        return
    node.last_install = None
    apply_install(node, frame, out)


# ---------------------------------------------------------------- install
def apply_install(node: Node, install: Install, out: list[Command]) -> None:
    cleanup = next((c for c in install.cleanups if node.me in c.trans_members), None)
    if cleanup is None or cleanup.old_view != node.view:
        out.append(Note(event="install_rejected", fields={"d": node.me, "view": str(install.view)}))
        return
    _deliver_cleanup(node, install, cleanup, out)
    vs_of: dict[str, int] = {}
    joined_in_trans: list[dict[str, set[str]]] = []
    for index, c in enumerate(install.cleanups):
        for member in c.trans_members:
            vs_of[member] = index
        joined_in_trans.append(joined_by(group_ops(c.transitional)))
    table: dict[str, dict[str, str]] = {}
    for daemon, conn, groups in install.groups:
        for group in groups:
            table.setdefault(group, {})[conn] = daemon
    node.view = install.view
    node.members = install.members
    node.member_peers = tuple(token_name(m) for m in install.members if m != node.me)
    held = node.epoch.held  # a lagging local client still lags in the new view
    node.epoch = Epoch(node.view, node.members, node.me)
    node.epoch.hold(held)
    node.own_delivered_seq = 0
    conf = regular_conf_id(node.view)
    node.groups.set_conf(conf)
    note_install(node, out, conf, "regular", node.members, node.view.epoch)
    out.extend(node.groups.install(table, vs_of, joined_in_trans))
    for member in node.members:
        # Every member just took part in the round: give each a full suspect timeout from
        # now, even one we had not heard directly before (e.g. across a healed partition).
        name = token_name(member)
        known = node.heard.get(name)
        if member != node.me and (known is None or known.token == member):
            node.heard[name] = Heard(node.now, member, node.view, None)
    node.phase = OPERATIONAL
    node.installed_at = node.now
    node.accepted = None
    node.proposing = None
    node.mismatch_since.clear()
    out.append(SendFrame(targets=node.others, frame=node.status()))


def _deliver_cleanup(node: Node, install: Install, cleanup: Cleanup, out: list[Command]) -> None:
    old_view = node.view
    conf = regular_conf_id(old_view)
    epoch = node.epoch
    for gseq, sender, seq, msg in cleanup.regular:
        if gseq > epoch.delivered:
            epoch.delivered = gseq
            node.deliver(sender, old_view, seq, msg, conf, out)
    tconf = transitional_conf_id(install.view, old_view)
    note_install(node, out, tconf, "transitional", cleanup.trans_members, install.view.epoch)
    node.groups.set_conf(tconf)
    ops = group_ops(cleanup.transitional)
    next_conf = regular_conf_id(install.view)
    out.extend(node.groups.begin_transitional(set(cleanup.trans_members), next_conf, ops))
    for sender, seq, msg in cleanup.transitional:
        node.deliver(sender, old_view, seq, msg, tconf, out)


def group_ops(entries: Iterable[tuple[str, int, Msg]]) -> list[GroupOp]:
    """The group operations among a cleanup's transitional entries, in delivery order."""
    return [(m.kind, m.conn, m.groups) for _, _, m in entries if m.kind != Kind.DATA]


def note_install(
    node: Node, out: list[Command], conf: str, kind: str, members: tuple[str, ...], epoch: int
) -> None:
    out.append(
        Note(
            event="install",
            fields={
                "d": node.me,
                "conf": conf,
                "kind": kind,
                "members": list(members),
                "epoch": epoch,
            },
        )
    )
