"""Request bodies must keep moving, on a real Gunicorn group and both parsers: a body that
drips or stalls is answered 408 and its connection closed, an honest slow upload is not,
and /metrics shows the connections such clients hold against the cap."""

from __future__ import annotations

import json
import re
import selectors
import socket
import time

import pytest

from tests.servers import loopback_client
from tests.serving.conftest import GatewayGroup
from tests.serving.rawhttp import request_head

# The defaults must cut a body dripping one byte a second within this.
DRIP_BOUND_SECONDS = 20.0
DRIP_CONNECTIONS = 20
UPLOAD_BYTES = 64 * 1024
UPLOAD_CHUNK = 1024
UPLOAD_INTERVAL = 0.05  # 20 KiB/s: an upload over a poor mobile link.
BODY_TIMEOUT = 3.0
_GAUGE = r"^{name} (\S+)$"


def _upload_head(length: int) -> bytes:
    return request_head("POST", "/v3/upload", [("Content-Length", str(length)), ("X-Request-ID", "drip-1")])


def _drip_until_answered(
    drips: list[socket.socket], stalled: socket.socket, deadline: float
) -> dict[socket.socket, tuple[bytes, float]]:
    """Send each drip one body byte a second, and the stalled one nothing, until the server
    answers or closes each: what it sent, and when (monotonic time)."""
    answers: dict[socket.socket, tuple[bytes, float]] = {}
    with selectors.DefaultSelector() as selector:
        for connection in [*drips, stalled]:
            selector.register(connection, selectors.EVENT_READ)
        next_drip = time.monotonic()
        while len(answers) <= len(drips) and time.monotonic() < deadline:
            if time.monotonic() >= next_drip:
                for connection in drips:
                    if connection not in answers:
                        connection.send(b"x")
                next_drip += 1.0
            for key, _events in selector.select(timeout=0.1):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                answered_at = time.monotonic()
                answers[ready] = (_read_until_closed(ready), answered_at)
                selector.unregister(ready)
    return answers


def _read_until_closed(connection: socket.socket) -> bytes:
    received = b""
    connection.settimeout(2)
    try:
        for _ in range(100):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def _gauge(text: str, name: str) -> float:
    found = re.search(_GAUGE.format(name=name), text, re.M)
    assert found is not None, f"no {name} in /metrics:\n{text}"
    return float(found.group(1))


def _upload_slowly(port: int) -> bytes:
    """64 KiB at 20 KiB/s, as an honest client on a slow link sends it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(_upload_head(UPLOAD_BYTES))
        for _ in range(UPLOAD_BYTES // UPLOAD_CHUNK):
            connection.sendall(b"u" * UPLOAD_CHUNK)
            time.sleep(UPLOAD_INTERVAL)
        return _read_until_closed_or_answered(connection)


def _read_until_closed_or_answered(connection: socket.socket) -> bytes:
    received = b""
    for _ in range(100):
        chunk = connection.recv(65536)
        received += chunk
        if not chunk or (b"\r\n\r\n" in received and received.endswith(b"}")):
            break
    return received


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_a_dripping_body_is_cut_with_408_and_an_honest_slow_upload_is_not(
    gateway_group: GatewayGroup, parser: str
) -> None:
    # The rate and its grace are the defaults; only the idle timeout is shortened.
    with gateway_group(workers=1, http=parser, body_timeout=str(BODY_TIMEOUT)) as server:
        drips = [
            socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(DRIP_CONNECTIONS)
        ]
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        try:
            for connection in drips:
                connection.sendall(_upload_head(100_000))
            stalled.sendall(_upload_head(100_000) + b"a few bytes")
            started = time.monotonic()
            time.sleep(1.5)  # Connections are published once a second.
            with loopback_client(server.origin) as client:
                held = client.get("/metrics").text
            answers = _drip_until_answered(drips, stalled, deadline=started + DRIP_BOUND_SECONDS)
            upload_answer = _upload_slowly(server.port)
            time.sleep(1.5)
            with loopback_client(server.origin) as client:
                released = client.get("/metrics").text
        finally:
            for connection in [*drips, stalled]:
                connection.close()

    assert len(answers) == DRIP_CONNECTIONS + 1, f"{len(answers)} of {DRIP_CONNECTIONS + 1} cut"
    for answer, _answered_at in answers.values():
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 "), answer
        assert b"x-request-id: drip-1" in head.lower(), answer
        assert json.loads(body)["request_id"] == "drip-1"
    stalled_seconds = answers.pop(stalled)[1] - started
    drip_seconds = max(answered_at for _, answered_at in answers.values()) - started
    # Idle from the first second; the slack is for a loaded machine.
    assert stalled_seconds < BODY_TIMEOUT + 2, f"a stalled body was cut after {stalled_seconds:.1f}s"
    assert upload_answer.startswith(b"HTTP/1.1 200 "), upload_answer
    assert upload_answer.endswith(b'{"received":%d}' % UPLOAD_BYTES)
    # The drips held their connections against the cap until they were cut.
    assert _gauge(held, "gateway_connections_open") >= DRIP_CONNECTIONS + 1
    assert _gauge(held, "gateway_connections_limit") == 1000
    assert _gauge(released, "gateway_connections_open") <= 2
    print(
        f"{parser}: {DRIP_CONNECTIONS} drips cut after {drip_seconds:.1f}s, a stalled body after {stalled_seconds:.1f}s"
    )
