"""Shared vocabulary of the checkers: the Violation record, the Checker type, message helpers.

Owns nothing property-specific; each property lives in the module for its family.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sim.trace import Trace


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken property: its id (SEMANTICS.md), what happened, and when (trace ``t``)."""

    prop: str
    message: str
    t: int | None = None

    def __str__(self) -> str:
        when = "-" if self.t is None else str(self.t)
        return f"{self.prop} t={when}: {self.message}"


Checker = Callable[[Trace], list[Violation]]


def fmt(items: Iterable[str], limit: int = 6) -> str:
    """Render names sorted as ``{a, b, c}``, eliding after ``limit`` items."""
    ordered = sorted(items)
    shown = ", ".join(ordered[:limit])
    more = f", ... (+{len(ordered) - limit})" if len(ordered) > limit else ""
    return "{" + shown + more + "}"


def fmt_seq(items: Iterable[str], limit: int = 8) -> str:
    """Render a sequence in its own order as ``[a, b, c]``, eliding after ``limit`` items."""
    lst = list(items)
    shown = ", ".join(lst[:limit])
    more = f", ... (+{len(lst) - limit})" if len(lst) > limit else ""
    return "[" + shown + more + "]"
