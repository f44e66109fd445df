"""v1's endpoints over the shared catalog store."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.requests import Request

from services.catalog import (
    NOT_FOUND_RESPONSES,
    ItemIdPath,
    Money,
    NewItem,
    StoreDep,
    cents_from_amount,
    item_not_found,
    location_of,
)
from services.v1.schemas import ItemIn, ItemOut

router = APIRouter(prefix="/items", tags=["items"])

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
    responses={201: {"headers": _LOCATION_HEADER}},
)
async def create_item(body: ItemIn, store: StoreDep, request: Request, response: Response) -> ItemOut:
    item = await store.create_item(NewItem(name=body.name, price=Money.of(body.price)))
    response.headers["Location"] = location_of(request, "read_item", item_id=item.id)
    return ItemOut.of(item)


@router.get(
    "/{item_id}",
    name="read_item",
    operation_id="read_item",
    summary="Read an item",
    responses=NOT_FOUND_RESPONSES,
)
async def read_item(item_id: ItemIdPath, store: StoreDep) -> ItemOut:
    item = await store.get_item(item_id)
    if item is None:
        raise item_not_found(item_id)
    return ItemOut.of(item)


@router.put(
    "/{item_id}",
    name="replace_item",
    operation_id="replace_item",
    summary="Replace an item's name and price",
    description=(
        "Sets the name and the price's amount. What v1 does not show (a v2 description, tags,"
        " the price's currency) is left as it is."
    ),
    responses=NOT_FOUND_RESPONSES,
)
async def replace_item(item_id: ItemIdPath, body: ItemIn, store: StoreDep) -> ItemOut:
    item = await store.update_item(item_id, {"name": body.name, "price_cents": cents_from_amount(body.price)})
    if item is None:
        raise item_not_found(item_id)
    return ItemOut.of(item)


@router.delete(
    "/{item_id}",
    name="delete_item",
    operation_id="delete_item",
    status_code=204,
    summary="Delete an item",
    responses=NOT_FOUND_RESPONSES,
)
async def delete_item(item_id: ItemIdPath, store: StoreDep) -> None:
    if not await store.delete_item(item_id):
        raise item_not_found(item_id)
