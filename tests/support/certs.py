"""Test certificates (a CA, a server and a client certificate) and TLS-only redis-servers.

Generated with ``cryptography`` in the test's temp dir, valid for 127.0.0.1 and
localhost for one day. Named ``certs`` so it does not clash with the inspect
engineer's ``tests/support/tls.py``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.redis_server import RedisServer, free_port


@dataclass(frozen=True)
class CertSet:
    """Paths of one generated PKI: CA, server pair, client pair."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_certs(directory: Path, ca_name: str = "cachectl test CA") -> CertSet:
    """Generate a CA and a server + client certificate signed by it, in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ca_name)).issuer_name(_name(ca_name))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: x509.ObjectIdentifier) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = _key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cert, key

    pem = serialization.Encoding.PEM
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    paths = {}
    for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                        ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        cert, key = leaf(f"cachectl test {role}", usage)
        (directory / f"{role}.crt").write_bytes(cert.public_bytes(pem))
        _write_key(key, directory / f"{role}.key")
        paths[role] = (directory / f"{role}.crt", directory / f"{role}.key")
    return CertSet(ca=ca_path, server_cert=paths["server"][0], server_key=paths["server"][1],
                   client_cert=paths["client"][0], client_key=paths["client"][1])


class TlsRedisServer(RedisServer):
    """A redis-server that speaks only TLS on its port (``rediss://``)."""

    def __init__(self, workdir: Path, certs: CertSet, *args: str,
                 require_client_cert: bool = False, password: str | None = None) -> None:
        port = free_port()
        tls_args = [
            "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
            "--tls-ca-cert-file", str(certs.ca),
            "--tls-auth-clients", "yes" if require_client_cert else "no",
        ]
        super().__init__(workdir, *tls_args, *args, port=port, password=password)
        self.certs = certs
        self.require_client_cert = require_client_cert

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> object:  # type: ignore[override]
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=10, ssl=True, ssl_ca_certs=str(self.certs.ca),
                           ssl_certfile=str(self.certs.client_cert),
                           ssl_keyfile=str(self.certs.client_key), **kwargs)  # type: ignore[arg-type]
