"""What both of the gateway's HTTP protocols add to a Uvicorn connection, whatever parses it.

``GuardedConnection`` is mixed in before Uvicorn's protocol class (httptools in
``protocol.py``, h11 in ``h11_protocol.py``): the TLS extension computed once per connection,
the header-read timeout, the request body's pace (408 when it stalls or crawls, see
``body_pace``), reading held while the client is ahead of the app (pipelining), refusals
with the gateway's problem body, and the drain that lets an idle keep-alive connection
bring one more request instead of cutting it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from uvicorn.protocols.http.flow_control import FlowControl

from gateway.serving.body_pace import BodyPace
from gateway.serving.limits import (
    DRAIN_IDLE_GRACE_SECONDS,
    HttpLimits,
    RefusedError,
    RequestHeadMeter,
    describe_client,
    incoming_request_id,
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
        flow: FlowControl
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
        self._body_pace = BodyPace(self.limits)
        # One timer per connection, armed only while a body is still arriving after a read.
        self._body_timer: asyncio.TimerHandle | None = None

    # What each parser answers

    def _body_arriving(self) -> bool:
        """Whether the parser is inside a request body that has not fully arrived."""
        raise NotImplementedError

    def holds_reading(self) -> bool:
        """Whether reading must stay paused: the client is ahead of the app."""
        raise NotImplementedError

    def _can_answer(self) -> bool:
        """Whether a refusal may be written now: no response of this connection is under way."""
        return self.cycle is not None and not self.cycle.response_started

    # Connection life

    def _guard_connection(self, transport: asyncio.Transport) -> None:
        """Called by ``connection_made``, after Uvicorn's."""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and self.tls is not None:
            # Once per connection: every request on it has the same peer and cipher.
            self._tls_extension = connection_tls_extension(ssl_object, self.tls)
        # Uvicorn's cycles pause and resume reading through ``flow``; this one asks first.
        self.flow = GatedFlowControl(transport, self)
        self._begin_head()
        if self.server_draining:
            self.shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()
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

    # The request body: it must keep moving

    def _note_received(self, byte_count: int) -> None:
        """Called for every read, before parsing: counts the bytes of a body being timed."""
        if self._body_timer is not None:
            self._body_pace.received(byte_count, self.loop.time())

    def _watch_body(self) -> None:
        """Called after parsing a read: time the body that is still arriving, if any."""
        if self._body_timer is None and self._body_arriving() and not self.transport.is_closing():
            now = self.loop.time()
            self._restart_body_pace(now)
            self._body_timer = self.loop.call_later(self._body_pace.next_check(now), self._judge_body)

    def _body_head_parsed(self) -> None:
        """A new request head was parsed: a body already timed was the previous request's."""
        if self._body_timer is not None:
            self._restart_body_pace(self.loop.time())

    def _restart_body_pace(self, now: float) -> None:
        self._body_pace.begin(now)
        if self.flow.read_paused:
            self._body_pace.pause(now)

    def _judge_body(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not self._body_arriving():
            return
        now = self.loop.time()
        if self.cycle is not None and self.cycle.waiting_for_100_continue:
            # The client waits for the app's 100 Continue: the body's clock starts once it is sent.
            self._restart_body_pace(now)
        reason = self._body_pace.verdict(now)
        if reason is None:
            self._body_timer = self.loop.call_later(self._body_pace.next_check(now), self._judge_body)
        else:
            self._cut_slow_body(RefusedError.body_too_slow(reason))

    def _cut_slow_body(self, refusal: RefusedError) -> None:
        """408 with a problem body when no response has begun, else just the connection closed."""
        cycle = self.cycle
        answer = self._can_answer()
        log_refusal(self.client, refusal)
        if cycle is not None:
            # The app's reads see the client gone, and its writes go nowhere, from now on.
            cycle.disconnected = True
            cycle.message_event.set()
        if answer:
            self.transport.write(refusal.response_bytes(incoming_request_id(cycle.scope["headers"])))
        self.transport.close()

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def reading_paused(self) -> None:
        if self._body_timer is not None:
            self._body_pace.pause(self.loop.time())

    def reading_resumed(self) -> None:
        if self._body_timer is not None:
            self._body_pace.resume(self.loop.time())

    # Refusals

    def send_400_response(self, msg: str) -> None:
        """Uvicorn's answer to a request its parser rejects, as the gateway's problem."""
        self._refuse(RefusedError.malformed())

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


class GatedFlowControl(FlowControl):
    """Uvicorn's flow control, which pauses and resumes reading for its cycles, made to keep
    reading paused while the connection holds it (``holds_reading``) and to stop the body's
    clock while reading is paused."""

    def __init__(self, transport: asyncio.Transport, connection: GuardedConnection) -> None:
        super().__init__(transport)
        self._connection = connection

    def pause_reading(self) -> None:
        if not self.read_paused:
            super().pause_reading()
            self._connection.reading_paused()

    def resume_reading(self) -> None:
        if self.read_paused and not self._connection.holds_reading():
            super().resume_reading()
            self._connection.reading_resumed()
