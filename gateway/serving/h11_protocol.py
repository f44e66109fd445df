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
- h11 reads a request with both Content-Length and Transfer-Encoding as chunked and keeps
  the connection, so bytes after the chunked end ran as a second request (smuggling past a
  proxy that framed by Content-Length); such a request is refused 400 and the connection
  closed (RFC 9112, section 6.3). h11 pauses at a pipelined request by itself; while it
  holds such bytes, reading stays paused until the app has answered (Uvicorn resumed it
  on every ``receive()``, so a streamed answer listening for a disconnect let a read in each);
- Uvicorn's h11 cycle does not write ``Connection: close`` when it is not keeping a
  connection alive, so the protocol adds it to the responses of a draining connection:
  without it a pooling client may send its next request into the closing connection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from gateway.serving.connection_guard import GuardedConnection, log_refusal
from gateway.serving.limits import RefusedError, is_health_probe, overloaded

if TYPE_CHECKING:
    import asyncio

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("gateway.http")

_CONNECTION_CLOSE = (b"connection", b"close")
# The states in which h11 has no request of the client's still arriving: the next bytes
# begin a new request head (IDLE), or a pipelined one (DONE).
_BETWEEN_REQUESTS = (h11.IDLE, h11.DONE)
# The states in which the client's request has fully arrived.
_REQUEST_RECEIVED = (h11.DONE, h11.MUST_CLOSE)
# The states in which the server's response is not yet complete.
_RESPONDING = (h11.SEND_RESPONSE, h11.SEND_BODY)
_FRAMING_HEADERS = (b"content-length", b"transfer-encoding")


class GatewayH11Protocol(GuardedConnection, H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard()
        # Uvicorn's ``h11_max_incomplete_event_size`` option sets this too, but from the Config,
        # which each way of serving (worker, `gateway dev`) builds; here the bound follows the
        # limits this class enforces, however it is configured.
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_head_bytes)
        # Every request goes through ``_admit``, the one place h11 lets the protocol see a
        # parsed head before the app runs.
        self._serving_app: ASGIApp = self.app
        self.app = self._admit
        # The cycle current when this head began; h11 builds a new one once it is parsed.
        self._cycle_before_head: RequestResponseCycle | None = None

    # Connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard_connection(transport)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The WebSocket protocol takes the transport over; this one gets no connection_lost.
        self._cancel_header_timer()
        self._cancel_body_timer()
        super().handle_websocket_upgrade(event)

    # Parsing, with limits

    def data_received(self, data: bytes) -> None:
        if not self._reading_head and self.conn.their_state in _BETWEEN_REQUESTS:
            self._begin_head()
        if self._reading_head and (refusal := self._head.measure(data)) is not None:
            self._refuse(refusal)
            return
        self._note_received(len(data))
        super().data_received(data)
        self._notice_parsed_head()
        self._watch_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined request h11 held back may have been parsed just now.
        self._notice_parsed_head()

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._check_parsed_head(scope)
        if refusal is not None:
            log_refusal(self.client, refusal)
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
        # h11 has already merged equal Content-Lengths and refused conflicting ones, and
        # any Transfer-Encoding but one "chunked": two framing headers left means both kinds.
        if sum(name in _FRAMING_HEADERS for name, _ in scope["headers"]) > 1:
            return RefusedError.ambiguous_framing()
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
        self._cycle_before_head = self.cycle
        super()._begin_head()

    def _notice_parsed_head(self) -> None:
        if self._reading_head and self.cycle is not self._cycle_before_head:
            self._reading_head = False
            self._cancel_header_timer()
            self._body_head_parsed()

    def _body_arriving(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY

    def holds_reading(self) -> bool:
        # The request is in, its answer is not out, and h11 holds bytes of the next request
        # (it pauses there): reading on would only add to them. Without such bytes reading
        # resumes, so that a client closing the connection is still noticed.
        return (
            self.conn.their_state in _REQUEST_RECEIVED
            and self.conn.our_state in _RESPONDING
            and bool(self.conn.trailing_data[0])
        )
