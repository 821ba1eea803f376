"""Local certificates for the secure services: a private CA and server certificates it signs.

Generated once with ``cryptography`` into a folder of the cache (mode 0700, keys 0600) and
reused; the CA key never leaves that folder. Good for one machine or a lab; in production use
the certificates of your own PKI (``docs/security.md``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

CA_DAYS = 3650
CERT_DAYS = 825


@dataclass(frozen=True)
class CertSet:
    dir: Path
    ca: Path  # CA certificate (PEM): what clients trust
    cert: Path  # server certificate (PEM)
    key: Path  # server private key (PKCS#8 PEM, unencrypted, 0600)
    bundle: Path  # key + certificate + CA in one PEM (Kafka's PEM keystore), 0600


def private_dir(path: Path) -> Path:
    """A folder only its owner can read (created if missing, tightened if not)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_secret(path: Path, data: bytes | str) -> Path:
    """Write a file created with mode 0600 (never briefly world-readable)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)
    return path


def secret_file(path: Path, nbytes: int = 24) -> str:
    """Read a generated secret, creating it (random, URL-safe, mode 0600) on first use."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(nbytes)
    write_secret(path, value)
    return value


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tocsin local"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization as s

    return key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization as s

    return cert.public_bytes(s.Encoding.PEM)


def _load(path: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization as s

    data = path.read_bytes()
    return (s.load_pem_private_key(data, None) if b"PRIVATE KEY" in data
            else x509.load_pem_x509_certificate(data))


def _ensure_ca(d: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    ca_pem, ca_key_pem = d / "ca.pem", d / "ca-key.pem"
    if ca_pem.exists() and ca_key_pem.exists():
        return _load(ca_pem), _load(ca_key_pem)
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    name = _name("Tocsin local CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    write_secret(ca_key_pem, _pem_key(key))
    ca_pem.write_bytes(_pem_cert(cert))
    return cert, key


def ensure_certs(directory: Path, name: str = "server",
                 hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")) -> CertSet:
    """The CA and a server certificate ``name`` for ``hosts`` (IPs or DNS names) in
    ``directory``; generated on first use, reused afterwards."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    d = private_dir(Path(directory))
    out = CertSet(d, d / "ca.pem", d / f"{name}.pem", d / f"{name}-key.pem",
                  d / f"{name}-bundle.pem")
    if all(p.exists() for p in (out.ca, out.cert, out.key, out.bundle)):
        return out
    ca_cert, ca_key = _ensure_ca(d)
    key = _key()
    now = dt.datetime.now(dt.timezone.utc)
    sans: list = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0] if hosts else name))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_secret(out.key, _pem_key(key))
    out.cert.write_bytes(_pem_cert(cert) + _pem_cert(ca_cert))
    write_secret(out.bundle, _pem_key(key) + _pem_cert(cert) + _pem_cert(ca_cert))
    return out
