"""Items to rows and back: the columns a new item fills, and the item a row holds."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

from services.catalog.domain import Item
from services.catalog.money import Money
from services.catalog.statements import INSERT_ITEM, INSERT_TAGS, tags_from
from services.catalog.tables import items

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from datetime import datetime

    from services.catalog.database import Session
    from services.catalog.domain import NewItem

# An item's fields in a row that starts with the columns of ``items``, by position.
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


def item_from_row(row: Sequence[Any], tags: Sequence[str], datetime_of: Callable[[Any], datetime]) -> Item:
    """The item in a row that starts with the columns of ``items``."""
    item_id, name, description, price_cents, currency, created_at, updated_at, revision = _ITEM_FIELDS(row)
    return Item(
        id=item_id,
        name=name,
        description=description,
        price=Money(price_cents, currency),
        tags=tuple(tags),
        created_at=datetime_of(created_at),
        updated_at=datetime_of(updated_at),
        revision=revision,
    )


def item_with_tags(row: Sequence[Any], datetime_of: Callable[[Any], datetime]) -> Item:
    """The item in a row of ``statements.item_query`` or ``page_query`` (its tags last)."""
    return item_from_row(row, tags_from(row[-1]), datetime_of)


def content_columns(new_item: NewItem) -> dict[str, Any]:
    """The ``items`` columns that hold what a client says of an item (its tags aside)."""
    return {
        "name": new_item.name,
        "description": new_item.description,
        "price_cents": new_item.price.cents,
        "currency": new_item.price.currency,
    }


def has_content(item: Item, new_item: NewItem) -> bool:
    """Whether ``item`` already holds everything ``new_item`` says."""
    return (
        item.name == new_item.name
        and item.description == new_item.description
        and item.price == new_item.price
        and item.tags == new_item.tags
    )


async def insert_item(
    session: Session,
    new_item: NewItem,
    *,
    now: datetime,
    datetime_of: Callable[[Any], datetime],
    item_id: int | None = None,
) -> Item:
    """Insert ``new_item``, under ``item_id`` if given (an import), else under a new id."""
    parameters = {
        **({} if item_id is None else {"id": item_id}),
        **content_columns(new_item),
        "created_at": now,
        "updated_at": now,
        "revision": 1,
    }
    [row] = await session.fetch(INSERT_ITEM, parameters)
    item = item_from_row(row, new_item.tags, datetime_of)
    await insert_tags(session, item.id, new_item.tags)
    return item


async def insert_tags(session: Session, item_id: int, tags: Sequence[str]) -> None:
    if tags:
        rows = [{"item_id": item_id, "tag": tag, "position": position} for position, tag in enumerate(tags)]
        await session.execute_many(INSERT_TAGS, rows)
