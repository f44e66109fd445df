"""Service identities for in-process tests: what the gateway's TLS protocol puts in the scope.

Over a real connection the server's protocol fills the ASGI TLS extension from the
handshake (tests/serving/test_tls.py proves that); in process, ``presenting`` puts a
client certificate from the project's own issuer into the extension the same way, so the
layers above it (identities, the allow-list, forwarded certificates) are tested quickly.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import httpx
from asgi_lifespan import LifespanManager

from gateway.tls.certificates import Authority, create_authority, issue_client_certificate
from tests.serving.pki import TRUST_DOMAIN

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from starlette.types import ASGIApp, Receive, Scope, Send

TLS_1_3 = 0x0304


def spiffe_id(service: str) -> str:
    """The SPIFFE ID the test PKI gives ``service``."""
    return f"spiffe://{TRUST_DOMAIN}/service/{service}"


@cache
def _authority() -> Authority:
    # One CA for the session: issuing keys is the slow part.
    return create_authority("In-process test CA")


@dataclass
class ClientCertificates:
    pems: dict[str, str] = field(default_factory=dict)

    def pem(self, service: str) -> str:
        if service not in self.pems:
            certified = issue_client_certificate(_authority(), service, trust_domain=TRUST_DOMAIN)
            self.pems[service] = certified.pem().decode()
        return self.pems[service]


_CERTIFICATES = ClientCertificates()


def presenting(app: ASGIApp, service: str | None) -> ASGIApp:
    """``app`` reached over mutual TLS by ``service``'s certificate (None: TLS, no certificate)."""
    chain = [_CERTIFICATES.pem(service)] if service is not None else []
    tls = {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": f"CN={service}" if service is not None else None,
        "client_cert_error": None,
        "tls_version": TLS_1_3,
        "cipher_suite": None,
    }

    async def over_tls(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "scheme": scope["scheme"] + "s", "extensions": {"tls": tls}}
        await app(scope, receive, send)

    return over_tls


@asynccontextmanager
async def clients_by_identity(app: ASGIApp) -> AsyncIterator[Callable[[str | None], httpx.AsyncClient]]:
    """Run ``app``'s lifespan once; yield a factory of clients, one per calling service."""
    async with LifespanManager(app) as manager:
        opened: list[httpx.AsyncClient] = []

        def client_of(service: str | None) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=presenting(manager.app, service))
            client = httpx.AsyncClient(transport=transport, base_url="https://gateway.test")
            opened.append(client)
            return client

        try:
            yield client_of
        finally:
            for client in opened:
                await client.aclose()
