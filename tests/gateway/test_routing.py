"""Every router of the gateway: Allow names every method of a resource, OPTIONS and HEAD are
answered, and a slash redirect names no host."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from gateway.routing import redirect_slashes_relatively
from gateway.settings import Settings
from tests.conftest import catalog_versions, open_client

pytestmark = pytest.mark.anyio

_REFUSABLE = ("PATCH", "PUT", "POST", "DELETE", "GET")


@pytest.fixture
async def gateway(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async for client in open_client(make_settings(versions=catalog_versions()), root_path="/api"):
        yield client


def _allow(response: httpx.Response) -> set[str]:
    return {method.strip() for method in response.headers["allow"].split(",")}


async def _resources(gateway: httpx.AsyncClient, prefix: str) -> dict[str, set[str]]:
    """Every path of the version's schema (item 1 for a path parameter) with the methods
    the schema gives it, HEAD where GET is, and OPTIONS."""
    schema = (await gateway.get(f"/api{prefix}/openapi.json")).json()
    resources = {}
    for template, operations in schema["paths"].items():
        methods = {method.upper() for method in operations}
        methods |= {"HEAD"} if "GET" in methods else set()
        resources[f"/api{prefix}{template.replace('{item_id}', '1')}"] = methods | {"OPTIONS"}
    assert len(resources) >= 2
    return resources


@pytest.mark.parametrize("prefix", ["/v1", "/v2"])
async def test_a_405_allows_every_method_of_the_resource(gateway: httpx.AsyncClient, prefix: str) -> None:
    for path, methods in (await _resources(gateway, prefix)).items():
        refused = next(method for method in _REFUSABLE if method not in methods)
        response = await gateway.request(refused, path)
        assert response.status_code == 405, path
        assert _allow(response) == methods, path
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert (body["status"], body["title"], body["instance"]) == (405, "Method Not Allowed", path)
        assert body["request_id"] == response.headers["x-request-id"]


async def test_patch_on_the_v1_list_allows_get_and_post(gateway: httpx.AsyncClient) -> None:
    response = await gateway.patch("/api/v1/items")
    assert response.status_code == 405
    assert _allow(response) == {"GET", "HEAD", "POST", "OPTIONS"}


@pytest.mark.parametrize("prefix", ["/v1", "/v2"])
async def test_options_answers_the_methods_of_the_resource(gateway: httpx.AsyncClient, prefix: str) -> None:
    for path, methods in (await _resources(gateway, prefix)).items():
        response = await gateway.options(path)
        assert response.status_code == 204, path
        assert _allow(response) == methods, path
        assert response.content == b""
    assert (await gateway.options(f"/api{prefix}/nothing-here")).status_code == 404


@pytest.mark.parametrize("prefix", ["/v1", "/v2"])
async def test_head_answers_like_get(
    gateway: httpx.AsyncClient, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    created = await gateway.post("/api/v1/items", json={"name": "Widget", "price": 12.5})
    path = f"/api{prefix}/items/{created.json()['id']}"
    got, head = await gateway.get(path), await gateway.head(path)
    assert head.status_code == 200
    assert head.headers["etag"] == got.headers["etag"]
    assert head.headers["content-length"] == got.headers["content-length"]
    assert head.headers.get("deprecation") == got.headers.get("deprecation")
    assert (await gateway.head(f"/api{prefix}/items")).status_code == 200
    assert (await gateway.head(f"/api{prefix}/items/999999")).status_code == 404
    # The access log names the route, as for a GET.
    lines = [record.__dict__ for record in caplog.records if record.name == "gateway.access"]
    heads = [line for line in lines if line["method"] == "HEAD"]
    assert [line["route"] for line in heads[:2]] == [f"{prefix}/items/{{item_id}}", f"{prefix}/items"]


@pytest.mark.parametrize("prefix", ["/v1", "/v2"])
async def test_the_routes_the_gateway_adds_to_a_version_answer_alike(
    gateway: httpx.AsyncClient, prefix: str
) -> None:
    for page in ("/", "/docs", "/redoc", "/openapi.json"):
        path = f"/api{prefix}{page}"
        refused = await gateway.delete(path)
        assert refused.status_code == 405, path
        assert _allow(refused) == {"GET", "HEAD", "OPTIONS"}, path
        options = await gateway.options(path)
        assert (options.status_code, _allow(options)) == (204, {"GET", "HEAD", "OPTIONS"}), path


async def test_a_slash_redirect_never_names_another_host() -> None:
    async def page(request: Request) -> Response:
        return PlainTextResponse("page")

    app = Starlette(routes=[Route("//evil.example", page)])
    redirect_slashes_relatively(app.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        response = await client.get("http://gateway.test//evil.example/")
    assert response.status_code == 307
    # '//evil.example' would be a reference to that host (RFC 3986 4.2).
    assert response.headers["location"] == "/%2Fevil.example"


@pytest.mark.parametrize(
    ("path", "methods"),
    [("/api/health/live", {"GET", "HEAD", "OPTIONS"}), ("/api/", {"GET", "HEAD", "OPTIONS"})],
)
async def test_the_roots_own_routes_answer_405_and_options_alike(
    gateway: httpx.AsyncClient, path: str, methods: set[str]
) -> None:
    refused = await gateway.post(path)
    assert refused.status_code == 405
    assert _allow(refused) == methods
    assert refused.headers["content-type"] == "application/problem+json"
    options = await gateway.options(path)
    assert options.status_code == 204
    assert _allow(options) == methods
    assert (await gateway.options("/api/nothing-here")).status_code == 404
