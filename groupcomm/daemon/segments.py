"""Group logs on disk (``store = "disk"``, protocol/retention.md section 2).

Each retained group has a directory under ``[retention] dir`` (its name, percent-escaped) of
append-only segment files named by the index of their first entry (``00000000000000000001.seg``).
A segment is a run of records, each a 4-byte big-endian length and the msgpack array of one
``Entry``; a segment is closed at ``SEGMENT_BYTES`` and a new one started. Eviction deletes whole
segments whose every entry is older than the log's first kept one, so the disk holds at most one
segment more than the memory log.

Appends are gathered during a daemon turn and written at its end (``flush``), before the turn's
deliveries reach the clients: a client never holds a position the disk has not been given.
``fsync``: ``never`` leaves the bytes to the page cache (they survive a crash of the daemon, not
of the machine); ``turn`` fsyncs each file written in the turn (they survive both, at the cost of
one fsync per turn that delivered to a retained group: docs/operations.md "Retention").

At start ``load_into`` reads every group back (a record cut short by a crash ends its segment,
which is truncated there), applies the current rules' bounds, and marks the log: the next entry
carries ``RESTART``, because what the cluster delivered while this daemon was down is not here.
"""

from __future__ import annotations

import os
import struct
import urllib.parse
from pathlib import Path
from typing import Protocol

import msgpack

from groupcomm.core.commands import DeliverMessage
from groupcomm.daemon.retention import RESTART, Entry, Retention, conf_epoch

SEGMENT_BYTES = 8 << 20
_LEN = struct.Struct(">I")
MAX_RECORD = (1 << 30) + (1 << 20)  # a 1 GiB message and its fields


class Log(Protocol):
    def info(self, event: str, **kw: object) -> object: ...

    def warning(self, event: str, **kw: object) -> object: ...


def group_dir_name(group: str) -> str:
    return "g-" + urllib.parse.quote(group, safe="-_.")


_PACKER = msgpack.Packer(use_bin_type=True, autoreset=True)


def _pack(index: int, ts_ms: int, d: DeliverMessage, mark: str) -> bytes:
    """One record: the ``Entry`` fields in order (the epoch as -1: it is read from ``conf``)."""
    body: bytes = _PACKER.pack(
        (index, ts_ms, d.conf, d.n, d.mid, -1, d.sender, d.groups, d.service, d.msg_type,
         d.payload, mark)
    )  # fmt: skip
    return _LEN.pack(len(body)) + body


class _Segment:
    def __init__(self, path: Path, start: int) -> None:
        self.path = path
        self.start = start
        self.size = path.stat().st_size if path.exists() else 0


class SegmentStore:
    """The ``Store`` of ``groupcomm.daemon.retention`` for ``store = "disk"`` rules."""

    def __init__(self, directory: str, fsync: str, log: Log) -> None:
        self.root = Path(directory)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync == "turn"
        self.log = log
        self._segments: dict[str, list[_Segment]] = {}
        self._pending: dict[str, list[bytes]] = {}
        self.counters = {"written_bytes": 0, "fsyncs": 0, "segments_deleted": 0}

    # ------------------------------------------------------------------- Store
    def append(
        self, group: str, index: int, ts_ms: int, message: DeliverMessage, mark: str
    ) -> None:
        pending = self._pending.get(group)
        if pending is None:
            pending = self._pending[group] = []
        if not pending:
            segments = self._segments.setdefault(group, [])
            if not segments or segments[-1].size >= SEGMENT_BYTES:
                gdir = self.root / group_dir_name(group)
                gdir.mkdir(exist_ok=True)
                segments.append(_Segment(gdir / f"{index:020d}.seg", index))
        pending.append(_pack(index, ts_ms, message, mark))

    def evict(self, group: str, first_index: int) -> None:
        segments = self._segments.get(group, [])
        # A segment can go when the next one starts at or before the first kept entry.
        while len(segments) > 1 and segments[1].start <= first_index:
            gone = segments.pop(0)
            gone.path.unlink(missing_ok=True)
            self.counters["segments_deleted"] += 1

    def flush(self) -> None:
        if not self._pending:
            return
        for group, records in self._pending.items():
            if not records:
                continue
            segment = self._segments[group][-1]
            data = b"".join(records)
            fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                if self.fsync:
                    os.fsync(fd)
                    self.counters["fsyncs"] += 1
            finally:
                os.close(fd)
            segment.size += len(data)
            self.counters["written_bytes"] += len(data)
        self._pending.clear()

    # ------------------------------------------------------------------ loading
    def load_into(self, retention: Retention) -> None:
        """Read every group's segments back into ``retention`` (module docstring)."""
        for gdir in sorted(self.root.glob("g-*")):
            group = urllib.parse.unquote(gdir.name[2:])
            rule = retention.rule_for(group)
            if rule is None or rule.store != "disk":
                self.log.warning(
                    "retention_dir_ignored", group=group, dir=str(gdir), why="no disk rule names it"
                )
                continue
            entries, segments = self._read_group(gdir)
            self._segments[group] = segments
            if not entries:
                continue
            log = retention.restore(group, entries)
            self.evict(group, log.first_index)
            self.log.info(
                "retention_loaded",
                group=group,
                messages=len(log),
                bytes=log.bytes,
                first=first.position() if (first := log.get(log.first_index)) else None,
                last=last.position() if (last := log.get(log.next_index - 1)) else None,
                restart_mark="the next message is marked: deliveries while this daemon was "
                "down are not in its log",
            )

    def _read_group(self, gdir: Path) -> tuple[list[Entry], list[_Segment]]:
        entries: list[Entry] = []
        segments: list[_Segment] = []
        for path in sorted(gdir.glob("*.seg")):
            stem = path.stem
            if not stem.isdigit():
                continue
            segments.append(_Segment(path, int(stem)))
            entries.extend(self._read_segment(path))
        return entries, segments

    def _read_segment(self, path: Path) -> list[Entry]:
        data = path.read_bytes()
        out: list[Entry] = []
        offset = 0
        while offset < len(data):
            if offset + 4 > len(data):
                break
            (size,) = _LEN.unpack_from(data, offset)
            end = offset + 4 + size
            if size > MAX_RECORD or end > len(data):
                break
            try:
                fields = msgpack.unpackb(data[offset + 4 : end], raw=False, use_list=False)
                entry = Entry(*fields)
                entry = entry._replace(groups=tuple(entry.groups), epoch=conf_epoch(entry.conf))
            except (ValueError, TypeError, msgpack.UnpackException):
                break
            out.append(entry)
            offset = end
        if offset < len(data):
            self.log.warning(
                "retention_segment_truncated",
                file=str(path),
                kept_bytes=offset,
                dropped_bytes=len(data) - offset,
                why="a record cut short (the daemon stopped while writing it)",
            )
            with open(path, "r+b") as f:
                f.truncate(offset)
        return out


__all__ = ["RESTART", "SegmentStore", "group_dir_name"]
