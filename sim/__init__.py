"""Deterministic simulator for groupcomm and the implementation-independent trace checkers.

The trace model and loader live in :mod:`sim.trace`, the property checkers in
:mod:`sim.checkers`, and ``python -m sim.check_trace FILE...`` checks recorded traces.
"""
