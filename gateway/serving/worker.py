"""The gateway's Gunicorn worker, built on the maintained ``uvicorn_worker.UvicornWorker``.

The stock worker drops what an operator configures in Gunicorn: the graceful timeout
(Uvicorn then waits forever for in-flight requests), the access-log format, and SIGQUIT
(a quick shutdown that the stock worker ignores until Gunicorn kills it at the timeout,
https://github.com/encode/uvicorn/issues/1116). This one passes the graceful timeout on,
uses the gateway's own HTTP and WebSocket protocols (limits, header timeout, HUP without
failed requests, the ASGI TLS extension), serves the root path from settings, logs through
the gateway's JSON logging, flips readiness to 503 the moment SIGTERM arrives, and exits
quickly on SIGQUIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, Any, ClassVar

from gunicorn.arbiter import Arbiter
from uvicorn.config import Config
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from gateway.health import begin_draining
from gateway.metrics import MULTIPROCESS_DIRECTORY_VARIABLE, ConnectionGauges
from gateway.serving.group_settings import group_settings
from gateway.serving.heap_trim import HEAP_TRIM_INTERVAL_SECONDS, heap_trimmer
from gateway.serving.protocols import serving_protocols
from gateway.serving.served_tls import ServedTLS, load_or_keep
from gateway.serving.tls_listener import TLSListener

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Generator
    from types import FrameType

    from gateway.settings import Settings

# Room left between Uvicorn cutting the last requests and Gunicorn's SIGKILL, for the
# lifespan shutdown (closing the store) to run.
SHUTDOWN_MARGIN_SECONDS = 1.0
# A quick shutdown (SIGQUIT, or SIGINT to the arbiter) still answers the requests it cuts
# (503) and closes the store; it just does not wait for them.
QUICK_EXIT_GRACE_SECONDS = 0.2
# Uvicorn's main loop calls on_tick every 0.1 s.
_HEAP_TRIM_TICKS = round(HEAP_TRIM_INTERVAL_SECONDS / 0.1)
logger = logging.getLogger("gateway.serving")
# Open connections are published for /metrics once a second.
_CONNECTION_PUBLISH_TICKS = 10


def uvicorn_graceful_timeout(settings: Settings) -> float:
    """Gunicorn's graceful timeout counts from its SIGTERM; Uvicorn's starts after the
    pre-stop delay, and must cut what still runs before Gunicorn kills the process."""
    return max(0.5, settings.graceful_timeout - settings.prestop_delay - SHUTDOWN_MARGIN_SECONDS)


class DrainingServer(Server):
    """Uvicorn's server, told about draining and the pre-stop delay."""

    def __init__(
        self,
        config: Config,
        *,
        on_drain: Callable[[], None],
        on_shutdown: Callable[[], None],
        prestop_delay: float,
        ssl_context: ssl.SSLContext | None,
        handshake_timeout: float,
        connection_gauges: ConnectionGauges | None = None,
    ) -> None:
        super().__init__(config)
        self._connection_gauges = connection_gauges
        self._on_drain = on_drain
        self._on_shutdown = on_shutdown
        self._prestop_delay = prestop_delay
        self._ssl_context = ssl_context
        self._handshake_timeout = handshake_timeout
        # TLS fragments the heap (see heap_trim); plain HTTP workers do not need this.
        self._trim_heap = heap_trimmer() if ssl_context is not None else None
        self._exit_at: float | None = None
        self._drain_requested = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # This runs inside a signal handler, between any two bytecodes of the main thread,
        # which may hold a lock (prometheus_client's, for one): only set flags here; the
        # next tick (within 0.1 s) turns readiness to 503.
        self._drain_requested = True
        if sig == signal.SIGTERM and self._prestop_delay > 0 and not self.should_exit:
            # Keep serving, with readiness 503, until the load balancer has noticed.
            if self._exit_at is None:
                self._exit_at = time.monotonic() + self._prestop_delay
            return
        super().handle_exit(sig, frame)

    def quick_exit(self) -> None:
        # Called from the event loop (add_signal_handler), so it may do real work.
        self._on_drain()
        if self.should_exit:
            # Already draining: cut what runs now (the edge answers each with 503).
            for task in self.server_state.tasks:
                task.cancel()
        # Uvicorn annotates this int, but hands it to asyncio.wait_for, which takes any float.
        self.config.timeout_graceful_shutdown = QUICK_EXIT_GRACE_SECONDS  # type: ignore[assignment]
        self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._drain_requested:
            self._drain_requested = False
            self._on_drain()
        if self._exit_at is not None and time.monotonic() >= self._exit_at:
            self.should_exit = True
        if self._trim_heap is not None and counter % _HEAP_TRIM_TICKS == 0:
            self._trim_heap()
        if self._connection_gauges is not None and counter % _CONNECTION_PUBLISH_TICKS == 0:
            self._connection_gauges.publish(len(self.server_state.connections))
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        if self._ssl_context is None or sockets is None:
            await super().startup(sockets)
            return
        # With TLS the gateway runs each handshake itself, so that a refused one is logged
        # (see tls_listener): Uvicorn's startup, given no socket, runs the lifespan and
        # creates no server; each of Gunicorn's sockets then gets the gateway's listener.
        await super().startup(sockets=[])
        for listening in sockets:
            listener = TLSListener(
                listening,
                self._make_http_protocol,
                self._ssl_context,
                handshake_timeout=self._handshake_timeout,
                backlog=self.config.backlog,
                connections_open=lambda: bool(self.server_state.connections) and not self.force_exit,
            )
            listener.start()
            # Uvicorn's shutdown only calls close() and wait_closed() on its servers.
            self.servers.append(listener)  # type: ignore[arg-type]

    def _make_http_protocol(self) -> asyncio.Protocol:
        # What Uvicorn's startup gives loop.create_server.
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            # Uvicorn re-raises the signal it stopped for, so that an embedding program
            # dies of it; a Gunicorn worker should exit 0 instead, and the arbiter knows why.
            self._captured_signals.clear()


