"""The catalog store: every read and write of items, each one transaction.

Writes never lose a concurrent update, across processes too: each runs in a write
transaction (``BEGIN IMMEDIATE`` on SQLite, see ``engine.py``) and bumps the revision in
the UPDATE statement itself (``revision = revision + 1``), never from a value read earlier.
A conditional write (If-Match) names the revisions it expects in the same statement
(``WHERE id = :id AND revision IN (...)``), so of two writers that read one revision only
one can win. Every call is bounded in time (see ``availability.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, insert, select, text, update

from services.catalog.availability import CatalogUnavailableError, bounded
from services.catalog.domain import Item, RevisionMismatchError
from services.catalog.engine import DEFAULT_TIMEOUT, create_catalog_engine, writer_of
from services.catalog.idempotency import claim_key, purge_expired_keys, record_response, release_claim
from services.catalog.money import Money
from services.catalog.schema import create_schema
from services.catalog.tables import item_tags, items

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Collection, Sequence

    from sqlalchemy import Row
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from services.catalog.domain import ItemChanges, NewItem
    from services.catalog.idempotency import IdempotentRequest, KeyClaim, PriorRequest, RecordedResponse

DEFAULT_IDEMPOTENCY_KEY_TTL = 24 * 60 * 60.0
# How often one store deletes expired idempotency keys, in seconds.
_PURGE_INTERVAL = 300.0
logger = logging.getLogger("services.catalog")


class CatalogStore:
    """Items and their tags over one async engine (SQLite through aiosqlite, or PostgreSQL)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        call_timeout: float = DEFAULT_TIMEOUT,
        idempotency_key_ttl: float = DEFAULT_IDEMPOTENCY_KEY_TTL,
    ) -> None:
        self._engine = engine
        self._writer = writer_of(engine)
        # PostgreSQL's default READ COMMITTED gives each statement its own snapshot; an
        # item and its tags must come from one, as they do in a SQLite transaction.
        is_postgresql = engine.dialect.name == "postgresql"
        self._reader = (
            engine.execution_options(isolation_level="REPEATABLE READ") if is_postgresql else engine
        )
        self._call_timeout = call_timeout
        self._idempotency_key_ttl = timedelta(seconds=idempotency_key_ttl)
        # A request holds a key through two transactions, each bounded by ``call_timeout``; an
        # unfinished claim older than this was abandoned (its process died) and may be retaken.
        self._claim_lease = timedelta(seconds=3 * call_timeout)
        # SQLite has one write lock per file, and its busy handler is not fair: under many
        # concurrent writers some sleep past the timeout while others keep winning. So each
        # process lets one writer at a time contend for it; the others queue here, in order.
        self._one_writer: AbstractAsyncContextManager[object] = (
            nullcontext() if is_postgresql else asyncio.Lock()
        )
        self._schema_ready = False
        self._schema_lock = asyncio.Lock()
        self._next_purge = 0.0

    @classmethod
    async def open(
        cls,
        database_url: str,
        *,
        busy_timeout: float,
        call_timeout: float = DEFAULT_TIMEOUT,
        idempotency_key_ttl: float = DEFAULT_IDEMPOTENCY_KEY_TTL,
    ) -> CatalogStore:
        """Connect to ``database_url`` and create the schema if it is missing.

        An unavailable database does not stop the start: the store comes up unready (its
        calls raise ``CatalogUnavailableError``) and creates the schema once it answers.
        """
        engine = create_catalog_engine(database_url, busy_timeout=busy_timeout, timeout=call_timeout)
        store = cls(engine, call_timeout=call_timeout, idempotency_key_ttl=idempotency_key_ttl)
        try:
            async with store._bounded():
                pass
        except CatalogUnavailableError as error:
            logger.warning("the catalog database is unavailable at start-up, will retry: %s", error)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        """Raise unless the database answers a query (and holds the schema)."""
        async with self._bounded(), self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def create_item(self, new_item: NewItem) -> Item:
        async with self._write() as connection:
            return await _insert_item(connection, new_item)

    async def create_item_once(
        self, new_item: NewItem, claim: KeyClaim, respond: Callable[[Item], RecordedResponse]
    ) -> RecordedResponse:
        """Create the item and record ``respond(item)`` under ``claim``, both or neither."""
        async with self._write() as connection:
            response = respond(await _insert_item(connection, new_item))
            await record_response(connection, claim, response)
        return response

    async def claim_idempotency_key(self, request: IdempotentRequest) -> KeyClaim | PriorRequest:
        now = _utc_now()
        async with self._write() as connection:
            outcome = await claim_key(
                connection, request, now=now, ttl=self._idempotency_key_ttl, lease=self._claim_lease
            )
        if time.monotonic() >= self._next_purge:
            self._next_purge = time.monotonic() + _PURGE_INTERVAL
            try:
                await self.purge_expired_idempotency_keys()
            except Exception:  # Housekeeping: the request it rides on must not fail for it.
                logger.warning("purging expired idempotency keys failed", exc_info=True)
        return outcome

    async def release_idempotency_key(self, claim: KeyClaim) -> None:
        async with self._write() as connection:
            await release_claim(connection, claim)

    async def purge_expired_idempotency_keys(self) -> int:
        """Delete the keys past their time to live; how many there were."""
        async with self._write() as connection:
            return await purge_expired_keys(connection, _utc_now())

    async def get_item(self, item_id: int) -> Item | None:
        async with self._bounded(), self._reader.connect() as connection:
            return await _select_item(connection, item_id)

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
        async with self._bounded(), self._reader.connect() as connection:
            rows = (await connection.execute(query)).all()
            tags = await _tags_by_item(connection, [row.id for row in rows])
        return [_item_from_row(row, tags.get(row.id, ())) for row in rows]

    async def update_item(
        self, item_id: int, changes: ItemChanges, *, expected_revisions: Collection[int] | None = None
    ) -> Item | None:
        """Apply ``changes``; None when the item does not exist. No changes: no new revision.

        With ``expected_revisions``, only if the item is at one of them; otherwise raise
        ``RevisionMismatchError``.
        """
        if not changes:
            item = await self.get_item(item_id)
            if (
                item is not None
                and expected_revisions is not None
                and item.revision not in expected_revisions
            ):
                raise RevisionMismatchError(item_id, item.revision)
            return item
        column_values: dict[str, Any] = {key: value for key, value in changes.items() if key != "tags"}
        new_tags = changes.get("tags")
        statement = (
            update(items)
            .where(items.c.id == item_id, *_revision_in(expected_revisions))
            .values(**column_values, revision=items.c.revision + 1, updated_at=_utc_now())
            .returning(*items.c)
        )
        async with self._write() as connection:
            row = (await connection.execute(statement)).one_or_none()
            if row is None:
                await _raise_if_exists(connection, item_id, expected_revisions)
                return None
            if new_tags is None:
                tags = (await _tags_by_item(connection, [item_id])).get(item_id, ())
            else:
                await connection.execute(delete(item_tags).where(item_tags.c.item_id == item_id))
                await _insert_tags(connection, item_id, new_tags)
                tags = new_tags
        return _item_from_row(row, tags)

    async def delete_item(self, item_id: int, *, expected_revisions: Collection[int] | None = None) -> bool:
        """Delete the item and its tags; False when it did not exist. ``expected_revisions``: as for updates."""
        statement = delete(items).where(items.c.id == item_id, *_revision_in(expected_revisions))
        async with self._write() as connection:
            if (await connection.execute(statement)).rowcount > 0:
                return True
            await _raise_if_exists(connection, item_id, expected_revisions)
        return False

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), bounded by the call timeout."""
        async with self._bounded(), self._one_writer, self._writer.begin() as connection:
            yield connection

    @asynccontextmanager
    async def _bounded(self) -> AsyncIterator[None]:
        async with bounded(self._call_timeout):
            if not self._schema_ready:
                async with self._schema_lock:
                    if not self._schema_ready:
                        await create_schema(self._engine)
                        self._schema_ready = True
            yield


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _revision_in(expected_revisions: Collection[int] | None) -> list[Any]:
    return [] if expected_revisions is None else [items.c.revision.in_(sorted(expected_revisions))]


async def _raise_if_exists(
    connection: AsyncConnection, item_id: int, expected_revisions: Collection[int] | None
) -> None:
    """After a conditional write matched no row: the item exists at another revision, or not at all."""
    if expected_revisions is None:
        return
    query = select(items.c.revision).where(items.c.id == item_id)
    current_revision = (await connection.execute(query)).scalar_one_or_none()
    if current_revision is not None:
        raise RevisionMismatchError(item_id, current_revision)


async def _insert_item(connection: AsyncConnection, new_item: NewItem) -> Item:
    now = _utc_now()
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


async def _select_item(connection: AsyncConnection, item_id: int) -> Item | None:
    # One transaction, so the row and its tags come from the same snapshot.
    row = (await connection.execute(select(items).where(items.c.id == item_id))).one_or_none()
    if row is None:
        return None
    tags = await _tags_by_item(connection, [item_id])
    return _item_from_row(row, tags.get(item_id, ()))


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
