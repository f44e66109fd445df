from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, insert, select

from services.catalog import CatalogStore, CatalogUnavailableError, Money, NewItem, RevisionMismatchError
from services.catalog.database import CompiledStatement, ConstraintViolationError, Mode
from services.catalog.domain import ImportConflictError
from services.catalog.engine import create_catalog_engine, writer_of
from services.catalog.tables import item_tags, items
from tests.services.databases import item_row, migrate, wait_until_a_statement_waits_on_a_lock

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def record_statements(store: CatalogStore) -> list[tuple[object, str]]:
    """(connection, SQL) of every statement the store runs from now on."""
    # Only these tests look inside the store: through the one place it meets the driver.
    database = store._database
    run = database.run
    statements: list[tuple[object, str]] = []

    async def recorded(
        connection: Any, statement: CompiledStatement, arguments: Sequence[Any], mode: Mode
    ) -> Any:
        statements.append((connection, statement.sql))
        return await run(connection, statement, arguments, mode)

    database.run = recorded  # type: ignore[method-assign]
    return statements


pytestmark = pytest.mark.anyio


async def test_a_migrated_database_in_a_new_directory_serves(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "dir" / "catalog.sqlite3"
    url = f"sqlite+aiosqlite:///{database}"
    migrate(url)  # Creates the directory, as the store's engine does.

    store = await CatalogStore.open(url, busy_timeout=5)
    try:
        item = await store.create_item(NewItem(name="Teapot", price=Money.of(Decimal("12.50"))))
        assert item.revision == 1
        assert item.created_at == item.updated_at
        assert item.created_at.utcoffset() is not None
    finally:
        await store.close()
    assert database.exists()


async def test_many_stores_open_the_same_database_at_once(database_url: str) -> None:
    # As worker processes do at start-up: each reads the schema's revision.
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


async def test_a_conditional_update_needs_a_current_revision(database_url: str) -> None:
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        item = await store.create_item(NewItem(name="Teapot", price=Money(100), tags=("a",)))

        with pytest.raises(RevisionMismatchError) as stale:
            await store.update_item(item.id, {"name": "Kettle", "tags": ("b",)}, expected_revisions={2, 3})
        updated = await store.update_item(item.id, {"name": "Kettle"}, expected_revisions={1, 5})
        with pytest.raises(RevisionMismatchError):
            await store.update_item(item.id, {}, expected_revisions={1})

        assert (stale.value.item_id, stale.value.current_revision) == (item.id, 1)
        assert updated is not None
        assert (updated.name, updated.revision, updated.tags) == ("Kettle", 2, ("a",))
        assert await store.update_item(item.id, {}, expected_revisions={2}) == updated
        # A missing item is missing, whatever was expected of it.
        assert await store.update_item(item.id + 1, {"name": "x"}, expected_revisions={1}) is None
        assert await store.update_item(item.id + 1, {}, expected_revisions={1}) is None
    finally:
        await store.close()


async def test_a_conditional_delete_needs_a_current_revision(database_url: str) -> None:
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        item = await store.create_item(NewItem(name="Teapot", price=Money(100)))

        with pytest.raises(RevisionMismatchError):
            await store.delete_item(item.id, expected_revisions=frozenset())
        assert await store.get_item(item.id) is not None
        assert await store.delete_item(item.id, expected_revisions={1})
        assert not await store.delete_item(item.id, expected_revisions={1})
    finally:
        await store.close()


async def test_of_writers_expecting_one_revision_exactly_one_wins(database_url: str) -> None:
    first, second = [await CatalogStore.open(database_url, busy_timeout=5) for _ in range(2)]
    try:
        item = await first.create_item(NewItem(name="Teapot", price=Money(100)))

        async def rename(number: int) -> str:
            store = first if number % 2 else second
            try:
                await store.update_item(item.id, {"name": f"name {number}"}, expected_revisions={1})
            except RevisionMismatchError:
                return "stale"
            return f"name {number}"

        outcomes = await asyncio.gather(*(rename(number) for number in range(40)))

        winners = [outcome for outcome in outcomes if outcome != "stale"]
        assert len(winners) == 1
        final = await second.get_item(item.id)
        assert final is not None
        assert (final.name, final.revision) == (winners[0], 2)
    finally:
        await first.close()
        await second.close()


async def test_timestamps_are_utc_with_microseconds_on_every_store(database_url: str) -> None:
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        created = await store.create_item(NewItem(name="Teapot", price=Money(100)))
        read = await store.get_item(created.id)
    finally:
        await store.close()
    assert read == created
    assert created.created_at.tzinfo is UTC
    assert abs(datetime.now(UTC) - created.created_at) < timedelta(minutes=1)


async def test_ids_keep_growing_after_the_newest_item_is_deleted(database_url: str) -> None:
    # Keyset pagination relies on it: SQLite's AUTOINCREMENT, PostgreSQL's sequence.
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        first = await store.create_item(NewItem(name="first", price=Money(1)))
        assert await store.delete_item(first.id)
        second = await store.create_item(NewItem(name="second", price=Money(1)))
    finally:
        await store.close()
    assert second.id > first.id


async def test_a_store_opens_without_its_database_and_recovers_when_it_appears(tmp_path: Path) -> None:
    # A directory where the database file should be: SQLite cannot open it.
    database = tmp_path / "catalog.sqlite3"
    database.mkdir()
    store = await CatalogStore.open(f"sqlite+aiosqlite:///{database}", busy_timeout=0.2, call_timeout=1)
    try:
        with pytest.raises(CatalogUnavailableError, match="unable to open"):
            await store.ping()
        with pytest.raises(CatalogUnavailableError):
            await store.list_items(limit=1)

        database.rmdir()
        migrate(f"sqlite+aiosqlite:///{database}")

        await store.ping()  # No restart: the next call finds the database, migrated.
        assert await store.list_items(limit=1) == []
    finally:
        await store.close()


async def test_a_bug_is_not_reported_as_unavailability(database_url: str) -> None:
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        with pytest.raises(ConstraintViolationError):
            await store.create_item(NewItem(name="Teapot", price=Money(-1)))
    finally:
        await store.close()


async def test_a_failed_write_changes_nothing(database_url: str) -> None:
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        item = await store.create_item(NewItem(name="Teapot", price=Money(100), tags=("a", "b")))

        # The name is updated, then the second "c" breaks the tags' key: the whole write goes.
        with pytest.raises(ConstraintViolationError):
            await store.update_item(item.id, {"name": "Kettle", "tags": ("c", "c")})

        assert await store.get_item(item.id) == item
    finally:
        await store.close()


async def test_reads_see_an_item_and_its_tags_from_one_snapshot(database_url: str) -> None:
    writer, reader = [await CatalogStore.open(database_url, busy_timeout=5) for _ in range(2)]
    try:
        item = await writer.create_item(NewItem(name="0", price=Money(100), tags=("zeta 0", "alpha 0")))
        untagged = await writer.create_item(NewItem(name="untagged", price=Money(100)))
        writes_done = asyncio.Event()

        async def write() -> None:
            # Each update changes the name and replaces both tags, in one transaction.
            for number in range(1, 41):
                await writer.update_item(
                    item.id, {"name": str(number), "tags": (f"zeta {number}", f"alpha {number}")}
                )
            writes_done.set()

        async def read() -> list[tuple[str, tuple[str, ...]]]:
            seen = []
            while not writes_done.is_set():
                read_item = await reader.get_item(item.id)
                page = await reader.list_items(limit=10)
                assert read_item is not None
                assert page[1] == untagged
                seen += [(read_item.name, read_item.tags), (page[0].name, page[0].tags)]
            return seen

        readers = [asyncio.create_task(read()) for _ in range(4)]
        await write()
        seen = [observation for reader_task in readers for observation in await reader_task]

        # Tags in the order given, never a mix of two revisions.
        assert all(tags == (f"zeta {name}", f"alpha {name}") for name, tags in seen)
    finally:
        await writer.close()
        await reader.close()


async def test_a_read_is_one_statement(database_url: str) -> None:
    # One statement sees one snapshot without a transaction: no BEGIN, no second query.
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        item = await store.create_item(NewItem(name="Teapot", price=Money(100), tags=("kitchen",)))
        statements = record_statements(store)
        await store.get_item(item.id)
        await store.list_items(limit=10, tag="kitchen")
        await store.list_items(limit=10, skip=1, after_id=item.id)
    finally:
        await store.close()
    assert [sql.split()[0] for _connection, sql in statements] == ["SELECT"] * 3


async def test_tags_read_back_exactly_and_in_their_order(database_url: str) -> None:
    # Tags come aggregated as JSON: whatever needs escaping there must survive the trip.
    tags = ("zeta", 'a "quoted" \\ tag', "ünïcødé ✓", "tab\tand\nnewline", "alpha", "[1, 2]")
    store = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        item = await store.create_item(NewItem(name="Teapot", price=Money(100), tags=tags))
        read = await store.get_item(item.id)
        (listed,) = await store.list_items(limit=10, tag="[1, 2]")
    finally:
        await store.close()
    assert read is not None
    assert read.tags == listed.tags == tags


async def test_calls_take_connections_in_turn_never_more_than_the_pool_allows(database_url: str) -> None:
    # The store holds to pool size + overflow (SQLite needs two: a reader and the writer),
    # and the calls past it wait their turn rather than fail.
    store = await CatalogStore.open(database_url, busy_timeout=5, pool_size=2, max_overflow=1)
    try:
        created = await store.create_item(NewItem(name="Teapot", price=Money(100)))
        database = store._database
        run = database.run
        running = peak = 0

        async def counted(
            connection: Any, statement: CompiledStatement, arguments: Sequence[Any], mode: Mode
        ) -> Any:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            try:
                return await run(connection, statement, arguments, mode)
            finally:
                running -= 1

        database.run = counted  # type: ignore[method-assign]
        calls = [
            *(store.get_item(created.id) for _ in range(12)),
            *(store.list_items(limit=5) for _ in range(12)),
            *(store.update_item(created.id, {"description": f"take {n}"}) for n in range(6)),
        ]
        results = await asyncio.gather(*calls)
        assert all(result is not None for result in results)
        # Statements in flight at once (on PostgreSQL each on a connection of its own).
        assert peak <= 3
        if database.dialect_name == "postgresql":
            assert peak == 3
    finally:
        await store.close()


# An import and a POST on PostgreSQL can meet on one id: the POST drew it from the sequence
# before the import moved the sequence past its batch. A second connection, in a transaction
# (the engine's own connections autocommit), plays the side that commits first; the store's
# side waits on the row's lock until then.


async def test_a_post_that_drew_an_id_an_import_took_is_created_under_the_next_one(
    postgresql_schema_url: str,
) -> None:
    store = await CatalogStore.open(postgresql_schema_url, busy_timeout=5)
    other = create_catalog_engine(postgresql_schema_url, busy_timeout=5)
    try:
        async with writer_of(other).connect() as importer:
            transaction = await importer.begin()
            # The import's insert, under the id the sequence will hand out next.
            await importer.execute(insert(items).values(item_row(id=1, name="Imported")))
            creating = asyncio.ensure_future(store.create_item(NewItem(name="Posted", price=Money(200))))
            await wait_until_a_statement_waits_on_a_lock(other)
            await transaction.commit()
        created = await creating
        assert (created.id, created.name) == (2, "Posted")
        imported = await store.get_item(1)
        assert imported is not None
        assert imported.name == "Imported"
    finally:
        await other.dispose()
        await store.close()


async def test_an_import_whose_id_a_post_took_meanwhile_is_a_conflict_that_changes_nothing(
    postgresql_schema_url: str,
) -> None:
    store = await CatalogStore.open(postgresql_schema_url, busy_timeout=5)
    other = create_catalog_engine(postgresql_schema_url, busy_timeout=5)
    try:
        async with writer_of(other).connect() as poster:
            transaction = await poster.begin()
            # The POST's insert: it draws id 1 from the sequence.
            drawn = (
                await poster.execute(insert(items).values(item_row(name="Posted")).returning(items.c.id))
            ).scalar_one()
            importing = asyncio.ensure_future(
                store.import_items([(drawn, NewItem(name="Imported", price=Money(300)))])
            )
            await wait_until_a_statement_waits_on_a_lock(other)
            await transaction.commit()
        with pytest.raises(ImportConflictError):
            await importing
        posted = await store.get_item(drawn)
        assert posted is not None
        assert (posted.name, posted.revision) == ("Posted", 1)
    finally:
        await other.dispose()
        await store.close()


async def test_pings_made_at_once_share_one_query(database_url: str) -> None:
    # As the gateway's readiness probe makes them: one check per app mounted over this store.
    store = await CatalogStore.open(database_url, busy_timeout=5)
    await store.ping()  # The schema is checked once; from here on a ping is its SELECT 1.
    statements = record_statements(store)
    try:
        await asyncio.gather(store.ping(), store.ping(), store.ping())
        await store.ping()
    finally:
        await store.close()
    assert [sql for _connection, sql in statements] == ["SELECT 1", "SELECT 1"]
