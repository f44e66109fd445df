"""The ASGI TLS extension (``scope["extensions"]["tls"]``), which no ASGI server fills in.

Computed once per connection, after the handshake, from the connection's SSL object:
https://asgi.readthedocs.io/en/latest/specs/tls.html. Only the leaf of
``client_cert_chain`` is given: Python's ssl module before 3.13 exposes no verified
chain, and the spec is being cut down to ``client_cert_chain[0]`` (asgiref PR #590).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from gateway.tls.context import TLS_VERSION_CODES


@dataclass(frozen=True)
class ServerTLS:
    """What every connection of this server shares: its certificate and cipher codes."""

    server_cert_pem: str | None
    cipher_codes: dict[str, int]


def connection_tls_extension(ssl_object: Any, server: ServerTLS) -> dict[str, Any]:
    peer_der: bytes | None = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    client_name: str | None = None
    if peer_der:
        chain.append(ssl.DER_cert_to_PEM_cert(peer_der))
        client_name = x509.load_der_x509_certificate(peer_der).subject.rfc4514_string()
    cipher = ssl_object.cipher()
    return {
        "server_cert": server.server_cert_pem,
        "client_cert_chain": chain,
        "client_cert_name": client_name,
        # The handshake refuses an unverifiable certificate, so one that got here is verified.
        "client_cert_error": None,
        "tls_version": TLS_VERSION_CODES.get(ssl_object.version() or ""),
        "cipher_suite": server.cipher_codes.get(cipher[0]) if cipher else None,
    }
