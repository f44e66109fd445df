"""Accepting TLS connections on Gunicorn's listening sockets, for the gateway's handshakes.

Uvicorn serves each socket Gunicorn passes with ``loop.create_server``, whose TLS logs
no refused handshake (see ``tls_handshake``). With TLS the worker serves each socket with
a ``TLSListener`` instead, which accepts connections itself and runs each handshake in a
task. It stands in for the ``asyncio.Server`` that Uvicorn's shutdown closes and waits for:

- it accepts as asyncio's own server does (``BaseSelectorEventLoop._accept_connection``):
  up to ``backlog`` connections per wake-up; an empty queue is no error (Gunicorn's
  workers share the socket, and another one took the connection); when the process is
  out of file descriptors or memory it stops accepting for a second, instead of spinning
  on a socket that stays readable; on a socket that no longer accepts at all (closed,
  not listening) it stops and says so;
- ``close()`` stops accepting and leaves the socket to its owner (Uvicorn closes the
  sockets it was given, Gunicorn its own copy); ``wait_closed()`` waits for the handshakes
  in flight, each bounded by the handshake timeout, and then for the connections open:
  one that completes its handshake during the shutdown drains like the others (the
  protocol class is marked draining first), rather than being cut when the worker exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from typing import TYPE_CHECKING

from gateway.serving.tls_handshake import serve_tls_connection

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

logger = logging.getLogger("gateway.tls")

# asyncio's own pause (``constants.ACCEPT_RETRY_DELAY``) when accept() runs out of resources.
ACCEPT_RETRY_DELAY_SECONDS = 1.0
# Uvicorn polls its connections at this interval while draining; so does wait_closed().
DRAIN_POLL_SECONDS = 0.1
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class TLSListener:
    """Accepts on one listening socket and hands each connection to a TLS handshake."""

    def __init__(
        self,
        listening: socket.socket,
        make_protocol: Callable[[], asyncio.Protocol],
        context: ssl.SSLContext,
        *,
        handshake_timeout: float,
        backlog: int,
        connections_open: Callable[[], bool],
    ) -> None:
        self._listening = listening
        self._make_protocol = make_protocol
        self._context = context
        self._handshake_timeout = handshake_timeout
        self._backlog = backlog
        self._connections_open = connections_open
        self._loop = asyncio.get_running_loop()
        self._descriptor = listening.fileno()
        # The loop keeps only a weak reference to a task: these keep the handshakes alive.
        self._handshakes: set[asyncio.Task[None]] = set()
        self._retry: asyncio.TimerHandle | None = None
        self._accepting = False
        self._closed = False

    def start(self) -> None:
        self._listening.setblocking(False)
        self._resume_accepting()

    def is_serving(self) -> bool:
        return self._accepting

    @property
    def handshakes_in_flight(self) -> int:
        return len(self._handshakes)

    def close(self) -> None:
        """Stop accepting; the handshakes in flight go on (see ``wait_closed``)."""
        self._closed = True
        self._stop_accepting()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    async def wait_closed(self) -> None:
        """After ``close()``: the handshakes in flight end, then the open connections close."""
        if self._handshakes:
            await asyncio.wait(set(self._handshakes))
        # Polled: the connection set is Uvicorn's, which signals no change (Uvicorn polls too).
        while self._connections_open():  # noqa: ASYNC110
            await asyncio.sleep(DRAIN_POLL_SECONDS)

    def _resume_accepting(self) -> None:
        self._retry = None
        if not self._closed and not self._accepting:
            self._loop.add_reader(self._descriptor, self._accept_ready)
            self._accepting = True

    def _stop_accepting(self) -> None:
        if self._accepting:
            self._loop.remove_reader(self._descriptor)
            self._accepting = False

    def _accept_ready(self) -> None:
        for _ in range(self._backlog):
            try:
                connection, peer = self._listening.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # Nothing (more) to accept: another worker may have taken it.
            except OSError as error:
                self._stop_accepting()
                if error.errno in _OUT_OF_RESOURCES:
                    logger.error(
                        "cannot accept connections: %s; accepting again in %gs",
                        error,
                        ACCEPT_RETRY_DELAY_SECONDS,
                    )
                    self._retry = self._loop.call_later(ACCEPT_RETRY_DELAY_SECONDS, self._resume_accepting)
                else:
                    logger.error("stopped accepting connections: the listening socket failed: %s", error)
                return
            self._hand_over(connection, peer)

    def _hand_over(self, connection: socket.socket, peer: object) -> None:
        if connection.family in (socket.AF_INET, socket.AF_INET6):
            # uvloop sets TCP_NODELAY on accepted sockets; asyncio only on sockets created
            # with proto=IPPROTO_TCP, which Gunicorn's are not (observed here). Without it a
            # response's body (Uvicorn writes it after the head) waits on the client's ACK.
            with contextlib.suppress(OSError):  # A peer already gone fails in the handshake.
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        handshake = self._loop.create_task(
            serve_tls_connection(
                connection, peer, self._make_protocol, self._context, self._handshake_timeout
            )
        )
        self._handshakes.add(handshake)
        handshake.add_done_callback(self._handshakes.discard)
