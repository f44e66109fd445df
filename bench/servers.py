"""Real servers on 127.0.0.1, pinned to the server core, timed from start to ready.

A server is a child process started under ``taskset`` (its workers inherit the core);
its output goes to a log file in the workspace, trimmed between runs, never a terminal.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.workspace import Workspace

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
_POLL_INTERVAL = 0.02
# Access lines pile up fast (a few MB a second); the log keeps only what follows a trim.
_LOG_TRIM_BYTES = 64 * 1024 * 1024


class ServerFailedError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: ``command(port)`` in ``environment(workspace)``."""

    name: str
    description: str
    command: Callable[[int], list[str]]
    environment: Callable[[Workspace], dict[str, str]]
    # The first 200 here means ready; the gateway's is /health/ready.
    ready_path: str
    tls: bool = False
    client_certificate: bool = False


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    ready_seconds: float = 0.0
    rss_megabytes: list[float] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{'https' if self.spec.tls else 'http'}://{LOOPBACK}:{self.port}"

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the children of an arbiter, else the process."""
        children = _children_of(self.process.pid)
        return children or [self.process.pid]

    def measure_memory(self) -> None:
        self.rss_megabytes = [_rss_megabytes(pid) for pid in self.worker_pids()]

    def trim_log(self) -> None:
        if self.log_path.stat().st_size > _LOG_TRIM_BYTES:
            # The file is open for appending, so the server goes on writing at the new end.
            os.truncate(self.log_path, 0)

    def log_tail(self, characters: int = 4000) -> str:
        return self.log_path.read_bytes()[-characters:].decode(errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ServerFailedError(
                f"{self.spec.name} exited with {self.process.returncode}:\n{self.log_tail()}"
            )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(spec: ServerSpec, workspace: Workspace, *, cpus: str) -> RunningServer:
    port = free_port()
    log_path = workspace.directory / f"{spec.name}.log"
    log_file = log_path.open("ab")
    started = time.monotonic()
    process = subprocess.Popen(
        ["taskset", "-c", cpus, *spec.command(port)],
        env=spec.environment(workspace),
        cwd=workspace.directory,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = RunningServer(spec, port, process, log_path, log_file)
    try:
        _wait_until_ready(server, workspace, started)
    except BaseException:
        stop_server(server)
        raise
    server.ready_seconds = time.monotonic() - started
    return server


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        # The whole session: Gunicorn's and Granian's workers too.
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(STOP_TIMEOUT)
    server.log_file.close()


def client_ssl_context(workspace: Workspace, *, client_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(workspace.certificates.ca))
    if client_certificate:
        certificates = workspace.certificates
        context.load_cert_chain(str(certificates.client), str(certificates.client_key))
    return context


def get(server: RunningServer, workspace: Workspace, path: str) -> tuple[int, bytes]:
    """One request from the bench itself (readiness, seeding checks), not load."""
    connection: http.client.HTTPConnection
    if server.spec.tls:
        context = client_ssl_context(workspace, client_certificate=server.spec.client_certificate)
        connection = http.client.HTTPSConnection(LOOPBACK, server.port, timeout=5, context=context)
    else:
        connection = http.client.HTTPConnection(LOOPBACK, server.port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _wait_until_ready(server: RunningServer, workspace: Workspace, started: float) -> None:
    while time.monotonic() - started < START_TIMEOUT:
        server.check_alive()
        try:
            status, _body = get(server, workspace, server.spec.ready_path)
        except (OSError, http.client.HTTPException):
            status = 0
        if status == 200:
            return
        time.sleep(_POLL_INTERVAL)
    raise ServerFailedError(f"{server.spec.name} not ready after {START_TIMEOUT:.0f} s:\n{server.log_tail()}")


def _children_of(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name is in parentheses and may hold spaces; the ppid follows it.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def _rss_megabytes(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
