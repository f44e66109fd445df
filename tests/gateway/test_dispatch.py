"""The edge sends version traffic to the version's Mount itself: the version must see the
scope Starlette's router and Mount would have given it, and answer the same."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.settings import Settings
from tests.conftest import open_client, probe_version

pytestmark = pytest.mark.anyio

ECHO_FACTORY = "tests.gateway.test_dispatch:create_scope_echo"


def create_scope_echo(settings: Settings | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/scope/{name}", name="echo_scope")
    async def echo_scope(name: str, request: Request) -> dict[str, Any]:
        scope = request.scope
        return {
            "path": scope["path"],
            "root_path": scope["root_path"],
            "app_root_path": scope["app_root_path"],
            "path_params": scope["path_params"],
            # Names resolve from the outermost router, as under Starlette's own routing.
            "outermost_router": scope["router"] is not request.app.router,
            "own_path": request.app.url_path_for("echo_scope", name="x"),
        }

    return app


async def _through_plain_mount(path: str, root_path: str) -> dict[str, Any]:
    """What a plain Starlette ``Mount`` gives the same app: the reference."""
    reference = Starlette(routes=[Mount("/v3", app=create_scope_echo(), name="v3")])
    async with LifespanManager(reference) as manager:
        transport = httpx.ASGITransport(app=manager.app, root_path=root_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
            response = await client.get(path)
            assert response.status_code == 200
            result: dict[str, Any] = response.json()
            return result


@pytest.mark.parametrize("root_path", ["", "/api"])
async def test_a_version_sees_the_scope_its_mount_would_give_it(
    make_settings: Callable[..., Settings], root_path: str
) -> None:
    path = f"{root_path}/v3/scope/here"
    async for client in open_client(make_settings(versions=[probe_version(factory=ECHO_FACTORY)]), root_path):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.json() == await _through_plain_mount(path, root_path)


async def test_a_path_the_version_does_not_know_is_its_404_logged_under_the_mount(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    async for client in open_client(make_settings(versions=[probe_version()])):
        response = await client.get("/v3/nothing/here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert "versions" not in response.json()  # The version's own 404, not the root's.
    (line,) = [record.__dict__ for record in caplog.records if record.name == "gateway.access"]
    assert line["route"] == "/v3/{path}"
    assert line["api_version"] == "v3"


async def test_the_bare_prefix_is_redirected_by_the_root_router(
    make_settings: Callable[..., Settings],
) -> None:
    async for client in open_client(make_settings(versions=[probe_version()])):
        response = await client.get("/v3")
        assert response.status_code == 307
        assert response.headers["location"] == "/v3/"
        assert (await client.get("/v3/hello")).json() == {"hello": "probe"}
        # A path that merely starts like a prefix is not that version's.
        assert (await client.get("/v3hello")).status_code == 404
