"""The store's statements, built once with bound parameters and compiled once per driver.

Each runs directly on the driver (``database.py``): none is built per call, so none is
compiled per call. A list of values (the revisions If-Match names, a batch's ids) is one
parameter, an array on PostgreSQL and a JSON array on SQLite, so that its statement does
not change with the list's length.

A read is one statement, which sees one snapshot of the database by itself: an item comes
with its tags, aggregated by a subquery, and needs no transaction.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ARRAY,
    JSON,
    Integer,
    any_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
)

from services.catalog.tables import item_tags, items

if TYPE_CHECKING:
    from collections.abc import Collection

    from sqlalchemy import ColumnElement, Delete, Label, Select, Update

# Item statements take the item's id as ``item_id``; the conditional ones (If-Match) also
# take the revisions the item may be at as ``expected_revisions``.
_BY_ITEM_ID = items.c.id == bindparam("item_id")
PING = text("SELECT 1")
# Its columns are the keys of the parameters too (``id`` only for an import).
INSERT_ITEM = insert(items).returning(*items.c)
REVISION_OF_ITEM = select(items.c.revision).where(_BY_ITEM_ID)
TAGS_OF_ITEM = (
    select(item_tags.c.tag).where(item_tags.c.item_id == bindparam("item_id")).order_by(item_tags.c.position)
)
INSERT_TAGS = insert(item_tags)
DELETE_TAGS = delete(item_tags).where(item_tags.c.item_id == bindparam("item_id"))


def in_list(column: ColumnElement[int], name: str, dialect_name: str) -> ColumnElement[bool]:
    """``column`` is in the list of integers passed as parameter ``name``."""
    if dialect_name == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    listed: Select[Any] = select(literal_column("value")).select_from(func.json_each(bindparam(name)))
    return column.in_(listed.scalar_subquery())


# The columns to set are the keys of the parameters, whatever the item changes: one form is
# compiled per set of keys, and each adds the new revision.
@functools.cache
def update_item(dialect_name: str, *, conditional: bool) -> Update:
    expected = [in_list(items.c.revision, "expected_revisions", dialect_name)] if conditional else []
    return (
        update(items).where(_BY_ITEM_ID, *expected).values(revision=items.c.revision + 1).returning(*items.c)
    )


@functools.cache
def delete_item(dialect_name: str, *, conditional: bool) -> Delete:
    expected = [in_list(items.c.revision, "expected_revisions", dialect_name)] if conditional else []
    return delete(items).where(_BY_ITEM_ID, *expected)


@functools.cache
def items_for_import(dialect_name: str) -> Select[Any]:
    """The items ``item_ids`` lists, locked until the import's transaction ends (PostgreSQL)."""
    return select(items).where(in_list(items.c.id, "item_ids", dialect_name)).with_for_update()


@functools.cache
def tags_of_items(dialect_name: str) -> Select[Any]:
    """(item id, tag) of the items ``item_ids`` lists, in their items' and tags' order."""
    return (
        select(item_tags.c.item_id, item_tags.c.tag)
        .where(in_list(item_tags.c.item_id, "item_ids", dialect_name))
        .order_by(item_tags.c.item_id, item_tags.c.position)
    )


def item_parameters(item_id: int, expected_revisions: Collection[int] | None) -> dict[str, Any]:
    """``item_id``, and ``expected_revisions`` for the conditional statements."""
    if expected_revisions is None:
        return {"item_id": item_id}
    return {"item_id": item_id, "expected_revisions": sorted(expected_revisions)}


@functools.cache
def item_query(dialect_name: str) -> Select[Any]:
    """The item ``item_id``, with its tags as its last column (see ``tags_from``)."""
    return select(items, _tags_of(items.c.id, dialect_name)).where(_BY_ITEM_ID)


# Four per dialect at most: with or without a keyset cursor, and a tag to filter by.
@functools.cache
def page_query(dialect_name: str, *, after: bool, tagged: bool) -> Select[Any]:
    """Items in id order, ``limit`` of them from offset ``skip``, with their tags as their last
    column; after id ``after_id`` when ``after``, with tag ``tag`` when ``tagged``."""
    page = (
        select(items)
        .order_by(items.c.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("skip", type_=Integer))
    )
    if after:
        page = page.where(items.c.id > bindparam("after_id"))
    if tagged:
        page = page.where(
            exists().where(item_tags.c.item_id == items.c.id, item_tags.c.tag == bindparam("tag"))
        )
    # Tags are aggregated once the page is cut: an offset's skipped rows never read theirs.
    page_rows = page.subquery("page")
    return select(page_rows, _tags_of(page_rows.c.id, dialect_name)).order_by(page_rows.c.id)


def tags_from(pairs: str | None) -> tuple[str, ...]:
    """The tags in ``_tags_of``'s column (JSON text), in their order."""
    # PostgreSQL's json_agg over no rows is NULL, SQLite's json_group_array "[]".
    if pairs is None or pairs == "[]":
        return ()
    return tuple(tag for _position, tag in sorted(json.loads(pairs)))


def _tags_of(item_id: ColumnElement[int], dialect_name: str) -> Label[Any]:
    """The tags of item ``item_id`` as a JSON array of ``[position, tag]`` pairs, in any order:
    neither SQLite (before 3.44) nor PostgreSQL's json_agg without ORDER BY keeps an order, so
    the positions come along and ``tags_from`` sorts by them."""
    if dialect_name == "postgresql":
        pairs = func.json_agg(func.json_build_array(item_tags.c.position, item_tags.c.tag), type_=JSON)
    else:
        pairs = func.json_group_array(func.json_array(item_tags.c.position, item_tags.c.tag), type_=JSON)
    return select(pairs).where(item_tags.c.item_id == item_id).scalar_subquery().label("tags")
