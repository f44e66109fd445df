"""The items catalog: the one domain every API version serves, over one store."""

from __future__ import annotations

from services.catalog.availability import CatalogUnavailableError
from services.catalog.cursor import InvalidCursorError, decode_cursor, encode_cursor
from services.catalog.domain import Item, ItemChanges, NewItem, RevisionMismatchError
from services.catalog.idempotency import RecordedResponse
from services.catalog.idempotent_create import (
    IDEMPOTENCY_RESPONSES,
    REPLAYED_HEADER_DOC,
    IdempotencyKeyHeader,
    create_once,
    response_of,
)
from services.catalog.money import DEFAULT_CURRENCY, AmountError, Money, amount_text, cents_from_amount
from services.catalog.preconditions import (
    ETAG_HEADER,
    NOT_MODIFIED_RESPONSES,
    PRECONDITION_RESPONSES,
    ExpectedRevisions,
    IfNoneMatch,
    etag_of,
    if_none_match_condition,
    not_modified,
    tagged,
    tagged_response,
)
from services.catalog.store import CatalogStore
from services.catalog.web import (
    NOT_FOUND_RESPONSES,
    READINESS_CHECK_NAME,
    STORE_STATE_KEY,
    UNAVAILABLE_RESPONSES,
    ItemIdPath,
    StoreDep,
    add_store_readiness_check,
    create_catalog_app,
    get_store,
    install_store_error_handlers,
    item_not_found,
    json_response,
    location_of,
    store_lifespan,
    store_of,
)

__all__ = [
    "DEFAULT_CURRENCY",
    "ETAG_HEADER",
    "IDEMPOTENCY_RESPONSES",
    "NOT_FOUND_RESPONSES",
    "NOT_MODIFIED_RESPONSES",
    "PRECONDITION_RESPONSES",
    "READINESS_CHECK_NAME",
    "REPLAYED_HEADER_DOC",
    "STORE_STATE_KEY",
    "UNAVAILABLE_RESPONSES",
    "AmountError",
    "CatalogStore",
    "CatalogUnavailableError",
    "ExpectedRevisions",
    "IdempotencyKeyHeader",
    "IfNoneMatch",
    "InvalidCursorError",
    "Item",
    "ItemChanges",
    "ItemIdPath",
    "Money",
    "NewItem",
    "RecordedResponse",
    "RevisionMismatchError",
    "StoreDep",
    "add_store_readiness_check",
    "amount_text",
    "cents_from_amount",
    "create_catalog_app",
    "create_once",
    "decode_cursor",
    "encode_cursor",
    "etag_of",
    "get_store",
    "if_none_match_condition",
    "install_store_error_handlers",
    "item_not_found",
    "json_response",
    "location_of",
    "not_modified",
    "response_of",
    "store_lifespan",
    "store_of",
    "tagged",
    "tagged_response",
]
