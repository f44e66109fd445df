from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from gateway.health import readiness_checks_of
from services import v1
from services.catalog.settings import CatalogSettings
from tests.services.utils import assert_conditional_requests_are_documented, exact_json, serve

if TYPE_CHECKING:
    import httpx

pytestmark = pytest.mark.anyio


async def test_create_read_replace_delete(v1_client: httpx.AsyncClient) -> None:
    created = await v1_client.post("/items", json={"name": "Teapot", "price": 12.5})
    assert created.status_code == 201
    item = created.json()
    assert item == {"id": item["id"], "name": "Teapot", "price": 12.5}
    assert created.headers["location"] == f"/items/{item['id']}"

    read = await v1_client.get(created.headers["location"])
    assert read.status_code == 200
    assert read.json() == item

    replaced = await v1_client.put(f"/items/{item['id']}", json={"name": "Kettle", "price": 3})
    assert replaced.status_code == 200
    assert replaced.json() == {"id": item["id"], "name": "Kettle", "price": 3}

    deleted = await v1_client.delete(f"/items/{item['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await v1_client.get(f"/items/{item['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("method", "body"), [("GET", None), ("PUT", {"name": "Kettle", "price": 1}), ("DELETE", None)]
)
async def test_a_missing_item_is_404(v1_client: httpx.AsyncClient, method: str, body: Any) -> None:
    response = await v1_client.request(method, "/items/42", json=body)

    assert response.status_code == 404
    assert response.json()["detail"] == "item 42 does not exist"


async def test_list_is_ordered_by_id_and_paginated_by_offset(v1_client: httpx.AsyncClient) -> None:
    for number in range(5):
        await v1_client.post("/items", json={"name": f"item {number}", "price": number})

    everything = (await v1_client.get("/items")).json()
    page = (await v1_client.get("/items", params={"skip": 1, "limit": 2})).json()
    past_the_end = (await v1_client.get("/items", params={"skip": 10})).json()

    assert [item["name"] for item in everything] == [f"item {number}" for number in range(5)]
    assert page == everything[1:3]
    assert past_the_end == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "price": 1},
        {"name": "x" * 201, "price": 1},
        {"name": "Teapot", "price": -0.01},
        {"name": "Teapot", "price": 12.345},
        {"name": "Teapot", "price": 1_000_000_000_000},
        {"name": "Teapot"},
        {"price": 1},
    ],
)
async def test_invalid_items_are_422(v1_client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    created = await v1_client.post("/items", json=body)
    replaced = await v1_client.put("/items/1", json=body)

    assert created.status_code == 422
    assert replaced.status_code == 422


async def test_names_of_200_characters_and_two_decimal_prices_are_valid(v1_client: httpx.AsyncClient) -> None:
    response = await v1_client.post("/items", json={"name": "x" * 200, "price": 999999999999.99})

    assert response.status_code == 201
    assert exact_json(response)["price"] == Decimal("999999999999.99")


# The JSON text of the price as the client wrote it: parsed as a float, the first two became
# 0 and 12.5 and were stored (201).
@pytest.mark.parametrize("price", ["1e-400", "12.500000000000000001", "0.001", "1e12", "1e400"])
async def test_a_price_past_two_decimals_or_the_range_is_422_whatever_a_float_makes_of_it(
    v1_client: httpx.AsyncClient, price: str
) -> None:
    body = f'{{"name": "Teapot", "price": {price}}}'.encode()
    headers = {"content-type": "application/json"}
    created = await v1_client.post("/items", content=body, headers=headers)
    replaced = await v1_client.put("/items/1", content=body, headers=headers)

    assert created.status_code == 422, created.text
    assert created.json()["detail"][0]["loc"] == ["body", "price"]
    assert replaced.status_code == 422
    assert (await v1_client.get("/items")).json() == []


@pytest.mark.parametrize(
    ("price", "stored"), [("12.50", "12.5"), ("1.100", "1.1"), ("1e2", "100"), ("0", "0")]
)
async def test_a_price_is_its_exact_decimal_value_however_written(
    v1_client: httpx.AsyncClient, price: str, stored: str
) -> None:
    body = f'{{"name": "Teapot", "price": {price}}}'.encode()
    created = await v1_client.post("/items", content=body, headers={"content-type": "application/json"})

    assert created.status_code == 201, created.text
    assert exact_json(created)["price"] == Decimal(stored)


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"skip": -1}])
async def test_invalid_pagination_is_422(v1_client: httpx.AsyncClient, params: dict[str, int]) -> None:
    assert (await v1_client.get("/items", params=params)).status_code == 422


@pytest.mark.parametrize("item_id", ["0", "abc", str(2**63)])
async def test_invalid_ids_are_422(v1_client: httpx.AsyncClient, item_id: str) -> None:
    assert (await v1_client.get(f"/items/{item_id}")).status_code == 422


async def test_the_readiness_check_needs_the_lifespan(settings: CatalogSettings) -> None:
    app = v1.create_app(settings)
    [check] = readiness_checks_of(app)
    assert check.name == "catalog-store"

    with pytest.raises(RuntimeError, match="not open"):
        await check.probe()
    async with serve(app):
        await check.probe()
    with pytest.raises(RuntimeError, match="not open"):
        await check.probe()


def test_the_schema_describes_v1(sqlite_url: str) -> None:
    schema = v1.create_app(CatalogSettings(_env_file=None, database_url=sqlite_url)).openapi()

    assert schema["info"]["title"] == "Items catalog v1"
    assert schema["info"]["version"].startswith("1.")
    operations = {
        operation["operationId"]: operation
        for path_item in schema["paths"].values()
        for operation in path_item.values()
    }
    assert set(operations) == {"list_items", "create_item", "read_item", "replace_item", "delete_item"}
    assert all(operation["summary"] for operation in operations.values())
    assert {"Location", "ETag"} <= set(operations["create_item"]["responses"]["201"]["headers"])
    assert_conditional_requests_are_documented(operations, write="replace_item")
    price = schema["components"]["schemas"]["ItemIn"]["properties"]["price"]
    assert (price["type"], price["minimum"], price["exclusiveMaximum"], price["multipleOf"]) == (
        "number",
        0,
        10**12,
        0.01,
    )
