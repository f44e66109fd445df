from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from services.catalog import CatalogStore, Money, NewItem
from services.catalog.engine import create_catalog_engine
from services.catalog.tables import item_tags

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.anyio


async def test_opening_creates_the_directory_and_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "dir" / "catalog.sqlite3"

    store = await CatalogStore.open(f"sqlite+aiosqlite:///{database}", busy_timeout=5)
    try:
        item = await store.create_item(NewItem(name="Teapot", price=Money.of(Decimal("12.50"))))
        assert item.revision == 1
        assert item.created_at == item.updated_at
        assert item.created_at.utcoffset() is not None
    finally:
        await store.close()
    assert database.exists()


async def test_many_stores_open_the_same_new_file_at_once(database_url: str) -> None:
    # As worker processes do at start-up: each creates the schema if it is missing.
    stores = await asyncio.gather(*(CatalogStore.open(database_url, busy_timeout=5) for _ in range(8)))
    try:
        await asyncio.gather(*(store.ping() for store in stores))
        assert await stores[0].list_items(limit=10) == []
    finally:
        await asyncio.gather(*(store.close() for store in stores))


async def test_an_update_bumps_the_revision_and_an_empty_one_does_not(database_url: str) -> None:
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        created = await store.create_item(NewItem(name="Teapot", price=Money(100), tags=("a", "b")))

        renamed = await store.update_item(created.id, {"name": "Kettle"})
        unchanged = await store.update_item(created.id, {})

        assert renamed is not None
        assert (renamed.revision, renamed.tags, renamed.price) == (2, ("a", "b"), Money(100))
        assert renamed.updated_at > created.updated_at
        assert unchanged == renamed
        assert await store.update_item(created.id + 1, {"name": "Nothing"}) is None
    finally:
        await store.close()


async def test_deleting_an_item_deletes_its_tags(database_url: str) -> None:
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        item = await store.create_item(NewItem(name="Teapot", price=Money(100), tags=("kitchen",)))

        assert await store.delete_item(item.id)
        assert not await store.delete_item(item.id)

        engine = create_catalog_engine(database_url, busy_timeout=5)
        async with engine.connect() as connection:
            remaining = (await connection.execute(select(func.count()).select_from(item_tags))).scalar_one()
        await engine.dispose()
        assert remaining == 0
    finally:
        await store.close()


async def test_concurrent_writers_in_two_stores_lose_no_update(database_url: str) -> None:
    first, second = [await CatalogStore.open(database_url, busy_timeout=5) for _ in range(2)]
    try:
        item = await first.create_item(NewItem(name="Teapot", price=Money(100)))

        # Tag changes take several statements, so they run in BEGIN IMMEDIATE transactions.
        await asyncio.gather(
            *(
                (first if number % 2 else second).update_item(item.id, {"tags": (f"tag-{number}",)})
                for number in range(60)
            )
        )

        updated = await second.get_item(item.id)
        assert updated is not None
        assert updated.revision == 61
        assert len(updated.tags) == 1
    finally:
        await first.close()
        await second.close()
