"""What both of the gateway's HTTP protocols add to a Uvicorn connection, whatever parses it.

``GuardedConnection`` is mixed in before Uvicorn's protocol class (httptools in
``protocol.py``, h11 in ``h11_protocol.py``): the TLS extension computed once per connection,
the header-read timeout, refusals with the gateway's problem body, and the drain that lets an
idle keep-alive connection bring one more request instead of cutting it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.serving.limits import (
    DRAIN_IDLE_GRACE_SECONDS,
    HttpLimits,
    RefusedError,
    RequestHeadMeter,
    describe_client,
)
from gateway.tls.scope import ServerTLS, connection_tls_extension

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger("gateway.http")


class GuardedConnection:
    # Set by ``configured`` on a subclass: Uvicorn builds protocols from a class alone.
    limits: ClassVar[HttpLimits]
    tls: ClassVar[ServerTLS | None] = None
    # Set on the configured class when the server starts shutting down: a connection that
    # completes its TLS handshake after that drains like the others.
    server_draining: ClassVar[bool] = False

    if TYPE_CHECKING:
        # Uvicorn's protocol classes, which come after this one, define these.
        transport: asyncio.Transport
        loop: asyncio.AbstractEventLoop
        client: tuple[str, int] | None
        cycle: Any
        timeout_keep_alive: int
        timeout_keep_alive_task: asyncio.TimerHandle | None

        def timeout_keep_alive_handler(self) -> None: ...
        def _unset_keepalive_if_required(self) -> None: ...

    def _init_guard(self) -> None:
        """Called by the protocol's ``__init__``, after Uvicorn's."""
        self._head = RequestHeadMeter(self.limits)
        self._reading_head = False
        self._header_timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._tls_extension: dict[str, Any] | None = None

    # Connection life

    def _guard_connection(self, transport: asyncio.Transport) -> None:
        """Called by ``connection_made``, after Uvicorn's."""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and self.tls is not None:
            # Once per connection: every request on it has the same peer and cipher.
            self._tls_extension = connection_tls_extension(ssl_object, self.tls)
        self._begin_head()
        if self.server_draining:
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]  # Uvicorn's protocol, later in the MRO

    def shutdown(self) -> None:
        self._draining = True
        if self.cycle is None or self.cycle.response_complete:
            # Idle: a short grace instead of an immediate close (see DRAIN_IDLE_GRACE_SECONDS).
            if not self.transport.is_closing():
                self._unset_keepalive_if_required()
                self.timeout_keep_alive_task = self.loop.call_later(
                    min(self.timeout_keep_alive, DRAIN_IDLE_GRACE_SECONDS), self.timeout_keep_alive_handler
                )
        else:
            self.cycle.keep_alive = False

    # The request head: measured and timed from its first byte on

    def _begin_head(self) -> None:
        """The next bytes begin a request head: measure it, and time it from now."""
        self._expect_head()
        self._start_header_timer()

    def _expect_head(self) -> None:
        """The next bytes begin a request head: measure it (its timer starts later)."""
        self._reading_head = True
        self._head.reset()

    def _start_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self._reading_head and not self.transport.is_closing():
            logger.info(
                "closing %s: no complete request headers within %gs",
                describe_client(self.client),
                self.limits.header_timeout,
            )
            self.transport.close()

    def _refuse(self, refusal: RefusedError) -> None:
        """Answer a refused head and close: the rest of it is never read."""
        self._reading_head = False
        self._cancel_header_timer()
        log_refusal(self.client, refusal)
        self.transport.write(refusal.response_bytes())
        self.transport.close()


def log_refusal(client: tuple[str, int] | None, refusal: RefusedError) -> None:
    logger.warning(
        "refused a request from %s with %d: %s", describe_client(client), refusal.status, refusal.detail
    )
