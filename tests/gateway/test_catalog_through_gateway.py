"""The shipped versions behind the gateway: one catalog, two formats, lifecycle on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from gateway.settings import Settings
from tests.conftest import catalog_versions, open_client

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(make_settings(versions=catalog_versions()), root_path="/api"):
        yield client


async def test_an_item_written_through_v1_is_read_through_v2(gateway: httpx.AsyncClient) -> None:
    created = await gateway.post("/api/v1/items", json={"name": "Widget", "price": 12.5})
    assert created.status_code == 201
    item_id = created.json()["id"]
    assert created.headers["location"] == f"/api/v1/items/{item_id}"
    read = (await gateway.get(f"/api/v2/items/{item_id}")).json()
    assert read["name"] == "Widget"
    assert read["price"] == {"amount": "12.50", "currency": "EUR"}


async def test_a_v1_update_keeps_what_only_v2_knows(gateway: httpx.AsyncClient) -> None:
    created = await gateway.post(
        "/api/v2/items",
        json={
            "name": "Lamp",
            "description": "Brass",
            "price": {"amount": "40.00", "currency": "USD"},
            "tags": ["home"],
        },
    )
    item_id = created.json()["id"]
    assert created.headers["location"] == f"/api/v2/items/{item_id}"
    replaced = await gateway.put(f"/api/v1/items/{item_id}", json={"name": "Lamp II", "price": 41.99})
    assert replaced.status_code == 200
    read = (await gateway.get(f"/api/v2/items/{item_id}")).json()
    assert read["name"] == "Lamp II"
    assert read["description"] == "Brass"
    assert read["tags"] == ["home"]
    assert read["price"] == {"amount": "41.99", "currency": "USD"}


async def test_v1_announces_its_deprecation_and_v2_does_not(gateway: httpx.AsyncClient) -> None:
    v1 = await gateway.get("/api/v1/items")
    assert v1.status_code == 200
    assert v1.headers["deprecation"].startswith("@")
    assert v1.headers["sunset"].endswith("GMT")
    assert '</api/v2/>; rel="successor-version"' in v1.headers.get_list("link")
    v2 = await gateway.get("/api/v2/items")
    assert "deprecation" not in v2.headers
    assert v2.json() == {"data": [], "next_cursor": None}


async def test_index_and_readiness_cover_both_versions(gateway: httpx.AsyncClient) -> None:
    versions = {
        version["name"]: version["status"] for version in (await gateway.get("/api/")).json()["versions"]
    }
    assert versions == {"v1": "deprecated", "v2": "current"}
    ready = await gateway.get("/api/health/ready")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"v1:catalog-store", "v2:catalog-store"}


async def test_each_version_serves_its_own_schema(gateway: httpx.AsyncClient) -> None:
    v1 = (await gateway.get("/api/v1/openapi.json")).json()
    v2 = (await gateway.get("/api/v2/openapi.json")).json()
    assert v1["info"]["title"] != v2["info"]["title"]
    assert v1["servers"] == [{"url": "/api/v1"}]
    assert v2["servers"] == [{"url": "/api/v2"}]
    assert "replace_item" in {op["operationId"] for path in v1["paths"].values() for op in path.values()}
    assert "update_item" in {op["operationId"] for path in v2["paths"].values() for op in path.values()}


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_validation_errors_of_either_version_are_problems(
    gateway: httpx.AsyncClient, version: str
) -> None:
    response = await gateway.get(f"/api/{version}/items", params={"limit": 0})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    (error,) = response.json()["errors"]
    assert error["location"] == ["query", "limit"]


async def test_a_missing_item_is_a_404_problem_in_both_versions(gateway: httpx.AsyncClient) -> None:
    for version in ("v1", "v2"):
        response = await gateway.get(f"/api/{version}/items/424242")
        assert response.status_code == 404
        body = response.json()
        assert body["instance"] == f"/api/{version}/items/424242"
        assert "424242" in body["detail"]
