"""TLS handshakes done by the gateway, so that a refused one is logged with its reason.

With ``create_server(ssl=...)`` asyncio (and uvloop) run the handshake below the
protocol and report a failure only in debug mode: the client sees a dropped connection
and the server logs nothing. Here the server listens on plain TCP and each connection
is upgraded with ``loop.start_tls``, whose failure comes back to us with the peer's
address; on success the HTTP protocol gets the TLS transport as if nothing happened.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger("gateway.tls")


def _describe(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"client certificate refused: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error).replace("_", " ").lower()
    if isinstance(error, TimeoutError) or "taking longer" in str(error):
        # uvloop reports a timeout as ConnectionAbortedError; a plain-HTTP client ends up here too.
        return "no TLS handshake within the header timeout (a plain HTTP client?)"
    return f"{type(error).__name__}: {error}"


class TLSHandshake(asyncio.Protocol):
    """Accepts a TCP connection, performs the TLS handshake, then hands over to HTTP.

    It is the TLS transport's first protocol too: request bytes that arrive with the end
    of the handshake are kept and replayed to the HTTP protocol once it is connected.
    """

    def __init__(
        self,
        make_http_protocol: Callable[[], asyncio.Protocol],
        context: ssl.SSLContext,
        handshake_timeout: float,
    ) -> None:
        self._make_http_protocol = make_http_protocol
        self._context = context
        self._handshake_timeout = handshake_timeout
        self._task: asyncio.Task[None] | None = None
        self._early_data: list[bytes] = []
        self._peer_left = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        tcp = cast("asyncio.Transport", transport)
        # Not a byte may reach this protocol before start_tls takes the transport over: the
        # ClientHello would be swallowed and the handshake would wait for it forever.
        tcp.pause_reading()
        self._task = asyncio.get_running_loop().create_task(self._upgrade(tcp))

    def data_received(self, data: bytes) -> None:
        self._early_data.append(data)

    def eof_received(self) -> bool | None:
        self._peer_left = True
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        # start_tls itself fails when the connection dies mid-handshake, with the reason.
        self._peer_left = True

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        peer = transport.get_extra_info("peername")
        address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "unknown peer"
        try:
            tls_transport = await asyncio.get_running_loop().start_tls(
                transport,
                self,
                self._context,
                server_side=True,
                ssl_handshake_timeout=self._handshake_timeout,
            )
        except (OSError, TimeoutError, EOFError) as error:
            logger.warning("TLS handshake with %s refused: %s", address, _describe(error))
            transport.abort()
            return
        if tls_transport is None or self._peer_left:
            return
        http = self._make_http_protocol()
        tls_transport.set_protocol(http)
        http.connection_made(tls_transport)
        if self._early_data:
            http.data_received(b"".join(self._early_data))
            self._early_data.clear()


def tls_protocol_factory(
    http_protocol_class: Callable[..., asyncio.Protocol], context: ssl.SSLContext, handshake_timeout: float
) -> Callable[..., asyncio.Protocol]:
    """A drop-in for Uvicorn's ``http`` protocol class that adds the handshake in front."""

    def build(**kwargs: Any) -> asyncio.Protocol:
        return TLSHandshake(lambda: http_protocol_class(**kwargs), context, handshake_timeout)

    return build
