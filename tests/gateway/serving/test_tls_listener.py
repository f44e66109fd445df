"""The gateway's TLS listener on a real socket on 127.0.0.1, under uvloop and asyncio's own
loop: refused handshakes logged with their reason and peer, the loop's TLS transport on
success, accepting paused rather than spinning when the process is out of descriptors,
and a shutdown that waits for a handshake in flight and for the connection it makes."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
import uvloop

from gateway.serving import tls_listener
from gateway.serving.tls_listener import TLSListener
from tests.serving.pki import Pki

pytestmark = pytest.mark.anyio

HANDSHAKE_TIMEOUT = 10.0
WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.01


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param(("asyncio", {"loop_factory": uvloop.new_event_loop}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> object:
    return request.param


@dataclass(frozen=True)
class Contexts:
    server: ssl.SSLContext
    client: ssl.SSLContext
    anonymous: ssl.SSLContext


@pytest.fixture
def contexts(tmp_path: Path) -> Contexts:
    """Mutual TLS: the server requires a client certificate from the same CA."""
    pki = Pki.create(tmp_path / "pki")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.folder / "server.pem", pki.folder / "server-key.pem")
    server.load_verify_locations(pki.folder / "ca.pem")
    server.verify_mode = ssl.CERT_REQUIRED
    return Contexts(server, pki.client("billing"), pki.anonymous())


@dataclass
class Served:
    """What the server side saw: the protocols connected (after a handshake) and still open."""

    open: set[Echo] = field(default_factory=set)
    connected: list[Echo] = field(default_factory=list)


class Echo(asyncio.Protocol):
    def __init__(self, served: Served) -> None:
        self.served = served
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast("asyncio.Transport", transport)
        self.served.open.add(self)
        self.served.connected.append(self)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.served.open.discard(self)


class FailingListeningSocket(socket.socket):
    """A listening socket whose next ``accept()`` calls fail with ``errno_to_raise``."""

    def __init__(self, errno_to_raise: int, failures: int) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_STREAM)
        self.errno_to_raise = errno_to_raise
        self.failures = failures
        self.accept_calls = 0

    def accept(self) -> tuple[socket.socket, object]:
        self.accept_calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise OSError(self.errno_to_raise, os.strerror(self.errno_to_raise))
        return super().accept()


@asynccontextmanager
async def listening(
    contexts: Contexts,
    listening_socket: socket.socket | None = None,
    *,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
) -> AsyncIterator[tuple[TLSListener, int, Served]]:
    listening_socket = listening_socket or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    served = Served()
    with listening_socket:
        listening_socket.bind(("127.0.0.1", 0))
        listening_socket.listen(16)
        listener = TLSListener(
            listening_socket,
            lambda: Echo(served),
            contexts.server,
            handshake_timeout=handshake_timeout,
            backlog=16,
            connections_open=lambda: bool(served.open),
        )
        listener.start()
        try:
            yield listener, listening_socket.getsockname()[1], served
        finally:
            listener.close()


async def eventually(condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` on the running loop, for at most WAIT_SECONDS."""
    for _attempt in range(int(WAIT_SECONDS / _POLL_SECONDS)):
        if condition():
            return True
        await asyncio.sleep(_POLL_SECONDS)
    return condition()


async def echo_over_tls(port: int, context: ssl.SSLContext) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(b"ping")
        await writer.drain()
        return await asyncio.wait_for(reader.read(4), WAIT_SECONDS)
    finally:
        writer.close()


