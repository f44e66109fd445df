"""The catalog store: every read and write of items, each one statement or one transaction.

A read is one statement: an item comes with its tags (aggregated by a subquery), so the
two are read from one snapshot of the database without a transaction around them. The
statements are built once, with bound parameters (``statements.py``), and run directly on
the driver (``database.py``).

Writes never lose a concurrent update, across processes too: each runs in a write
transaction (``BEGIN IMMEDIATE`` on SQLite) and bumps the revision in the UPDATE statement
itself (``revision = revision + 1``), never from a value read earlier. A conditional write
(If-Match) names the revisions it expects in the same statement (``WHERE id = :id AND
revision IN (...)``), so of two writers that read one revision only one can win.

Every call is bounded in time (``availability.py``) and waits for a schema this code can
serve (``schema_gate.py``); how a connection is had, and in what order, is each driver
adapter's (``sqlite_database.py``, ``postgresql_database.py``).
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from services.catalog.availability import CatalogUnavailableError, bounded, raise_if_unavailability
from services.catalog.database import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    DEFAULT_TIMEOUT,
    ConstraintViolationError,
    open_database,
)
from services.catalog.domain import ImportConflictError, RevisionMismatchError
from services.catalog.idempotency import claim_key, purge_expired_keys, record_response, release_claim
from services.catalog.idempotency_leases import DEFAULT_IDEMPOTENCY_KEY_TTL, KeyLeases
from services.catalog.imports import import_items
from services.catalog.item_rows import insert_item, insert_tags, item_from_row, item_with_tags
from services.catalog.pings import SharedPing
from services.catalog.schema_gate import SchemaGate
from services.catalog.statements import (
    DELETE_TAGS,
    PING,
    REVISION_OF_ITEM,
    TAGS_OF_ITEM,
    delete_item,
    item_parameters,
    item_query,
    page_query,
    update_item,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence

    from sqlalchemy.sql.expression import Executable

    from services.catalog.database import Database, Session
    from services.catalog.domain import ImportOutcome, Item, ItemChanges, NewItem
    from services.catalog.idempotency import IdempotentRequest, KeyClaim, PriorRequest, RecordedResponse
    from services.catalog.schema import SchemaStatus

_Created = TypeVar("_Created")
logger = logging.getLogger("services.catalog")


class CatalogStore:
    """Items and their tags in one database (SQLite through sqlite3, or PostgreSQL through asyncpg)."""

    def __init__(
        self,
        database: Database,
        *,
        call_timeout: float = DEFAULT_TIMEOUT,
        idempotency_key_ttl: float = DEFAULT_IDEMPOTENCY_KEY_TTL,
    ) -> None:
        self._database = database
        self._dialect_name = database.dialect_name
        self._datetime_of = database.datetime_of
        self._item_query = item_query(database.dialect_name)
        self._call_timeout = call_timeout
        self._schema = SchemaGate(database)
        self._ping = SharedPing(self._ping_once)
        self._leases = KeyLeases(ttl=idempotency_key_ttl, call_timeout=call_timeout)
        # On PostgreSQL an import's explicit ids and a POST's drawn id can meet (``imports.py``):
        # whichever commits second gets a unique violation.
        self._ids_can_collide = database.dialect_name == "postgresql"

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
        database = open_database(
            database_url,
            busy_timeout=busy_timeout,
            timeout=call_timeout,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        store = cls(database, call_timeout=call_timeout, idempotency_key_ttl=idempotency_key_ttl)
        try:
            async with bounded(call_timeout):
                await store._schema.check()
        except CatalogUnavailableError as error:
            logger.warning("the catalog database is unavailable at start-up, will retry: %s", error)
        except BaseException:
            await database.close()
            raise
        return store

    async def close(self) -> None:
        await self._database.close()

    @property
    def schema_status(self) -> SchemaStatus | None:
        """The database's schema revision against the code's, once the store can serve it."""
        return self._schema.status

    async def ping(self) -> None:
        """Raise unless the database answers a query and holds the schema this code needs."""
        await self._ping()

    async def _ping_once(self) -> None:
        await self._read(PING, {})

    async def get_item(self, item_id: int) -> Item | None:
        rows = await self._read(self._item_query, {"item_id": item_id})
        return item_with_tags(rows[0], self._datetime_of) if rows else None

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
        datetime_of = self._datetime_of
        return [item_with_tags(row, datetime_of) for row in await self._read(query, parameters)]

    async def create_item(self, new_item: NewItem) -> Item:
        return await self._create(lambda session: self._insert(session, new_item))

    async def create_item_once(
        self, new_item: NewItem, claim: KeyClaim, respond: Callable[[Item], RecordedResponse]
    ) -> RecordedResponse:
        """Create the item and record ``respond(item)`` under ``claim``, both or neither."""

        async def create_and_record(session: Session) -> RecordedResponse:
            response = respond(await self._insert(session, new_item))
            await record_response(session, claim, response)
            return response

        return await self._create(create_and_record)

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
        # The columns to set are the parameters' keys (see ``statements.update_item``).
        parameters: dict[str, Any] = {key: value for key, value in changes.items() if key != "tags"}
        parameters |= {"updated_at": _utc_now(), **item_parameters(item_id, expected_revisions)}
        new_tags = changes.get("tags")
        statement = update_item(self._dialect_name, conditional=expected_revisions is not None)
        async with self._write() as session:
            rows = await session.fetch(statement, parameters)
            if not rows:
                await _raise_if_exists(session, item_id, expected_revisions)
                return None
            if new_tags is None:
                tags = tuple(tag for (tag,) in await session.fetch(TAGS_OF_ITEM, {"item_id": item_id}))
            else:
                await session.execute(DELETE_TAGS, {"item_id": item_id})
                await insert_tags(session, item_id, new_tags)
                tags = new_tags
        return item_from_row(rows[0], tags, self._datetime_of)

    async def delete_item(self, item_id: int, *, expected_revisions: Collection[int] | None = None) -> bool:
        """Delete the item and its tags; False when it did not exist. ``expected_revisions``: as for updates."""
        statement = delete_item(self._dialect_name, conditional=expected_revisions is not None)
        async with self._write() as session:
            if await session.execute(statement, item_parameters(item_id, expected_revisions)) > 0:
                return True
            await _raise_if_exists(session, item_id, expected_revisions)
        return False

    async def claim_idempotency_key(self, request: IdempotentRequest) -> KeyClaim | PriorRequest:
        leases = self._leases
        async with self._write() as session:
            outcome = await claim_key(
                session, self._dialect_name, request, now=_utc_now(), ttl=leases.ttl, lease=leases.lease
            )
        if leases.purge_due():
            try:
                await self.purge_expired_idempotency_keys()
            except Exception:  # Housekeeping: the request it rides on must not fail for it.
                logger.warning("purging expired idempotency keys failed", exc_info=True)
        return outcome

    async def release_idempotency_key(self, claim: KeyClaim) -> None:
        async with self._write() as session:
            await release_claim(session, claim)

    async def purge_expired_idempotency_keys(self) -> int:
        """Delete the keys past their time to live; how many there were."""
        async with self._write() as session:
            return await purge_expired_keys(session, _utc_now())

    async def import_items(self, entries: Sequence[tuple[int, NewItem]]) -> list[ImportOutcome]:
        """Upsert items by id in one transaction (see ``imports.py``)."""
        try:
            async with self._write() as session:
                return await import_items(session, self._dialect_name, entries, self._datetime_of)
        except ConstraintViolationError as error:
            if not self._ids_can_collide:
                raise
            # A POST drew one of these ids before the import moved the sequence past them, and
            # committed first. Retrying would overwrite that item with the imported one.
            raise ImportConflictError from error

    async def _insert(self, session: Session, new_item: NewItem) -> Item:
        return await insert_item(session, new_item, now=_utc_now(), datetime_of=self._datetime_of)

    async def _create(self, create: Callable[[Session], Awaitable[_Created]]) -> _Created:
        """Run ``create`` in a write transaction; once more, under a new id, if an import took
        the id it drew (``_ids_can_collide``)."""
        try:
            async with self._write() as session:
                return await create(session)
        except ConstraintViolationError:
            if not self._ids_can_collide:
                raise
        logger.warning("a new item drew an id an import had just taken; creating it under the next one")
        async with self._write() as session:
            return await create(session)

    async def _read(self, statement: Executable, parameters: Mapping[str, Any]) -> list[Sequence[Any]]:
        """Run one statement on its own, bounded in time, once the schema is current."""
        database = self._database
        if self._schema.status is not None and database.bounds_reads_itself:
            # No timer to arm and cancel: the driver bounds this read (see ``database.py``).
            try:
                return await database.read(statement, parameters)
            except Exception as error:
                raise_if_unavailability(error, self._call_timeout)
                raise
        async with bounded(self._call_timeout):
            if self._schema.status is None:
                await self._schema.check()
            return await self._database.read(statement, parameters)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Session]:
        """A write transaction, bounded in time, once the schema is current."""
        async with bounded(self._call_timeout):
            if self._schema.status is None:
                await self._schema.check()
            async with self._database.writing() as session:
                yield session


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _raise_if_exists(
    session: Session, item_id: int, expected_revisions: Collection[int] | None
) -> None:
    """After a conditional write matched no row: the item exists at another revision, or not at all."""
    if expected_revisions is None:
        return
    rows = await session.fetch(REVISION_OF_ITEM, {"item_id": item_id})
    if rows:
        raise RevisionMismatchError(item_id, rows[0][0])
