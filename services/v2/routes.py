"""v2's endpoints over the shared catalog store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import MISSING
from starlette.exceptions import HTTPException
from starlette.requests import Request

from services.catalog import (
    ETAG_HEADER,
    IDEMPOTENCY_RESPONSES,
    NOT_FOUND_RESPONSES,
    NOT_MODIFIED_RESPONSES,
    PRECONDITION_RESPONSES,
    REPLAYED_HEADER_DOC,
    UNAVAILABLE_RESPONSES,
    ExpectedRevisions,
    IdempotencyKeyHeader,
    IfNoneMatch,
    InvalidCursorError,
    Item,
    ItemChanges,
    ItemIdPath,
    Money,
    NewItem,
    RecordedResponse,
    StoreDep,
    cents_from_amount,
    create_once,
    decode_cursor,
    encode_cursor,
    etag_of,
    if_none_match_condition,
    item_not_found,
    json_response,
    location_of,
    not_modified,
    response_of,
    tagged,
    tagged_response,
)
from services.v2.schemas import ItemCreate, ItemOut, ItemPage, ItemPatch, Tag

router = APIRouter(prefix="/items", tags=["items"], responses=UNAVAILABLE_RESPONSES)

_LOCATION_HEADER = {"Location": {"description": "Path of the new item.", "schema": {"type": "string"}}}
# Names what an Idempotency-Key was sent to; keys of different operations never meet.
_CREATE_OPERATION = "v2.create_item"


@router.get(
    "",
    name="list_items",
    operation_id="list_items",
    summary="List items",
    description=(
        "Items in id order, one page at a time. Follow ``next_cursor`` until it is null: every"
        " item that exists throughout is seen exactly once, even while others are added or deleted."
    ),
    response_model=ItemPage,
    responses={400: {"description": "The cursor is malformed."}},
)
async def list_items(
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Largest number of items on the page.")] = 20,
    cursor: Annotated[
        str | None,
        Query(
            max_length=64,
            # Documented, not enforced: decode_cursor refuses what it did not issue with a 400.
            json_schema_extra={"pattern": "^[A-Za-z0-9_-]+$"},
            description="``next_cursor`` of the previous page, unchanged (400 otherwise).",
        ),
    ] = None,
    tag: Annotated[Tag | None, Query(description="Only items with this tag.")] = None,
) -> Response:
    try:
        after_id = None if cursor is None else decode_cursor(cursor)
    except InvalidCursorError:
        raise HTTPException(400, "the cursor is malformed: pass a next_cursor unchanged") from None
    # One more than the page holds tells whether another page follows.
    items = await store.list_items(after_id=after_id, limit=limit + 1, tag=tag)
    page, more = items[:limit], len(items) > limit
    next_cursor = encode_cursor(page[-1].id) if more else None
    return json_response(ItemPage(data=[ItemOut.of(item) for item in page], next_cursor=next_cursor))


@router.post(
    "",
    name="create_item",
    operation_id="create_item",
    status_code=201,
    summary="Create an item",
    description=(
        "The response's ``Location`` header points at the new item. With an ``Idempotency-Key``"
        " the request is safe to retry: a retry with the same key and body gets the same response"
        " (the same item) instead of creating another; the same key with another body gets 422."
    ),
    response_model=ItemOut,
    responses={
        201: {"headers": _LOCATION_HEADER | ETAG_HEADER | REPLAYED_HEADER_DOC},
        **IDEMPOTENCY_RESPONSES,
    },
)
async def create_item(
    body: ItemCreate, store: StoreDep, request: Request, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    new_item = NewItem(
        name=body.name,
        description=body.description,
        price=Money.of(body.price.amount, body.price.currency),
        tags=tuple(body.tags),
    )

    # The response is recorded with the key, so a retry gets these very bytes.
    def respond(item: Item) -> RecordedResponse:
        headers = {"Location": location_of(request, "read_item", item_id=item.id), "ETag": etag_of(item)}
        return RecordedResponse(201, headers, ItemOut.of(item).model_dump_json())

    if idempotency_key is None:
        return response_of(respond(await store.create_item(new_item)))
    return await create_once(request, store, _CREATE_OPERATION, idempotency_key, new_item, respond)


@router.get(
    "/{item_id}",
    name="read_item",
    operation_id="read_item",
    summary="Read an item",
    response_model=ItemOut,
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND_RESPONSES, **NOT_MODIFIED_RESPONSES},
)
async def read_item(item_id: ItemIdPath, store: StoreDep, if_none_match: IfNoneMatch = None) -> Response:
    condition = if_none_match_condition(if_none_match)
    item = await store.get_item(item_id)
    if item is None:
        raise item_not_found(item_id)
    return not_modified(condition, item) or tagged_response(item, ItemOut.of(item))


@router.patch(
    "/{item_id}",
    name="update_item",
    operation_id="update_item",
    summary="Update some of an item's fields",
    description=(
        "Only the fields in the body change; ``tags`` replaces the whole set, ``description``"
        " may be null. A price without ``currency`` keeps the item's currency. With ``If-Match``,"
        " only if the item has not changed since it was read."
    ),
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND_RESPONSES, **PRECONDITION_RESPONSES},
)
async def update_item(
    item_id: ItemIdPath, body: ItemPatch, store: StoreDep, response: Response, expected: ExpectedRevisions
) -> ItemOut:
    item = await store.update_item(item_id, _changes_of(body), expected_revisions=expected)
    return ItemOut.of(tagged(item, item_id, response))


@router.delete(
    "/{item_id}",
    name="delete_item",
    operation_id="delete_item",
    status_code=204,
    summary="Delete an item",
    description="With ``If-Match``, only if the item has not changed since it was read.",
    responses={**NOT_FOUND_RESPONSES, **PRECONDITION_RESPONSES},
)
async def delete_item(item_id: ItemIdPath, store: StoreDep, expected: ExpectedRevisions) -> None:
    if not await store.delete_item(item_id, expected_revisions=expected):
        raise item_not_found(item_id)


def _changes_of(patch: ItemPatch) -> ItemChanges:
    # MISSING marks a field the body left out (pydantic's equivalent of exclude_unset);
    # only those present become changes.
    changes: ItemChanges = {}
    if patch.name is not MISSING:
        changes["name"] = patch.name
    if patch.description is not MISSING:
        changes["description"] = patch.description
    if patch.price is not MISSING:
        changes["price_cents"] = cents_from_amount(patch.price.amount)
        if patch.price.currency is not MISSING:
            changes["currency"] = patch.price.currency
    if patch.tags is not MISSING:
        changes["tags"] = tuple(patch.tags)
    return changes
