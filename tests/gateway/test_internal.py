"""/internal through the gateway: identities, the allow-list, forwarded client certificates."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from gateway.app import create_app
from gateway.settings import INTERNAL_FACTORY
from tests.conftest import catalog_versions, probe_version
from tests.identities import clients_by_identity, spiffe_id

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    import httpx

    from gateway.settings import Settings

ALLOW = {
    "GET /internal/items/export": [spiffe_id("reporting")],
    "POST /internal/items/import": [spiffe_id("billing")],
}
ITEM = {"id": 7, "name": "Teapot", "price": {"amount": "12.50", "currency": "EUR"}, "tags": ["kitchen"]}


@pytest.fixture
async def client_of(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[[str | None], httpx.AsyncClient]]:
    settings = make_settings(
        versions=[*catalog_versions(), probe_version()],
        internal_app=INTERNAL_FACTORY,
        internal_allow=ALLOW,
        trusted_proxies=[spiffe_id("envoy")],
    )
    async with clients_by_identity(create_app(settings)) as client_of:
        yield client_of


def _import(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"items": items}


@pytest.mark.anyio
async def test_no_verified_identity_gets_401_on_every_internal_path(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    anonymous = client_of(None)
    for method, path in [
        ("GET", "/internal/items/export"),
        ("POST", "/internal/items/import"),
        ("GET", "/internal/docs"),
        ("GET", "/internal/openapi.json"),
        ("GET", "/internal/no-such-route"),
    ]:
        response = await anonymous.request(method, path, json=_import([ITEM]) if method == "POST" else None)
        assert response.status_code == 401, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("MutualTLS")
        assert response.json()["status"] == 401


@pytest.mark.anyio
async def test_identities_get_exactly_the_routes_the_allow_list_names(
    client_of: Callable[[str | None], httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    reporting, billing, stranger = client_of("reporting"), client_of("billing"), client_of("stranger")
    assert (await billing.post("/internal/items/import", json=_import([ITEM]))).status_code == 200
    assert (await reporting.get("/internal/items/export")).status_code == 200

    with caplog.at_level(logging.WARNING, logger="gateway.internal"):
        refusals = [
            await reporting.post("/internal/items/import", json=_import([ITEM])),
            await billing.get("/internal/items/export"),
            await stranger.get("/internal/items/export"),
            # Denied before routing: an identity not allowed learns nothing of what exists.
            await stranger.get("/internal/no-such-route"),
        ]
    for response in refusals:
        assert response.status_code == 403
        assert response.json()["detail"].startswith("spiffe://gateway.test/service/")
    assert f"refused GET /internal/items/export to {spiffe_id('stranger')}" in caplog.text


@pytest.mark.anyio
async def test_the_docs_describe_the_api_to_every_verified_caller(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    stranger = client_of("stranger")
    schema = (await stranger.get("/internal/openapi.json")).json()
    assert {operation["operationId"] for path in schema["paths"].values() for operation in path.values()} == {
        "export_items",
        "import_items",
    }
    assert "application/x-ndjson" in schema["paths"]["/items/export"]["get"]["responses"]["200"]["content"]
    page = await stranger.get("/internal/docs")
    assert page.status_code == 200
    assert "/internal/openapi.json" in page.text


@pytest.mark.anyio
async def test_a_trusted_proxy_forwards_its_clients_identity(
    client_of: Callable[[str | None], httpx.AsyncClient],
) -> None:
    envoy = client_of("envoy")
    forwarded = {
        "x-forwarded-client-cert": (
            f"By={spiffe_id('envoy')};URI={spiffe_id('billing')},"
            f"By={spiffe_id('envoy')};Hash=1f2e;URI={spiffe_id('reporting')}"
        )
    }
    assert (await envoy.get("/internal/items/export", headers=forwarded)).status_code == 200
    # Only the last element counts: billing, named earlier, may import; reporting may not.
    assert (
        await envoy.post("/internal/items/import", json=_import([ITEM]), headers=forwarded)
    ).status_code == 403
    # Through the proxy without a forwarded certificate, the caller has no identity: the
    # proxy's own never stands in for its client's.
    assert (await envoy.get("/internal/items/export")).status_code == 401
    assert (await envoy.get("/v3/whoami")).status_code == 401


@pytest.mark.anyio
async def test_anyone_else_s_forwarded_certificate_is_removed_and_logged(
    client_of: Callable[[str | None], httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    forged = {"x-forwarded-client-cert": f"URI={spiffe_id('reporting')}"}
    with caplog.at_level(logging.WARNING, logger="gateway.tls"):
        # billing is not a proxy: its own identity stands, and it may not export.
        assert (await client_of("billing").get("/internal/items/export", headers=forged)).status_code == 403
        # Without a certificate at all, no header makes a caller.
        assert (await client_of(None).get("/internal/items/export", headers=forged)).status_code == 401
    assert caplog.text.count("ignored X-Forwarded-Client-Cert") == 2
    assert spiffe_id("billing") in caplog.text