async def test_a_completed_handshake_hands_the_tls_connection_to_the_protocol(contexts: Contexts) -> None:
    async with listening(contexts) as (_listener, port, served):
        assert await echo_over_tls(port, contexts.client) == b"ping"
    (echo,) = served.connected
    assert echo.transport is not None
    assert echo.transport.get_extra_info("ssl_object").getpeercert()["subject"]
    tcp = echo.transport.get_extra_info("socket")
    assert tcp.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_a_refused_handshake_is_logged_with_its_reason_and_the_peer(
    contexts: Contexts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.tls")
    async with listening(contexts) as (_listener, port, served):
        # TLS 1.3: the client's side of the handshake completes; the server's refusal
        # arrives as the connection ends.
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=contexts.anonymous)
        anonymous_port = writer.get_extra_info("sockname")[1]
        try:
            received = await asyncio.wait_for(reader.read(1), WAIT_SECONDS)
        except (ssl.SSLError, ConnectionError):
            received = b""
        assert received == b""
        writer.close()
        plain_reader, plain_writer = await asyncio.open_connection("127.0.0.1", port)
        plain_port = plain_writer.get_extra_info("sockname")[1]
        plain_writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert await asyncio.wait_for(plain_reader.read(), WAIT_SECONDS) == b""
        plain_writer.close()
        assert await eventually(lambda: len(caplog.records) >= 2), caplog.text
    assert served.connected == []
    assert f"TLS handshake with 127.0.0.1:{anonymous_port} refused: peer did not return a certificate" in (
        caplog.text
    )
    assert f"TLS handshake with 127.0.0.1:{plain_port} refused: http request" in caplog.text


async def test_a_client_that_never_starts_the_handshake_is_cut_at_the_timeout(
    contexts: Contexts, caplog: pytest.LogCaptureFixture
) -> None:
    async with listening(contexts, handshake_timeout=0.2) as (_listener, port, _served):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        silent_port = writer.get_extra_info("sockname")[1]
        # Closed by the server, without a byte, once the handshake timeout has passed.
        assert await asyncio.wait_for(reader.read(), WAIT_SECONDS) == b""
        writer.close()
        assert await eventually(lambda: "refused" in caplog.text)
    assert (
        f"TLS handshake with 127.0.0.1:{silent_port} refused: "
        "no TLS handshake within the header timeout (a plain HTTP client?)"
    ) in caplog.text


async def test_running_out_of_descriptors_pauses_accepting_instead_of_spinning(
    contexts: Contexts, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_listener, "ACCEPT_RETRY_DELAY_SECONDS", 0.2)
    failing = FailingListeningSocket(errno.EMFILE, failures=1)
    async with listening(contexts, failing) as (_listener, port, _served):
        # Served once accepting resumes: accept() failed once, was not called again until
        # the pause ended, then took the connection (and found the queue empty).
        assert await echo_over_tls(port, contexts.client) == b"ping"
    assert failing.accept_calls == 3
    assert "cannot accept connections: [Errno 24] Too many open files; accepting again in 0.2s" in caplog.text


async def test_a_listening_socket_that_fails_stops_the_listener(
    contexts: Contexts, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FailingListeningSocket(errno.EBADF, failures=1)
    async with listening(contexts, failing) as (listener, port, _served):
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS):
            assert await eventually(lambda: not listener.is_serving())
    assert failing.accept_calls == 1
    assert "stopped accepting connections: the listening socket failed: [Errno 9]" in caplog.text


async def test_wait_closed_waits_for_a_handshake_in_flight_and_the_connection_it_makes(
    contexts: Contexts,
) -> None:
    async with listening(contexts) as (listener, port, served):
        # Connected, accepted, and the handshake waits for the client's hello.
        raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT_SECONDS)
        assert await eventually(lambda: listener.handshakes_in_flight == 1)
        listener.close()
        assert not listener.is_serving()
        closed = asyncio.ensure_future(listener.wait_closed())
        await asyncio.sleep(0)
        assert not closed.done()
        # The handshake completes after close(); the connection is served, and kept open.
        tls = await asyncio.to_thread(contexts.client.wrap_socket, raw, server_hostname="127.0.0.1")
        with tls:
            await asyncio.to_thread(tls.sendall, b"ping")
            assert await asyncio.to_thread(tls.recv, 4) == b"ping"
            assert await eventually(lambda: listener.handshakes_in_flight == 0)
            assert not closed.done()
        await asyncio.wait_for(closed, WAIT_SECONDS)
    assert served.open == set()
