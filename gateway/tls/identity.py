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


def identity_of(scope: Mapping[str, Any]) -> ServiceIdentity | None:
    """The caller's verified identity, or None (no TLS, no certificate, no single SPIFFE ID)."""
    tls = scope.get("extensions", {}).get("tls")
    if not tls or not tls.get("client_cert_chain") or tls.get("client_cert_error"):
        return None
    return _identity_of_certificate(tls["client_cert_chain"][0])


async def require_identity(request: Request) -> ServiceIdentity:
    identity = identity_of(request.scope)
    if identity is None:
        raise HTTPException(
            401,
            "This route needs a verified client certificate whose identity is a SPIFFE ID.",
            # RFC 9110 asks 401 to name a scheme; mutual TLS has no registered one.
            headers={"WWW-Authenticate": 'MutualTLS realm="gateway"'},
        )
    return identity


CallerIdentity = Annotated[ServiceIdentity, Depends(require_identity)]
