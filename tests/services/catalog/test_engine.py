from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from services.catalog.engine import create_catalog_engine, writer_of

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


async def test_write_transactions_begin_immediate_and_reads_deferred(sqlite_url: str) -> None:
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
    finally:
        await engine.dispose()

    assert [statement for statement in statements if not statement.startswith("PRAGMA")] == [
        "BEGIN IMMEDIATE",
        "SELECT 1",
        "BEGIN",
        "SELECT 2",
    ]


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


def test_other_backends_keep_their_driver_transactions() -> None:
    engine = create_catalog_engine("postgresql+asyncpg://catalog@db.invalid/catalog", busy_timeout=5)

    assert not engine.sync_engine.dispatch.begin


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
