"""The internal API's export and import, on both stores, next to v2 over the same database."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import insert

from services.catalog.engine import create_catalog_engine, writer_of
from services.catalog.tables import items
from services.internal.routes import EXPORT_PAGE_SIZE
from services.internal.schemas import MAX_IMPORT_BATCH
from tests.database_fixtures import POSTGRESQL
from tests.services.databases import item_row, wait_until_a_statement_waits_on_a_lock

if TYPE_CHECKING:
    import httpx


pytestmark = pytest.mark.anyio


def item(item_id: int, **fields: Any) -> dict[str, Any]:
    return {"id": item_id, "name": f"Item {item_id}", "price": {"amount": "1.00"}, **fields}


async def import_items(client: httpx.AsyncClient, *items: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/items/import", json={"items": list(items)})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def export_lines(client: httpx.AsyncClient, **params: int) -> list[dict[str, Any]]:
    response = await client.get("/items/export", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.endswith("\n") or response.text == ""
    return [json.loads(line) for line in response.text.splitlines()]


async def test_an_import_creates_updates_and_leaves_alone_by_id(
    internal_client: httpx.AsyncClient, v2_client: httpx.AsyncClient
) -> None:
    first = await import_items(internal_client, item(5, tags=["a", "b"]), item(9))
    assert (first["created"], first["updated"], first["unchanged"]) == (2, 0, 0)
    assert [(result["id"], result["status"], result["revision"]) for result in first["results"]] == [
        (5, "created", 1),
        (9, "created", 1),
    ]

    again = await import_items(internal_client, item(5, tags=["a", "b"]), item(9))
    assert [result["status"] for result in again["results"]] == ["unchanged", "unchanged"]

    changed = await import_items(
        internal_client, item(9), item(5, tags=["b"], price={"amount": "2.00", "currency": "USD"}), item(7)
    )
    assert [(result["id"], result["status"], result["revision"]) for result in changed["results"]] == [
        (9, "unchanged", 1),
        (5, "updated", 2),
        (7, "created", 1),
    ]
    # v2 reads what came in, under the ETag the import reported.
    read = await v2_client.get("/items/5")
    assert read.json()["price"] == {"amount": "2.00", "currency": "USD"}
    assert read.json()["tags"] == ["b"]
    assert read.headers["etag"] == changed["results"][1]["etag"]


async def test_items_created_after_an_import_never_take_an_imported_id(
    internal_client: httpx.AsyncClient, v2_client: httpx.AsyncClient
) -> None:
    await import_items(internal_client, item(40), item(41))
    created = await v2_client.post("/items", json={"name": "New", "price": {"amount": "1.00"}})
    assert created.status_code == 201, created.text
    assert created.json()["id"] > 41
    # Nor does an import move ids backwards: a lower id imported later leaves the next one alone.
    await import_items(internal_client, item(3))
    newer = await v2_client.post("/items", json={"name": "Newer", "price": {"amount": "1.00"}})
    assert newer.json()["id"] > created.json()["id"]


@pytest.mark.parametrize(
    ("items", "location"),
    [
        ([item(1), item(1)], ["body", "items"]),
        ([item(1), item(2, price={"amount": 1.5})], ["body", "items", 1, "price", "amount"]),
        ([item(1, price={"amount": "12.500000000000000001"})], ["body", "items", 0, "price", "amount"]),
        ([item(1, price={"amount": "1e-400"})], ["body", "items", 0, "price", "amount"]),
        ([item(0)], ["body", "items", 0, "id"]),
        ([item(1, colour="red")], ["body", "items", 0, "colour"]),
        ([], ["body", "items"]),
    ],
)
async def test_an_invalid_batch_is_refused_whole_and_says_where(
    internal_client: httpx.AsyncClient, items: list[dict[str, Any]], location: list[object]
) -> None:
    response = await internal_client.post("/items/import", json={"items": items})
    assert response.status_code == 422
    assert location in [error["location"] for error in response.json()["errors"]]
    assert await export_lines(internal_client) == []


async def test_a_batch_has_a_size_limit(internal_client: httpx.AsyncClient) -> None:
    response = await internal_client.post(
        "/items/import", json={"items": [item(number) for number in range(1, MAX_IMPORT_BATCH + 2)]}
    )
    assert response.status_code == 422


async def test_the_export_streams_every_item_in_id_order_across_pages(
    internal_client: httpx.AsyncClient, v2_client: httpx.AsyncClient
) -> None:
    total = EXPORT_PAGE_SIZE * 2 + 7
    for start in range(1, total + 1, MAX_IMPORT_BATCH):
        batch = [
            item(number, tags=["bulk"]) for number in range(start, min(start + MAX_IMPORT_BATCH, total + 1))
        ]
        await import_items(internal_client, *batch)
    await v2_client.delete("/items/3")

    lines = await export_lines(internal_client)
    assert [line["id"] for line in lines] == [number for number in range(1, total + 1) if number != 3]
    assert lines[0] == {
        "id": 1,
        "name": "Item 1",
        "description": None,
        "price": {"amount": "1.00", "currency": "EUR"},
        "tags": ["bulk"],
        "created_at": lines[0]["created_at"],
        "updated_at": lines[0]["updated_at"],
        "revision": 1,
    }
    # A cut-short export resumes after the last id it received.
    resumed = await export_lines(internal_client, after=EXPORT_PAGE_SIZE)
    assert resumed[0]["id"] == EXPORT_PAGE_SIZE + 1
    assert len(resumed) == total - EXPORT_PAGE_SIZE


async def test_exported_lines_import_as_they_are(internal_client: httpx.AsyncClient) -> None:
    await import_items(internal_client, item(1, description="Round trip", tags=["x"]))
    lines = await export_lines(internal_client)
    report = await import_items(internal_client, *lines)
    assert [result["status"] for result in report["results"]] == ["unchanged"]


async def test_an_empty_catalog_exports_nothing(internal_client: httpx.AsyncClient) -> None:
    assert await export_lines(internal_client) == []


@pytest.mark.parametrize("database_url", [POSTGRESQL], indirect=True)
async def test_an_import_that_meets_a_concurrent_creation_is_a_409_that_imports_nothing(
    internal_client: httpx.AsyncClient, database_url: str
) -> None:
    other = create_catalog_engine(database_url, busy_timeout=5)
    try:
        async with writer_of(other).connect() as poster:
            transaction = await poster.begin()
            # A POST's insert, uncommitted: it drew id 1 from the sequence.
            statement = insert(items).values(item_row(name="Posted")).returning(items.c.id)
            drawn = (await poster.execute(statement)).scalar_one()
            importing = asyncio.ensure_future(
                internal_client.post("/items/import", json={"items": [item(drawn), item(drawn + 1)]})
            )
            await wait_until_a_statement_waits_on_a_lock(other)
            await transaction.commit()
        response = await importing
    finally:
        await other.dispose()
    assert response.status_code == 409
    assert "nothing was imported" in response.json()["detail"]
    assert [line["name"] for line in await export_lines(internal_client)] == ["Posted"]
