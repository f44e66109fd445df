"""The catalog store: every read and write of items, each one statement or one transaction.

A read is one statement: an item comes with its tags (aggregated by a subquery), so the
two are read from one snapshot of the database without a transaction around them. The
statements are built once, with bound parameters (``statements.py``).

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
import operator
import time
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from gateway.api import trace_statements
from services.catalog.availability import CatalogUnavailableError, bounded
from services.catalog.domain import (
    ImportConflictError,
    ImportOutcome,
    ImportStatus,
    Item,
    RevisionMismatchError,
)
from services.catalog.engine import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    DEFAULT_TIMEOUT,
    create_catalog_engine,
    writer_of,
)
from services.catalog.idempotency import claim_key, purge_expired_keys, record_response, release_claim
from services.catalog.money import Money
from services.catalog.schema import SchemaNotCurrentError, SchemaState, SchemaStatus, read_schema_status
from services.catalog.statements import (
    DELETE_ITEM,
    DELETE_TAGS,
    INSERT_ITEM,
    INSERT_TAGS,
    REVISION_OF_ITEM,
    TAGS_OF_ITEM,
    UPDATE_ITEM,
    item_parameters,
    item_query,
    page_query,
    tags_from,
)
from services.catalog.tables import item_tags, items

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence

    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

    from services.catalog.domain import ItemChanges, NewItem
    from services.catalog.idempotency import IdempotentRequest, KeyClaim, PriorRequest, RecordedResponse

_Created = TypeVar("_Created")
DEFAULT_IDEMPOTENCY_KEY_TTL = 24 * 60 * 60.0
# How often one store deletes expired idempotency keys, in seconds.
_PURGE_INTERVAL = 300.0
# While the schema is behind the code, calls within this many seconds of a check fail
# without asking the database again.
_SCHEMA_RECHECK_INTERVAL = 1.0
# Imports on PostgreSQL take this advisory lock, so that two of them never race to create
# one id. Any fixed key will do.
_POSTGRESQL_IMPORT_LOCK_KEY = 0x1A7E1A17
logger = logging.getLogger("services.catalog")


class CatalogStore:
    """Items and their tags over one async engine (SQLite through aiosqlite, or PostgreSQL)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        call_timeout: float = DEFAULT_TIMEOUT,
        idempotency_key_ttl: float = DEFAULT_IDEMPOTENCY_KEY_TTL,
        connection_slots: int = DEFAULT_POOL_SIZE + DEFAULT_MAX_OVERFLOW,
    ) -> None:
        self._engine = engine
        self._writer = writer_of(engine)
        is_postgresql = engine.dialect.name == "postgresql"
        self._dialect_name = engine.dialect.name
        self._item_query = item_query(engine.dialect.name)
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
        # Set once the database holds a schema this code can serve; never read again after.
        self._schema_status: SchemaStatus | None = None
        self._schema_behind: tuple[float, SchemaStatus] | None = None
        self._schema_lock = asyncio.Lock()
        self._next_purge = 0.0
        # On PostgreSQL an import's explicit ids and a POST's drawn id can meet: the POST drew
        # its id before the import moved the id sequence past the batch. Whichever commits
        # second gets a unique violation (see ``create_item`` and ``import_items``). SQLite's
        # writers take the file's lock in turn, and AUTOINCREMENT counts explicit ids.
        self._ids_can_collide = is_postgresql
        # Calls take a connection in the order they came, at most ``connection_slots`` at once
        # (the pool's size and overflow). The pool's own queue is not fair: a connection handed
        # back wakes a waiter, but a call arriving meanwhile takes it, and the waiter goes to
        # the back of the queue. Measured with 64 concurrent readers on a pool of 5 + 5
        # (bench row 9c, PostgreSQL): p99 1,250 ms and requests past 2 s, against a p50 of
        # 16 ms; through this semaphore (FIFO since Python 3.11.1), p99 134 ms, none late.
        self._connection_slots = asyncio.Semaphore(connection_slots)
        self._ping_in_flight: asyncio.Future[None] | None = None

    @classmethod
    async def open(
        cls,
        database_url: str,
        *,
        busy_timeout: float,
        call_timeout: float = DEFAULT_TIMEOUT,
        idempotency_key_ttl: float = DEFAULT_IDEMPOTENCY_KEY_TTL,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
    ) -> CatalogStore:
        """Connect to ``database_url``, whose schema ``gateway db upgrade`` migrates.

        An unavailable database, or one whose schema is behind the code, does not stop the
        start: the store comes up unready (its calls raise ``CatalogUnavailableError``, or
        ``SchemaNotCurrentError`` saying what to run) and serves once that is fixed.
        """
        engine = create_catalog_engine(
            database_url,
            busy_timeout=busy_timeout,
            timeout=call_timeout,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        trace_statements(engine)
        store = cls(
            engine,
            call_timeout=call_timeout,
            idempotency_key_ttl=idempotency_key_ttl,
            connection_slots=pool_size + max_overflow,
        )
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

    @property
    def schema_status(self) -> SchemaStatus | None:
        """The database's schema revision against the code's, once the store can serve it."""
        return self._schema_status

    async def ping(self) -> None:
        """Raise unless the database answers a query and holds the schema this code needs.

        Pings made while one is running share its query: under the gateway, v1, v2 and
        /internal each have a readiness check on this one store, and a probe runs them at once.
        """
        ping = self._ping_in_flight
        if ping is None:
            ping = self._ping_in_flight = asyncio.ensure_future(self._ping_once())
            ping.add_done_callback(self._ping_finished)
        # Shielded: a caller that gives up (its check's timeout) leaves the others their answer.
        await asyncio.shield(ping)

    async def _ping_once(self) -> None:
        async with self._bounded(), self._connection_slots, self._engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    def _ping_finished(self, ping: asyncio.Future[None]) -> None:
        self._ping_in_flight = None
        if not ping.cancelled():
            ping.exception()  # Retrieved here, for when every caller gave up before the end.

    async def create_item(self, new_item: NewItem) -> Item:
        return await self._create(lambda connection: _insert_item(connection, new_item))

    async def create_item_once(
        self, new_item: NewItem, claim: KeyClaim, respond: Callable[[Item], RecordedResponse]
    ) -> RecordedResponse:
        """Create the item and record ``respond(item)`` under ``claim``, both or neither."""

        async def create_and_record(connection: AsyncConnection) -> RecordedResponse:
            response = respond(await _insert_item(connection, new_item))
            await record_response(connection, claim, response)
            return response

        return await self._create(create_and_record)

    async def _create(self, create: Callable[[AsyncConnection], Awaitable[_Created]]) -> _Created:
        """Run ``create`` in a write transaction; once more, under a new id, if an import took
        the id it drew (``_ids_can_collide``)."""
        try:
            async with self._write() as connection:
                return await create(connection)
        except IntegrityError:
            if not self._ids_can_collide:
                raise
        logger.warning("a new item drew an id an import had just taken; creating it under the next one")
        async with self._write() as connection:
            return await create(connection)

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
        async with self._bounded(), self._connection_slots, self._engine.connect() as connection:
            row = (await connection.execute(self._item_query, {"item_id": item_id})).one_or_none()
        return None if row is None else _item_with_tags(row)

    async def list_items(
        self, *, limit: int, skip: int = 0, after_id: int | None = None, tag: str | None = None
    ) -> list[Item]:
        """Items in id order: after ``after_id`` (keyset) or from ``skip`` (offset), tagged ``tag``."""
        query = page_query(self._dialect_name, after=after_id is not None, tagged=tag is not None)
        parameters: dict[str, Any] = {"limit": limit, "skip": skip}
        if after_id is not None:
            parameters["after_id"] = after_id
        if tag is not None:
            parameters["tag"] = tag
        async with self._bounded(), self._connection_slots, self._engine.connect() as connection:
            rows = (await connection.execute(query, parameters)).all()
        return [_item_with_tags(row) for row in rows]

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
        # The columns to set are the parameters' keys (see ``UPDATE_ITEM``).
        parameters: dict[str, Any] = {key: value for key, value in changes.items() if key != "tags"}
        parameters |= {"updated_at": _utc_now(), **item_parameters(item_id, expected_revisions)}
        new_tags = changes.get("tags")
        async with self._write() as connection:
            statement = UPDATE_ITEM[expected_revisions is not None]
            row = (await connection.execute(statement, parameters)).one_or_none()
            if row is None:
                await _raise_if_exists(connection, item_id, expected_revisions)
                return None
            if new_tags is None:
                tags = tuple((await connection.execute(TAGS_OF_ITEM, {"item_id": item_id})).scalars())
            else:
                await connection.execute(DELETE_TAGS, {"item_id": item_id})
                await _insert_tags(connection, item_id, new_tags)
                tags = new_tags
        return _item_from_row(row, tags)

    async def delete_item(self, item_id: int, *, expected_revisions: Collection[int] | None = None) -> bool:
        """Delete the item and its tags; False when it did not exist. ``expected_revisions``: as for updates."""
        statement = DELETE_ITEM[expected_revisions is not None]
        parameters = item_parameters(item_id, expected_revisions)
        async with self._write() as connection:
            if (await connection.execute(statement, parameters)).rowcount > 0:
                return True
            await _raise_if_exists(connection, item_id, expected_revisions)
        return False

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), bounded by the call timeout."""
        async with (
            self._bounded(),
            self._one_writer,
            self._connection_slots,
            self._writer.begin() as connection,
        ):
            yield connection

    @asynccontextmanager
    async def _bounded_after_checking_the_schema(self) -> AsyncIterator[None]:
        async with bounded(self._call_timeout):
            await self._check_schema()
            yield

    def _bounded(self) -> AbstractAsyncContextManager[None]:
        """Bound a call in time, and check the schema within the bound until it is current."""
        # Once the schema is known to be current, the bound alone: wrapping it in a second
        # generator-based context manager cost each call as much as the bound itself.
        if self._schema_status is not None:
            return bounded(self._call_timeout)
        return self._bounded_after_checking_the_schema()

    async def _check_schema(self) -> None:
        """Raise ``SchemaNotCurrentError`` while the schema is behind the code."""
        async with self._schema_lock:
            if self._schema_status is not None:
                return
            if self._schema_behind is not None:
                checked_at, behind = self._schema_behind
                if time.monotonic() - checked_at < _SCHEMA_RECHECK_INTERVAL:
                    raise SchemaNotCurrentError(behind)
            async with self._engine.connect() as connection:
                status = await read_schema_status(connection)
            if not status.servable:
                self._schema_behind = (time.monotonic(), status)
                raise SchemaNotCurrentError(status)
            if status.state is SchemaState.AHEAD:
                logger.warning("serving the catalog anyway: %s", status.describe())
            self._schema_status = status
            self._schema_behind = None

    # Bulk operations of the /internal API.

    async def import_items(self, entries: Sequence[tuple[int, NewItem]]) -> list[ImportOutcome]:
        """Upsert items by id in one transaction: create the missing ones, update the changed
        ones, leave identical ones untouched (no new revision), so importing a batch twice
        changes nothing the second time. ``entries`` must not repeat an id."""
        item_ids = [item_id for item_id, _ in entries]
        try:
            return await self._import_items(entries, item_ids)
        except IntegrityError as error:
            if not self._ids_can_collide:
                raise
            # A POST drew one of these ids before the import moved the sequence past them, and
            # committed first. Retrying would overwrite that item with the imported one.
            raise ImportConflictError from error

    async def _import_items(
        self, entries: Sequence[tuple[int, NewItem]], item_ids: list[int]
    ) -> list[ImportOutcome]:
        async with self._write() as connection:
            if connection.dialect.name == "postgresql":
                await _prepare_postgresql_import(connection, max(item_ids, default=0))
            query = select(items).where(items.c.id.in_(item_ids)).with_for_update()
            existing = {row.id: row for row in (await connection.execute(query)).all()}
            tags = await _tags_by_item(connection, list(existing))
            outcomes = []
            for item_id, new_item in entries:
                row = existing.get(item_id)
                if row is None:
                    created = await _insert_item(connection, new_item, item_id=item_id)
                    outcomes.append(ImportOutcome(ImportStatus.CREATED, created))
                    continue
                current = _item_from_row(row, tags.get(item_id, ()))
                if _has_content(current, new_item):
                    outcomes.append(ImportOutcome(ImportStatus.UNCHANGED, current))
                    continue
                parameters = {**_content_columns(new_item), "updated_at": _utc_now(), "item_id": item_id}
                updated = (await connection.execute(UPDATE_ITEM[False], parameters)).one()
                if current.tags != new_item.tags:
                    await connection.execute(DELETE_TAGS, {"item_id": item_id})
                    await _insert_tags(connection, item_id, new_item.tags)
                outcomes.append(ImportOutcome(ImportStatus.UPDATED, _item_from_row(updated, new_item.tags)))
        return outcomes


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _raise_if_exists(
    connection: AsyncConnection, item_id: int, expected_revisions: Collection[int] | None
) -> None:
    """After a conditional write matched no row: the item exists at another revision, or not at all."""
    if expected_revisions is None:
        return
    current_revision = (await connection.execute(REVISION_OF_ITEM, {"item_id": item_id})).scalar_one_or_none()
    if current_revision is not None:
        raise RevisionMismatchError(item_id, current_revision)


async def _insert_item(connection: AsyncConnection, new_item: NewItem, *, item_id: int | None = None) -> Item:
    """Insert ``new_item``, under ``item_id`` if given (an import), else under a new id."""
    now = _utc_now()
    parameters = {
        **({} if item_id is None else {"id": item_id}),
        **_content_columns(new_item),
        "created_at": now,
        "updated_at": now,
        "revision": 1,
    }
    row = (await connection.execute(INSERT_ITEM, parameters)).one()
    item = _item_from_row(row, new_item.tags)
    await _insert_tags(connection, item.id, new_item.tags)
    return item


def _content_columns(new_item: NewItem) -> dict[str, Any]:
    """The ``items`` columns that hold what a client says of an item (its tags aside)."""
    return {
        "name": new_item.name,
        "description": new_item.description,
        "price_cents": new_item.price.cents,
        "currency": new_item.price.currency,
    }


async def _prepare_postgresql_import(connection: AsyncConnection, max_item_id: int) -> None:
    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRESQL_IMPORT_LOCK_KEY})
    # An explicit id does not advance the id sequence: move it past the batch now, so items
    # created later (POST) never draw an imported id. Never backwards, or ids deleted
    # since would be drawn again. (SQLite's AUTOINCREMENT counts explicit ids by itself.)
    await connection.execute(
        text(
            "SELECT setval(sequence, GREATEST(:max_item_id, COALESCE(pg_sequence_last_value(sequence), 0), 1))"
            " FROM (SELECT pg_get_serial_sequence('items', 'id')::regclass AS sequence) AS item_ids"
        ),
        {"max_item_id": max_item_id},
    )


def _has_content(item: Item, new_item: NewItem) -> bool:
    """Whether ``item`` already holds everything ``new_item`` says."""
    return (
        item.name == new_item.name
        and item.description == new_item.description
        and item.price == new_item.price
        and item.tags == new_item.tags
    )


def _item_with_tags(row: Sequence[Any]) -> Item:
    """The item in a row of ``statements.item_query`` or ``page_query``."""
    return _item_from_row(row, tags_from(row[-1]))


async def _insert_tags(connection: AsyncConnection, item_id: int, tags: Sequence[str]) -> None:
    if tags:
        rows = [{"item_id": item_id, "tag": tag, "position": position} for position, tag in enumerate(tags)]
        await connection.execute(INSERT_TAGS, rows)


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


# An item's fields in a row of ``items``, read by their columns' positions: reading a Row's
# attributes by name cost ten times more, and a page has twenty rows.
_ITEM_FIELDS = operator.itemgetter(
    *(
        items.c.keys().index(column)
        for column in (
            "id",
            "name",
            "description",
            "price_cents",
            "currency",
            "created_at",
            "updated_at",
            "revision",
        )
    )
)


def _item_from_row(row: Sequence[Any], tags: Sequence[str]) -> Item:
    """The item in a row that starts with the columns of ``items``."""
    item_id, name, description, price_cents, currency, created_at, updated_at, revision = _ITEM_FIELDS(row)
    return Item(
        id=item_id,
        name=name,
        description=description,
        price=Money(price_cents, currency),
        tags=tuple(tags),
        created_at=created_at,
        updated_at=updated_at,
        revision=revision,
    )
