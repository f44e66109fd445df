"""The catalog's async engine, with SQLite set up for several worker processes at once.

Python's sqlite3 module begins transactions lazily (on the first INSERT, UPDATE or DELETE),
so a read-modify-write runs its read outside any transaction and concurrent updates are
silently lost (https://github.com/python/cpython/issues/54133). SQLAlchemy's documented
recipe takes transaction control over instead:
https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
Write transactions begin with ``BEGIN IMMEDIATE``, which takes the write lock up front and
waits ``busy_timeout`` for it, rather than failing with "database is locked" when a read
transaction later tries to upgrade. Other backends keep their driver's behaviour.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine
    from sqlalchemy.pool import ConnectionPoolEntry

# Execution option that marks a connection's transactions as writes.
WRITE_TRANSACTION_OPTION = "catalog_write_transaction"


def create_catalog_engine(database_url: str, *, busy_timeout: float) -> AsyncEngine:
    """An engine for ``database_url``; ``busy_timeout`` is how long a SQLite writer waits, in seconds."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True)
    _create_parent_directory(url)
    engine = create_async_engine(url)
    _take_over_sqlite_transactions(engine.sync_engine, busy_timeout_ms=round(busy_timeout * 1000))
    return engine


def writer_of(engine: AsyncEngine) -> AsyncEngine:
    """A view of ``engine`` (same pool) whose transactions take the write lock when they begin."""
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
            # First, so that switching to WAL while another process holds a lock waits for it.
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
            # WAL lets readers proceed while one writer writes; it persists in the file.
            cursor.execute("PRAGMA journal_mode = WAL")
            # Safe in WAL mode: a power loss may drop the last commits but never corrupts.
            cursor.execute("PRAGMA synchronous = NORMAL")
            # Off by default in SQLite; item_tags relies on ON DELETE CASCADE.
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    def begin_transaction(connection: Connection) -> None:
        is_write = connection.get_execution_options().get(WRITE_TRANSACTION_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if is_write else "BEGIN")

    event.listen(engine, "connect", configure_connection)
    event.listen(engine, "begin", begin_transaction)
