"""A minimal Redis client for the benchmark's Redis members: RESP commands written to a TCP
socket, replies parsed by ``hiredis.Reader`` (the C parser redis-py uses too).

Why not redis-py's ``PubSub``: its per-message path (``get_message``: a readiness check, the
parse, a dict per message) costs about 12 µs per message here, ``parse_response`` about 9, and
the same replies fed straight to ``hiredis.Reader`` about 1 µs (measured on this machine,
100,000 messages of 250 B, 2026-12-05). At 10,000 lines/s to 30 consumers on 2 CPUs, redis-py's
path alone would need 3.6 CPUs, and the comparison would measure a client wrapper rather than
Redis. This client does what the lean path of any client does: pipelined commands, one
``recv`` per batch of replies.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from typing import Any

Arg = bytes | str | int
RECV_BYTES = 1 << 18


class RedisError(RuntimeError):
    """An error reply, or the server closed the connection."""


def encode(args: Sequence[Arg]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RespClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        import hiredis  # here: the module (``encode``) imports without it

        self.reader = hiredis.Reader()
        self.reply_error: type[Exception] = hiredis.ReplyError

    def close(self) -> None:
        self.sock.close()

    def send(self, commands: Iterable[Sequence[Arg]]) -> None:
        self.sock.sendall(b"".join(encode(c) for c in commands))

    def read(self, timeout: float | None = None) -> Any:
        """The next reply; ``TimeoutError`` when none is complete within ``timeout``."""
        reply = self.reader.gets()
        if reply is False:
            self.sock.settimeout(timeout)
            while reply is False:
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    raise RedisError("connection closed by the server")
                self.reader.feed(data)
                reply = self.reader.gets()
        if isinstance(reply, self.reply_error):
            raise RedisError(str(reply))
        return reply

    def read_available(self, timeout: float | None) -> list[Any]:
        """Every complete reply after at most one ``recv`` (waiting up to ``timeout`` for it);
        ``[]`` on timeout."""
        out = []
        while (reply := self.reader.gets()) is not False:
            out.append(reply)
        if out:
            return out
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(RECV_BYTES)
        except TimeoutError:
            return out
        if not data:
            raise RedisError("connection closed by the server")
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            out.append(reply)
        return out

    def call(self, *args: Arg, timeout: float | None = 5.0) -> Any:
        self.send((args,))
        return self.read(timeout)

    def pipeline(self, commands: Sequence[Sequence[Arg]], timeout: float | None = 5.0) -> None:
        """Send every command at once, then read (and check) every reply."""
        self.send(commands)
        for _ in commands:
            self.read(timeout)
