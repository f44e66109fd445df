"""The protocol classes Uvicorn serves with, configured from settings.

Uvicorn instantiates protocols from a class alone, so the gateway's limits and the
server's TLS facts travel as class attributes of a subclass made here. One builder,
``serving_protocols``, makes them for both servers: ``gateway serve`` (the Gunicorn worker)
calls it directly; ``gateway dev`` names ``create_dev_app``, ``http_protocol``,
``websocket_protocol`` and ``dev_ssl_context`` by import path instead (Uvicorn's reloader
pickles its configuration into a fresh server process, where a class made at run time
could not be found), and they call it there once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from gateway.extensions import load_group_settings
from gateway.serving.h11_protocol import GatewayH11Protocol
from gateway.serving.limits import HttpLimits
from gateway.serving.protocol import GatewayHttpProtocol
from gateway.serving.served_tls import ServedTLS, load_served_tls
from gateway.serving.websocket import websocket_protocol_class

if TYPE_CHECKING:
    import asyncio
    import ssl
    from collections.abc import Callable

    from starlette.applications import Starlette
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


@dataclass(frozen=True)
class ServingProtocols:
    """What Uvicorn serves with, built the same way for ``gateway serve`` and ``gateway dev``."""

    http: type[GatewayProtocol]
    # None when neither websockets nor wsproto is installed.
    websocket: type[asyncio.Protocol] | None
    tls: ServedTLS | None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self.tls.context if self.tls is not None else None


def serving_protocols(settings: Settings, tls: ServedTLS | None) -> ServingProtocols:
    """The protocols of ``settings``, describing the TLS ``tls`` serves (None: plain HTTP)."""
    facts = tls.facts if tls is not None else None
    return ServingProtocols(
        http=http_protocol_class(settings, facts), websocket=websocket_protocol_class(facts), tls=tls
    )


# ``gateway dev``: Uvicorn's reloader starts a fresh server process on every code change and
# hands it its options by import string. That process reads the settings once
# (``dev_settings``), and builds its app, its protocols and its TLS context from them; Uvicorn
# terminates TLS itself there, with the context ``gateway serve`` builds.


@cache
def dev_settings() -> Settings:
    return load_group_settings()


@cache
def _dev_protocols() -> ServingProtocols:
    settings = dev_settings()
    return serving_protocols(settings, load_served_tls(settings))


def create_dev_app() -> Starlette:
    """For ``gateway dev``: Uvicorn's app factory, over the server process's one read."""
    from gateway.app import create_app

    return create_app(dev_settings())


def dev_ssl_context(config: Config, default_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """For ``gateway dev``: Uvicorn's ``ssl_context_factory``, the context of ``gateway serve``
    (minimum version, ciphers, client certificates, CRL)."""
    context = _dev_protocols().ssl_context
    if context is None:
        raise RuntimeError("gateway dev asked for a TLS context while GATEWAY_TLS_MODE is off")
    return context


def http_protocol(**kwargs: Any) -> asyncio.Protocol:
    """For ``gateway dev``: Uvicorn's ``http`` option, by import string."""
    return _dev_protocols().http(**kwargs)


def websocket_protocol(**kwargs: Any) -> asyncio.Protocol:
    """For ``gateway dev``: Uvicorn's ``ws`` option, by import string."""
    protocol_class = _dev_protocols().websocket
    if protocol_class is None:
        raise RuntimeError("no WebSocket library: install websockets or wsproto")
    return protocol_class(**kwargs)
