"""Bulk imports of the /internal API: upsert items by id in one transaction.

On PostgreSQL an import's explicit ids and a POST's drawn id can meet: the POST drew its id
before the import moved the id sequence past the batch. Whichever commits second gets a
unique violation. SQLite's writers take the file's lock in turn, and AUTOINCREMENT counts
explicit ids, so there the two never meet.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from services.catalog.domain import ImportOutcome, ImportStatus
from services.catalog.item_rows import content_columns, has_content, insert_item, insert_tags, item_from_row
from services.catalog.statements import DELETE_TAGS, items_for_import, tags_of_items, update_item

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from services.catalog.database import Session
    from services.catalog.domain import NewItem

# Imports on PostgreSQL take this advisory lock, so that two of them never race to create
# one id. Any fixed key will do.
_POSTGRESQL_IMPORT_LOCK_KEY = 0x1A7E1A17
_TAKE_IMPORT_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
# An explicit id does not advance the id sequence: move it past the batch now, so items
# created later (POST) never draw an imported id. Never backwards, or ids deleted since
# would be drawn again. (SQLite's AUTOINCREMENT counts explicit ids by itself.)
_MOVE_ID_SEQUENCE = text(
    "SELECT setval(sequence, GREATEST(:max_item_id, COALESCE(pg_sequence_last_value(sequence), 0), 1))"
    " FROM (SELECT pg_get_serial_sequence('items', 'id')::regclass AS sequence) AS item_ids"
)


async def import_items(
    session: Session,
    dialect_name: str,
    entries: Sequence[tuple[int, NewItem]],
    datetime_of: Callable[[Any], datetime],
) -> list[ImportOutcome]:
    """Create the missing items, update the changed ones, leave identical ones untouched (no
    new revision), so importing a batch twice changes nothing the second time. Run in a
    write transaction; ``entries`` must not repeat an id."""
    item_ids = [item_id for item_id, _ in entries]
    if dialect_name == "postgresql":
        await session.fetch(_TAKE_IMPORT_LOCK, {"key": _POSTGRESQL_IMPORT_LOCK_KEY})
        await session.fetch(_MOVE_ID_SEQUENCE, {"max_item_id": max(item_ids, default=0)})
    existing = {
        row[0]: row for row in await session.fetch(items_for_import(dialect_name), {"item_ids": item_ids})
    }
    tags = await _tags_by_item(session, dialect_name, list(existing))
    outcomes = []
    for item_id, new_item in entries:
        now = datetime.now(UTC)
        row = existing.get(item_id)
        if row is None:
            created = await insert_item(session, new_item, now=now, datetime_of=datetime_of, item_id=item_id)
            outcomes.append(ImportOutcome(ImportStatus.CREATED, created))
            continue
        current = item_from_row(row, tags.get(item_id, ()), datetime_of)
        if has_content(current, new_item):
            outcomes.append(ImportOutcome(ImportStatus.UNCHANGED, current))
            continue
        parameters = {**content_columns(new_item), "updated_at": now, "item_id": item_id}
        [updated] = await session.fetch(update_item(dialect_name, conditional=False), parameters)
        if current.tags != new_item.tags:
            await session.execute(DELETE_TAGS, {"item_id": item_id})
            await insert_tags(session, item_id, new_item.tags)
        outcomes.append(
            ImportOutcome(ImportStatus.UPDATED, item_from_row(updated, new_item.tags, datetime_of))
        )
    return outcomes


async def _tags_by_item(
    session: Session, dialect_name: str, item_ids: list[int]
) -> dict[int, tuple[str, ...]]:
    if not item_ids:
        return {}
    tags: dict[int, list[str]] = {}
    for item_id, tag in await session.fetch(tags_of_items(dialect_name), {"item_ids": item_ids}):
        tags.setdefault(item_id, []).append(tag)
    return {item_id: tuple(names) for item_id, names in tags.items()}
