"""Create the catalog's tables if they are missing, safely from many processes at once.

``MetaData.create_all`` checks and then creates, so workers starting together race and
one fails with "table already exists". ``IF NOT EXISTS`` statements inside one write
transaction do not. This stands in for a migration tool until the schema first changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.schema import CreateIndex, CreateTable

from services.catalog.engine import writer_of
from services.catalog.tables import metadata

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# PostgreSQL's CREATE TABLE IF NOT EXISTS can still collide on its catalog's unique index
# when two sessions run it at once; an advisory lock serialises them. Any fixed key will do.
_POSTGRESQL_SCHEMA_LOCK_KEY = 0x0CA7A106


async def create_schema(engine: AsyncEngine) -> None:
    async with writer_of(engine).begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRESQL_SCHEMA_LOCK_KEY}
            )
        for table in metadata.sorted_tables:
            await connection.execute(CreateTable(table, if_not_exists=True))
            for index in sorted(table.indexes, key=lambda index: str(index.name)):
                await connection.execute(CreateIndex(index, if_not_exists=True))
