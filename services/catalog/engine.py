"""The catalog's SQLAlchemy engine, for migrations and ``gateway db``, with SQLite set up for
several worker processes at once. The store itself runs its statements on the drivers
directly (``database.py``), with the same settings and the same transaction rules.

Transactions are only for writes: a connection runs each statement on its own (autocommit)
unless it comes from ``writer_of(engine)``.

Python's sqlite3 module begins transactions lazily (on the first INSERT, UPDATE or DELETE),
so a read-modify-write runs its read outside any transaction and concurrent updates are
silently lost (https://github.com/python/cpython/issues/54133). SQLAlchemy's documented
recipe takes transaction control over instead:
https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
Write transactions begin with ``BEGIN IMMEDIATE``, which takes the write lock up front and
waits ``busy_timeout`` for it, rather than failing with "database is locked" when a read
transaction later tries to upgrade. On PostgreSQL, write transactions are READ COMMITTED.

On PostgreSQL through asyncpg, ``timeout`` bounds connecting and every statement, and a
``search_path`` query parameter selects the schema (asyncpg has no URL form for it):
``postgresql+asyncpg://catalog@db/catalog?search_path=catalog``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.api import use_write_ahead_log
from services.catalog.database import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    DEFAULT_TIMEOUT,
    SEARCH_PATH_PARAMETER,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState

# Execution option that marks a connection's transactions as writes.
WRITE_TRANSACTION_OPTION = "catalog_write_transaction"
# The isolation of PostgreSQL's write transactions (the server's default).
POSTGRESQL_WRITE_ISOLATION = "READ COMMITTED"


def create_catalog_engine(
    database_url: str,
    *,
    busy_timeout: float,
    timeout: float = DEFAULT_TIMEOUT,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
) -> AsyncEngine:
    """An engine for ``database_url``.

    ``busy_timeout`` is how long a SQLite writer waits for the lock (at most ``timeout``);
    ``timeout`` how long a connection may take to open, a pooled one to free up, and a
    statement to run, in seconds. ``pool_size`` and ``max_overflow`` size a server
    database's pool (SQLite keeps SQLAlchemy's defaults: its connections are files).
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {}
        if url.get_driver_name() == "asyncpg":
            connect_args = {"timeout": timeout, "command_timeout": timeout}
            search_path = url.query.get(SEARCH_PATH_PARAMETER)
            if search_path is not None:
                connect_args["server_settings"] = {"search_path": str(search_path)}
                url = url.difference_update_query([SEARCH_PATH_PARAMETER])
        # pool_pre_ping: a connection the server dropped (a restart, a failover) is replaced
        # before use, so the store recovers by itself when the database comes back. In
        # autocommit the ping is one round trip; in a transaction, asyncpg's ping takes three
        # (BEGIN, the ping, ROLLBACK) on every checkout.
        return create_async_engine(
            url,
            isolation_level="AUTOCOMMIT",
            pool_pre_ping=True,
            pool_timeout=timeout,
            pool_size=pool_size,
            max_overflow=max_overflow,
            connect_args=connect_args,
        )
    _create_parent_directory(url)
    # pool_reset_on_return=None: the pool would roll back every returned connection, a hop to
    # aiosqlite's thread even after a commit; ``reset_connection`` rolls back only what is open.
    engine = create_async_engine(url, pool_reset_on_return=None)
    # aiosqlite runs each call in a thread that cannot be interrupted, so the store's own
    # bound on a call takes effect only once the call returns: a lock wait longer than
    # ``timeout`` would hold the request that long anyway.
    busy_timeout_ms = round(min(busy_timeout, timeout) * 1000)
    _take_over_sqlite_transactions(engine.sync_engine, busy_timeout_ms=busy_timeout_ms)
    return engine


def writer_of(engine: AsyncEngine) -> AsyncEngine:
    """A view of ``engine`` (same pool) whose connections run transactions: on SQLite they
    take the write lock when they begin (``BEGIN IMMEDIATE``), on PostgreSQL they are READ
    COMMITTED; the engine's own connections run each statement on its own."""
    if engine.dialect.name == "postgresql":
        return engine.execution_options(
            isolation_level=POSTGRESQL_WRITE_ISOLATION, **{WRITE_TRANSACTION_OPTION: True}
        )
    return engine.execution_options(**{WRITE_TRANSACTION_OPTION: True})


def _create_parent_directory(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).parent.mkdir(parents=True, exist_ok=True)


def _take_over_sqlite_transactions(engine: Engine, *, busy_timeout_ms: int) -> None:
    def configure_connection(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
        # None: the driver never emits BEGIN itself; ``begin_transaction`` does.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
            use_write_ahead_log(cursor, timeout=busy_timeout_ms / 1000)
            # Safe in WAL mode: a power loss may drop the last commits but never corrupts.
            cursor.execute("PRAGMA synchronous = NORMAL")
            # Off by default in SQLite; item_tags relies on ON DELETE CASCADE.
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    def begin_transaction(connection: Connection) -> None:
        # Without BEGIN, SQLite runs each statement in a transaction of its own: all a read
        # needs, since each is one statement.
        if connection.get_execution_options().get(WRITE_TRANSACTION_OPTION, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    def reset_connection(
        dbapi_connection: Any, connection_record: ConnectionPoolEntry, reset_state: PoolResetState
    ) -> None:
        # What the pool's reset-on-return does, when there is something to undo: a connection
        # whose transaction its Connection could not end (the rollback failed or was
        # cancelled) must not go back to the pool holding the write lock. asyncio_safe is
        # False only while the garbage collector discards the connection, which cannot await.
        if reset_state.asyncio_safe and not reset_state.transaction_was_reset:
            sqlite_connection = connection_record.driver_connection  # aiosqlite's, read without a hop
            if sqlite_connection is not None and sqlite_connection.in_transaction:
                dbapi_connection.rollback()

    event.listen(engine, "connect", configure_connection)
    event.listen(engine, "begin", begin_transaction)
    event.listen(engine, "reset", reset_connection)
