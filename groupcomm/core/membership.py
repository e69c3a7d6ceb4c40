"""Daemon membership: failure detection, the view-change round, and installing a view.

Round (protocol/membership.md): a change is triggered by a suspected member (silence beyond
``suspect_timeout_ms``), a member that left, or a live daemon outside the view (merge). The
smallest live daemon proposes a view with a fresh epoch; members accept the highest proposal,
freeze (no sends, no deliveries) and report their old-view state in a Flush; the proposer decides
the cleanup of every old view (``viewchange``) and sends Install; each member delivers its old
view's cleanup (regular part, transitional configuration, transitional part) and installs the
new regular view. A proposer missing reports re-proposes without the silent ones; a member
missing the Install restarts the round. Each side of a partition does this on its own.

This mixin holds membership state on the ``Node``; it owns no message state (``Epoch`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from groupcomm.core.commands import Command, Note, SendFrame
from groupcomm.core.epoch import Epoch
from groupcomm.core.frames import Cleanup, Flush, Install, Leave, Propose, Status
from groupcomm.core.ids import (
    ViewId,
    regular_conf_id,
    token_incarnation,
    token_name,
    transitional_conf_id,
)
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


class MembershipMixin:
    def init_membership(self: Node) -> None:
        self.phase = OPERATIONAL
        self.max_epoch = 0
        self.heard: dict[str, Heard] = {}
        self.left: set[str] = set()
        self.mismatch_since: dict[str, int] = {}
        self.accepted: Propose | None = None  # proposal we flushed to
        self.proposing: Propose | None = None  # our own proposal, while collecting
        self.reports: dict[str, Flush] = {}
        self.deadline = 0  # of the current gather step
        self.last_install: Install | None = None
        self.install_resent: dict[str, int] = {}

    def accepted_view(self: Node) -> ViewId | None:
        return self.accepted.view if self.accepted is not None else None

    # -------------------------------------------------------- failure detector
    def on_status(self: Node, frame: Status, out: list[Command]) -> None:
        sender = frame.sender
        name = token_name(sender)
        if name == self.name or name not in self.cfg.peers:
            return
        known = self.heard.get(name)
        if known is not None and token_incarnation(known.token) > token_incarnation(sender):
            return  # a delayed frame from an older incarnation
        self.heard[name] = Heard(self.now, sender, frame.view, frame.proposal)
        self.max_epoch = max(self.max_epoch, frame.max_epoch, frame.view.epoch)
        if frame.view == self.view:
            if self.phase == OPERATIONAL:
                # Frozen while gathering: the stability we advertise must be backed by the acks
                # in our Flush report (EVS-7.1 relies on it, see protocol/membership.md).
                self.epoch.on_status(frame)
        elif self.last_install is not None and frame.proposal == self.view:
            self._resend_install(sender, out)

    def _resend_install(self: Node, sender: str, out: list[Command]) -> None:
        # The member flushed to our view but missed the Install: send it again (rate-limited).
        assert self.last_install is not None
        if sender not in self.last_install.members:
            return
        if self.now - self.install_resent.get(sender, -(10**9)) < self.cfg.heartbeat_ms:
            return
        self.install_resent[sender] = self.now
        out.append(SendFrame(targets=(token_name(sender),), frame=self.last_install))

    def on_leave(self: Node, frame: Leave, out: list[Command]) -> None:
        if frame.sender in self.members or token_name(frame.sender) in self.heard:
            self.left.add(frame.sender)
            self.heard.pop(token_name(frame.sender), None)
            if self.phase == OPERATIONAL:
                self.start_change(out, "leave")

    def _alive(self: Node) -> dict[str, str]:
        """Live peers: name -> token (heard recently, not left)."""
        horizon = self.now - self.cfg.suspect_timeout_ms
        return {
            name: h.token
            for name, h in self.heard.items()
            if h.at_ms >= horizon and h.token not in self.left
        }

    def check_membership(self: Node, out: list[Command]) -> None:
        if self.phase == OPERATIONAL:
            reason = self._change_reason()
            if reason:
                self.start_change(out, reason)
            return
        if self.now < self.deadline:
            return
        if self.proposing is not None:
            responders = tuple(sorted(self.reports))
            out.append(Note(event="flush_timeout", fields={"d": self.me, "got": list(responders)}))
            self.propose(out, responders)
        elif self.accepted is not None:
            out.append(Note(event="install_timeout", fields={"d": self.me}))
            self.start_change(out, "install timeout")
        else:
            # Nobody proposed to us (the smallest candidate may not see a reason to change, or
            # may not hear us): propose ourselves, to everyone. A candidate that really cannot
            # hear us is dropped by the flush timeout, not here.
            candidates = self._candidates()
            out.append(Note(event="gather", fields={"d": self.me, "reason": "no proposal",
                                                    "view": str(self.view),
                                                    "candidates": candidates}))
            self.propose(out, tuple(candidates))

    def _change_reason(self: Node) -> str:
        alive = self._alive()
        for member in self.members:
            if member != self.me and alive.get(token_name(member)) != member:
                return f"suspect {member}"
        for name, token in sorted(alive.items()):
            heard = self.heard[name]
            if token not in self.members:
                return f"merge {token}"
            if heard.view != self.view and heard.proposal != self.view:
                since = self.mismatch_since.setdefault(name, self.now)
                if self.now - since >= self.cfg.gather_timeout_ms:
                    return f"view mismatch {token}"
            else:
                self.mismatch_since.pop(name, None)
        return ""

    # ------------------------------------------------------------------ round
    def _candidates(self: Node) -> list[str]:
        alive = self._alive()
        return sorted({self.me, *alive.values()})

    def start_change(self: Node, out: list[Command], reason: str) -> None:
        self.phase = GATHER
        self.accepted = None
        self.proposing = None
        self.deadline = self.now + self.cfg.gather_timeout_ms
        candidates = self._candidates()
        out.append(
            Note(
                event="suspect" if reason.startswith("suspect") else "gather",
                fields={"d": self.me, "reason": reason, "view": str(self.view),
                        "candidates": candidates},
            )
        )
        if candidates[0] == self.me:
            self.propose(out, tuple(candidates))
        else:
            # Stagger by rank so that, if the smallest stays silent, the next one goes first
            # instead of all of them proposing at the same instant.
            rank = candidates.index(self.me)
            self.deadline = self.now + self.cfg.gather_timeout_ms * rank

    def propose(self: Node, out: list[Command], members: tuple[str, ...]) -> None:
        if self.me not in members:
            members = tuple(sorted({*members, self.me}))
        self.max_epoch = max(self.max_epoch, self.view.epoch) + 1
        proposal = Propose(view=ViewId(self.max_epoch, self.me), members=members)
        self.proposing = proposal
        self.accepted = proposal
        self.reports = {self.me: self._flush(proposal)}
        self.deadline = self.now + self.cfg.flush_timeout_ms
        out.append(Note(event="propose", fields={"d": self.me, "view": str(proposal.view),
                                                  "members": list(members)}))
        targets = tuple(token_name(m) for m in members if m != self.me)
        if targets:
            out.append(SendFrame(targets=targets, frame=proposal))
        self._maybe_finish(out)

    def on_propose(self: Node, frame: Propose, out: list[Command]) -> None:
        view = frame.view
        self.max_epoch = max(self.max_epoch, view.epoch)
        if self.me not in frame.members or view.epoch <= self.view.epoch:
            return
        if self.accepted is not None:
            if view < self.accepted.view:
                return
            if view == self.accepted.view:
                if self.proposing is None:  # a repeated proposal: our Flush may be lost
                    out.append(SendFrame(targets=(token_name(view.coord),),
                                         frame=self._flush(frame)))
                return
        self.phase = GATHER
        self.proposing = None
        self.accepted = frame
        self.deadline = self.now + self.cfg.install_timeout_ms
        out.append(Note(event="flush", fields={"d": self.me, "view": str(view)}))
        out.append(SendFrame(targets=(token_name(view.coord),), frame=self._flush(frame)))

    def _flush(self: Node, proposal: Propose) -> Flush:
        epoch = self.epoch
        return Flush(
            proposal=proposal.view, sender=self.me, old_view=self.view, old_members=self.members,
            delivered_upto=epoch.delivered, order=epoch.order_report(), msgs=epoch.retained(),
            acks=tuple(sorted(epoch.ack_ord.items())), local_groups=self.final_local_groups(),
        )

    def on_flush(self: Node, frame: Flush, out: list[Command]) -> None:
        proposal = self.proposing
        if proposal is None or frame.proposal != proposal.view:
            return
        if frame.sender not in proposal.members or not _plausible(frame):
            return
        self.reports[frame.sender] = frame
        self._maybe_finish(out)

    def _maybe_finish(self: Node, out: list[Command]) -> None:
        proposal = self.proposing
        if proposal is None or len(self.reports) < len(proposal.members):
            return
        install = decide_install(proposal.view, self.reports)
        targets = tuple(token_name(m) for m in install.members if m != self.me)
        if targets:
            out.append(SendFrame(targets=targets, frame=install))
        self.apply_install(install, out)
        self.last_install = install
        self.install_resent = {}

    def on_install(self: Node, frame: Install, out: list[Command]) -> None:
        self.max_epoch = max(self.max_epoch, frame.view.epoch)
        if self.accepted is None or frame.view != self.accepted.view or self.proposing:
            return
        if self.me not in frame.members:
            return
        self.last_install = None
        self.apply_install(frame, out)

    # ---------------------------------------------------------------- install
    def apply_install(self: Node, install: Install, out: list[Command]) -> None:
        cleanup = next((c for c in install.cleanups if self.me in c.trans_members), None)
        if cleanup is None or cleanup.old_view != self.view:
            out.append(Note(event="install_rejected", fields={"d": self.me,
                                                              "view": str(install.view)}))
            return
        self._deliver_cleanup(install, cleanup, out)
        vs_of: dict[str, int] = {}
        for index, c in enumerate(install.cleanups):
            for member in c.trans_members:
                vs_of[member] = index
        table: dict[str, dict[str, str]] = {}
        for daemon, conn, groups in install.groups:
            for group in groups:
                table.setdefault(group, {})[conn] = daemon
        self.view = install.view
        self.members = install.members
        self.epoch = Epoch(self.view, self.members, self.me)
        self.own_delivered_seq = 0
        conf = regular_conf_id(self.view)
        self.groups.set_conf(conf)
        self.note_install(out, conf, "regular", self.members, self.view.epoch)
        out.extend(self.groups.install(table, vs_of))
        for member in self.members:
            # Every member just took part in the round: give each a full suspect timeout from
            # now, even one we had not heard directly before (e.g. across a healed partition).
            name = token_name(member)
            known = self.heard.get(name)
            if member != self.me and (known is None or known.token == member):
                self.heard[name] = Heard(self.now, member, self.view, None)
        self.phase = OPERATIONAL
        self.accepted = None
        self.proposing = None
        self.mismatch_since.clear()
        out.append(SendFrame(targets=self.others, frame=self.status()))

    def _deliver_cleanup(self: Node, install: Install, cleanup: Cleanup, out: list[Command]) -> None:
        old_view = self.view
        conf = regular_conf_id(old_view)
        epoch = self.epoch
        for gseq, sender, seq, msg in cleanup.regular:
            if gseq > epoch.delivered:
                epoch.delivered = gseq
                self.deliver(sender, old_view, seq, msg, conf, out)
        tconf = transitional_conf_id(install.view, old_view)
        self.note_install(out, tconf, "transitional", cleanup.trans_members, install.view.epoch)
        self.groups.set_conf(tconf)
        out.extend(self.groups.begin_transitional(set(cleanup.trans_members)))
        for sender, seq, msg in cleanup.transitional:
            self.deliver(sender, old_view, seq, msg, tconf, out)

    def note_install(
        self: Node, out: list[Command], conf: str, kind: str, members: tuple[str, ...], epoch: int
    ) -> None:
        out.append(
            Note(
                event="install",
                fields={"d": self.me, "conf": conf, "kind": kind, "members": list(members),
                        "epoch": epoch},
            )
        )
