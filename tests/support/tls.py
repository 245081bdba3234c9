"""TLS for tests: a throwaway certificate authority, its server certificates for 127.0.0.1,
and a registry serving HTTPS with one."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

from support.servers import RegistryProcess


def _name(cn: str):  # type: ignore[no-untyped-def]
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class ScratchCA:
    """A throwaway certificate authority that signs server certificates for 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        self.dir = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(_name("moorage test CA"))
            .issuer_name(_name("moorage test CA")).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.path = directory / "ca.crt"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM) of a server certificate named `cn` for 127.0.0.1."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
            ]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def install(self, cn: str, cert_file: Path, key_file: Path) -> None:
        """Write a new certificate named `cn` over the server's files."""
        cert, key = self.issue(cn)
        key_file.write_bytes(key)
        cert_file.write_bytes(cert)


def start_tls(tmp_path: Path, ca: ScratchCA, cn: str, *args: str, auth: bool = False,
              **env: str) -> tuple[RegistryProcess, Path, Path]:
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    ca.install(cn, cert_file, key_file)
    data = tmp_path / "data"
    data.mkdir()
    server = RegistryProcess(
        data_dir=data, auth=auth, tls_ca=str(ca.path),
        extra_args=["--tls-cert", str(cert_file), "--tls-key", str(key_file), *args],
        env=env,
    ).start()
    return server, cert_file, key_file


def served_cn(port: int, ca: ScratchCA) -> str:
    """The common name of the certificate a new handshake with 127.0.0.1:`port` gets."""
    context = ssl.create_default_context(cafile=str(ca.path))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        return peer_cn(tls)


def peer_cn(tls: ssl.SSLSocket) -> str:
    subject = dict(pair[0] for pair in tls.getpeercert()["subject"])  # type: ignore[index]
    return str(subject["commonName"])
