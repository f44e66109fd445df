from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from gateway.health import readiness_checks_of
from gateway.openapi import document_problem_responses
from services import v2
from services.catalog import encode_cursor
from services.catalog.settings import CatalogSettings
from tests.services.utils import assert_conditional_requests_are_documented, serve

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

pytestmark = pytest.mark.anyio

TEAPOT = {
    "name": "Teapot",
    "description": "Cast iron.",
    "price": {"amount": "12.5", "currency": "USD"},
    "tags": ["kitchen", "iron", "kitchen"],
}


async def create(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "Item", "price": {"amount": "1.00"}, **fields}
    response = await client.post("/items", json=body)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def test_create_read_update_delete(v2_client: httpx.AsyncClient) -> None:
    created = await v2_client.post("/items", json=TEAPOT)
    assert created.status_code == 201
    item = created.json()
    assert item["name"] == "Teapot"
    assert item["description"] == "Cast iron."
    assert item["price"] == {"amount": "12.50", "currency": "USD"}
    assert item["tags"] == ["kitchen", "iron"]
    assert item["created_at"] == item["updated_at"]
    assert item["created_at"].endswith("Z")
    assert created.headers["location"] == f"/items/{item['id']}"

    assert (await v2_client.get(created.headers["location"])).json() == item

    updated = await v2_client.patch(f"/items/{item['id']}", json={"name": "Kettle"})
    assert updated.status_code == 200
    assert updated.json()["name"] == "Kettle"
    assert updated.json()["updated_at"] > item["updated_at"]

    assert (await v2_client.delete(f"/items/{item['id']}")).status_code == 204
    assert (await v2_client.get(f"/items/{item['id']}")).status_code == 404


