"""The proposer's decision at the end of a view-change round: from Flush reports to Install.

Pure functions. For every old view that contributes members to the new view, the survivors
("transitional members", t) pool what they hold and the proposer decides one cleanup that every
one of them delivers identically (EVS-4):

1. ``regular``: everything up to the highest gseq any survivor already delivered in the old
   regular view. Someone delivered it, so nobody is missing any of it (no holes, EVS-6.2), and
   the laggards deliver it in the regular view too.
2. ``transitional``: the rest of the known order. A message of an absent sender needs the
   sender's ordering ack, which guarantees the sender's own partition knows the same order
   (EVS-6.1). At the first message skipped (no payload anywhere in t, or no ack) the stream is
   cut for absent senders: anything they sent later may causally follow the skipped one
   (EVS-5), while survivors' messages cannot (no survivor delivered past it). Survivors'
   messages also need their own sender's ack to stay in place; the rest (unacked or never
   ordered) close the view sorted by (sender, seq). No other partition can deliver those, and
   every decision over the same old view classifies them identically, because the ack comes
   from the sender's own frozen report (EVS-3, EVS-6.1).
"""

from __future__ import annotations

from collections.abc import Mapping

from groupcomm.core.frames import Cleanup, Flush, Install, Msg
from groupcomm.core.ids import ViewId


def decide_install(view: ViewId, reports: Mapping[str, Flush]) -> Install:
    members = tuple(sorted(reports))
    by_old: dict[ViewId, list[Flush]] = {}
    for token in members:
        report = reports[token]
        by_old.setdefault(report.old_view, []).append(report)
    cleanups = tuple(decide_cleanup(old, group) for old, group in sorted(by_old.items()))
    groups: list[tuple[str, str, tuple[str, ...]]] = []
    for token in members:
        groups.extend((token, conn, joined) for conn, joined in reports[token].local_groups)
    return Install(view=view, members=members, cleanups=cleanups, groups=tuple(groups))


def decide_cleanup(old_view: ViewId, reports: list[Flush]) -> Cleanup:
    trans = tuple(sorted(r.sender for r in reports))
    low = min(r.delivered_upto for r in reports)
    high = max(r.delivered_upto for r in reports)
    order: dict[int, tuple[str, int]] = {}
    msgs: dict[tuple[str, int], Msg] = {}
    acks: dict[str, int] = {}
    for report in reports:
        for first_g, sender, first_seq, count in report.order:
            for i in range(count):
                order.setdefault(first_g + i, (sender, first_seq + i))
        for sender, seq, msg in report.msgs:
            msgs.setdefault((sender, seq), msg)
        for member, ord_known in report.acks:
            acks[member] = max(acks.get(member, 0), ord_known)
    early = _delivered_early(reports, msgs)
    regular = _regular(order, msgs, early, low, high)
    known = high
    while known + 1 in order:
        known += 1
    transitional = _transitional(order, msgs, acks, set(trans), high, known, early)
    return Cleanup(
        old_view=old_view,
        trans_members=trans,
        regular_upto=high,
        regular=tuple(regular),
        transitional=tuple(transitional),
    )


def _delivered_early(
    reports: list[Flush], msgs: dict[tuple[str, int], Msg]
) -> set[tuple[str, int]]:
    """The early messages some survivor delivered in the old regular view (ordering.md section
    8.1): every one is held by a survivor that has not delivered it yet, if there is one (a
    message is freed only once delivered and held by every member)."""
    done: dict[str, int] = {}
    for report in reports:
        for sender, seq in report.delivered_seqs:
            if seq > done.get(sender, 0):
                done[sender] = seq
    return {key for key, msg in msgs.items() if msg.early and key[1] <= done.get(key[0], 0)}


def _regular(
    order: dict[int, tuple[str, int]],
    msgs: dict[tuple[str, int], Msg],
    early: set[tuple[str, int]],
    low: int,
    high: int,
) -> list[tuple[int, str, int, Msg]]:
    """The order through ``high``, with every early message some survivor delivered placed
    right after its anchor (gseq 0): after the group operations its sender had known, before
    any later one, before its own gseq and before its sender's later messages, just as every
    daemon that delivered it did (the hold of group operations, section 8.1)."""
    by_anchor = sorted(early, key=lambda key: (msgs[key].early, key))  # anchor, then sender order
    out: list[tuple[int, str, int, Msg]] = []
    i = 0
    for g in range(low + 1, high + 1):
        while i < len(by_anchor) and msgs[by_anchor[i]].early <= g:  # anchor + 1 <= g
            sender, seq = by_anchor[i]
            out.append((0, sender, seq, msgs[(sender, seq)]))
            i += 1
        key = order[g]
        if key not in early:
            out.append((g, key[0], key[1], msgs[key]))
    out.extend((0, sender, seq, msgs[(sender, seq)]) for sender, seq in by_anchor[i:])
    return out


def _transitional(
    order: dict[int, tuple[str, int]],
    msgs: dict[tuple[str, int], Msg],
    acks: dict[str, int],
    trans: set[str],
    high: int,
    known: int,
    early: set[tuple[str, int]],
) -> list[tuple[str, int, Msg]]:
    out: list[tuple[str, int, Msg]] = []
    cut = False  # set at the first ordered message not delivered in place
    in_place: set[tuple[str, int]] = set()
    for g in range(high + 1, known + 1):
        key = order[g]
        if key in early:
            continue  # delivered in the regular part
        msg = msgs.get(key)
        sender = key[0]
        # In place only with the sender's ordering ack. For a survivor that ack comes from its
        # own (frozen) report, so every decision about this old view classifies its messages
        # the same way, even decisions by different proposers over overlapping survivors.
        if msg is not None and acks.get(sender, 0) >= g and (sender in trans or not cut):
            out.append((sender, key[1], msg))
            in_place.add(key)
        else:
            # EVS-6.2: holes only for absent senders. Whatever an absent sender sent later may
            # causally follow this message (EVS-5), so from here on only survivors' messages:
            # no survivor delivered past ``high``, so none of theirs can depend on it.
            cut = True
    # The survivors' remaining messages (never ordered, or ordered without their ack) close the
    # view in (sender, seq) order: no other partition can deliver them (EVS-3, EVS-6.1).
    covered = {order[g] for g in order if g <= high}
    tail = sorted(
        key
        for key in msgs
        if key[0] in trans and key not in in_place and key not in covered and key not in early
    )
    out.extend((sender, seq, msgs[(sender, seq)]) for sender, seq in tail)
    return out
