"""The gateway's HTTP protocol on Uvicorn's h11 implementation (``GATEWAY_HTTP=h11``).

The same limits, drain and TLS extension as the httptools protocol (``protocol.py``),
for deployments that want the pure-Python parser. h11 offers fewer hooks, so:

- the request head is measured before h11 sees it (414, 431 while it arrives, as with
  httptools), and h11's own buffer bound is raised to the same size: its 16 KiB default
  would answer a 20 KB cookie with 400 (a pipelined head that came in the same read as
  the request before it is bounded by that alone, and refused with 400);
- the header count and the exact target length are known only once h11 has parsed the
  head, so those two refusals come from the request's ASGI call instead of the parser
  (the same 414 or 431 problem, the connection closed);
- Uvicorn's h11 cycle does not write ``Connection: close`` when it is not keeping a
  connection alive, so the protocol adds it to the responses of a draining connection:
  without it a pooling client may send its next request into the closing connection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from gateway.serving.limits import (
    DRAIN_IDLE_GRACE_SECONDS,
    HttpLimits,
    RefusedError,
    RequestHeadMeter,
    describe_client,
    is_health_probe,
    overloaded,
)
from gateway.tls.scope import ServerTLS, connection_tls_extension

if TYPE_CHECKING:
    import asyncio

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("gateway.http")

_CONNECTION_CLOSE = (b"connection", b"close")
# The states in which h11 has no request of the client's still arriving: the next bytes
# begin a new request head (IDLE), or a pipelined one (DONE).
_BETWEEN_REQUESTS = (h11.IDLE, h11.DONE)


class GatewayH11Protocol(H11Protocol):
    # Set by ``configured`` on a subclass: Uvicorn builds protocols from a class alone.
    limits: ClassVar[HttpLimits]
    tls: ClassVar[ServerTLS | None] = None
    server_draining: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head_bytes)
        # Every request goes through ``_admit``, the one place h11 lets the protocol see a
        # parsed head before the app runs.
        self._serving_app: ASGIApp = self.app
        self.app = self._admit
        self._head = RequestHeadMeter(self.limits)
        self._reading_head = False
        # The cycle current when this head began; h11 builds a new one once it is parsed.
        self._cycle_before_head: RequestResponseCycle | None = None
        self._header_timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._tls_extension: dict[str, Any] | None = None

    # Connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and self.tls is not None:
            self._tls_extension = connection_tls_extension(ssl_object, self.tls)
        self._begin_head()
        if self.server_draining:
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The WebSocket protocol takes the transport over; this one gets no connection_lost.
        self._cancel_header_timer()
        super().handle_websocket_upgrade(event)

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

    # Parsing, with limits

    def data_received(self, data: bytes) -> None:
        if not self._reading_head and self.conn.their_state in _BETWEEN_REQUESTS:
            self._begin_head()
        if self._reading_head and (refusal := self._head.measure(data)) is not None:
            self._refuse(refusal)
            return
        super().data_received(data)
        self._notice_parsed_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request h11 held back may have been parsed just now.
        self._notice_parsed_head()

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._check_parsed_head(scope)
        if refusal is not None:
            logger.warning(
                "refused a request from %s with %d: %s",
                describe_client(self.client),
                refusal.status,
                refusal.detail,
            )
            await refusal.respond(scope, receive, send)
            return
        if len(self.connections) > self.limits.max_connections and not is_health_probe(
            scope["path"][len(scope["root_path"]) :]
        ):
            logger.warning("connection limit of %d reached: answering 503", self.limits.max_connections)
            await overloaded(scope, receive, send)
            return
        if self._tls_extension is not None:
            # Shared by the connection's requests; the ASGI spec makes it read-only.
            scope["extensions"] = {"tls": self._tls_extension}
        await self._serving_app(scope, receive, self._closing_when_draining(send))

    # Helpers

    def _check_parsed_head(self, scope: Scope) -> RefusedError | None:
        target_length = len(scope["raw_path"]) - len(scope["root_path"].encode())
        if scope["query_string"]:
            target_length += 1 + len(scope["query_string"])
        if target_length > self.limits.max_request_line:
            return RefusedError.target_too_long(self.limits)
        if len(scope["headers"]) > self.limits.max_header_count:
            return RefusedError.too_many_headers(self.limits)
        return None

    def _closing_when_draining(self, send: Send) -> Send:
        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and self._draining:
                headers = list(message.get("headers", []))
                if _CONNECTION_CLOSE not in headers:
                    message = {**message, "headers": [*headers, _CONNECTION_CLOSE]}
            await send(message)

        return send_closing

    def _begin_head(self) -> None:
        """Measure the next request's head, and time it, from its first byte on."""
        self._reading_head = True
        self._cycle_before_head = self.cycle
        self._head.reset()
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout_expired)

    def _notice_parsed_head(self) -> None:
        if self._reading_head and self.cycle is not self._cycle_before_head:
            self._reading_head = False
            self._cancel_header_timer()

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
        self._reading_head = False
        self._cancel_header_timer()
        logger.warning(
            "refused a request from %s with %d: %s",
            describe_client(self.client),
            refusal.status,
            refusal.detail,
        )
        self.transport.write(refusal.response_bytes())
        self.transport.close()
