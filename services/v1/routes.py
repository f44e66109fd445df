"""v1's endpoints over the shared catalog store."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.routing import APIRoute
from starlette.requests import Request

from services.catalog import (
    ETAG_HEADER,
    NOT_FOUND_RESPONSES,
    NOT_MODIFIED_RESPONSES,
    PRECONDITION_RESPONSES,
    UNAVAILABLE_RESPONSES,
    ExpectedRevisions,
    IfNoneMatch,
    ItemChanges,
    ItemIdPath,
    Money,
    NewItem,
    StoreDep,
    cents_from_amount,
    etag_of,
    if_none_match_condition,
    item_not_found,
    location_of,
    not_modified,
    tagged,
)
from services.v1.schemas import ItemIn, ItemOut

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine


class ExactNumbersRequest(Request):
    """A request whose JSON numbers with a fraction or exponent are Decimals, not floats.

    As floats, 1e-400 arrived as 0 and 12.500000000000000001 as 12.5, and the price's
    precision rule could not see the digits it refuses.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class ExactNumbersRoute(APIRoute):
    """FastAPI's documented seam for a custom request class (a route class of the router)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_exactly(request: Request) -> Response:
            return await handle(ExactNumbersRequest(request.scope, request.receive))

        return handle_exactly


router = APIRouter(
    prefix="/items", tags=["items"], responses=UNAVAILABLE_RESPONSES, route_class=ExactNumbersRoute
)

_LOCATION_HEADER = {"Location": {"description": "Path of the new item.", "schema": {"type": "string"}}}


@router.get(
    "",
    name="list_items",
    operation_id="list_items",
    summary="List items",
    description="Items in id order, ``limit`` at a time from offset ``skip``.",
)
async def list_items(
    store: StoreDep,
    skip: Annotated[int, Query(ge=0, le=2**31 - 1, description="How many items to skip.")] = 0,
    limit: Annotated[int, Query(ge=1, le=100, description="How many items to return.")] = 50,
) -> list[ItemOut]:
    return [ItemOut.of(item) for item in await store.list_items(skip=skip, limit=limit)]


@router.post(
    "",
    name="create_item",
    operation_id="create_item",
    status_code=201,
    summary="Create an item",
    description="The price is in euros. The response's ``Location`` header points at the new item.",
    responses={201: {"headers": _LOCATION_HEADER | ETAG_HEADER}},
)
async def create_item(body: ItemIn, store: StoreDep, request: Request, response: Response) -> ItemOut:
    item = await store.create_item(NewItem(name=body.name, price=Money.of(body.price)))
    response.headers["Location"] = location_of(request, "read_item", item_id=item.id)
    response.headers["ETag"] = etag_of(item)
    return ItemOut.of(item)


@router.get(
    "/{item_id}",
    name="read_item",
    operation_id="read_item",
    summary="Read an item",
    response_model=ItemOut,
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND_RESPONSES, **NOT_MODIFIED_RESPONSES},
)
async def read_item(
    item_id: ItemIdPath, store: StoreDep, response: Response, if_none_match: IfNoneMatch = None
) -> ItemOut | Response:
    condition = if_none_match_condition(if_none_match)
    item = await store.get_item(item_id)
    if item is not None and (unchanged := not_modified(condition, item)) is not None:
        return unchanged
    return ItemOut.of(tagged(item, item_id, response))


@router.put(
    "/{item_id}",
    name="replace_item",
    operation_id="replace_item",
    summary="Replace an item's name and price",
    description=(
        "Sets the name and the price's amount. What v1 does not show (a v2 description, tags,"
        " the price's currency) is left as it is. With ``If-Match``, only if the item has not"
        " changed since it was read."
    ),
    responses={200: {"headers": ETAG_HEADER}, **NOT_FOUND_RESPONSES, **PRECONDITION_RESPONSES},
)
async def replace_item(
    item_id: ItemIdPath, body: ItemIn, store: StoreDep, response: Response, expected: ExpectedRevisions
) -> ItemOut:
    changes: ItemChanges = {"name": body.name, "price_cents": cents_from_amount(body.price)}
    item = await store.update_item(item_id, changes, expected_revisions=expected)
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
