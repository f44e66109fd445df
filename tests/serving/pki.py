"""Certificates for the TLS tests of real process groups, from the project's own issuer,
written to a folder the server reads; and what a client saw of the server's certificate."""

from __future__ import annotations

import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509

from gateway.tls.certificates import (
    Authority,
    CertifiedKey,
    create_authority,
    issue_client_certificate,
    issue_server_certificate,
)

TRUST_DOMAIN = "gateway.test"


@dataclass(frozen=True)
class Pki:
    folder: Path
    authority: Authority

    @classmethod
    def create(cls, folder: Path) -> Pki:
        folder.mkdir()
        authority = create_authority("Gateway test CA")
        (folder / "ca.pem").write_bytes(authority.pem())
        pki = cls(folder, authority)
        pki.write("server", pki.server_certificate())
        return pki

    def server_certificate(self) -> CertifiedKey:
        return issue_server_certificate(self.authority, ["localhost", "127.0.0.1"])

    def client_certificate(self, name: str) -> CertifiedKey:
        return issue_client_certificate(self.authority, name, trust_domain=TRUST_DOMAIN)

    def write(self, name: str, certified: CertifiedKey) -> tuple[Path, Path]:
        """``name.pem`` and ``name-key.pem``, each replaced atomically, as a careful operator would."""
        certificate, key = self.folder / f"{name}.pem", self.folder / f"{name}-key.pem"
        replace_file(certificate, certified.pem())
        replace_file(key, certified.key_pem())
        return certificate, key

    def client(self, name: str, certified: CertifiedKey | None = None) -> ssl.SSLContext:
        context = self.anonymous()
        context.load_cert_chain(*self.write(name, certified or self.client_certificate(name)))
        return context

    def write_mismatched_server_key(self) -> bytes:
        """Replace the server's key with one that is not its certificate's; the original key."""
        key = self.folder / "server-key.pem"
        original = key.read_bytes()
        replace_file(key, issue_server_certificate(create_authority("Other CA"), ["localhost"]).key_pem())
        return original

    def anonymous(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.folder / "ca.pem")

    def settings(self, mode: str, **extra: str) -> dict[str, str]:
        return tls_settings(self.folder, mode, **extra)


def tls_settings(folder: Path, mode: str, **extra: str) -> dict[str, str]:
    """Gateway settings for TLS ``mode`` with the file names `gateway certs init` writes in ``folder``."""
    return {
        "tls_mode": mode,
        "tls_certfile": str(folder / "server.pem"),
        "tls_keyfile": str(folder / "server-key.pem"),
        "tls_ca_file": str(folder / "ca.pem"),
        "tls_trust_domain": TRUST_DOMAIN,
        **extra,
    }


def replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` and rename it over: readers see the old file or the new one."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


def get_with_serial(client: httpx.Client, path: str) -> tuple[httpx.Response, int]:
    """GET ``path``, and the serial number of the certificate the server presented on the
    connection, read before the body: a response with Connection: close closes it after."""
    with client.stream("GET", path) as response:
        ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
        # httpcore's sync backend hands out the low-level _ssl object: its flag is positional only.
        peer_der = ssl_object.getpeercert(True)
        response.read()
    return response, x509.load_der_x509_certificate(peer_der).serial_number
