"""The items catalog: the one domain every API version serves, over one store."""

from __future__ import annotations

from services.catalog.cursor import InvalidCursorError, decode_cursor, encode_cursor
from services.catalog.domain import Item, ItemChanges, NewItem
from services.catalog.money import DEFAULT_CURRENCY, AmountError, Money, amount_text, cents_from_amount
from services.catalog.store import CatalogStore
from services.catalog.web import (
    NOT_FOUND_RESPONSES,
    READINESS_CHECK_NAME,
    STORE_STATE_KEY,
    ItemIdPath,
    StoreDep,
    add_store_readiness_check,
    get_store,
    item_not_found,
    location_of,
    store_lifespan,
    store_of,
)

__all__ = [
    "DEFAULT_CURRENCY",
    "NOT_FOUND_RESPONSES",
    "READINESS_CHECK_NAME",
    "STORE_STATE_KEY",
    "AmountError",
    "CatalogStore",
    "InvalidCursorError",
    "Item",
    "ItemChanges",
    "ItemIdPath",
    "Money",
    "NewItem",
    "StoreDep",
    "add_store_readiness_check",
    "amount_text",
    "cents_from_amount",
    "decode_cursor",
    "encode_cursor",
    "get_store",
    "item_not_found",
    "location_of",
    "store_lifespan",
    "store_of",
]
