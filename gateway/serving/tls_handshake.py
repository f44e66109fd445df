"""TLS handshakes done by the gateway, so that a refused one is logged with its reason.

With ``create_server(ssl=...)`` asyncio and uvloop run the handshake below the protocol
and report a failure only in debug mode (their SSL protocols log an ``OSError`` at debug
level): the client sees a dropped connection and the server logs nothing. Here each
accepted socket (``tls_listener``) is handed to ``loop.connect_accepted_socket`` with the
server's context, which returns once the handshake is done or raises its failure, and
that failure is logged with the peer's address. The connection is the loop's own TLS
transport from its first byte (uvloop's is compiled); the HTTP protocol is connected
only once the handshake has succeeded, as with ``create_server``.

Not ``loop.start_tls`` on a plain connection, as before: uvloop 0.23 ignores a
``pause_reading()`` made in ``connection_made`` (observed here; asyncio had the same bug,
https://github.com/python/cpython/issues/76002), so the ClientHello can reach the plain
protocol first, and ``start_tls``, which cannot be given bytes already read (the
limitation of https://github.com/MagicStack/uvloop/issues/707), waits for them until the
handshake timeout.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

logger = logging.getLogger("gateway.tls")


def describe_refusal(error: BaseException) -> str:
    """Why a handshake failed, in words an operator can act on."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"client certificate refused: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return str(error.reason or error).replace("_", " ").lower()
    if isinstance(error, TimeoutError) or "taking longer" in str(error):
        # uvloop and asyncio report the timeout as ConnectionAbortedError("... taking longer ...").
        return "no TLS handshake within the header timeout (a plain HTTP client?)"
    if isinstance(error, ConnectionResetError):
        return "the peer closed the connection during the handshake"
    return f"{type(error).__name__}: {error}"


def describe_peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return "unknown peer"


async def serve_tls_connection(
    connection: socket.socket,
    peer: Any,
    make_protocol: Callable[[], asyncio.Protocol],
    context: ssl.SSLContext,
    handshake_timeout: float,
) -> None:
    """Run the handshake on an accepted socket; on success the protocol serves the connection."""
    loop = asyncio.get_running_loop()
    try:
        # The loop owns the socket from here: it closes it when the handshake fails.
        await loop.connect_accepted_socket(
            make_protocol, connection, ssl=context, ssl_handshake_timeout=handshake_timeout
        )
    except (OSError, EOFError) as error:  # ssl.SSLError and TimeoutError are OSErrors.
        logger.warning("TLS handshake with %s refused: %s", describe_peer(peer), describe_refusal(error))
