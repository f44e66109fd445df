"""Entity tags of items and the conditional request headers that carry them (RFC 9110 8.8.3, 13.1).

An item's tag is ``"<id>-<revision>"``: strong, since a revision's representation in a
given version never changes, and unique for the life of the database, since new items never
reuse an id. One exception: an import (``/internal``) may recreate a deleted item under its
old id, and its revisions start again at 1, so a tag of the deleted item can match the new
one (tombstones with the last revision would close this; not done). v1 and v2 give one item
the same tag: both show the same revision of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.catalog.tables import MAX_REVISION

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, in a comma-separated list whose empty
# elements a recipient ignores (RFC 9110 5.6.1).
_ENTITY_TAG = re.compile(r'[ \t,]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(,|$)')
_ITEM_TAG = re.compile(r"([1-9][0-9]{0,18})-([1-9][0-9]{0,9})")


class MalformedConditionError(ValueError):
    """An If-Match or If-None-Match header that is neither ``*`` nor a list of entity tags."""


@dataclass(frozen=True, slots=True)
class EntityTag:
    opaque: str  # Without the quotes.
    weak: bool = False

    def __str__(self) -> str:
        return f'{"W/" if self.weak else ""}"{self.opaque}"'


@dataclass(frozen=True, slots=True)
class Condition:
    """An If-Match or If-None-Match header: ``*`` or the tags it lists."""

    any_tag: bool
    tags: tuple[EntityTag, ...] = ()

    def revisions_of(self, item_id: int) -> frozenset[int] | None:
        """The revisions of item ``item_id`` that match strongly (If-Match); None for ``*``."""
        if self.any_tag:
            return None
        revisions = set()
        for tag in self.tags:
            match = _ITEM_TAG.fullmatch(tag.opaque)
            if tag.weak or match is None or int(match.group(1)) != item_id:
                continue
            # A revision past the column's range cannot be current; it must not reach the query.
            if (revision := int(match.group(2))) <= MAX_REVISION:
                revisions.add(revision)
        return frozenset(revisions)

    def matches_weakly(self, tag: EntityTag) -> bool:
        """Whether ``tag`` is listed, weak or not (If-None-Match), or the header is ``*``."""
        return self.any_tag or any(listed.opaque == tag.opaque for listed in self.tags)


def item_tag(item_id: int, revision: int) -> EntityTag:
    return EntityTag(f"{item_id}-{revision}")


def parse_condition(header_value: str) -> Condition:
    if header_value.strip() == "*":
        return Condition(any_tag=True)
    tags: list[EntityTag] = []
    position = 0
    while position < len(header_value):
        match = _ENTITY_TAG.match(header_value, position)
        if match is None:
            raise MalformedConditionError("expected '*' or a comma-separated list of quoted entity tags")
        tags.append(EntityTag(match.group(2), weak=match.group(1) is not None))
        position = match.end()
    if not tags:
        raise MalformedConditionError("expected '*' or a comma-separated list of quoted entity tags")
    return Condition(any_tag=False, tags=tuple(tags))
