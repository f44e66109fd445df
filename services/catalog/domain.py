"""What the catalog holds, independent of any API version's wire format."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from datetime import datetime

    from services.catalog.money import Money


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    name: str
    description: str | None
    price: Money
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    # Starts at 1 and grows by one with every update: the basis for ETags.
    revision: int


@dataclass(frozen=True, slots=True)
class NewItem:
    name: str
    price: Money
    description: str | None = None
    tags: tuple[str, ...] = ()


class ImportStatus(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # Already as imported: no new revision.


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    """What importing one item did, and the item as it now is."""

    status: ImportStatus
    item: Item


class ItemChanges(TypedDict, total=False):
    """A partial update: only the keys present change; ``tags`` replaces the whole set."""

    name: str
    description: str | None
    price_cents: int
    currency: str
    tags: tuple[str, ...]


class ImportConflictError(Exception):
    """An imported id was taken meanwhile by an item created concurrently; nothing was imported."""

    def __init__(self) -> None:
        super().__init__(
            "An item was created under one of the batch's ids while it was being imported;"
            " nothing was imported. Export that id to see it, then import again."
        )


class RevisionMismatchError(Exception):
    """A conditional write expected another revision of the item than the current one."""

    def __init__(self, item_id: int, current_revision: int) -> None:
        super().__init__(f"item {item_id} is at revision {current_revision}")
        self.item_id = item_id
        self.current_revision = current_revision
