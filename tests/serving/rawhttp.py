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
