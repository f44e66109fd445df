"""The gateway's Gunicorn worker, built on the maintained ``uvicorn_worker.UvicornWorker``.

The stock worker drops what an operator configures in Gunicorn: the graceful timeout
(Uvicorn then waits forever for in-flight requests), the access-log format, and SIGQUIT
(a quick shutdown that the stock worker ignores until Gunicorn kills it at the timeout,
https://github.com/encode/uvicorn/issues/1116). This one passes the graceful timeout on,
uses the gateway's own HTTP protocol (limits, header timeout, HUP without failed
requests), serves the root path from settings, logs through the gateway's JSON logging,
flips readiness to 503 the moment SIGTERM arrives, and exits quickly on SIGQUIT.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker
from uvicorn.config import Config
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from gateway.health import begin_draining
from gateway.serving.protocol import HttpLimits, protocol_class
from gateway.serving.tls_handshake import tls_protocol_factory
from gateway.settings import load_settings
from gateway.tls.context import cipher_suite_codes, server_context
from gateway.tls.scope import ServerTLS

if TYPE_CHECKING:
    from collections.abc import Callable, Generator
    from types import FrameType

    from gateway.settings import Settings

# Room left between Uvicorn cutting the last requests and Gunicorn's SIGKILL, for the
# lifespan shutdown (closing the store) to run.
SHUTDOWN_MARGIN_SECONDS = 1.0
# A quick shutdown (SIGQUIT, or SIGINT to the arbiter) still answers the requests it cuts
# (503) and closes the store; it just does not wait for them.
QUICK_EXIT_GRACE_SECONDS = 0.2


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
    ) -> None:
        super().__init__(config)
        self._on_drain = on_drain
        self._on_shutdown = on_shutdown
        self._prestop_delay = prestop_delay
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
        return await super().on_tick(counter)

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
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # UvicornWorker.__init__ is skipped on purpose: it points Uvicorn's loggers at
        # Gunicorn's handlers, bypassing the JSON logging configured by logconfig_dict.
        Worker.__init__(self, *args, **kwargs)
        self.settings = load_settings()
        limits = HttpLimits(
            max_request_line=self.settings.max_request_line,
            max_header_count=self.settings.max_header_count,
            max_header_bytes=self.settings.max_header_bytes,
            header_timeout=self.settings.header_timeout,
            max_connections=self.settings.max_connections,
        )
        # Built here, by the worker: the stock worker ignores Gunicorn's ssl_context hook.
        self.ssl_context = server_context(self.settings)
        tls = (
            ServerTLS(
                server_cert_pem=self.settings.tls_certfile.read_text(),
                cipher_codes=cipher_suite_codes(self.ssl_context),
            )
            if self.ssl_context is not None
            else None
        )
        self.http_protocol_class = protocol_class(limits, tls)
        config_kwargs: dict[str, Any] = {
            "app": None,
            "log_config": None,
            "access_log": False,  # The gateway writes its own structured access line.
            "http": self._http_protocol(self.http_protocol_class),
            # With TLS, asyncio's own loop: under uvloop 0.23 a start_tls on a transport
            # paused since connection_made (which the gateway's handshake needs, or the
            # ClientHello can be lost) stalls when the server asks for a client certificate.
            "loop": "asyncio" if self.ssl_context is not None else "auto",
            "root_path": self.settings.root_path,
            "timeout_keep_alive": self.cfg.keepalive,
            "timeout_notify": self.timeout,
            "timeout_graceful_shutdown": uvicorn_graceful_timeout(self.settings),
            "callback_notify": self.callback_notify,
            "limit_max_requests": self.max_requests,
            "forwarded_allow_ips": self.cfg.forwarded_allow_ips,
        }
        if self.cfg.settings["backlog"].value:
            config_kwargs["backlog"] = self.cfg.settings["backlog"].value
        self.config = Config(**config_kwargs)
        self.server: DrainingServer | None = None

    def _http_protocol(self, http_protocol: type[asyncio.Protocol]) -> Any:
        if self.ssl_context is None:
            return http_protocol
        # The server listens on plain TCP and the gateway runs each handshake itself, so a
        # refused one is logged; Uvicorn's own TLS (config.ssl) stays off.
        return tls_protocol_factory(http_protocol, self.ssl_context, self.settings.header_timeout)

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
        )
        self._install_sigquit_handler()
        await self.server.serve(sockets=self.sockets)
        if not self.server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
