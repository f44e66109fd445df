"""The gateway's HTTP protocol: Uvicorn's httptools protocol with the limits Uvicorn lacks.

Measured here, under the Uvicorn worker Gunicorn's ``limit_request_*`` settings do
nothing (Uvicorn parses HTTP itself: a 1 MiB header and 10,000 headers both got 200),
Uvicorn has no header-read timeout (slow-header connections are held forever), and its
``limit_concurrency`` answers health probes 503 too. This protocol enforces:

- 414 for a request line over the limit, 431 for too many or too large headers, decided
  while the headers arrive, before anything is buffered past the limit;
- a connection closed when its request headers take longer than the header timeout, and
  408 when a request body stalls or crawls (``body_pace``);
- pipelined requests queued up to a bound: past it the rest of the read waits unparsed
  and reading pauses until the app has answered most of them (Uvicorn parses every
  request of every read and resumes reading after each answer, so one connection writing
  requests without reading the answers grew a worker without bound);
- malformed requests answered 400 with the gateway's problem body;
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
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.serving.connection_guard import GuardedConnection
from gateway.serving.limits import (
    PIPELINE_HIGH_WATER,
    PIPELINE_LOW_WATER,
    RefusedError,
    is_health_probe,
    overloaded,
)

if TYPE_CHECKING:
    import asyncio

logger = logging.getLogger("gateway.http")

# A read is parsed this much at a time, so that parsing stops soon after the pipeline is
# full: a slice this size holds a bounded number of requests, a read (uvloop: 256 KiB) thousands.
PARSE_SLICE_BYTES = 4096


class GatewayHttpProtocol(GuardedConnection, HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard()
        self._header_count = 0
        # Bytes of a read left unparsed while the pipeline is full; parsed once it drains.
        self._unparsed = b""
        self._parse_scheduled = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._guard_connection(transport)

    # Parsing, with limits

    def data_received(self, data: bytes) -> None:
        if self._unparsed:
            # Reading is paused; a TLS transport may still hand over what it had decrypted.
            self._unparsed += data
            return
        if self._reading_head and (refusal := self._head.measure(data)) is not None:
            self._refuse(refusal)
            return
        self._unset_keepalive_if_required()
        self._note_received(len(data))
        self._parse(data)

    def _parse(self, data: bytes) -> None:
        try:
            self._feed(data)
        except httptools.HttpParserCallbackError as error:
            if isinstance(error.__context__, RefusedError):
                self._refuse(error.__context__)
            else:
                self.send_400_response("")
        except httptools.HttpParserError:
            self.send_400_response("")
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        else:
            self._watch_body()

    def _feed(self, data: bytes) -> None:
        """Parse ``data`` until the pipeline is full; what is left waits, reading paused."""
        if len(data) <= PARSE_SLICE_BYTES and len(self.pipeline) < PIPELINE_HIGH_WATER:
            self.parser.feed_data(data)  # The usual read: one request, or a few.
            return
        view = memoryview(data)
        for offset in range(0, len(data), PARSE_SLICE_BYTES):
            if len(self.pipeline) >= PIPELINE_HIGH_WATER:
                self._unparsed = bytes(view[offset:])
                self.flow.pause_reading()
                return
            self.parser.feed_data(view[offset : offset + PARSE_SLICE_BYTES])

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if not self._unparsed:
            # Uvicorn resumed before starting the next queued request, when the gate may
            # still have held; the pipeline is one shorter now.
            self.flow.resume_reading()
        elif len(self.pipeline) <= PIPELINE_LOW_WATER and not self._parse_scheduled:
            # Parsed from the loop, not from inside the app's send().
            self._parse_scheduled = True
            self.loop.call_soon(self._parse_unparsed)

    def _parse_unparsed(self) -> None:
        self._parse_scheduled = False
        if self.transport.is_closing():
            return
        data, self._unparsed = self._unparsed, b""
        self._parse(data)
        if not self._unparsed and not self.transport.is_closing():
            self.flow.resume_reading()

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
        self._body_head_parsed()
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

    def _body_arriving(self) -> bool:
        # Between a head's end and its message's end; a request without a body ends at once.
        return not self._reading_head and self.cycle is not None

    def holds_reading(self) -> bool:
        return bool(self._unparsed) or len(self.pipeline) > PIPELINE_LOW_WATER or self._queued_body_full()

    def _queued_body_full(self) -> bool:
        # The body of a request still queued is read no further than Uvicorn's own buffer bound.
        return bool(self.pipeline) and len(self.cycle.body) > HIGH_WATER_LIMIT

    def _can_answer(self) -> bool:
        # With requests queued, the one whose body arrives is not the one answering now.
        return not self.pipeline and super()._can_answer()
