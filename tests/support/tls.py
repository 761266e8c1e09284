"""Test TLS material: a CA plus server and client certificates, and a TLS-only redis-server.

    files = make_tls_files(tmp_path / "tls")          # ca.crt, server.crt/key, client.crt/key
    server = start_tls_server(tmp_path / "srv", files)  # --port 0 --tls-port N
    server.url  -> rediss://127.0.0.1:N/0

Certificates are EC P-256, valid one day, for 127.0.0.1 and localhost, written with
``cryptography``. ``redis_supports_tls()`` says whether the installed redis-server was
built with TLS (tests skip otherwise).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path

import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.redis_server import RedisServer, free_port


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def redis_supports_tls() -> bool:
    """True when redis-server was built with TLS (it links OpenSSL's SSL_CTX functions)."""
    binary = shutil.which("redis-server")
    if binary is None:
        return False
    return b"SSL_CTX_new" in Path(binary).resolve().read_bytes()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def make_tls_files(directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                   ca_name: str = "cachectl test CA") -> TlsFiles:
    """Write a fresh CA, a server and a client certificate (signed by it) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder()
          .subject_name(_name(ca_name)).issuer_name(_name(ca_name))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    pem = serialization.Encoding.PEM
    (directory / "ca.crt").write_bytes(ca.public_bytes(pem))
    for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                        ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(_name(f"cachectl test {role}")).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        (directory / f"{role}.crt").write_bytes(cert.public_bytes(pem))
        _write_key(key, directory / f"{role}.key")
    return TlsFiles(ca=directory / "ca.crt", server_cert=directory / "server.crt",
                    server_key=directory / "server.key", client_cert=directory / "client.crt",
                    client_key=directory / "client.key")


class TlsServer(RedisServer):
    """A redis-server speaking only TLS (``--port 0 --tls-port N``)."""

    def __init__(self, workdir: Path, files: TlsFiles, *args: str,
                 client_certs: bool = False, password: str | None = None) -> None:
        port = free_port()
        tls = ["--port", "0", "--tls-port", str(port),
               "--tls-cert-file", str(files.server_cert), "--tls-key-file", str(files.server_key),
               "--tls-ca-cert-file", str(files.ca),
               "--tls-auth-clients", "yes" if client_certs else "no"]
        super().__init__(workdir, *tls, *args, port=port, password=password)
        self.files = files

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password,
                           socket_timeout=10, ssl=True, ssl_ca_certs=str(self.files.ca),
                           ssl_certfile=str(self.files.client_cert),
                           ssl_keyfile=str(self.files.client_key),
                           **kwargs)  # type: ignore[arg-type]


def start_tls_server(workdir: Path, files: TlsFiles, *args: str, client_certs: bool = False,
                     password: str | None = None) -> TlsServer:
    """Start a TLS-only server; stop it with ``.stop()``."""
    return TlsServer(workdir, files, *args, client_certs=client_certs,
                     password=password).start()  # type: ignore[return-value]
