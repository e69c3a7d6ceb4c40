"""``tune_gc()``: make CPython's cyclic garbage collector rare, for processes that move tens of
thousands of messages per second.

Every allocation of a container (a tuple, a list, an object) counts towards a young-generation
collection, 700 by default. A process that builds a few tuples per message (the daemon's
deliveries and order entries; a client's decoded entries and ``Message`` s) then runs a
collection every few hundred messages, and the older generations, which walk every message
still queued, every few thousand. Those objects are acyclic and freed by reference counting, so
the collections find nothing. Tuning them away saved some 15 % of the daemon's CPU per message
and about a quarter of a flooded client's (docs/performance.md "Profiles").

``tune_gc`` freezes what exists (start-up: imports, configuration) out of every collection and
runs the young generation every ``GC_THRESHOLD`` allocations; the older ones keep their usual
ratios (a full collection every 200 young ones), so cyclic garbage is still reclaimed, later.
The daemon calls it; an application may (``groupcomm.client.tune_gc``), once, at start-up: it
changes the whole interpreter, which is the application's decision, not the library's.
"""

from __future__ import annotations

import gc

GC_THRESHOLD = 100_000  # allocations between young-generation collections (default 700)


def tune_gc() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 10)
