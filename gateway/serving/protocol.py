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

It also puts the ASGI TLS extension in every request's scope. ``h11_protocol`` is the
same for Uvicorn's h11 implementation.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.serving.connection_guard import GuardedConnection
from gateway.serving.limits import RefusedError, is_health_probe, overloaded

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger("gateway.http")


class GatewayHttpProtocol(GuardedConnection, HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard()
        self._header_count = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard_connection(transport)

    # Parsing, with limits

    def data_received(self, data: bytes) -> None:
        if self._reading_head and (refusal := self._head.measure(data)) is not None:
            self._refuse(refusal)
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, RefusedError):
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
            self._start_header_timer()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next head is measured from its first byte; its timer starts in on_message_begin.
        self._expect_head()

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.limits.max_request_line:
            raise RefusedError.target_too_long(self.limits)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            raise RefusedError.too_many_headers(self.limits)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._cancel_header_timer()
        overloaded_now = len(self.connections) > self.limits.max_connections and not self._is_health_probe()
        if overloaded_now:
            logger.warning("connection limit of %d reached: answering 503", self.limits.max_connections)
            serving_app, self.app = self.app, overloaded
        try:
            super().on_headers_complete()
        finally:
            if overloaded_now:
                self.app = serving_app
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

    # Helpers

    def _is_health_probe(self) -> bool:
        return is_health_probe(httptools.parse_url(self.url).path.decode("latin-1"))

    def _reject_malformed(self) -> None:
        # As Uvicorn does: a 400 and the connection closed.
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)