async def test_defaults_of_a_new_item(v2_client: httpx.AsyncClient) -> None:
    item = await create(v2_client, name="Cup", price={"amount": "3"})

    assert item["description"] is None
    assert item["tags"] == []
    assert item["price"] == {"amount": "3.00", "currency": "EUR"}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({}, {}),
        ({"name": "Kettle"}, {"name": "Kettle"}),
        ({"description": None}, {"description": None}),
        ({"description": "Enamel."}, {"description": "Enamel."}),
        ({"tags": []}, {"tags": []}),
        ({"tags": ["b", "a", "b"]}, {"tags": ["b", "a"]}),
        ({"price": {"amount": "7.1"}}, {"price": {"amount": "7.10", "currency": "USD"}}),
        ({"price": {"amount": "7", "currency": "GBP"}}, {"price": {"amount": "7.00", "currency": "GBP"}}),
    ],
)
async def test_patch_changes_only_what_the_body_names(
    v2_client: httpx.AsyncClient, patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    item = await create(v2_client, **TEAPOT)

    response = await v2_client.patch(f"/items/{item['id']}", json=patch)

    assert response.status_code == 200
    changed = response.json()
    unchanged_fields = {"id", "name", "description", "price", "tags", "created_at"} - set(expected)
    assert {field: changed[field] for field in unchanged_fields} == {
        field: item[field] for field in unchanged_fields
    }
    assert {field: changed[field] for field in expected} == expected
    assert (await v2_client.get(f"/items/{item['id']}")).json() == changed


@pytest.mark.parametrize(
    "patch",
    [
        {"name": None},
        {"name": ""},
        {"price": None},
        {"price": {"amount": "-1"}},
        {"price": {"amount": "1.005"}},
        {"tags": None},
        {"unknown": 1},
    ],
)
async def test_invalid_patches_are_422(v2_client: httpx.AsyncClient, patch: dict[str, Any]) -> None:
    item = await create(v2_client)

    response = await v2_client.patch(f"/items/{item['id']}", json=patch)

    assert response.status_code == 422
    assert (await v2_client.get(f"/items/{item['id']}")).json() == item


async def test_patching_a_missing_item_is_404(v2_client: httpx.AsyncClient) -> None:
    response = await v2_client.patch("/items/42", json={"name": "Kettle"})

    assert response.status_code == 404
    assert response.json()["detail"] == "item 42 does not exist"


@pytest.mark.parametrize(
    ("field", "value", "location"),
    [
        ("name", "", ["body", "name"]),
        ("name", "x" * 201, ["body", "name"]),
        ("price", {"amount": "-0.01"}, ["body", "price", "amount"]),
        ("price", {"amount": "12.345"}, ["body", "price", "amount"]),
        ("price", {"amount": 12.5}, ["body", "price", "amount"]),
        ("price", {"amount": "1e3"}, ["body", "price", "amount"]),
        ("price", {"amount": "1e-400"}, ["body", "price", "amount"]),
        ("price", {"amount": "12.500000000000000001"}, ["body", "price", "amount"]),
        ("price", {"amount": "NaN"}, ["body", "price", "amount"]),
        ("price", {"amount": "1000000000000"}, ["body", "price", "amount"]),
        ("price", {"amount": "1", "currency": "eur"}, ["body", "price", "currency"]),
        ("tags", [""], ["body", "tags", 0]),
        ("tags", ["x" * 51], ["body", "tags", 0]),
        ("tags", [f"tag {number}" for number in range(21)], ["body", "tags"]),
    ],
)
async def test_invalid_items_are_422_with_the_field(
    v2_client: httpx.AsyncClient, field: str, value: Any, location: list[str | int]
) -> None:
    body = {"name": "Item", "price": {"amount": "1.00"}, field: value}

    response = await v2_client.post("/items", json=body)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [location]


async def test_limits_of_valid_items(v2_client: httpx.AsyncClient) -> None:
    item = await create(
        v2_client,
        name="x" * 200,
        price={"amount": "999999999999.99"},
        tags=[f"{number:050d}" for number in range(20)],
    )

    assert item["price"]["amount"] == "999999999999.99"
    assert len(item["tags"]) == 20


async def test_pages_follow_the_cursor_to_the_end(v2_client: httpx.AsyncClient) -> None:
    ids = [(await create(v2_client, name=f"item {number}"))["id"] for number in range(5)]

    first = (await v2_client.get("/items", params={"limit": 2})).json()
    second = (await v2_client.get("/items", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    third = (await v2_client.get("/items", params={"limit": 2, "cursor": second["next_cursor"]})).json()
    whole = (await v2_client.get("/items", params={"limit": 5})).json()

    assert [item["id"] for page in (first, second, third) for item in page["data"]] == ids
    assert third["next_cursor"] is None
    assert whole["next_cursor"] is None
    assert (await v2_client.get("/items")).json() == whole


async def test_cursor_pages_see_every_lasting_item_once_while_items_come_and_go(
    v2_client: httpx.AsyncClient,
) -> None:
    initial = [(await create(v2_client, name=f"initial {number}"))["id"] for number in range(30)]
    deleted: set[int] = set()
    deleted_before_seen: set[int] = set()
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = (await v2_client.get("/items", params=params)).json()
        seen.extend(item["id"] for item in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # Between pages: two new items, one deletion behind the cursor and one ahead of it.
        for _ in range(2):
            await create(v2_client, name="newcomer")
        behind = next((item_id for item_id in seen if item_id not in deleted), None)
        ahead = next((item_id for item_id in initial if item_id not in deleted and item_id not in seen), None)
        for item_id in (behind, ahead):
            if item_id is not None:
                assert (await v2_client.delete(f"/items/{item_id}")).status_code == 204
                deleted.add(item_id)
        if ahead is not None:
            deleted_before_seen.add(ahead)

    assert len(seen) == len(set(seen))
    assert seen == sorted(seen)
    lasting = set(initial) - deleted
    assert lasting <= set(seen)
    assert deleted_before_seen
    assert not deleted_before_seen & set(seen)


async def test_tag_filters_the_list_and_its_pages(v2_client: httpx.AsyncClient) -> None:
    tagged = []
    for number in range(7):
        tags = ["even"] if number % 2 == 0 else ["odd"]
        item = await create(v2_client, name=f"item {number}", tags=[*tags, "all"])
        if number % 2 == 0:
            tagged.append(item["id"])

    seen: list[int] = []
    params: dict[str, Any] = {"tag": "even", "limit": 3}
    while True:
        page = (await v2_client.get("/items", params=params)).json()
        seen.extend(item["id"] for item in page["data"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]

    assert seen == tagged
    assert (await v2_client.get("/items", params={"tag": "none"})).json() == {"data": [], "next_cursor": None}
    assert len((await v2_client.get("/items", params={"tag": "all"})).json()["data"]) == 7


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 101}, {"tag": ""}, {"tag": "x" * 51}, {"cursor": "x" * 65}]
)
async def test_invalid_list_parameters_are_422(v2_client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert (await v2_client.get("/items", params=params)).status_code == 422


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGEgY3Vyc29y", encode_cursor(5)[:-1]])
async def test_a_malformed_cursor_is_400(v2_client: httpx.AsyncClient, cursor: str) -> None:
    response = await v2_client.get("/items", params={"cursor": cursor})

    assert response.status_code == 400
    assert "cursor" in response.json()["detail"]


async def test_the_readiness_check_needs_the_lifespan(settings: CatalogSettings) -> None:
    app = v2.create_app(settings)
    [check] = readiness_checks_of(app)

    with pytest.raises(RuntimeError, match="not open"):
        await check.probe()
    async with serve(app):
        await check.probe()


def test_the_schema_describes_v2(sqlite_url: str) -> None:
    app = v2.create_app(CatalogSettings(_env_file=None, database_url=sqlite_url))
    # As the gateway mounts it: every error documented as a problem.
    document_problem_responses(app)
    schema = app.openapi()

    assert schema["info"]["title"] == "Items catalog v2"
    assert schema["info"]["version"].startswith("2.")
    operations = {
        operation["operationId"]: operation
        for path_item in schema["paths"].values()
        for operation in path_item.values()
    }
    assert set(operations) == {"list_items", "create_item", "read_item", "update_item", "delete_item"}
    assert all(operation["summary"] for operation in operations.values())
    amount = schema["components"]["schemas"]["PriceIn"]["properties"]["amount"]
    assert amount["type"] == "string"
    patch = schema["components"]["schemas"]["ItemPatch"]
    assert patch["properties"]["name"]["type"] == "string"
    assert "required" not in patch
    assert_conditional_requests_are_documented(operations, write="update_item")
    create = operations["create_item"]
    assert [parameter["name"] for parameter in create["parameters"]] == ["Idempotency-Key"]
    assert {"Location", "ETag", "Idempotent-Replayed"} <= set(create["responses"]["201"]["headers"])
    assert "Retry-After" in create["responses"]["409"]["headers"]
    assert "400" in create["responses"]
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ItemOut"
    }
    assert all(ref_resolves(schema, ref) for ref in refs_in(schema))


def refs_in(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs_in(value)


def ref_resolves(schema: dict[str, Any], ref: str) -> bool:
    node: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
