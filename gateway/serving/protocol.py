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
from typing import TYPE_CHECKING, Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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

logger = logging.getLogger("gateway.http")


class GatewayHttpProtocol(HttpToolsProtocol):
    # Set by ``configured`` on a subclass: Uvicorn builds protocols from a class alone.
    limits: ClassVar[HttpLimits]
    tls: ClassVar[ServerTLS | None] = None
    # Set on the configured class when the server starts shutting down: a connection that
    # completes its TLS handshake after that drains like the others.
    server_draining: ClassVar[bool] = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._reading_headers = False
        self._head = RequestHeadMeter(self.limits)
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
        if self._reading_headers and (refusal := self._head.measure(data)) is not None:
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
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout, self._header_timeout_expired
            )

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reset_request_head()

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
        self._reading_headers = False
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

    def _reset_request_head(self) -> None:
        """Count the next request's head from its first byte on."""
        self._reading_headers = True
        self._head.reset()

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
            logger.info(
                "closing %s: no complete request headers within %gs",
                describe_client(self.client),
                self.limits.header_timeout,
            )
            self.transport.close()

    def _refuse(self, refusal: RefusedError) -> None:
        self._reading_headers = False
        self._cancel_header_timer()
        logger.warning(
            "refused a request from %s with %d: %s",
            describe_client(self.client),
            refusal.status,
            refusal.detail,
        )
        self.transport.write(refusal.response_bytes())
        self.transport.close()

    def _reject_malformed(self) -> None:
        # As Uvicorn does: a 400 and the connection closed.
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)
