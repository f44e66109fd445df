"""v1 and v2 over one database file: the shared catalog seen through both formats."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.routing import Mount, Router

from services import v1, v2
from services.catalog import store_of
from services.catalog.settings import CatalogSettings
from tests.services.utils import exact_json, serve

if TYPE_CHECKING:
    pass

pytestmark = pytest.mark.anyio


def two_decimal_amounts() -> list[Decimal]:
    fixed = [
        "0",
        "0.01",
        "0.1",
        "0.99",
        "1",
        "19.99",
        "100.5",
        "1234567.89",
        "999999999.99",
        "999999999999.99",
    ]
    powers = [Decimal(10**digits - 1).scaleb(-2) for digits in range(1, 15)]
    generator = random.Random(9457)
    sampled = [
        Decimal(generator.randrange(10**digits)).scaleb(-2) for digits in range(1, 15) for _ in range(8)
    ]
    return [Decimal(text) for text in fixed] + powers + sampled


async def test_an_item_created_in_v1_reads_in_v2(
    v1_client: httpx.AsyncClient, v2_client: httpx.AsyncClient
) -> None:
    created = (await v1_client.post("/items", json={"name": "Teapot", "price": 12.5})).json()

    read = (await v2_client.get(f"/items/{created['id']}")).json()

    assert read["name"] == "Teapot"
    assert read["price"] == {"amount": "12.50", "currency": "EUR"}
    assert read["description"] is None
    assert read["tags"] == []


async def test_replacing_in_v1_keeps_what_only_v2_shows(
    v1_client: httpx.AsyncClient, v2_client: httpx.AsyncClient
) -> None:
    body = {
        "name": "Teapot",
        "description": "Cast iron.",
        "price": {"amount": "12.50", "currency": "USD"},
        "tags": ["kitchen", "iron"],
    }
    created = (await v2_client.post("/items", json=body)).json()

    replaced = await v1_client.put(f"/items/{created['id']}", json={"name": "Kettle", "price": 30.25})
    read = (await v2_client.get(f"/items/{created['id']}")).json()

    assert replaced.json() == {"id": created["id"], "name": "Kettle", "price": 30.25}
    assert read["name"] == "Kettle"
    assert read["price"] == {"amount": "30.25", "currency": "USD"}
    assert read["description"] == "Cast iron."
    assert read["tags"] == ["kitchen", "iron"]
    assert read["created_at"] == created["created_at"]


async def test_deleting_in_one_version_deletes_in_the_other(
    v1_client: httpx.AsyncClient, v2_client: httpx.AsyncClient
) -> None:
    created = (await v2_client.post("/items", json={"name": "Cup", "price": {"amount": "2"}})).json()

    assert (await v1_client.delete(f"/items/{created['id']}")).status_code == 204
    assert (await v2_client.get(f"/items/{created['id']}")).status_code == 404


async def test_prices_round_trip_exactly_between_versions(
    v1_client: httpx.AsyncClient, v2_client: httpx.AsyncClient
) -> None:
    for amount in two_decimal_amounts():
        # The JSON number is written out digit for digit, as a client would.
        v1_body = f'{{"name": "priced", "price": {amount}}}'
        from_v1 = await v1_client.post(
            "/items", content=v1_body, headers={"content-type": "application/json"}
        )
        from_v2 = await v2_client.post("/items", json={"name": "priced", "price": {"amount": str(amount)}})
        assert from_v1.status_code == from_v2.status_code == 201, amount

        for created in (from_v1, from_v2):
            item_id = created.json()["id"]
            as_v1 = exact_json(await v1_client.get(f"/items/{item_id}"))
            as_v2 = (await v2_client.get(f"/items/{item_id}")).json()
            assert as_v1["price"] == amount
            assert as_v2["price"]["amount"] == f"{amount:.2f}"


async def test_concurrent_patches_from_two_apps_lose_no_update(settings: CatalogSettings) -> None:
    first, second = v2.create_app(settings), v2.create_app(settings)
    async with serve(first) as first_client, serve(second) as second_client:
        created = (
            await first_client.post("/items", json={"name": "Teapot", "price": {"amount": "1"}})
        ).json()

        # Half of them replace the tags too: several statements in one write transaction.
        responses = await asyncio.gather(
            *(
                (first_client if number % 2 else second_client).patch(
                    f"/items/{created['id']}",
                    json={"name": f"name {number}"} | ({"tags": [f"tag {number}"]} if number % 4 < 2 else {}),
                )
                for number in range(50)
            )
        )

        assert [response.status_code for response in responses] == [200] * 50
        item = await store_of(second).get_item(created["id"])
        assert item is not None
        assert item.revision == 51
        assert len(item.tags) == 1


async def test_location_points_into_each_mounted_version_behind_a_proxy_prefix(
    settings: CatalogSettings,
) -> None:
    # As the gateway mounts them: under /v1 and /v2, with a proxy's /api root path. Both
    # apps have a read_item route, so a name looked up from the root would be ambiguous.
    first, second = v1.create_app(settings), v2.create_app(settings)
    root = Router([Mount("/v1", app=first), Mount("/v2", app=second)])
    async with serve(first), serve(second):
        transport = httpx.ASGITransport(app=root, root_path="/api")
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy.test") as client:
            from_v1 = await client.post("/api/v1/items", json={"name": "Teapot", "price": 1})
            from_v2 = await client.post("/api/v2/items", json={"name": "Cup", "price": {"amount": "1"}})

            assert from_v1.headers["location"] == f"/api/v1/items/{from_v1.json()['id']}"
            assert from_v2.headers["location"] == f"/api/v2/items/{from_v2.json()['id']}"
            assert (await client.get(from_v2.headers["location"])).json()["name"] == "Cup"
