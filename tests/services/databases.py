"""The databases the catalog suite runs on: SQLite files, and schemas of a real PostgreSQL.

Every PostgreSQL test gets a schema of its own (``catalog_test_<random>``), selected by the
URL's ``search_path`` parameter and dropped afterwards, so runs never see each other's rows.
The server is asked for once per session; without one, the PostgreSQL variants skip.
Workers never create tables, so a test's database is migrated first, as a deploy would.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.catalog.migrate import UpgradeReport, upgrade_schema

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

    from sqlalchemy.ext.asyncio import AsyncEngine

# Override to test against another server, e.g. in CI.
POSTGRESQL_URL_VARIABLE = "CATALOG_TEST_POSTGRESQL_URL"
DEFAULT_POSTGRESQL_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT_SECONDS = 2.0
SCHEMA_PREFIX = "catalog_test_"

_Result = TypeVar("_Result")


def postgresql_url() -> str:
    return os.environ.get(POSTGRESQL_URL_VARIABLE, DEFAULT_POSTGRESQL_URL)


def run_outside_the_event_loop(make_coroutine: Callable[[], Coroutine[Any, Any, _Result]]) -> _Result:
    """Run a coroutine to completion from synchronous code, even while a test's loop runs."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(lambda: asyncio.run(make_coroutine())).result()


async def _execute(url: str, statement: str) -> None:
    """Run one statement on a connection of its own (no pool is left behind)."""
    engine = create_async_engine(
        url,
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def postgresql_unavailable_reason(url: str) -> str | None:
    """Why ``url`` cannot serve the tests, or None when it can."""
    try:
        run_outside_the_event_loop(lambda: _execute(url, "SELECT 1"))
    except (OSError, SQLAlchemyError) as error:
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


def migrate(url: str) -> UpgradeReport:
    """``gateway db upgrade`` on ``url``, from synchronous code."""
    return run_outside_the_event_loop(lambda: upgrade_schema(url, statement_timeout=30))


def create_test_schema(url: str) -> str:
    """A new empty schema; the URL that selects it."""
    schema = f"{SCHEMA_PREFIX}{secrets.token_hex(6)}"
    run_outside_the_event_loop(lambda: _execute(url, f'CREATE SCHEMA "{schema}"'))
    return make_url(url).update_query_dict({"search_path": schema}).render_as_string(hide_password=False)


def drop_test_schema(schema_url: str) -> None:
    url = make_url(schema_url)
    schema = url.query["search_path"]
    assert isinstance(schema, str)
    assert schema.startswith(SCHEMA_PREFIX)
    plain_url = url.difference_update_query(["search_path"]).render_as_string(hide_password=False)
    run_outside_the_event_loop(lambda: _execute(plain_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class TcpProxy:
    """Forwards a local port to a database; ``stop`` refuses new connections and cuts live ones.

    What a database restart or a network partition looks like to the store, without stopping
    the shared server: ``start`` again (same port) and the database is back.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._writers.clear()

    async def _forward(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(client_writer)
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.transport.abort()
            return
        self._writers.add(server_writer)
        pipes = [
            asyncio.create_task(_pipe(client_reader, server_writer)),
            asyncio.create_task(_pipe(server_reader, client_writer)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)
        self._pipes.difference_update(pipes)
        for writer in (client_writer, server_writer):
            writer.transport.abort()
            self._writers.discard(writer)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.transport.abort()


class BackgroundTcpProxy:
    """A ``TcpProxy`` on an event loop of its own thread, for synchronous tests of real servers."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._proxy = TcpProxy(target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._proxy.port

    def start(self) -> None:
        asyncio.run_coroutine_threadsafe(self._proxy.start(), self._loop).result(CONNECT_TIMEOUT_SECONDS)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._proxy.stop(), self._loop).result(CONNECT_TIMEOUT_SECONDS)

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CONNECT_TIMEOUT_SECONDS)
        self._loop.close()


async def wait_until_a_statement_waits_on_a_lock(engine: AsyncEngine) -> None:
    """Until a session of ``engine``'s PostgreSQL database waits on a lock to insert an item."""
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        # An insert of an item waiting: not, say, a migration waiting on its advisory lock.
        " AND query LIKE 'INSERT INTO items %' AND pid <> pg_backend_pid()"
    )
    for _ in range(200):
        async with engine.connect() as connection:
            if (await connection.execute(waiting)).scalar_one():
                return
        await asyncio.sleep(0.02)
    async with engine.connect() as connection:
        sessions = (
            await connection.execute(
                text(
                    "SELECT state, wait_event_type, wait_event, left(query, 80) FROM pg_stat_activity"
                    " WHERE datname = current_database()"
                )
            )
        ).all()
    raise AssertionError(f"nothing came to wait on the row lock within 4 s: {sessions}")


def item_row(**values: object) -> dict[str, object]:
    """A row of ``items`` with ``values``, the rest filled in, to insert beside the store."""
    now = datetime.now(UTC)
    return {
        "description": None,
        "price_cents": 100,
        "currency": "EUR",
        "created_at": now,
        "updated_at": now,
        "revision": 1,
        **values,
    }