class GatewayWorker(UvicornWorker):
    # The TLS the arbiter loaded last (this constructor runs in the arbiter): a worker built
    # while the files do not load serves it, rather than crash the arbiter.
    tls_loaded_before: ClassVar[ServedTLS | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The group's settings, read by the arbiter: a worker never reads them itself.
        self.settings = group_settings()
        # Built here, by the worker: the stock worker ignores Gunicorn's ssl_context hook.
        served_tls = load_or_keep(self.settings, GatewayWorker.tls_loaded_before)
        GatewayWorker.tls_loaded_before = served_tls
        protocols = serving_protocols(self.settings, served_tls)
        self.ssl_context = protocols.ssl_context
        self.http_protocol_class = protocols.http
        # uvicorn-worker's seam: its Config takes these over what it derives from Gunicorn's
        # settings (keep-alive, notify, max requests, forwarded IPs, backlog).
        self.CONFIG_KWARGS = {
            "access_log": False,  # The gateway writes its own structured access line.
            # With TLS too: Uvicorn's own TLS (config.ssl) stays off, and DrainingServer
            # runs the handshakes (on uvloop's TLS transport, see tls_handshake).
            "http": protocols.http,
            "ws": protocols.websocket,
            "loop": "auto",
            "root_path": self.settings.root_path,
            "timeout_graceful_shutdown": uvicorn_graceful_timeout(self.settings),
        }
        # It also points Uvicorn's loggers at Gunicorn's error log, whose handler is the
        # gateway's JSON one (logconfig_dict), so their lines keep the gateway's format.
        super().__init__(*args, **kwargs)
        self.server: DrainingServer | None = None

    def _connection_gauges(self) -> ConnectionGauges | None:
        # In the worker process: multiprocess values are files named by the process that writes.
        if not self.settings.metrics_enabled or not os.environ.get(MULTIPROCESS_DIRECTORY_VARIABLE):
            return None
        return ConnectionGauges(self.settings.max_connections)

    def _mark_draining(self) -> None:
        self.http_protocol_class.server_draining = True

    def _install_sigquit_handler(self) -> None:
        # Gunicorn sends SIGQUIT for a quick shutdown (SIGINT or SIGQUIT to the arbiter).
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGQUIT, self._quick_exit)

    def _quick_exit(self) -> None:
        if self.server is not None:
            self.server.quick_exit()

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        self.server = DrainingServer(
            config=self.config,
            on_drain=lambda: begin_draining(self.wsgi),
            on_shutdown=self._mark_draining,
            prestop_delay=self.settings.prestop_delay,
            ssl_context=self.ssl_context,
            handshake_timeout=self.settings.header_timeout,
            connection_gauges=self._connection_gauges(),
        )
        self._install_sigquit_handler()
        await self.server.serve(sockets=self.sockets)
        if not self.server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
