"""The gateway's HTTP protocol: Uvicorn's httptools protocol with the limits Uvicorn lacks.

Measured here, under the Uvicorn worker Gunicorn's ``limit_request_*`` settings do
nothing (Uvicorn parses HTTP itself: a 1 MiB header and 10,000 headers both got 200),
Uvicorn has no header-read timeout (slow-header connections are held forever), and its
``limit_concurrency`` answers health probes 503 too. This protocol enforces:

- 414 for a request line over the limit, 431 for too many or too large headers, decided
  while the headers arrive, before anything is buffered past the limit;
- a connection closed when its request headers take longer than the header timeout;
- 503 for new requests past the connection cap, except health probes;
- on shutdown, idle keep-alive connections are not cut: closing one races a request the
  client may be sending at that moment, which is what fails requests during a Gunicorn
  HUP. They get ``Connection: close`` on their next response, or close when idle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import PROBLEM_CONTENT_TYPE, problem_body
from gateway.tls.scope import ServerTLS, connection_tls_extension

if TYPE_CHECKING:
    import asyncio

    from starlette.types import Receive, Scope, Send

logger = logging.getLogger("gateway.http")

HEALTH_PATH_PREFIX = b"/health/"
# While draining, an idle keep-alive connection gets this long to bring one more request
# (answered with Connection: close) before it is closed. A client in steady traffic sends
# within milliseconds; closing at once would reset a request already on its way.
DRAIN_IDLE_GRACE_SECONDS = 1.0
# The request line is "METHOD SP target SP HTTP/1.1"; the method and version are short.
_REQUEST_LINE_OVERHEAD = 32


@dataclass(frozen=True)
class HttpLimits:
    max_request_line: int
    max_header_count: int
    max_header_bytes: int
    header_timeout: float
    max_connections: int


class _RefusedError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _refusal_bytes(status: int, detail: str, reason: str) -> bytes:
    body = json.dumps(problem_body(status, detail), separators=(",", ":")).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"content-type: {PROBLEM_CONTENT_TYPE}\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


_REASONS = {414: "URI Too Long", 431: "Request Header Fields Too Large"}


async def _overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps(
        problem_body(503, "The worker has reached its connection limit; retry shortly."),
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", b"1"),
        # Shed the connection too, or a pooling client keeps it, and the cap never bites.
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GatewayHttpProtocol(HttpToolsProtocol):
    # Set by ``protocol_class`` on a subclass: Uvicorn builds protocols from a class alone.
    limits: ClassVar[HttpLimits]
    tls: ClassVar[ServerTLS | None] = None
    # Set on the configured class when the server starts shutting down: a connection that
    # completes its TLS handshake after that drains like the others.
    server_draining: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._header_bytes_seen = 0
        self._header_tail = b""
        self._request_line_ended = False
        self._header_count = 0
        self._draining = False
        self._tls_extension: dict[str, Any] | None = None

    # Connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and self.tls is not None:
            # Once per connection: every request on it has the same peer and cipher.
            self._tls_extension = connection_tls_extension(ssl_object, self.tls)
        self._start_reading_headers()
        if self.server_draining:
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

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
        if self._reading_headers and (refusal := self._check_request_head(data)) is not None:
            self._refuse(refusal)
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, _RefusedError):
                self._refuse(error.__context__)
            else:
                self._reject_malformed()
        except httptools.HttpParserError:
            self._reject_malformed()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls_extension is not None:
            # Shared by the connection's requests; the ASGI spec makes it read-only.
            self.scope["extensions"] = {"tls": self._tls_extension}  # type: ignore[dict-item]  # Uvicorn types these values dict[object, object]
        self._header_count = 0
        # The header timeout runs from a request's first byte; the byte counters were reset
        # when the previous message completed, so nothing of this one is missed.
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout, self._header_timeout_expired
            )

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reset_request_head()

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.limits.max_request_line:
            raise _RefusedError(
                414, f"The request target is longer than {self.limits.max_request_line} bytes."
            )
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            raise _RefusedError(431, f"The request has more than {self.limits.max_header_count} headers.")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._cancel_header_timer()
        overloaded = len(self.connections) > self.limits.max_connections and not self._is_health_probe()
        if overloaded:
            logger.warning("connection limit of %d reached: answering 503", self.limits.max_connections)
            serving_app, self.app = self.app, _overloaded
        try:
            super().on_headers_complete()
        finally:
            if overloaded:
                self.app = serving_app
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

    # Helpers

    def _check_request_head(self, data: bytes) -> _RefusedError | None:
        """Count the bytes up to the blank line that ends the headers, before the parser
        sees them: httptools buffers a request line or header value of any size before
        calling back, so its callbacks alone would not bound memory."""
        line_limit = self.limits.max_request_line + _REQUEST_LINE_OVERHEAD
        if not self._request_line_ended:
            line_end = data.find(b"\n")
            self._request_line_ended = line_end != -1
            line_length = self._header_bytes_seen + (len(data) if line_end == -1 else line_end)
            if line_length > line_limit:
                return _RefusedError(
                    414, f"The request target is longer than {self.limits.max_request_line} bytes."
                )
        window = self._header_tail + data
        end = window.find(b"\r\n\r\n")
        self._header_bytes_seen += len(data) if end == -1 else max(0, end + 4 - len(self._header_tail))
        self._header_tail = window[-3:]
        if self._header_bytes_seen > self.limits.max_header_bytes + line_limit:
            return _RefusedError(
                431, f"The request headers are larger than {self.limits.max_header_bytes} bytes."
            )
        return None

    def _is_health_probe(self) -> bool:
        return bool(httptools.parse_url(self.url).path.startswith(HEALTH_PATH_PREFIX))

    def _reset_request_head(self) -> None:
        """Count the next request's head from its first byte on."""
        self._reading_headers = True
        self._header_bytes_seen = 0
        self._header_tail = b""
        self._request_line_ended = False

    def _start_reading_headers(self) -> None:
        self._reset_request_head()
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timeout_expired)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self._reading_headers and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
            logger.info(
                "closing %s: no complete request headers within %gs", client, self.limits.header_timeout
            )
            self.transport.close()

    def _refuse(self, refusal: _RefusedError) -> None:
        self._reading_headers = False
        self._cancel_header_timer()
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "unknown client"
        logger.warning("refused a request from %s with %d: %s", client, refusal.status, refusal.detail)
        self.transport.write(_refusal_bytes(refusal.status, refusal.detail, _REASONS[refusal.status]))
        self.transport.close()

    def _reject_malformed(self) -> None:
        # As Uvicorn does: a 400 and the connection closed.
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)


def protocol_class(limits: HttpLimits, tls: ServerTLS | None = None) -> type[GatewayHttpProtocol]:
    """A protocol class carrying ``limits`` and the server's TLS facts; Uvicorn
    instantiates protocols from a class alone."""
    return type("ConfiguredGatewayHttpProtocol", (GatewayHttpProtocol,), {"limits": limits, "tls": tls})
