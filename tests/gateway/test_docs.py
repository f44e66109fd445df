"""Each version's docs are its own, load no asset from outside, and follow the root path."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from gateway.settings import Settings
from tests.conftest import open_client, probe_version

pytestmark = pytest.mark.anyio

_ASSET_URLS = re.compile(r'(?:src|href)="([^"]+)"')


@pytest.mark.parametrize("root_path", ["", "/api"])
@pytest.mark.parametrize("page", ["docs", "redoc"])
async def test_docs_pages_load_their_own_schema_and_local_assets(
    make_settings: Callable[..., Settings], root_path: str, page: str
) -> None:
    settings = make_settings(versions=[probe_version("/v3"), probe_version("/v4")])
    async for client in open_client(settings, root_path=root_path):
        for prefix in ("/v3", "/v4"):
            response = await client.get(f"{root_path}{prefix}/{page}")
            assert response.status_code == 200
            html = response.text
            assert f"{root_path}{prefix}/openapi.json" in html
            assets = _ASSET_URLS.findall(html)
            assert assets, "the page loads its assets"
            for asset in assets:
                assert asset.startswith(f"{root_path}/static/docs/"), f"{asset} is not served by the gateway"
                served = await client.get(asset)
                assert served.status_code == 200, asset
            assert "cdn" not in html.lower()
            assert "fonts.googleapis" not in html


async def test_the_schema_servers_follow_the_proxy_root_path(make_settings: Callable[..., Settings]) -> None:
    async for client in open_client(make_settings(), root_path="/api"):
        schema = (await client.get("/api/v3/openapi.json")).json()
        assert schema["servers"] == [{"url": "/api/v3"}]
        assert (await client.get("/api/v3/hello")).json() == {"hello": "probe"}


async def test_swagger_and_redoc_assets_are_javascript(make_settings: Callable[..., Settings]) -> None:
    async for client in open_client(make_settings()):
        for asset in ("swagger-ui-bundle.js", "redoc.standalone.js"):
            response = await client.get(f"/static/docs/{asset}")
            assert response.status_code == 200
            assert "javascript" in response.headers["content-type"]
            assert len(response.content) > 100_000


async def test_the_landing_page_links_every_versions_docs(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        versions=[
            probe_version("/v3"),
            probe_version("/v4", status="deprecated", deprecated_at="2026-01-01T00:00:00Z", successor="/v3"),
        ]
    )
    async for client in open_client(settings, root_path="/api"):
        response = await client.get("/api/docs")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        for prefix in ("/v3", "/v4"):
            assert f'href="/api{prefix}/docs"' in response.text
            assert f'href="/api{prefix}/redoc"' in response.text
        assert "use /v3 instead" in response.text


@pytest.mark.parametrize("page", ["docs", "redoc"])
async def test_docs_pages_may_load_nothing_from_elsewhere(
    make_settings: Callable[..., Settings], page: str
) -> None:
    async for client in open_client(make_settings()):
        response = await client.get(f"/v3/{page}")
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "img-src 'self' data:" in policy
        inline_scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
        assert policy.count("'sha256-") == len(inline_scripts)
        if page == "docs":
            assert '"validatorUrl": null' in response.text
