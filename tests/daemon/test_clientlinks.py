"""ClientLinks: records in and out over a Unix socket; a full descriptor table does not make the
loop spin (the listener rests, then is watched again)."""

from __future__ import annotations

import errno
import socket
import time
from pathlib import Path

import pytest

import groupcomm.daemon.clientlinks as clientlinks
from groupcomm.daemon.clientlinks import ClientLinks
from groupcomm.daemon.readiness import Readiness
from groupcomm.wire.stream import RecordReader, record


def pump(links: ClientLinks, readiness: Readiness, rounds: int = 50) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    for _ in range(rounds):
        readiness.wait(10)
        got += links.receive(100)
        links.flush()
    return got


def test_records_both_ways_and_a_closed_link_is_reported(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sock")
    links = ClientLinks([f"ipc://{path}"], max_record=1000, out_limit=1 << 20)
    readiness = Readiness()
    links.attach(readiness)
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        client.sendall(record(b"one") + record(b"two")[:3])
        got = pump(links, readiness, 5)
        client.sendall(record(b"two")[3:])
        got += pump(links, readiness, 5)
        assert [data for _, data in got] == [b"one", b"two"]
        link = got[0][0]
        assert links.moved(link) == 2 * (4 + 3)  # read so far: two records of 3 bytes
        assert links.send(link, b"reply")
        pump(links, readiness, 2)
        client.settimeout(5)
        assert RecordReader(100).feed(client.recv(100)) == [b"reply"]
        assert links.moved(link) == 2 * (4 + 3) + 4 + 5  # and written
        client.close()
        pump(links, readiness, 5)
        assert links.take_closed() == [link]
    finally:
        links.close()
        readiness.close()


def test_a_link_dropped_by_its_write_while_others_fill_the_turn(tmp_path: Path) -> None:
    """A link whose pending write fails (the client reset it) is dropped in ``_write``; when
    the turn's record limit is already reached, its hang-up flags were then read from the
    dropped link (KeyError out of ``receive``, stopping the daemon)."""
    path = str(tmp_path / "c.sock")
    links = ClientLinks([f"ipc://{path}"], max_record=1000, out_limit=64 << 20)
    readiness = Readiness()
    links.attach(readiness)
    try:
        busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        busy.connect(path)
        victim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        victim.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        victim.connect(path)
        pump(links, readiness, 5)
        first, second = sorted(links._links)
        assert links.send(second, b"x" * (8 << 20))  # far more than the socket takes
        links.flush()
        busy.sendall(record(b"p") * 400)  # more records than the turn's limit, first in line
        time.sleep(0.05)
        victim.close()  # unread data: the daemon's next write fails (EPIPE)
        time.sleep(0.05)
        readiness.wait(100)
        got = links.receive(256)
        assert len(got) == 400 and all(link == first for link, _ in got)
        pump(links, readiness, 5)
        assert second in links.take_closed()
    finally:
        busy.close()
        links.close()
        readiness.close()


class _Exhausted:
    """A listener whose accept fails as with no descriptors left."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.calls = 0

    def fileno(self) -> int:
        return self.real.fileno()

    def accept(self) -> tuple[socket.socket, object]:
        self.calls += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def close(self) -> None:
        self.real.close()


def test_accept_failure_rests_the_listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clientlinks, "ACCEPT_PAUSE_S", 0.2)
    path = str(tmp_path / "c.sock")
    links = ClientLinks([f"ipc://{path}"], max_record=1000, out_limit=1 << 20)
    readiness = Readiness()
    links.attach(readiness)
    fd, real = next(iter(links._listeners.items()))
    fake = _Exhausted(real)
    links._listeners[fd] = fake  # type: ignore[assignment]
    try:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)  # waits in the backlog
        pump(links, readiness, 5)
        assert fake.calls == 1  # not once per loop turn: the listener is no longer watched
        assert links.counters["accept_errors"] == 1
        time.sleep(0.25)
        pump(links, readiness, 2)
        assert fake.calls == 2  # watched again after the pause
        client.close()
    finally:
        links.close()
        readiness.close()
