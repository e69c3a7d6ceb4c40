"""The client's side of a ``tls://`` endpoint: TLS 1.3 with the daemon's certificate pinned.

A keyed daemon presents the self-signed certificate ``groupcomm keygen`` made for it; the
client is given a copy (``daemon_cert``) and trusts that exact certificate and nothing else:
no CA, no host name (a daemon is reached by whatever address routes to it), and after the
handshake the certificate presented must be byte for byte the pinned one. Optionally the client
presents its own key pair (``cert``, ``key``; from ``groupcomm keygen NAME``), which the daemon
maps to the ``[clients.NAME]`` identity listing that certificate.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsFilesError(ValueError):
    """A certificate or key file given for a ``tls://`` endpoint cannot be used; the message
    names the file."""


def _read_cert(path: str, what: str) -> tuple[str, bytes]:
    try:
        pem = Path(path).expanduser().read_text(encoding="ascii")
        return pem, ssl.PEM_cert_to_DER_cert(pem)
    except OSError as exc:
        raise TlsFilesError(f"{what} {path!r}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # UnicodeDecodeError included
        raise TlsFilesError(
            f"{what} {path!r}: not a PEM certificate (a NAME.crt from `groupcomm keygen`): {exc}"
        ) from None


class ClientTls:
    """The SSL context of one connection's ``tls://`` endpoint and the pinned daemon cert.
    ``key`` defaults to ``cert`` with the suffix ``.key``, as ``groupcomm keygen`` names it."""

    def __init__(self, daemon_cert: str, cert: str = "", key: str = "") -> None:
        self.daemon_cert = daemon_cert
        self.cert = cert
        pem, self.daemon_der = _read_cert(daemon_cert, "daemon_cert")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False  # the identity is the pinned certificate, not a name
        ctx.load_verify_locations(cadata=pem)  # the only trust anchor
        ctx.verify_mode = ssl.CERT_REQUIRED
        if key and not cert:
            raise TlsFilesError("key is given without cert (the certificate it belongs to)")
        if cert:
            key = key or str(Path(cert).with_suffix(".key"))
            try:
                ctx.load_cert_chain(Path(cert).expanduser(), Path(key).expanduser())
            except (OSError, ssl.SSLError) as exc:
                raise TlsFilesError(
                    f"cert {cert!r} with key {key!r}: {exc} (the pair `groupcomm keygen` wrote?)"
                ) from None
        self.context = ctx

    def pinned(self, ssl_object: object) -> bool:
        """Whether the session's daemon presented exactly the pinned certificate."""
        if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            return False
        return ssl_object.getpeercert(binary_form=True) == self.daemon_der
