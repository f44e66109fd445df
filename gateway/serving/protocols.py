"""The protocol classes Uvicorn serves with, configured from settings.

Uvicorn instantiates protocols from a class alone, so the gateway's limits and the
server's TLS facts travel as class attributes of a subclass made here. ``gateway serve``
(the Gunicorn worker) builds them directly. ``gateway dev`` names ``http_protocol``,
``websocket_protocol`` and ``dev_ssl_context`` by import path instead: Uvicorn's reloader
pickles its configuration into a fresh server process, where a class made at run time
could not be found; each builds what it needs there once, from the settings.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from gateway.serving.h11_protocol import GatewayH11Protocol
from gateway.serving.limits import HttpLimits
from gateway.serving.protocol import GatewayHttpProtocol
from gateway.serving.served_tls import ServedTLS, load_served_tls
from gateway.serving.websocket import websocket_protocol_class
from gateway.settings import load_settings

if TYPE_CHECKING:
    import asyncio
    import ssl
    from collections.abc import Callable

    from uvicorn.config import Config

    from gateway.settings import Settings
    from gateway.tls.scope import ServerTLS

GatewayProtocol = GatewayHttpProtocol | GatewayH11Protocol
HTTP_PROTOCOLS: dict[str, type[GatewayProtocol]] = {
    "httptools": GatewayHttpProtocol,
    "h11": GatewayH11Protocol,
}


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_request_line=settings.max_request_line,
        max_header_count=settings.max_header_count,
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        max_connections=settings.max_connections,
        body_timeout=settings.body_timeout,
        body_min_rate=settings.body_min_rate,
        body_rate_grace=settings.body_rate_grace,
    )


def http_protocol_class(settings: Settings, tls: ServerTLS | None) -> type[GatewayProtocol]:
    """The protocol of ``settings.http``, carrying the limits and the server's TLS facts."""
    base = HTTP_PROTOCOLS[settings.http]
    configured: type[GatewayProtocol] = type(
        f"Configured{base.__name__}", (base,), {"limits": http_limits(settings), "tls": tls}
    )
    return configured


# ``gateway dev``: Uvicorn terminates TLS itself there, with the context ``gateway serve``
# builds (its ``ssl_context_factory``), and the protocols describe that same context.
# Cached per process: the reloader starts a new server process on every code change.


@cache
def _dev_served_tls() -> ServedTLS | None:
    return load_served_tls(load_settings())


@cache
def _dev_http_protocol_class() -> type[GatewayProtocol]:
    served = _dev_served_tls()
    return http_protocol_class(load_settings(), served.facts if served is not None else None)


@cache
def _dev_websocket_protocol_class() -> type[asyncio.Protocol] | None:
    served = _dev_served_tls()
    return websocket_protocol_class(served.facts if served is not None else None)


def dev_ssl_context(config: Config, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """For ``gateway dev``: Uvicorn's ``ssl_context_factory``, the context of ``gateway serve``
    (minimum version, ciphers, client certificates, CRL)."""
    served = _dev_served_tls()
    if served is None:
        raise RuntimeError("gateway dev asked for a TLS context while GATEWAY_TLS_MODE is off")
    return served.context


def http_protocol(**kwargs: Any) -> asyncio.Protocol:
    """For ``gateway dev``: Uvicorn's ``http`` option, by import string."""
    return _dev_http_protocol_class()(**kwargs)


def websocket_protocol(**kwargs: Any) -> asyncio.Protocol:
    """For ``gateway dev``: Uvicorn's ``ws`` option, by import string."""
    protocol_class = _dev_websocket_protocol_class()
    if protocol_class is None:
        raise RuntimeError("no WebSocket library: install websockets or wsproto")
    return protocol_class(**kwargs)
