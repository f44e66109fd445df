"""The catalog store: every read and write of items, each one transaction.

Writes never lose a concurrent update, across processes too: each runs in a write
transaction (``BEGIN IMMEDIATE`` on SQLite, see ``engine.py``) and bumps the revision in
the UPDATE statement itself (``revision = revision + 1``), never from a value read earlier.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, insert, select, text, update

from services.catalog.domain import Item
from services.catalog.engine import create_catalog_engine, writer_of
from services.catalog.money import Money
from services.catalog.schema import create_schema
from services.catalog.tables import item_tags, items

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Row
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from services.catalog.domain import ItemChanges, NewItem


class CatalogStore:
    """Items and their tags over one async engine (SQLite through aiosqlite, or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer_of(engine)

    @classmethod
    async def open(cls, database_url: str, *, busy_timeout: float) -> CatalogStore:
        """Connect to ``database_url`` and create the schema if it is missing."""
        engine = create_catalog_engine(database_url, busy_timeout=busy_timeout)
        try:
            await create_schema(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        """Raise unless the database answers a query."""
        async with self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def create_item(self, new_item: NewItem) -> Item:
        now = _utc_now()
        async with self._writer.begin() as connection:
            statement = (
                insert(items)
                .values(
                    name=new_item.name,
                    description=new_item.description,
                    price_cents=new_item.price.cents,
                    currency=new_item.price.currency,
                    created_at=now,
                    updated_at=now,
                    revision=1,
                )
                .returning(*items.c)
            )
            row = (await connection.execute(statement)).one()
            await _insert_tags(connection, row.id, new_item.tags)
        return _item_from_row(row, new_item.tags)

    async def get_item(self, item_id: int) -> Item | None:
        # One transaction, so the row and its tags come from the same snapshot.
        async with self._engine.connect() as connection:
            row = (await connection.execute(select(items).where(items.c.id == item_id))).one_or_none()
            if row is None:
                return None
            tags = await _tags_by_item(connection, [item_id])
        return _item_from_row(row, tags.get(item_id, ()))

    async def list_items(
        self, *, limit: int, skip: int = 0, after_id: int | None = None, tag: str | None = None
    ) -> list[Item]:
        """Items in id order: after ``after_id`` (keyset) or from ``skip`` (offset), tagged ``tag``."""
        query = select(items).order_by(items.c.id).limit(limit)
        if skip:
            query = query.offset(skip)
        if after_id is not None:
            query = query.where(items.c.id > after_id)
        if tag is not None:
            query = query.where(exists().where(item_tags.c.item_id == items.c.id, item_tags.c.tag == tag))
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
            tags = await _tags_by_item(connection, [row.id for row in rows])
        return [_item_from_row(row, tags.get(row.id, ())) for row in rows]

    async def update_item(self, item_id: int, changes: ItemChanges) -> Item | None:
        """Apply ``changes``; None when the item does not exist. No changes: no new revision."""
        if not changes:
            return await self.get_item(item_id)
        column_values: dict[str, Any] = {key: value for key, value in changes.items() if key != "tags"}
        new_tags = changes.get("tags")
        statement = (
            update(items)
            .where(items.c.id == item_id)
            .values(**column_values, revision=items.c.revision + 1, updated_at=_utc_now())
            .returning(*items.c)
        )
        async with self._writer.begin() as connection:
            row = (await connection.execute(statement)).one_or_none()
            if row is None:
                return None
            if new_tags is None:
                tags = (await _tags_by_item(connection, [item_id])).get(item_id, ())
            else:
                await connection.execute(delete(item_tags).where(item_tags.c.item_id == item_id))
                await _insert_tags(connection, item_id, new_tags)
                tags = new_tags
        return _item_from_row(row, tags)

    async def delete_item(self, item_id: int) -> bool:
        """Delete the item and its tags; False when it did not exist."""
        async with self._writer.begin() as connection:
            result = await connection.execute(delete(items).where(items.c.id == item_id))
        return result.rowcount > 0


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _insert_tags(connection: AsyncConnection, item_id: int, tags: Sequence[str]) -> None:
    if tags:
        rows = [{"item_id": item_id, "tag": tag, "position": position} for position, tag in enumerate(tags)]
        await connection.execute(insert(item_tags), rows)


async def _tags_by_item(connection: AsyncConnection, item_ids: list[int]) -> dict[int, tuple[str, ...]]:
    if not item_ids:
        return {}
    query = (
        select(item_tags.c.item_id, item_tags.c.tag)
        .where(item_tags.c.item_id.in_(item_ids))
        .order_by(item_tags.c.item_id, item_tags.c.position)
    )
    tags: dict[int, list[str]] = {}
    for item_id, tag in await connection.execute(query):
        tags.setdefault(item_id, []).append(tag)
    return {item_id: tuple(names) for item_id, names in tags.items()}


def _item_from_row(row: Row[Any], tags: Sequence[str]) -> Item:
    return Item(
        id=row.id,
        name=row.name,
        description=row.description,
        price=Money(row.price_cents, row.currency),
        tags=tuple(tags),
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
    )
