"""ETags and If-Match / If-None-Match on items, in both versions and on both stores."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from services import v1, v2
from services.catalog.settings import CatalogSettings
from tests.conftest import catalog_versions, open_client
from tests.services.utils import serve

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx
    from fastapi import FastAPI

    from gateway.settings import Settings

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Version:
    create_app: Callable[[CatalogSettings], FastAPI]
    new_item: dict[str, Any]
    write_method: str

    def rename(self, name: str) -> dict[str, Any]:
        return {"name": name, "price": 1} if self.write_method == "PUT" else {"name": name}


VERSIONS = {
    "v1": Version(v1.create_app, {"name": "Teapot", "price": 1}, "PUT"),
    "v2": Version(v2.create_app, {"name": "Teapot", "price": {"amount": "1"}}, "PATCH"),
}


@pytest.fixture(params=sorted(VERSIONS))
def version(request: pytest.FixtureRequest) -> Version:
    return VERSIONS[request.param]


async def create(client: httpx.AsyncClient, version: Version) -> tuple[int, str]:
    response = await client.post("/items", json=version.new_item)
    assert response.status_code == 201, response.text
    return response.json()["id"], response.headers["etag"]


async def test_every_item_response_carries_a_strong_etag(settings: CatalogSettings, version: Version) -> None:
    async with serve(version.create_app(settings)) as client:
        item_id, created_tag = await create(client, version)
        read = await client.get(f"/items/{item_id}")
        written = await client.request(
            version.write_method, f"/items/{item_id}", json=version.rename("Kettle")
        )
        listed = await client.get("/items")

    assert created_tag == read.headers["etag"] == f'"{item_id}-1"'
    assert written.headers["etag"] == f'"{item_id}-2"'
    assert re.fullmatch(r'"[0-9]+-[0-9]+"', written.headers["etag"])
    # A list is not one item: it has no tag of its own.
    assert "etag" not in listed.headers


async def test_the_same_revision_has_the_same_tag_in_both_versions(settings: CatalogSettings) -> None:
    async with serve(v1.create_app(settings)) as first, serve(v2.create_app(settings)) as second:
        item_id, tag = await create(first, VERSIONS["v1"])

        assert (await second.get(f"/items/{item_id}")).headers["etag"] == tag
        patched = await second.patch(
            f"/items/{item_id}", json={"tags": ["v2 only"]}, headers={"If-Match": tag}
        )
        stale = await first.put(
            f"/items/{item_id}", json={"name": "x", "price": 1}, headers={"If-Match": tag}
        )

    assert patched.status_code == 200
    # A change only v2 shows is still a new revision of the item in v1.
    assert stale.status_code == 412


async def test_if_none_match_answers_304_while_the_item_is_unchanged(
    settings: CatalogSettings, version: Version
) -> None:
    async with serve(version.create_app(settings)) as client:
        item_id, tag = await create(client, version)
        unchanged = await client.get(f"/items/{item_id}", headers={"If-None-Match": tag})
        weak = await client.get(f"/items/{item_id}", headers={"If-None-Match": f'"other", W/{tag}'})
        star = await client.get(f"/items/{item_id}", headers={"If-None-Match": "*"})
        await client.request(version.write_method, f"/items/{item_id}", json=version.rename("Kettle"))
        changed = await client.get(f"/items/{item_id}", headers={"If-None-Match": tag})

    for response in (unchanged, weak, star):
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == tag
    assert changed.status_code == 200
    assert changed.json()["name"] == "Kettle"
    assert changed.headers["etag"] == f'"{item_id}-2"'


async def test_if_match_lets_only_a_current_tag_write(settings: CatalogSettings, version: Version) -> None:
    async with serve(version.create_app(settings)) as client:
        item_id, tag = await create(client, version)
        path = f"/items/{item_id}"
        first = await client.request(
            version.write_method, path, json=version.rename("A"), headers={"If-Match": tag}
        )
        stale = await client.request(
            version.write_method, path, json=version.rename("B"), headers={"If-Match": tag}
        )
        listed = await client.request(
            version.write_method,
            path,
            json=version.rename("C"),
            headers={"If-Match": f'"{item_id}-9", "{item_id}-2"'},
        )
        weak = await client.request(
            version.write_method, path, json=version.rename("D"), headers={"If-Match": f'W/"{item_id}-3"'}
        )
        star = await client.request(
            version.write_method, path, json=version.rename("E"), headers={"If-Match": "*"}
        )
        stale_delete = await client.delete(path, headers={"If-Match": tag})
        delete = await client.delete(path, headers={"If-Match": star.headers["etag"]})

    assert first.status_code == 200
    assert stale.status_code == 412
    assert stale.headers["etag"] == first.headers["etag"] == f'"{item_id}-2"'
    assert stale.headers["content-type"] == "application/problem+json"
    assert "revision 2" in stale.json()["detail"]
    assert listed.status_code == 200
    # Weak tags never match If-Match.
    assert weak.status_code == 412
    assert star.status_code == 200
    assert star.json()["name"] == "E"
    assert stale_delete.status_code == 412
    assert stale_delete.headers["etag"] == f'"{item_id}-4"'
    assert delete.status_code == 204


async def test_a_missing_item_is_404_whatever_the_conditions(
    settings: CatalogSettings, version: Version
) -> None:
    async with serve(version.create_app(settings)) as client:
        written = await client.request(
            version.write_method, "/items/42", json=version.rename("A"), headers={"If-Match": "*"}
        )
        deleted = await client.delete("/items/42", headers={"If-Match": '"42-1"'})
        read = await client.get("/items/42", headers={"If-None-Match": "*"})

    assert [written.status_code, deleted.status_code, read.status_code] == [404, 404, 404]


@pytest.mark.parametrize("header", ["If-Match", "If-None-Match"])
async def test_a_malformed_condition_is_400(settings: CatalogSettings, version: Version, header: str) -> None:
    async with serve(version.create_app(settings)) as client:
        item_id, _tag = await create(client, version)
        method = "GET" if header == "If-None-Match" else "DELETE"
        response = await client.request(method, f"/items/{item_id}", headers={header: "12-1"})

    assert response.status_code == 400
    assert header in response.json()["detail"]


async def test_of_concurrent_writers_with_one_if_match_exactly_one_wins(
    settings: CatalogSettings, version: Version
) -> None:
    # Two app instances over one database, as two worker processes would be.
    first, second = version.create_app(settings), version.create_app(settings)
    async with serve(first) as first_client, serve(second) as second_client:
        item_id, tag = await create(first_client, version)

        responses = await asyncio.gather(
            *(
                (first_client if number % 2 else second_client).request(
                    version.write_method,
                    f"/items/{item_id}",
                    json=version.rename(f"name {number}"),
                    headers={"If-Match": tag},
                )
                for number in range(50)
            )
        )
        final = await first_client.get(f"/items/{item_id}")

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] + [412] * 49
    (winner,) = (response for response in responses if response.status_code == 200)
    assert final.json()["name"] == winner.json()["name"]
    # No lost update: one write happened, and every loser was told the winner's tag.
    assert final.headers["etag"] == winner.headers["etag"] == f'"{item_id}-2"'
    assert {response.headers["etag"] for response in responses} == {f'"{item_id}-2"'}


async def test_through_the_gateway_412_is_a_problem_and_304_has_no_body(
    make_settings: Callable[..., Settings],
) -> None:
    async for gateway in open_client(make_settings(versions=catalog_versions()), root_path="/api"):
        created = await gateway.post("/api/v2/items", json=VERSIONS["v2"].new_item)
        path, tag = created.headers["location"], created.headers["etag"]
        await gateway.patch(path, json={"name": "Kettle"}, headers={"If-Match": tag})

        stale = await gateway.patch(path, json={"name": "Lamp"}, headers={"If-Match": tag})
        unchanged = await gateway.get(path, headers={"If-None-Match": stale.headers["etag"]})
        malformed = await gateway.delete(path, headers={"If-Match": "no quotes"})

        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        assert stale.json()["title"] == "Precondition Failed"
        assert stale.json()["instance"] == path
        assert stale.headers["etag"] != tag
        assert unchanged.status_code == 304
        assert unchanged.content == b""
        assert unchanged.headers["etag"] == stale.headers["etag"]
        assert malformed.status_code == 400
        assert malformed.headers["content-type"] == "application/problem+json"
