from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from services.catalog import CatalogStore, Money, NewItem, RecordedResponse
from services.catalog.engine import create_catalog_engine
from services.catalog.idempotency import (
    IdempotencyClaimLostError,
    IdempotentRequest,
    InvalidIdempotencyKeyError,
    KeyClaim,
    PriorRequest,
    parse_idempotency_key,
    request_hash_of,
)
from services.catalog.tables import idempotency_keys

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from services.catalog import Item

pytestmark = pytest.mark.anyio

REQUEST = IdempotentRequest("test.create", "key-1", request_hash_of({"name": "Teapot"}))


def respond(item: Item) -> RecordedResponse:
    return RecordedResponse(201, {"Location": f"/items/{item.id}"}, f'{{"id":{item.id}}}')


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[CatalogStore]:
    opened = await CatalogStore.open(database_url, busy_timeout=5)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.mark.parametrize(
    ("header", "key"),
    [("abc", "abc"), ('"abc"', "abc"), (r'"a\"b\\c"', 'a"b\\c'), ("a b", "a b"), ("~" * 255, "~" * 255)],
)
def test_keys_are_bare_or_structured_field_strings(header: str, key: str) -> None:
    assert parse_idempotency_key(header) == key


@pytest.mark.parametrize("header", ["", '""', "x" * 256, "é", "tab\there", '"open', '"a"b"', r'"\x"'])
def test_keys_outside_1_to_255_printable_ascii_are_refused(header: str) -> None:
    with pytest.raises(InvalidIdempotencyKeyError):
        parse_idempotency_key(header)


def test_the_request_hash_ignores_key_order_and_spacing_only() -> None:
    assert request_hash_of({"a": 1, "b": [1, 2]}) == request_hash_of({"b": [1, 2], "a": 1})
    assert request_hash_of({"a": 1, "b": [1, 2]}) != request_hash_of({"a": 1, "b": [2, 1]})
    assert request_hash_of({"a": "1.0"}) != request_hash_of({"a": "1.00"})


async def test_a_key_is_claimed_once_then_replays_the_recorded_response(store: CatalogStore) -> None:
    claim = await store.claim_idempotency_key(REQUEST)
    assert isinstance(claim, KeyClaim)

    in_progress = await store.claim_idempotency_key(REQUEST)
    recorded = await store.create_item_once(NewItem(name="Teapot", price=Money(100)), claim, respond)
    finished = await store.claim_idempotency_key(REQUEST)
    elsewhere = await store.claim_idempotency_key(IdempotentRequest("test.other", REQUEST.key, "0" * 64))

    assert in_progress == PriorRequest(REQUEST.request_hash, None)
    assert finished == PriorRequest(REQUEST.request_hash, recorded)
    assert recorded.headers == {"Location": recorded.headers["Location"]}
    # Keys are per operation.
    assert isinstance(elsewhere, KeyClaim)


async def test_of_concurrent_claims_in_two_stores_exactly_one_wins(database_url: str) -> None:
    stores = [await CatalogStore.open(database_url, busy_timeout=5) for _ in range(2)]
    try:
        outcomes = await asyncio.gather(
            *(stores[number % 2].claim_idempotency_key(REQUEST) for number in range(60))
        )
    finally:
        for store in stores:
            await store.close()

    assert sum(isinstance(outcome, KeyClaim) for outcome in outcomes) == 1


async def test_a_released_key_can_be_claimed_again(store: CatalogStore) -> None:
    claim = await store.claim_idempotency_key(REQUEST)
    assert isinstance(claim, KeyClaim)

    await store.release_idempotency_key(claim)

    assert isinstance(await store.claim_idempotency_key(REQUEST), KeyClaim)


async def test_expired_keys_are_claimed_afresh_and_purged(database_url: str) -> None:
    store = await CatalogStore.open(database_url, busy_timeout=5, idempotency_key_ttl=0.3)
    try:
        claim = await store.claim_idempotency_key(REQUEST)
        assert isinstance(claim, KeyClaim)
        await store.create_item_once(NewItem(name="Teapot", price=Money(100)), claim, respond)
        other = IdempotentRequest(REQUEST.operation, "key-2", REQUEST.request_hash)
        assert isinstance(await store.claim_idempotency_key(other), KeyClaim)
        await asyncio.sleep(0.4)

        # Another body is fine once the key has expired: it is a new key.
        again = await store.claim_idempotency_key(IdempotentRequest(REQUEST.operation, REQUEST.key, "f" * 64))
        purged = await store.purge_expired_idempotency_keys()

        assert isinstance(again, KeyClaim)
        assert purged == 1  # key-2; key-1 was claimed again.
    finally:
        await store.close()


async def test_an_abandoned_claim_is_taken_over_and_its_owner_cannot_finish(database_url: str) -> None:
    # call_timeout 0.4 s: a claim unfinished after its lease (three times that) was abandoned.
    store = await CatalogStore.open(database_url, busy_timeout=5, call_timeout=0.4)
    try:
        abandoned = await store.claim_idempotency_key(REQUEST)
        assert isinstance(abandoned, KeyClaim)
        assert isinstance(await store.claim_idempotency_key(REQUEST), PriorRequest)
        await asyncio.sleep(1.3)

        successor = await store.claim_idempotency_key(REQUEST)
        with pytest.raises(IdempotencyClaimLostError):
            await store.create_item_once(NewItem(name="Late", price=Money(1)), abandoned, respond)

        assert isinstance(successor, KeyClaim)
        assert await store.list_items(limit=10) == []
    finally:
        await store.close()


async def test_keys_live_in_their_own_table(store: CatalogStore, database_url: str) -> None:
    claim = await store.claim_idempotency_key(REQUEST)
    assert isinstance(claim, KeyClaim)
    await store.create_item_once(NewItem(name="Teapot", price=Money(100)), claim, respond)

    engine = create_catalog_engine(database_url, busy_timeout=5)
    try:
        async with engine.connect() as connection:
            count = (
                await connection.execute(select(func.count()).select_from(idempotency_keys))
            ).scalar_one()
    finally:
        await engine.dispose()
    assert count == 1
