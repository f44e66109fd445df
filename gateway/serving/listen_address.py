"""Whether the gateway could listen where its settings say, asked before anything starts.

Gunicorn, on a port in use, logs an error, retries for five seconds and exits 1 with
"Can't connect"; Uvicorn exits with an OSError. ``gateway serve`` and ``gateway dev`` ask
first, so the operator reads the reason and the fix before any banner or migration.
"""

from __future__ import annotations

import errno
import ipaddress
import socket


def host_and_port(host: str, port: int) -> str:
    """``host:port`` as Gunicorn's ``bind`` and URLs write it: an IPv6 literal in brackets."""
    return f"[{host}]:{port}" if _is_ipv6(host) else f"{host}:{port}"


def bind_problem(host: str, port: int, *, port_names: str) -> str | None:
    """Why a listening socket at ``host:port`` could not be bound now, naming the fix, or None.

    ``port_names`` says where the port comes from (``--port or GATEWAY_PORT``, and what
    else it may be). The socket
    is set up as Gunicorn's and Uvicorn's are (SO_REUSEADDR), so a port whose last
    connections linger in TIME_WAIT is not taken for busy, and is closed at once.
    """
    family = socket.AF_INET6 if _is_ipv6(host) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except socket.gaierror as error:
        return f"{host} is not a known host name or address ({error.strerror}); set --host or GATEWAY_HOST"
    except OSError as error:
        return _explained(error, host, port, port_names)
    return None


def _explained(error: OSError, host: str, port: int, port_names: str) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"{host}:{port} is in use by another process; stop it, or pick another port with {port_names}"
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine; set --host or GATEWAY_HOST to one of its "
            f"addresses (127.0.0.1: this machine only, 0.0.0.0: all)"
        )
    if error.errno == errno.EACCES:
        return f"no permission to listen on port {port} (below 1024 needs privileges); pick another with {port_names}"
    return f"cannot listen on {host}:{port}: {error.strerror}"


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False
