"""The gateway's HTTP protocols, httptools and h11 alike, on a real in-process Uvicorn:
the same refusals, header timeout and drain whichever parser ``GATEWAY_HTTP`` picks."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
import uvicorn

from gateway.serving.protocols import HTTP_PROTOCOLS, http_protocol_class
from gateway.settings import Settings
from tests.gateway.serving.inprocess import (
    ProbeApp,
    port_of,
    read_response,
    refuses_connections,
    request_head,
    serving,
)

PARSERS = sorted(HTTP_PROTOCOLS)
HEADER_TIMEOUT = 0.5


def _config(settings: Settings, app: ProbeApp) -> uvicorn.Config:
    return uvicorn.Config(
        app=app,
        http=http_protocol_class(settings, None),
        lifespan="off",
        log_config=None,
        loop="asyncio",
        timeout_keep_alive=5,
    )


def _status(port: int, head: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(head)
        answer = read_response(connection)
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


@pytest.mark.parametrize("parser", PARSERS)
def test_request_heads_over_the_limits_are_refused(
    make_settings: Callable[..., Settings], parser: str
) -> None:
    settings = make_settings(http=parser)
    with serving(_config(settings, ProbeApp())) as server:
        port = port_of(server)
        assert _status(port, request_head("/", [("X-Big", "a" * (1 << 20))])) == 431
        # Few bytes, too many headers: counted once parsed.
        assert _status(port, request_head("/", [(f"X-Header-{n}", "1") for n in range(150)])) == 431
        # Far over the limit: refused while the line arrives; just over it: once parsed.
        assert _status(port, request_head("/?q=" + "a" * (100 * 1024))) == 414
        assert _status(port, request_head("/?q=" + "a" * (settings.max_request_line + 4))) == 414
        assert _status(port, request_head("/", [("X-Some", "a" * 1000)])) == 200


@pytest.mark.parametrize("parser", PARSERS)
def test_a_big_cookie_on_a_kept_alive_connection_is_measured_from_its_own_first_byte(
    make_settings: Callable[..., Settings], parser: str
) -> None:
    # 20 KB is over h11's own 16 KiB default bound and well within the gateway's 60 KiB.
    with (
        serving(_config(make_settings(http=parser), ProbeApp())) as server,
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as connection,
    ):
        connection.sendall(request_head("/"))
        assert read_response(connection).startswith(b"HTTP/1.1 200")
        second = request_head("/", [("Cookie", "c=" + "a" * 20_000)])
        connection.sendall(second[:10_000])
        connection.sendall(second[10_000:])
        assert read_response(connection).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("parser", PARSERS)
def test_a_connection_without_complete_headers_is_closed_at_the_header_timeout(
    make_settings: Callable[..., Settings], parser: str
) -> None:
    settings = make_settings(http=parser, header_timeout=HEADER_TIMEOUT)
    with (
        serving(_config(settings, ProbeApp())) as server,
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as connection,
    ):
        connection.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        # Closed by the server: recv returns b"" well before the client's own 10 s timeout.
        assert connection.recv(1024) == b""
        assert time.monotonic() - started < 9


@pytest.mark.parametrize("parser", PARSERS)
def test_a_response_finished_while_draining_says_connection_close(
    make_settings: Callable[..., Settings], parser: str
) -> None:
    app = ProbeApp()
    with (
        serving(_config(make_settings(http=parser), app)) as server,
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as connection,
    ):
        port = port_of(server)
        connection.sendall(request_head("/hold"))
        assert app.held.wait(10), "the request never reached the app"
        server.should_exit = True
        deadline = time.monotonic() + 10
        while not refuses_connections(port) and time.monotonic() < deadline:
            time.sleep(0.02)
        app.release()
        answer = read_response(connection)
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"connection: close" in answer.split(b"\r\n\r\n")[0].lower()
        assert connection.recv(1024) == b""


@pytest.mark.parametrize("parser", PARSERS)
def test_a_body_awaiting_100_continue_is_not_timed_until_the_app_asks_for_it(
    make_settings: Callable[..., Settings], parser: str
) -> None:
    # The client sends its body only after a 100 Continue, which Uvicorn writes when the app
    # first reads: until then the server is not waiting for the client.
    app = ProbeApp()
    settings = make_settings(http=parser, body_timeout=0.3, body_rate_grace=0)
    with (
        serving(_config(settings, app)) as server,
        socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as connection,
    ):
        connection.sendall(request_head("/hold", [("Expect", "100-continue"), ("Content-Length", "5")]))
        assert app.held.wait(10), "the request never reached the app"
        time.sleep(1.5)
        app.release()
        answer = read_response(connection)
    assert answer.startswith(b"HTTP/1.1 200"), answer
