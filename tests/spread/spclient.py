"""An independent Spread client for tests, written from the protocol notes
(``../shared/design/SPREAD-CLIENT-PROTOCOL.md``) with ``struct`` alone: it does not use
``groupcomm.wire.spread``, so the codec and the daemon are checked against a second reading of
the notes. ``little_endian=False`` speaks as the Java client does (big-endian, marker clear).
Blocking sockets; the timeout only keeps a broken test from hanging.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

MARKER = 0x80000080
AGREED, SAFE, FIFO, RELIABLE, SELF_DISCARD = 0x10, 0x20, 0x04, 0x02, 0x40
REG_MEMB, TRANSITION = 0x1000, 0x2000
JOIN, LEAVE, KILL, REJECT = 0x10000, 0x20000, 0x40000, 0x400000
CAUSES = {0x100: "JOIN", 0x200: "LEAVE", 0x400: "DISCONNECT", 0x800: "NETWORK"}


class Rejected(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"connect rejected: {code}")
        self.code = code


@dataclass
class Received:
    type: int
    sender: str
    groups: list[str]
    mess_type: int
    body: bytes
    old_type: int = 0

    @property
    def is_membership(self) -> bool:
        return bool(self.type & (REG_MEMB | TRANSITION)) or self.type == 0x200

    def membership(self) -> tuple[tuple[int, int, int], list[list[str]], int]:
        """(group id, vs-sets, index of my vs-set) of a regular membership message."""
        gid = struct.unpack_from("<iii", self.body)
        count, offset = struct.unpack_from("<II", self.body, 12)
        pos, sets, mine = 20, [], -1
        for i in range(count):
            if pos - 20 == offset:
                mine = i
            (n,) = struct.unpack_from("<I", self.body, pos)
            sets.append([_name(self.body[pos + 4 + 32 * k : pos + 36 + 32 * k]) for k in range(n)])
            pos += 4 + 32 * n
        assert pos == len(self.body)
        return (gid[0], gid[1], gid[2]), sets, mine


def _name(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1")


def _field(name: str) -> bytes:
    return name.encode("latin-1").ljust(32, b"\0")


def connect_bytes(name: str, version: tuple[int, int, int], membership: bool) -> bytes:
    major, minor, patch = version
    head = (
        bytes((major, minor, patch))
        if major * 10000 + minor * 100 > 31400
        else bytes((major, minor))
    )
    raw = name.encode("ascii")
    return head + bytes((int(membership), len(raw))) + raw


class SpClient:
    def __init__(
        self,
        address: str | tuple[str, int],
        name: str,
        *,
        membership: bool = True,
        little_endian: bool = True,
        version: tuple[int, int, int] = (5, 0, 1),
        timeout: float = 30.0,
        split: bool = False,
    ) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.little = little_endian
        self._buf = b""
        hello = connect_bytes(name, version, membership)
        if split:  # one byte at a time: the daemon must buffer partial reads
            for i in range(len(hello)):
                self.sock.sendall(hello[i : i + 1])
        else:
            self.sock.sendall(hello)
        lib = version[0] * 10000 + version[1] * 100 + version[2]
        if lib >= 31600:
            n = self._read(1)[0]
            if n >= 0x80:
                raise Rejected(n - 256)
            methods = self._read(n).decode("ascii")
            assert "NULL" in methods.split(), methods
            block = b"NULL".ljust(90, b"\0")
            if split:
                self.sock.sendall(block[:7])
                self.sock.sendall(block[7:])
            else:
                self.sock.sendall(block)
        code = struct.unpack("b", self._read(1))[0]
        if code != 1:
            raise Rejected(code)
        self.daemon_version = tuple(self._read(3 if lib >= 31500 else 2))
        self.private_name = self._read(self._read(1)[0]).decode("latin-1")

    # ---------------------------------------------------------------------- sending
    def _send(self, mtype: int, groups: list[str], body: bytes, mess_type: int = 0) -> None:
        o = "<" if self.little else ">"
        m = MARKER if self.little else 0
        hint = ((mess_type << 8) & 0x00FFFF00) | m
        head = struct.pack(
            f"{o}I32siIi", mtype | m, _field(self.private_name), len(groups), hint, len(body)
        )
        self.sock.sendall(head + b"".join(_field(g) for g in groups) + body)

    def join(self, group: str) -> None:
        self._send(JOIN, [group], b"")

    def leave(self, group: str) -> None:
        self._send(LEAVE, [group], b"")

    def multicast(self, service: int, groups: list[str], body: bytes, mess_type: int = 0) -> None:
        self._send(service, groups, body, mess_type)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def disconnect(self) -> None:
        self._send(KILL, [self.private_name], b"")
        self.sock.close()

    # -------------------------------------------------------------------- receiving
    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the daemon")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def receive(self) -> Received:
        head = self._read(48)
        little = (struct.unpack_from("<I", head)[0] & MARKER) == MARKER
        o = "<" if little else ">"
        mtype, sender, ngroups, _hint, dlen = struct.unpack(f"{o}I32siIi", head)
        hint = struct.unpack_from("<I", head, 40)[0]  # the sender's order: its own marker
        if (hint & MARKER) != MARKER:
            hint = struct.unpack_from(">I", head, 40)[0]
        mtype &= ~MARKER
        old = 0
        if mtype & REJECT:
            old = struct.unpack(f"{o}I", self._read(4))[0] & ~MARKER
        groups = [_name(self._read(32)) for _ in range(ngroups)]
        body = self._read(dlen)
        mess_type = struct.unpack("<h", struct.pack("<H", (hint >> 8) & 0xFFFF))[0]
        return Received(mtype, _name(sender), groups, mess_type, body, old)

    def closed(self) -> bool:
        """True once the daemon has closed the connection (reads until then)."""
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()
