"""Creation with an ``Idempotency-Key``: claim the key, create once, replay to every retry.

- The first request with a key creates the item; its response is recorded with it, in one
  transaction, and every retry with the same body gets that response again (same status,
  Location, body), from any process, until the key expires.
- A retry while the first is still running: 409 Conflict, with Retry-After.
- The same key with another body: 422.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Header
from pydantic import Field
from starlette.exceptions import HTTPException
from starlette.responses import Response

from services.catalog.idempotency import (
    IDEMPOTENCY_KEY_MAX_HEADER_LENGTH,
    IDEMPOTENCY_KEY_PATTERN,
    IdempotencyClaimLostError,
    IdempotentRequest,
    InvalidIdempotencyKeyError,
    PriorRequest,
    RecordedResponse,
    parse_idempotency_key,
    request_hash_of,
)
from services.catalog.web import problem_response_doc

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request

    from services.catalog.domain import Item, NewItem
    from services.catalog.idempotency import KeyClaim
    from services.catalog.store import CatalogStore

REPLAYED_HEADER = "Idempotent-Replayed"
# A first request runs for milliseconds, at most the database timeout.
_IN_PROGRESS_RETRY_AFTER_SECONDS = 1
logger = logging.getLogger("services.catalog")

# Documented only: parse_idempotency_key judges the value, with its own 400.
_KeyText = Annotated[
    str,
    Field(
        json_schema_extra={
            "pattern": IDEMPOTENCY_KEY_PATTERN,
            "minLength": 1,
            "maxLength": IDEMPOTENCY_KEY_MAX_HEADER_LENGTH,
        }
    ),
]
IdempotencyKeyHeader = Annotated[
    _KeyText | None,
    Header(
        alias="Idempotency-Key",
        description=(
            "Makes the request safe to retry: a retry with the same key and body gets the first"
            " response again instead of creating another item. 1 to 255 printable ASCII characters,"
            ' bare or as a quoted string (`"…"`); a UUID is a good choice. Remembered for 24 hours'
            " by default."
        ),
    ),
]
IDEMPOTENCY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_response_doc("The Idempotency-Key is not 1 to 255 printable ASCII characters."),
    409: problem_response_doc(
        "A request with this Idempotency-Key is still in progress; retry after Retry-After seconds.",
        headers={"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    ),
}
REPLAYED_HEADER_DOC = {
    REPLAYED_HEADER: {
        "description": "`true` when this is the recorded response of an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


async def create_once(
    request: Request,
    store: CatalogStore,
    operation: str,
    idempotency_key: str,
    new_item: NewItem,
    respond: Callable[[Item], RecordedResponse],
) -> Response:
    """Create ``new_item`` unless a request with this key and body did; answer ``respond(item)``."""
    try:
        key = parse_idempotency_key(idempotency_key)
    except InvalidIdempotencyKeyError as error:
        raise HTTPException(400, str(error)) from None
    # The body FastAPI parsed (Starlette caches it), so key order and spacing do not count.
    idempotent_request = IdempotentRequest(operation, key, request_hash_of(await request.json()))
    outcome = await store.claim_idempotency_key(idempotent_request)
    if isinstance(outcome, PriorRequest):
        return _answer_retry(outcome, idempotent_request)
    try:
        recorded = await store.create_item_once(new_item, outcome, respond)
    except IdempotencyClaimLostError:
        raise HTTPException(
            409, "this request took too long and another one with its Idempotency-Key ran"
        ) from None
    except Exception:
        await _release(store, outcome)
        raise
    return response_of(recorded)


def response_of(recorded: RecordedResponse, *, replayed: bool = False) -> Response:
    headers = recorded.headers | ({REPLAYED_HEADER: "true"} if replayed else {})
    return Response(recorded.body, recorded.status, headers=headers, media_type="application/json")


def _answer_retry(prior: PriorRequest, request: IdempotentRequest) -> Response:
    if prior.request_hash != request.request_hash:
        raise HTTPException(422, "this Idempotency-Key was used with another request body; use a new key")
    if prior.response is None:
        raise HTTPException(
            409,
            "a request with this Idempotency-Key is still in progress",
            headers={"Retry-After": str(_IN_PROGRESS_RETRY_AFTER_SECONDS)},
        )
    return response_of(prior.response, replayed=True)


async def _release(store: CatalogStore, claim: KeyClaim) -> None:
    # Without this a retry would get 409 until the claim's lease ran out.
    try:
        await store.release_idempotency_key(claim)
    except Exception as error:  # Most likely the failure that ended the request, again.
        logger.warning(
            "could not release Idempotency-Key %r (it frees up when its lease ends): %r",
            claim.request.key,
            error,
        )
