"""Real gateway processes for end-to-end tests, and a path-stripping proxy to put in front.

A server is a child process on 127.0.0.1 with a port the OS picks; its settings travel
only through the child's environment, so the test process's ``os.environ`` is never
touched. Every wait is bounded in time and in count, and a failure shows what the
server printed.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, TYPE_CHECKING

import httpx
import pytest

from gateway.settings import ENV_PREFIX

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from gateway.versions import VersionEntry

LOOPBACK = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
GATEWAY_COMMAND = Path(sys.executable).parent / "gateway"

# Uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the default
# handler, so a clean stop ends "killed by SIGTERM" (https://github.com/encode/uvicorn/pull/1600).
UVICORN_CLEAN_STOP = -signal.SIGTERM
# Gunicorn's arbiter exits 0 once its workers have drained.
GUNICORN_CLEAN_STOP = 0
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
_POLL_INTERVAL = 0.05
_MAX_POLLS = int(START_TIMEOUT / _POLL_INTERVAL) + 1
# The line Uvicorn or Gunicorn logs once it listens; with port 0 it names the port the OS
# chose. It matches the plain logs and the gateway's JSON log alike.
_LISTENING = re.compile(rf"(?:Uvicorn running on|Listening at:) http://{re.escape(LOOPBACK)}:(\d+)")


@contextmanager
def port_in_use() -> Iterator[int]:
    """A port on the loopback address that a socket listens on until the block ends."""
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        port: int = listener.getsockname()[1]
        yield port


def uvicorn_command(*, root_path: str = "") -> list[str]:
    """Plain Uvicorn, as a deployment without the gateway's CLI would run it."""
    command = [sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory"]
    command += ["--host", LOOPBACK, "--port", "0"]
    return command + (["--root-path", root_path] if root_path else [])


def gateway_serve_command(workers: int = 2) -> list[str]:
    """``gateway serve``: Gunicorn with the gateway's workers and JSON logging."""
    return [str(GATEWAY_COMMAND), "serve", "--host", LOOPBACK, "--port", "0", "--workers", str(workers)]


def run_gateway(
    arguments: Sequence[str], *, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run the ``gateway`` command to its end, its output captured as text."""
    return subprocess.run(
        [str(GATEWAY_COMMAND), *arguments],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def environment_without_gateway_settings() -> dict[str, str]:
    """This process's environment minus any GATEWAY_* a developer exported."""
    return {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}


def server_environment(
    folder: Path, *, versions: list[VersionEntry] | None = None, **settings: str
) -> dict[str, str]:
    """The child's environment: this one, minus any GATEWAY_* a developer exported, plus the test's."""
    environment = environment_without_gateway_settings()
    # The child runs in ``folder`` (so a developer's .env stays out), yet must import tests.versions.
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    environment["PYTHONUNBUFFERED"] = "1"
    environment[f"{ENV_PREFIX}DATABASE_URL"] = f"sqlite+aiosqlite:///{folder / 'catalog.sqlite3'}"
    if versions is not None:
        environment[f"{ENV_PREFIX}VERSIONS"] = json.dumps(
            [entry.model_dump(mode="json", exclude_none=True) for entry in versions]
        )
    environment.update({f"{ENV_PREFIX}{name.upper()}": value for name, value in settings.items()})
    return environment


def upgrade_database(environment: dict[str, str]) -> None:
    """What ``gateway db upgrade`` does with a server's settings, as a deploy step runs it
    before the server starts: only ``gateway serve`` migrates by itself (SQLite by default),
    plain Uvicorn never does. In process, to spare each fixture a second start-up."""
    from tests.services.databases import migrate

    migrate(environment[f"{ENV_PREFIX}DATABASE_URL"])


class _OutputReader:
    """Collects a pipe's lines in a thread, so reading never blocks the test."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                with self._lock:
                    self._lines.append(line.rstrip("\n"))

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def search(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return next(filter(None, map(pattern.search, self.lines())), None)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    stdout: _OutputReader
    stderr: _OutputReader
    origin: str = ""
    tls: ssl.SSLContext | None = None  # The client side of the server's TLS, when it has any.
    returncode: int | None = field(default=None, init=False)
    needed_sigkill: bool = field(default=False, init=False)

    @property
    def port(self) -> int:
        return int(self.origin.rsplit(":", 1)[1])

    def output(self) -> str:
        return "\n".join(["--- stdout ---", *self.stdout.lines(), "--- stderr ---", *self.stderr.lines()])

    def stop(self) -> int:
        """SIGTERM by pid, a bounded wait, SIGKILL only if the server ignores it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.needed_sigkill = True
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        self.stdout.join(STOP_TIMEOUT)
        self.stderr.join(STOP_TIMEOUT)
        self.returncode = self.process.returncode
        return self.returncode


def loopback_client(origin: str, tls: ssl.SSLContext | None = None) -> httpx.Client:
    """A client of ``origin``; for https, ``tls`` carries the CA and any client certificate.

    An ``ssl.SSLContext`` rather than httpx's ``verify="ca.pem"`` plus ``cert=``: that pair
    silently sends no client certificate (httpx PR #3718).
    """
    # trust_env=False: an HTTP(S)_PROXY in the environment must not reroute loopback traffic.
    return httpx.Client(
        base_url=origin, timeout=5.0, trust_env=False, verify=tls if tls is not None else True
    )


def _wait_until_listening(server: ServerProcess, deadline: float) -> str:
    for _attempt in range(_MAX_POLLS):
        # Uvicorn logs to stderr; under ``gateway serve`` every log line is JSON on stdout.
        listening = server.stderr.search(_LISTENING) or server.stdout.search(_LISTENING)
        if listening is not None:
            scheme = "https" if server.tls is not None else "http"
            return f"{scheme}://{LOOPBACK}:{listening.group(1)}"
        if server.process.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(_POLL_INTERVAL)
    exited = server.process.poll()
    why = f"exited with {exited}" if exited is not None else f"said nothing in {START_TIMEOUT:g}s"
    pytest.fail(f"the gateway never said where it listens: it {why}\n{server.output()}")


def _wait_until_ready(server: ServerProcess, deadline: float) -> None:
    last_answer = "no answer"
    with loopback_client(server.origin, server.tls) as client:
        for _attempt in range(_MAX_POLLS):
            if server.process.poll() is not None or time.monotonic() > deadline:
                break
            try:
                response = client.get("/health/ready")
            except httpx.TransportError as error:
                last_answer = repr(error)
            else:
                if response.status_code == 200:
                    return
                last_answer = f"{response.status_code} {response.text}"
            time.sleep(_POLL_INTERVAL)
    pytest.fail(
        f"the gateway at {server.origin} never became ready; /health/ready last said: {last_answer}\n"
        f"{server.output()}"
    )


@contextmanager
def running_server(
    command: list[str],
    environment: dict[str, str],
    folder: Path,
    *,
    clean_stop: int = UVICORN_CLEAN_STOP,
    graceful: bool = True,
    tls: ssl.SSLContext | None = None,
) -> Iterator[ServerProcess]:
    """Start ``command``, wait for /health/ready, and on exit stop it and require ``clean_stop``
    (and, when ``graceful``, the lifespan shutdown that a quick exit skips)."""
    process = subprocess.Popen(
        command,
        cwd=folder,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    server = ServerProcess(process, _OutputReader(process.stdout), _OutputReader(process.stderr), tls=tls)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        server.origin = _wait_until_listening(server, deadline)
        _wait_until_ready(server, deadline)
        yield server
    finally:
        server.stop()
    output = server.output()
    assert not server.needed_sigkill, f"the gateway ignored SIGTERM for {STOP_TIMEOUT}s\n{output}"
    assert server.returncode == clean_stop, f"the gateway exited with {server.returncode}\n{output}"
    if graceful:
        assert "Application shutdown complete." in output, output
    assert "Traceback" not in output, output


# Headers that describe one connection, not the message (RFC 9110 section 7.6.1).
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)


class _StripPrefixHandler(BaseHTTPRequestHandler):
    server: _ProxyServer

    def _forward(self) -> None:
        prefix = self.server.prefix
        if self.path != prefix and not self.path.startswith(prefix + "/"):
            self.send_error(404, f"the proxy serves only {prefix}/")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(LOOPBACK, self.server.upstream_port, timeout=10)
        try:
            upstream.request(self.command, self.path[len(prefix) :] or "/", body or None, headers)
            response = upstream.getresponse()
            content = response.read()
        finally:
            upstream.close()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    # http.server dispatches on these names.
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        self.server.requests.append(format % args)


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, prefix: str, upstream_port: int) -> None:
        super().__init__((LOOPBACK, 0), _StripPrefixHandler)
        self.prefix = prefix
        self.upstream_port = upstream_port
        self.requests: list[str] = []


@dataclass(frozen=True)
class BehindProxy:
    server: ServerProcess
    origin: str  # The proxy's: what clients call.


@contextmanager
def path_stripping_proxy(prefix: str, upstream: ServerProcess) -> Iterator[str]:
    """A reverse proxy at ``prefix`` that forwards ``/api/v1/x`` as ``/v1/x``, like nginx's
    ``location /api/ { proxy_pass http://upstream/; }``. Yields the proxy's origin."""
    proxy = _ProxyServer(prefix, upstream.port)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(STOP_TIMEOUT)
