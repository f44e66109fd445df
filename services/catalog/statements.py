"""The store's statements, built once with bound parameters.

Building a statement and computing its cache key cost SQLAlchemy as much as running it on
SQLite (about 290,000 instructions for a SELECT by id, more for an UPDATE with RETURNING).
A statement object keeps its cache key, so running one again only binds new parameters.

A read is one statement, which sees one snapshot of the database by itself: an item comes
with its tags, aggregated by a subquery, and needs no transaction (see ``engine.py``).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Integer, bindparam, delete, exists, func, insert, select, update

from services.catalog.tables import item_tags, items

if TYPE_CHECKING:
    from collections.abc import Collection

    from sqlalchemy import ColumnElement, Label, Select

# Item statements take the item's id as ``item_id``; the conditional ones (If-Match), at
# index True, also take the revisions the item may be at as ``expected_revisions``.
_BY_ITEM_ID = items.c.id == bindparam("item_id")
_REVISION_EXPECTED = items.c.revision.in_(bindparam("expected_revisions", expanding=True))

# The columns to set are the keys of the parameters, whatever the item changes; SQLAlchemy
# compiles (and caches) one form per set of keys, and adds the new revision to each.
UPDATE_ITEM = tuple(
    update(items)
    .where(_BY_ITEM_ID, *([_REVISION_EXPECTED] if conditional else []))
    .values(revision=items.c.revision + 1)
    .returning(*items.c)
    for conditional in (False, True)
)
DELETE_ITEM = tuple(
    delete(items).where(_BY_ITEM_ID, *([_REVISION_EXPECTED] if conditional else []))
    for conditional in (False, True)
)
# Its columns are the keys of the parameters too (``id`` only for an import).
INSERT_ITEM = insert(items).returning(*items.c)
REVISION_OF_ITEM = select(items.c.revision).where(_BY_ITEM_ID)
TAGS_OF_ITEM = (
    select(item_tags.c.tag).where(item_tags.c.item_id == bindparam("item_id")).order_by(item_tags.c.position)
)
INSERT_TAGS = insert(item_tags)
DELETE_TAGS = delete(item_tags).where(item_tags.c.item_id == bindparam("item_id"))


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


def tags_from(pairs: list[list[Any]] | None) -> list[str]:
    """The tags in ``_tags_of``'s column, in their order."""
    # PostgreSQL's json_agg over no rows is NULL, SQLite's json_group_array an empty array.
    return [] if not pairs else [tag for _position, tag in sorted(pairs)]


def _tags_of(item_id: ColumnElement[int], dialect_name: str) -> Label[Any]:
    """The tags of item ``item_id`` as a JSON array of ``[position, tag]`` pairs, in any order:
    neither SQLite (before 3.44) nor PostgreSQL's json_agg without ORDER BY keeps an order, so
    the positions come along and ``tags_from`` sorts by them."""
    if dialect_name == "postgresql":
        pairs = func.json_agg(func.json_build_array(item_tags.c.position, item_tags.c.tag), type_=JSON)
    else:
        pairs = func.json_group_array(func.json_array(item_tags.c.position, item_tags.c.tag), type_=JSON)
    return select(pairs).where(item_tags.c.item_id == item_id).scalar_subquery().label("tags")
