"""The root app: versions mounted from the registry, each with its own schema."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gateway.settings import Settings
from tests.conftest import open_client, probe_version

pytestmark = pytest.mark.anyio


async def test_a_test_only_version_is_mounted_from_the_registry_alone(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(versions=[probe_version("/v3"), probe_version("/beta")])
    async for client in open_client(settings):
        assert (await client.get("/v3/hello")).json() == {"hello": "probe"}
        assert (await client.get("/beta/hello")).json() == {"hello": "probe"}


async def test_each_version_has_its_own_schema_without_root_routes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/v3/openapi.json")).json()
    assert schema["info"] == {"title": "Probe API", "description": "A version for tests.", "version": "3.0.0"}
    assert "/hello" in schema["paths"]
    assert not any(path.startswith(("/health", "/docs", "/v3")) for path in schema["paths"])
    assert schema["servers"] == [{"url": "/v3"}]


async def test_every_error_is_documented_as_a_problem_in_the_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/v3/openapi.json")).json()
    operation = schema["paths"]["/greetings"]["post"]
    problem_ref = {"$ref": "#/components/schemas/Problem"}
    assert operation["responses"]["422"]["content"]["application/problem+json"]["schema"] == problem_ref
    assert operation["responses"]["default"]["content"]["application/problem+json"]["schema"] == problem_ref
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert "status" in schema["components"]["schemas"]["Problem"]["properties"]


async def test_index_lists_every_version_with_its_lifecycle(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        versions=[
            probe_version("/v3"),
            probe_version(
                "/old",
                status="deprecated",
                deprecated_at="2026-01-01T00:00:00Z",
                sunset_at="2099-01-01T00:00:00Z",
            ),
        ]
    )
    async for client in open_client(settings, root_path="/api"):
        response = await client.get("/api/")
        assert response.status_code == 200
        versions = {version["name"]: version for version in response.json()["versions"]}
        assert versions["v3"]["status"] == "current"
        assert versions["old"]["status"] == "deprecated"
        assert versions["old"]["sunset"] == "2099-01-01T00:00:00+00:00"
        assert versions["v3"]["docs"] == "/api/v3/docs"
        assert versions["v3"]["openapi"] == "/api/v3/openapi.json"


async def test_api_catalog_is_an_rfc_9727_linkset(client: httpx.AsyncClient) -> None:
    response = await client.get("/.well-known/api-catalog")
    assert response.headers["content-type"].startswith("application/linkset+json")
    assert 'profile="https://www.rfc-editor.org/info/rfc9727"' in response.headers["content-type"]
    (entry,) = response.json()["linkset"]
    # Relative references (RFC 9264 4.2), resolved against the catalog's own URL.
    assert entry["anchor"] == "/v3/"
    assert entry["service-desc"][0]["href"] == "/v3/openapi.json"
    assert entry["service-doc"][0]["href"] == "/v3/docs"
    head = await client.head("/.well-known/api-catalog")
    assert head.status_code == 200


async def test_unknown_version_is_a_404_problem_listing_the_versions(client: httpx.AsyncClient) -> None:
    response = await client.get("/v9/items")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["versions"] == ["/v3"]
    assert body["status"] == 404
    assert body["instance"] == "/v9/items"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v3/nothing-here", 404), ("DELETE", "/v3/hello", 405), ("POST", "/health/live", 405)],
)
async def test_root_and_version_errors_share_one_shape(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "instance", "request_id"}
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    if status == 405:
        assert response.headers["allow"]


async def test_validation_errors_are_problems_with_field_detail(client: httpx.AsyncClient) -> None:
    response = await client.post("/v3/greetings", json={"message": ""})
    assert response.status_code == 422
    body = response.json()
    assert body["title"] == "Unprocessable Content"
    (error,) = body["errors"]
    assert error["location"] == ["body", "message"]
    assert error["type"] == "string_too_short"


async def test_a_500_never_leaks_the_traceback(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await client.get("/v3/boom", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["request_id"] == "boom-1"
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1, "the traceback is logged exactly once"
    assert logged[0].request_id == "boom-1"  # type: ignore[attr-defined]


async def test_version_state_stays_its_own(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v3/state")).json()
    assert body == {"request_state": {"owner": "probe"}, "started": True}


async def test_streaming_and_background_tasks_pass_through(client: httpx.AsyncClient) -> None:
    async with client.stream("GET", "/v3/stream") as response:
        chunks = [chunk async for chunk in response.aiter_text()]
    assert "".join(chunks) == "chunk 0\nchunk 1\nchunk 2\n"
    response = await client.post("/v3/background")
    assert response.status_code == 202
    assert response.headers["x-request-id"]
