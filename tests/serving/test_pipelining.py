"""Pipelined requests on one connection are parsed only as fast as the worker answers them:
a client that writes without reading holds a bounded amount of the worker's memory."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import TYPE_CHECKING

import pytest

from tests.serving.conftest import GatewayGroup, resident_memory_kib, worker_pids
from tests.serving.pki import Pki

if TYPE_CHECKING:
    from pathlib import Path

PIPELINED = 50_000
# The pure-Python parser and TLS answer more slowly; fewer requests keep the test short and
# still write megabytes more than a bounded worker may hold.
PIPELINED_SLOWER = 20_000
# Writing stops when every buffer between the client and the paused server is full; this
# long without progress means the server has stopped reading.
STALL_SECONDS = 1.5
WRITE_PHASE_SECONDS = 8.0
READ_TIMEOUT_SECONDS = 40.0
MAX_GROWTH_KIB = 20 * 1024
# More than the socket buffers between client and server hold, and than the growth allowed.
PIPELINED_BYTES = 48 * 1024 * 1024
_ANSWER = re.compile(rb"HTTP/1\.1 (\d{3}) [^\r]*\r\n(?:[^\r\n]+\r\n)*?x-request-id: (\d+)\r\n", re.I)


def _pipelined_requests(count: int, first: int = 0) -> bytes:
    return b"".join(
        b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-ID: %d\r\n\r\n" % number
        for number in range(first, first + count)
    )


class _Writer(threading.Thread):
    """Writes every request without reading; tracks how far it got."""

    def __init__(self, connection: socket.socket, payload: bytes) -> None:
        super().__init__(daemon=True)
        self.connection = connection
        self.payload = payload
        self.written = 0
        self.error: OSError | None = None

    def run(self) -> None:
        view = memoryview(self.payload)
        try:
            while self.written < len(view):
                self.written += self.connection.send(view[self.written : self.written + 65536])
        except OSError as error:
            self.error = error


def _write_without_reading(writer: _Writer) -> None:
    """Until everything is written or the writes have stalled (the server stopped reading)."""
    writer.start()
    deadline = time.monotonic() + WRITE_PHASE_SECONDS
    last, last_change = -1, time.monotonic()
    while writer.is_alive() and time.monotonic() < deadline:
        if writer.written != last:
            last, last_change = writer.written, time.monotonic()
        elif time.monotonic() - last_change > STALL_SECONDS:
            return
        time.sleep(0.1)


def _read_answers(connection: socket.socket, count: int) -> list[tuple[int, int]]:
    """(status, request id) of ``count`` answers, in the order they came."""
    received = bytearray()
    answers: list[tuple[int, int]] = []
    deadline = time.monotonic() + READ_TIMEOUT_SECONDS
    connection.settimeout(5)
    while len(answers) < count and time.monotonic() < deadline:
        chunk = connection.recv(1 << 20)
        if not chunk:
            break
        received += chunk
        # Whole answers only: each ends with its 18-byte body, {"status": "pass"}.
        end = received.rfind(b'{"status": "pass"}')
        if end == -1:
            continue
        end += len(b'{"status": "pass"}')
        answers += [(int(status), int(number)) for status, number in _ANSWER.findall(received, 0, end)]
        del received[:end]
    return answers


def _pipeline(connection: socket.socket, worker: int, count: int) -> tuple[int, list[tuple[int, int]], float]:
    """Warm up, then write ``count`` requests without reading, then read every answer:
    the worker's peak memory growth (KiB), the answers, and the seconds it took."""
    started = time.monotonic()
    connection.sendall(_pipelined_requests(200, first=count))
    assert len(_read_answers(connection, 200)) == 200
    before = resident_memory_kib(worker, peak=True)
    writer = _Writer(connection, _pipelined_requests(count))
    _write_without_reading(writer)
    growth = resident_memory_kib(worker, peak=True) - before
    answers = _read_answers(connection, count)
    writer.join(READ_TIMEOUT_SECONDS)
    assert writer.error is None, writer.error
    growth = max(growth, resident_memory_kib(worker, peak=True) - before)
    return growth, answers, time.monotonic() - started


@pytest.mark.parametrize(("parser", "count"), [("httptools", PIPELINED), ("h11", PIPELINED_SLOWER)])
def test_a_client_pipelining_without_reading_holds_bounded_memory(
    gateway_group: GatewayGroup, parser: str, count: int
) -> None:
    with gateway_group(workers=1, http=parser, access_log="false") as server:
        (worker,) = worker_pids(server)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            growth, answers, seconds = _pipeline(connection, worker, count)

    assert len(answers) == count, f"{len(answers)} of {count} answered"
    assert answers == [(200, number) for number in range(count)], "answers out of order or failed"
    assert growth < MAX_GROWTH_KIB, f"the worker's peak memory grew by {growth} KiB"
    print(f"{parser}: {count} pipelined in {seconds:.1f}s, peak memory growth {growth} KiB")


def test_pipelining_over_tls_holds_bounded_memory(gateway_group: GatewayGroup, tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki")
    with gateway_group(workers=1, access_log="false", tls=pki.anonymous(), **pki.settings("tls")) as server:
        (worker,) = worker_pids(server)
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as plain,
            pki.anonymous().wrap_socket(plain, server_hostname="localhost") as connection,
        ):
            growth, answers, seconds = _pipeline(connection, worker, PIPELINED_SLOWER)

    assert len(answers) == PIPELINED_SLOWER, f"{len(answers)} of {PIPELINED_SLOWER} answered"
    assert answers == [(200, number) for number in range(PIPELINED_SLOWER)], "answers out of order or failed"
    assert growth < MAX_GROWTH_KIB, f"the worker's peak memory grew by {growth} KiB"
    print(f"TLS: {PIPELINED_SLOWER} pipelined in {seconds:.1f}s, peak memory growth {growth} KiB")


def test_h11_reads_no_further_while_an_app_listening_for_disconnect_has_requests_queued(
    gateway_group: GatewayGroup,
) -> None:
    # A streamed answer listens for the client's disconnect: each receive() resumed reading
    # in Uvicorn's h11 cycle, though h11 had paused at the next request, so every answer
    # let one more read into h11's buffer. Measured by memory, without reading the answers:
    # the writes stall once the server stops reading.
    streamed = b"GET /v3/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    payload = streamed * (PIPELINED_BYTES // len(streamed))
    with gateway_group(workers=1, http="h11", access_log="false") as server:
        (worker,) = worker_pids(server)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
            connection.sendall(streamed * 100)
            time.sleep(0.5)
            before = resident_memory_kib(worker, peak=True)
            writer = _Writer(connection, payload)
            _write_without_reading(writer)
            growth = resident_memory_kib(worker, peak=True) - before
            written = writer.written
    assert written < len(payload), "the server read every byte while its answers went unread"
    assert growth < MAX_GROWTH_KIB, f"the worker's peak memory grew by {growth} KiB"
    print(
        f"h11 streams: {written >> 20} of {len(payload) >> 20} MiB written, peak memory growth {growth} KiB"
    )
