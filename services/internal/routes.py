"""The internal API's endpoints: the whole catalog out as NDJSON, and batches of items in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query
from starlette.responses import StreamingResponse

from services.catalog import UNAVAILABLE_RESPONSES, Money, NewItem, StoreDep, etag_of
from services.catalog.tables import MAX_ITEM_ID
from services.catalog.web import problem_response_doc
from services.internal.schemas import ExportedItem, ImportBatch, ImportReport, ImportResult

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from services.catalog import CatalogStore, Item

NDJSON_MEDIA_TYPE = "application/x-ndjson"
# Items read per query while exporting: memory stays flat whatever the catalog's size, and
# each query is a short read, never a transaction held open while a slow client reads.
EXPORT_PAGE_SIZE = 500

router = APIRouter(prefix="/items", tags=["items"], responses=UNAVAILABLE_RESPONSES)


class NDJSONResponse(StreamingResponse):
    media_type = NDJSON_MEDIA_TYPE


@router.get(
    "/export",
    name="export_items",
    operation_id="export_items",
    summary="Export every item",
    description=(
        "Every item in id order, one JSON object per line (NDJSON), streamed. Items that exist"
        " throughout the export appear exactly once; items created or deleted meanwhile may or"
        " may not. An export cut short ends without the final chunk, which HTTP clients report as"
        " an incomplete read: resume with ``after`` set to the last id received."
    ),
    response_class=NDJSONResponse,
    responses={200: {"model": ExportedItem, "description": "One item per line."}},
)
async def export_items(
    store: StoreDep,
    after: Annotated[int, Query(ge=0, le=MAX_ITEM_ID, description="Start after this item id.")] = 0,
) -> NDJSONResponse:
    # The first page is read before the response starts, so an unavailable database is
    # still answered with 503 rather than a stream that breaks off.
    first_page = await store.list_items(after_id=after, limit=EXPORT_PAGE_SIZE)
    return NDJSONResponse(_lines(store, first_page))


async def _lines(store: CatalogStore, page: list[Item]) -> AsyncIterator[bytes]:
    while page:
        yield b"".join(ExportedItem.of(item).model_dump_json().encode() + b"\n" for item in page)
        if len(page) < EXPORT_PAGE_SIZE:
            return
        page = await store.list_items(after_id=page[-1].id, limit=EXPORT_PAGE_SIZE)


@router.post(
    "/import",
    name="import_items",
    operation_id="import_items",
    summary="Create or update items by id",
    description=(
        "Each item is created under its id if it is new, updated if it differs, and left as it"
        " is (no new revision) if it is already the same, all in one transaction: sending a batch"
        " again changes nothing. Lines of an export import as they are (their revision and times"
        " are ignored)."
    ),
    responses={
        409: problem_response_doc(
            "An item was created under one of the batch's ids while the batch was being imported:"
            " nothing was imported."
        )
    },
)
async def import_items(batch: ImportBatch, store: StoreDep) -> ImportReport:
    outcomes = await store.import_items(
        [
            (
                entry.id,
                NewItem(
                    name=entry.name,
                    description=entry.description,
                    price=Money.of(entry.price.amount, entry.price.currency),
                    tags=tuple(entry.tags),
                ),
            )
            for entry in batch.items
        ]
    )
    results = [
        ImportResult(
            id=outcome.item.id,
            status=outcome.status.value,
            revision=outcome.item.revision,
            etag=etag_of(outcome.item),
        )
        for outcome in outcomes
    ]
    return ImportReport(
        created=sum(result.status == "created" for result in results),
        updated=sum(result.status == "updated" for result in results),
        unchanged=sum(result.status == "unchanged" for result in results),
        results=results,
    )
