"""The ``[[retain]]`` rules and the ``[retention]`` table of the daemon configuration
(protocol/retention.md section 2, docs/operations.md "Retention").

``[[retain]]``: ``groups`` (an fnmatch pattern, required), ``max_bytes`` and/or ``max_age_s``
(at least one: a log without a bound would grow without one), ``store`` (``memory``, the default,
or ``disk``). The first rule whose pattern matches a group applies. ``[retention]``: ``dir`` (where
``store = "disk"`` logs live; needed when a rule uses the disk, relative to the config file),
``fsync`` (``never``, the default: the page cache, which survives a daemon crash but not the
machine's; ``turn``: once per daemon turn that appended, which survives both). Errors name the key;
``groupcomm.config`` prefixes the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RULE_KEYS = ("groups", "max_bytes", "max_age_s", "store")
TABLE_KEYS = ("dir", "fsync")
STORES = ("memory", "disk")
FSYNC_POLICIES = ("never", "turn")
MAX_RULES = 256


@dataclass(frozen=True, slots=True)
class RetainRule:
    """One ``[[retain]]`` table: the groups matching ``groups`` (an fnmatch pattern) keep their
    last ``max_bytes`` payload bytes and/or ``max_age_s`` seconds; ``store`` is ``memory`` or
    ``disk``."""

    groups: str
    max_bytes: int | None = None
    max_age_s: float | None = None
    store: str = "memory"


class RetainConfigError(ValueError):
    """An invalid ``[[retain]]`` rule or ``[retention]`` table; the message names the key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionConfig:
    rules: tuple[RetainRule, ...] = ()
    dir: str = ""  # absolute once parsed ("" when no rule uses the disk)
    fsync: str = "never"

    @property
    def enabled(self) -> bool:
        return bool(self.rules)


def parse_retention(raw: Mapping[str, Any], base: Path) -> RetentionConfig:
    rules_raw = raw.get("retain", [])
    if not isinstance(rules_raw, list):
        raise RetainConfigError("[[retain]] must be an array of tables ([[retain]], not [retain])")
    if len(rules_raw) > MAX_RULES:
        raise RetainConfigError(f"[[retain]] at most {MAX_RULES} rules, got {len(rules_raw)}")
    rules = tuple(_rule(r, i + 1) for i, r in enumerate(rules_raw))
    table = raw.get("retention", {})
    if not isinstance(table, Mapping):
        raise RetainConfigError("[retention] must be a table")
    unknown = sorted(set(table) - set(TABLE_KEYS))
    if unknown:
        raise RetainConfigError(f"[retention] unknown key {unknown[0]!r}")
    fsync = table.get("fsync", "never")
    if fsync not in FSYNC_POLICIES:
        raise RetainConfigError(
            f"[retention] fsync must be one of {', '.join(FSYNC_POLICIES)}, got {fsync!r}"
        )
    directory = table.get("dir", "")
    if not isinstance(directory, str):
        raise RetainConfigError(f"[retention] dir must be a path, got {directory!r}")
    if any(r.store == "disk" for r in rules):
        if not directory:
            raise RetainConfigError(
                '[retention] dir is required when a [[retain]] rule has store = "disk"'
            )
        directory = str((base / directory).resolve())
    return RetentionConfig(rules=rules, dir=directory, fsync=fsync)


def _rule(r: object, index: int) -> RetainRule:
    where = f"[[retain]] #{index}: "
    if not isinstance(r, Mapping):
        raise RetainConfigError(f"{where}must be a table")
    unknown = sorted(set(r) - set(RULE_KEYS))
    if unknown:
        raise RetainConfigError(f"{where}unknown key {unknown[0]!r}")
    groups = r.get("groups")
    if not isinstance(groups, str) or not groups or len(groups) > 256:
        raise RetainConfigError(f"{where}groups must be a group name pattern, got {groups!r}")
    max_bytes = r.get("max_bytes")
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0
    ):
        raise RetainConfigError(f"{where}max_bytes must be a positive integer, got {max_bytes!r}")
    max_age = r.get("max_age_s")
    if max_age is not None and (
        isinstance(max_age, bool) or not isinstance(max_age, int | float) or not max_age > 0
    ):
        raise RetainConfigError(f"{where}max_age_s must be a positive number, got {max_age!r}")
    if max_bytes is None and max_age is None:
        raise RetainConfigError(
            f"{where}give max_bytes and/or max_age_s (a log without a bound grows without one)"
        )
    store = r.get("store", "memory")
    if store not in STORES:
        raise RetainConfigError(f"{where}store must be one of {', '.join(STORES)}, got {store!r}")
    return RetainRule(
        groups=groups,
        max_bytes=max_bytes,
        max_age_s=float(max_age) if max_age is not None else None,
        store=store,
    )
