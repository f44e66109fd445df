"""HTTP/1.1 by hand, for requests no polite client sends: huge headers, slow headers, huge bodies."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

BODY_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RawResponse:
    status: int
    head: bytes
    seconds: float  # From the end of the request head to the response's status line.


def _read_head(connection: socket.socket, timeout: float) -> bytes:
    connection.settimeout(timeout)
    received = b""
    for _ in range(1000):
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
        if b"\r\n\r\n" in received:
            break
    return received


def send_raw(
    port: int, head: bytes, body: bytes = b"", *, chunked: bool = False, timeout: float = 10
) -> RawResponse:
    """Send ``head``, then stream ``body`` from a thread while reading the answer, as a
    client uploading a large body would; a server may answer before the body is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(head)
        started = time.perf_counter()

        def upload() -> None:
            try:
                for offset in range(0, len(body), BODY_CHUNK):
                    chunk = body[offset : offset + BODY_CHUNK]
                    connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                if chunked:
                    connection.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # The server answered and closed: the rest of the body is not wanted.

        uploader = threading.Thread(target=upload, daemon=True)
        if body:
            uploader.start()
        received = _read_head(connection, timeout)
        seconds = time.perf_counter() - started
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else 0
    return RawResponse(status, received.split(b"\r\n\r\n", 1)[0], seconds)


def request_head(method: str, target: str, headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = [
        f"{method} {target} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{name}: {value}" for name, value in headers or []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Exchange:
    answers: list[tuple[int, bytes]]  # (status, body) of each response, in order.
    closed: bool  # Whether the server closed the connection after them.


def exchange(port: int, data: bytes, *, timeout: float = 5) -> Exchange:
    """Write ``data`` at once, then read every response until the server closes (or ``timeout``)."""
    received = b""
    closed = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(data)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = connection.recv(65536)
                if not chunk:
                    closed = True
                    break
                received += chunk
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
    return Exchange(_split_responses(received), closed)


def _split_responses(received: bytes) -> list[tuple[int, bytes]]:
    answers = []
    for _ in range(100):
        head, separator, rest = received.partition(b"\r\n\r\n")
        if not separator or not head.startswith(b"HTTP/1."):
            break
        lines = head.split(b"\r\n")
        lengths = [
            int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:")
        ]
        length = lengths[0] if lengths else len(rest)
        answers.append((int(lines[0].split(b" ", 2)[1]), rest[:length]))
        received = rest[length:]
    return answers
