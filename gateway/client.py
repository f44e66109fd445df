"""HTTP clients for peer services calling the gateway over mutual TLS.

The TLS set-up is an ``ssl.SSLContext`` built here: httpx's ``verify="ca.pem"`` together
with ``cert=`` silently sends no client certificate (httpx PR #3718). Hostname
verification stays on. An idempotent request that fails because the server closed a
kept-alive connection (what a reload does) is sent once more, on a new connection. Sent
while a traced request is served, a request gets a client span of its own and carries its
W3C trace context, so the service it calls continues the trace.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from gateway.tracing.context import current_trace
from gateway.tracing.outgoing import client_span, record_response

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.settings import Settings

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# A kept-alive connection the server closed between requests fails in one of these ways.
_DROPPED_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=50, max_keepalive_connections=10, keepalive_expiry=4.0)


@dataclass(frozen=True)
class ClientCertificate:
    ca_file: Path
    certfile: Path | None = None
    keyfile: Path | None = None
    key_password: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, certfile: Path, keyfile: Path) -> ClientCertificate:
        """The gateway's CA from settings, and this service's own certificate."""
        return cls(settings.tls_ca_file, certfile, keyfile)

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.certfile is not None:
            context.load_cert_chain(self.certfile, self.keyfile, self.key_password)
        return context


class _RetryDroppedIdempotent(httpx.AsyncBaseTransport):
    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        trace = current_trace()
        if trace is None:
            return await self._send(request)
        with client_span(trace.tracer, request) as span:
            response = await self._send(request)
            record_response(span, response.status_code)
            return response

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._transport.handle_async_request(request)
        except _DROPPED_CONNECTION:
            if request.method not in IDEMPOTENT_METHODS:
                raise
            return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        await self._transport.aclose()


class _RetryDroppedIdempotentSync(httpx.BaseTransport):
    def __init__(self, transport: httpx.BaseTransport) -> None:
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        trace = current_trace()
        if trace is None:
            return self._send(request)
        with client_span(trace.tracer, request) as span:
            response = self._send(request)
            record_response(span, response.status_code)
            return response

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._transport.handle_request(request)
        except _DROPPED_CONNECTION:
            if request.method not in IDEMPOTENT_METHODS:
                raise
            return self._transport.handle_request(request)

    def close(self) -> None:
        self._transport.close()


def async_client(certificate: ClientCertificate, *, base_url: str = "") -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(verify=certificate.ssl_context(), limits=DEFAULT_LIMITS)
    return httpx.AsyncClient(
        base_url=base_url,
        transport=_RetryDroppedIdempotent(transport),
        timeout=DEFAULT_TIMEOUT,
        trust_env=False,
    )


def sync_client(certificate: ClientCertificate, *, base_url: str = "") -> httpx.Client:
    transport = httpx.HTTPTransport(verify=certificate.ssl_context(), limits=DEFAULT_LIMITS)
    return httpx.Client(
        base_url=base_url,
        transport=_RetryDroppedIdempotentSync(transport),
        timeout=DEFAULT_TIMEOUT,
        trust_env=False,
    )
