"""Daemon membership: failure detection, the view-change round, and deciding a view's install.

Round (protocol/membership.md): a change is triggered by a suspected member (silence beyond
``suspect_timeout_ms``), a member that left, or a live daemon outside the view (merge). The
smallest live daemon proposes a view with a fresh epoch (for a merge, once it has listened a
heartbeat period for every daemon that became reachable); members accept the highest proposal,
freeze (no sends, no deliveries) and report their old-view state in a Flush; the proposer decides
the cleanup of every old view (``viewchange``) and sends Install; each member delivers its old
view's cleanup (regular part, transitional configuration, transitional part) and installs the
new regular view. A proposer missing reports re-proposes without the silent ones; a member
missing the Install restarts the round. Each side of a partition does this on its own.

``Membership`` owns the round's state (phase, what was heard from whom, the proposal accepted or
being collected). It reaches the daemon it runs in only through ``Host`` (the current regular
view, its ``Epoch``, the Status heartbeat, and applying a decided install), so this module never
imports ``node``. No message state (``Epoch`` owns that) and no group state (``GroupTable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from groupcomm.core.commands import Command, Note, SendFrame
from groupcomm.core.config import CoreConfig
from groupcomm.core.epoch import Epoch
from groupcomm.core.frames import Cleanup, Flush, Install, Leave, Propose, Status
from groupcomm.core.ids import ViewId, token_incarnation, token_name
from groupcomm.core.viewchange import decide_install

OPERATIONAL = "operational"
GATHER = "gather"
MAX_REPORTED = 1 << 22  # bound on ordering entries a Flush may describe (hostile-input guard)


class Host(Protocol):
    """What the round needs from the daemon state machine it runs in (``Node``).

    The round decides; the host owns the regular view and its per-view state, and applies a
    decided install to them (``install_view``)."""

    @property
    def view(self) -> ViewId: ...

    @property
    def members(self) -> tuple[str, ...]: ...

    @property
    def epoch(self) -> Epoch: ...

    def final_local_groups(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Our connections' groups once every own operation already stamped is applied."""
        ...

    def status(self) -> Status:
        """A fresh Status frame (heartbeat, acknowledgements, our accepted proposal)."""
        ...

    def install_view(self, install: Install, cleanup: Cleanup, out: list[Command]) -> None:
        """Deliver ``cleanup`` (ours, of the current view) and switch to ``install``'s view."""
        ...

    def unanswered(self) -> frozenset[str]:
        """Members of a star view whose data we have asked for, without progress, for a suspect
        timeout (we do not hear their heartbeats)."""
        ...


def _plausible(frame: Flush) -> bool:
    """Cheap sanity bounds so a garbage Flush cannot make the proposer loop for ages."""
    if frame.sender not in frame.old_members:
        return False
    total = sum(count for _, _, _, count in frame.order)
    top = max((g + c - 1 for g, _, _, c in frame.order), default=0)
    return total <= MAX_REPORTED and frame.delivered_upto <= max(top, 0) + MAX_REPORTED


@dataclass(slots=True, init=False)
class Heard:
    # A written __init__: compiled natively (groupcomm/core/frames.py's docstring says why).

    at_ms: int
    token: str
    view: ViewId
    proposal: ViewId | None

    def __init__(self, at_ms: int, token: str, view: ViewId, proposal: ViewId | None) -> None:
        self.at_ms = at_ms
        self.token = token
        self.view = view
        self.proposal = proposal


