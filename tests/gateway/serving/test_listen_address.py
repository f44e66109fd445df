"""The address check ``gateway serve`` and ``gateway dev`` make before anything starts."""

from __future__ import annotations

import errno
import socket

import pytest

from gateway.serving.listen_address import bind_problem, host_and_port
from tests.servers import LOOPBACK, port_in_use

PORT_NAMES = "--port or GATEWAY_PORT (0: any free port)"


def _port_in_time_wait() -> int:
    """A port with no listener whose last connection the server side closed first (TIME_WAIT)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        with socket.create_connection((LOOPBACK, port), timeout=5) as client:
            accepted, _ = listener.accept()
            accepted.close()  # The side that closes first keeps the port in TIME_WAIT.
            assert client.recv(1) == b""
    return port


def test_a_port_in_time_wait_is_not_taken_for_busy() -> None:
    port = _port_in_time_wait()
    with socket.socket() as plain, pytest.raises(OSError, match="in use") as refused:
        plain.bind((LOOPBACK, port))  # Without SO_REUSEADDR, as a naive check would bind.
    assert refused.value.errno == errno.EADDRINUSE
    assert bind_problem(LOOPBACK, port, port_names=PORT_NAMES) is None


def test_a_listening_port_is_busy() -> None:
    with port_in_use() as port:
        problem = bind_problem(LOOPBACK, port, port_names=PORT_NAMES)
    assert problem == (
        f"{LOOPBACK}:{port} is in use by another process; stop it, or pick another port with {PORT_NAMES}"
    )


def test_an_ipv6_address_is_bracketed() -> None:
    assert host_and_port("::1", 8000) == "[::1]:8000"
    assert host_and_port("127.0.0.1", 8000) == "127.0.0.1:8000"
