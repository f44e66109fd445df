"""A real Uvicorn server in a thread of the test process, on 127.0.0.1 and a port the OS
picks, serving the gateway's protocol classes; and a small ASGI app that shows the server's
side of each request: its TLS extension, and requests that wait for the test."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from collections.abc import Iterator

    from starlette.types import Receive, Scope, Send

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.01


class ProbeApp:
    """``/tls`` answers the scope's TLS extension (a WebSocket sends it); ``/hold`` answers
    once the test calls ``release``."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self._release = threading.Event()

    def release(self) -> None:
        self._release.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tls = json.dumps(scope.get("extensions", {}).get("tls")).encode()
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": tls.decode()})
            await send({"type": "websocket.close"})
            return
        if scope["path"] == "/hold":
            self.held.set()
            for _ in range(int(START_TIMEOUT / _POLL_INTERVAL)):
                if self._release.is_set():
                    break
                await asyncio.sleep(_POLL_INTERVAL)
        body = tls if scope["path"] == "/tls" else b"{}"
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(config: uvicorn.Config) -> Iterator[uvicorn.Server]:
    """Run ``config`` until the block ends; ``server.servers[0]`` knows the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    # Uvicorn installs no signal handlers outside the main thread.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(_POLL_INTERVAL)
        assert server.started, "the in-process server did not start"
        yield server
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)
        listener.close()
    assert not thread.is_alive(), "the in-process server did not stop"


def port_of(server: uvicorn.Server) -> int:
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return port


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def read_response(connection: socket.socket) -> bytes:
    """One response, head and Content-Length body, or whatever came before the server closed."""
    received = b""
    for _ in range(1000):
        head, separator, body = received.partition(b"\r\n\r\n")
        if separator:
            lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
            if lengths and len(body) >= int(lengths[0].split(b":")[1]):
                return received
        chunk = connection.recv(65536)
        if not chunk:
            return received
        received += chunk
    return received


def request_head(path: str, headers: list[tuple[str, str]] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