class Membership:
    """One daemon's side of the round. The entry points (``on_*``, ``check_membership``) take
    the event's time; the steps they call (``start_change``, ``propose``, ``apply_install``)
    use it."""

    def __init__(self, cfg: CoreConfig, me: str, others: tuple[str, ...], host: Host) -> None:
        self.cfg = cfg
        self.me = me  # our token
        self.others = others  # every configured peer but us (Status after an install)
        self.host = host
        self.now = 0  # the time of the event being handled
        self.phase = OPERATIONAL
        self.max_epoch = 0
        self.heard: dict[str, Heard] = {}
        self.left: set[str] = set()
        self.mismatch_since: dict[str, int] = {}
        self.accepted: Propose | None = None  # the proposal we flushed to
        self.proposing: Propose | None = None  # our own proposal, while collecting reports
        self.reports: dict[str, Flush] = {}
        self.deadline = 0  # end of the current gather step
        self.last_install: Install | None = None
        self.install_resent: dict[str, int] = {}
        self.proposal_resent = 0  # when our Propose last went out (_resend_proposal)
        # A member of a star view that starts a change has heard only its coordinator: it
        # listens a settle period before it ranks the candidates (start_change).
        self.collecting = False
        self._names_view: ViewId | None = None
        self._names: dict[str, str] = {}
        # Names whose last Status is odd against our view (``_is_odd``): the only ones the
        # merge and mismatch triggers need to look at.
        self._odd: set[str] = set()

    def accepted_view(self) -> ViewId | None:
        return self.accepted.view if self.accepted is not None else None

    # ---------------------------------------------------- failure detector
    def on_status(self, now: int, frame: Status, out: list[Command]) -> None:
        self.now = now
        sender = frame.sender
        name = token_name(sender)
        if name == self.cfg.name or name not in self.cfg.peers:
            return
        known = self.heard.get(name)
        if (
            known is not None
            and known.token != sender
            and token_incarnation(known.token) > token_incarnation(sender)
        ):
            return  # a delayed frame from an older incarnation
        self._hear(name, Heard(now, sender, frame.view, frame.proposal))
        self.max_epoch = max(self.max_epoch, frame.max_epoch, frame.view.epoch)
        if self.proposing is not None:
            self._replace_restarted(self.proposing, sender, out)
        host = self.host
        if frame.view == host.view:
            if self.phase == OPERATIONAL:
                # Frozen while gathering: the stability we advertise must be backed by the acks
                # in our Flush report (EVS-7.1 relies on it, see protocol/membership.md).
                host.epoch.on_status(frame)
        elif self.last_install is not None and frame.proposal == host.view:
            self._resend_install(sender, out)

    def _replace_restarted(self, proposal: Propose, sender: str, out: list[Command]) -> None:
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
        out.append(self._gather_note("gather", f"restarted {stale[0]}", list(members)))
        self.propose(out, members)

    def _resend_install(self, sender: str, out: list[Command]) -> None:
        # The member flushed to our view but missed the Install: send it again (rate-limited).
        assert self.last_install is not None
        if sender not in self.last_install.members:
            return
        if self.now - self.install_resent.get(sender, -(10**9)) < self.cfg.heartbeat_ms:
            return
        self.install_resent[sender] = self.now
        out.append(SendFrame(targets=(token_name(sender),), frame=self.last_install))

    def on_leave(self, now: int, frame: Leave, out: list[Command]) -> None:
        self.now = now
        if frame.sender in self.host.members or token_name(frame.sender) in self.heard:
            self.left.add(frame.sender)
            self.heard.pop(token_name(frame.sender), None)
            self._odd.discard(token_name(frame.sender))
            if self.phase == OPERATIONAL:
                self.start_change(out, "leave")

    def _hear(self, name: str, heard: Heard) -> None:
        """Record ``heard``, keeping ``heard`` in the order of hearing (oldest first), and
        whether it is odd (``_is_odd``)."""
        self.heard.pop(name, None)
        self.heard[name] = heard
        if self._is_odd(name, heard):
            self._odd.add(name)
        else:
            self._odd.discard(name)
            self.mismatch_since.pop(name, None)  # a mismatch must last, uninterrupted

    def _alive(self) -> dict[str, str]:
        """Live peers: name -> token (heard recently, not left). ``heard`` is in the order of
        hearing (the driver's clock never runs backwards), so this reads only the recent end:
        in a star view a member has heard most of a hundred members last at the install, and
        this runs on every tick."""
        horizon = self.now - self.cfg.suspect_timeout_ms
        alive: dict[str, str] = {}
        for name, h in reversed(self.heard.items()):
            if h.at_ms < horizon:
                break
            if h.token not in self.left:
                alive[name] = h.token
        return alive

    def check_membership(self, now: int, out: list[Command]) -> None:
        self.now = now
        if self.phase == OPERATIONAL:
            reason = self._change_reason()
            if reason:
                self.start_change(out, reason)
            return
        if now < self.deadline:
            if self.proposing is not None:
                self._resend_proposal(self.proposing, out)
            elif self.accepted is None and self._settled():
                # Waiting for a merge to settle (start_change) and every configured peer is
                # heard: nobody is left to wait for.
                self._propose_to_candidates(out, "all heard")
            return
        if self.proposing is not None:
            responders = tuple(sorted(self.reports))
            out.append(Note(event="flush_timeout", fields={"d": self.me, "got": list(responders)}))
            self.propose(out, responders)
        elif self.accepted is not None:
            out.append(Note(event="install_timeout", fields={"d": self.me}))
            self.start_change(out, "install timeout")
        elif self.collecting:
            self.collecting = False
            self._rank(out, listened=True)
        else:
            # Nobody proposed to us (the smallest candidate may not see a reason to change, or
            # may not hear us): propose ourselves, to everyone. A candidate that really cannot
            # hear us is dropped by the flush timeout, not here.
            self._propose_to_candidates(out, "no proposal")

    def _propose_to_candidates(self, out: list[Command], reason: str) -> None:
        candidates = self._candidates()
        out.append(self._gather_note("gather", reason, candidates))
        self.propose(out, tuple(candidates))

    def _gather_note(self, event: str, reason: str, candidates: list[str]) -> Note:
        """The note of a daemon starting (or restarting) a view change: why, and with whom."""
        fields: dict[str, object] = {
            "d": self.me,
            "reason": reason,
            "view": str(self.host.view),
            "candidates": candidates,
        }
        return Note(event=event, fields=fields)

    def _member_names(self) -> dict[str, str]:
        """name -> token of the current view's members (cached per view)."""
        view = self.host.view
        if self._names_view is not view and self._names_view != view:
            self._names_view = view
            self._names = {token_name(m): m for m in self.host.members}
        return self._names

    def _live_token(self, name: str) -> str | None:
        """The token ``name`` is alive under (heard within the suspect timeout, not left)."""
        h = self.heard.get(name)
        if h is None or h.at_ms < self.now - self.cfg.suspect_timeout_ms or h.token in self.left:
            return None
        return h.token

    def _change_reason(self) -> str:
        view = self.host.view
        names = self._member_names()
        live = self._live_token
        if self.host.epoch.star_member:
            # Star (membership.md section 2): only the coordinator hears every member. We
            # suspect it when it falls silent, another member when it restarted (heard under a
            # token that is not the member's: an odd one), or when its data stopped reaching
            # us while the coordinator still hears it.
            coord = view.coord
            if live(token_name(coord)) != coord:
                return f"suspect {coord}"
            for name in sorted(self._odd):
                member = names.get(name)
                token = live(name)
                if member is not None and token is not None and token != member:
                    return f"suspect {member}"
            for member in sorted(self.host.unanswered()):
                return f"suspect {member}"
        else:
            for name, member in names.items():
                if member != self.me and live(name) != member:
                    return f"suspect {member}"
        # Merges and mismatches come only from odd daemons (``_odd``): a hundred members heard
        # in the view cost nothing here, on every tick.
        for name in sorted(self._odd):
            token = live(name)
            if token is None:
                continue
            if names.get(name) != token:
                return f"merge {token}"
            since = self.mismatch_since.setdefault(name, self.now)
            if self.now - since >= self.cfg.gather_timeout_ms:
                return f"view mismatch {token}"
        return ""

    def _is_odd(self, name: str, heard: Heard) -> bool:
        """Heard as a daemon outside the view (a merge), or a member whose last Status shows
        another view and, as its proposal, not ours either (a mismatch)."""
        view = self.host.view
        if self._member_names().get(name) != heard.token:
            return True
        seen = heard.view
        # ``is`` first: nearly always the very object.
        return seen is not view and seen != view and heard.proposal != view

    def _recompute_odd(self) -> None:
        """Recompute ``_odd`` against a new view (at every install)."""
        self._odd = {name for name, h in self.heard.items() if self._is_odd(name, h)}

    # -------------------------------------------------------------- round
    def _candidates(self) -> list[str]:
        alive = self._alive()
        candidates = {self.me, *alive.values()}
        host = self.host
        if host.epoch.star_member and alive.get(token_name(host.view.coord)) == host.view.coord:
            # A member of a star view hears few other members, but its coordinator watches all
            # of them and has not removed any: they count as alive, but for those whose data
            # stopped reaching us. Proposing only to those we happened to hear split a
            # 100-daemon view in two (membership.md section 4).
            unanswered = host.unanswered()
            candidates.update(m for m in host.members if m not in unanswered)
        return sorted(candidates)

    def _resend_proposal(self, proposal: Propose, out: list[Command]) -> None:
        """Every ``heartbeat_ms`` while collecting, the Propose again to the members whose
        Flush has not come: a lost Propose (or one sent into a link that was still down) would
        otherwise cost the whole flush timeout and another round (protocol/membership.md
        section 7)."""
        if self.now - self.proposal_resent < self.cfg.heartbeat_ms:
            return
        self.proposal_resent = self.now
        missing = tuple(token_name(m) for m in proposal.members if m not in self.reports)
        if missing:
            out.append(SendFrame(targets=missing, frame=proposal))

    def _merge_settle_ms(self) -> int:
        """How long the smallest candidate listens before proposing a merge: every reachable
        peer sends a Status at least every ``heartbeat_ms``, so two of them cover the heartbeat
        period, tick resolution and link latency. Below ``gather_timeout_ms``, so it still goes
        first."""
        return min(2 * self.cfg.heartbeat_ms, self.cfg.gather_timeout_ms)

    def _settled(self) -> bool:
        """Every configured peer is a candidate and we are the smallest: nothing left to hear."""
        candidates = self._candidates()
        return candidates[0] == self.me and len(candidates) == len(set(self.cfg.peers))

    def start_change(self, out: list[Command], reason: str) -> None:
        star_member = self.phase == OPERATIONAL and self.host.epoch.star_member
        self.phase = GATHER
        self.accepted = None
        self.proposing = None
        self.collecting = False
        self.deadline = self.now + self.cfg.gather_timeout_ms
        candidates = self._candidates()
        event = "suspect" if reason.startswith("suspect") else "gather"
        out.append(self._gather_note(event, reason, candidates))
        if star_member:
            # We heard only the coordinator: tell everybody we gather (every gatherer
            # heartbeats everybody) and listen a settle period before ranking the candidates.
            self.collecting = True
            self.deadline = self.now + self._merge_settle_ms()
            out.append(SendFrame(targets=self.others, frame=self.host.status()))
            return
        self._rank(out)

    def _rank(self, out: list[Command], listened: bool = False) -> None:
        """Propose if we are the smallest candidate (after a merge has settled, unless we
        ``listened`` a settle period already), else wait our rank's stagger for someone else's
        proposal."""
        candidates = self._candidates()
        if candidates[0] == self.me:
            merge = any(c not in self.host.members for c in candidates)
            if merge and not listened and not self._settled():
                # A merge: daemons that just became reachable (a heal, or our own restart) are
                # heard one heartbeat at a time. Proposing to the first ones heard would merge
                # the rest one round each (L3, seed 7310294): listen for a heartbeat period
                # first.
                self.deadline = self.now + self._merge_settle_ms()
            else:
                self.propose(out, tuple(candidates))
        else:
            # Stagger by rank so that, if the smallest stays silent, the next one goes first
            # instead of all of them proposing at the same instant. A member of a star view
            # waits at most two steps: its candidates are the whole view, so its rank says
            # nothing about who else gathers, and a large view would keep it frozen for
            # seconds (rank 17: 2.5 s, membership.md section 4).
            rank = candidates.index(self.me)
            if self.host.epoch.star_member:
                rank = min(rank, 2)
            self.deadline = self.now + self.cfg.gather_timeout_ms * rank

    def propose(self, out: list[Command], members: tuple[str, ...]) -> None:
        me = self.me
        if me not in members:
            members = tuple(sorted({*members, me}))
        self.max_epoch = max(self.max_epoch, self.host.view.epoch) + 1
        proposal = Propose(view=ViewId(self.max_epoch, me), members=members)
        self.proposing = proposal
        self.accepted = proposal
        self.proposal_resent = self.now
        self.reports = {me: self._flush(proposal)}
        self.deadline = self.now + self.cfg.flush_timeout_ms
        out.append(
            Note(
                event="propose",
                fields={"d": me, "view": str(proposal.view), "members": list(members)},
            )
        )
        targets = tuple(token_name(m) for m in members if m != me)
        if targets:
            out.append(SendFrame(targets=targets, frame=proposal))
        self._maybe_finish(out)

    def on_propose(self, now: int, frame: Propose, out: list[Command]) -> None:
        self.now = now
        view = frame.view
        self.max_epoch = max(self.max_epoch, view.epoch)
        if self.me not in frame.members or view.epoch <= self.host.view.epoch:
            return
        if self.accepted is not None:
            if view < self.accepted.view:
                return
            if view == self.accepted.view:
                if self.proposing is None:  # a repeated proposal: our Flush may be lost
                    flush = self._flush(frame)
                    out.append(SendFrame(targets=(token_name(view.coord),), frame=flush))
                return
        self.phase = GATHER
        self.proposing = None
        self.collecting = False
        self.accepted = frame
        self.deadline = now + self.cfg.install_timeout_ms
        out.append(Note(event="flush", fields={"d": self.me, "view": str(view)}))
        out.append(SendFrame(targets=(token_name(view.coord),), frame=self._flush(frame)))

    def _flush(self, proposal: Propose) -> Flush:
        host = self.host
        epoch = host.epoch
        return Flush(
            proposal=proposal.view,
            sender=self.me,
            old_view=host.view,
            old_members=host.members,
            delivered_upto=epoch.delivered,
            order=epoch.order_report(),
            msgs=epoch.retained(),
            acks=epoch.ack_report(),
            local_groups=host.final_local_groups(),
            delivered_seqs=epoch.delivered_report(),
        )

    def on_flush(self, now: int, frame: Flush, out: list[Command]) -> None:
        self.now = now
        proposal = self.proposing
        if proposal is None or frame.proposal != proposal.view:
            return
        if frame.sender not in proposal.members or not _plausible(frame):
            return
        self.reports[frame.sender] = frame
        self._maybe_finish(out)

    def _maybe_finish(self, out: list[Command]) -> None:
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

    def on_install(self, now: int, frame: Install, out: list[Command]) -> None:
        self.now = now
        self.max_epoch = max(self.max_epoch, frame.view.epoch)
        if self.accepted is None or frame.view != self.accepted.view or self.proposing:
            return
        if self.me not in frame.members:
            return
        self.last_install = None
        self.apply_install(frame, out)

    # ------------------------------------------------------------ install
    def apply_install(self, install: Install, out: list[Command]) -> None:
        me = self.me
        host = self.host
        cleanup = next((c for c in install.cleanups if me in c.trans_members), None)
        if cleanup is None or cleanup.old_view != host.view or not _groups_within_cleanups(install):
            out.append(Note(event="install_rejected", fields={"d": me, "view": str(install.view)}))
            return
        host.install_view(install, cleanup, out)
        for member in install.members:
            # Every member just took part in the round: give each a full suspect timeout from
            # now, even one we had not heard directly before (e.g. across a healed partition).
            name = token_name(member)
            known = self.heard.get(name)
            if member != me and (known is None or known.token == member):
                self._hear(name, Heard(self.now, member, install.view, None))
        self._recompute_odd()
        self.phase = OPERATIONAL
        self.accepted = None
        self.proposing = None
        self.mismatch_since.clear()
        out.append(SendFrame(targets=self.others, frame=host.status()))


def _groups_within_cleanups(install: Install) -> bool:
    """Whether every daemon the Install's group table names comes from one of its cleanups:
    the table is applied after the old view is delivered, so a wrong one (a faulty
    coordinator) must be refused before anything changes, not fail halfway (protocol/ordering.md
    section 10)."""
    within = {member for cleanup in install.cleanups for member in cleanup.trans_members}
    return all(daemon in within for daemon, _, _ in install.groups)
