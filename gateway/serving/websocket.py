"""The ASGI TLS extension on WebSocket connections.

Uvicorn hands an upgraded connection to a WebSocket protocol class of its own
(websockets-sansio by default, legacy websockets or wsproto), which builds the
``websocket`` scope itself and calls ``self.app`` with it. All three keep the app in
``self.app``, so one mixin covers them: it wraps that app, per connection, in a call that
adds the extension computed from the connection's SSL object.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

from gateway.tls.scope import ServerTLS, connection_tls_extension

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send


def with_tls_extension(app: ASGIApp, extension: dict[str, Any]) -> ASGIApp:
    async def call(scope: Scope, receive: Receive, send: Send) -> None:
        # A copy, as the ASGI spec asks of anything between the server and the app.
        await app({**scope, "extensions": {**scope.get("extensions", {}), "tls": extension}}, receive, send)

    return call


class TLSExtensionMixin(asyncio.Protocol):
    """Put first in the bases of one of Uvicorn's WebSocket protocol classes."""

    tls: ClassVar[ServerTLS]
    app: ASGIApp

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.app = with_tls_extension(self.app, connection_tls_extension(ssl_object, self.tls))
        super().connection_made(transport)


def websocket_protocol_class(
    tls: ServerTLS | None, base: type[asyncio.Protocol] | None = None
) -> type[asyncio.Protocol] | None:
    """``base`` (by default Uvicorn's own choice: websockets-sansio, else wsproto, else
    none) with the TLS extension when the server has TLS."""
    if base is None:
        base = AutoWebSocketsProtocol if isinstance(AutoWebSocketsProtocol, type) else None
    if tls is None or base is None:
        return base
    return type(f"TLS{base.__name__}", (TLSExtensionMixin, base), {"tls": tls})
