"""A version chosen without a prefix: by API-Version, by the caller's pin, else the current one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from gateway.app import create_app
from tests.conftest import probe_version
from tests.identities import clients_by_identity, spiffe_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import httpx

    from gateway.settings import Settings

pytestmark = pytest.mark.anyio


def _registry() -> list[object]:
    return [
        probe_version("/v1", status="deprecated", deprecated_at="2026-01-01T00:00:00Z", successor="/v2"),
        probe_version("/v2"),
    ]


@pytest.fixture
async def client_of(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[[str | None], httpx.AsyncClient]]:
    settings = make_settings(versions=_registry(), version_pins={spiffe_id("legacy"): "v1"})
    async with clients_by_identity(create_app(settings)) as client_of:
        yield client_of


async def test_a_path_without_a_version_is_served_by_the_current_version(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    response = await client_of(None).get("/hello")
    assert response.status_code == 200
    assert response.headers["api-version"] == "v2"
    assert "deprecation" not in response.headers


@pytest.mark.parametrize("requested", ["v1", "1", "V1", " v1 "])
async def test_the_api_version_header_names_the_version(
    client_of: Callable[[str | None], httpx.AsyncClient], requested: str
) -> None:
    response = await client_of(None).get("/hello", headers={"API-Version": requested})
    assert response.status_code == 200
    assert response.headers["api-version"] == "v1"
    # The version's lifecycle headers come with it.
    assert response.headers["deprecation"] == "@1767225600"
    assert '</v2/>; rel="successor-version"' in response.headers.get_list("link")


async def test_an_unknown_version_is_a_400_listing_the_versions(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    response = await client_of(None).get("/hello", headers={"API-Version": "v7"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["versions"] == ["v1", "v2"]
    assert "'v7' is not a version of this API" in problem["detail"]


async def test_a_pinned_caller_gets_its_version_unless_it_names_another(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    legacy = client_of("legacy")
    assert (await legacy.get("/hello")).headers["api-version"] == "v1"
    assert (await legacy.get("/hello", headers={"API-Version": "2"})).headers["api-version"] == "v2"
    assert (await client_of("billing").get("/hello")).headers["api-version"] == "v2"


async def test_a_path_with_a_version_ignores_the_header(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    response = await client_of(None).get("/v1/hello", headers={"API-Version": "v2"})
    assert response.headers["api-version"] == "v1"


async def test_the_gateways_own_paths_are_never_given_to_a_version(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    client = client_of(None)
    for path in ("/", "/health/live", "/docs", "/.well-known/api-catalog"):
        response = await client.get(path, headers={"API-Version": "v1"})
        assert response.status_code == 200, path
        assert "api-version" not in response.headers, path
    # A path that looks like a version the registry lacks: the root's 404, listing them.
    missing = await client.get("/v9/hello")
    assert missing.status_code == 404
    assert missing.json()["versions"] == ["/v1", "/v2"]


async def test_the_version_chosen_is_what_the_access_log_and_route_record(
    client_of: Callable[[str | None], httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="gateway.access")
    await client_of(None).get("/hello", headers={"API-Version": "v1", "X-Request-ID": "chosen-1"})
    (line,) = [
        record.__dict__
        for record in caplog.records
        if record.name == "gateway.access" and record.__dict__.get("request_id") == "chosen-1"
    ]
    assert (line["api_version"], line["route"], line["path"]) == ("v1", "/v1/hello", "/v1/hello")


def test_a_pin_to_a_version_that_is_not_registered_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="GATEWAY_VERSION_PINS names v9, not in GATEWAY_VERSIONS"):
        make_settings(versions=_registry(), version_pins={spiffe_id("legacy"): "v9"})
