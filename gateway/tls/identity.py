"""Who is calling: the SPIFFE ID of the verified client certificate.

The server's protocol puts the certificate in the ASGI TLS extension; this module reads
``client_cert_chain[0]`` (the only field the spec will keep, asgiref PR #590) and gives
version apps a FastAPI dependency that returns the caller's identity or answers 401.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any

from cryptography import x509
from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from gateway.tls.certificates import spiffe_identity

if TYPE_CHECKING:
    from collections.abc import Mapping

_SERVICE_PATH = "/service/"
# Set by the edge when a trusted proxy forwards the caller (see forwarded.py): the
# forwarded identity, or None. Present, it replaces the connection's own certificate.
CALLER_SCOPE_KEY = "gateway.caller"


@dataclass(frozen=True)
class ServiceIdentity:
    spiffe_id: str

    @property
    def trust_domain(self) -> str:
        return self.spiffe_id.removeprefix("spiffe://").split("/", 1)[0]

    @property
    def service(self) -> str | None:
        """The service name of ``spiffe://<domain>/service/<name>`` IDs."""
        path = self.spiffe_id.removeprefix("spiffe://" + self.trust_domain)
        return path.removeprefix(_SERVICE_PATH) if path.startswith(_SERVICE_PATH) else None


@lru_cache(maxsize=1024)
def _identity_of_certificate(pem: str) -> ServiceIdentity | None:
    # Cached: every request of a keep-alive connection carries the same certificate.
    spiffe_id = spiffe_identity(x509.load_pem_x509_certificate(pem.encode()))
    return ServiceIdentity(spiffe_id) if spiffe_id is not None else None


def certificate_identity(scope: Mapping[str, Any]) -> ServiceIdentity | None:
    """The identity in the connection's verified client certificate, or None (no TLS, no
    certificate, no single SPIFFE ID). Behind a trusted proxy this is the proxy."""
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if extensions else None
    if not tls or not tls.get("client_cert_chain") or tls.get("client_cert_error"):
        return None
    return _identity_of_certificate(tls["client_cert_chain"][0])


def identity_of(scope: Mapping[str, Any]) -> ServiceIdentity | None:
    """The caller's verified identity: forwarded by a trusted proxy, else the connection's own."""
    if CALLER_SCOPE_KEY in scope:
        forwarded: ServiceIdentity | None = scope[CALLER_SCOPE_KEY]
        return forwarded
    return certificate_identity(scope)


# RFC 9110 asks a 401 to name a scheme; mutual TLS has no registered one.
UNAUTHENTICATED_HEADERS = {"WWW-Authenticate": 'MutualTLS realm="gateway"'}


async def require_identity(request: Request) -> ServiceIdentity:
    identity = identity_of(request.scope)
    if identity is None:
        raise HTTPException(
            401,
            "This route needs a verified client certificate whose identity is a SPIFFE ID.",
            headers=UNAUTHENTICATED_HEADERS,
        )
    return identity


CallerIdentity = Annotated[ServiceIdentity, Depends(require_identity)]
