"""``python -m bench.inprocess [ROW ...] [--requests N] [--profile]``: one request's cost, in process.

Calls an app of the hello rows (R2, R3, R4, R4a, R4b) directly, as Uvicorn would (a scope,
``receive`` and ``send``), with no server or socket in between: microseconds per request,
or cProfile's view of them, or a fixed number of requests to count under valgrind. The
gateway is built from the environment as ``gateway dev`` builds it, logging to a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import logging.config
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.plan import _hello_registry
from bench.reference_apps import create_hello_version, create_mounted_hello
from bench.workspace import GATEWAY_COMMAND, PROJECT_ROOT
from gateway.logs import logging_config

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The gateway's settings of each row (GATEWAY_* values without the prefix).
_GATEWAY_ROWS = {
    "R4": {},
    "R4a": {"access_log": "false"},
    "R4b": {"access_log": "false", "metrics_enabled": "false"},
    "R4c": {"usage": "false"},
}
_PATHS = {"R2": "/hello"}
# Requests served together: the wrk rows' 64 connections on one core finish several per loop pass.
_CONCURRENT = 10


def _scope(path: str) -> dict[str, Any]:
    """What Uvicorn's httptools protocol builds for ``GET path`` from wrk."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 51234),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "state": {},
    }


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


def _gateway(row: str, directory: Path) -> Callable[[], ASGIApp]:
    def build() -> ASGIApp:
        from gateway.app import create_app

        database = directory / "catalog.sqlite3"
        for name in [name for name in os.environ if name.startswith("GATEWAY_")]:
            del os.environ[name]
        os.environ.update(
            {
                "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
                "GATEWAY_VERSIONS": _hello_registry(),
                **{f"GATEWAY_{name.upper()}": value for name, value in _GATEWAY_ROWS[row].items()},
            }
        )
        if not database.exists():
            import subprocess

            environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
            subprocess.run(
                [GATEWAY_COMMAND, "db", "upgrade"], check=True, capture_output=True, env=environment
            )
        return create_app()

    return build


async def _call(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    await app(scope, receive, send)


async def _lifespan_startup(app: ASGIApp) -> asyncio.Queue[Message]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    asyncio.get_running_loop().create_task(
        _call(app, {"type": "lifespan", "state": {}}, inbox.get, outbox.put)
    )
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    return inbox


async def _serve(app: ASGIApp, path: str, requests: int) -> float:
    """Seconds for ``requests`` requests, each a task in a context copy as Uvicorn runs them,
    ``_CONCURRENT`` at a time (what finishes in one pass of the loop under load)."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    for _ in range(requests // _CONCURRENT):
        tasks = [
            loop.create_task(_call(app, _scope(path), _receive, _send), context=contextvars.copy_context())
            for _ in range(_CONCURRENT)
        ]
        await asyncio.gather(*tasks)
    return time.perf_counter() - started


async def measure(row: str, requests: int, profile: bool, count: bool, directory: Path) -> str:
    builders: dict[str, Callable[[], ASGIApp]] = {"R2": create_hello_version, "R3": create_mounted_hello}
    app = builders[row]() if row in builders else _gateway(row, directory)()
    await _lifespan_startup(app)
    path = _PATHS.get(row, "/v3/hello")
    await _serve(app, path, 2000)  # Warm-up: label children, caches, the first second's text.
    if count:
        await _serve(app, path, requests)
        return f"{row}: served {requests}"
    if not profile:
        seconds = min([await _serve(app, path, requests) for _ in range(3)])
        return f"{row}: {seconds / requests * 1e6:.1f} us per request (best of 3 x {requests})"
    profiler = cProfile.Profile()
    profiler.enable()
    await _serve(app, path, requests)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("rows", nargs="*", default=["R2", "R3", "R4", "R4a", "R4b"])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--count", action="store_true", help="serve REQUESTS once after the warm-up (to run under valgrind)"
    )
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="gateway-inprocess-"))
    os.chdir(directory)
    logging.config.dictConfig(logging_config("info"))
    log_file = (directory / "gateway.log").open("w")
    for name in ("", "gateway.access", "gunicorn.error"):
        for handler in logging.getLogger(name).handlers:
            assert isinstance(handler, logging.StreamHandler)
            handler.setStream(log_file)
    for row in arguments.rows:
        print(
            asyncio.run(measure(row, arguments.requests, arguments.profile, arguments.count, directory)),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
