from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from services import v2
from services.catalog import store_of
from services.catalog.engine import create_catalog_engine, writer_of
from services.catalog.postgresql_database import PostgresqlDatabase
from services.catalog.settings import CatalogSettings
from tests.services.utils import serve

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.anyio


async def test_every_sqlite_connection_is_configured(sqlite_url: str) -> None:
    engine = create_catalog_engine(sqlite_url, busy_timeout=2.5)
    try:
        async with engine.connect() as connection:
            settings = {
                pragma: (await connection.execute(text(f"PRAGMA {pragma}"))).scalar_one()
                for pragma in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
            }
    finally:
        await engine.dispose()
    # synchronous: 1 is NORMAL.
    assert settings == {"journal_mode": "wal", "busy_timeout": 2500, "synchronous": 1, "foreign_keys": 1}


async def test_write_transactions_begin_immediate_and_other_statements_run_on_their_own(
    sqlite_url: str,
) -> None:
    engine = create_catalog_engine(sqlite_url, busy_timeout=5)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with writer_of(engine).begin() as connection:
            await connection.execute(text("SELECT 1"))
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 2"))
            raw = await connection.get_raw_connection()
            in_transaction = raw.driver_connection.in_transaction  # type: ignore[union-attr]
    finally:
        await engine.dispose()

    assert [statement for statement in statements if not statement.startswith("PRAGMA")] == [
        "BEGIN IMMEDIATE",
        "SELECT 1",
        "SELECT 2",
    ]
    assert not in_transaction


async def test_a_connection_never_returns_to_the_pool_inside_a_transaction(sqlite_url: str) -> None:
    # Its Connection ends what SQLAlchemy began; the pool ends the rest (here a transaction
    # begun behind SQLAlchemy's back, as one whose rollback failed would be left).
    engine = create_catalog_engine(sqlite_url, busy_timeout=5)
    other = create_catalog_engine(sqlite_url, busy_timeout=0.2)
    try:
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
        # The write lock is free again: another engine takes it without waiting.
        async with writer_of(other).begin() as connection:
            await connection.execute(text("SELECT 1"))
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            assert not raw.driver_connection.in_transaction  # type: ignore[union-attr]
    finally:
        await engine.dispose()
        await other.dispose()


async def _increment(engine: AsyncEngine) -> None:
    async with writer_of(engine).begin() as connection:
        value = (await connection.execute(text("SELECT value FROM counter"))).scalar_one()
        await asyncio.sleep(0)  # Let every other writer read the same value, if it could.
        await connection.execute(text("UPDATE counter SET value = :value"), {"value": value + 1})


async def test_read_modify_write_in_a_write_transaction_loses_nothing(sqlite_url: str) -> None:
    # What Python's default sqlite3 transactions get wrong: the read runs outside any
    # transaction, so concurrent increments overwrite each other.
    engines = [create_catalog_engine(sqlite_url, busy_timeout=10) for _ in range(2)]
    try:
        async with writer_of(engines[0]).begin() as connection:
            await connection.execute(text("CREATE TABLE counter (value INTEGER NOT NULL)"))
            await connection.execute(text("INSERT INTO counter VALUES (0)"))

        await asyncio.gather(*(_increment(engines[number % 2]) for number in range(40)))

        async with engines[1].connect() as connection:
            assert (await connection.execute(text("SELECT value FROM counter"))).scalar_one() == 40
    finally:
        for engine in engines:
            await engine.dispose()


def test_postgresql_begins_its_transactions_through_the_driver() -> None:
    engine = create_catalog_engine("postgresql+asyncpg://catalog@db.invalid/catalog", busy_timeout=5)

    assert not engine.sync_engine.dispatch.begin


async def test_postgresql_writes_run_in_transactions_and_other_statements_on_their_own(
    postgresql_schema_url: str,
) -> None:
    engine = create_catalog_engine(postgresql_schema_url, busy_timeout=5)
    transaction_id = text("SELECT txid_current()")  # Assigns one if the transaction has none yet.
    try:
        async with writer_of(engine).begin() as connection:
            isolation = (await connection.execute(text("SHOW transaction_isolation"))).scalar_one()
            write_ids = {(await connection.execute(transaction_id)).scalar_one() for _ in range(2)}
        async with engine.connect() as connection:
            read_ids = {(await connection.execute(transaction_id)).scalar_one() for _ in range(2)}
    finally:
        await engine.dispose()
    assert isolation == "read committed"
    assert len(write_ids) == 1
    assert len(read_ids) == 2


async def test_postgresql_connections_use_the_urls_search_path_and_timeouts(
    postgresql_schema_url: str,
) -> None:
    engine = create_catalog_engine(postgresql_schema_url, busy_timeout=5, timeout=1.5)
    try:
        async with engine.connect() as connection:
            search_path = (await connection.execute(text("SHOW search_path"))).scalar_one()
            # asyncpg enforces command_timeout on the client: a statement that outlasts it is cut off.
            with pytest.raises(TimeoutError):
                await connection.execute(text("SELECT pg_sleep(3)"))
    finally:
        await engine.dispose()
    assert search_path == make_url(postgresql_schema_url).query["search_path"]


async def test_a_postgresql_pool_holds_at_most_its_size_plus_overflow(postgresql_schema_url: str) -> None:
    engine = create_catalog_engine(
        postgresql_schema_url, busy_timeout=5, timeout=0.5, pool_size=1, max_overflow=1
    )
    try:
        async with engine.connect() as first, engine.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            # Both connections are out: a third waits for one, up to the timeout.
            with pytest.raises(PoolTimeoutError):
                async with engine.connect():
                    pass  # pragma: no cover - no connection is free
    finally:
        await engine.dispose()


async def test_the_settings_size_each_workers_pool(postgresql_schema_url: str) -> None:
    settings = CatalogSettings(
        _env_file=None, database_url=postgresql_schema_url, database_pool_size=3, database_max_overflow=2
    )
    app = v2.create_app(settings)
    async with serve(app):
        # The pool belongs to the store's database; only this test looks inside.
        database = store_of(app)._database
        assert isinstance(database, PostgresqlDatabase)
        assert database.max_connections == 3 + 2
