"""TLS 1.3 for the TCP links between daemons, from the standard library's ``ssl``.

``LinkSecurity`` holds the two contexts of a keyed daemon (``[security] key``): both ends present
their certificate and both require one from the configured peers' certificates, so a link is
mutually authenticated before any record passes; after the handshake the peer is named by the
exact certificate it showed (``name_of``), which ``TcpTransport`` binds the link to (AUTH-1).
There is no CA and no host name: the config pins every peer's certificate.

``TlsChannel`` drives one session through memory BIOs instead of wrapping the socket: the
transport keeps its own non-blocking reads and writes and its one-``send``-per-peer-per-turn
batching, and a whole turn's frames are encrypted in one call (one TLS record per 16 KiB, not
one per frame).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from groupcomm.config import DaemonConfig

HANDSHAKE_TIMEOUT_S = 2.0  # a handshake takes one round trip; strangers do not get to linger
READ_CHUNK = 64 << 10


class TlsError(RuntimeError):
    """The key or a certificate cannot be used; the message names the file."""


class LinkSecurity:
    """The TLS contexts and the pinned certificates of a keyed daemon."""

    def __init__(self, config: DaemonConfig) -> None:
        self.by_der: dict[bytes, str] = {}
        pems: list[str] = []
        for peer in config.peers:
            try:
                pem = Path(peer.cert).read_text()
                der = ssl.PEM_cert_to_DER_cert(pem)
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                raise TlsError(
                    f"[[peers]] {peer.name} cert {peer.cert!r}: not a PEM certificate ({exc})"
                ) from None
            other = self.by_der.get(der)
            if other is not None:
                raise TlsError(f"[[peers]] {peer.name} and {other} have the same certificate")
            self.by_der[der] = peer.name
            pems.append(pem)
        self.der_of = {name: der for der, name in self.by_der.items()}
        me = config.me
        cadata = "\n".join(pems)
        self.client = self._context(ssl.PROTOCOL_TLS_CLIENT, me.cert, config.security.key, cadata)
        self.client.check_hostname = False  # identity is the pinned certificate, not a name
        self.server = self._context(ssl.PROTOCOL_TLS_SERVER, me.cert, config.security.key, cadata)
        self.server.num_tickets = 0  # no resumption: links are long-lived, tickets are noise

    @staticmethod
    def _context(protocol: int, cert: str, key: str, cadata: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(protocol)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(
                f"[security] key {key!r} with this daemon's cert {cert!r}: {exc} "
                "(is the key the one `groupcomm keygen` wrote next to that cert?)"
            ) from None
        try:
            ctx.load_verify_locations(cadata=cadata)
        except ssl.SSLError as exc:
            raise TlsError(f"[[peers]] cert: a certificate OpenSSL cannot use: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def name_of(self, channel: TlsChannel) -> str | None:
        """The configured peer whose certificate the other end proved it holds."""
        der = channel.peer_der()
        return None if der is None else self.by_der.get(der)

    def channel(self, *, server_side: bool) -> TlsChannel:
        return TlsChannel(self.server if server_side else self.client, server_side=server_side)


class TlsChannel:
    """One TLS session over memory BIOs: ``feed`` what the socket read, ``seal`` what to send,
    and write out whatever ``take_out`` returns. Errors raise ``ssl.SSLError``."""

    __slots__ = ("_in", "_obj", "_out", "established")

    def __init__(self, ctx: ssl.SSLContext, *, server_side: bool) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=server_side)
        self.established = False

    def start(self) -> None:
        """Begin the handshake (the client's first flight goes to ``take_out``)."""
        self._handshake()

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Bytes from the socket in; the plaintext they complete out. ``ssl.SSLEOFError`` when
        the peer closed the session."""
        self._in.write(data)
        if not self.established and not self._handshake():
            return b""
        chunks: list[bytes] = []
        while True:
            try:
                chunk = self._obj.read(READ_CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                raise ssl.SSLEOFError("the peer closed the TLS session") from None
            if not chunk:
                break
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def seal(self, plaintext: bytes | bytearray) -> bytes:
        """Encrypt ``plaintext``; the bytes to send (after anything ``take_out`` held)."""
        self._obj.write(plaintext)
        return self._out.read()

    def take_out(self) -> bytes:
        """Handshake bytes waiting to be sent."""
        return self._out.read()

    def peer_der(self) -> bytes | None:
        return self._obj.getpeercert(binary_form=True) if self.established else None

    def _handshake(self) -> bool:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        self.established = True
        return True
