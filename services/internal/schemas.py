"""The internal API's wire format: v2's items, with their revision, in bulk."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.catalog.tables import MAX_ITEM_ID
from services.v2.schemas import Description, ItemOut, Name, PriceIn, Tags

if TYPE_CHECKING:
    from services.catalog import Item

# One import is one transaction; this keeps it short (and far below the body-size limit).
MAX_IMPORT_BATCH = 1000


class ExportedItem(ItemOut):
    revision: int = Field(description="Grows by one with every change of the item.")

    @classmethod
    def of(cls, item: Item) -> ExportedItem:
        # The fields as they are (dict(), not model_dump()): the price model is not built again.
        return cls(**dict(ItemOut.of(item)), revision=item.revision)


class ImportedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[int, Field(ge=1, le=MAX_ITEM_ID, description="Created under this id if it is new.")]
    name: Name
    description: Description = None
    price: PriceIn
    tags: Tags = Field(default_factory=list)
    # An export line carries these too; they are accepted, so that exported lines import as
    # they are, and ignored: the importing catalog keeps its own revisions and times.
    revision: int | None = Field(default=None, description="Ignored.")
    created_at: datetime | None = Field(default=None, description="Ignored.")
    updated_at: datetime | None = Field(default=None, description="Ignored.")


class ImportBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ImportedItem] = Field(
        min_length=1, max_length=MAX_IMPORT_BATCH, description="Each id at most once (422 otherwise)."
    )

    @field_validator("items")
    @classmethod
    def _one_entry_per_id(cls, items: list[ImportedItem]) -> list[ImportedItem]:
        seen: set[int] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"item {item.id} appears more than once")
            seen.add(item.id)
        return items


class ImportResult(BaseModel):
    id: int
    status: Literal["created", "updated", "unchanged"]
    revision: int
    etag: str = Field(description="The item's ETag now, as v1 and v2 send it.")


class ImportReport(BaseModel):
    created: int
    updated: int
    unchanged: int
    results: list[ImportResult] = Field(description="One per item, in the order they were sent.")
