"""``groupcomm keygen``: a daemon's key pair, as the files ``[security] key`` and ``[[peers]] cert``
name (``docs/operations.md`` "Securing a cluster").

The key is Ed25519 (small, fast, no parameters to get wrong); the "public key" is a self-signed
X.509 certificate because that is what TLS from the standard library takes. Nothing in it is
checked but the key itself: daemons pin each peer's exact certificate (no CA, no host names), and
it never expires (RFC 5280's 99991231235959Z), so a cluster does not stop on a date.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

NOT_BEFORE = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


class KeygenError(RuntimeError):
    """The key files cannot be written (they exist, or the directory is not writable)."""


def key_paths(directory: Path, name: str) -> tuple[Path, Path]:
    return directory / f"{name}.key", directory / f"{name}.crt"


def make_keypair(name: str, directory: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key`` (private, mode 0600) and ``NAME.crt`` into ``directory``; their paths.
    Existing files are kept unless ``force``: overwriting a key locks its daemon out of the
    cluster until every peer has the new certificate."""
    key_path, cert_path = key_paths(directory, name)
    if not force:
        for path in (key_path, cert_path):
            if path.exists():
                raise KeygenError(f"{path} exists (use --force to replace it)")
    key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, None)
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(key_path, flags, 0o600)  # never readable by others, not even briefly
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        os.chmod(key_path, 0o600)  # O_CREAT's mode does not apply to a file that existed
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    except OSError as exc:
        raise KeygenError(f"cannot write keys into {directory}: {exc.strerror or exc}") from None
    return key_path, cert_path
