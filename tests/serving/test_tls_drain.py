"""TLS handshakes and the shutdown drain, on a real mutual-TLS Gunicorn group: a connection
accepted before SIGTERM whose handshake completes during the drain is served, rather than
cut when the worker exits (the worker's listener waits for the handshakes in flight)."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from tests.gateway.serving.inprocess import read_response
from tests.servers import LOOPBACK
from tests.serving.conftest import GatewayGroup, wait_for
from tests.serving.pki import Pki

STEP_TIMEOUT = 10.0


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki.create(tmp_path / "pki")


def _accepted(server_port: int, client_port: int) -> bool:
    """Whether the server took the connection out of its listen queue: until then the
    kernel lists the server's end of it without an inode (no process holds it yet)."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[9] != "0"
    return False


def test_a_handshake_in_flight_at_sigterm_completes_and_is_served(
    gateway_group: GatewayGroup, pki: Pki
) -> None:
    client = pki.client("billing")
    with gateway_group(workers=1, tls=client, **pki.settings("mtls")) as server:
        with socket.create_connection((LOOPBACK, server.port), timeout=STEP_TIMEOUT) as raw:
            # Accepted by the worker, which now waits for the client's hello.
            assert wait_for(lambda: _accepted(server.port, raw.getsockname()[1]), STEP_TIMEOUT)
            os.kill(server.process.pid, signal.SIGTERM)
            # The worker has stopped accepting when it says so.
            assert wait_for(
                lambda: any("Shutting down" in line for line in server.stdout.lines()), STEP_TIMEOUT
            ), server.output()
            # The worker waits for this handshake before it shuts its lifespan down (before,
            # it exited as soon as the connections it knew of had closed).
            assert not wait_for(lambda: "Application shutdown complete" in server.output(), 1.0)
            with client.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET /v3/hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
                response = read_response(tls)
        head = response.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 200"), response
        # Drained like the other connections: closed after this response.
        assert b"\r\nconnection: close" in head
        assert server.process.wait(STEP_TIMEOUT * 2) == 0, server.output()
