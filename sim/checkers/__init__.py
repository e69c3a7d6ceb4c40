"""Trace checkers: one pure function per property id of SEMANTICS.md, over a loaded Trace.

``CHECKERS`` maps each property id to its checker; ``check_all`` runs them all. The checkers use
only the standard library and :mod:`sim.trace` (never ``groupcomm``), so they validate traces
recorded by any implementation, simulated or live.
"""

from __future__ import annotations

from collections.abc import Mapping

from sim.checkers.base import Checker, Violation
from sim.checkers.evs_config import (
    check_evs_2_1,
    check_evs_2_2,
    check_evs_2_3,
    check_evs_2_4,
    check_evs_2_5,
    check_evs_2_6,
)
from sim.checkers.evs_delivery import (
    check_evs_1_1,
    check_evs_1_2,
    check_evs_1_3,
    check_evs_1_4,
    check_evs_3,
    check_evs_4,
)
from sim.checkers.evs_order import check_evs_5, check_evs_6_1, check_evs_6_2
from sim.checkers.evs_safe import check_evs_7_1, check_evs_7_2
from sim.checkers.groupviews import check_gv_views, check_sp_trans_pair, check_sp_vsset
from sim.checkers.liveness import check_l1, check_l2, check_l3, check_l4, final_configuration
from sim.checkers.positions import check_ret_pos
from sim.checkers.service import check_svc_fifo, check_svc_rel
from sim.checkers.spread import (
    check_sp_multi,
    check_sp_open,
    check_sp_priv,
    check_sp_self_leave,
    check_sp_view_order,
)
from sim.checkers.viewsync import check_gv_safe, check_gv_vs
from sim.checkers.wellformed import check_trace
from sim.trace import Trace

CHECKERS: dict[str, Checker] = {
    "TRACE": check_trace,
    "EVS-1.1": check_evs_1_1,
    "EVS-1.2": check_evs_1_2,
    "EVS-1.3": check_evs_1_3,
    "EVS-1.4": check_evs_1_4,
    "EVS-2.1": check_evs_2_1,
    "EVS-2.2": check_evs_2_2,
    "EVS-2.3": check_evs_2_3,
    "EVS-2.4": check_evs_2_4,
    "EVS-2.5": check_evs_2_5,
    "EVS-2.6": check_evs_2_6,
    "EVS-3": check_evs_3,
    "EVS-4": check_evs_4,
    "EVS-5": check_evs_5,
    "EVS-6.1": check_evs_6_1,
    "EVS-6.2": check_evs_6_2,
    "EVS-7.1": check_evs_7_1,
    "EVS-7.2": check_evs_7_2,
    "SVC-FIFO": check_svc_fifo,
    "SVC-REL": check_svc_rel,
    "SP-OPEN": check_sp_open,
    "SP-MULTI": check_sp_multi,
    "SP-PRIV": check_sp_priv,
    "SP-VIEW-ORDER": check_sp_view_order,
    "SP-VSSET": check_sp_vsset,
    "SP-TRANS-PAIR": check_sp_trans_pair,
    "SP-SELF-LEAVE": check_sp_self_leave,
    "GV-VIEWS": check_gv_views,
    "GV-VS": check_gv_vs,
    "GV-SAFE": check_gv_safe,
    "RET-POS": check_ret_pos,
    "L1": check_l1,
    "L2": check_l2,
    "L3": check_l3,
    "L4": check_l4,
}


def check_all(trace: Trace, checkers: Mapping[str, Checker] | None = None) -> list[Violation]:
    """Run every checker (default: CHECKERS); violations in time order, unknown times first."""
    out: list[Violation] = []
    for checker in (CHECKERS if checkers is None else checkers).values():
        out.extend(checker(trace))
    out.sort(key=lambda v: -1 if v.t is None else v.t)
    return out


__all__ = [
    "CHECKERS",
    "Checker",
    "Violation",
    "check_all",
    "final_configuration",
]
