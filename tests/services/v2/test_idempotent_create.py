"""POST /items with an Idempotency-Key: one creation, however many retries, from any instance."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest

from services import v2
from services.catalog import CatalogUnavailableError, store_of
from services.catalog.idempotency import IdempotentRequest, KeyClaim, request_hash_of
from services.catalog.settings import CatalogSettings
from tests.services.utils import serve

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.anyio

TEAPOT = {"name": "Teapot", "price": {"amount": "12.50", "currency": "EUR"}, "tags": ["kitchen"]}


async def count_items(client: httpx.AsyncClient) -> int:
    return len((await client.get("/items", params={"limit": 100})).json()["data"])


async def test_a_retry_gets_the_first_response_again(v2_client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-1"}
    first = await v2_client.post("/items", json=TEAPOT, headers=headers)
    # The same body, differently spelled: key order and spacing do not count.
    same_body = json.dumps(dict(reversed(TEAPOT.items())), indent=2)
    retry = await v2_client.post(
        "/items", content=same_body, headers=headers | {"content-type": "application/json"}
    )
    quoted = await v2_client.post("/items", json=TEAPOT, headers={"Idempotency-Key": '"order-1"'})

    assert first.status_code == retry.status_code == quoted.status_code == 201
    assert "idempotent-replayed" not in first.headers
    for replay in (retry, quoted):
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.content == first.content
        assert replay.headers["location"] == first.headers["location"]
        assert replay.headers["etag"] == first.headers["etag"]
    assert await count_items(v2_client) == 1


async def test_without_a_key_every_post_creates(v2_client: httpx.AsyncClient) -> None:
    first = await v2_client.post("/items", json=TEAPOT)
    second = await v2_client.post("/items", json=TEAPOT)

    assert first.json()["id"] != second.json()["id"]
    assert first.headers["location"] == f"/items/{first.json()['id']}"
    assert first.headers["etag"] == f'"{first.json()["id"]}-1"'


async def test_a_retry_while_the_first_runs_is_409(settings: CatalogSettings) -> None:
    app = v2.create_app(settings)
    async with serve(app) as client:
        # The first request has claimed the key and not finished.
        request = IdempotentRequest("v2.create_item", "order-1", request_hash_of(TEAPOT))
        assert isinstance(await store_of(app).claim_idempotency_key(request), KeyClaim)

        response = await client.post("/items", json=TEAPOT, headers={"Idempotency-Key": "order-1"})

        assert response.status_code == 409
        assert response.headers["retry-after"] == "1"
        assert "in progress" in response.json()["detail"]
        assert await count_items(client) == 0


async def test_the_same_key_with_another_body_is_422(v2_client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-1"}
    assert (await v2_client.post("/items", json=TEAPOT, headers=headers)).status_code == 201

    response = await v2_client.post("/items", json=TEAPOT | {"name": "Kettle"}, headers=headers)

    assert response.status_code == 422
    assert "another request body" in response.json()["detail"]
    assert await count_items(v2_client) == 1


async def test_an_invalid_body_does_not_use_the_key_up(v2_client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "order-1"}
    invalid = await v2_client.post("/items", json={"name": ""}, headers=headers)
    valid = await v2_client.post("/items", json=TEAPOT, headers=headers)

    assert (invalid.status_code, valid.status_code) == (422, 201)


@pytest.mark.parametrize("key", ["", "x" * 256, "ключ", '"unterminated', "tab\tinside"])
async def test_invalid_keys_are_400(v2_client: httpx.AsyncClient, key: str) -> None:
    response = await v2_client.post("/items", json=TEAPOT, headers={b"Idempotency-Key": key.encode()})

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert await count_items(v2_client) == 0


async def test_a_failed_creation_frees_the_key_for_a_retry(
    settings: CatalogSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = v2.create_app(settings)
    async with serve(app) as client:
        store = store_of(app)
        create_item_once = store.create_item_once

        async def fail_once(*args: object, **kwargs: object) -> object:
            monkeypatch.setattr(store, "create_item_once", create_item_once)
            raise CatalogUnavailableError("the database went away")

        monkeypatch.setattr(store, "create_item_once", fail_once)
        headers = {"Idempotency-Key": "order-1"}
        failed = await client.post("/items", json=TEAPOT, headers=headers)
        retried = await client.post("/items", json=TEAPOT, headers=headers)

        assert failed.status_code == 503
        assert retried.status_code == 201
        assert "idempotent-replayed" not in retried.headers


async def test_keys_expire(database_url: str) -> None:
    settings = CatalogSettings(_env_file=None, database_url=database_url, idempotency_key_ttl=0.3)
    async with serve(v2.create_app(settings)) as client:
        headers = {"Idempotency-Key": "order-1"}
        first = await client.post("/items", json=TEAPOT, headers=headers)
        await asyncio.sleep(0.4)
        after_expiry = await client.post("/items", json=TEAPOT | {"name": "Kettle"}, headers=headers)

    assert first.status_code == after_expiry.status_code == 201
    assert after_expiry.json()["id"] != first.json()["id"]
    assert "idempotent-replayed" not in after_expiry.headers


async def test_100_concurrent_retries_on_two_instances_create_one_item(settings: CatalogSettings) -> None:
    first, second = v2.create_app(settings), v2.create_app(settings)
    async with serve(first) as first_client, serve(second) as second_client:
        responses = await asyncio.gather(
            *(
                (first_client if number % 2 else second_client).post(
                    "/items", json=TEAPOT, headers={"Idempotency-Key": "order-1"}
                )
                for number in range(100)
            )
        )
        settled = await first_client.post("/items", json=TEAPOT, headers={"Idempotency-Key": "order-1"})
        count = await count_items(second_client)

    created = [response for response in responses if response.status_code == 201]
    assert {response.status_code for response in responses} <= {201, 409}
    assert sum("idempotent-replayed" not in response.headers for response in created) == 1
    assert {(response.content, response.headers["location"]) for response in [*created, settled]} == {
        (settled.content, settled.headers["location"])
    }
    assert count == 1
