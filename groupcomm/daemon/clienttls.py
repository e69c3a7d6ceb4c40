"""TLS 1.3 on the ``tls://`` client endpoints of a keyed daemon (``[security] key``).

The daemon presents its own key and certificate (the ones its peers pin); a client checks it
against the copy it was given (``daemon_cert``), so a client knows it talks to that daemon. The
daemon asks every client for a certificate without requiring one (``CERT_OPTIONAL``): a client
that presents one must present exactly one of the ``[clients.NAME] cert`` files, and is then
``NAME``; any other certificate fails the handshake. A client without one is authenticated by
its token in ``hello``, or is ``anonymous`` where no ``[clients]`` are configured
(``groupcomm.daemon.access``). There is no CA and no host name: certificates are pinned.

The sessions run through ``TlsChannel`` (memory BIOs), as the links between daemons do, so
``ClientLinks`` keeps its own reads and its one write per client per turn.
"""

from __future__ import annotations

import ssl

from groupcomm.config import DaemonConfig
from groupcomm.daemon.tlschannel import TlsChannel, TlsError

HANDSHAKE_TIMEOUT_S = 5.0  # a round trip or two, over a WAN; then the slot is freed


class ClientTls:
    """The server context of the ``tls://`` client endpoints and the pinned client certs."""

    def __init__(self, config: DaemonConfig) -> None:
        self.by_der = {c.cert_der: c.name for c in config.access.cert_clients}
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        cert, key = config.me.cert, config.security.key
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise TlsError(
                f"[security] key {key!r} with this daemon's cert {cert!r}: {exc} "
                "(is the key the one `groupcomm keygen` wrote next to that cert?)"
            ) from None
        ctx.num_tickets = 0  # no resumption: a resumed session would skip the client's cert
        if self.by_der:
            # The listed certificates are the only trust anchors; each is self-signed and not a
            # CA, so nothing they "sign" verifies, and ``identity_of`` checks the exact bytes.
            ctx.load_verify_locations(
                cadata="\n".join(ssl.DER_cert_to_PEM_cert(der) for der in self.by_der)
            )
            ctx.verify_mode = ssl.CERT_OPTIONAL
        else:
            ctx.verify_mode = ssl.CERT_NONE  # no cert identities: none is asked for
        self.context = ctx

    def channel(self) -> TlsChannel:
        return TlsChannel(self.context, server_side=True)

    def identity_of(self, channel: TlsChannel) -> str | None:
        """After the handshake: the ``[clients]`` name the client's certificate proves, ``""``
        when it presented none, ``None`` for a certificate that is not listed (refuse it)."""
        der = channel.peer_der()
        if der is None:
            return ""
        return self.by_der.get(der)
